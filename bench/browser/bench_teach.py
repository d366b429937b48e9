#!/usr/bin/env python3
"""Teach it your handwriting, in the page: a writer's pen strokes replayed through the page's own UI.

    python bench/browser/bench_teach.py --unipen FILE                       # 3 writers, 3 and 1 per digit
    python bench/browser/bench_teach.py --unipen FILE --writers 5 --others 60 --preset two-conv
    python bench/browser/bench_teach.py --unipen FILE --model m.npz --per-digit 3

--unipen is the UNIPEN digits JSON (not part of the project; read where it is, never copied). The
model is --model, or the page's network (--preset, default pycnn.presets.DEFAULT_PRESET) trained in
CPython with the page's recipe on the bundled digits (bench/teach.py page_model); it goes into the
page through Load model. Who is a "writer" is --group: UNIPEN's writers drew about one of each
digit, so none has 3 of every digit, and by default each contributing lab counts as one writer
(bench/teach.py --group contributor measures the same in CPython).

For each of --writers writers (those with the most drawings, at least --per-digit of each digit and
--others more) and each K of --per-digit, on a fresh page with the model loaded: K drawings of each
digit, chosen at random, are drawn on the canvas with the mouse (bench/handwriting.py's placement
and bench/browser/bench_handwriting.py's replay) and taught with the "It's a <digit>" buttons; up to
--others of the writer's other drawings are drawn and read (before); Fine-tune is pressed and timed
until its `done` (the page's probe fine_tune_ms), recording the main thread's long tasks (>= 50 ms,
Long Tasks API) meanwhile; then the same other drawings are drawn and read again (after). Printed:
accuracy on the other drawings before -> after averaged over writers (target >= 98% after with 3
per digit), the held-out MNIST accuracy before -> after as the page reports it (target: a drop of at
most 0.5 points), fine-tune seconds in the page (target <= 10 s) and the long tasks during it.
"""
import argparse
import datetime
import functools
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: this process trains the model too

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pycnn


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_handwriting = _load("pycnn_bench_handwriting", HERE / "bench_handwriting.py")  # its replay of pen strokes
bench_browser = bench_handwriting.bench_browser
build = bench_browser.build
teach_cpython = _load("pycnn_bench_teach", ROOT / "bench" / "teach.py")  # the page's data and network, writers
handwriting = bench_handwriting.handwriting

PAGE_BUDGET_S = 10
FINE_TUNE_TIMEOUT_MS = 600_000
LONG_TASKS = """
(() => {
  const tasks = [];
  Object.defineProperty(window, "__longTasks", { value: tasks });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) tasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: "longtask", buffered: true });
  // long animation frames with the page scripts that ran in them: a task can be long only because
  // the cores were busy (the worker trains on one of two)
  const frames = [];
  Object.defineProperty(window, "__longFrames", { value: frames });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const scripts = (e.scripts || []).map((s) => ({ ms: Math.round(s.duration), what: `${s.invoker} ${s.sourceFunctionName || ""}`.trim() }));
      frames.push({ start: e.startTime, duration: e.duration, scriptMs: scripts.reduce((sum, s) => sum + s.ms, 0), scripts });
    }
  }).observe({ type: "long-animation-frame", buffered: true });
})();
"""


def open_page(browser, url, model_path, log):
    """A fresh context and page at ready with model_path loaded (Load model) -> (context, page, errors)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.add_init_script(LONG_TASKS)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "index.html")
    page.wait_for_selector("body[data-state=ready]", state="attached", timeout=bench_browser.READY_TIMEOUT_MS)
    page.get_by_test_id("load-model").set_input_files(str(model_path))
    page.wait_for_selector("body[data-state=ready][data-model=loaded]", state="attached", timeout=60_000)
    return context, page, errors


def draw_and_read(page, canvas, strokes):
    """Clear, draw strokes (canvas px) with the mouse, wait for the answer to the finished drawing -> digit read (-1: none)."""
    page.get_by_test_id("clear-button").click()
    bench_handwriting.draw(page, canvas, strokes)
    try:
        page.wait_for_function(bench_handwriting.ANSWERED, timeout=bench_handwriting.ANSWER_TIMEOUT_MS, polling=20)
    except Exception:  # no answer (too little ink): nothing read
        return -1
    return int(page.get_by_test_id("prediction").get_attribute("data-digit"))


def teach_in_page(page, canvas, replay, taught):
    """Draw each taught drawing and press "It's a <its label>"; wait until it is one of the page's digits."""
    n = 0
    for i in taught:
        if draw_and_read(page, canvas, replay.drawings[i]) < 0:
            continue  # the page offers no teach buttons for a drawing it could not read
        page.get_by_test_id(f"teach-{replay.labels[i]}").click()
        n += 1
        page.wait_for_function("(n) => document.querySelector('[data-testid=my-digits]').dataset.count === String(n)",
                               arg=n, timeout=30_000)


def fine_tune_in_page(page):
    """Press Fine-tune and wait for its end -> (seconds, long tasks during it (ms), the result's data-* values)."""
    started = page.evaluate("performance.now()")
    page.get_by_test_id("fine-tune-button").click()
    page.wait_for_selector('[data-testid=fine-tune-progress][data-result]', state="attached", timeout=FINE_TUNE_TIMEOUT_MS)
    page.wait_for_selector("body[data-state=ready]", state="attached")
    ended = page.evaluate("performance.now()")
    probe = page.evaluate("window.pycnnProbe.read()")
    seconds = probe["fine_tune_ms"] / 1000
    long_tasks = [t for t in page.evaluate("window.__longTasks") if t["start"] + t["duration"] >= started and t["start"] <= ended]
    tasks = [round(t["duration"]) for t in long_tasks]
    frames = [f for f in page.evaluate("window.__longFrames") if f["start"] + f["duration"] >= started and f["start"] <= ended]
    result = page.get_by_test_id("my-digits-accuracy").evaluate("e => ({...e.dataset})")
    result["script_ms"] = max((f["scriptMs"] for f in frames), default=0)
    result["scripts"] = max(frames, key=lambda f: f["scriptMs"])["scripts"] if frames else []
    result["task_at_ms"] = [round(t["start"] - started) for t in long_tasks]  # when each began, after the click
    result["run_result"] = page.get_by_test_id("fine-tune-progress").get_attribute("data-result")
    result["heap_bytes"] = probe.get("worker_heap_bytes")  # the worker's wasm memory after the fine-tune
    return seconds, tasks, result


def one_writer(browser, url, model_path, replay, indices, per_digit, others, seed, index, log):
    rng = np.random.default_rng([seed, index, per_digit])
    taught, rest = teach_cpython.teach_split(indices, replay.labels, per_digit, rng)
    rest = np.sort(rng.permutation(rest)[:others])
    context, page, errors = open_page(browser, url, model_path, log)
    try:
        canvas = page.get_by_test_id("draw-canvas")
        canvas.evaluate(bench_handwriting.RECORD_POINTS)  # bench_handwriting.draw reads what the canvas received
        teach_in_page(page, canvas, replay, taught)
        kept = int(page.get_by_test_id("my-digits").get_attribute("data-count"))
        before = [draw_and_read(page, canvas, replay.drawings[i]) for i in rest]
        seconds, tasks, result = fine_tune_in_page(page)
        after = [draw_and_read(page, canvas, replay.drawings[i]) for i in rest]
    finally:
        context.close()
    labels = replay.labels[rest]
    row = {"per_digit": per_digit, "taught": kept, "others": len(rest),
           "before": float(np.mean(np.array(before) == labels)), "after": float(np.mean(np.array(after) == labels)),
           "fine_tune_s": seconds, "long_tasks_ms": tasks, "console_errors": errors,
           "estimate_before": float(result["before"]), "estimate": float(result["after"]) if result.get("after") else None,
           "mnist_before": float(result["mnistBefore"]), "mnist_after": float(result["mnistAfter"]),
           "run_result": result["run_result"], "longest_frame_script_ms": result["script_ms"],
           "longest_frame_scripts": result["scripts"], "long_task_at_ms": result["task_at_ms"],
           "worker_heap_bytes": result["heap_bytes"]}
    scripts = ", ".join(f"{x['what']} {x['ms']} ms" for x in result["scripts"]) or "no scripts"
    when = f" (beginning {', '.join(map(str, result['task_at_ms']))} ms after the click)" if tasks else ""
    log(f"  {per_digit} per digit: taught {kept}, {len(rest)} others {row['before']:.1%} -> {row['after']:.1%}; "
        f"held-out MNIST {row['mnist_before']:.2%} -> {row['mnist_after']:.2%}; fine-tune {seconds:.1f} s, "
        f"long tasks {tasks or 'none'}{when}, longest page-script time in one frame {result['script_ms']} ms "
        f"({scripts}); worker heap {result['heap_bytes'] / 2 ** 20:.1f} MiB")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unipen", required=True, metavar="FILE", help="the UNIPEN digits JSON (not part of the project)")
    parser.add_argument("--model", help="load this model file; default: the page's network trained in CPython")
    parser.add_argument("--preset", help="the network to train when no --model (default: the page's default)")
    parser.add_argument("--group", choices=["writer", "contributor"], default="contributor",
                        help="who counts as one writer (default contributor: no UNIPEN writer drew 3 of every digit)")
    parser.add_argument("--writers", type=int, default=3, help="writers to measure (default 3, those with the most drawings)")
    parser.add_argument("--per-digit", type=int, nargs="+", default=[3, 1], help="drawings taught per digit")
    parser.add_argument("--others", type=int, default=40, help="other drawings of each writer to draw (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="which drawings are taught (default 0)")
    parser.add_argument("--placement-seed", type=int, default=0, help="bench/handwriting.py's placement seed")
    parser.add_argument("--out", default="dist", help="site directory to build and serve (default dist/)")
    parser.add_argument("--json", help="also write every writer's numbers to this file")
    parser.add_argument("--chromium", default=os.environ.get("PYCNN_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)

    import pycnn
    from pycnn.presets import DEFAULT_PRESET, preset
    from pycnn.training import Trainer, TrainingConfig
    from playwright.sync_api import sync_playwright

    log = functools.partial(print, flush=True)
    started = time.perf_counter()
    given = list(argv if argv is not None else sys.argv[1:])
    given = [("FILE" if a == args.unipen and i and given[i - 1] == "--unipen" else a) for i, a in enumerate(given)]
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *given])  # the data file's place stays private
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    replay = handwriting.Replay(args.unipen, args.placement_seed)
    log(replay.describe())
    digits = handwriting.load_unipen(args.unipen)
    names = [digits[i][args.group] for i in replay.indices]
    log("building the site (a no-op when nothing changed)...")
    summary = build.build(args.out, quiet=True)
    os.environ.setdefault("PYCNN_DATA", str(Path(summary["out_dir"]) / "data"))  # the bundled digits, for the model
    data = teach_cpython.page_data()
    with tempfile.TemporaryDirectory(prefix="pycnn-teach-") as tmp:
        if args.model:
            model_path = Path(args.model)
            network = teach_cpython.network_name(pycnn.load(model_path))
        else:
            name = args.preset or DEFAULT_PRESET
            model = preset(name, seed=0)
            t0 = time.perf_counter()
            Trainer(model, data[0], data[1], TrainingConfig()).run()
            log(f"model: {name} trained in CPython with the page's recipe in {time.perf_counter() - t0:.1f} s")
            model_path = Path(tmp) / "model.npz"
            model_path.write_bytes(model.to_bytes())
            network = name
        rows = []
        server = build.make_server(args.out)
        threading.Thread(target=server.serve_forever, name="site", daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        try:
            with sync_playwright() as p:
                executable = args.chromium if args.chromium and Path(args.chromium).exists() else None
                browser = p.chromium.launch(executable_path=executable, args=bench_browser.LAUNCH_FLAGS, headless=True)
                chromium = browser.version
                for per_digit in args.per_digit:
                    chosen = teach_cpython.groups(replay.labels, names, per_digit)
                    chosen = dict(sorted(chosen.items(), key=lambda kv: -len(kv[1]))[:args.writers])
                    if not chosen:
                        log(f"{per_digit} per digit: no {args.group} has {per_digit} drawings of every digit and one more")
                    for index, (name, indices) in enumerate(chosen.items()):
                        log(f"{args.group} {name} ({len(indices)} drawings):")
                        rows.append({"writer": name, **one_writer(browser, url, model_path, replay, indices, per_digit,
                                                                  args.others, args.seed, index, log)})
                browser.close()
        finally:
            server.shutdown()
            server.server_close()

    lines = [f"pycnn: teach it your handwriting in the page, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} "
             f"UTC (Chromium {chromium}, load average {load_before} before / "
             + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " after)", f"command: {command}",
             f"network {network}; fine-tune recipe {pycnn.yourdigits.FineTuneConfig()}"]
    for per_digit in args.per_digit:
        these = [r for r in rows if r["per_digit"] == per_digit]
        if not these:
            continue
        mean = lambda key: float(np.mean([r[key] for r in these]))  # noqa: E731
        drop = [100 * (r["mnist_before"] - r["mnist_after"]) for r in these]
        tasks = [t for r in these for t in r["long_tasks_ms"]]
        lines += [
            f"{per_digit} per digit, {len(these)} {args.group}s ({sum(r['others'] for r in these)} other drawings drawn "
            f"and read before and after): before {mean('before'):.2%} -> after **{mean('after'):.2%}** (mean over "
            f"writers{'; target >= 98%' if per_digit >= 3 else ''})",
            f"  held-out MNIST (the page's 1,500): {mean('mnist_before'):.2%} -> {mean('mnist_after'):.2%}, drop mean "
            f"**{np.mean(drop):+.2f}** points, worst {max(drop):+.2f} (target <= 0.5)",
            f"  fine-tune in the page: mean **{mean('fine_tune_s'):.1f} s**, max {max(r['fine_tune_s'] for r in these):.1f} s "
            f"(target <= {PAGE_BUDGET_S} s); main-thread long tasks (>= 50 ms) during it: {len(tasks)}"
            + (f" (longest {max(tasks)} ms)" if tasks else "")
            + f"; longest page-script time in one frame {max(r['longest_frame_script_ms'] for r in these)} ms"
            + f"; the worker's wasm heap after it: up to {max(r['worker_heap_bytes'] for r in these) / 2 ** 20:.1f} MiB",
            f"  the page's own estimate of after (cross-validation on the taught drawings): "
            + ", ".join("-" if r["estimate"] is None else f"{r['estimate']:.0%}" for r in these),
            f"  runs: {', '.join(r['run_result'] for r in these)}; console errors: {sum(len(r['console_errors']) for r in these)}",
        ]
    print()
    print("\n".join(lines))
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "rows": rows}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
