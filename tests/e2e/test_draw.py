"""Draw a digit and see why: a model trained by `python -m pycnn train` in CPython, loaded into
the page, reads digits drawn with real mouse strokes (and, on a phone-sized touch screen, with a
finger); feature maps, confusion matrix, mistakes."""
import os
import statistics
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from e2e_support import ROOT, draw_digit, main_thread_load, touch_digit

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


POINTER_TYPES = """
window.__pointerTypes = [];
addEventListener("pointerdown", (e) => window.__pointerTypes.push(e.pointerType), true);
"""


def test_on_a_phone_the_page_fits_and_a_digit_drawn_with_a_finger_is_read_without_scrolling(open_site, cli_model):
    phone = open_site(init_scripts=[POINTER_TYPES], has_touch=True, is_mobile=True,
                      viewport={"width": 412, "height": 900}, device_scale_factor=2)
    phone.goto_ready()
    width = phone.page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], f"the page is wider than the phone's screen: {width}"
    phone.by_id("load-model").set_input_files(str(cli_model))
    phone.page.wait_for_selector('body[data-model="loaded"]', state="attached", timeout=60_000)
    for digit, box in [(7, (40, 30, 200)), (4, (30, 40, 210))]:
        phone.by_id("clear-button").tap()
        expect(phone.by_id("prediction")).to_have_text("")
        phone.by_id("draw-canvas").scroll_into_view_if_needed()
        scroll = phone.page.evaluate("scrollY")
        touch_digit(phone.page, digit, box)
        expect(phone.by_id("prediction")).to_have_text(str(digit), timeout=5_000)
        assert phone.page.evaluate("scrollY") == scroll, "drawing scrolled the page"
    assert set(phone.page.evaluate("window.__pointerTypes")) == {"touch"}
    assert phone.log.console_errors == [] and phone.log.page_errors == []


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
    tasks, frames = main_thread_load(app.probe(), started, ended)
    print(f"\nscribble during training: {sent} prediction requests for ~120 pointer moves; "
          f"long tasks {tasks or 'none'}; blocking animation frames {frames or 'none'}")
    assert 1 <= sent <= 60  # throttled and latest-only: not one request per move
    # page scripts never run 50 ms in one frame (a frame or task can still last longer by the wall
    # clock when other processes starve the 2 cores; see test_site)
    assert all(f["scriptMs"] < 50 for f in frames), frames


def test_a_dot_is_too_little_ink_to_read(app):
    page = app.page
    app.by_id("clear-button").click()
    expect(app.by_id("prediction")).to_have_text("")
    requested = app.attr("prediction", "data-requested")
    canvas = app.by_id("draw-canvas")
    canvas.scroll_into_view_if_needed()
    rect = canvas.bounding_box()
    page.mouse.click(rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2)  # a tap: one dot of ink
    expect(app.by_id("prediction-note")).to_contain_text("Too little ink")
    app.by_id("clear-button").click()
    page.mouse.move(rect["x"] + 40, rect["y"] + 40)  # a dash shorter than the brush is wide
    page.mouse.down()
    page.mouse.move(rect["x"] + 45, rect["y"] + 42, steps=3)
    page.mouse.up()
    expect(app.by_id("prediction-note")).to_contain_text("Too little ink")
    assert prediction(app) == "" and app.attr("feature-maps", "data-shown") != "true"
    assert app.attr("prediction", "data-requested") == requested  # nothing was sent to the worker
    app.by_id("clear-button").click()
    draw_digit(page, 1, (60, 30, 220))
    expect(app.by_id("prediction")).to_have_text("1")


# ---- a burst of predictions while training (issue 5, item 5) ----
BURST_STROKES = 200
BURST_TRAIN_SIZE = 4000
BURST_RUN = {"epochs-input": "40", "train-size-input": str(BURST_TRAIN_SIZE), "batch-size-input": "32",
             "learning-rate-input": "0.0003"}
EPOCH_CLOCK = """() => {
  const el = document.querySelector('[data-testid=accuracy-chart]');
  window.__epochEnds = [];  // [performance.now(), epochs shown] each time the epoch count changes
  new MutationObserver(() => {
    const n = Number(el.dataset.points), last = window.__epochEnds[window.__epochEnds.length - 1];
    if (!last || last[1] !== n) window.__epochEnds.push([performance.now(), n]);
  }).observe(el, { attributes: true, attributeFilter: ['data-points'] });
}"""
COUNTERS = "() => Object.fromEntries(['requested', 'requests', 'answers', 'stale', 'workerMs'].map(k =>" \
           " [k, Number(document.querySelector('[data-testid=prediction]').dataset[k] || 0)]))"


def epochs_shown(page):
    return int(page.get_by_test_id("accuracy-chart").get_attribute("data-points"))


def wait_epochs(page, n):
    page.wait_for_function(f"() => Number(document.querySelector('[data-testid=accuracy-chart]').dataset.points) >= {n}",
                           timeout=120_000)


def epoch_end_times(page):
    return {n: t for t, n in page.evaluate("window.__epochEnds")}


# Strokes dispatched by a script in the page, one per animation frame (Chromium delivers real pointer
# moves once per frame too): pen down where the last stroke ended, one move across the canvas, pen
# up. Each stroke end asks for a prediction. Driving the page's own pointer handlers from inside the
# page keeps the test's automation out of the measurement: 600 DevTools round trips of Playwright's
# mouse cost this 2-core machine about a quarter of the training throughput by themselves.
BURST_DRIVER = """async ({ minStrokes, untilEpochs }) => {
  const canvas = document.querySelector('[data-testid=draw-canvas]');
  const chart = document.querySelector('[data-testid=accuracy-chart]');
  const point = (i) => [30 + (i * 37) % 220, 30 + (i * 53) % 220];  // canvas pixels (280 x 280)
  const send = (type, [x, y], buttons) => {
    const r = canvas.getBoundingClientRect(), s = r.width / canvas.width;
    canvas.dispatchEvent(new PointerEvent(type, {
      pointerId: 1, pointerType: 'mouse', isPrimary: true, button: type === 'pointermove' ? -1 : 0, buttons,
      clientX: r.left + x * s, clientY: r.top + y * s, bubbles: true, cancelable: true }));
  };
  const started = performance.now();
  let strokes = 0;
  while (strokes < minStrokes || Number(chart.dataset.points) < untilEpochs) {
    await new Promise(requestAnimationFrame);
    send('pointerdown', point(strokes), 1);
    send('pointermove', point(strokes + 1), 1);
    send('pointerup', point(strokes + 1), 0);
    strokes += 1;
  }
  return { strokes, started, ended: performance.now() };
}"""


def measure_burst(app, quiet_from):
    """Training images/s over the epoch after epoch `quiet_from` (nobody draws), then over the
    whole epochs that run while >= BURST_STROKES strokes are drawn; plus what the burst cost the page."""
    page = app.page
    wait_epochs(page, quiet_from + 1)
    before = page.evaluate(COUNTERS)
    burst = page.evaluate(BURST_DRIVER, {"minStrokes": BURST_STROKES, "untilEpochs": quiet_from + 3})
    latest = app.attr("draw-canvas", "data-version")
    page.wait_for_function(f"() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion === '{latest}'",
                           timeout=30_000)
    answered_at = page.evaluate("performance.now()")
    after = page.evaluate(COUNTERS)
    assert page.evaluate("document.body.dataset.state") == "training"
    ends = epoch_end_times(page)
    last = max(n for n, t in ends.items() if t <= burst["ended"])  # >= quiet_from + 3: whole epochs under the burst
    quiet = BURST_TRAIN_SIZE / ((ends[quiet_from + 1] - ends[quiet_from]) / 1000)
    loaded = (last - quiet_from - 1) * BURST_TRAIN_SIZE / ((ends[last] - ends[quiet_from + 1]) / 1000)
    tasks, frames = main_thread_load(app.probe(), burst["started"], answered_at)
    return {
        "strokes": burst["strokes"], "burst_s": (burst["ended"] - burst["started"]) / 1000,
        "epochs_under_burst": last - quiet_from - 1, "quiet": quiet, "loaded": loaded, "ratio": loaded / quiet,
        "counts": {k: after[k] - before[k] for k in after}, "frames": frames, "tasks": tasks,
        "longest_script_frame": max((f["scriptMs"] for f in frames), default=0),
        "latency": int(app.attr("prediction", "data-drawing-latency-ms")),
    }


def test_burst_of_200_predictions_while_training_answers_the_latest_drawing(app, record_property):
    """200+ strokes, one per frame, each asking for a prediction, while the page trains: the page
    keeps at most one prediction in flight and drops stale ones, answers the last drawing, keeps page
    scripts short, and trains at least half as fast as without the burst. Throughput is measured
    over whole epochs (4,000 digits + the held-out evaluation) by the page's clock."""
    page = app.page
    app.by_id("clear-button").click()
    for testid, value in BURST_RUN.items():
        app.by_id(testid).fill(value)
    page.evaluate(EPOCH_CLOCK)
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    first = epochs_shown(page) + 1  # the run's first epoch warms up; the next one is the quiet one
    runs = [measure_burst(app, first)]
    while runs[-1]["ratio"] < 0.5 and len(runs) < 3:
        # measured again before failing: when other processes oversubscribe the 2 cores, a window with two
        # busy page threads (drawing, training) loses more than one with only the worker busy
        runs.append(measure_burst(app, epochs_shown(page) + 1))
    r = runs[-1]

    # the answer to the latest drawing is right: a 7 drawn with the mouse after the burst, still training
    app.by_id("clear-button").click()
    drawn_from = page.evaluate("performance.now()")
    draw_digit(page, 7, (40, 30, 210))
    latest = app.attr("draw-canvas", "data-version")
    page.wait_for_function(f"() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion === '{latest}'",
                           timeout=30_000)
    expect(app.by_id("prediction")).to_have_text("7")
    seven_latency = int(app.attr("prediction", "data-drawing-latency-ms"))
    events = [e["duration"] for e in app.probe()["events"] if e["start"] >= drawn_from]
    assert page.evaluate("document.body.dataset.state") == "training"
    app.by_id("stop-button").click()
    page.wait_for_selector('body[data-state="ready"][data-run-result="stopped"]', state="attached", timeout=30_000)

    c = r["counts"]
    load = (f"main-thread tasks of 50 ms or more: {len(r['tasks'])} (longest {max(r['tasks'])} ms)" if r["tasks"]
            else "no main-thread task of 50 ms or more")
    load += (f", long animation frames with page scripts: {len(r['frames'])} (longest script time "
             f"{r['longest_script_frame']:.0f} ms)" if r["frames"] else ", no long animation frame with page scripts")
    figures = (f"burst of {r['strokes']} strokes in {r['burst_s']:.1f} s while training: {c['requested']} predictions "
               f"requested, {c['requests']} sent, {c['answers']} answered ({c['stale']} for an older drawing, dropped; "
               f"{c['workerMs'] / max(1, c['answers']):.0f} ms of worker time each); latest drawing answered "
               f"{r['latency']} ms after its last stroke; {load}; training {r['quiet']:,.0f} images/s "
               f"without, {r['loaded']:,.0f} with the burst ({r['ratio']:.0%}, {r['epochs_under_burst']} epochs under it)"
               + (f"; earlier tries {', '.join(format(t['ratio'], '.0%') for t in runs[:-1])}" if len(runs) > 1 else "")
               + f". A 7 drawn with the mouse right after: answered in {seven_latency} ms, slowest input event "
               f"{max(events, default=0):.0f} ms")
    print("\n" + figures)
    record_property("report", figures)
    assert c["requested"] >= BURST_STROKES  # every stroke end asked for a prediction
    assert c["requests"] == c["answers"]  # every request sent was answered: nothing lost or left queued
    assert c["requests"] < c["requested"]  # requests for drawings that changed before they could be sent were dropped
    assert all(f["scriptMs"] < 50 for f in r["frames"]), r["frames"]  # page scripts stay short
    assert r["latency"] < 5_000 and seven_latency < 5_000
    assert r["ratio"] >= 0.5, figures


def test_untrained_model_does_not_guess(app):
    app.by_id("reset-button").click()
    app.page.wait_for_selector('body[data-model="untrained"]', state="attached")
    app.by_id("clear-button").click()
    draw_digit(app.page, 1, (40, 40, 200))
    expect(app.by_id("prediction-note")).to_contain_text("untrained")
    assert prediction(app) == ""
    assert app.attr("confusion-matrix", "data-total") == "0"
    assert app.log.page_errors == [] and app.log.console_errors == []
