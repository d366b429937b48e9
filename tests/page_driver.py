"""The page's side of the protocol for the tests: pycnn.page.Client, plus what they look at inside."""
from pycnn.page import Client, Session, decode  # noqa: F401 - decode: for the tests that decode by hand


class PageClient(Client):
    """Client that keeps every event told (client.told) and names the session's insides."""

    def __init__(self, session):
        super().__init__(session)
        self.told = []

    @classmethod
    def of(cls, *args, **kwargs):
        return cls(Session(*args, **kwargs))

    def reply(self, method, data=None, **args):
        reply = super().reply(method, data, **args)
        self.told += self.events
        return reply

    def error(self, method, data=None, **args):
        """The message of a request that must be refused."""
        reply = self.reply(method, data, **args)
        assert "error" in reply, f"{method} was not refused: {reply}"
        return reply["error"]

    def events_of(self, kind, events=None):
        """The events of one type among events (default: every event told so far)."""
        return [event for event in (self.told if events is None else events) if event["type"] == kind]

    @property
    def model(self):
        return self.session.current.model

    @property
    def data(self):
        return self.session.data

    @property
    def digits(self):
        return self.session.digits
