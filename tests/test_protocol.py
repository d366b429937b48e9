"""The page <-> Python protocol (pycnn.page.protocol): every request declared once, in Python,
and the page, the worker and PROTOCOL.md agreeing with that registry."""
import re
from pathlib import Path

import pytest

from pycnn.page import REQUESTS, Session  # noqa: F401 - importing the session declares every request
from pycnn.page.protocol import markdown_table, request

WEB = Path(__file__).resolve().parents[1] / "web"
# the worker's own: at boot, and the training loop (a batch in one piece, or its shards handed out and gathered)
WORKER_CALLS = {"info", "step", "begin_step", "compute_shard", "prepare_step", "shard_result", "finish_step"}
# how the page's modules name a request: client.call / client.request, a run's start, and the small
# wrappers that add error handling (network.js #call, yourdigits.js #change, predictor.js #askHeldout)
CALL_SITE = re.compile(r'(?:client\.call|client\.request|runs\.start|#call|#change|#askHeldout)\(\s*"([a-z_]+)"')


def page_sources():
    return {path.name: path.read_text() for path in WEB.glob("*.js") if path.name != "worker.js"}


def test_protocol_md_lists_every_request_as_the_registry_declares_it():
    text = (WEB / "PROTOCOL.md").read_text()
    assert markdown_table() in text, "PROTOCOL.md is out of date: paste the output of `python -m pycnn.page`"


def test_every_request_the_page_makes_is_declared_and_every_declared_one_is_made():
    called = {name for source in page_sources().values() for name in CALL_SITE.findall(source)}
    assert called, "no call sites found: the pattern no longer matches the page's code"
    assert called - set(REQUESTS) == set(), "the page asks for requests Python does not declare"
    assert set(REQUESTS) - WORKER_CALLS - called == set(), "requests declared in Python that nothing asks for"


def test_the_worker_holds_no_code_for_any_request():
    worker = (WEB / "worker.js").read_text()
    named = {name for name in REQUESTS if re.search(rf'"{name}"', worker)}
    assert named == WORKER_CALLS


def test_the_registry_is_published_with_what_the_worker_needs():
    spec = REQUESTS["predict"].public()
    assert spec == {"during_run": "answer", "then": [], "starts_run": False}
    assert REQUESTS["train"].starts_run and REQUESTS["stop"].during_run == "now"
    assert REQUESTS["keep_step"].then == ("filters", "checkpoint") and REQUESTS["keep_step"].part == "CurrentModel"


def test_a_request_is_declared_once_with_known_events():
    with pytest.raises(ValueError, match="declared twice"):
        request()(REQUESTS["predict"].function)
    with pytest.raises(ValueError, match="then may name filters, checkpoint"):
        request(then=("confetti",))
    with pytest.raises(ValueError, match="during_run must be one of"):
        request(during_run="sometimes")
