"""Faults the page must survive: storage unavailable, a loading stage failing (then Retry)."""
from playwright.sync_api import expect

from e2e_support import READY_TIMEOUT_MS

NO_INDEXEDDB = """
IDBFactory.prototype.open = function () { throw new DOMException("The operation is insecure.", "SecurityError"); };
"""
TINY_RUN = {"epochs-input": "1", "train-size-input": "256", "batch-size-input": "32", "learning-rate-input": "0.01"}


def test_without_indexeddb_the_page_still_trains_and_says_models_are_not_kept(open_site):
    app = open_site([NO_INDEXEDDB])
    app.goto_ready()
    note = app.by_id("storage-note")
    expect(note).to_have_attribute("data-available", "false")
    expect(note).to_contain_text("won't be kept")
    for testid, value in TINY_RUN.items():
        app.by_id(testid).fill(value)
    app.by_id("train-button").click()
    app.page.wait_for_selector('body[data-state="ready"][data-run-result="finished"]', state="attached", timeout=120_000)
    assert app.attr("accuracy", "data-val-accuracy") != ""
    app.page.reload()
    app.wait_state("ready")
    assert app.page.evaluate("document.body.dataset.model") == "untrained"
    assert app.log.page_errors == []


def test_a_failed_loading_stage_is_named_and_retry_recovers(open_site):
    app = open_site()
    failures = {"left": 1}

    def fail_once(route):
        if failures["left"]:
            failures["left"] -= 1
            route.abort()
        else:
            route.continue_()

    app.context.route("**/data/subset-labels-idx1-ubyte.gz", fail_once)
    app.page.goto(app.url)
    app.wait_state("error", timeout=READY_TIMEOUT_MS)
    expect(app.page.locator('[data-testid="stages"] [data-stage="data"]')).to_have_attribute("data-status", "failed")
    expect(app.by_id("message")).to_contain_text("data")
    expect(app.by_id("train-button")).to_be_disabled()
    app.by_id("retry-button").click()
    app.wait_state("ready")
    expect(app.by_id("message")).to_be_hidden()
    expect(app.by_id("train-button")).to_be_enabled()


def test_a_worker_that_cannot_start_is_reported_and_retry_recovers(open_site):
    app = open_site()
    failures = {"left": 1}

    def broken_once(route):
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(status=200, content_type="text/javascript", body="throw new Error('simulated worker crash');")
        else:
            route.continue_()

    app.context.route("**/worker.js", broken_once)
    app.page.goto(app.url)
    app.wait_state("error", timeout=READY_TIMEOUT_MS)
    expect(app.by_id("message")).to_contain_text("worker")
    expect(app.by_id("retry-button")).to_be_visible()
    app.by_id("retry-button").click()
    app.wait_state("ready")
    expect(app.by_id("train-button")).to_be_enabled()

