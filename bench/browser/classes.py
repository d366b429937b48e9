#!/usr/bin/env python3
"""Your own classes in the page: UNIPEN capital letters taught through the page's UI with the mouse, read on others'.

    python -m bench.browser.classes --unipen FILE                  # 5 letters x 10 drawings, 2 splits, both methods
    python -m bench.browser.classes --unipen FILE --all            # the grid: 3, 5, 10, 20 letters x 5, 10, 20 drawings
    python -m bench.browser.classes --unipen FILE --classes 3 5 --drawings 5 --splits 3 --others 60

--unipen is the UNIPEN capital letters JSON (not part of the project; read where it is, never copied).
bench/classes.py measures the same in CPython: its drawing of the letters (bench/handwriting.py's random
size and place), its splits (C letters, one contributing lab whose writers teach K drawings of each, every
other lab's drawing of those letters to score) and its base model (the page's default network trained in
CPython with the page's recipe on the bundled digits, cached; or --model), which goes into the page through
Load model. A project holds at most pycnn.project.MAX_CLASSES classes, so the page cannot hold all 26
letters: the grid's largest is 20 (asked for more, the page's refusal is reported).

For each configuration and split, on a fresh page with the model loaded: a project of the C letters is made
(class-names-input, create-project-button); each taught drawing is drawn on the canvas with the mouse
(bench/browser/harness.py's drawing) and added with teach-<class>; Train by transfer (fine-tune-button) is
pressed and timed from the click to the project's data-result (what its progress text reports as "done in
... s"), recording the main thread's long tasks (>= 50 ms, Long Tasks API) and the longest page-script time
in one animation frame meanwhile; --others of the other labs' drawings of those letters (a random sample,
the same for both methods) are drawn and read (`prediction`: the class read); then Train from scratch
(train-button) is pressed, timed and the same drawings read again. Printed per configuration: the share of
the others read right by each method (mean over splits, lowest-highest), the page's own estimates
(cross-validation on the taught drawings), the seconds in the page, the long tasks, and CPython's score of
the same splits on every other drawing (bench/classes.py's methods on its images), for comparison.
Targets: 5 letters x 10 drawings -> others read >= 95%; transfer <= 10 s in the page; no main-thread task
>= 50 ms during it.
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import sitebuild
from bench import classes as classes_cpython  # the letters, the splits, the base model, the methods
from bench import handwriting
from bench.browser import harness
from pycnn import classes as pycnn_classes

TRANSFER_BUDGET_S = 10
TARGET = 0.95
TRAIN_TIMEOUT_MS = 900_000
TEACH_TIMEOUT_MS = 30_000
GRID_CLASSES = (3, 5, 10, 20)  # bench/classes.py's grid, with the page's largest project instead of 26
GRID_DRAWINGS = classes_cpython.GRID_DRAWINGS
HOW = {"transfer": "fine-tune-button", "scratch": "train-button"}

# The drawing finished has been answered, whether or not a network read it (a project not trained yet
# shows the 28x28 input only: data-digit stays empty).
SEEN = """
() => {
  const canvas = document.querySelector('[data-testid=draw-canvas]');
  const answer = document.querySelector('[data-testid=prediction]');
  return answer.dataset.source === 'drawing' && answer.dataset.answeredVersion === canvas.dataset.version;
}
"""

# When the next project run is clicked (either button) and when its data-result appears (performance.now()).
WATCH_RUN = """
() => {
  const progress = document.querySelector('[data-testid=project-progress]');
  const run = { clickAt: null, resultAt: null, result: null };
  window.__projectRun = run;
  const click = (e) => {
    if (run.clickAt === null && e.target?.closest?.('[data-testid=fine-tune-button], [data-testid=train-button]')) {
      run.clickAt = performance.now();
    }
  };
  document.addEventListener('click', click, true);
  const observer = new MutationObserver(() => {
    if (run.clickAt !== null && run.resultAt === null && progress.dataset.result) {
      run.resultAt = performance.now();
      run.result = progress.dataset.result;
      observer.disconnect();
      document.removeEventListener('click', click, true);
    }
  });
  observer.observe(progress, { attributes: true, attributeFilter: ['data-result'] });
}
"""


def make_project(page, names):
    """Create the project of names through the page -> None, or the page's reason when it refuses them."""
    page.get_by_test_id("class-names-input").fill(", ".join(names))
    page.get_by_test_id("create-project-button").click()
    page.wait_for_function("""() => document.querySelector('[data-testid=project-select]').dataset.projects === '1'
        || !document.querySelector('[data-testid=class-names-error]').hidden""", timeout=TEACH_TIMEOUT_MS)
    error = page.get_by_test_id("class-names-error")
    if error.is_visible():
        return error.text_content().strip()
    page.wait_for_selector("[data-testid=my-digits][data-count='0']", state="attached")
    return None


def teach(page, canvas, drawings, classes):
    """Draw each drawing with the mouse and press teach-<its class> -> how many the page added (a drawing with
    too little ink is not answered and not added)."""
    n = 0
    for strokes, label in zip(drawings, classes):
        page.get_by_test_id("clear-button").click()
        harness.draw(page, canvas, strokes)
        try:
            page.wait_for_function(SEEN, timeout=harness.ANSWER_TIMEOUT_MS, polling=20)
        except Exception:  # too little ink: nothing to add
            continue
        page.get_by_test_id(f"teach-{label}").click()
        n += 1
        page.wait_for_function("(n) => document.querySelector('[data-testid=my-digits]').dataset.count === String(n)",
                               arg=n, timeout=TEACH_TIMEOUT_MS)
    return n


def train(page, how):
    """Press Train by transfer or Train from scratch, wait for the run's result -> {seconds, result, long tasks (ms),
    when each began after the click (ms), longest page-script time in one frame (ms) and its scripts}."""
    button = page.get_by_test_id(HOW[how])
    if not button.is_enabled():
        raise RuntimeError(f"{HOW[how]} is disabled: {button.get_attribute('title')}")
    page.evaluate(WATCH_RUN)
    button.click()
    page.wait_for_function("() => window.__projectRun.resultAt !== null", timeout=TRAIN_TIMEOUT_MS, polling=50)
    page.wait_for_selector("body[data-state=ready]", state="attached")
    run = page.evaluate("window.__projectRun")
    marks = page.evaluate("window.__bench")
    started, ended = run["clickAt"], run["resultAt"]
    tasks = harness.during(marks["longTasks"], started, ended)
    frames = harness.during(marks["frames"], started, ended)
    longest = max(frames, key=lambda f: f["scriptMs"], default=None)
    return {"seconds": (ended - started) / 1000, "result": run["result"],
            "progress_text": page.get_by_test_id("project-progress").text_content().strip().splitlines()[0],
            "long_tasks_ms": [round(t["duration"]) for t in tasks],
            "long_task_at_ms": [round(t["start"] - started) for t in tasks],
            "longest_frame_script_ms": round(longest["scriptMs"]) if longest else 0,
            "longest_frame_scripts": longest["scripts"] if longest else []}


def read(page, canvas, drawings):
    """Draw each drawing with the mouse -> the class names the page read ("" when it read nothing)."""
    names = []
    for strokes in drawings:
        index, _ = harness.draw_and_read(page, canvas, strokes)
        names.append(page.get_by_test_id("prediction").get_attribute("data-name") if index >= 0 else "")
    return names


def scores(page):
    """The page's own estimates, {how: accuracy or None}, from the project's results."""
    boxes = page.locator("[data-testid=project-results] .project-score").all()
    return {box.get_attribute("data-how"): (float(box.get_attribute("data-accuracy"))
                                            if box.get_attribute("data-accuracy") else None) for box in boxes}


def one_split(browser, url, model_path, letters, split, others, rng, placement_seed, log):
    """One split in a fresh page, its other drawings sampled with rng -> its row."""
    names = [classes_cpython.LETTERS[c] for c in split.letters]
    sample = np.sort(rng.choice(split.test, min(others, len(split.test)), replace=False))
    truth = [letters[i]["label"] for i in sample]
    placed = lambda i: handwriting.placement(letters[i]["strokes"], i, placement_seed)  # noqa: E731
    row = {"letters": "".join(names), "lab": split.lab, "classes": len(names),
           "drawings": len(split.taught) // len(names), "others": len(sample)}
    context, page, errors = harness.open_app(browser, url)
    try:
        harness.load_model(page, model_path)
        refused = make_project(page, names)
        if refused:
            log(f"  {''.join(names)}: the page refused the project: {refused}")
            return {**row, "refused": refused}
        canvas = page.get_by_test_id("draw-canvas")
        row["taught"] = teach(page, canvas, [placed(i) for i in split.taught], split.y)
        drawings = [placed(i) for i in sample]
        for how in ("transfer", "scratch"):
            run = train(page, how)
            if run["result"] == "finished":
                read_as = read(page, canvas, drawings)
                run["accuracy"] = float(np.mean([a == b for a, b in zip(read_as, truth)]))
                run["nothing_read"] = sum(1 for a in read_as if not a)
            else:  # nothing kept: the page still reads with the network it had, so there is nothing to score
                run["accuracy"] = None
            row[how] = run
        row["estimates"] = scores(page)
        row["console_errors"] = errors
    finally:
        context.close()
    t, s = row["transfer"], row["scratch"]
    log(f"  {row['letters']} taught by lab {split.lab} ({row['taught']} drawings), {len(sample)} others: "
        f"transfer {outcome(t)} in {t['seconds']:.1f} s (long tasks {t['long_tasks_ms'] or 'none'}, longest "
        f"page-script time in one frame {t['longest_frame_script_ms']} ms), from scratch {outcome(s)} in "
        f"{s['seconds']:.1f} s; the page's estimates {row['estimates']}")
    return row


def outcome(run):
    """A run's share of the others read right, or how it ended when it kept nothing."""
    return f"{run['accuracy']:.1%}" if run["accuracy"] is not None else f"{run['result']} (nothing kept)"


def cpython_scores(base, data, split):
    """bench/classes.py's methods on the same split, scored on every other drawing -> {how: accuracy}."""
    return {how: classes_cpython.measure(classes_cpython.METHODS[name], base, data, split)[0]
            for how, name in (("transfer", "transfer"), ("scratch", "from scratch"))}


def table(rows, configs):
    """The report's table: a line per configuration, means over its splits."""
    lines = ["| letters x drawings | splits (others read each) | transfer: others read | from scratch: others read "
             "| transfer s in the page | from scratch s | long tasks during transfer | page's estimates: transfer / "
             "scratch | CPython, every other drawing: transfer / scratch |",
             "|---|---|---|---|---|---|---|---|---|"]
    def pct(values):
        kept = [v for v in values if v is not None]
        text = f"{np.mean(kept):.1%} ({min(kept):.0%}-{max(kept):.0%})" if kept else "-"
        return text + (f"; {len(values) - len(kept)} of {len(values)} runs kept nothing" if len(kept) < len(values)
                       else "")
    for n_classes, per_class in configs:
        these = [r for r in rows if r["classes"] == n_classes and r["drawings"] == per_class]
        if not these:
            continue
        if any("refused" in r for r in these):
            lines.append(f"| {n_classes} x {per_class} | refused by the page: {these[0]['refused']} |||||||")
            continue
        acc = {how: [r[how]["accuracy"] for r in these] for how in ("transfer", "scratch")}
        secs = {how: [r[how]["seconds"] for r in these] for how in ("transfer", "scratch")}
        tasks = [t for r in these for t in r["transfer"]["long_tasks_ms"]]
        frame = max(r["transfer"]["longest_frame_script_ms"] for r in these)
        est = lambda how: "/".join(  # noqa: E731
            "-" if r["estimates"].get(how) is None else f"{r['estimates'][how]:.0%}" for r in these)
        cpy = lambda how: f"{np.mean([r['cpython'][how] for r in these]):.1%}"  # noqa: E731
        lines.append(
            f"| {n_classes} x {per_class} | {len(these)} ({these[0]['others']}) | **{pct(acc['transfer'])}** | "
            f"{pct(acc['scratch'])} | **{np.mean(secs['transfer']):.1f}** (max {max(secs['transfer']):.1f}) | "
            f"{np.mean(secs['scratch']):.1f} (max {max(secs['scratch']):.1f}) | "
            f"{len(tasks)}{f' (longest {max(tasks)} ms)' if tasks else ''}; "
            f"{f'page scripts in one frame up to {frame} ms' if frame else 'no long animation frame'} | "
            f"{est('transfer')} / {est('scratch')} | {cpy('transfer')} / {cpy('scratch')} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unipen", required=True, metavar="FILE", help="the UNIPEN capital letters JSON (not part "
                                                                        "of the project)")
    parser.add_argument("--model", help="load this model file; default: the page's network trained in CPython")
    parser.add_argument("--all", action="store_true", help="the grid: 3, 5, 10, 20 letters x 5, 10, 20 drawings")
    parser.add_argument("--classes", type=int, nargs="+", help="letters per project (default 5; --all: 3 5 10 20)")
    parser.add_argument("--drawings", type=int, nargs="+", help="drawings taught per letter (default 10; --all: "
                                                                "5 10 20)")
    parser.add_argument("--splits", type=int, help="splits per configuration (default 2; --all: 1)")
    parser.add_argument("--others", type=int, default=100, help="other labs' drawings read per split (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="picks the splits, as bench/classes.py's --seed")
    parser.add_argument("--placement-seed", type=int, default=0, help="bench/handwriting.py's placement seed")
    run = harness.Run(parser, argv, __spec__.name)
    args, log = run.args, run.log
    grid_classes = args.classes or (list(GRID_CLASSES) if args.all else [5])
    grid_drawings = args.drawings or (list(GRID_DRAWINGS) if args.all else [10])
    n_splits = args.splits or (1 if args.all else 2)
    configs = [(c, k) for c in grid_classes for k in grid_drawings]

    from playwright.sync_api import sync_playwright

    summary = harness.build_site(args.out, log)
    os.environ.setdefault("PYCNN_DATA", str(Path(summary["out_dir"]) / "data"))  # the bundled digits, for the model
    _, letters = classes_cpython.load_letters(args.unipen)
    data = classes_cpython.Letters(args.unipen, args.placement_seed)
    log(data.describe())
    base, described = classes_cpython.base_model(args.model)
    log(f"base model: {described}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pycnn-classes-") as tmp:
        model_path = Path(tmp) / "model.npz"
        base.save(model_path)
        with harness.serving(sitebuild.make_server(args.out)) as url, sync_playwright() as p:
            browser = harness.launch(p, args.chromium)
            chromium = browser.version
            for n_classes, per_class in configs:
                log(f"{n_classes} letters x {per_class} drawings:")
                chosen = classes_cpython.splits(data, n_classes, per_class, n_splits, args.seed)
                for index, split in enumerate(chosen):
                    rng = np.random.default_rng([args.seed, n_classes, per_class, index])  # which others are read
                    row = one_split(browser, url, model_path, letters, split, args.others, rng, args.placement_seed,
                                    log)
                    if "refused" not in row:
                        row["cpython"] = cpython_scores(base, data, split)
                    rows.append(row)
                    if "refused" in row:
                        break
            browser.close()

    lines = [run.header("pycnn: your own classes in the page", chromium), f"command: {run.command}",
             f"base model: {described}", f"transfer recipe {pycnn_classes.TransferConfig()}; "
             f"from scratch {pycnn_classes.ScratchConfig()}", ""] + table(rows, configs)
    headline = [r for r in rows if r["classes"] == 5 and r["drawings"] == 10 and "refused" not in r]
    if headline:
        acc = np.mean([r["transfer"]["accuracy"] or 0 for r in headline])  # a run that kept nothing reads none
        secs = max(r["transfer"]["seconds"] for r in headline)
        tasks = [t for r in headline for t in r["transfer"]["long_tasks_ms"]]
        lines.append(f"\ntargets, 5 letters x 10 drawings: others read {acc:.1%} by transfer (target >= {TARGET:.0%}); "
                     f"transfer at most {secs:.1f} s in the page (target <= {TRANSFER_BUDGET_S} s); "
                     f"{len(tasks)} main-thread tasks >= 50 ms during it (target none)")
    errors = sum(len(r.get("console_errors", [])) for r in rows)
    results = {r[how]["result"] for r in rows for how in ("transfer", "scratch") if how in r}
    lines.append(f"runs: {', '.join(sorted(results))}; console errors: {errors}")
    run.finish(lines, {"command": run.command, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
