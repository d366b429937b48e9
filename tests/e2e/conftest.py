"""End-to-end fixtures: build the site once into a temporary dist/, serve it on 127.0.0.1,
drive the system Chromium.

Every test gets what it needs from a fixture and passes alone (`pytest -k NAME`):
- `app`: a new page at ready with no model kept: it shares its module's browser context, whose
  Cache Storage keeps the Python snapshot of the first visit (a cold start of Python is most of a
  test's setup), and the site's IndexedDB is emptied before it opens;
- `first_visit`: a page at ready in a context of its own, nothing stored before;
- `trained_app`: `app` with the model `cli_model` loaded through the page's file input;
- `cli_model` / `seed_model`: the page's default network / the seed post's, trained by the command line;
- `shared_app` / `shared_trained_app`: one page per module for the many small tests that
  leave the page as they found it (invalid settings, refused files, drawings);
- `open_site`: a factory for first visits in contexts of their own, with extra options (touch,
  no IndexedDB, routes, storage quotas...).
"""
import os
import subprocess
import sys
import threading

import pytest

import sitebuild as build
from e2e_support import LAUNCH_FLAGS, ROOT, chromium_path, forget_models, new_context, open_app, open_page


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


def train_by_cli(site_dir, folder, *args):
    """`python -m pycnn train --data subset ARGS` on the bundled digits -> the model file it wrote."""
    path = folder / "model.npz"
    env = {**os.environ, "PYCNN_DATA": str(site_dir / "data"), "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "pycnn", "train", "--data", "subset", *args, "--output", str(path)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    return path


@pytest.fixture(scope="session")
def cli_model(site_dir, tmp_path_factory):
    """The page's default network trained in CPython by the command line on the same bundled digits
    (3 epochs, a few seconds)."""
    return train_by_cli(site_dir, tmp_path_factory.mktemp("cli"), "--epochs", "3")


@pytest.fixture(scope="session")
def seed_model(site_dir, tmp_path_factory):
    """The seed post's network trained by the command line (3 epochs, about two seconds), for tests whose
    subject is not the network: the page loads it and fine-tunes it faster than the default network."""
    return train_by_cli(site_dir, tmp_path_factory.mktemp("cli-seed"), "--preset", "seed", "--epochs", "3")


@pytest.fixture
def open_site(browser, site_url):
    """Factory for pages of the site (each its own context); all closed after the test."""
    opened = []

    def factory(init_scripts=(), **context_options):
        application = open_app(browser, site_url, init_scripts, **context_options)
        opened.append(application)
        return application

    yield factory
    for application in opened:
        application.context.close()


@pytest.fixture(scope="module")
def warm_context(browser):
    """The browser context of a module's `app` pages."""
    context = new_context(browser)
    yield context
    context.close()


@pytest.fixture
def app(warm_context, site_url):
    """A new page that has reached ready: untrained model, nothing kept in IndexedDB."""
    application = open_page(warm_context, site_url)
    forget_models(application)
    application.goto_ready()
    yield application
    application.page.close()


@pytest.fixture
def first_visit(open_site):
    """A first visit that has reached ready: a context of its own, nothing stored before; Python
    started cold and kept its snapshot."""
    application = open_site()
    application.goto_ready()
    return application


@pytest.fixture
def trained_app(app, cli_model):
    """A fresh page with `cli_model` loaded (and, like every loaded model, kept in IndexedDB)."""
    app.load_model(cli_model)
    return app


@pytest.fixture(scope="module")
def shared_app(browser, site_url):
    """One page for a module's tests that leave it as they found it (at ready)."""
    application = open_app(browser, site_url)
    application.goto_ready()
    yield application
    application.context.close()


@pytest.fixture
def shared_trained_app(shared_app, cli_model):
    """shared_app with `cli_model` loaded (loaded again only if a test changed the model)."""
    if shared_app.page.evaluate("document.body.dataset.model") != "loaded":
        shared_app.load_model(cli_model)
    return shared_app
