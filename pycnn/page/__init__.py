"""The page's Python side: the session the web worker opens and the protocol it speaks.

    from pycnn.page import Session, dispatch
    session = Session.from_files(images_gz, labels_gz)
    dispatch(session, "predict", '{"width": 28, "height": 28}', pixels)  # -> (JSON text, buffer)
    Client(session)("predict", pixels, width=28, height=28)  # the same from CPython -> the result
"""
from .protocol import REQUESTS, Client, decode, dispatch, encode
from .session import Session

__all__ = ["REQUESTS", "Client", "Session", "decode", "dispatch", "encode"]
