"""Helpers shared by the end-to-end tests (imported by conftest.py and the test modules): browser
launch settings, a page wrapper, a page's baseline, and digits drawn as mouse strokes."""
import math
import os
import shutil
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parents[2]

READY_TIMEOUT_MS = 120_000  # Pyodide boot: ~3-7 s here, far more on a loaded CI machine
TRAIN_TIMEOUT_MS = 180_000
SETTLE_TIMEOUT_MS = 30_000  # a page coming back to its baseline: a Reset, a preset, Remove all
LAUNCH_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
ARTIFACTS = ROOT / "test-results"


# Installed before any page script: records long main-thread tasks and CSP violations.
PROBE_SCRIPT = """
(() => {
  const probe = { longTasks: [], csp: [] };
  Object.defineProperty(window, "__testProbe", { value: probe });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) probe.longTasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: "longtask", buffered: true });
  } catch (e) { probe.longTaskError = String(e); }
  probe.frames = [];  // long animation frames, with the scripts that ran in them (diagnostics)
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) probe.frames.push({
        start: e.startTime, duration: e.duration, blocking: e.blockingDuration,
        scriptMs: (e.scripts || []).reduce((sum, s) => sum + s.duration, 0),  // page scripts' own time in the frame
        scripts: (e.scripts || []).map((s) => `${s.invoker} ${s.sourceURL.split("/").pop()}:${s.sourceCharPosition} ${Math.round(s.duration)}ms`),
      });
    }).observe({ type: "long-animation-frame", buffered: true });
  } catch (e) { probe.framesError = String(e); }
  probe.events = [];  // input events slower than 16 ms from input to next paint (Event Timing API)
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) probe.events.push({
        name: e.name, start: e.startTime, duration: e.duration, delay: e.processingStart - e.startTime,
      });
    }).observe({ type: "event", durationThreshold: 16, buffered: true });
  } catch (e) { probe.eventsError = String(e); }
  document.addEventListener("securitypolicyviolation", (e) => {
    probe.csp.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
})();
"""


def chromium_path():
    """$PYCNN_CHROMIUM, else Debian's /usr/bin/chromium, else None (Playwright's own browser)."""
    env = os.environ.get("PYCNN_CHROMIUM")
    if env:
        return env
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def main_thread_load(probe, started, ended):
    """Long tasks (Long Tasks API, wall clock) and long animation frames in which page scripts ran,
    overlapping [started, ended] (performance.now() ms of the page)."""
    overlaps = lambda e: e["start"] + e["duration"] >= started and e["start"] <= ended  # noqa: E731
    tasks = [round(t["duration"]) for t in probe["longTasks"] if overlaps(t)]
    frames = [f for f in probe["frames"] if overlaps(f) and f["blocking"] > 0 and f["scriptMs"] > 0]
    return tasks, frames


class PageLog:
    """Everything a page did that tests assert on: console errors, page errors, requests."""

    def __init__(self):
        self.console_errors = []
        self.page_errors = []
        self.requests = []

    def clear(self):
        """Forget what was seen so far (the lists stay the ones the page's listeners fill)."""
        for seen in (self.console_errors, self.page_errors, self.requests):
            seen.clear()

    def attach(self, context, page):
        context.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))


class App:
    """A page of the site plus its log and small helpers (state via data-* only)."""

    def __init__(self, context, page, url, log):
        self.context, self.page, self.url, self.log = context, page, url, log
        self.saves_at_start = 0  # the page probe's count of models kept, when the test began

    def by_id(self, testid):
        return self.page.get_by_test_id(testid)

    def wait_state(self, state, timeout=READY_TIMEOUT_MS):
        self.page.wait_for_selector(f'body[data-state="{state}"]', state="attached", timeout=timeout)

    def goto_ready(self):
        self.page.goto(self.url)
        self.wait_state("ready")

    def attr(self, testid, name):
        return self.by_id(testid).get_attribute(name)

    def body(self, name):
        """A data-* attribute of <body> (state, model, runResult, ...), or None."""
        return self.page.evaluate(f"document.body.dataset.{name} ?? null")

    def fill(self, values):
        """Fill form fields: {testid: text}."""
        for testid, value in values.items():
            self.by_id(testid).fill(value)

    def train(self, values, result="finished", timeout=TRAIN_TIMEOUT_MS):
        """Fill the settings, press Train and wait until the run ends with `result`."""
        self.fill(values)
        self.by_id("train-button").click()
        self.wait_run_result(result, timeout)

    def wait_run_result(self, result, timeout=TRAIN_TIMEOUT_MS):
        self.page.wait_for_selector(f'body[data-state="ready"][data-run-result="{result}"]', state="attached",
                                    timeout=timeout)

    def load_model(self, path):
        """Load a model file through the page's file input and wait until it is the page's model."""
        self.by_id("load-model").set_input_files(str(path))
        self.page.wait_for_selector('body[data-model="loaded"]', state="attached", timeout=60_000)

    def wait_saves(self, count, timeout=TRAIN_TIMEOUT_MS):
        """Until the page has kept a model in IndexedDB `count` times since the test began."""
        self.page.wait_for_function("([start, n]) => (window.pycnnProbe.read().saves ?? 0) - start >= n",
                                    arg=[self.saves_at_start, count], timeout=timeout)

    def wait_saved(self, epochs):
        """Until a model of `epochs` epochs is kept in IndexedDB, since the test began (a reload before
        that could lose the write)."""
        self.page.wait_for_function(
            "([start, n]) => (window.pycnnProbe.read().saves ?? 0) > start && window.pycnnProbe.read().saved_epochs === n",
            arg=[self.saves_at_start, epochs])

    def measurements(self):
        """The page's probe (web/probe.js): its times, counts and memory figures."""
        return self.page.evaluate("() => window.pycnnProbe.read()")

    def probe(self):
        """What the test's own probe (PROBE_SCRIPT) recorded: long tasks, frames, input events, CSP."""
        return self.page.evaluate("() => JSON.parse(JSON.stringify(window.__testProbe))")

    def screenshot(self, name):
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path


HELPER_NAME = "pycnn-helper"  # a helper worker's name starts so (web/helpers.js)


def _is_helper(worker):
    try:
        return worker.evaluate(f"() => self.name.startsWith('{HELPER_NAME}')")
    except Exception:  # a worker that has just ended
        return None


def python_worker(page):
    """The page's Python worker (the one that holds the session; not a helper worker)."""
    workers = [w for w in page.workers if _is_helper(w) is False]
    assert len(workers) == 1, f"{len(workers)} Python workers"
    return workers[0]


def helper_workers(page):
    """The page's helper workers that are running."""
    return [w for w in page.workers if _is_helper(w)]


def new_context(browser, init_scripts=(), **context_options):
    """A new browser context (Playwright options, e.g. has_touch=True, on top of ours).
    The site's service worker is blocked unless a test allows it (service_workers="allow",
    tests/e2e/test_offline.py): a page it controls is served from Cache Storage, out of reach
    of the routes that tests use to inject faults."""
    context = browser.new_context(**{"viewport": VIEWPORT, "accept_downloads": True, "service_workers": "block",
                                     **context_options})
    context.add_init_script(PROBE_SCRIPT)
    for script in init_scripts:
        context.add_init_script(script)
    return context


def open_page(context, url):
    """A new page of the site in `context`, with its log."""
    page = context.new_page()
    log = PageLog()
    log.attach(context, page)
    return App(context, page, url, log)


def open_app(browser, url, init_scripts=(), **context_options):
    """A page of the site in a context of its own: a first visit (nothing stored)."""
    return open_page(new_context(browser, init_scripts, **context_options), url)


# ---- one booted page the tests share, brought back to its baseline before each test ----
# What the baseline is made of, read in one go: the phase, the model, the last run's result, the
# network's preset, the settings form, your digits, the banner, the prediction, and which of the
# controls that lead back are on offer.
PAGE_STATE = """() => {
  const byId = (id) => document.querySelector(`[data-testid="${id}"]`);
  const visible = (el) => Boolean(el) && !el.hidden && el.getClientRects().length > 0;
  const fields = '#train-form input, #train-form select, [data-testid=heldout-digit-select]';  // the settings, the digit asked for
  const form = Object.fromEntries([...document.querySelectorAll(fields)].map(
    (f) => [f.dataset.testid, f.type === 'checkbox' ? String(f.checked) : f.value]));
  return {
    state: document.body.dataset.state ?? null, model: document.body.dataset.model ?? null,
    runResult: document.body.dataset.runResult ?? null, preset: byId('arch-preset-select').value, form,
    digits: byId('my-digits').dataset.count, message: visible(byId('message')),
    dismissable: visible(document.querySelector('[data-testid="message"] .dismiss')),
    prediction: byId('prediction').textContent, accuracy: byId('accuracy').dataset.valAccuracy,
    lossPoints: byId('loss-chart').dataset.points, summary: byId('arch-summary').dataset.state ?? null,
    stops: ['stop-button', 'fine-tune-stop'].filter((id) => !byId(id).disabled),
    retry: visible(byId('retry-button')), confirm: visible(byId('arch-confirm')), idle: !byId('reset-button').disabled,
    resumable: visible(byId('continue-button')), guide: byId('guide').dataset.step,
    project: byId('project-select').value, projects: byId('project-select').dataset.projects ?? '0',
    status: byId('status').textContent.trim(),  // not compared: says what the page is doing when it differs
    inFlight: (window.pycnnProbe?.read().requests_in_flight ?? []).map(  // not compared either: what it waits for
      ({ method, sent_at }) => `${method} (sent ${Math.round(performance.now() - sent_at)} ms ago)`),
  };
}"""


RESET_ENABLED = "() => !document.querySelector('[data-testid=reset-button]').disabled"  # the page is idle


class Baseline:
    """What a page looked like at ready on a first visit, and the way back to it through the page's
    own controls: Stop, Restart, Remove this project (each project made), Reset (which also ends a stopped run
    Continue would finish, and a guided round of teaching), the network's preset, the settings, Remove all, Clear."""

    def __init__(self, app):
        seen = app.page.evaluate(PAGE_STATE)
        self.form, self.preset, self.viewport = seen["form"], seen["preset"], app.page.viewport_size

    def restore(self, app):
        page = app.page
        if page.viewport_size != self.viewport:
            page.set_viewport_size(self.viewport)
        seen = page.evaluate(PAGE_STATE)
        for stop in seen["stops"]:  # a run left going
            app.by_id(stop).click()
        if seen["state"] == "error" and seen["retry"]:
            app.by_id("retry-button").click()  # Retry / Restart: a new worker
        if seen["confirm"]:  # "Keep the trained one" (by script: the editor may be scrolled or folded away)
            app.by_id("arch-revert").dispatch_event("click")
        if not seen["idle"] or seen["stops"] or seen["retry"]:  # until ready and no request in flight
            app.wait_state("ready")
            page.wait_for_function(RESET_ENABLED, timeout=READY_TIMEOUT_MS)
            seen = page.evaluate(PAGE_STATE)
        if seen["projects"] != "0" or seen["project"]:
            remove_projects(app)
            seen = page.evaluate(PAGE_STATE)
        if (seen["model"] != "untrained" or seen["runResult"] is not None or seen["lossPoints"] != "0" or seen["resumable"]
                or seen["guide"]):
            app.by_id("reset-button").click()
            page.wait_for_selector('body[data-model="untrained"]:not([data-run-result])', state="attached")
            # the model shows untrained before the reset has ended: the controls below wait for that
            page.wait_for_function(RESET_ENABLED, timeout=SETTLE_TIMEOUT_MS)
        if seen["preset"] != self.preset:  # an untrained model changes at once; the preset brings its settings
            app.by_id("arch-preset-select").select_option(self.preset)
            page.wait_for_function(RESET_ENABLED)
            seen = page.evaluate(PAGE_STATE)
        for testid, value in self.form.items():
            if seen["form"].get(testid) == value:
                continue
            field = app.by_id(testid)
            if value in ("true", "false"):
                if field.is_enabled():
                    field.set_checked(value == "true")
            elif field.evaluate("f => f.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        if seen["digits"] != "0":
            page.once("dialog", lambda dialog: dialog.accept())
            app.by_id("remove-all-my-digits").click()
            page.wait_for_selector('[data-testid="my-digits"][data-count="0"]', state="attached")
        if seen["prediction"]:
            app.by_id("clear-button").click()
        if seen["dismissable"]:
            page.locator('[data-testid="message"] .dismiss').click()

    def differences(self, app):
        """How the page differs from the baseline: [] when it is there."""
        page = app.page
        try:  # what the controls started has settled: no request in flight, the summary and prediction redrawn
            # (idle alone is not enough: the network editor checks a draft while the page is idle, then applies it)
            page.wait_for_function(f"""() => {{ const seen = ({PAGE_STATE})();
                return seen.idle && seen.inFlight.length === 0 && seen.prediction === '' && seen.summary === 'ok'
                  && !seen.runResult; }}""",
                                   timeout=SETTLE_TIMEOUT_MS)
        except PlaywrightTimeoutError:
            pass  # the differences below say what did not
        seen = page.evaluate(PAGE_STATE)
        seen["viewport"] = page.viewport_size
        wanted = {
            "state": "ready", "model": "untrained", "runResult": None, "preset": self.preset, "form": self.form,
            "digits": "0", "message": False, "accuracy": "", "lossPoints": "0", "idle": True, "viewport": self.viewport,
            "resumable": False, "guide": "", "project": "", "projects": "0",
        }
        differences = [f"{name}: {seen[name]!r}, not {wanted[name]!r}" for name in wanted if seen[name] != wanted[name]]
        if not differences:
            return []
        return differences + [f"(status line: {seen['status']!r}; requests in flight: {seen['inFlight']}; "
                              f"page errors since: {app.log.page_errors[-3:]})"]


def remove_projects(app):
    """Remove every project of your own classes through its Remove button; the digits are open after."""
    page = app.page
    select = app.by_id("project-select")
    while (count := select.get_attribute("data-projects")) not in (None, "0"):
        first = select.evaluate("s => s.options[1].value")
        select.select_option(first)
        page.wait_for_selector(f'[data-testid="my-digits"][data-project="{first}"]', state="attached")
        page.once("dialog", lambda dialog: dialog.accept())
        app.by_id("remove-project-button").click()
        page.wait_for_function("(n) => document.querySelector('[data-testid=project-select]').dataset.projects !== n",
                               arg=count)
    if select.input_value() != "":
        select.select_option("")
        page.wait_for_selector('[data-testid="my-digits"][data-project=""]', state="attached")


def booted(context, url):
    """A first visit of the site in `context` (nothing kept yet) that reached ready, and its Baseline: what it shows now."""
    application = open_page(context, url)
    application.goto_ready()
    application.baseline = Baseline(application)
    application.last_test = "the page's boot"
    return application


def at_baseline(application, test):
    """application brought back to its baseline through its own controls and checked there, for `test`
    (a node id); a page the controls cannot bring back fails naming the test before."""
    application.baseline.restore(application)
    differences = application.baseline.differences(application)
    assert not differences, f"the page did not come back to its baseline after {application.last_test}: {differences}"
    application.last_test = test
    application.log.clear()
    application.saves_at_start = application.measurements().get("saves", 0)
    return application


# ---- digits as pen strokes in unit coordinates, replayed with real mouse events ----
CANVAS = 280  # the drawing canvas' width and height in canvas pixels


def _ellipse(cx=0.5, cy=0.5, rx=0.3, ry=0.42, n=28):
    return [[(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]]


STROKES = {
    0: _ellipse(),
    1: [[(0.55, 0.08), (0.5, 0.5), (0.45, 0.92)]],
    2: [[(0.2, 0.25), (0.45, 0.08), (0.75, 0.2), (0.7, 0.45), (0.2, 0.9), (0.85, 0.9)]],
    3: [[(0.2, 0.15), (0.5, 0.06), (0.78, 0.2), (0.72, 0.4), (0.45, 0.5), (0.75, 0.6), (0.8, 0.8), (0.5, 0.94),
         (0.2, 0.85)]],
    4: [[(0.6, 0.08), (0.15, 0.62), (0.88, 0.62)], [(0.68, 0.3), (0.66, 0.95)]],
    5: [[(0.78, 0.1), (0.3, 0.1), (0.25, 0.45), (0.55, 0.4), (0.78, 0.55), (0.75, 0.8), (0.5, 0.92), (0.2, 0.82)]],
    6: [[(0.7, 0.08), (0.4, 0.3), (0.25, 0.6), (0.3, 0.85), (0.5, 0.93), (0.72, 0.8), (0.7, 0.58), (0.5, 0.5),
         (0.3, 0.62)]],
    7: [[(0.15, 0.12), (0.85, 0.12), (0.6, 0.5), (0.4, 0.92)]],
    8: [[(0.7, 0.2), (0.5, 0.08), (0.3, 0.2), (0.35, 0.38), (0.65, 0.6), (0.7, 0.82), (0.5, 0.93), (0.3, 0.82),
         (0.35, 0.6), (0.65, 0.38), (0.7, 0.2)]],
    9: [[(0.72, 0.3), (0.5, 0.1), (0.28, 0.25), (0.35, 0.45), (0.6, 0.45), (0.72, 0.3), (0.68, 0.6), (0.6, 0.92)]],
}


def strokes_on_page(page, digit, box):
    """STROKES[digit] placed in box = (left, top, size) in canvas pixels, as page coordinates."""
    canvas = page.get_by_test_id("draw-canvas")
    canvas.scroll_into_view_if_needed()
    rect = canvas.bounding_box()
    sx, sy = rect["width"] / CANVAS, rect["height"] / CANVAS
    left, top, size = box
    return [[(rect["x"] + (left + u * size) * sx, rect["y"] + (top + v * size) * sy) for u, v in stroke]
            for stroke in STROKES[digit]]


def touch_digit(page, digit, box, steps=6):
    """Draw `digit` inside box with a finger: touch events through the DevTools protocol, which
    Chromium turns into pointer events of type "touch" (the context needs has_touch=True)."""
    cdp = page.context.new_cdp_session(page)
    try:
        for points in strokes_on_page(page, digit, box):
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
            for (x0, y0), (x1, y1) in zip(points, points[1:]):
                for i in range(1, steps + 1):
                    x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
                    cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        cdp.detach()


def draw_digit(page, digit, box, steps=3):
    """Draw `digit` inside box = (left, top, size) in canvas pixels with mouse down/move/up."""
    draw_strokes(page, strokes_on_page(page, digit, box), steps)


def draw_strokes(page, strokes, steps=3):
    """Replay strokes in page coordinates (strokes_on_page's) with mouse down/move/up, nothing else in between:
    placed beforehand, a digit is drawn as fast as the mouse events go."""
    for points in strokes:
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=steps)
        page.mouse.up()
