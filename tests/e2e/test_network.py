"""Build your own network: presets, editing layers with a live summary, networks that do not fit,
replacing a trained model only after asking, and a deeper network that trains, shows every layer
and is kept (IndexedDB, files, CPython's --arch)."""
import json
import os
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from e2e_support import ROOT, draw_digit

import pycnn
from pycnn.presets import PRESETS

QUICK_RUN = {"epochs-input": "1", "train-size-input": "2000", "batch-size-input": "16", "learning-rate-input": "0.01"}


def expect_kinds(app, expected):
    """Until the editor lists these layer kinds (the list is redrawn in the next animation frame)."""
    app.page.wait_for_function("""(expected) => JSON.stringify([...document.querySelectorAll('[data-testid="arch-layers"] > li')]
        .map((l) => l.dataset.kind)) === JSON.stringify(expected)""", arg=expected)


def wait_summary(app, total=None):
    """Until the summary shows a checked network (with `total` weights, when given)."""
    selector = '[data-testid="arch-summary"][data-state="ok"]'
    if total is not None:
        selector = f'[data-testid="arch-summary"][data-state="ok"][data-total-params="{total}"]'
    app.page.wait_for_selector(selector, state="attached")


def choose_preset(app, name):
    app.by_id("arch-preset-select").select_option(name)
    wait_summary(app, pycnn.presets.preset(name).count_params())


def test_each_preset_shows_its_layers_and_summary_and_becomes_the_untrained_model(app):
    for name in ("two-conv", "lenet", "seed"):
        choose_preset(app, name)
        config = PRESETS[name]
        expect_kinds(app, [layer["class"] for layer in config["layers"]])
        rows = app.page.eval_on_selector_all('[data-testid="arch-summary"] tbody tr',
                                             "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
        model = pycnn.presets.preset(name)
        assert [[r["name"] + f" ({r['class']})", "(" + ", ".join(map(str, r["output_shape"])) + ")", f"{r['params']:,}"]
                for r in model.summary_rows()] == rows
        # the model is untrained: the network changes at once, with fresh weights (its first layer's filters)
        filters = config["layers"][0]["config"]["filters"]
        app.page.wait_for_function(f"() => document.querySelectorAll('[data-testid=filters] canvas').length === {filters}")
        assert app.body("model") == "untrained"
        expect(app.by_id("arch-confirm")).to_be_hidden()
        expect(app.by_id("train-button")).to_be_enabled()
    assert app.log.page_errors == [] and app.log.console_errors == []


def test_editing_a_layer_updates_the_summary_and_adding_removing_moving_layers_work(app):
    choose_preset(app, "seed")
    app.by_id("arch-layer-0-filters").fill("4")  # 4 filters: 4*(9+1) + (13*13*4+1)*10
    wait_summary(app, 4 * 10 + (13 * 13 * 4 + 1) * 10)
    expect(app.by_id("arch-preset-select")).to_have_value("custom")
    app.by_id("add-layer-kind").select_option("Dense")
    app.by_id("add-layer-button").click()  # goes in before the output layer
    expect_kinds(app, ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "Dense"])
    wait_summary(app, 40 + (676 + 1) * 64 + (64 + 1) * 10)
    app.by_id("arch-layer-4-out_features").fill("32")
    wait_summary(app, 40 + (676 + 1) * 32 + (32 + 1) * 10)
    app.by_id("add-layer-kind").select_option("ReLU")
    app.by_id("add-layer-button").click()
    expect_kinds(app, ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "ReLU", "Dense"])
    app.by_id("arch-layer-5-remove").click()
    expect_kinds(app, ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "Dense"])
    app.by_id("arch-layer-2-up").click()  # pool before ReLU: same shapes, same weights
    expect_kinds(app, ["Conv2D", "MaxPool2D", "ReLU", "Flatten", "Dense", "Dense"])
    wait_summary(app, 40 + (676 + 1) * 32 + (32 + 1) * 10)
    expect(app.by_id("train-button")).to_be_enabled()
    assert app.body("model") == "untrained"


@pytest.mark.parametrize("edit, message", [
    (lambda app: app.by_id("arch-layer-3-remove").click(), "layer 4 (Dense) needs a flat input but gets (10, 13, 13)"),
    (lambda app: app.by_id("arch-layer-4-out_features").fill("7"), "layer 5 (Dense): the last layer must be a Dense layer with 10 units"),
    (lambda app: app.by_id("arch-layer-0-filters").fill("500"), "layer 1 (Conv2D): filters must be an int from 1 to 64, got 500"),
    (lambda app: app.by_id("arch-layer-0-filters").fill("2.5"), "layer 1 (Conv2D): filters must be an int from 1 to 64, got '2.5'"),
    (lambda app: app.by_id("arch-layer-2-down").click(),
     "layer 4 (MaxPool2D) works on images (channels, height, width) but gets the flat (6760,)"),
])
def test_a_network_that_does_not_fit_says_which_layer_and_why_and_train_stays_disabled(app, edit, message):
    app = app
    choose_preset(app, "seed")
    edit(app)
    expect(app.by_id("arch-error")).to_be_visible()
    expect(app.by_id("arch-error")).to_contain_text(message)
    expect(app.by_id("train-button")).to_be_disabled()
    app.page.evaluate("document.getElementById('train-form').requestSubmit()")  # the Enter key: nothing starts
    assert app.body("state") == "ready"
    choose_preset(app, "seed")  # back to a network that fits
    expect(app.by_id("arch-error")).to_be_hidden()
    expect(app.by_id("train-button")).to_be_enabled()


def test_a_network_too_big_for_the_page_is_refused(app):
    app = app
    choose_preset(app, "lenet")
    app.by_id("arch-layer-0-filters").fill("64")
    app.by_id("arch-layer-3-filters").fill("64")
    expect(app.by_id("arch-error")).to_contain_text("more than the 5 M the page trains in reasonable time; layer 4 (Conv2D)")
    expect(app.by_id("train-button")).to_be_disabled()
    choose_preset(app, "seed")


def test_changing_the_network_of_a_trained_model_asks_first(trained_app):
    app = trained_app
    accuracy = app.attr("accuracy", "data-val-accuracy")
    app.by_id("arch-preset-select").select_option("two-conv")
    wait_summary(app, 12810)
    confirm = app.by_id("arch-confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("replaces your trained model. Download model first")
    expect(app.by_id("train-button")).to_be_disabled()
    assert app.body("model") == "loaded" and app.attr("accuracy", "data-val-accuracy") == accuracy
    app.by_id("arch-revert").click()  # keep the trained one
    expect(confirm).to_be_hidden()
    expect(app.by_id("arch-preset-select")).to_have_value(pycnn.presets.DEFAULT_PRESET)
    expect(app.by_id("train-button")).to_be_enabled()
    app.by_id("arch-preset-select").select_option("two-conv")
    wait_summary(app, 12810)
    app.by_id("arch-apply").click()
    app.page.wait_for_selector('body[data-model="untrained"]', state="attached")
    expect(confirm).to_be_hidden()
    app.page.wait_for_function("() => document.querySelectorAll('[data-testid=filters] canvas').length === 16")
    expect(app.by_id("accuracy")).to_have_attribute("data-val-accuracy", "")  # redrawn in the next frame
    app.page.reload()  # the replaced model is not brought back
    app.wait_state("ready")
    assert app.body("model") == "untrained"


def test_a_two_conv_network_trains_shows_every_layer_and_is_kept(app, tmp_path, site_dir):
    choose_preset(app, "two-conv")
    app.fill(QUICK_RUN)
    app.by_id("train-button").click()
    app.wait_run_result("finished")
    assert float(app.attr("accuracy", "data-val-accuracy")) >= 0.85
    # the deeper conv layer's 32 filters over 16 maps, and the maps of both blocks for a drawing
    expect(app.page.locator('[data-testid="deeper-filters"] figure')).to_have_count(1)
    assert app.page.eval_on_selector('[data-testid="deeper-filters"] canvas', "c => [c.width, c.height]") == [32 * 4 - 1, 16 * 4 - 1]
    draw_digit(app.page, 7, (40, 30, 210))
    app.page.wait_for_function("() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion"
                               " === document.querySelector('[data-testid=draw-canvas]').dataset.version")
    assert app.attr("feature-maps", "data-blocks") == "2"
    assert app.page.locator('[data-testid="feature-maps"] canvas[data-kind="deeper"]').count() == 32
    # the file the page downloads is that network, in CPython too
    with app.page.expect_download() as info:
        app.by_id("download-model").click()
    path = tmp_path / "two-conv.npz"
    info.value.save_as(path)
    assert pycnn.load(str(path)).get_config() == PRESETS["two-conv"]
    # the network as JSON is what the CLI trains with --arch
    app.page.locator(".arch-json summary").click()  # "The model's network as JSON"
    expect(app.by_id("arch-json")).to_contain_text('"class": "Conv2D"')
    with app.page.expect_download() as info:
        app.by_id("arch-export").click()
    arch = tmp_path / "network.json"
    info.value.save_as(arch)
    assert json.loads(arch.read_text()) == PRESETS["two-conv"]
    out = tmp_path / "cli.npz"
    env = {**os.environ, "PYCNN_DATA": str(site_dir / "data"), "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "pycnn", "train", "--arch", str(arch), "--epochs", "1", "--train-size", "512",
                    "-o", str(out)], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    # a reload brings the two-conv model back, network and all
    app.wait_saved(1)
    accuracy = app.attr("accuracy", "data-val-accuracy")
    app.page.reload()
    app.wait_state("ready")
    assert app.body("model") == "restored" and app.attr("accuracy", "data-val-accuracy") == accuracy
    wait_summary(app, 12810)
    expect(app.by_id("arch-preset-select")).to_have_value("two-conv")
    # and the CLI's model of that network loads into the page
    app.load_model(out)
    expect(app.by_id("arch-preset-select")).to_have_value("two-conv")
    assert app.log.page_errors == [] and app.log.console_errors == []


def test_the_editor_is_locked_while_training(app):
    app.fill({"epochs-input": "3", "train-size-input": "8500"})
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    for testid in ("arch-preset-select", "add-layer-button", "arch-layer-0-filters", "arch-layer-0-remove"):
        expect(app.by_id(testid)).to_be_disabled()  # the fieldset around them is
    app.by_id("stop-button").click()
    app.wait_run_result("stopped")
    expect(app.by_id("arch-preset-select")).to_be_enabled()
    expect(app.by_id("arch-layer-0-filters")).to_be_enabled()
