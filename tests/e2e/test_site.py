"""The page in real Chromium against the built site: load, train, stop, persist, files, validation.

The tests share one page (module fixture `app`) and run in file order: the training test
leaves a trained model that the stop, reload and file tests build on.
"""
import os

import pytest
from playwright.sync_api import expect

from e2e_support import TRAIN_TIMEOUT_MS

# 1 epoch on 2,000 digits; batch 16 and lr 0.01 reach ~88-90% held-out in CPython over seeds
QUICK_RUN = {"epochs-input": "1", "train-size-input": "2000", "batch-size-input": "16", "learning-rate-input": "0.01"}
LONG_TASK_LIMIT_MS = 50


def fill_settings(app, values):
    for testid, value in values.items():
        app.by_id(testid).fill(value)


def filter_images(app):
    return app.page.eval_on_selector_all('[data-testid="filters"] canvas', "cs => cs.map(c => c.toDataURL())")


def wait_run_result(app, result, timeout=TRAIN_TIMEOUT_MS):
    app.page.wait_for_selector(f'body[data-state="ready"][data-run-result="{result}"]', state="attached", timeout=timeout)


def test_page_reaches_ready_without_errors_and_only_talks_to_its_origin(app):
    page = app.page
    assert page.evaluate("document.body.dataset.state") == "ready"
    stages = page.eval_on_selector_all('[data-testid="stages"] li', "ls => ls.map(l => [l.dataset.stage, l.dataset.status])")
    assert stages == [[s, "done"] for s in ("python", "numpy", "pycnn", "data", "ready")]
    assert int(app.attr("status", "data-load-ms")) > 0
    assert app.log.console_errors == [] and app.log.page_errors == []
    assert app.probe()["csp"] == []
    assert app.log.requests, "no requests were seen"
    foreign = [u for u in app.log.requests if not u.startswith(app.url) and not u.startswith(("data:", "blob:"))]
    assert foreign == []
    assert any(u.endswith("pyodide.asm.wasm") for u in app.log.requests)
    assert any("/wheels/pycnn-" in u for u in app.log.requests)
    csp = page.get_attribute('meta[http-equiv="Content-Security-Policy"]', "content")
    assert "default-src 'self'" in csp and "'unsafe-eval'" not in csp and "'unsafe-inline'" not in csp


def test_untrained_model_says_so_and_estimates_an_epoch(app):
    assert app.page.evaluate("document.body.dataset.model") == "untrained"
    assert "Untrained model" in app.by_id("model-state").inner_text()
    assert app.attr("accuracy", "data-val-accuracy") == ""
    app.page.wait_for_selector('[data-testid="estimate"][data-seconds-per-epoch]', state="attached", timeout=60_000)
    assert float(app.attr("estimate", "data-seconds-per-epoch")) > 0
    assert len(app.page.query_selector_all('[data-testid="filters"] canvas')) == 10


@pytest.mark.parametrize("testid, value", [
    ("epochs-input", ""), ("epochs-input", "0"), ("epochs-input", "-1"), ("epochs-input", "2.5"), ("epochs-input", "1e9"),
    ("batch-size-input", "0"), ("batch-size-input", "5000"),
    ("learning-rate-input", ""), ("learning-rate-input", "NaN"), ("learning-rate-input", "abc"),
    ("learning-rate-input", "-0.1"), ("learning-rate-input", "0"), ("learning-rate-input", "1e6"),
    ("train-size-input", "0"), ("train-size-input", "100000"), ("seed-input", "-1"), ("seed-input", "1.5"),
])
def test_invalid_input_disables_train_with_a_message(app, testid, value):
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
    assert app.page.evaluate("document.body.dataset.state") == "ready"
    assert app.attr("loss-chart", "data-points") == points
    field.fill(good)
    expect(app.by_id("train-button")).to_be_enabled()
    expect(error).to_be_hidden()


def test_batch_larger_than_training_set_is_refused(app):
    fill_settings(app, {"train-size-input": "20", "batch-size-input": "32"})
    expect(app.by_id("train-button")).to_be_disabled()
    expect(app.by_id("batch-size-error")).to_contain_text("training digits")
    fill_settings(app, {"train-size-input": "8500", "batch-size-input": "32"})
    expect(app.by_id("train-button")).to_be_enabled()


def test_train_one_epoch_on_2000_digits(app):
    page = app.page
    before = filter_images(app)
    fill_settings(app, QUICK_RUN)
    started = page.evaluate("performance.now()")
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    wait_run_result(app, "finished")
    ended = page.evaluate("performance.now()")
    page.wait_for_function("() => document.querySelector('[data-testid=loss-chart]').dataset.points === '125'")

    chart = app.by_id("loss-chart")
    assert int(chart.get_attribute("data-points")) >= 2
    assert float(chart.get_attribute("data-last-loss")) < float(chart.get_attribute("data-first-loss"))
    assert app.attr("accuracy-chart", "data-points") == "1"
    accuracy = float(app.attr("accuracy", "data-val-accuracy"))
    assert accuracy >= 0.85
    assert app.by_id("accuracy").inner_text() == f"{accuracy * 100:.1f}%"
    assert app.attr("progress", "data-epoch") == "1" and app.attr("progress", "data-step") == "125"
    after = filter_images(app)
    assert len(after) == 10 and sum(a != b for a, b in zip(before, after)) >= 8
    assert page.evaluate("document.body.dataset.model") == "trained"
    app.training_window = (started, ended)
    print(f"\ntraining took {(ended - started) / 1000:.1f} s at {app.attr('progress', 'data-images-per-second')} images/s")
    assert app.log.console_errors == [] and app.log.page_errors == []
    expect(app.by_id("confusion-matrix")).to_have_attribute("data-total", "1500")  # the page is complete
    app.screenshot("trained-page.png")


def long_tasks(app, window):
    """Long tasks (Long Tasks API) and script-attributed long animation frames inside window."""
    started, ended = window
    probe = app.probe()
    assert "longTaskError" not in probe
    overlaps = lambda e: e["start"] + e["duration"] >= started and e["start"] <= ended  # noqa: E731
    tasks = [round(t["duration"]) for t in probe["longTasks"] if overlaps(t)]
    frames = [f for f in probe["frames"] if overlaps(f) and f["blocking"] > 0]
    return tasks, frames


def test_longest_main_thread_task_while_training_is_under_50_ms(app):
    """Measured on the training run above. The Long Tasks API times tasks by the wall clock, so when
    other processes starve the 2 cores a task can exceed 50 ms with no page script running long; then
    (and only then) one more run is measured. Page scripts that block 50 ms fail at once."""
    windows = [app.training_window]
    for attempt in range(3):
        tasks, frames = long_tasks(app, windows[-1])
        print(f"\nrun {attempt + 1}: long tasks {tasks or 'none'}; blocking animation frames {frames or 'none'}")
        assert all(f["blocking"] < LONG_TASK_LIMIT_MS for f in frames), frames
        if max(tasks, default=0) < LONG_TASK_LIMIT_MS:
            return
        fill_settings(app, {"epochs-input": "1", "train-size-input": "2000", "batch-size-input": "16", "learning-rate-input": "0.0005"})
        started = app.page.evaluate("performance.now()")
        app.by_id("train-button").click()
        app.wait_state("training", timeout=10_000)
        wait_run_result(app, "finished")
        windows.append((started, app.page.evaluate("performance.now()")))
    pytest.fail(f"every measured training run had a main-thread task of {LONG_TASK_LIMIT_MS} ms or more")


def test_stop_during_an_epoch_stops_promptly_and_keeps_the_model(app):
    page = app.page
    accuracy_before = float(app.attr("accuracy", "data-val-accuracy"))
    fill_settings(app, {"epochs-input": "2", "train-size-input": "8500", "batch-size-input": "32", "learning-rate-input": "0.002"})
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    page.wait_for_function("() => Number(document.querySelector('[data-testid=progress]').dataset.step) >= 20", timeout=60_000)
    app.by_id("stop-button").click()
    wait_run_result(app, "stopped", timeout=30_000)
    progress = app.by_id("progress")
    step = int(progress.get_attribute("data-step"))
    per_epoch = int(progress.get_attribute("data-batches-per-epoch"))
    assert 20 <= step < per_epoch, "stopped inside the first epoch"
    latency = float(progress.get_attribute("data-stop-latency-ms"))
    after_stop = int(progress.get_attribute("data-batches-after-stop"))
    print(f"\nstop: {after_stop} batch(es) finished after the click, ready again after {latency:.0f} ms")
    # Counted from progress messages the page received after the click: the chunk in flight
    # (~50 ms of batches) plus at most one chunk already posted but not yet handled; no further chunk starts.
    assert after_stop <= 16
    assert latency < 2_000  # includes the held-out evaluation and the checkpoint
    # the model is kept: still trained, accuracy still shown, Train continues from it
    assert page.evaluate("document.body.dataset.model") == "trained"
    assert float(app.attr("accuracy", "data-val-accuracy")) >= accuracy_before - 0.05
    assert not app.by_id("train-button").is_disabled()
    assert app.log.console_errors == []


def test_reload_restores_the_trained_model(app):
    accuracy = app.attr("accuracy", "data-val-accuracy")
    points = app.attr("loss-chart", "data-points")
    epochs = app.attr("accuracy-chart", "data-points")
    filters = filter_images(app)
    app.page.reload()
    app.wait_state("ready")
    assert app.page.evaluate("document.body.dataset.model") == "restored"
    assert app.attr("accuracy", "data-val-accuracy") == accuracy
    assert app.attr("loss-chart", "data-points") == points
    assert app.attr("accuracy-chart", "data-points") == epochs
    app.page.wait_for_function("() => document.querySelector('[data-testid=filters]').dataset.version !== '0'")
    assert filter_images(app) == filters


def test_download_then_load_round_trips(app, tmp_path):
    accuracy = app.attr("accuracy", "data-val-accuracy")
    with app.page.expect_download() as info:
        app.by_id("download-model").click()
    download = info.value
    assert download.suggested_filename == "pycnn-model.npz"
    path = tmp_path / "model.npz"
    download.save_as(path)
    assert path.stat().st_size > 1000

    app.by_id("reset-button").click()
    app.page.wait_for_selector('body[data-model="untrained"]', state="attached")
    assert app.attr("accuracy", "data-val-accuracy") == ""

    app.by_id("load-model").set_input_files(str(path))
    app.page.wait_for_selector('body[data-model="loaded"]', state="attached", timeout=30_000)
    assert app.attr("accuracy", "data-val-accuracy") == accuracy
    assert "model.npz" in app.by_id("model-state").inner_text()


@pytest.mark.parametrize("name, payload", [
    ("random.npz", os.urandom(4096)),
    ("empty.npz", b""),
    ("text.npz", b"this is not a model\n" * 50),
    ("fake-zip.npz", b"PK\x03\x04" + b"\x00" * 200),
    ("huge.npz", b"\x00" * (21 * 1024 * 1024)),  # refused by size before it is read
])
def test_corrupt_model_file_is_refused_and_the_model_kept(app, name, payload):
    accuracy = app.attr("accuracy", "data-val-accuracy")
    model = app.page.evaluate("document.body.dataset.model")
    app.by_id("load-model").set_input_files(files=[{"name": name, "mimeType": "application/octet-stream", "buffer": payload}])
    message = app.by_id("message")
    app.page.wait_for_selector('[data-testid="message"][data-kind="error"]', state="visible", timeout=30_000)
    assert name in message.inner_text() and "unchanged" in message.inner_text()
    assert app.attr("accuracy", "data-val-accuracy") == accuracy
    assert app.page.evaluate("document.body.dataset.model") == model
    assert app.page.evaluate("document.body.dataset.state") == "ready"
    message.locator(".dismiss").click()


def test_truncated_model_file_is_refused(app, tmp_path):
    with app.page.expect_download() as info:
        app.by_id("download-model").click()
    data = open(info.value.path(), "rb").read()
    accuracy = app.attr("accuracy", "data-val-accuracy")
    app.by_id("load-model").set_input_files(files=[{"name": "cut.npz", "mimeType": "application/octet-stream", "buffer": data[: len(data) // 2]}])
    app.page.wait_for_selector('[data-testid="message"][data-kind="error"]', state="visible", timeout=30_000)
    assert app.attr("accuracy", "data-val-accuracy") == accuracy
    app.by_id("message").locator(".dismiss").click()


def test_diverging_run_is_stopped_and_the_weights_restored(app):
    accuracy = app.attr("accuracy", "data-val-accuracy")
    model = app.page.evaluate("document.body.dataset.model")
    fill_settings(app, {"epochs-input": "1", "train-size-input": "2000", "batch-size-input": "32", "learning-rate-input": "10"})
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    app.page.wait_for_selector('body[data-state="ready"][data-run-result]', state="attached", timeout=TRAIN_TIMEOUT_MS)
    assert app.page.evaluate("document.body.dataset.runResult") == "diverged"
    message = app.by_id("message")
    expect(message).to_have_attribute("data-kind", "warning")
    expect(message).to_contain_text("smaller learning rate")
    assert app.attr("accuracy", "data-val-accuracy") == accuracy  # back to the weights the run started from
    assert app.page.evaluate("document.body.dataset.model") == model
    message.locator(".dismiss").click()
    fill_settings(app, {"learning-rate-input": "0.01"})


def test_train_pressed_twice_starts_one_run(app):
    points = int(app.attr("loss-chart", "data-points"))
    epochs = int(app.attr("accuracy-chart", "data-points"))
    fill_settings(app, {"epochs-input": "1", "train-size-input": "256", "batch-size-input": "32", "learning-rate-input": "0.001"})
    app.by_id("train-button").dblclick()
    wait_run_result(app, "finished")
    app.page.wait_for_function(f"() => document.querySelector('[data-testid=loss-chart]').dataset.points === '{points + 8}'")
    assert app.attr("accuracy-chart", "data-points") == str(epochs + 1)  # 256 digits / 32 per batch, once
    expect(app.by_id("message")).to_be_hidden()


def test_reload_mid_epoch_restores_the_last_completed_epoch(app):
    page = app.page
    epochs_before = int(app.attr("accuracy-chart", "data-points"))
    fill_settings(app, {"epochs-input": "3", "train-size-input": "2000", "batch-size-input": "16", "learning-rate-input": "0.002"})
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    # first epoch of this run done and saved (the checkpoint follows the epoch message), second under way
    page.wait_for_function(f"() => Number(document.querySelector('[data-testid=accuracy-chart]').dataset.points) === {epochs_before + 1}"
                           " && Number(document.querySelector('[data-testid=progress]').dataset.step) > 135", timeout=120_000)
    saved_accuracy = app.attr("accuracy-chart", "data-last-val-accuracy")
    page.reload()
    app.wait_state("ready")
    assert page.evaluate("document.body.dataset.model") != "untrained"
    assert app.attr("accuracy-chart", "data-points") == str(epochs_before + 1)
    assert float(app.attr("accuracy", "data-val-accuracy")) == pytest.approx(float(saved_accuracy), abs=1e-9)


def test_no_console_errors_after_all_of_the_above(app):
    assert app.log.page_errors == []
    # a refused file is reported on the page, not as a console error
    assert app.log.console_errors == []
    assert app.probe()["csp"] == []
