"""End-to-end fixtures: build dist/ once, serve it on 127.0.0.1, drive the system Chromium.

One page per test module (module-scoped) so Pyodide boots once and one training run is
shared by the tests that look at its result; the tests of a module run in file order.
"""
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import build  # noqa: E402  (the project's build script)

READY_TIMEOUT_MS = 120_000  # Pyodide boot: ~3-7 s here, far more on a loaded CI machine
TRAIN_TIMEOUT_MS = 180_000
LAUNCH_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
ARTIFACTS = ROOT / "test-results"

# Installed before any page script: records long main-thread tasks and CSP violations.
PROBE_SCRIPT = """
(() => {
  const probe = { longTasks: [], csp: [] };
  Object.defineProperty(window, "__pycnnProbe", { value: probe });
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
        scripts: (e.scripts || []).map((s) => `${s.invoker} ${s.sourceURL.split("/").pop()}:${s.sourceCharPosition} ${Math.round(s.duration)}ms`),
      });
    }).observe({ type: "long-animation-frame", buffered: true });
  } catch (e) { probe.framesError = String(e); }
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


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    args = {**browser_type_launch_args, "args": LAUNCH_FLAGS}
    path = chromium_path()
    if path:
        args["executable_path"] = path
    return args


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory):
    """The site built into a temporary dist/ (the checkout's dist/ is left alone)."""
    out = tmp_path_factory.mktemp("dist")
    build.build(str(out), quiet=True)
    return out


@pytest.fixture(scope="session")
def site_url(site_dir):
    """site_dir served on 127.0.0.1 (any free port) with build.py's headers; yields the base URL."""
    server = build.make_server(str(site_dir), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, name="dist-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class PageLog:
    """Everything a page did that tests assert on: console errors, page errors, requests."""

    def __init__(self):
        self.console_errors = []
        self.page_errors = []
        self.requests = []

    def attach(self, context, page):
        context.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))


class App:
    """A page of the site plus its log and small helpers (state via data-* only)."""

    def __init__(self, context, page, url, log):
        self.context, self.page, self.url, self.log = context, page, url, log

    def by_id(self, testid):
        return self.page.get_by_test_id(testid)

    def wait_state(self, state, timeout=READY_TIMEOUT_MS):
        self.page.wait_for_selector(f'body[data-state="{state}"]', state="attached", timeout=timeout)

    def goto_ready(self):
        self.page.goto(self.url)
        self.wait_state("ready")

    def attr(self, testid, name):
        return self.by_id(testid).get_attribute(name)

    def probe(self):
        return self.page.evaluate("() => JSON.parse(JSON.stringify(window.__pycnnProbe))")

    def screenshot(self, name):
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path


def open_app(browser, url, init_scripts=()):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.add_init_script(PROBE_SCRIPT)
    for script in init_scripts:
        context.add_init_script(script)
    page = context.new_page()
    log = PageLog()
    log.attach(context, page)
    return App(context, page, url, log)


@pytest.fixture(scope="module")
def app(browser, site_url):
    """A page that has reached ready; shared by the tests of a module."""
    application = open_app(browser, site_url)
    application.goto_ready()
    yield application
    application.context.close()


@pytest.fixture(scope="module")
def open_site(browser, site_url):
    """Factory for extra pages (e.g. with IndexedDB removed); closed after the module."""
    opened = []

    def factory(init_scripts=()):
        application = open_app(browser, site_url, init_scripts)
        opened.append(application)
        return application

    yield factory
    for application in opened:
        application.context.close()
