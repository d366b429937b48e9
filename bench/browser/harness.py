"""What the browser benchmarks share: the site built and served, the benchmark page, headless
Chromium, page helpers, timing scripts and memory readers.

    run = Run(parser, argv, __spec__.name)                   # the options, with --out, --json, --chromium
    summary = build_site(run.args.out, run.log)               # dist/, a no-op when nothing changed
    with serving(sitebuild.make_server(run.args.out)) as url, sync_playwright() as p:
        browser = launch(p, run.args.chromium)
        context, page, errors = open_app(browser, url)        # at body[data-state=ready]
        ...
    run.finish([run.header("pycnn: what", browser.version), ...], result)   # print, keep the raw numbers

The page's own numbers come from its probe (web/probe.js, `probe(page)`); the times it cannot know
(when it became ready, when Train was clicked, main-thread tasks) from TIMING_SCRIPT.
"""
import contextlib
import datetime
import functools
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sitebuild

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATIC = HERE / "static"
TFJS = ROOT / "node_modules" / "@tensorflow"
LAUNCH_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
CHROMIUM = os.environ.get("PYCNN_CHROMIUM", "/usr/bin/chromium")
READY_TIMEOUT_MS = 120_000
TRAIN_TIMEOUT_MS = 300_000
ANSWER_TIMEOUT_MS = 15_000

# Installed before any page script: when body[data-state] first becomes "ready", when the
# Train button is clicked and when a run's result appears (performance.now(), ms since
# this document's navigation started).
TIMING_SCRIPT = """
(() => {
  const marks = { readyAt: null, states: [], trainClickAt: null, runResultAt: null, runResult: null };
  Object.defineProperty(window, "__bench", { value: marks });
  new MutationObserver(() => {
    const body = document.body;
    if (!body) return;
    const state = body.dataset.state;
    if (marks.states[marks.states.length - 1]?.state !== state) marks.states.push({ state, at: performance.now() });
    if (state === "ready" && marks.readyAt === null) marks.readyAt = performance.now();
    if (body.dataset.runResult && marks.runResult === null && marks.trainClickAt !== null && state === "ready") {
      marks.runResult = body.dataset.runResult;
      marks.runResultAt = performance.now();
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state", "data-run-result"], childList: true });
  document.addEventListener("click", (e) => {
    if (e.target?.closest?.('[data-testid="train-button"]') && marks.trainClickAt === null) marks.trainClickAt = performance.now();
  }, true);
  // main-thread tasks of 50 ms or more (Long Tasks API, wall clock), and long animation frames
  // with the page scripts that ran in them (a task can be long only because the cores were busy)
  marks.longTasks = [];
  marks.frames = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) marks.longTasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: "longtask", buffered: true });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const scripts = (e.scripts || []).map((s) => ({ ms: Math.round(s.duration), what: `${s.invoker} ${s.sourceFunctionName || ""}`.trim() }));
      const scriptMs = (e.scripts || []).reduce((sum, script) => sum + script.duration, 0);
      marks.frames.push({ start: e.startTime, duration: e.duration, scriptMs, scripts });
    }
  }).observe({ type: "long-animation-frame", buffered: true });
})();
"""


def during(entries, started, ended):
    """The entries ({start, duration}: long tasks, frames) that overlap [started, ended] (ms)."""
    return [e for e in entries if e["start"] + e["duration"] >= started and e["start"] <= ended]


def main_thread_load(marks, started, ended):
    """Longest main-thread task and longest page-script time in one animation frame (ms) in [started, ended]."""
    tasks = [t["duration"] for t in during(marks["longTasks"], started, ended)]
    scripts = [f["scriptMs"] for f in during(marks["frames"], started, ended)]
    return {"long_tasks": len(tasks), "longest_task_ms": max(tasks, default=0),
            "longest_frame_script_ms": max(scripts, default=0)}


# ---------------------------------------------------------------- the site and the benchmark page


def build_site(out, log):
    """Build the site into out (relative to the checkout) -> the build's summary."""
    log("building the site (a no-op when nothing changed)...")
    summary = sitebuild.build(out, quiet=True)
    log(f"  {summary['out_dir']}: {summary['files']} files, {len(summary['written'])} written, "
        f"{summary['seconds']:.1f} s")
    return summary


@contextlib.contextmanager
def serving(server):
    """Serve with server in a thread for the duration -> its base URL (http://127.0.0.1:PORT/)."""
    threading.Thread(target=server.serve_forever, name="bench-server", daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class BenchHandler(sitebuild.Handler):
    """dist/ as the site is served (same MIME types, CSP, no-cache), plus extra roots (routes)."""

    routes = {}  # URL prefix -> directory

    def translate_path(self, path):
        clean = urllib.parse.urlsplit(path).path
        for prefix, directory in self.routes.items():
            if clean.startswith(prefix):
                saved = self.directory
                self.directory = str(directory)
                try:
                    return super().translate_path("/" + clean[len(prefix):])
                finally:
                    self.directory = saved
        return super().translate_path(path)

    def end_headers(self):
        """The site's headers, except that the TF.js worker gets no CSP: TF.js evaluates
        strings as code ('unsafe-eval'), which the site's policy forbids."""
        if urllib.parse.urlsplit(self.path).path == "/bench/tfjs_worker.js":
            self.send_header("Cache-Control", "no-cache")
            SimpleHTTPRequestHandler.end_headers(self)
        else:
            super().end_headers()


def bench_server(dist, data_dir):
    """A server (not yet serving) for dist/ with the benchmark page (static/) at /bench/, the bench
    package at /bench-py/ (the Pyodide worker installs steploop and profile_step from there), the
    training digits at /bench-data/ and TF.js's dist files and .wasm straight from node_modules."""
    routes = {
        "/bench/": STATIC,
        "/bench-py/": ROOT / "bench",
        "/bench-data/": data_dir,
        "/tfjs/tfjs/": TFJS / "tfjs" / "dist",
        "/tfjs/tfjs-backend-wasm/": TFJS / "tfjs-backend-wasm" / "dist",
    }
    handler_cls = type("Handler", (BenchHandler,), {"routes": routes})
    return ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler_cls, directory=str(dist)))


# ---------------------------------------------------------------- Chromium and the page


def add_browser_args(parser):
    """The options every browser benchmark takes: --out, --json, --chromium."""
    parser.add_argument("--out", default="dist", help="site directory to build and serve (default dist/)")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser to drive (default {CHROMIUM})")


def chromium_path(chromium=CHROMIUM):
    """The Chromium to launch, or None for Playwright's own when that file does not exist."""
    return chromium if chromium and Path(chromium).exists() else None


def launch(playwright, chromium=CHROMIUM):
    """Headless Chromium with the benchmarks' flags."""
    return playwright.chromium.launch(executable_path=chromium_path(chromium), args=LAUNCH_FLAGS, headless=True)


def watch_errors(page, kinds=("error",), errors=None):
    """A list (errors, or a new one) that collects the page's console messages of these kinds and its
    uncaught errors."""
    errors = [] if errors is None else errors
    page.on("console", lambda m: errors.append(m.text) if m.type in kinds else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def open_app(browser, url, **context_options):
    """A new context and page of the site (TIMING_SCRIPT installed) at ready -> (context, page, errors)."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **context_options})
    context.add_init_script(TIMING_SCRIPT)
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(url + "index.html")
    page.wait_for_selector("body[data-state=ready]", state="attached", timeout=READY_TIMEOUT_MS)
    return context, page, errors


def wait_ready(page):
    """Wait for body[data-state=ready] -> when it came (ms since the navigation)."""
    page.wait_for_function("() => window.__bench && window.__bench.readyAt !== null", timeout=READY_TIMEOUT_MS)
    return page.evaluate("window.__bench.readyAt")


def page_stages(page):
    """The page's own per-stage load times (ms), from data-ms on its stage list."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-testid=stages] [data-stage]')]
        .filter((li) => li.dataset.ms !== undefined).map((li) => [li.dataset.stage, Number(li.dataset.ms)]))""")


def probe(page):
    """The page's probe (web/probe.js): its times, counts and memory figures."""
    return page.evaluate("() => window.pycnnProbe.read()")


def load_model(page, path, timeout=60_000):
    """A model file through the page's Load model file input; waits until it is loaded and the page is ready."""
    page.get_by_test_id("load-model").set_input_files(str(path))
    page.wait_for_selector("body[data-state=ready][data-model=loaded]", state="attached", timeout=timeout)


# ---------------------------------------------------------------- drawing on the canvas

# What the canvas received: every pointer event on it in canvas pixels, computed the way
# web/sketch.js does (position in the element's box, scaled to the canvas' width and height).
RECORD_POINTS = """
(canvas) => {
  window.__points = [];
  const record = (type) => (e) => {
    const rect = canvas.getBoundingClientRect();
    for (const p of type === "move" ? (e.getCoalescedEvents?.() || [e]) : [e])
      window.__points.push([type, (p.clientX - rect.left) / rect.width * canvas.width,
                            (p.clientY - rect.top) / rect.height * canvas.height]);
  };
  canvas.addEventListener("pointerdown", record("down"));
  canvas.addEventListener("pointermove", record("move"));
  canvas.addEventListener("pointerup", record("up"));
}
"""

# The page has answered the finished drawing: the prediction's data-answered-version is the
# canvas' data-version, and it names a digit.
ANSWERED = """
() => {
  const canvas = document.querySelector('[data-testid=draw-canvas]');
  const answer = document.querySelector('[data-testid=prediction]');
  return answer.dataset.answeredVersion === canvas.dataset.version && answer.dataset.digit !== "";
}
"""


def draw(page, canvas, strokes):
    """Strokes in canvas pixels as real mouse strokes (down, a move per point, up) -> the pointer
    events the canvas received (with RECORD_POINTS installed on it; else none)."""
    canvas.scroll_into_view_if_needed()
    page.evaluate("window.__points = []")
    size = int(canvas.get_attribute("width"))
    for stroke in strokes:
        rect = canvas.bounding_box()  # read per stroke: the page's layout may move the canvas a little
        sx, sy = rect["width"] / size, rect["height"] / size
        points = [(rect["x"] + x * sx, rect["y"] + y * sy) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point)
        page.mouse.up()
    return page.evaluate("window.__points")


def received_strokes(points):
    """Recorded pointer events -> strokes as the canvas drew them (down starts one, moves extend it)."""
    strokes = []
    for kind, x, y in points:
        if kind == "down":
            strokes.append([(x, y)])
        elif kind == "move" and strokes and strokes[-1] is not None:
            strokes[-1].append((x, y))
        elif kind == "up" and strokes:
            strokes.append(None)  # moves after an up, until the next down, draw nothing
    return [s for s in strokes if s]


def draw_and_read(page, canvas, strokes):
    """Clear, draw strokes (canvas px) with the mouse, wait for the answer to the finished drawing
    -> (digit read or -1 when none came, the pointer events the canvas received)."""
    page.get_by_test_id("clear-button").click()
    points = draw(page, canvas, strokes)
    try:
        page.wait_for_function(ANSWERED, timeout=ANSWER_TIMEOUT_MS, polling=20)
    except Exception:  # no answer to this drawing (too little ink): nothing read
        return -1, points
    return int(page.get_by_test_id("prediction").get_attribute("data-digit")), points


# ---------------------------------------------------------------- processes and memory


def _proc_tree(root_pid):
    """pid -> cmdline of every descendant of root_pid (from /proc)."""
    children, cmd = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = {}, list(children.get(root_pid, []))
    while todo:
        pid = todo.pop()
        out[pid] = cmd.get(pid, "")
        todo += children.get(pid, [])
    return out


def renderer_memory():
    """RSS and peak RSS (VmHWM) of the Chromium renderer processes this process started."""
    result = []
    for pid, cmdline in _proc_tree(os.getpid()).items():
        if "--type=renderer" not in cmdline:
            continue
        fields = {}
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        fields[key] = int(value.split()[0]) * 1024
        except OSError:
            continue
        result.append({"pid": pid, "rss": fields.get("VmRSS"), "peak_rss": fields.get("VmHWM")})
    return result


def fmt_mb(n):
    """Bytes as MiB with one decimal, or n/a."""
    return f"{n / 2**20:.1f} MiB" if n is not None else "n/a"


# ---------------------------------------------------------------- the report


class Run:
    """One run of a benchmark: its options (the parser's own, then --out, --json, --chromium), its
    log, when it started, how it was run and the load average before it."""

    def __init__(self, parser, argv, module):
        add_browser_args(parser)
        given = sys.argv[1:] if argv is None else list(argv)
        self.args = parser.parse_args(given)
        self.command = command_line(module, given)
        self.log = functools.partial(print, flush=True)
        self.started = time.perf_counter()
        self.load_before = load_average()

    def header(self, title, chromium):
        """The report's first line: what, when, which Chromium, the load average before and after."""
        return f"{title}, {now()} (Chromium {chromium}, load average {self.load_before} before / {load_average()} after)"

    def finish(self, lines, result):
        """Print the report and the benchmark's wall time; write result as JSON to --json when given."""
        print()
        print("\n".join(lines))
        print(f"\n(benchmark wall time {time.perf_counter() - self.started:.0f} s)")
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")


def load_average():
    """The 1, 5 and 15 minute load averages as one string."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def now():
    """The time in UTC, to the minute."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def command_line(module, argv, private=("--unipen",)):
    """How the benchmark was run, as `python -m MODULE ARGS`, with the value of each private option
    (a data file that is not part of the project) written FILE: where it lies stays private."""
    given = list(argv)
    given = [("FILE" if i and given[i - 1] in private else a) for i, a in enumerate(given)]
    return " ".join(["python -m", module, *given])
