#!/usr/bin/env python3
"""Real handwriting in the page: UNIPEN pen digits replayed as mouse strokes on the drawing canvas.

    python bench/browser/bench_handwriting.py --unipen FILE --train            # one click on Train, then draw
    python bench/browser/bench_handwriting.py --unipen FILE --model m.npz --count 500
    python bench/browser/bench_handwriting.py --unipen FILE --model fresh.npz --train   # train another network

--unipen is the UNIPEN digits JSON (not part of the project). Builds dist/ when needed
(build.build), serves it on 127.0.0.1 (build.make_server) and drives headless Debian Chromium
through Playwright. The model comes from --model (the page's Load model file input) or --train
(one click on Train with the page's default settings, timed until body[data-state=ready]
[data-run-result=finished]; the model is then downloaded to score it in CPython), or both: the
page trains the model it loaded, so an untrained file of another network (bench/recipes.py
--init DIR writes them) measures one click on Train for that network in the page.

Each digit is placed exactly as bench/handwriting.py places it (digit i depends only on --seed and
i), drawn with page.mouse (down, a move per point, up) on [data-testid=draw-canvas], and read when
[data-testid=prediction] answers the drawing's last version (its data-answered-version equals the
canvas' data-version; data-digit is the digit read); Clear before the next one. Prints the page's
accuracy overall, per digit and per contributor, and how the page compares with CPython on the same
drawings: the page's canvas pixels against bench/strokes.py paint() of the points the canvas received,
and the page's answer against CPython's (paint, pycnn.preprocess.to_mnist, the same model).
"""
import argparse
import datetime
import functools
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: this process scores the model too

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


# bench_browser.py: its build.py (loaded by path), launch flags, timeouts and page timing script
_spec = importlib.util.spec_from_file_location("pycnn_bench_browser", HERE / "bench_browser.py")
bench_browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_browser)
build, load_module = bench_browser.build, bench_browser.load_module
sys.path.insert(0, str(ROOT / "bench"))
import handwriting  # noqa: E402
from strokes import paint  # noqa: E402

ANSWER_TIMEOUT_MS = 15_000

# What the canvas received: every pointer event on it in canvas pixels, computed the way
# web/sketch.js does (position in the element's box, scaled to the canvas' width and height).
RECORD_POINTS = """
(canvas) => {
  window.__points = [];
  const record = (type) => (e) => {
    const rect = canvas.getBoundingClientRect();
    for (const p of type === "move" ? (e.getCoalescedEvents?.() || [e]) : [e])
      window.__points.push([type, (p.clientX - rect.left) / rect.width * canvas.width,
                            (p.clientY - rect.top) / rect.height * canvas.height]);
  };
  canvas.addEventListener("pointerdown", record("down"));
  canvas.addEventListener("pointermove", record("move"));
  canvas.addEventListener("pointerup", record("up"));
}
"""

CANVAS_ALPHA = """
(canvas) => {
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const alpha = new Array(canvas.width * canvas.height);
  for (let i = 0; i < alpha.length; i++) alpha[i] = rgba[4 * i + 3];
  return alpha;
}
"""

ANSWERED = """
() => {
  const canvas = document.querySelector('[data-testid=draw-canvas]');
  const answer = document.querySelector('[data-testid=prediction]');
  return answer.dataset.answeredVersion === canvas.dataset.version && answer.dataset.digit !== "";
}
"""


def received_strokes(points):
    """Recorded pointer events -> strokes as the canvas drew them (down starts one, moves extend it)."""
    strokes = []
    for kind, x, y in points:
        if kind == "down":
            strokes.append([(x, y)])
        elif kind == "move" and strokes and strokes[-1] is not None:
            strokes[-1].append((x, y))
        elif kind == "up" and strokes:
            strokes.append(None)  # moves after an up, until the next down, draw nothing
    return [s for s in strokes if s]


def open_page(browser, url, log):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.add_init_script(bench_browser.TIMING_SCRIPT)  # when Train was clicked and the run's result came
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "index.html")
    page.wait_for_selector("body[data-state=ready]", state="attached", timeout=bench_browser.READY_TIMEOUT_MS)
    log(f"  page ready in {page.evaluate('window.__bench.readyAt') / 1000:.1f} s")
    return context, page, errors


def train_in_page(page, workdir, log):
    """One click on Train with the page's defaults -> (seconds, page accuracy, downloaded model path)."""
    train = page.get_by_test_id("train-button")
    page.wait_for_function("() => !document.querySelector('[data-testid=train-button]').disabled",
                           timeout=bench_browser.READY_TIMEOUT_MS)
    train.click()
    page.wait_for_selector("body[data-state=ready][data-run-result=finished]", state="attached",
                           timeout=bench_browser.TRAIN_TIMEOUT_MS)
    page.wait_for_function("() => window.__bench.runResultAt !== null")
    marks = page.evaluate("window.__bench")
    seconds = (marks["runResultAt"] - marks["trainClickAt"]) / 1000
    accuracy = float(page.get_by_test_id("accuracy").get_attribute("data-val-accuracy"))
    log(f"  one click on Train: finished in {seconds:.1f} s, page's held-out accuracy {accuracy:.2%}")
    page.wait_for_function("() => !document.querySelector('[data-testid=download-model]').disabled")
    with page.expect_download() as download:
        page.get_by_test_id("download-model").click()
    path = Path(workdir) / "page-model.npz"
    download.value.save_as(path)
    return seconds, accuracy, path


def load_in_page(page, path, log):
    """--model through the page's Load model file input -> the page's held-out accuracy."""
    field = page.get_by_test_id("load-model")
    page.wait_for_function("() => !document.querySelector('[data-testid=load-model]').disabled",
                           timeout=bench_browser.READY_TIMEOUT_MS)
    field.set_input_files(str(path))
    page.wait_for_function("() => document.querySelector('[data-testid=accuracy]').dataset.valAccuracy",
                           timeout=60_000)
    page.wait_for_selector("body[data-state=ready]", state="attached")
    accuracy = float(page.get_by_test_id("accuracy").get_attribute("data-val-accuracy"))
    log(f"  loaded {path}: page's held-out accuracy {accuracy:.2%}")
    return accuracy


def draw(page, canvas, strokes):
    """Strokes in canvas pixels as real mouse strokes -> the pointer events the canvas received."""
    canvas.scroll_into_view_if_needed()
    page.evaluate("window.__points = []")
    size = int(canvas.get_attribute("width"))
    for stroke in strokes:
        rect = canvas.bounding_box()  # read per stroke: the page's layout may move the canvas a little
        sx, sy = rect["width"] / size, rect["height"] / size
        points = [(rect["x"] + x * sx, rect["y"] + y * sy) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point)
        page.mouse.up()
    return page.evaluate("window.__points")


def replay(page, replay_set, log):
    """Every drawing of replay_set on the canvas -> per drawing: digit read, canvas alpha, received strokes, seconds."""
    canvas = page.get_by_test_id("draw-canvas")
    canvas.evaluate(RECORD_POINTS)
    out = []
    for n, strokes in enumerate(replay_set.drawings):
        page.get_by_test_id("clear-button").click()
        start = time.perf_counter()
        points = draw(page, canvas, strokes)
        try:
            page.wait_for_function(ANSWERED, timeout=ANSWER_TIMEOUT_MS, polling=20)
            read = int(page.get_by_test_id("prediction").get_attribute("data-digit"))
        except Exception as e:  # no answer to this drawing: counted as nothing read
            log(f"  digit {n}: no answer ({type(e).__name__})")
            read = -1
        alpha = np.array(canvas.evaluate(CANVAS_ALPHA), dtype=np.uint8).reshape(handwriting.CANVAS, handwriting.CANVAS)
        out.append({"read": read, "alpha": alpha, "received": received_strokes(points),
                    "seconds": time.perf_counter() - start})
        if (n + 1) % 50 == 0:
            right = np.mean([o["read"] == lab for o, lab in zip(out, replay_set.labels)])
            log(f"  {n + 1} drawn: {right:.1%} read correctly")
    return out


def compare(model, replay_set, drawn):
    """The page against CPython on the same drawings: pixels, model inputs and answers."""
    from pycnn import preprocess
    page_reads = np.array([d["read"] for d in drawn])
    cpython_reads = model.predict(replay_set.x)
    cpython_reads[np.all(replay_set.x == 0, axis=(1, 2, 3))] = -1
    pixel_diff, ink_diff, input_diff, from_canvas, from_received = [], [], [], [], []
    for d, planned in zip(drawn, replay_set.x):
        page_alpha = d["alpha"] / 255
        ours = paint(d["received"], handwriting.CANVAS)  # the points the canvas got, painted in CPython
        diff = np.abs(page_alpha - ours)
        ink = (page_alpha > 0) | (ours > 0)
        pixel_diff.append(diff[ink].mean() if ink.any() else 0.0)
        ink_diff.append(abs(page_alpha.sum() - ours.sum()) / max(page_alpha.sum(), 1e-9))
        page_input = preprocess.to_mnist(page_alpha)
        ours_input = preprocess.to_mnist(ours)
        if page_input is not None and ours_input is not None:
            input_diff.append(np.abs(page_input - ours_input).max())
        from_canvas.append(-1 if page_input is None else int(model.predict(page_input[None])[0]))
        from_received.append(-1 if ours_input is None else int(model.predict(ours_input[None])[0]))
    return {
        "cpython_accuracy": float(np.mean(cpython_reads == replay_set.labels)),
        "agree_planned": float(np.mean(page_reads == cpython_reads)),
        "agree_received": float(np.mean(page_reads == np.array(from_received))),
        "agree_canvas": float(np.mean(page_reads == np.array(from_canvas))),
        "pixel_mean_abs_diff": float(np.mean(pixel_diff)), "pixel_mean_abs_diff_max": float(np.max(pixel_diff)),
        "ink_rel_diff_median": float(np.median(ink_diff)), "ink_rel_diff_max": float(np.max(ink_diff)),
        "input_max_abs_diff_median": float(np.median(input_diff)), "input_max_abs_diff_max": float(np.max(input_diff)),
        "cpython_reads": cpython_reads.tolist(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unipen", required=True, metavar="FILE", help="the UNIPEN digits JSON (not part of the project)")
    parser.add_argument("--model", help="load this model file into the page (Load model)")
    parser.add_argument("--train", action="store_true",
                        help="one click on Train with the page's defaults (after loading --model, if given)")
    parser.add_argument("--count", type=int, default=300, help="digits to draw, picked at random (default 300; about 1 s each)")
    parser.add_argument("--seed", type=int, default=0, help="placement seed (default 0, as bench/handwriting.py)")
    parser.add_argument("--spacing", type=float, default=handwriting.SPACING,
                        help=f"canvas px between points (default {handwriting.SPACING:g})")
    parser.add_argument("--out", default="dist", help="site directory to build and serve (default dist/)")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--save-model", metavar="FILE", help="also keep the page's model (with --train) as FILE, "
                        "e.g. for bench/handwriting.py --model FILE, which replays every digit in CPython")
    parser.add_argument("--chromium", default=os.environ.get("PYCNN_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)
    if not (args.model or args.train):
        parser.error("give --model FILE, --train, or both")

    import pycnn
    from playwright.sync_api import sync_playwright

    log = functools.partial(print, flush=True)
    started = time.perf_counter()
    given = list(argv if argv is not None else sys.argv[1:])
    given = [("FILE" if a == args.unipen and i and given[i - 1] == "--unipen" else a) for i, a in enumerate(given)]
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *given])  # the data file's place stays private
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    replay_set = handwriting.Replay(args.unipen, args.seed, args.count, args.spacing)
    log(replay_set.describe())
    log("building the site (a no-op when nothing changed)...")
    summary = build.build(args.out, quiet=True)
    server = build.make_server(args.out)
    threading.Thread(target=server.serve_forever, name="site", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    result = {"command": command, "count": len(replay_set.labels)}
    try:
        with tempfile.TemporaryDirectory(prefix="pycnn-handwriting-") as tmp, sync_playwright() as p:
            executable = args.chromium if args.chromium and Path(args.chromium).exists() else None
            browser = p.chromium.launch(executable_path=executable, args=bench_browser.LAUNCH_FLAGS, headless=True)
            result["chromium"] = browser.version
            log(f"Chromium {browser.version}, {summary['out_dir']}")
            context, page, errors = open_page(browser, url, log)
            if args.model:
                model_path = Path(args.model)
                result["page_accuracy"] = load_in_page(page, model_path, log)
            if args.train:
                result["train_s"], result["page_accuracy"], model_path = train_in_page(page, tmp, log)
                result["load_average_after_train"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
            if args.save_model:
                shutil.copyfile(model_path, args.save_model)
            model = pycnn.load(model_path)
            result["model_bytes"] = model_path.stat().st_size
            result["model_layers"] = [type(layer).__name__ for layer in model.layers]
            log(f"drawing {len(replay_set.labels)} digits on the canvas with the mouse...")
            drawn = replay(page, replay_set, log)
            result["console_errors"] = errors
            context.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()

    reads = np.array([d["read"] for d in drawn])
    result.update(compare(model, replay_set, drawn))
    result["reads"] = reads.tolist()
    result["seconds_per_digit"] = float(np.median([d["seconds"] for d in drawn]))
    result["points_per_digit"] = float(np.mean([sum(len(s) for s in d["received"]) for d in drawn]))
    try:
        x_test, y_test = load_module("pycnn_bench_real_mnist", ROOT / "bench" / "real_mnist.py").test_set()
        result["mnist_test"] = model.evaluate(x_test, y_test)["accuracy"]
    except ValueError as e:
        log(f"no real MNIST test digits: {e}")

    r = result
    lines = [f"pycnn handwriting in the page, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
             f"(Chromium {r['chromium']}, load average {load_before} before / "
             + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " after)", f"command: {command}", replay_set.describe()]
    if args.model:
        lines.append(f"model {args.model} loaded with Load model" + (", then trained by the page" if args.train else ""))
    if args.train:
        lines.append(f"one click on Train with the page's defaults: finished in **{r['train_s']:.1f} s** (target <= 60 s; "
                     f"load average {r['load_average_after_train']} after); page's held-out accuracy {r['page_accuracy']:.2%}")
    else:
        lines.append(f"page's held-out accuracy {r['page_accuracy']:.2%}")
    lines.append(f"model: {' '.join(r['model_layers'])} ({r['model_bytes']:,} bytes)"
                 + (f"; on the 10,000 real MNIST test digits (CPython): **{r['mnist_test']:.2%}**" if "mnist_test" in r else ""))
    lines += handwriting.report(replay_set.labels, reads, replay_set.contributors, title="the page read correctly")
    lines.append(f"CPython on the same placements (paint, to_mnist, the same model): {r['cpython_accuracy']:.2%}; the page "
                 f"and CPython read the same digit for **{r['agree_planned']:.1%}** of the drawings")
    lines.append(f"the canvas against paint() of the points it received: mean |alpha difference| over inked pixels "
                 f"{r['pixel_mean_abs_diff'] * 255:.1f}/255 (worst drawing {r['pixel_mean_abs_diff_max'] * 255:.1f}), "
                 f"total ink within {r['ink_rel_diff_median']:.1%} (median; worst {r['ink_rel_diff_max']:.1%}); "
                 f"after to_mnist the 28x28 inputs differ by at most {r['input_max_abs_diff_median']:.3f} (median drawing; "
                 f"worst {r['input_max_abs_diff_max']:.3f}); same answer {r['agree_received']:.1%}")
    lines.append(f"the page's answer against CPython's to_mnist + model on the page's own canvas pixels: same digit "
                 f"{r['agree_canvas']:.1%} (the worker's reading)")
    lines.append(f"{r['points_per_digit']:.0f} pointer events per digit; median {r['seconds_per_digit']:.2f} s per digit "
                 f"(clear, draw, answer); console errors: {len(r['console_errors'])}")
    print()
    print("\n".join(lines))
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
