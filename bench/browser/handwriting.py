#!/usr/bin/env python3
"""Real handwriting in the page: UNIPEN pen digits replayed as mouse strokes on the drawing canvas.

    python -m bench.browser.handwriting --unipen FILE --train            # one click on Train, then draw
    python -m bench.browser.handwriting --unipen FILE --model m.npz --count 500
    python -m bench.browser.handwriting --unipen FILE --model fresh.npz --train   # train another network

--unipen is the UNIPEN digits JSON (not part of the project). Builds dist/ when needed
(sitebuild.build), serves it on 127.0.0.1 (sitebuild.make_server) and drives headless Debian Chromium
through Playwright (bench/browser/harness.py). The model comes from --model (the page's Load model file input) or --train
(one click on Train with the page's default settings, timed until body[data-state=ready]
[data-run-result=finished]; the model is then downloaded to score it in CPython), or both: the
page trains the model it loaded, so an untrained file of another network (python -m bench.recipes
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
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import sitebuild
from bench import handwriting, real_mnist
from bench.browser import harness
from bench.strokes import paint

CANVAS_ALPHA = """
(canvas) => {
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const alpha = new Array(canvas.width * canvas.height);
  for (let i = 0; i < alpha.length; i++) alpha[i] = rgba[4 * i + 3];
  return alpha;
}
"""


def train_in_page(page, workdir, log):
    """One click on Train with the page's defaults -> (seconds, page accuracy, downloaded model path)."""
    train = page.get_by_test_id("train-button")
    page.wait_for_function("() => !document.querySelector('[data-testid=train-button]').disabled",
                           timeout=harness.READY_TIMEOUT_MS)
    train.click()
    page.wait_for_selector("body[data-state=ready][data-run-result=finished]", state="attached",
                           timeout=harness.TRAIN_TIMEOUT_MS)
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
                           timeout=harness.READY_TIMEOUT_MS)
    field.set_input_files(str(path))
    page.wait_for_function("() => document.querySelector('[data-testid=accuracy]').dataset.valAccuracy",
                           timeout=60_000)
    page.wait_for_selector("body[data-state=ready]", state="attached")
    accuracy = float(page.get_by_test_id("accuracy").get_attribute("data-val-accuracy"))
    log(f"  loaded {path}: page's held-out accuracy {accuracy:.2%}")
    return accuracy


def replay(page, replay_set, log):
    """Every drawing of replay_set on the canvas -> per drawing: digit read, canvas alpha, received strokes, seconds."""
    canvas = page.get_by_test_id("draw-canvas")
    canvas.evaluate(harness.RECORD_POINTS)
    out = []
    for n, strokes in enumerate(replay_set.drawings):
        start = time.perf_counter()
        read, points = harness.draw_and_read(page, canvas, strokes)
        if read < 0:  # counted as nothing read
            log(f"  digit {n}: no answer")
        alpha = np.array(canvas.evaluate(CANVAS_ALPHA), dtype=np.uint8).reshape(handwriting.CANVAS, handwriting.CANVAS)
        out.append({"read": read, "alpha": alpha, "received": harness.received_strokes(points),
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
    parser.add_argument("--save-model", metavar="FILE", help="also keep the page's model (with --train) as FILE, "
                        "e.g. for python -m bench.handwriting --model FILE, which replays every digit in CPython")
    run = harness.Run(parser, argv, __spec__.name)
    args, log = run.args, run.log
    if not (args.model or args.train):
        parser.error("give --model FILE, --train, or both")

    import pycnn
    from playwright.sync_api import sync_playwright

    replay_set = handwriting.Replay(args.unipen, args.seed, args.count, args.spacing)
    log(replay_set.describe())
    harness.build_site(args.out, log)
    result = {"command": run.command, "count": len(replay_set.labels)}
    with tempfile.TemporaryDirectory(prefix="pycnn-handwriting-") as tmp, \
            harness.serving(sitebuild.make_server(args.out)) as url, sync_playwright() as p:
        browser = harness.launch(p, args.chromium)
        result["chromium"] = browser.version
        context, page, errors = harness.open_app(browser, url, accept_downloads=True)
        log(f"Chromium {browser.version}; page ready in {page.evaluate('window.__bench.readyAt') / 1000:.1f} s")
        if args.model:
            model_path = Path(args.model)
            result["page_accuracy"] = load_in_page(page, model_path, log)
        if args.train:
            result["train_s"], result["page_accuracy"], model_path = train_in_page(page, tmp, log)
            result["load_average_after_train"] = harness.load_average()
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

    reads = np.array([d["read"] for d in drawn])
    result.update(compare(model, replay_set, drawn))
    result["reads"] = reads.tolist()
    result["seconds_per_digit"] = float(np.median([d["seconds"] for d in drawn]))
    result["points_per_digit"] = float(np.mean([sum(len(s) for s in d["received"]) for d in drawn]))
    try:
        x_test, y_test = real_mnist.test_set()
        result["mnist_test"] = model.evaluate(x_test, y_test)["accuracy"]
    except ValueError as e:
        log(f"no real MNIST test digits: {e}")

    r = result
    lines = [run.header("pycnn handwriting in the page", r["chromium"]), f"command: {run.command}",
             replay_set.describe()]
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
    run.finish(lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
