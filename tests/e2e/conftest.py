"""End-to-end fixtures: build the site once into a temporary dist/, serve it on 127.0.0.1,
drive the system Chromium.

Every test gets what it needs from a fixture and passes alone (`pytest -k NAME`):
- `app`: the one page the tests share (booted once per pytest-xdist worker), brought back before
  each test to the baseline of a first visit through the page's own controls, and checked there
  (see `Baseline` in e2e_support.py): booting Python is most of a page's setup;
- `trained_app` / `seed_app`: `app` with the model `cli_model` / `seed_model` loaded through the page's file input;
- `phone`: the same for the run's one phone-sized touch screen;
- `first_visit`: a page at ready in a context of its own, nothing stored before, for tests whose
  subject is a first visit; `warm_visit`: a page not yet opened in the shared page's context
  (Python from its snapshot), for faults of a later boot;
- `cli_model` / `seed_model`: the page's default network / the seed post's, trained by the command line;
- `open_site`: a factory for first visits in contexts of their own, with extra options (touch,
  no IndexedDB, routes, storage quotas...).
"""
import os
import subprocess
import sys
import threading

import pytest

import sitebuild as build
from e2e_support import LAUNCH_FLAGS, ROOT, at_baseline, booted, chromium_path, new_context, open_app, open_page
from run_once import once_per_run


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    args = {**browser_type_launch_args, "args": LAUNCH_FLAGS}
    path = chromium_path()
    if path:
        args["executable_path"] = path
    return args


@pytest.fixture(scope="session")
def site_dir(built_site):
    """The site built once per run into a temporary dist/ (the checkout's dist/ is left alone)."""
    return built_site


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
    """`python -m pycnn train --data subset ARGS` on the bundled digits, into folder/model.npz."""
    env = {**os.environ, "PYCNN_DATA": str(site_dir / "data"), "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "pycnn", "train", "--data", "subset", *args, "--output",
                    str(folder / "model.npz")], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)


@pytest.fixture(scope="session")
def cli_model(site_dir, tmp_path_factory):
    """The page's default network trained in CPython by the command line on the same bundled digits
    (3 epochs, a few seconds; once per run)."""
    return once_per_run(tmp_path_factory, "cli", lambda out: train_by_cli(site_dir, out, "--epochs", "3")) / "model.npz"


@pytest.fixture(scope="session")
def seed_model(site_dir, tmp_path_factory):
    """The seed post's network trained by the command line (3 epochs, about two seconds), for tests whose
    subject is not the network: the page loads it and fine-tunes it faster than the default network."""
    return once_per_run(tmp_path_factory, "cli-seed",
                        lambda out: train_by_cli(site_dir, out, "--preset", "seed", "--epochs", "3")) / "model.npz"


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


@pytest.fixture(scope="session")
def shared_app(browser, site_url):
    """The page the tests share (one per pytest-xdist worker), booted once: a first visit, whose state at
    ready is the baseline every test comes back to (`app`)."""
    application = booted(new_context(browser), site_url)
    yield application
    application.context.close()


@pytest.fixture
def app(shared_app, request):
    """The shared page brought back to its baseline through its own controls, and checked there: at
    ready, an untrained model of the default network, the first visit's settings, no digits of yours,
    nothing drawn, no message. A test that leaves the page where the controls cannot bring it back
    fails the next test, which names it."""
    return at_baseline(shared_app, request.node.nodeid)


@pytest.fixture(scope="session")
def phone_page(browser, site_url):
    """The run's one phone-sized touch screen (412 px wide, touch events), at ready."""
    context = new_context(browser, has_touch=True, is_mobile=True, viewport={"width": 412, "height": 900},
                          device_scale_factor=2)
    application = booted(context, site_url)
    yield application
    context.close()


@pytest.fixture
def phone(phone_page, request):
    """The phone page at its baseline (as `app`)."""
    return at_baseline(phone_page, request.node.nodeid)


@pytest.fixture
def warm_visit(app, site_url):
    """A new page of the site, not yet opened, in the shared page's context: Python starts from the
    snapshot that page's first visit kept, and nothing else is kept (the shared page is at its baseline).
    For faults of a boot that are not about a first visit; routes the test adds to the context are removed
    after it."""
    application = open_page(app.context, site_url)
    yield application
    application.page.close()
    app.context.unroute_all(behavior="ignoreErrors")


@pytest.fixture
def first_visit(open_site):
    """A first visit that has reached ready: a context of its own, nothing stored before; Python
    started cold and kept its snapshot."""
    application = open_site()
    application.goto_ready()
    return application


@pytest.fixture
def trained_app(app, cli_model):
    """`app` with `cli_model` loaded through the page's file input (and, like every loaded model, kept in IndexedDB)."""
    app.load_model(cli_model)
    return app


@pytest.fixture
def seed_app(app, seed_model):
    """`app` with `seed_model` loaded: a trained network that trains several times faster than the default,
    for tests whose subject is not the network."""
    app.load_model(seed_model)
    return app
