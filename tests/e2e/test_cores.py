"""Training on several cores: the Workers setting, helper workers sharing each batch's shards, and a
run that is the same, bit for bit, with one worker, with two, and with helpers that crash or end."""
import numpy as np
import pytest

import pycnn
from e2e_support import READY_TIMEOUT_MS, TRAIN_TIMEOUT_MS, helper_workers

# 1 epoch of 50 batches of 64 digits (the page splits each into 4 shards of 16), from the baseline's weights
# and with its seed (0): the same run each time
RUN = {"epochs-input": "1", "train-size-input": "3200", "batch-size-input": "64", "learning-rate-input": "0.01"}


def use_workers(app, count):
    """Choose `count` in the Workers setting and wait until that many are up (the page's own worker included)."""
    app.by_id("cores-select").select_option(str(count))
    app.page.wait_for_selector(f'body[data-workers="{count}"]', state="attached", timeout=READY_TIMEOUT_MS)


def train_and_download(app, folder, name):
    """Train RUN to its end, then the model file the page downloads -> its weights, loaded in CPython."""
    app.train(RUN)
    with app.page.expect_download() as info:
        app.by_id("download-model").click()
    path = folder / name
    info.value.save_as(path)
    return pycnn.load(str(path)).get_weights()


def same_weights(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


def end_quietly(worker, script):
    """Run `script` in a worker that it ends (the evaluation itself may then be cut off)."""
    try:
        worker.evaluate(script)
    except Exception:
        pass


@pytest.fixture(scope="module")
def one_worker(shared_app, tmp_path_factory):
    """The weights of RUN trained by the page's worker alone (Workers: 1), once per module."""
    from e2e_support import at_baseline
    app = at_baseline(shared_app, "the run with one worker (test_cores.py's one_worker)")
    use_workers(app, 1)
    weights = train_and_download(app, tmp_path_factory.mktemp("one-worker"), "one.npz")
    assert "1 worker" in app.page.locator('[data-testid="progress"] .progress-text').inner_text()
    return weights


def test_two_workers_train_the_weights_one_worker_trains_bit_for_bit(app, one_worker, tmp_path):
    use_workers(app, 2)
    weights = train_and_download(app, tmp_path, "two.npz")
    assert same_weights(weights, one_worker)
    assert "2 workers" in app.page.locator('[data-testid="progress"] .progress-text').inner_text()
    helpers = app.measurements()["workers"]["helpers"]
    assert len(helpers) == 1 and helpers[0]["tasks"] >= 40  # it computed its share of (nearly) every batch
    assert helpers[0]["heap_bytes"] > 10 * 2 ** 20 and helpers[0]["boot_ms"] > 0
    assert app.by_id("workers-note").is_hidden()
    assert app.log.console_errors == [] and app.log.page_errors == []


def test_helpers_that_crash_or_end_mid_run_leave_it_and_the_run_is_the_same(app, one_worker, tmp_path):
    """Four workers; during the run one helper crashes (an uncaught error) and another ends (self.close()):
    their shards are computed by the others, no batch is lost or repeated, and the page says so."""
    use_workers(app, 4)
    helpers = helper_workers(app.page)
    assert len(helpers) == 3
    app.fill(RUN)
    app.by_id("train-button").click()
    app.page.wait_for_function("() => Number(document.querySelector('[data-testid=progress]').dataset.step) >= 5",
                               timeout=TRAIN_TIMEOUT_MS)
    end_quietly(helpers[0], "setTimeout(() => { throw new Error('a crash for the test'); })")
    app.page.wait_for_selector('body[data-workers="3"]', state="attached", timeout=TRAIN_TIMEOUT_MS)
    end_quietly(helpers[1], "self.close()")
    app.page.wait_for_selector('body[data-workers="2"]', state="attached", timeout=TRAIN_TIMEOUT_MS)
    app.wait_run_result("finished")
    assert int(app.attr("progress", "data-step")) == 50  # every batch once
    with app.page.expect_download() as info:
        app.by_id("download-model").click()
    info.value.save_as(tmp_path / "four.npz")
    assert same_weights(pycnn.load(str(tmp_path / "four.npz")).get_weights(), one_worker)
    note = app.by_id("workers-note")
    assert note.is_visible() and note.get_attribute("data-left") == "2"
    assert "crashed: " in note.inner_text() or "stopped" in note.inner_text()
    assert app.body("workers") == "2"
    assert app.log.page_errors == []  # a helper's crash is not the page's


def test_stop_lands_after_the_batch_in_flight_with_helpers(app):
    use_workers(app, 2)
    app.fill({**RUN, "epochs-input": "3"})
    app.by_id("train-button").click()
    app.page.wait_for_function("() => Number(document.querySelector('[data-testid=progress]').dataset.step) >= 3",
                               timeout=TRAIN_TIMEOUT_MS)
    app.by_id("stop-button").click()
    app.wait_run_result("stopped")
    assert int(app.attr("progress", "data-batches-after-stop")) <= 1
    assert app.body("workers") == "2"  # the helper stays for the next run
