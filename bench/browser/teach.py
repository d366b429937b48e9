#!/usr/bin/env python3
"""Teach it your handwriting, in the page: a writer's pen strokes replayed through the page's own UI.

    python -m bench.browser.teach --unipen FILE                       # 3 writers, 3 and 1 per digit
    python -m bench.browser.teach --unipen FILE --writers 5 --others 60 --preset two-conv
    python -m bench.browser.teach --unipen FILE --model m.npz --per-digit 3

--unipen is the UNIPEN digits JSON (not part of the project; read where it is, never copied). The
model is --model, or the page's network (--preset, default pycnn.presets.DEFAULT_PRESET) trained in
CPython with the page's recipe on the bundled digits (bench/teach.py page_model); it goes into the
page through Load model. Who is a "writer" is --group: UNIPEN's writers drew about one of each
digit, so none has 3 of every digit, and by default each contributing lab counts as one writer
(python -m bench.teach --group contributor measures the same in CPython).

For each of --writers writers (those with the most drawings, at least --per-digit of each digit and
--others more) and each K of --per-digit, on a fresh page with the model loaded: K drawings of each
digit, chosen at random, are drawn on the canvas with the mouse (bench/handwriting.py's placement
and bench/browser/harness.py's drawing) and taught with the "It's a <digit>" buttons; up to
--others of the writer's other drawings are drawn and read (before); Fine-tune is pressed and timed
until its `done` (the page's probe fine_tune_ms), recording the main thread's long tasks (>= 50 ms,
Long Tasks API) meanwhile; then the same other drawings are drawn and read again (after). Printed:
accuracy on the other drawings before -> after averaged over writers (target >= 98% after with 3
per digit), the held-out MNIST accuracy before -> after as the page reports it (target: a drop of at
most 0.5 points), fine-tune seconds in the page (target <= 10 s) and the long tasks during it.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import sitebuild
from bench import handwriting
from bench import teach as teach_cpython  # the page's data and network, writers
from bench.browser import harness

PAGE_BUDGET_S = 10
FINE_TUNE_TIMEOUT_MS = 600_000


def teach_in_page(page, canvas, replay, taught):
    """Draw each taught drawing and press "It's a <its label>"; wait until it is one of the page's digits."""
    n = 0
    for i in taught:
        if harness.draw_and_read(page, canvas, replay.drawings[i])[0] < 0:
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
    probe = harness.probe(page)
    seconds = probe["fine_tune_ms"] / 1000
    marks = page.evaluate("window.__bench")
    long_tasks = harness.during(marks["longTasks"], started, ended)
    tasks = [round(t["duration"]) for t in long_tasks]
    frames = harness.during(marks["frames"], started, ended)
    result = page.get_by_test_id("my-digits-accuracy").evaluate("e => ({...e.dataset})")
    result["script_ms"] = round(max((f["scriptMs"] for f in frames), default=0))
    result["scripts"] = max(frames, key=lambda f: f["scriptMs"])["scripts"] if frames else []
    result["task_at_ms"] = [round(t["start"] - started) for t in long_tasks]  # when each began, after the click
    result["run_result"] = page.get_by_test_id("fine-tune-progress").get_attribute("data-result")
    result["heap_bytes"] = probe.get("worker_heap_bytes")  # the worker's wasm memory after the fine-tune
    return seconds, tasks, result


def one_writer(browser, url, model_path, replay, indices, per_digit, others, seed, index, log):
    rng = np.random.default_rng([seed, index, per_digit])
    taught, rest = teach_cpython.teach_split(indices, replay.labels, per_digit, rng)
    rest = np.sort(rng.permutation(rest)[:others])
    context, page, errors = harness.open_app(browser, url)
    try:
        harness.load_model(page, model_path)
        canvas = page.get_by_test_id("draw-canvas")
        teach_in_page(page, canvas, replay, taught)
        kept = int(page.get_by_test_id("my-digits").get_attribute("data-count"))
        before = [harness.draw_and_read(page, canvas, replay.drawings[i])[0] for i in rest]
        seconds, tasks, result = fine_tune_in_page(page)
        after = [harness.draw_and_read(page, canvas, replay.drawings[i])[0] for i in rest]
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
    run = harness.Run(parser, argv, __spec__.name)
    args, log = run.args, run.log

    import pycnn
    from pycnn.presets import DEFAULT_PRESET, preset
    from pycnn.training import Trainer, TrainingConfig
    from playwright.sync_api import sync_playwright

    replay = handwriting.Replay(args.unipen, args.placement_seed)
    log(replay.describe())
    digits = handwriting.load_unipen(args.unipen)
    names = [digits[i][args.group] for i in replay.indices]
    summary = harness.build_site(args.out, log)
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
        with harness.serving(sitebuild.make_server(args.out)) as url, sync_playwright() as p:
            browser = harness.launch(p, args.chromium)
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

    lines = [run.header("pycnn: teach it your handwriting in the page", chromium), f"command: {run.command}",
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
            "  the page's own estimate of after (cross-validation on the taught drawings): "
            + ", ".join("-" if r["estimate"] is None else f"{r['estimate']:.0%}" for r in these),
            f"  runs: {', '.join(r['run_result'] for r in these)}; console errors: {sum(len(r['console_errors']) for r in these)}",
        ]
    run.finish(lines, {"command": run.command, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
