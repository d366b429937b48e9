"""Faults the page must survive: Train pressed while Python loads, a loading stage failing (then
Retry), the worker dying mid-run (an uncaught error, or ending without one), storage unavailable
or full, a damaged saved model or Python snapshot, a worker script that cannot start.

Faults of a first visit (the snapshot, the storage quota) get a context of their own; faults of a
later boot, a new page beside the shared page (Python from its snapshot); faults of a running
page, the shared page (tests/e2e/conftest.py). Each test passes alone.
"""
import pytest
from playwright.sync_api import expect

from e2e_support import READY_TIMEOUT_MS, python_worker

NO_INDEXEDDB = """
IDBFactory.prototype.open = function () { throw new DOMException("The operation is insecure.", "SecurityError"); };
"""
TINY_RUN = {"epochs-input": "1", "train-size-input": "256", "batch-size-input": "32", "learning-rate-input": "0.01"}
# long enough that the worker is killed in its second epoch, after the first was saved
CRASH_RUN = {"epochs-input": "6", "train-size-input": "2000", "batch-size-input": "32", "learning-rate-input": "0.005"}
DATA_FILE = "**/data/subset-labels-idx1-ubyte.gz"


def fulfil_once(**response):
    """A route handler that answers the first request with `response`, then lets requests through."""
    left = [1]

    def handler(route):
        if left[0]:
            left[0] -= 1
            route.fulfill(**response)
        else:
            route.continue_()
    return handler


def test_a_worker_that_cannot_start_is_reported_and_retry_starts_another(warm_visit):
    app = warm_visit
    app.context.route("**/worker.js", fulfil_once(status=200, content_type="text/javascript",
                                                  body="throw new Error('simulated worker crash');"))
    app.page.goto(app.url)
    app.wait_state("error", timeout=READY_TIMEOUT_MS)
    expect(app.by_id("message")).to_contain_text("worker")
    expect(app.by_id("message")).to_contain_text("simulated worker crash")
    expect(app.by_id("retry-button")).to_have_text("Retry")
    expect(app.by_id("train-button")).to_be_disabled()
    app.by_id("retry-button").click()
    app.wait_state("ready")
    expect(app.by_id("message")).to_be_hidden()
    expect(app.by_id("train-button")).to_be_enabled()


def test_train_while_python_loads_does_nothing(warm_visit):
    app = warm_visit
    held = []  # the requests for the digits, held unanswered while the page is still loading
    app.context.route(DATA_FILE, lambda route: held.append(route))
    app.page.goto(app.url)
    # Python, numpy and pycnn may load; the digits cannot arrive, so the page stays loading
    app.page.wait_for_function("() => document.querySelector('[data-stage=pycnn]').dataset.status === 'done'",
                               timeout=READY_TIMEOUT_MS)
    assert held, "the digits were not requested"
    assert app.body("state") == "loading"
    expect(app.by_id("train-button")).to_be_disabled()
    # the Enter key path; the page's submit handler runs inside this call, so a run would start now
    app.page.evaluate("document.getElementById('train-form').requestSubmit()")
    assert app.body("state") == "loading" and app.body("runResult") is None
    expect(app.by_id("progress")).to_have_attribute("data-step", "0")
    expect(app.by_id("prediction-note")).to_contain_text("Python is still loading")
    for route in held:
        route.continue_()
    app.wait_state("ready")
    # the Train pressed while loading started nothing
    assert app.body("runResult") is None and app.body("model") == "untrained"
    assert app.attr("loss-chart", "data-points") == "0"


def test_a_failed_download_is_named_and_retry_recovers(warm_visit):
    app = warm_visit
    app.context.route(DATA_FILE, lambda route: route.abort())  # the download fails
    app.page.goto(app.url)
    app.wait_state("error", timeout=READY_TIMEOUT_MS)
    expect(app.page.locator('[data-testid="stages"] [data-stage="data"]')).to_have_attribute("data-status", "failed")
    expect(app.by_id("message")).to_contain_text("while loading data: could not download the labels")
    expect(app.by_id("retry-button")).to_have_text("Retry")
    expect(app.by_id("train-button")).to_be_disabled()
    app.context.unroute(DATA_FILE)
    app.by_id("retry-button").click()
    app.wait_state("ready")
    expect(app.by_id("message")).to_be_hidden()


def test_a_data_file_whose_sha256_differs_is_refused_and_named(warm_visit):
    """The page checks the digits against the sha256 in data/manifest.json (written by build.py).
    The load that fails restored the Python snapshot a first visit saved; a failure behind a
    restored snapshot deletes it, so Retry starts Python afresh."""
    app = warm_visit
    app.goto_ready()
    label_file = app.page.evaluate("fetch('data/subset-labels-idx1-ubyte.gz').then(r => r.arrayBuffer())"
                                   ".then(b => Array.from(new Uint8Array(b)))")
    tampered = bytes(label_file[:-1]) + bytes([label_file[-1] ^ 1])
    app.context.route(DATA_FILE, lambda route: route.fulfill(status=200, content_type="application/gzip", body=tampered))
    assert app.page.evaluate("async () => (await caches.keys()).includes('pycnn-python-snapshot')")
    app.page.reload()
    app.wait_state("error")
    expect(app.by_id("message")).to_contain_text("subset-labels-idx1-ubyte.gz is corrupt: sha256")
    expect(app.page.locator('[data-testid="stages"] [data-stage="data"]')).to_have_attribute("data-status", "failed")
    app.context.unroute(DATA_FILE)
    app.by_id("retry-button").click()
    app.wait_state("ready")
    assert app.attr("status", "data-python-snapshot") == "saved"
    expect(app.by_id("message")).to_be_hidden()
    expect(app.by_id("train-button")).to_be_enabled()


def train_until_an_epoch_is_saved(app):
    """Start CRASH_RUN and return (1, held-out accuracy) of the model saved after its first epoch."""
    app.fill(CRASH_RUN)
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    app.wait_saves(1)
    assert app.measurements()["saved_epochs"] == 1
    app.page.wait_for_selector('[data-testid="accuracy-chart"][data-points="1"]', state="attached")  # drawn in a frame
    accuracy = app.page.evaluate("document.querySelector('[data-testid=accuracy-chart]').dataset.lastValAccuracy")
    assert app.body("state") == "training", "the run ended before the worker could be killed"
    return 1, float(accuracy)


def assert_worker_loss_reported_then_restart_restores(app, saved, accuracy, *words):
    app.wait_state("error", timeout=30_000)
    message = app.by_id("message")
    for word in ("during training", "Restart", "last saved model will come back", *words):
        expect(message).to_contain_text(word)
    assert app.body("runResult") == "crashed" and app.body("workerLost") == "true"
    expect(app.by_id("retry-button")).to_have_text("Restart")
    expect(app.by_id("train-button")).to_be_disabled()
    expect(app.by_id("prediction-note")).to_contain_text("not running")
    app.by_id("retry-button").click()
    app.wait_state("ready")
    expect(message).to_be_hidden()
    assert app.body("model") == "restored"
    assert app.attr("accuracy-chart", "data-points") == str(saved)
    assert float(app.attr("accuracy", "data-val-accuracy")) == pytest.approx(accuracy, abs=1e-9)
    expect(app.by_id("train-button")).to_be_enabled()


def test_an_uncaught_error_in_the_worker_mid_run_is_reported_and_restart_restores_the_saved_model(app):
    saved, accuracy = train_until_an_epoch_is_saved(app)
    # an exception that escapes every handler in the worker (as an escaped Python error would)
    python_worker(app.page).evaluate("() => { setTimeout(() => { throw new Error('simulated crash'); }); }")
    assert_worker_loss_reported_then_restart_restores(app, saved, accuracy, "crashed", "simulated crash")


def test_a_worker_that_ends_without_an_error_mid_run_is_noticed_and_restart_restores(app):
    """self.close() (or the browser killing the worker) sends no error event: the page notices
    because the worker's Web Lock is released."""
    saved, accuracy = train_until_an_epoch_is_saved(app)
    python_worker(app.page).evaluate("() => { setTimeout(() => self.close()); }")
    assert_worker_loss_reported_then_restart_restores(app, saved, accuracy, "stopped unexpectedly")


def test_a_saved_model_that_cannot_be_read_is_reported_and_dropped(app):
    """The model kept in IndexedDB got damaged (or was written by an incompatible version)."""
    app.train(TINY_RUN)
    app.wait_saved(1)
    app.page.evaluate("""() => new Promise((resolve, reject) => {
      const open = indexedDB.open('pycnn', 1);
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const tx = open.result.transaction('models', 'readwrite'), store = tx.objectStore('models');
        const get = store.get('current');
        get.onsuccess = () => store.put({ ...get.result, bytes: new Uint8Array(get.result.bytes.length / 2) }, 'current');
        tx.oncomplete = () => { open.result.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
    })""")
    app.page.reload()
    app.wait_state("ready")
    message = app.by_id("message")
    expect(message).to_have_attribute("data-kind", "warning")
    expect(message).to_contain_text("could not be restored")
    expect(message).to_contain_text("starting from an untrained model")
    assert app.body("model") == "untrained" and app.attr("accuracy-chart", "data-points") == "0"
    saved = app.page.evaluate("""() => new Promise((resolve) => {
      const open = indexedDB.open('pycnn', 1);
      open.onsuccess = () => {
        const get = open.result.transaction('models').objectStore('models').get('current');
        get.onsuccess = () => { open.result.close(); resolve(get.result === undefined); };
      };
    })""")
    assert saved, "the unreadable record was kept"
    message.locator(".dismiss").click()


DAMAGE_SNAPSHOT = """async (mode) => {
  const cache = await caches.open('pycnn-python-snapshot');
  const [key] = await cache.keys();
  const stored = await cache.match(key);
  const bytes = new Uint8Array(await stored.arrayBuffer());
  let hash = stored.headers.get('x-pycnn-sha256');
  if (mode === 'bit flip') {
    bytes[bytes.length >> 1] ^= 0xff;  // the stored sha256 no longer matches
  } else {
    bytes.fill(7, 0, 64);  // intact sha256, but not a snapshot Pyodide accepts
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    hash = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
  }
  await cache.put(key, new Response(bytes, { headers: { 'x-pycnn-sha256': hash } }));
  return key.url;
}"""


@pytest.mark.parametrize("damage", ["bit flip", "not a snapshot"])
def test_a_damaged_python_snapshot_is_dropped_and_python_starts_afresh(first_visit, damage):
    """The memory snapshot of a started Python that speeds up later visits got damaged."""
    app = first_visit
    assert app.attr("status", "data-python-snapshot") == "saved"  # by this first visit
    warnings = []
    listener = lambda m: warnings.append(m.text) if m.type == "warning" else None  # noqa: E731
    app.page.on("console", listener)
    errors_before = len(app.log.console_errors)
    key = app.page.evaluate(DAMAGE_SNAPSHOT, damage)
    assert "pyodide-snapshot" in key
    app.page.reload()
    app.wait_state("ready")
    app.page.remove_listener("console", listener)
    assert app.attr("status", "data-python-snapshot") == "saved", "the damaged snapshot was used or not replaced"
    assert any("snapshot" in w for w in warnings), warnings
    assert app.log.console_errors[errors_before:] == []
    expect(app.by_id("message")).not_to_have_attribute("data-kind", "error")
    # the replacement works: the next visit restores it
    app.page.reload()
    app.wait_state("ready")
    assert app.attr("status", "data-python-snapshot") == "restored"


def test_without_indexeddb_the_page_still_trains_and_says_models_are_not_kept(warm_visit):
    app = warm_visit
    app.page.add_init_script(NO_INDEXEDDB)
    app.goto_ready()
    note = app.by_id("storage-note")
    expect(note).to_have_attribute("data-available", "false")
    expect(note).to_contain_text("won't be kept")
    app.train(TINY_RUN)
    assert app.attr("accuracy", "data-val-accuracy") != ""
    app.page.reload()
    app.wait_state("ready")
    assert app.body("model") == "untrained"
    assert app.log.page_errors == []


def test_storage_too_full_for_the_model_makes_room_by_deleting_the_python_snapshot(first_visit):
    """Only the ~21 MB Python snapshot stands between the trained model and a full quota: the
    snapshot (a speed-up) goes, the model is kept."""
    app = first_visit
    assert app.attr("status", "data-python-snapshot") == "saved"
    has_snapshot = "async () => (await caches.keys()).includes('pycnn-python-snapshot')"
    assert app.page.evaluate(has_snapshot)
    usage = app.page.evaluate("async () => (await navigator.storage.estimate()).usage")
    assert usage > 20_000_000, usage  # the snapshot
    cdp = app.context.new_cdp_session(app.page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": app.url.rstrip("/"), "quotaSize": usage + 10_000})
    app.train(TINY_RUN)
    note = app.by_id("storage-note")
    expect(note).to_have_attribute("data-available", "true")
    app.wait_saved(1)
    assert not app.page.evaluate(has_snapshot)
    accuracy = app.attr("accuracy", "data-val-accuracy")
    app.page.reload()
    app.wait_state("ready")
    assert app.body("model") == "restored" and app.attr("accuracy", "data-val-accuracy") == accuracy
    # no room for a new snapshot either: this load started Python afresh and says so on the console only
    assert app.attr("status", "data-python-snapshot") == "none"
    expect(app.by_id("message")).to_be_hidden()


def test_storage_full_on_save_the_page_still_trains_and_says_models_are_not_kept(first_visit):
    """A real QuotaExceededError: Chromium's quota for the origin is set to 1 byte (DevTools protocol)
    on a page that has not saved yet (Chromium ignores the override once an origin has written)."""
    app = first_visit
    errors = (len(app.log.page_errors), len(app.log.console_errors))
    note = app.by_id("storage-note")
    expect(note).to_have_attribute("data-available", "true")
    cdp = app.context.new_cdp_session(app.page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": app.url.rstrip("/"), "quotaSize": 1})
    app.train(TINY_RUN)
    expect(note).to_have_attribute("data-available", "false")
    expect(note).to_contain_text("Could not save the model in this browser (the browser's storage for this page is full)")
    expect(note).to_contain_text("won't be kept across reloads")
    print(f"\nstorage full: {note.inner_text()}")
    assert app.attr("accuracy", "data-val-accuracy") != "" and app.body("model") == "trained"
    expect(app.by_id("message")).to_be_hidden()
    assert (len(app.log.page_errors), len(app.log.console_errors)) == errors  # nothing thrown, nothing logged
    app.page.reload()  # as the note says, the model was not kept
    app.wait_state("ready")
    assert app.body("model") == "untrained"


def test_a_damaged_pycnn_wheel_is_named_and_retry_installs_the_real_one(warm_visit):
    app = warm_visit
    app.context.route("**/wheels/pycnn-*.whl", fulfil_once(status=200, content_type="application/octet-stream",
                                                           body=b"PK\x03\x04 not a wheel"))
    app.page.goto(app.url)
    app.wait_state("error", timeout=READY_TIMEOUT_MS)
    expect(app.page.locator('[data-testid="stages"] [data-stage="pycnn"]')).to_have_attribute("data-status", "failed")
    expect(app.by_id("message")).to_contain_text("could not install pycnn-")
    expect(app.by_id("train-button")).to_be_disabled()
    app.by_id("retry-button").click()
    app.wait_state("ready", timeout=READY_TIMEOUT_MS)
    expect(app.by_id("message")).to_be_hidden()
    expect(app.by_id("train-button")).to_be_enabled()
