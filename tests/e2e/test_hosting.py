"""The built site on any static host: under a subpath (/pycnn/, as GitHub Pages serves a
project) of a plain static server that sends no headers of its own, and on a host that sends
the wrong type for .wasm.

The server here is Python's http.server as `python -m http.server` runs it: its types (from
this Python's mimetypes), no Content-Security-Policy, no Cache-Control.
"""
import sys
import threading
import urllib.request
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import expect

from e2e_support import draw_digit, open_app

PREFIX = "/pycnn"
TINY_RUN = {"epochs-input": "1", "train-size-input": "256", "batch-size-input": "32", "learning-rate-input": "0.01"}


class SubpathHandler(SimpleHTTPRequestHandler):
    """http.server's handler with the site at PREFIX/ (404 elsewhere) and, optionally, another type for .wasm."""

    wasm_type = None

    def translate_path(self, path):
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean != PREFIX and not clean.startswith(PREFIX + "/"):
            return str(Path(self.directory) / "outside-the-site" / "none")  # no such file: 404
        return super().translate_path(path[len(PREFIX):])

    def guess_type(self, path):
        if self.wasm_type and str(path).endswith(".wasm"):
            return self.wasm_type
        return super().guess_type(path)

    def log_request(self, code="-", size="-"):
        self.server.requests.append((self.path, int(code) if isinstance(code, (int, HTTPStatus)) else code))

    def log_message(self, format, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A browser that closes a connection mid-file (its page closed) is not an error of the site."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve_subpath(site_dir, wasm_type=None):
    """site_dir at http://127.0.0.1:PORT/pycnn/ in a thread: the server (its .requests log [(path, status)])."""
    handler = type("Handler", (SubpathHandler,), {"wasm_type": wasm_type})
    server = QuietServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(site_dir)))
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}/"
    return server


@pytest.fixture
def plain_host(site_dir):
    server = serve_subpath(site_dir)
    yield server
    server.shutdown()
    server.server_close()


def headers(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers


def test_the_site_works_under_a_subpath_of_a_plain_static_server(browser, plain_host, cli_model):
    url = plain_host.url
    assert headers(url)["Content-Security-Policy"] is None  # only the page's meta tag applies
    wasm, module = headers(url + "pyodide/pyodide.asm.wasm"), headers(url + "pyodide/pyodide.mjs")
    print(f"\nhttp.server types: .wasm {wasm['Content-Type']}, .mjs {module['Content-Type']}")
    assert wasm["Content-Type"] == "application/wasm" and module["Content-Type"] == "text/javascript"

    app = open_app(browser, url, service_workers="allow")
    try:
        app.goto_ready()
        app.train(TINY_RUN)
        app.load_model(cli_model)
        draw_digit(app.page, 7, (40, 30, 200))
        expect(app.by_id("prediction")).to_have_text("7", timeout=15_000)
        # the meta tag's policy is in force: the page cannot reach another origin
        reached = app.page.evaluate("fetch('http://127.0.0.2:9/x').then(() => 'reached', () => 'blocked')")
        assert reached == "blocked"
        app.page.wait_for_function("() => window.__testProbe.csp.some((v) => v.startsWith('connect-src'))")  # reported
        # every URL the page, its worker and its service worker used is inside the subpath
        assert plain_host.requests and all(path.startswith(PREFIX + "/") for path, _ in plain_host.requests), \
            plain_host.requests
        assert {status for _, status in plain_host.requests} <= {200, 304}, plain_host.requests
        # and the service worker keeps the subpath's site: a reload without a network works
        app.page.wait_for_selector('body[data-offline="ready"]', state="attached", timeout=60_000)
        assert app.page.evaluate("navigator.serviceWorker.getRegistration().then(r => r.scope)") == url
        app.context.set_offline(True)
        app.page.reload()
        app.wait_state("ready")
        assert app.body("model") == "loaded" or app.body("model") == "restored"
        assert app.log.page_errors == []
    finally:
        app.context.close()


def test_a_wrong_type_for_wasm_is_named_and_python_still_starts(browser, site_dir):
    """Chromium's WebAssembly.instantiateStreaming refuses a .wasm not sent as application/wasm, and
    Pyodide 0.27 then waits forever; the worker compiles the downloaded bytes instead, and says so.
    The worker treats every type other than application/wasm (text/plain, none) alike."""
    wasm_type = "application/octet-stream"  # what a host that does not know .wasm sends
    server = serve_subpath(site_dir, wasm_type)
    app = open_app(browser, server.url)
    try:
        assert headers(server.url + "pyodide/pyodide.asm.wasm")["Content-Type"] == wasm_type
        app.goto_ready()
        message = app.by_id("message")
        expect(message).to_have_attribute("data-kind", "warning")
        expect(message).to_contain_text(f'sent pyodide/pyodide.asm.wasm as "{wasm_type}"')
        expect(message).to_contain_text('must send .wasm files as "application/wasm"')
        app.train(TINY_RUN)  # Python really runs
        assert app.body("model") == "trained"
        python_ms = app.page.get_attribute('[data-testid="stages"] [data-stage="python"]', "data-ms")
        print(f"\nwith .wasm as {wasm_type}: Python started in {python_ms} ms")
    finally:
        app.context.close()
        server.shutdown()
        server.server_close()


def test_a_wasm_that_cannot_be_compiled_ends_loading_with_the_reason(open_site):
    """Not a hang: Pyodide swallows a failed instantiation, the worker reports it."""
    app = open_site()
    app.context.route("**/pyodide/pyodide.asm.wasm", lambda route: route.fulfill(
        status=200, content_type="application/wasm", body=b"\0asm\x01\0\0\0 not a module"))
    app.page.goto(app.url)
    app.wait_state("error")
    expect(app.page.locator('[data-testid="stages"] [data-stage="python"]')).to_have_attribute("data-status", "failed")
    expect(app.by_id("message")).to_contain_text("could not start Python's WebAssembly (pyodide/pyodide.asm.wasm)")
    expect(app.by_id("retry-button")).to_be_visible()
