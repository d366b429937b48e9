"""Stop, then Continue: the rest of the stopped run, in this visit or after a reload, ends with the weights of
the run never stopped, bit for bit (the page's model file, downloaded, in CPython); Reset ends it."""
import numpy as np
import pytest
from playwright.sync_api import expect

import pycnn
from e2e_support import TRAIN_TIMEOUT_MS, at_baseline

# 1 epoch of 32 batches of 64 (each split into 4 shards, however many workers), from the baseline's weights
# and seed: the same run every time. Stopped after about 10 batches.
RUN = {"epochs-input": "1", "train-size-input": "2000", "batch-size-input": "64", "learning-rate-input": "0.01"}
BATCHES = 32
STOP_AFTER = 10


def download_weights(app, path):
    """The model file the page downloads -> its weights, loaded in CPython."""
    with app.page.expect_download() as info:
        app.by_id("download-model").click()
    info.value.save_as(path)
    return pycnn.load(str(path)).get_weights()


def same_weights(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


def train_and_stop(app):
    """Train RUN and Stop it after STOP_AFTER batches or so -> the step it stopped at."""
    app.fill(RUN)
    app.by_id("train-button").click()
    steps = "Number(document.querySelector('[data-testid=progress]').dataset.step)"
    app.page.wait_for_function(f"() => {steps} >= {STOP_AFTER}", timeout=TRAIN_TIMEOUT_MS)
    app.by_id("stop-button").click()
    app.wait_run_result("stopped")
    step = int(app.attr("progress", "data-step"))
    assert STOP_AFTER <= step < BATCHES, "stopped part-way"
    return step


def offers_continue(app, step):
    """Continue is on offer, and says where the run goes on from."""
    button = app.by_id("continue-button")
    expect(button).to_be_enabled()
    assert button.get_attribute("data-step") == str(step) and button.get_attribute("data-total-steps") == str(BATCHES)
    expect(app.by_id("continue-note")).to_contain_text(
        f"Continue: the stopped run goes on from epoch 1 of 1, batch {step} of {BATCHES} "
        f"({BATCHES - step} batches left) with its own settings")


def continue_to_the_end(app):
    app.by_id("continue-button").click()
    app.wait_run_result("finished")
    assert app.attr("progress", "data-step") == str(BATCHES)
    expect(app.by_id("continue-button")).to_be_hidden()  # nothing left to continue
    expect(app.by_id("continue-note")).to_be_hidden()


@pytest.fixture(scope="module")
def never_stopped(shared_app, tmp_path_factory):
    """The weights of RUN never stopped, downloaded from the page (once per module)."""
    app = at_baseline(shared_app, "the run never stopped (test_continue.py's never_stopped)")
    app.train(RUN)
    assert app.attr("progress", "data-step") == str(BATCHES)
    expect(app.by_id("continue-button")).to_be_hidden()  # a run that finished leaves nothing to continue
    return download_weights(app, tmp_path_factory.mktemp("never-stopped") / "model.npz")


def test_stop_then_continue_ends_with_the_weights_of_the_run_never_stopped(app, never_stopped, tmp_path):
    step = train_and_stop(app)
    offers_continue(app, step)
    stopped = f"Stopped at epoch 1 of 1, batch {step} of {BATCHES}. Continue finishes this run as if it had never"
    expect(app.by_id("status")).to_contain_text(stopped)
    app.fill({"epochs-input": "5", "batch-size-input": "32"})  # the form's settings are a new run's, not Continue's
    continue_to_the_end(app)
    assert app.attr("loss-chart", "data-points") == str(BATCHES)  # every batch once, before and after the stop
    assert app.attr("accuracy-chart", "data-points") == "1"
    assert app.by_id("epochs-input").input_value() == "1"  # the form shows the settings of the run that went on
    assert same_weights(download_weights(app, tmp_path / "continued.npz"), never_stopped)
    assert app.log.console_errors == [] and app.log.page_errors == []


def test_a_reload_offers_continue_again_and_it_continues_exactly(app, never_stopped, tmp_path):
    step = train_and_stop(app)
    app.wait_saves(1)  # the model is kept on stop, with its run
    app.page.reload()
    app.wait_state("ready")
    assert app.body("model") == "restored"
    offers_continue(app, step)
    continue_to_the_end(app)
    assert same_weights(download_weights(app, tmp_path / "reloaded.npz"), never_stopped)
    assert app.log.console_errors == [] and app.log.page_errors == []


def test_reset_ends_the_stopped_run_and_says_so(app):
    train_and_stop(app)
    app.by_id("reset-button").click()
    app.page.wait_for_selector('body[data-model="untrained"]', state="attached")
    expect(app.by_id("continue-button")).to_be_hidden()
    expect(app.by_id("status")).to_contain_text("the stopped run cannot be continued")
