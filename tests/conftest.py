"""Shared fixtures and helpers for the pycnn unit tests.

- BLAS is pinned to one thread: on this 2-core machine OpenBLAS threads make small
  matrix products ~10x slower, which would blow the suite's time budget.
- `built_site` is the site built once per test run (whichever pytest-xdist worker asks first);
  `subset_dir` finds the bundled MNIST subset ($PYCNN_DATA or dist/data, written by
  `python build.py`), else uses that build's, so a fresh clone works.
"""
import os

import numpy as np
import pytest

import sitebuild
from run_once import once_per_run

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # the test extra lists it; without it, fall back to the environment
    threadpool_limits = None
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
else:
    threadpool_limits(1)

TEST_SIZE = 2000  # held-out subset digits used by the accuracy tests


# ---- made once per run ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The site of this checkout built once per run (`python build.py` into a temporary dist/)."""
    return once_per_run(tmp_path_factory, "dist", lambda out: sitebuild.build(str(out), quiet=True))


# ---- data ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def subset_dir(request):
    """Folder holding the bundled subset: $PYCNN_DATA or dist/data, else the run's build's."""
    from pycnn import datasets

    try:
        return datasets.subset_dir()
    except ValueError:
        return request.getfixturevalue("built_site") / "data"


@pytest.fixture(scope="session")
def subset(subset_dir):
    """The 10,000 subset digits: x (N, 1, 28, 28) float32 in [0, 1], y (N,) int64."""
    from pycnn import datasets

    x, y, _ = datasets.load_subset(subset_dir)
    return x, y


@pytest.fixture(scope="session")
def split(subset):
    """Stratified seeded split: 8,000 training digits and 2,000 held-out digits."""
    from pycnn import datasets

    x, y = subset
    return datasets.train_test_split(x, y, test_size=TEST_SIZE, seed=0)


@pytest.fixture(scope="session")
def trained_seed_model(split):
    """The seed model after the issue's recipe: 2 epochs, batch 32, Adam 1e-3, seed 0 (~1 s)."""
    import pycnn

    x_train, y_train, _, _ = split
    model = pycnn.seed_model(seed=0)
    history = model.fit(x_train, y_train, epochs=2, batch_size=32, optimizer=pycnn.Adam(1e-3))
    return model, history


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_terminal_summary(terminalreporter):
    """Print the numbers tests record with record_property("report", ...) (e.g. fuzz case counts)."""
    lines = []
    for key in ("passed", "failed"):
        for rep in terminalreporter.stats.get(key, []):
            for name, value in getattr(rep, "user_properties", ()):
                if name == "report" and getattr(rep, "when", "call") == "call":
                    lines.append(f"{rep.nodeid}: {value}")
    if lines:
        terminalreporter.section("pycnn test figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """How `--dist loadgroup` shares the tests between the pytest-xdist workers: a unit test module stays on one
    worker (its module fixtures are made once); the end-to-end tests go one by one to whichever worker is free, since
    each worker has its own booted page, except the phone's, which share the run's one phone page."""
    for item in items:
        if "e2e" not in item.path.parts:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
        elif "phone" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("phone"))
