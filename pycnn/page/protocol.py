"""The page <-> Python protocol: every request declared once, where it is answered.

A request is a method of one of the session's parts, marked with @request. Its name is the
method's name, on both sides of the worker: the page calls `client.call("add_digit", {label})`
and the worker relays `{id, method, args}` to `dispatch`, which answers `{result}` or `{error}`
plus the events the page must be told after it (`then`: the filters, the model to keep). The
registry is published in the session's info, so the worker holds no per-request code.

The rules at the boundary:
- field names are the Python names (snake_case) on both sides: nothing is translated;
- an array crosses as {"shape": [...], "f32": offset}, bytes as {"u8": offset, "size": n}
  (byte offsets into one buffer, each a multiple of 4); bytes sent by the page arrive as the
  method's `data` argument;
- non-finite floats become null, numpy scalars plain numbers;
- a ValueError becomes {"error": message}: bad settings, a bad model file, a bad index.
"""
import dataclasses
import inspect
import json
import math
import time

import numpy as np

DURING_RUN = ("refuse", "answer", "now")  # what a request does while a run trains, see Request
EVENTS = ("filters", "checkpoint")  # what `then` may name


@dataclasses.dataclass(frozen=True)
class Request:
    """One request the page can make.

    name: the method's name; part: the class that answers it; during_run: while a run trains,
    "refuse" it ("stop first"), "answer" it between batches (the worker makes training wait no
    longer than a share of the time), or handle it "now" (stop); then: the events the page is
    sent after a successful reply ("filters": the conv weights changed; "checkpoint": the model
    to keep, its reason the request's name, its evaluation the reply's); starts_run: the reply
    starts a run that the worker steps until it ends; doc: what it does (the docstring's first
    paragraph).
    """
    name: str
    part: str
    function: object
    during_run: str
    then: tuple
    starts_run: bool
    doc: str

    def public(self):
        """What the worker and PROTOCOL.md need of it (JSON)."""
        return {"during_run": self.during_run, "then": list(self.then), "starts_run": self.starts_run}


REQUESTS = {}  # name -> Request, in the order they are declared


def request(during_run="refuse", then=(), starts_run=False):
    """Declare the decorated method a request of the page (see Request)."""
    if during_run not in DURING_RUN:
        raise ValueError(f"during_run must be one of {', '.join(DURING_RUN)}, got {during_run!r}")
    unknown = set(then) - set(EVENTS)
    if unknown:
        raise ValueError(f"then may name {', '.join(EVENTS)}, got {sorted(unknown)}")

    def register(function):
        name = function.__name__
        if name in REQUESTS:
            raise ValueError(f"request {name!r} is declared twice")
        part = function.__qualname__.split(".")[0]
        doc = inspect.cleandoc(function.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        REQUESTS[name] = Request(name, part, function, during_run, tuple(then), starts_run, doc)
        return function
    return register


def published():
    """The registry as the worker reads it: {name: {during_run, then, starts_run}}."""
    return {name: spec.public() for name, spec in REQUESTS.items()}


def dispatch(session, method, args_json="{}", data=None):
    """The request `method` with JSON arguments (and the page's bytes as `data`) -> (JSON text, buffer).

    The JSON is {"result": ..., "events": [...], "ms": the time it took} or {"error": message}.
    data: bytes or a Pyodide proxy of a Uint8Array.
    """
    spec = REQUESTS.get(method)
    if spec is None:
        return encode({"error": f"unknown request {method!r}"})
    started = time.perf_counter()
    try:
        args = json.loads(args_json)
        if not isinstance(args, dict):
            raise ValueError("the arguments must be a JSON object")
        if data is not None:
            args["data"] = data.to_bytes() if hasattr(data, "to_bytes") else bytes(data)
        if spec.during_run == "refuse" and session.running():
            raise ValueError(f"cannot {method.replace('_', ' ')} while training: stop first")
        try:
            inspect.signature(spec.function).bind(None, **args)
        except TypeError as err:
            raise ValueError(f"{method}: {err}") from None
        result = spec.function(session.part(spec.part), **args)
        events = session.events_after(spec, result)
    except ValueError as err:
        session.drop_events()
        return encode({"error": str(err)})
    return encode({"result": result, "events": events, "ms": round((time.perf_counter() - started) * 1e3, 1)})


def encode(value):
    """A reply -> (JSON text, binary buffer): arrays as packed little-endian float32, bytes as bytes.

    Each array or bytes value is replaced by where it sits in the buffer: {"shape", "f32": byte
    offset} or {"u8": byte offset, "size"}; every part starts on a 4-byte boundary.
    """
    buffer = bytearray()

    def append(raw):
        buffer.extend(bytes(-len(buffer) % 4))
        offset = len(buffer)
        buffer.extend(raw)
        return offset

    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(item) for k, item in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(item) for item in v]
        if isinstance(v, np.ndarray):
            return {"shape": list(v.shape), "f32": append(np.ascontiguousarray(v, dtype="<f4").tobytes())}
        if isinstance(v, (bytes, bytearray, memoryview)):
            raw = bytes(v)
            return {"u8": append(raw), "size": len(raw)}
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.dumps(clean(value), allow_nan=False), bytes(buffer)


def decode(reply):
    """encode's (JSON text, buffer) -> the value, arrays back as float32 numpy arrays and bytes as bytes
    (what web/worker.js does in JavaScript)."""
    text, buffer = reply

    def revive(v):
        if isinstance(v, dict):
            if "f32" in v:
                return np.frombuffer(buffer, "<f4", math.prod(v["shape"]), v["f32"]).reshape(v["shape"])
            if "u8" in v:
                return buffer[v["u8"]:v["u8"] + v["size"]]
            return {k: revive(item) for k, item in v.items()}
        if isinstance(v, list):
            return [revive(item) for item in v]
        return v
    return revive(json.loads(text))


class Client:
    """The page's side of the protocol, in CPython (tests, benchmarks): client(method, data, **args) -> the
    result, through dispatch and decode as the worker makes each request. A refused request raises
    ValueError with Python's message. client.events: what the page was told after the last request."""

    def __init__(self, session):
        self.session = session
        self.events = []

    def reply(self, method, data=None, **args):
        """The whole decoded reply: {"result", "events", "ms"} or {"error"}."""
        reply = decode(dispatch(self.session, method, json.dumps(args), data))
        self.events = reply.get("events", [])
        return reply

    def __call__(self, method, data=None, **args):
        reply = self.reply(method, data, **args)
        if "error" in reply:
            raise ValueError(reply["error"])
        return reply["result"]

    def run(self, method="train", **args):
        """Start a run and step it until it ends -> (the start's result, every step's result)."""
        started = self(method, **args)
        steps = [self("step")]
        while not steps[-1]["ended"]:
            steps.append(self("step"))
        return started, steps


def markdown_table():
    """The requests as PROTOCOL.md lists them: one row each, from the registry."""
    during = {"refuse": "refused (stop first)", "answer": "between batches", "now": "at once"}
    rows = ["| request | answered by | while a run trains | then | what it does |", "|---|---|---|---|---|"]
    for spec in REQUESTS.values():
        params = [p for p in inspect.signature(spec.function).parameters if p != "self"]
        call = f"`{spec.name}({', '.join(params)})`"
        then = ", ".join([f"`{event}`" for event in spec.then] + (["starts a run"] if spec.starts_run else []))
        rows.append(f"| {call} | {spec.part} | {during[spec.during_run]} | {then or '-'} | {spec.doc} |")
    return "\n".join(rows)

