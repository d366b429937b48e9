"""End-to-end fixtures: build the site once into a temporary dist/, serve it on 127.0.0.1,
drive the system Chromium.

One page per test module (module-scoped) so Pyodide boots once and one training run is
shared by the tests that look at its result; the tests of a module run in file order.
"""
import threading

import pytest

from e2e_support import LAUNCH_FLAGS, chromium_path, load_build, open_app

build = load_build()


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

    def factory(init_scripts=(), **context_options):
        application = open_app(browser, site_url, init_scripts, **context_options)
        opened.append(application)
        return application

    yield factory
    for application in opened:
        application.context.close()
