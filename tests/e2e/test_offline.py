"""Offline use and updates: after one visit the page works without a network (the service worker,
web/sw.js, serves it from Cache Storage), and a new build reaches an open page as a notice, never
as a mix of the files of two builds.

Each test gets its pages from a fixture and passes alone. The service worker is allowed in
these contexts (conftest's pages block it, see e2e_support.open_app).
"""
import json
import shutil
import threading
from http.server import ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

import sitebuild as build
from e2e_support import READY_TIMEOUT_MS, ROOT, draw_digit, open_app

TINY_RUN = {"epochs-input": "1", "train-size-input": "256", "batch-size-input": "32", "learning-rate-input": "0.01"}
SW_ALLOWED = {"service_workers": "allow"}


def precache(site):
    """The files the service worker caches, as build.py listed them in precache.js: {version, files}."""
    text = (site / build.PRECACHE_FILE).read_text()
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def wait_offline_ready(app):
    """Until every file of this version is in the service worker's cache (body[data-offline=ready])."""
    app.page.wait_for_selector('body[data-offline="ready"]', state="attached", timeout=60_000)


def read_digit(app, digit, box):
    """Draw `digit` on the canvas and expect the page to read it."""
    app.by_id("clear-button").click()
    draw_digit(app.page, digit, box)
    expect(app.by_id("prediction")).to_have_text(str(digit), timeout=15_000)


def site_caches(app):
    return app.page.evaluate("caches.keys()")


def assert_installable(app):
    """Chromium finds the web app manifest without errors, the page installable, and decodes each icon."""
    cdp = app.context.new_cdp_session(app.page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [], manifest["errors"]
    assert manifest["url"] == app.url + "manifest.webmanifest"
    parsed = json.loads(manifest["data"])
    assert parsed["start_url"] == parsed["scope"] == "./" and parsed["display"] == "standalone"
    # Chromium's own check; a Playwright context is incognito-like, which is the one reason allowed
    errors = [e["errorId"] for e in cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]]
    assert errors in ([], ["in-incognito"]), errors
    # the browser decodes each PNG icon at the size the manifest gives
    for icon in parsed["icons"]:
        size = app.page.evaluate("""async (src) => {
          const img = new Image();
          img.src = src;
          await img.decode();
          return `${img.naturalWidth}x${img.naturalHeight}`;
        }""", icon["src"])
        assert icon["sizes"] in ("any", size), (icon, size)


class CountingHandler(build.Handler):
    """build.py's handler (its headers and types) that also logs each response: path, status, body bytes."""

    def send_response(self, code, message=None):
        self._entry = {"path": self.path, "status": code, "bytes": 0}
        super().send_response(code, message)

    def send_header(self, keyword, value):
        if keyword.lower() == "content-length" and self.command == "GET":
            self._entry["bytes"] = int(value)
        super().send_header(keyword, value)

    def end_headers(self):
        self.server.served.append(self._entry)
        super().end_headers()


@pytest.fixture
def own_site(site_dir, tmp_path):
    """A copy of the built site that this test may rebuild, served by a server that logs what it sends:
    (dist dir, base URL, log of {path, status, bytes})."""
    out = tmp_path / "dist"
    shutil.copytree(site_dir, out)
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: CountingHandler(*a, directory=str(out)))
    server.served = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}/", server.served
    server.shutdown()
    server.server_close()


def patched_project(tmp_path, patches):
    """A copy of the build inputs (web/, pycnn/, the npm and project files) with web files patched:
    patches = {web file: function(old text) -> new text}."""
    root = tmp_path / "project"
    for name in ("web", "pycnn"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "package.json", "package-lock.json"):
        shutil.copy2(ROOT / name, root / name)  # keeps mtimes: no npm ci
    (root / "node_modules").symlink_to(ROOT / "node_modules")
    for name, patch in patches.items():
        path = root / "web" / name
        path.write_text(patch(path.read_text()))
    return root


def test_after_one_visit_the_installable_page_works_offline(browser, site_url, site_dir, cli_model):
    app = open_app(browser, site_url, **SW_ALLOWED)
    try:
        app.goto_ready()
        assert_installable(app)
        wait_offline_ready(app)
        listed = precache(site_dir)
        offline = app.measurements()["offline"]
        assert offline == {"version": listed["version"], "files": len(listed["files"]), "missing": 0,
                           "bytes": sum(f["bytes"] for f in listed["files"].values())}
        # everything the page loads is listed: the runtime, the wheels, the digits
        for name in ("index.html", "worker.js", "pyodide/pyodide.asm.wasm", "pyodide/python_stdlib.zip",
                     "data/subset-images-idx3-ubyte.gz", "icon-512.png", "manifest.webmanifest"):
            assert name in listed["files"], name
        assert any(name.startswith("pyodide/numpy-") for name in listed["files"])
        assert any(name.startswith("wheels/pycnn-") for name in listed["files"])

        # the helper workers are up: none is still loading its files when the reload below cuts it off
        app.page.wait_for_function("() => { const w = window.pycnnProbe.read().workers; "
                                   "return w && w.count === w.wanted; }", timeout=READY_TIMEOUT_MS)
        app.context.set_offline(True)
        assert app.page.evaluate("fetch('not-a-file-of-the-site').then(() => 'reached', () => 'offline')") == "offline"
        failed = []
        app.context.on("requestfailed", lambda request: failed.append(request.url))
        errors = len(app.log.console_errors)  # the fetch above is logged as a failed load
        app.page.reload()
        app.wait_state("ready")
        assert app.page.evaluate("navigator.serviceWorker.controller !== null")
        assert app.attr("status", "data-python-snapshot") == "restored"
        assert app.body("offline") == "ready"
        app.train(TINY_RUN)
        assert app.body("model") == "trained"
        app.load_model(cli_model)
        read_digit(app, 7, (40, 30, 200))
        assert failed == [] and app.log.console_errors[errors:] == [] and app.log.page_errors == []
        assert app.probe()["csp"] == []
    finally:
        app.context.close()


def test_a_new_build_is_offered_and_never_mixed_with_the_old_one(browser, own_site, tmp_path, cli_model):
    out, url, served = own_site
    old = precache(out)
    first = open_app(browser, url, **SW_ALLOWED)
    context = first.context
    try:
        first.goto_ready()
        wait_offline_ready(first)
        first.page.reload()  # a returning visitor: the page now runs the cached version
        first.wait_state("ready")
        assert first.page.evaluate("navigator.serviceWorker.controller !== null")
        first.load_model(cli_model)  # kept in IndexedDB
        old_title = first.page.title()

        # a new build lands on the host while the page is open: two web files change
        project = patched_project(tmp_path, {
            "index.html": lambda text: text.replace("<title>pycnn:", "<title>pycnn (new build):", 1),
            "style.css": lambda text: text + "\n:root { --build: new; }\n",
        })
        del served[:]
        build.build(str(out), root=project, quiet=True)
        new = precache(out)
        assert new["version"] != old["version"]
        changed = {name for name, f in new["files"].items() if old["files"].get(name) != f}
        assert {"index.html", "style.css"} <= changed and "pyodide/pyodide.asm.wasm" not in changed

        # a second tab opens the site: still the old version, all of it, though the host has the new one
        second = context.new_page()
        second.goto(url)
        second.wait_for_selector('body[data-state="ready"]', state="attached", timeout=120_000)
        assert second.title() == old_title
        assert second.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--build')") == ""
        # ... and its visit found the new version, which both tabs now offer
        for page in (first.page, second):
            page.wait_for_selector('body[data-offline="update"]', state="attached", timeout=60_000)
            expect(page.get_by_test_id("update-notice")).to_contain_text("A new version is ready")
        # the new version was fetched file by file: only what changed came from the host
        downloaded = {entry["path"].lstrip("/") for entry in served if entry["status"] == 200 and entry["bytes"]}
        assert downloaded - {"sw.js", build.PRECACHE_FILE} == changed - {build.PRECACHE_FILE}, served
        assert all(entry["status"] in (200, 304) for entry in served), served

        # Reload with the other tab open: switching versions under it could mix files, so it waits
        first.by_id("update-reload").click()
        expect(first.by_id("update-notice")).to_contain_text("Close the other tab of this page, then press Reload")
        second.close()
        first.by_id("update-reload").click()
        first.page.wait_for_function(f"() => document.title !== {json.dumps(old_title)}", timeout=60_000)
        first.wait_state("ready")
        assert first.page.title().startswith("pycnn (new build):")
        assert first.page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--build')").strip() == "new"
        wait_offline_ready(first)
        assert first.measurements()["offline"]["version"] == new["version"]
        # the old version's cache is gone; the Python snapshot and the saved model are not
        names = site_caches(first)
        assert sorted(names) == sorted(["pycnn-python-snapshot", f"pycnn-site {url} {new['version']}"]), names
        assert first.attr("status", "data-python-snapshot") == "restored"
        assert first.body("model") == "restored"
        assert first.log.page_errors == [] and first.log.console_errors == []
    finally:
        context.close()
