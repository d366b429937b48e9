#!/usr/bin/env python3
"""See inside one step, timed in the page: pointing at a feature-map cell to its arithmetic shown,
a prediction to its saliency map drawn, "why not a …?" to its map, and one Step.

    python bench/browser/bench_inside.py                    # the page's default network, 40 of each
    python bench/browser/bench_inside.py --preset two-conv --count 20
    python bench/browser/bench_inside.py --model m.npz --json out.json

Builds dist/ when needed (build.build), serves it on 127.0.0.1 (build.make_server) and drives
headless Debian Chromium through Playwright, as bench_handwriting.py does. The model is --model,
or the --preset network (default: the page's default) with fresh seed-0 weights, loaded with Load
model: the work per request does not depend on what the weights learned. The numbers are the
page's own (web/probe.js), each from the event that starts it to the frame that shows the answer:
- arithmetic: a pointermove onto a new cell of a feature map (cells picked at random over every
  conv layer's maps) to its arithmetic rendered (probe arithmetic_latency_ms);
- saliency: "Show one" (a held-out digit) sends `predict`; its reply carries the saliency map, drawn
  in the frame that draws the bars: the request to that frame (saliency_latency_ms); and "why not a
  …?" chosen to its map drawn (why_not_latency_ms);
- step: a click on Step to the step's loss and filter gradients rendered (step_latency_ms); before
  each click the page has finished what the previous step set off (the reading of the stepped model
  and the held-out analysis), so each click times one step; then "Step again at once": a click as
  soon as the button is enabled again, when that reading and analysis can still be in the worker.
Target: each < 100 ms (median).
"""
import argparse
import datetime
import functools
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("pycnn_bench_browser", HERE / "bench_browser.py")
bench_browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_browser)
build = bench_browser.build

TARGET_MS = 100
NEWER_ARITHMETIC = "(v) => Number(document.querySelector('[data-testid=conv-arithmetic]').dataset.version) > v"
TIMEOUT_MS = 30_000


def summary(values):
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return {"n": len(values), "median": statistics.median(values), "p90": p90, "min": values[0], "max": values[-1]}


def probe(page):
    return page.evaluate("() => window.pycnnProbe.read()")


def settle(page):
    """Until the page has answered what the last change of the weights set off: the reading and the analysis."""
    page.wait_for_function("""() => { const p = window.pycnnProbe.read();
        return document.querySelector('[data-testid=step-button]').disabled === false &&
               (p.analyses ?? 0) >= (window.__analysesWanted ?? 0); }""", timeout=TIMEOUT_MS)


def show_heldout(page):
    """Show the next held-out digit; wait until its saliency map is drawn -> the probe's latencies."""
    version = int(page.get_by_test_id("saliency").get_attribute("data-version"))
    page.get_by_test_id("heldout-next-button").click()
    page.wait_for_function("(v) => Number(document.querySelector('[data-testid=saliency]').dataset.version) > v",
                           arg=version, timeout=TIMEOUT_MS)
    return probe(page)


def time_arithmetic(page, count, rng):
    """Hover `count` random cells of every conv layer's maps -> [{layer, ms, worker_ms}]."""
    canvases = page.locator('[data-testid="feature-maps"] canvas[tabindex]')
    total = canvases.count()
    out = []
    sizes = canvases.evaluate_all(
        "cs => cs.map((c) => [c.width, c.height, c.clientLeft, c.clientWidth, c.clientHeight])")
    last = None
    for _ in range(count):
        pick = last
        while pick == last:  # a new cell: the one pointed at already is not asked for again
            index = rng.randrange(total)
            width, height, border, inner_w, inner_h = sizes[index]
            pick = (index, rng.randrange(height), rng.randrange(width))
        last = pick
        index, row, col = pick
        canvas = canvases.nth(index)
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        version = int(page.get_by_test_id("conv-arithmetic").get_attribute("data-version"))
        x = box["x"] + border + (col + 0.5) * inner_w / width  # the cells are inside the canvas' border
        page.mouse.move(x, box["y"] + border + (row + 0.5) * inner_h / height)
        page.wait_for_function(NEWER_ARITHMETIC, arg=version, timeout=TIMEOUT_MS)
        p = probe(page)
        out.append({"layer": int(page.get_by_test_id("conv-arithmetic").get_attribute("data-layer")),
                    "ms": p["arithmetic_latency_ms"], "worker_ms": p["arithmetic_worker_ms"]})
    return out


def time_why_not(page, count):
    out = []
    select = page.get_by_test_id("why-not-select")
    for i in range(count):
        version = int(page.get_by_test_id("saliency").get_attribute("data-version"))
        select.select_option(str(i % 10))
        page.wait_for_function("(v) => Number(document.querySelector('[data-testid=saliency]').dataset.version) > v",
                               arg=version, timeout=TIMEOUT_MS)
        out.append(probe(page)["why_not_latency_ms"])
    return out


def time_steps(page, count):
    out = []
    for i in range(count):
        settle(page)
        page.evaluate("""() => { window.__analysesWanted = (window.pycnnProbe.read().analyses ?? 0) + 1;
                                 window.pycnnProbe.set("step_latency_ms", null); }""")
        page.get_by_test_id("step-button").click()
        # the step is shown when the probe has its time (set in the frame that renders it)
        page.wait_for_function("() => window.pycnnProbe.read().step_latency_ms !== null", timeout=TIMEOUT_MS)
        assert page.get_by_test_id("step-loss").get_attribute("data-steps") == str(i + 1)
        p = probe(page)
        out.append({"ms": p["step_latency_ms"], "worker_ms": p["step_worker_ms"]})
    return out


def time_rapid_steps(page, count):
    """Step again as soon as the button can be pressed (the reading and analysis of the last step may be on the way)."""
    out = []
    first = int(page.get_by_test_id("step-loss").get_attribute("data-steps"))
    for i in range(count):
        page.wait_for_selector('[data-testid="step-button"]:not([disabled])', state="attached", timeout=TIMEOUT_MS)
        page.evaluate("() => window.pycnnProbe.set('step_latency_ms', null)")
        page.get_by_test_id("step-button").click()
        page.wait_for_function("() => window.pycnnProbe.read().step_latency_ms !== null", timeout=TIMEOUT_MS)
        assert page.get_by_test_id("step-loss").get_attribute("data-steps") == str(first + i + 1)
        out.append(probe(page)["step_latency_ms"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="load this model file (default: --preset with fresh weights)")
    parser.add_argument("--preset", help="a network of pycnn.presets (default: the page's default)")
    parser.add_argument("--count", type=int, default=40, help="measurements of each kind (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="which cells are pointed at (default 0)")
    parser.add_argument("--out", default="dist", help="site directory to build and serve (default dist/)")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--chromium", default=os.environ.get("PYCNN_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)

    import pycnn
    from pycnn.presets import DEFAULT_PRESET
    from playwright.sync_api import sync_playwright

    log = functools.partial(print, flush=True)
    started = time.perf_counter()
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])])
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    preset = args.preset or DEFAULT_PRESET
    rng = random.Random(args.seed)
    log("building the site (a no-op when nothing changed)...")
    build.build(args.out, quiet=True)
    server = build.make_server(args.out)
    threading.Thread(target=server.serve_forever, name="site", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    result = {"command": command}
    try:
        with tempfile.TemporaryDirectory(prefix="pycnn-inside-") as tmp, sync_playwright() as p:
            model_path = Path(args.model) if args.model else Path(tmp) / f"{preset}.npz"
            if not args.model:
                pycnn.preset(preset, seed=0).save(str(model_path))
            model = pycnn.load(str(model_path))
            result["model"] = " ".join(type(layer).__name__ for layer in model.layers)
            executable = args.chromium if args.chromium and Path(args.chromium).exists() else None
            browser = p.chromium.launch(executable_path=executable, args=bench_browser.LAUNCH_FLAGS, headless=True)
            result["chromium"] = browser.version
            context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
            page = context.new_page()
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector('body[data-state="ready"]', state="attached", timeout=bench_browser.READY_TIMEOUT_MS)
            page.get_by_test_id("load-model").set_input_files(str(model_path))
            page.wait_for_selector('body[data-model="loaded"]', state="attached", timeout=TIMEOUT_MS)
            log(f"Chromium {browser.version}; model {result['model']}")

            # the loaded model's held-out analysis first: readings asked for meanwhile wait behind it
            page.wait_for_function("() => (window.pycnnProbe.read().analyses ?? 0) >= 1", timeout=TIMEOUT_MS)
            log(f"saliency: {args.count} held-out digits shown...")
            saliency = [show_heldout(page)["saliency_latency_ms"] for _ in range(args.count)]
            log(f"arithmetic: {args.count} cells pointed at...")
            arithmetic = time_arithmetic(page, args.count, rng)
            log(f"why not: {args.count} digits chosen...")
            why_not = time_why_not(page, args.count)
            log(f"step: {args.count} steps...")
            steps = time_steps(page, args.count)
            log(f"step again at once: {args.count} steps...")
            rapid = time_rapid_steps(page, args.count)
            page.get_by_test_id("step-undo").click()
            page.wait_for_selector('[data-testid="step-loss"][data-steps="0"]', state="attached")
            result["console_errors"] = errors
            context.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()

    result["arithmetic"] = arithmetic
    result["saliency_ms"] = saliency
    result["why_not_ms"] = why_not
    result["steps"] = steps
    result["rapid_steps_ms"] = rapid
    rows = [("pointing at a cell -> its arithmetic shown", summary([a["ms"] for a in arithmetic]),
             summary([a["worker_ms"] for a in arithmetic]))]
    for layer in sorted({a["layer"] for a in arithmetic}):
        of = [a for a in arithmetic if a["layer"] == layer]
        rows.append((f"  of conv layer index {layer}", summary([a["ms"] for a in of]),
                     summary([a["worker_ms"] for a in of])))
    rows += [("prediction request -> saliency drawn (with the bars)", summary(saliency), None),
             ('"why not a ...?" -> its saliency drawn', summary(why_not), None),
             ("Step clicked -> loss and filter gradients shown", summary([s["ms"] for s in steps]),
              summary([s["worker_ms"] for s in steps])),
             ("Step again at once (the last step's reading and analysis may be on the way)", summary(rapid), None)]
    lines = [f"pycnn: see inside one step, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
             f"(Chromium {result['chromium']}, load average {load_before} before / "
             + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " after)",
             f"command: {command}", f"model: {result['model']} ({args.model or f'{preset}, fresh seed-0 weights'})", "",
             f"| what | median ms | p90 | min-max | worker ms (median) | target < {TARGET_MS} ms (median) |",
             "|---|---|---|---|---|---|"]
    for name, s, worker in rows:
        worker_ms = "" if worker is None else format(worker["median"], ".1f")
        met = "yes" if s["median"] < TARGET_MS else "NO"
        spread = f"{s['min']:.0f}-{s['max']:.0f}"
        lines.append(f"| {name} | **{s['median']:.0f}** | {s['p90']:.0f} | {spread} | {worker_ms} | {met} |")
    lines.append(f"\n{args.count} of each; console errors: {len(result['console_errors'])}")
    print()
    print("\n".join(lines))
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
