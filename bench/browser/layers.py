#!/usr/bin/env python3
"""What each newer layer kind costs in the page's Pyodide worker, against the network without it:

    python -m bench.browser.layers                   # every variant (about 8 minutes)
    python -m bench.browser.layers --rounds 3 --seconds 1 --only BatchNorm

The variants and the measurement are bench/layers.py's (the page's default network changed in one
way each: a BatchNorm after each conv, dropout, average pooling, a stride-2 conv, leaky ReLU, tanh,
sigmoid), run in a Pyodide worker of the benchmark page (static/pycnn_worker.mjs) booted as the page
boots it: training images/s (float32, Adam, batch 64, the subset's training digits) and inference
images/s, the variant and the base network in alternate rounds. PyTorch does not run in Pyodide:
`python -m bench.layers` measures the same variants in CPython against it.
"""
import argparse
import statistics
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench import layers as layer_bench
from bench.browser import browser as tfjs_bench
from bench.browser import harness
from bench.browser.harness import READY_TIMEOUT_MS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternate rounds per variant (default 5)")
    parser.add_argument("--seconds", type=float, default=1.5, help="training seconds per round (default 1.5)")
    parser.add_argument("--only", action="append", choices=list(layer_bench.VARIANTS),
                        help="a variant to measure (repeatable)")
    run = harness.Run(parser, argv, __spec__.name)
    args, log = run.args, run.log
    dist = Path(harness.build_site(args.out, log)["out_dir"])
    variants = args.only or list(layer_bench.VARIANTS)
    results = {}
    with tempfile.TemporaryDirectory(prefix="pycnn-bench-") as tmp, sync_playwright() as p:
        tfjs_bench.write_training_digits(dist, Path(tmp))
        with harness.serving(harness.bench_server(dist, Path(tmp))) as url:
            browser = harness.launch(p, args.chromium)
            page = browser.new_page()
            page.goto(url + "bench/bench.html")
            page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=READY_TIMEOUT_MS)
            page.evaluate("bench.start('pycnn', 'pycnn', {models: ['seed']})")
            for variant in variants:
                log(f"{variant}: {args.rounds} rounds of {args.seconds} s...")
                results.update(page.evaluate("(a) => bench.call('pycnn', 'layers', a)",
                                             {"variants": [variant], "rounds": args.rounds, "seconds": args.seconds}))
            version = browser.version
            browser.close()
    lines = [run.header("pycnn: the newer layers in the page's Pyodide worker", version), "",
             "| variant (changed from the default network) | training images/s: without -> with (ratio) "
             "| inference images/s: without -> with (ratio) |", "|---|---|---|"]
    for variant, samples in results.items():
        cells = [f"{variant}: {layer_bench.VARIANTS[variant][0]}"]
        for task in ("train", "predict"):
            without, with_ = samples[f"pycnn without {task}"], samples[f"pycnn with {task}"]
            cells.append(f"{statistics.median(without):,.0f} -> {statistics.median(with_):,.0f} "
                         f"(**{layer_bench.ratio(with_, without):.2f}x**)")
        lines.append("| " + " | ".join(cells) + " |")
    run.finish(lines, results)


if __name__ == "__main__":
    main()
