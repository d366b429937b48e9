"""See inside one step: pointing at a feature-map cell shows the arithmetic that made it (checked
against CPython), the saliency map comes with every reading and answers "why not a …?", one
training step on the digit shown can be taken again, undone exactly or kept across a reload, and
the page shows (and exports) its network and settings as Python.

The shared page comes back to its baseline before each test (`app`, `trained_app`): the steps
change the model, Reset brings back the untrained one.
"""

import pytest
from playwright.sync_api import expect

from e2e_support import draw_digit
from test_accessibility import violations

from pycnn import Conv2D
from pycnn.presets import DEFAULT_PRESET, PRESETS, preset
from pycnn.page import Client, Session

DEFAULT_CONVS = [spec["config"] for spec in PRESETS[DEFAULT_PRESET]["layers"] if spec["class"] == "Conv2D"]

MAPS = '[data-testid="feature-maps"]'
NEWER = "(v) => Number(document.querySelector('[data-testid=conv-arithmetic]').dataset.version) > v"
PROBABILITIES = "document.querySelector('[data-testid=probabilities]').dataset.values"


@pytest.fixture(scope="module")
def seed_network_model(tmp_path_factory):
    """The seed post's network (one conv layer), fresh weights: the other end from the page's default."""
    path = tmp_path_factory.mktemp("seed") / "seed.npz"
    preset("seed", seed=3).save(str(path))
    return path


def show_heldout(app, label):
    """Show the first held-out digit of `label` (none is drawn) -> its held-out index."""
    app.by_id("heldout-digit-select").select_option(str(label))
    app.by_id("heldout-next-button").click()
    expect(app.by_id("prediction")).to_have_attribute("data-source", "heldout")
    expect(app.by_id("prediction-note")).to_contain_text(f"labelled {label}")
    return int(app.attr("prediction", "data-index"))


def arithmetic(app):
    """The numbers of the cell shown, from [data-testid=conv-arithmetic]'s data-* attributes."""
    data = app.page.eval_on_selector('[data-testid="conv-arithmetic"]', "el => ({...el.dataset})")
    ints = {key: int(data[key]) for key in ("layer", "channel", "row", "col", "version")}
    floats = {key: float(data[key]) if data[key] != "" else None for key in ("sum", "bias", "conv", "relu", "pooled")}
    return {**ints, **floats, "grid": data["grid"]}


def shown_version(app):
    return int(app.attr("conv-arithmetic", "data-version"))


def hover_cell(app, canvas, row, col):
    """Move the mouse onto cell (row, col) of a feature-map canvas and wait for its arithmetic."""
    before = shown_version(app)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()  # the border box: the cells are in the content box, inside the border
    width, height, border, inner_w, inner_h = canvas.evaluate(
        "c => [c.width, c.height, c.clientLeft, c.clientWidth, c.clientHeight]")
    x, y = box["x"] + border + (col + 0.5) * inner_w / width, box["y"] + border + (row + 0.5) * inner_h / height
    app.page.mouse.move(x, y)
    app.page.wait_for_function(NEWER, arg=before)
    return arithmetic(app)


def check_sum(cell):
    assert cell["sum"] + cell["bias"] == pytest.approx(cell["conv"], rel=1e-12, abs=1e-12)
    assert cell["relu"] == max(0.0, cell["conv"])


def cpython_session(site_dir, model_path):
    """The page's Session in CPython, on the same digits, with the model file the page loaded (a Client of it)."""
    data = site_dir / "data"
    images, labels = data / "subset-images-idx3-ubyte.gz", data / "subset-labels-idx1-ubyte.gz"
    session = Client(Session.from_files(str(images), str(labels), 1500, 0))
    session("load", model_path.read_bytes())
    return session


def probabilities(app):
    """The probabilities of the reading shown, exactly (float32 values as JavaScript prints them)."""
    return app.attr("probabilities", "data-values")


def step(app, steps):
    """Press Step and wait until the page shows step number `steps`."""
    app.by_id("step-button").click()
    expect(app.by_id("step-loss")).to_have_attribute("data-steps", str(steps))
    return app.page.eval_on_selector('[data-testid="step-loss"]', "el => ({...el.dataset})")


@pytest.mark.parametrize("network", ["cli", "seed"])
def test_a_cell_of_every_conv_layer_and_a_step_show_the_numbers_cpython_computes(app, network, cli_model,
                                                                                 seed_network_model, site_dir):
    path = cli_model if network == "cli" else seed_network_model
    app.load_model(path)
    index = show_heldout(app, 3)
    session = cpython_session(site_dir, path)
    session("inspect_heldout", index=index)
    model = session.session.current.model
    layers = [i for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D)]
    assert app.attr("feature-maps", "data-blocks") == str(len(layers))
    for n, layer in enumerate(layers):
        if n == 0:
            canvas = app.page.locator(f'{MAPS} .fm-grid canvas[data-kind="relu"][data-filter="2"]')
        else:
            canvas = app.page.locator(f'{MAPS} .fm-block[data-layer="{layer}"] canvas[data-filter="5"]')
        height, width = canvas.evaluate("c => [c.height, c.width]")
        row, col = height // 2, width // 3
        cell = hover_cell(app, canvas, row, col)
        channel = int(canvas.get_attribute("data-filter"))
        where = (cell["layer"], cell["channel"], cell["row"], cell["col"], cell["grid"])
        assert where == (layer, channel, row, col, "activated")
        check_sum(cell)
        expected = session("arithmetic", layer=layer, channel=cell["channel"], row=row, col=col)
        assert cell["conv"] == pytest.approx(expected["conv"], rel=1e-5, abs=1e-6)  # deeper inputs: float32 maps
        activated = model.activations(session.session.current.inspected[None])[layer + 1][0, cell["channel"], row, col]
        assert cell["relu"] == pytest.approx(float(activated), abs=1e-5)  # the map's own value, to float32 rounding
        assert cell["pooled"] is None or cell["pooled"] >= cell["relu"]
        top, left, bottom, right = map(int, app.attr("receptive-field", "data-rect").split(","))
        assert (top, left, bottom, right) == tuple(expected["receptive_field"])
        expect(app.by_id("receptive-field")).to_be_visible()
    # a pooled cell: explained by the conv cell that won its window
    pooled = app.page.locator(f'{MAPS} .fm-grid canvas[data-kind="pool"][data-filter="1"]')
    cell = hover_cell(app, pooled, 6, 6)
    assert cell["grid"] == "pooled" and cell["pooled"] == cell["relu"]
    assert 12 <= cell["row"] <= 13 and 12 <= cell["col"] <= 13  # in the 2x2 window of pooled cell (6, 6)
    check_sum(cell)
    # the keyboard: a map takes the focus, the arrow keys move over its cells and on to the next map
    first = app.page.locator(f'{MAPS} .fm-grid canvas[data-kind="relu"][data-filter="0"]')
    width = first.evaluate("c => c.width")
    before = shown_version(app)
    first.focus()
    app.page.wait_for_function(NEWER, arg=before)
    start = arithmetic(app)
    assert start["channel"] == 0
    for _ in range(width - start["col"]):
        app.page.keyboard.press("ArrowRight")
    expect(app.by_id("conv-arithmetic")).to_have_attribute("data-channel", "1")
    expect(app.by_id("conv-arithmetic")).to_have_attribute("data-col", "0")
    assert app.page.evaluate("document.activeElement.dataset.filter") == "1"
    check_sum(arithmetic(app))
    assert violations(app) == [], "a cell's arithmetic shown"
    # one step on that digit: the loss and every conv layer's filter gradients are CPython's
    shown = step(app, 1)
    lr = float(app.by_id("learning-rate-input").input_value())
    expected = session("try_step", label=3, lr=lr, optimizer="adam")  # the page's label and settings
    assert float(shown["loss"]) == pytest.approx(expected["loss"], rel=1e-5)
    assert float(shown["lossAfter"]) == pytest.approx(expected["loss_after"], rel=1e-4, abs=1e-6)
    figures = app.page.locator('[data-testid="step-filter-grads"] figure.step-layer')
    expect(figures).to_have_count(len(layers))
    convs = [entry for entry in expected["layers"] if entry["class"] == "Conv2D"]
    for figure, entry in zip(figures.all(), convs):
        norms = [float(v) for v in figure.get_attribute("data-filter-gradient-norms").split(",")]
        assert norms == pytest.approx(entry["filter_gradient_norm"].tolist(), rel=1e-4, abs=1e-7)
    assert app.log.page_errors == [] and app.log.console_errors == []


SALIENCY_PIXELS = "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"


def test_the_saliency_map_comes_with_every_reading_and_answers_why_not(trained_app):
    app = trained_app
    draw_digit(app.page, 7, (40, 30, 210))
    app.page.wait_for_function("() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion"
                               " === document.querySelector('[data-testid=draw-canvas]').dataset.version")
    read = app.attr("prediction", "data-digit")
    expect(app.by_id("saliency")).to_have_attribute("data-digit", read)
    saliency = app.by_id("saliency")
    pixels = saliency.evaluate(SALIENCY_PIXELS)
    assert len(set(pixels)) > 10 and float(saliency.get_attribute("data-max-abs")) > 0  # a map, not a blank canvas
    expect(app.by_id("saliency-note")).to_contain_text("gradient of the score")
    other = "3" if read != "3" else "5"
    app.by_id("why-not-select").select_option(other)
    expect(saliency).to_have_attribute("data-digit", other)
    assert saliency.evaluate(SALIENCY_PIXELS) != pixels
    expect(app.by_id("saliency-note")).to_contain_text(f"the probability of {other}")
    # another reading brings the map of the digit it reads
    version = int(saliency.get_attribute("data-version"))
    show_heldout(app, 4)
    expect(saliency).to_have_attribute("data-digit", app.attr("prediction", "data-digit"))
    assert int(saliency.get_attribute("data-version")) > version
    expect(app.by_id("why-not-select")).to_have_value("")
    assert app.log.page_errors == [] and app.log.console_errors == []


def test_a_step_shows_its_loss_and_gradients_and_undo_restores_the_exact_probabilities(trained_app):
    app = trained_app
    expect(app.by_id("step-button")).to_be_disabled()  # no digit shown yet
    app.fill({"learning-rate-input": "0.001"})
    show_heldout(app, 4)
    before = probabilities(app)
    expect(app.by_id("step-label")).to_have_value("4")  # a held-out digit's own label
    first = step(app, 1)
    assert float(first["lossAfter"]) < float(first["loss"])
    assert float(first["probabilityAfter"]) > float(first["probabilityBefore"])
    expect(app.by_id("step-loss")).to_contain_text("Loss on this digit")
    expect(app.by_id("step-loss")).to_contain_text("Adam's first step")
    # each conv layer: filter, gradient and change; Adam's first step moves each weight by the learning rate
    grads = app.by_id("step-filter-grads")
    expect(grads).to_have_attribute("data-layers", str(len(DEFAULT_CONVS)))
    layer = grads.locator("figure.step-layer").first
    filters = DEFAULT_CONVS[0]["filters"]  # of the first layer, over 1 input channel: 9 weights each
    norms = [float(v) for v in layer.get_attribute("data-filter-update-norms").split(",")]
    assert len(norms) == filters and all(0 <= n <= 0.001 * 3 * (1 + 1e-4) for n in norms)  # 9 weights: at most 3 * lr
    gradients = [float(g) for g in layer.get_attribute("data-filter-gradient-norms").split(",")]
    moved = [n > 0 for n in norms]
    assert moved == [g > 0 for g in gradients] and sum(moved) >= filters // 2  # a filter dead to this digit stays
    for kind in ("weights", "gradient", "update", "update-norms"):
        assert layer.locator(f'canvas[data-kind="{kind}"]').evaluate("c => c.width") == filters * 4 - 1
    # the reading shown is the stepped model's
    app.page.wait_for_function(f"(p) => {PROBABILITIES} !== p", arg=before)
    expect(app.by_id("step-button")).to_have_text("Step again")
    second = step(app, 2)
    assert float(second["loss"]) == pytest.approx(float(first["lossAfter"]), rel=1e-5)
    assert violations(app) == [], "a step shown"
    # at a phone's width the section (and the saliency map by the input) fits the screen
    app.page.set_viewport_size({"width": 412, "height": 900})
    wide = app.page.evaluate("""() => [...document.querySelectorAll('.inside *, .input-col *')]
        .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5).map((e) => e.tagName + '.' + e.className)""")
    assert wide == [], "wider than the phone's screen"
    app.page.set_viewport_size({"width": 1280, "height": 800})
    app.by_id("step-undo").click()
    expect(app.by_id("step-loss")).to_have_attribute("data-steps", "0")
    expect(app.by_id("step-loss")).to_contain_text("exactly as before the 2 steps")
    app.page.wait_for_function(f"(p) => {PROBABILITIES} === p", arg=before)
    expect(app.by_id("step-undo")).to_be_disabled()
    assert app.log.page_errors == [] and app.log.console_errors == []


def test_keep_keeps_the_stepped_model_across_a_reload(trained_app):
    app = trained_app
    app.fill({"learning-rate-input": "0.003"})
    index = show_heldout(app, 2)
    before = probabilities(app)
    app.by_id("step-label").select_option("8")  # teach it something else: the reading moves visibly
    step(app, 1)
    after = step(app, 2)
    # the reading after the second step: its probability of 8 is the step's "after"
    app.page.wait_for_function("""(p) => {
        const values = document.querySelector('[data-testid=probabilities]').dataset.values;
        return values && Math.abs(Number(values.split(',')[8]) - p) < 1e-5; }""", arg=float(after["probabilityAfter"]))
    stepped = probabilities(app)
    assert stepped != before
    saves = app.measurements().get("saves", 0)
    app.by_id("step-keep").click()
    expect(app.by_id("step-loss")).to_contain_text("Kept 2 steps")
    app.page.wait_for_function("(n) => (window.pycnnProbe.read().saves ?? 0) > n", arg=saves)
    app.page.reload()
    app.wait_state("ready")
    assert app.body("model") == "restored"
    expect(app.by_id("model-state")).to_contain_text("Plus 2 single steps kept")
    assert show_heldout(app, 2) == index
    assert probabilities(app) == stepped
    assert app.log.page_errors == [] and app.log.console_errors == []


def test_step_is_refused_while_training(trained_app):
    app = trained_app
    show_heldout(app, 1)
    expect(app.by_id("step-button")).to_be_enabled()
    app.fill({"epochs-input": "1", "train-size-input": "8500", "batch-size-input": "32"})
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    expect(app.by_id("step-button")).to_be_disabled()
    expect(app.by_id("step-label")).to_be_disabled()
    app.by_id("stop-button").click()
    app.wait_run_result("stopped")
    expect(app.by_id("step-button")).to_be_enabled()


def test_the_python_code_is_the_current_network_and_settings_and_exports_as_a_script(app, tmp_path):
    code = app.by_id("python-code")
    first = DEFAULT_CONVS[0]
    expect(code).to_contain_text(f"Conv2D(in_channels=1, filters={first['filters']}, kernel_size={first['kernel_size']})")
    app.fill({"epochs-input": "3"})
    expect(code).to_contain_text("epochs=3,")
    app.by_id("arch-preset-select").select_option("seed")
    expect(code).to_contain_text("Conv2D(in_channels=1, filters=10, kernel_size=3)")
    expect(code).to_contain_text("Dense(in_features=1690, out_features=10)")
    with app.page.expect_download() as info:
        app.by_id("export-python").click()
    assert info.value.suggested_filename == "train_pycnn.py"
    path = tmp_path / "train_pycnn.py"
    info.value.save_as(path)
    script = path.read_text(encoding="utf-8")
    compile(script, str(path), "exec")  # runs in CPython: tests/test_explain.py runs such scripts
    assert "Dense(in_features=1690, out_features=10)" in script and "epochs=3" in script
    assert app.log.page_errors == [] and app.log.console_errors == []


def test_on_a_phone_tapping_a_cell_shows_its_arithmetic_within_the_screen(phone, cli_model):
    phone.load_model(cli_model)
    show_heldout(phone, 7)
    canvas = phone.page.locator(f'{MAPS} .fm-grid canvas[data-kind="relu"][data-filter="4"]')
    canvas.scroll_into_view_if_needed()
    width, height = canvas.evaluate("c => [c.clientWidth, c.clientHeight]")  # the box a tap's position is in
    before = shown_version(phone)
    canvas.tap(position={"x": width * 20.5 / 26, "y": height * 9.5 / 26})  # cell (9, 20) of the 26x26 map
    phone.page.wait_for_function(NEWER, arg=before)
    cell = arithmetic(phone)
    assert (cell["layer"], cell["channel"], cell["row"], cell["col"]) == (0, 4, 9, 20)
    check_sum(cell)
    wide = phone.page.evaluate("""() => [...document.querySelectorAll('.inside *, .input-col *')]
        .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5).map((e) => e.tagName + '.' + e.className)""")
    assert wide == [], "wider than the phone's screen"
    assert phone.log.page_errors == [] and phone.log.console_errors == []
