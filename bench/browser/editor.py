"""The network editor and the largest network it allows, in the page (headless Chromium).

    python -m bench.browser.editor                 # 20 edits, then the largest network trains
    python -m bench.browser.editor --edits 50 --batches 300

Printed:
- edit to summary: from an edit of a layer's argument (the input event) to the summary showing
  the new parameter count (the worker checks the draft, and with an untrained model builds it);
  median and worst of --edits edits 0.3 s apart, alternating the first conv layer's filters, after the
  page has timed its first epoch estimate (a new network's epoch is timed 2 s after the last edit);
- the largest network the editor allows (LARGEST, under the session's max_params and max_work):
  loaded with Load model as a fresh model file, trained for --batches batches of the page's
  defaults, then stopped: images/s, main-thread tasks of 50 ms or more while it trained (and
  the page-script time of the longest animation frame: a task can be long only because the
  cores were busy), the batches that ended after Stop, and the worker's wasm heap after it.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pycnn
import sitebuild
from bench.browser import harness
from pycnn.page import editor


def _conv(f, padding="same"):
    return {"class": "Conv2D", "config": {"filters": f, "kernel_size": 3, "padding": padding}}


RELU, POOL, FLATTEN = ({"class": k, "config": {}} for k in ("ReLU", "MaxPool2D", "Flatten"))
# 28 -> 28 -> 14 -> 14 -> 7: 3.6 M multiply-adds in the second conv, 0.8 M weights in the dense layer
LARGEST = [_conv(32), RELU, POOL, _conv(64), RELU, POOL, FLATTEN,
           {"class": "Dense", "config": {"out_features": 256}}, RELU, {"class": "Dense", "config": {"out_features": 10}}]

EDIT_GAP_MS = 300  # between edits, as a learner types one value after another
EDIT_SCRIPT = """async (value) => {
  const summary = document.querySelector('[data-testid=arch-summary]');
  const input = document.querySelector('[data-testid=arch-layer-0-filters]');
  const before = summary.dataset.totalParams;
  const changed = new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      if (summary.dataset.totalParams !== before) { observer.disconnect(); resolve(performance.now()); }
    });
    observer.observe(summary, { attributes: true, attributeFilter: ['data-total-params'] });
  });
  const t0 = performance.now();
  input.value = String(value);
  input.dispatchEvent(new Event('input', { bubbles: true }));
  return (await changed) - t0;
}"""


def measure_edits(page, edits):
    """ms from an edit to the summary, for `edits` edits of the first conv layer's filters."""
    page.get_by_test_id("arch-preset-select").select_option(pycnn.presets.DEFAULT_PRESET)
    page.wait_for_function("() => document.querySelector('[data-testid=arch-summary]').dataset.totalParams === "
                           f"'{pycnn.presets.preset(pycnn.presets.DEFAULT_PRESET).count_params()}'")
    page.wait_for_selector("[data-testid=estimate][data-seconds-per-epoch]", state="attached", timeout=60_000)
    times = []
    for i in range(edits):
        times.append(page.evaluate(EDIT_SCRIPT, 8 + i % 2 * 4))  # 8, 12, 8, ... filters
        page.wait_for_selector('body[data-state=ready]', state="attached")
        page.wait_for_timeout(EDIT_GAP_MS)
    return times


def train_largest(page, workdir, batches):
    """Load LARGEST as a fresh model, train `batches` batches, Stop -> the run's numbers."""
    config = editor.network_config(LARGEST)
    model = pycnn.Sequential.from_config(config, seed=0)
    path = Path(workdir) / "largest.npz"
    model.save(str(path))
    harness.load_model(page, path, timeout=120_000)
    page.wait_for_function("() => document.querySelector('[data-testid=accuracy]').dataset.valAccuracy",
                           timeout=120_000)
    page.evaluate("window.__bench.longTasks.length = 0; window.__bench.frames.length = 0")
    t0 = time.perf_counter()
    page.get_by_test_id("train-button").click()
    page.wait_for_function(f"() => Number(document.querySelector('[data-testid=progress]').dataset.step) >= {batches}",
                           timeout=harness.TRAIN_TIMEOUT_MS, polling=100)
    seconds = time.perf_counter() - t0
    step = int(page.get_by_test_id("progress").get_attribute("data-step"))
    marks = page.evaluate("window.__bench")
    page.get_by_test_id("stop-button").click()
    page.wait_for_selector("body[data-state=ready][data-run-result=stopped]", state="attached", timeout=120_000)
    probe = harness.probe(page)
    return {"params": model.count_params(), "work": model.work(), "layers": [type(x).__name__ for x in model.layers],
            "steps": step, "seconds": seconds, "images_per_second": step * 32 / seconds,
            "long_tasks_ms": [round(t["duration"]) for t in marks["longTasks"]],
            "longest_frame_script_ms": max([f["scriptMs"] for f in marks["frames"]], default=0),
            "batches_after_stop": int(page.get_by_test_id("progress").get_attribute("data-batches-after-stop") or -1),
            "stop_latency_ms": probe.get("stop_latency_ms"), "worker_heap_bytes": probe.get("worker_heap_bytes")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=20, help="edits to time (default 20)")
    parser.add_argument("--batches", type=int, default=200, help="batches the largest network trains (default 200)")
    run = harness.Run(parser, argv, __spec__.name)
    args = run.args
    from playwright.sync_api import sync_playwright

    spec = editor.editor_spec()
    try:
        editor.network_config(LARGEST)
    except ValueError as err:
        raise SystemExit(f"the editor refuses LARGEST: {err}") from None
    harness.build_site(args.out, run.log)
    with tempfile.TemporaryDirectory(prefix="pycnn-editor-") as tmp, \
            harness.serving(sitebuild.make_server(args.out)) as url, sync_playwright() as p:
        browser = harness.launch(p, args.chromium)
        context, page, _ = harness.open_app(browser, url, viewport={"width": 1280, "height": 900})
        edits = measure_edits(page, args.edits)
        largest = train_largest(page, tmp, args.batches)
        version = browser.version
        browser.close()

    lines = [
        run.header("pycnn network editor", version), f"command: {run.command}",
        f"edit to summary ({len(edits)} edits of the first conv layer's filters, untrained model: checked and "
        f"rebuilt by the worker): median **{statistics.median(edits):.1f} ms**, worst {max(edits):.1f} ms "
        "(target < 50 ms)",
        f"largest network the editor allows (limits: {spec['max_params']:,} parameters, {spec['max_work']:,} "
        f"multiply-adds per image): {' '.join(largest['layers'])}, {largest['params']:,} parameters, "
        f"{largest['work']:,} multiply-adds per image",
        f"  {largest['steps']} batches of 32 in {largest['seconds']:.1f} s: {largest['images_per_second']:,.0f} "
        f"images/s; main-thread tasks >= 50 ms meanwhile: {len(largest['long_tasks_ms'])} "
        f"{largest['long_tasks_ms'][:10]}, longest page-script time in one frame "
        f"{largest['longest_frame_script_ms']:.0f} ms",
        f"  Stop: {largest['batches_after_stop']} batch(es) ended after it, {largest['stop_latency_ms']} ms to "
        f"stopped; the worker's wasm heap after training: **{largest['worker_heap_bytes'] / 2**20:.1f} MiB**",
    ]
    run.finish(lines, {"command": run.command, "edits_ms": edits, "largest": largest})
    return 0


if __name__ == "__main__":
    sys.exit(main())
