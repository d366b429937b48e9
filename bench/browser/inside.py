#!/usr/bin/env python3
"""See inside one step, timed in the page: pointing at a feature-map cell to its arithmetic shown,
a prediction to its saliency map drawn, "why not a …?" to its map, and one Step.

    python -m bench.browser.inside                    # the page's default network, 40 of each
    python -m bench.browser.inside --preset two-conv --count 20
    python -m bench.browser.inside --model m.npz --json out.json

Builds dist/ when needed (sitebuild.build), serves it on 127.0.0.1 (sitebuild.make_server) and drives
headless Debian Chromium through Playwright (bench/browser/harness.py). The model is --model,
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
import random
import statistics
import sys
import tempfile
from pathlib import Path

import sitebuild
from bench.browser import harness
from bench.browser.harness import probe

TARGET_MS = 100
NEWER_ARITHMETIC = "(v) => Number(document.querySelector('[data-testid=conv-arithmetic]').dataset.version) > v"
TIMEOUT_MS = 30_000


def summary(values):
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return {"n": len(values), "median": statistics.median(values), "p90": p90, "min": values[0], "max": values[-1]}


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
    run = harness.Run(parser, argv, __spec__.name)
    args, log = run.args, run.log

    import pycnn
    from pycnn.presets import DEFAULT_PRESET
    from playwright.sync_api import sync_playwright

    preset = args.preset or DEFAULT_PRESET
    rng = random.Random(args.seed)
    harness.build_site(args.out, log)
    result = {"command": run.command}
    with tempfile.TemporaryDirectory(prefix="pycnn-inside-") as tmp, \
            harness.serving(sitebuild.make_server(args.out)) as url, sync_playwright() as p:
        model_path = Path(args.model) if args.model else Path(tmp) / f"{preset}.npz"
        if not args.model:
            pycnn.preset(preset, seed=0).save(str(model_path))
        model = pycnn.load(str(model_path))
        result["model"] = " ".join(type(layer).__name__ for layer in model.layers)
        browser = harness.launch(p, args.chromium)
        result["chromium"] = browser.version
        context, page, errors = harness.open_app(browser, url, service_workers="block")
        harness.load_model(page, model_path, timeout=TIMEOUT_MS)
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
    lines = [run.header("pycnn: see inside one step", result["chromium"]), f"command: {run.command}", f"model: {result['model']} ({args.model or f'{preset}, fresh seed-0 weights'})", "",
             f"| what | median ms | p90 | min-max | worker ms (median) | target < {TARGET_MS} ms (median) |",
             "|---|---|---|---|---|---|"]
    for name, s, worker in rows:
        worker_ms = "" if worker is None else format(worker["median"], ".1f")
        met = "yes" if s["median"] < TARGET_MS else "NO"
        spread = f"{s['min']:.0f}-{s['max']:.0f}"
        lines.append(f"| {name} | **{s['median']:.0f}** | {s['p90']:.0f} | {spread} | {worker_ms} | {met} |")
    lines.append(f"\n{args.count} of each; console errors: {len(result['console_errors'])}")
    run.finish(lines, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
