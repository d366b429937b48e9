#!/usr/bin/env python3
"""Training on several cores in the page: the Workers setting at 1, 2 and 4 (helper workers
sharing each batch's shards), in headless Chromium, alternating within one run:

    python -m bench.browser.cores                  # about 5 minutes
    python -m bench.browser.cores --rounds 3 --click-rounds 1 --json out.json

1. Runs of the same settings (1 epoch of --train-size digits, batch 64, so 4 shards of 16 per
   batch) with Workers = 1, 2, 4 in turn, the order reversed every other round, in one page:
   images/s from Train's click to the run's end (held-out evaluation included, as a learner
   waits for it), the page's longest main-thread task meanwhile, each worker's heap.
2. One click on Train with the page's default settings, Workers = 1 against Workers = auto
   (this machine's cores), alternating (--click-rounds; 0 skips it).
3. The helpers' boot: time from the setting's change to a helper being up, and the bytes the host
   sent for it once the service worker has the site (a helper loads the files the page already
   has, through it).
4. What the shards cost one worker (--shard-rounds; 0 skips it): the page's recipe trained in one
   Pyodide worker of the benchmark page (bench/browser/shardrate.py) with TrainingConfig.shards =
   1, 2 and 4 at batch 64, alternating: the price of a run that is the same on any number of
   workers, paid when there is only one.
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.browser import browser as tfjs_bench
from bench.browser import harness
from bench.browser.harness import READY_TIMEOUT_MS, TRAIN_TIMEOUT_MS
from bench.browser.offline import serve, sent_since

COUNTS = ("1", "2", "4")  # the Workers setting's numbers (4 shards per batch: 3 workers would share them 2-1-1)


def use_workers(page, value):
    """Choose `value` in the Workers setting; wait until the workers it asks for are up -> seconds it took."""
    start = time.perf_counter()
    page.get_by_test_id("cores-select").select_option(value)
    wanted = value if value != "auto" else page.evaluate("Math.min(4, navigator.hardwareConcurrency)")
    page.wait_for_selector(f'body[data-workers="{wanted}"]', state="attached", timeout=READY_TIMEOUT_MS)
    return time.perf_counter() - start


# (performance.now(), step) each time the progress bar's data-step changes
RECORD_STEPS = """() => {
  window.__steps = [];
  const bar = document.querySelector('[data-testid=progress]');
  new MutationObserver(() => window.__steps.push([performance.now(), Number(bar.dataset.step)]))
    .observe(bar, { attributes: true, attributeFilter: ['data-step'] });
}"""


def training_rate(steps, batch_size, skip=5):
    """Images/s between the skip-th step shown and the last one (the epoch's held-out evaluation comes after)."""
    shown = [(t, s) for t, s in steps if s >= skip]
    (t0, s0), (t1, s1) = shown[0], shown[-1]
    return (s1 - s0) * batch_size * 1000 / (t1 - t0)


def thread_seconds():
    """CPU seconds (user + system) of the Chromium renderers' threads this process started, by thread name
    (CrRendererMain: the page's main thread; DedicatedWorker: the workers; ...)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid, cmdline in harness._proc_tree(os.getpid()).items():
        if "--type=renderer" not in cmdline:
            continue
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            name = name.rstrip("0123456789 ")  # numbered pools count as one
            out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def run_once(page, settings):
    """Fill settings, click Train, wait for the run's end -> {seconds, images_per_second, main thread}."""
    for testid, value in settings.items():
        page.get_by_test_id(testid).fill(value)
    page.evaluate("() => document.body.removeAttribute('data-run-result')")
    page.evaluate("() => { window.__steps = []; }")
    cpu_before = thread_seconds()
    started = page.evaluate("performance.now()")
    page.get_by_test_id("train-button").click()
    page.wait_for_selector('body[data-state="ready"][data-run-result]', state="attached", timeout=TRAIN_TIMEOUT_MS)
    ended = page.evaluate("performance.now()")
    cpu = {name: round(seconds - cpu_before.get(name, 0), 2) for name, seconds in thread_seconds().items()}
    result = page.get_attribute("body", "data-run-result")
    if result != "finished":
        raise RuntimeError(f"the run ended {result}")
    marks = page.evaluate("window.__bench")
    seconds = (ended - started) / 1000
    images = int(settings["epochs-input"]) * int(settings["train-size-input"])
    probe = harness.probe(page)
    workers = probe["workers"]
    return {"seconds": seconds, "images_per_second": images / seconds,
            "training_images_per_second": training_rate(page.evaluate("window.__steps"), int(settings["batch-size-input"])),
            "main_thread": harness.main_thread_load(marks, started, ended),
            "cpu_seconds": {name: seconds for name, seconds in cpu.items() if seconds >= 0.05},
            "worker_heap_bytes": probe.get("worker_heap_bytes"),
            "helper_heap_bytes": [h["heap_bytes"] for h in workers["helpers"]]}


def default_click(page, value, defaults):
    """One click on Train with the page's default settings and Workers = value -> seconds to the run's end."""
    use_workers(page, value)
    return run_once(page, defaults)["seconds"]


def shard_cost(browser, dist, rounds, log):
    """{shards: [images/s of each round]} of the page's recipe in one Pyodide worker (batch 64)."""
    with tempfile.TemporaryDirectory(prefix="pycnn-bench-") as tmp:
        tfjs_bench.write_training_digits(dist, Path(tmp))
        with harness.serving(harness.bench_server(dist, Path(tmp))) as url:
            context = browser.new_context()
            page = context.new_page()
            page.goto(url + "bench/bench.html")
            page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=READY_TIMEOUT_MS)
            page.evaluate("bench.start('pycnn', 'pycnn', {models: ['seed']})")
            log(f"shards in one worker, {rounds} rounds of 3 s each...")
            rates = page.evaluate(f"bench.call('pycnn', 'shards', {{rounds: {rounds}, seconds: 3, batchSize: 64}})")
            context.close()
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of Workers = 1, 2, 4 (default 3)")
    parser.add_argument("--train-size", type=int, default=3200, help="digits of each run (default 3200: 50 batches)")
    parser.add_argument("--click-rounds", type=int, default=1,
                        help="rounds of one click with the default settings, Workers 1 against auto (default 1)")
    parser.add_argument("--shard-rounds", type=int, default=5,
                        help="rounds of shards 1, 2, 4 in one Pyodide worker (default 5; 0 skips)")
    run = harness.Run(parser, argv, __spec__.name)
    args, log = run.args, run.log
    dist = Path(harness.build_site(args.out, log)["out_dir"])
    settings = {"epochs-input": "1", "train-size-input": str(args.train_size), "batch-size-input": "64",
                "learning-rate-input": "0.01"}
    samples = {value: [] for value in COUNTS}
    result = {"rounds": samples, "clicks": {"1": [], "auto": []}}
    with serve(dist) as (server, url), sync_playwright() as p:
        browser = harness.launch(p, args.chromium)
        context, page, errors = harness.open_app(browser, url)
        cores = page.evaluate("navigator.hardwareConcurrency")
        page.evaluate(RECORD_STEPS)
        defaults = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#train-form input')]
            .filter((i) => i.dataset.testid && i.type !== 'checkbox').map((i) => [i.dataset.testid, i.value]))""")
        use_workers(page, "1")
        # as on any visit after the first: the service worker has the site (helpers fetch through it)
        page.wait_for_selector('body[data-offline="ready"]', state="attached", timeout=READY_TIMEOUT_MS)
        mark = len(server.log)
        result["helpers_up_s"] = use_workers(page, "4")
        result["helper_bytes"], result["helper_files"] = sent_since(server, mark)
        result["helpers"] = harness.probe(page)["workers"]["helpers"]
        log(f"3 helpers up in {result['helpers_up_s']:.1f} s; the host sent {result['helper_bytes']:,} bytes for them")
        for r in range(args.rounds):
            for value in (COUNTS if r % 2 == 0 else COUNTS[::-1]):
                use_workers(page, value)
                sample = run_once(page, settings)
                samples[value].append(sample)
                log(f"round {r + 1}, {value} worker(s): {sample['images_per_second']:,.0f} images/s "
                    f"({sample['seconds']:.1f} s; training alone {sample['training_images_per_second']:,.0f}/s), longest main-thread task {sample['main_thread']['longest_task_ms']:.0f} ms; "
                    f"CPU s by thread {sample['cpu_seconds']}")
        for r in range(args.click_rounds):
            for value in (("1", "auto") if r % 2 == 0 else ("auto", "1")):
                result["clicks"][value].append(default_click(page, value, defaults))
                log(f"one click, Workers = {value}: {result['clicks'][value][-1]:.1f} s")
        result["errors"] = errors
        lines = [run.header("pycnn: training on several cores in the page", browser.version),
                 f"navigator.hardwareConcurrency = {cores}; {args.rounds} rounds of 1 epoch of {args.train_size:,} "
                 "digits, batch 64 (4 shards of 16)", "",
                 "| workers | images/s, click to end (median) | / 1 worker | training alone, images/s | / 1 worker "
                 "| longest main-thread task | heaps |",
                 "|---|---|---|---|---|---|---|"]
        for value in COUNTS:
            rates = [s["images_per_second"] for s in samples[value]]
            ratios = [s["images_per_second"] / one["images_per_second"] for s, one in zip(samples[value], samples["1"])]
            alone = [s["training_images_per_second"] for s in samples[value]]
            alone_ratios = [a / s["training_images_per_second"] for a, s in zip(alone, samples["1"])]
            last = samples[value][-1]
            heaps = ", ".join(harness.fmt_mb(b) for b in [last["worker_heap_bytes"], *last["helper_heap_bytes"]])
            longest = max(s["main_thread"]["longest_task_ms"] for s in samples[value])
            lines.append(f"| {value} | {statistics.median(rates):,.0f} | {statistics.median(ratios):.2f}x "
                         f"| {statistics.median(alone):,.0f} | {statistics.median(alone_ratios):.2f}x "
                         f"| {longest:.0f} ms | {heaps} |")
        boots = [h["boot_ms"] for h in result["helpers"] if h["boot_ms"]]
        lines += ["", f"Helpers: 3 up in {result['helpers_up_s']:.1f} s (each {', '.join(f'{b / 1000:.1f} s' for b in boots)});"
                  f" bytes the host sent for them: {result['helper_bytes']:,}"]
        if result["clicks"]["1"]:
            one, auto = statistics.median(result["clicks"]["1"]), statistics.median(result["clicks"]["auto"])
            lines.append(f"One click with the default settings: Workers 1 {one:.1f} s, auto ({min(cores, 4)}) {auto:.1f} s: "
                         f"**{auto / one:.2f}x**")
        if errors:
            lines.append(f"page errors: {errors}")
        context.close()
        if args.shard_rounds:
            rates = result["shard_cost"] = shard_cost(browser, dist, args.shard_rounds, log)
            lines += ["", "The shards' cost in one worker (batch 64, the default network): " + ", ".join(
                f"{k} shard{'s' if k != '1' else ''} {statistics.median(v):,.0f} images/s "
                f"({statistics.median(a / b for a, b in zip(v, rates['1'])):.2f}x)" for k, v in rates.items())]
        browser.close()
    run.finish(lines, result)


if __name__ == "__main__":
    main()
