"""Draw a digit and see why: a model trained by `python -m pycnn train` in CPython, loaded into
the page, reads digits drawn with real mouse strokes; feature maps, confusion matrix, mistakes."""
import os
import statistics
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from e2e_support import ROOT, draw_digit

# (digit, (left, top, size)) on the 280x280 canvas: full size, a quarter, off-centre, small
DRAWINGS = [
    (0, (20, 20, 240)), (1, (30, 30, 100)), (4, (120, 110, 150)), (7, (10, 150, 110)),
    (4, (15, 15, 90)), (7, (70, 40, 200)), (0, (150, 140, 120)), (1, (100, 20, 240)),
    (3, (60, 40, 200)), (2, (140, 20, 120)),
]
latencies = []


@pytest.fixture(scope="module")
def cli_model(site_dir, tmp_path_factory):
    """A model trained in CPython by the command line on the same bundled digits."""
    path = tmp_path_factory.mktemp("cli") / "cli-model.npz"
    env = {**os.environ, "PYCNN_DATA": str(site_dir / "data"), "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "pycnn", "train", "--data", "subset", "--epochs", "3", "--output", str(path)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    return path


@pytest.fixture(scope="module")
def app(open_site, cli_model):
    application = open_site()
    application.goto_ready()
    application.by_id("load-model").set_input_files(str(cli_model))
    application.page.wait_for_selector('body[data-model="loaded"]', state="attached", timeout=60_000)
    return application


def prediction(app):
    return app.by_id("prediction").inner_text().strip()


def test_model_from_cpython_scores_the_same_in_the_page(app, cli_model, site_dir):
    sys.path.insert(0, str(ROOT))
    import pycnn
    from pycnn import datasets
    x = datasets.read_idx_images(str(site_dir / "data" / "subset-images-idx3-ubyte.gz"))
    y = datasets.read_idx_labels(str(site_dir / "data" / "subset-labels-idx1-ubyte.gz"))
    _, _, x_ho, y_ho = datasets.train_test_split(x, y, test_size=1500, seed=0)
    expected = pycnn.load(str(cli_model)).evaluate(x_ho, y_ho)["accuracy"]
    assert float(app.attr("accuracy", "data-val-accuracy")) == pytest.approx(expected, abs=1e-9)
    assert expected >= 0.93


@pytest.mark.parametrize("digit, box", DRAWINGS)
def test_drawn_digit_is_read_correctly(app, digit, box):
    app.by_id("clear-button").click()
    expect(app.by_id("prediction")).to_have_text("")
    version = app.attr("feature-maps", "data-version") or "0"
    draw_digit(app.page, digit, box)
    app.page.wait_for_function(
        f"() => document.querySelector('[data-testid=feature-maps]').dataset.version !== '{version}'"
        " && document.querySelector('[data-testid=prediction]').dataset.source === 'drawing'")
    # the answer to the finished drawing (not a throttled mid-stroke one) settles quickly
    expect(app.by_id("prediction")).to_have_text(str(digit), timeout=5_000)
    rows = app.page.eval_on_selector_all('[data-testid="probabilities"] > *', "rs => rs.map(r => [r.dataset.digit, Number(r.dataset.probability)])")
    assert [d for d, _ in rows] == [str(d) for d in range(10)]
    assert sum(p for _, p in rows) == pytest.approx(1, abs=0.01)
    assert max(rows, key=lambda r: r[1])[0] == str(digit)
    assert app.attr("feature-maps", "data-shown") == "true"
    ink = app.page.eval_on_selector('[data-testid="model-input"]', """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++; return [c.width, c.height, n]; }""")
    assert ink[:2] == [28, 28] and ink[2] > 20
    latencies.append(int(app.attr("prediction", "data-latency-ms")))


def test_prediction_latency_is_reported(app):
    assert latencies
    print(f"\nrequest to rendered bars: median {statistics.median(latencies)} ms, max {max(latencies)} ms over {len(latencies)} drawings")
    assert statistics.median(latencies) < 1_000  # the 100 ms target is a benchmark number, not a timed test


def test_clear_empties_prediction_and_bars(app):
    draw_digit(app.page, 7, (40, 40, 200))
    expect(app.by_id("prediction")).to_have_text("7")
    app.by_id("clear-button").click()
    expect(app.by_id("prediction")).to_have_text("")
    probabilities = app.page.eval_on_selector_all('[data-testid="probabilities"] > *', "rs => rs.map(r => r.dataset.probability)")
    assert probabilities == [""] * 10
    expect(app.by_id("prediction-note")).to_contain_text("Draw a digit")


def test_undo_removes_the_last_stroke(app):
    app.by_id("clear-button").click()
    draw_digit(app.page, 4, (40, 40, 200))  # two strokes
    expect(app.by_id("prediction")).to_have_text("4")
    app.by_id("undo-button").click()
    app.by_id("undo-button").click()
    expect(app.by_id("prediction")).to_have_text("")


def test_confusion_matrix_sums_to_the_heldout_count(app):
    matrix = app.by_id("confusion-matrix")
    expect(matrix).not_to_have_attribute("data-total", "0")
    assert matrix.get_attribute("data-total") == "1500"
    cells = app.page.eval_on_selector_all('[data-testid="confusion-matrix"] td', "cs => cs.map(c => Number(c.dataset.count))")
    assert len(cells) == 100 and sum(cells) == 1500
    correct = sum(cells[i * 11] for i in range(10))
    assert correct / 1500 == pytest.approx(float(app.attr("accuracy", "data-val-accuracy")), abs=1e-9)


def test_clicking_a_mistake_inspects_it(app):
    first = app.page.locator('[data-testid="mistakes"] button').first
    expect(first).to_be_visible()
    predicted = first.get_attribute("data-predicted")
    first.click()
    expect(app.by_id("prediction")).to_have_attribute("data-source", "heldout")
    expect(app.by_id("prediction")).to_have_text(predicted)
    expect(app.by_id("prediction-note")).to_contain_text(f"labelled {first.get_attribute('data-true')}")
    assert app.attr("feature-maps", "data-shown") == "true"


def test_scribbling_during_training_answers_the_latest_drawing_and_stays_responsive(app):
    page = app.page
    app.by_id("clear-button").click()
    for testid, value in {"epochs-input": "5", "train-size-input": "8500", "batch-size-input": "32", "learning-rate-input": "0.0003"}.items():
        app.by_id(testid).fill(value)
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    page.wait_for_function("() => Number(document.querySelector('[data-testid=progress]').dataset.step) >= 5", timeout=60_000)
    sent_before = int(app.attr("prediction", "data-requests") or 0)
    started = page.evaluate("performance.now()")
    draw_digit(page, 7, (40, 30, 210), steps=40)  # ~120 pointer moves
    expect(app.by_id("prediction")).to_have_text("7", timeout=10_000)
    ended = page.evaluate("performance.now()")
    sent = int(app.attr("prediction", "data-requests")) - sent_before
    assert page.evaluate("document.body.dataset.state") == "training"
    app.by_id("stop-button").click()
    page.wait_for_selector('body[data-state="ready"][data-run-result="stopped"]', state="attached", timeout=30_000)
    probe = app.probe()
    overlaps = lambda e: e["start"] + e["duration"] >= started and e["start"] <= ended  # noqa: E731
    tasks = [round(t["duration"]) for t in probe["longTasks"] if overlaps(t)]
    frames = [f for f in probe["frames"] if overlaps(f) and f["blocking"] > 0]
    print(f"\nscribble during training: {sent} prediction requests for ~120 pointer moves; "
          f"long tasks {tasks or 'none'}; blocking animation frames {frames or 'none'}")
    assert 1 <= sent <= 60  # throttled and latest-only: not one request per move
    # page scripts never block 50 ms (wall-clock long tasks alone can come from a starved CPU; see test_site)
    assert all(f["blocking"] < 50 for f in frames), frames


def test_untrained_model_does_not_guess(app):
    app.by_id("reset-button").click()
    app.page.wait_for_selector('body[data-model="untrained"]', state="attached")
    app.by_id("clear-button").click()
    draw_digit(app.page, 1, (40, 40, 200))
    expect(app.by_id("prediction-note")).to_contain_text("untrained")
    assert prediction(app) == ""
    assert app.attr("confusion-matrix", "data-total") == "0"
    assert app.log.page_errors == [] and app.log.console_errors == []
