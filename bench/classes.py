"""Teach it your own classes: UNIPEN capital letters taught by one lab's writers, read on other labs' writers.

    python -m bench.classes --letters FILE                     # the grid: 3, 5, 10, 26 letters x 5, 10, 20 drawings
    python -m bench.classes --letters FILE --recipes           # 5 letters x 10 drawings: the transfer recipes compared
    python -m bench.classes --letters FILE --pyodide           # and the page's Python (Pyodide under Node.js): seconds
    python -m bench.classes --letters FILE --classes 5 --drawings 10 --splits 20 --methods transfer

--letters is the UNIPEN capital letters JSON ({"letters": [{"label": "A", "writer", "contributor",
"strokes"}]}; not part of the project, never copied into it). Every letter is drawn on the page's
canvas as bench/handwriting.py draws a digit (random size and place, points >= 3 px apart, the
page's brush, pycnn.preprocess.to_mnist) and the images are cached in the temporary folder.

A split: C letters picked at random, one contributing lab picked at random among those with at
least K drawings of each, K drawings of each letter picked at random from that lab's writers (what
a learner draws and names), and every drawing of those letters from the other labs scored (other
writers, other tablets). Each cell of the grid averages --splits splits (seeded by --seed; the
same splits for every method) and shows the spread: mean, standard deviation, lowest and highest.

The methods (pycnn.classes with its default recipes): transfer from the base model (the page's
default network, pycnn.presets.DEFAULT_PRESET, trained with TrainingConfig's defaults on the bundled
subset's training digits; cached in the temporary folder, or --model) and from scratch (the same
network, fresh). Seconds are CPython's with one BLAS thread, for the model alone (no evaluation);
--pyodide times the same in Pyodide 0.27.7 under Node.js (bench/explain.py's runner), the page's
Python and numpy: the page's worker runs about as fast (bench/browser/RESULTS.md).

--recipes compares transfer recipes on the same splits: the plain frozen-conv logistic regression
(no hidden layer, no augmentation), a hidden layer, augmentation (affine only, then with shears,
stretches and the elastic bend), cutting after the digit network's hidden layer instead of before,
starting from its hidden layer, and the frozen features computed for every batch (Sequential.freeze,
fresh augmentation each batch) instead of once for a pool of augmented copies.
Nothing here trains a shipped model on the letters.

Results (2026-12-07, 2-core machine shared with other work; CPython 3.11, numpy 2.4, one BLAS thread;
Pyodide 0.27.7 under Node.js 20):

`python -m bench.classes --letters FILE --pyodide` (base model: held-out 98.87% of the subset's digits):

    | letters x drawings, method | other writers read (mean) | sd | lowest-highest | CPython s |
    |---|---|---|---|---|
    | 3 x 5, transfer | **96.0%** | 1.7% | 92.8%-98.4% | 0.15 |
    | 3 x 5, from scratch | **95.9%** | 2.8% | 89.9%-99.0% | 2.82 |
    | 3 x 10, transfer | **96.1%** | 2.1% | 92.1%-98.6% | 0.20 |
    | 3 x 10, from scratch | **96.0%** | 2.3% | 91.6%-99.1% | 2.63 |
    | 3 x 20, transfer | **97.6%** | 1.2% | 95.4%-99.1% | 0.27 |
    | 3 x 20, from scratch | **97.1%** | 1.5% | 93.8%-99.5% | 2.73 |
    | 5 x 5, transfer | **91.8%** | 3.3% | 85.9%-96.1% | 0.17 |
    | 5 x 5, from scratch | **92.4%** | 3.2% | 87.0%-96.2% | 2.70 |
    | 5 x 10, transfer | **94.5%** | 1.7% | 92.1%-97.1% | 0.24 |
    | 5 x 10, from scratch | **94.3%** | 1.4% | 92.0%-96.2% | 2.67 |
    | 5 x 20, transfer | **94.9%** | 2.0% | 90.6%-97.0% | 0.37 |
    | 5 x 20, from scratch | **94.8%** | 2.3% | 89.2%-97.0% | 2.73 |
    | 10 x 5, transfer | **86.0%** | 4.0% | 78.1%-90.0% | 0.24 |
    | 10 x 5, from scratch | **86.3%** | 2.8% | 80.9%-90.3% | 2.79 |
    | 10 x 10, transfer | **89.3%** | 2.2% | 85.8%-93.4% | 0.47 |
    | 10 x 10, from scratch | **89.6%** | 2.0% | 86.7%-92.7% | 3.14 |
    | 10 x 20, transfer | **90.8%** | 2.6% | 86.0%-95.8% | 0.45 |
    | 10 x 20, from scratch | **91.4%** | 1.9% | 88.8%-95.7% | 2.87 |
    | 26 x 5, transfer | **77.2%** | 1.3% | 75.0%-79.6% | 0.37 |
    | 26 x 5, from scratch | **76.0%** | 1.9% | 73.3%-79.3% | 2.66 |
    | 26 x 10, transfer | **80.2%** | 1.6% | 77.3%-83.0% | 0.39 |
    | 26 x 10, from scratch | **80.0%** | 1.6% | 77.0%-82.1% | 2.60 |
    | 26 x 20, transfer | **83.4%** | 2.0% | 79.8%-85.8% | 0.38 |
    | 26 x 20, from scratch | **82.8%** | 2.0% | 78.6%-85.8% | 2.69 |

    the page's job for 5 x 10 (pycnn.classes.Transfer: 3-fold cross-validation, then the head kept;
      a step per call): 0.61 s in CPython (its estimate: 94.0%)
    Pyodide under Node.js, 5 letters x 10 drawings: transfer 1.51 s, transfer job, a step per call 4.22 s,
      slowest step of it 0.06 s, from scratch 13.71 s
    Pyodide under Node.js, 26 letters x 20 drawings: transfer 1.90 s, transfer job, a step per call 2.87 s,
      slowest step of it 0.06 s, from scratch 14.10 s

`python -m bench.classes --letters FILE --recipes --splits 20` (5 letters x 10 drawings, the same 20 splits
for every row; the first 10 are the grid's):

    | letters x drawings, method | other writers read (mean) | sd | lowest-highest | CPython s |
    |---|---|---|---|---|
    | frozen conv + logistic regression, no augmentation | **90.2%** | 3.9% | 80.2%-95.8% | 0.04 |
    | + hidden layer 64, no augmentation | **90.5%** | 3.8% | 81.8%-95.3% | 0.12 |
    | + 40 augmented copies of each: shift 2, rotation 15, zoom 0.15 | **93.5%** | 2.8% | 87.8%-97.3% | 0.24 |
    | + shear 0.5, stretch 0.3 | **94.1%** | 2.5% | 87.9%-97.4% | 0.25 |
    | + elastic 2 px: the default recipe | **94.7%** | 2.2% | 88.2%-97.7% | 0.28 |
    | default, elastic 1 px | **94.4%** | 2.1% | 88.2%-96.9% | 0.30 |
    | default, no hidden layer | **94.1%** | 2.4% | 87.8%-97.7% | 0.22 |
    | default, hidden 128 | **94.8%** | 2.1% | 88.9%-97.9% | 0.36 |
    | default, 10 copies | **93.5%** | 3.3% | 83.9%-97.2% | 0.16 |
    | default, 600 steps | **94.8%** | 2.2% | 88.1%-97.9% | 0.37 |
    | default, cut after the digit network's hidden layer (64 features) | **85.9%** | 6.8% | 68.7%-93.7% | 0.33 |
    | default, hidden layer starting as the digit network's | **93.3%** | 2.9% | 87.4%-97.5% | 0.25 |
    | default, frozen layers run every batch (fresh augmentation) | **94.7%** | 2.2% | 87.3%-97.3% | 0.69 |
    | from scratch, its default recipe (600 steps) | **94.5%** | 2.3% | 86.7%-97.2% | 2.73 |
    | from scratch, 300 steps | **93.7%** | 2.5% | 85.7%-96.4% | 1.47 |

Between splits the score moves by 2-4 points (which letters, which lab teaches), so a mean of 20 splits
is good to about half a point: rows closer than that are the same. Augmenting the few drawings is
what pays (90.5% -> 94.7%), and 40 copies of each drawing do better than 10; the hidden layer adds
about half a point, a wider one or more steps nothing, and running the frozen layers for every batch
nothing either, at 2.5 times the time. The digit network's own hidden layer is digit-shaped: cutting
after it (85.9%) or starting from it (93.3%) reads letters worse. The target of 95% for 5 letters x
10 drawings by transfer is not reached (94.7%, 20 splits); from scratch reads as well (94.5%) at ten
times the time. The letters are other writers' on other tablets: a learner's own later drawings are
easier to read.
"""
import argparse
import dataclasses
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import handwriting, heavy_lock
from bench.explain import in_pyodide
from pycnn import classes, datasets, serialize
from pycnn.layers import Dense, Flatten, ReLU
from pycnn.model import Sequential
from pycnn.presets import DEFAULT_PRESET, preset
from pycnn.training import Trainer, TrainingConfig, fingerprint
from pycnn.yourdigits import split_head

LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
CACHE = Path(tempfile.gettempdir()) / "pycnn-bench-classes"
GRID_CLASSES = (3, 5, 10, 26)
GRID_DRAWINGS = (5, 10, 20)


# ---- the letters, drawn on the page's canvas --------------------------------------------------------
def load_letters(path):
    """The UNIPEN letters JSON -> (its bytes, list of {"label", "contributor", "writer", "strokes"}); ValueError
    naming the file when it is not that JSON."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        letters = json.loads(raw)["letters"]
        for letter in letters:
            if not (letter["label"] in LETTERS and letter["strokes"] and letter["contributor"] and letter["writer"]):
                raise ValueError(f"a letter has label {letter['label']!r} and {len(letter['strokes'])} strokes")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--letters {path}: expected the UNIPEN letters JSON ({{'letters': [{{'label': 'A', "
                         f"'writer', 'contributor', 'strokes'}}, ...]}}), got: {err}") from None
    return raw, letters


class Letters:
    """Every letter drawn on the canvas as the page would read it: x (N, 1, 28, 28), labels 0-25, labs, writers."""

    def __init__(self, path, seed=0):
        raw, letters = load_letters(path)
        self.labels = np.array([LETTERS.index(letter["label"]) for letter in letters])
        self.labs = np.array([letter["contributor"] for letter in letters])
        self.writers = np.array([letter["writer"] for letter in letters])
        cached = CACHE / f"letters-{hashlib.sha256(raw).hexdigest()[:16]}-placement{seed}.npy"
        start = time.perf_counter()
        if cached.is_file():
            self.x, self.how = np.load(cached), "read from the cache"
        else:
            drawings = [handwriting.placement(letter["strokes"], i, seed) for i, letter in enumerate(letters)]
            self.x, empty = handwriting.to_inputs(drawings)
            CACHE.mkdir(exist_ok=True)
            np.save(cached, self.x)
            self.how = f"drawn ({empty} came out empty)"
        self.seconds = time.perf_counter() - start
        if len(self.x) != len(letters):
            raise ValueError(f"{cached} does not hold the {len(letters)} letters: delete it")

    def describe(self):
        return (f"{len(self.labels):,} UNIPEN capital letters, {len(set(self.writers))} writers, {len(set(self.labs))} "
                f"labs; {self.how} in {self.seconds:.1f} s")


@dataclasses.dataclass
class Split:
    letters: np.ndarray   # the letters taught, as indices 0-25
    lab: str              # the lab whose writers teach
    taught: np.ndarray    # indices of the drawings taught
    test: np.ndarray      # indices of the other labs' drawings of those letters
    y: np.ndarray         # the taught drawings' classes 0..C-1
    y_test: np.ndarray


def splits(data, n_classes, per_class, count, seed):
    """`count` random splits of n_classes letters, per_class drawings of each taught by one lab's writers."""
    rng = np.random.default_rng([seed, n_classes, per_class])
    labs = sorted(set(data.labs))
    out = []
    while len(out) < count:
        letters = np.sort(rng.choice(26, n_classes, replace=False))
        able = [lab for lab in labs if all(np.sum((data.labs == lab) & (data.labels == c)) >= per_class
                                           for c in letters)]
        if not able:
            continue
        lab = able[rng.integers(len(able))]
        taught = np.concatenate([rng.choice(np.flatnonzero((data.labs == lab) & (data.labels == c)), per_class,
                                            replace=False) for c in letters])
        test = np.flatnonzero(np.isin(data.labels, letters) & (data.labs != lab))
        index = np.full(26, -1)
        index[letters] = np.arange(n_classes)
        out.append(Split(letters, lab, taught, test, index[data.labels[taught]], index[data.labels[test]]))
    return out


# ---- the base network --------------------------------------------------------------------------------
def base_model(path=None):
    """The model transfer starts from -> (model, description): --model, or the page's default network trained
    with the page's recipe on the bundled training digits (cached)."""
    if path:
        return serialize.load_file(path), f"{path}"
    x, y, split = datasets.load_subset()
    x_train, y_train, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    recipe = TrainingConfig()
    key = hashlib.sha256(json.dumps([DEFAULT_PRESET, recipe.to_dict(), fingerprint(x_train, y_train)],
                                    sort_keys=True).encode()).hexdigest()[:16]
    cached = CACHE / f"base-{key}.npz"
    if cached.is_file():
        model = serialize.load_file(cached)
        how = "cached"
    else:
        model = preset(DEFAULT_PRESET, seed=0)
        start = time.perf_counter()
        Trainer(model, x_train, y_train, recipe).run()
        how = f"trained in {time.perf_counter() - start:.0f} s"
        CACHE.mkdir(exist_ok=True)
        model.save(cached)
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    return model, (f"{DEFAULT_PRESET} trained with the page's recipe on the bundled digits ({how}; held-out "
                   f"{accuracy:.2%})")


# ---- methods: (base, x, y, names) -> a model that reads the classes ------------------------------------
def transfer(config=None):
    return lambda base, x, y, names: classes.transfer(base, x, y, names, config)


def from_scratch(config=None):
    return lambda base, x, y, names: classes.from_scratch(DEFAULT_PRESET, x, y, names, config)


def after_hidden(config):
    """Cut after the digit network's hidden Dense layer and its ReLU (64 features), a new head trained on the
    features of a pool of augmented copies (TransferConfig's copies)."""
    def train(base, x, y, names):
        cut = max(i for i, layer in enumerate(base.layers) if isinstance(layer, ReLU)) + 1  # after Dense 64 -> ReLU
        body = Sequential.from_config({**base.get_config(), "layers": base.get_config()["layers"][:cut]})
        body.set_weights(base.get_weights()[:sum(len(layer.params) + len(layer.state) for layer in base.layers[:cut])])
        rng = np.random.default_rng(config.seed)
        copies = np.repeat(np.arange(len(y)), config.copies)
        pool = np.concatenate([x, classes.augment(x[copies], rng, config)])
        features = body.forward(pool)
        width = features.shape[1]
        head = Sequential([Flatten(), Dense(width, len(names), rng=rng)], input_shape=(width, 1, 1))
        classes.DrawingTrainer(head, features.reshape(-1, width, 1, 1), np.concatenate([y, y[copies]]), config,
                               len(names), augment=False).run()
        model = Sequential.from_config({**body.get_config(), "layers": body.get_config()["layers"]
                                        + [{"class": "Dense", "config": {"in_features": width,
                                                                         "out_features": len(names)}}]})
        model.set_weights(body.get_weights() + head.get_weights())
        model.class_names = names
        return model
    return train


def from_digit_head(config):
    """Transfer, but the head's hidden layer starts as the digit network's (Dense 800 -> 64), trained on."""
    def train(base, x, y, names):
        job = classes.Transfer(base, x, y, names, config, evaluate=False)
        start = job._trainer_for  # the head is made by the job: give its hidden layer the digit network's weights

        def seeded(use, cfg):
            trainer = start(use, cfg)
            hidden = next(layer for layer in base.layers if isinstance(layer, Dense))
            trainer.model.layers[1].set_params({"W": hidden.params["W"].copy(), "b": hidden.params["b"].copy()})
            trainer._good = trainer._snapshot()
            return trainer
        job._trainer_for = seeded
        job.run()
        return job.model
    return train


def frozen_every_batch(config):
    """The network with its feature layers frozen (Sequential.freeze) and a new head, trained on the drawings
    augmented afresh every batch: the frozen layers' forward pass runs for every batch, not once."""
    def train(base, x, y, names):
        body, _ = split_head(base)
        width = int(np.prod(body.output_shapes()[-1]))
        rng = np.random.default_rng(config.seed)
        head = [Flatten(), Dense(width, config.hidden, rng=rng), ReLU(), Dense(config.hidden, len(names), rng=rng)]
        model = Sequential([*(Sequential.from_config(body.get_config()).layers), *head], input_shape=base.input_shape)
        model.set_weights(body.get_weights() + [w for layer in head for w in layer.params.values()])
        model.freeze(len(body.layers))
        classes.DrawingTrainer(model, x, y, config, len(names), augment=True).run()
        model.freeze(0)
        model.class_names = names
        return model
    return train


METHODS = {"transfer": transfer(), "from scratch": from_scratch()}
BASE = classes.TransferConfig()
RECIPES = {
    "frozen conv + logistic regression, no augmentation": transfer(dataclasses.replace(BASE, hidden=0, copies=0)),
    "+ hidden layer 64, no augmentation": transfer(dataclasses.replace(BASE, copies=0)),
    "+ 40 augmented copies of each: shift 2, rotation 15, zoom 0.15": transfer(
        dataclasses.replace(BASE, shear=0, stretch=0, elastic=0)),
    "+ shear 0.5, stretch 0.3": transfer(dataclasses.replace(BASE, elastic=0)),
    "+ elastic 2 px: the default recipe": transfer(BASE),
    "default, elastic 1 px": transfer(dataclasses.replace(BASE, elastic=1.0)),
    "default, no hidden layer": transfer(dataclasses.replace(BASE, hidden=0)),
    "default, hidden 128": transfer(dataclasses.replace(BASE, hidden=128)),
    "default, 10 copies": transfer(dataclasses.replace(BASE, copies=10)),
    "default, 600 steps": transfer(dataclasses.replace(BASE, steps=600)),
    "default, cut after the digit network's hidden layer (64 features)": after_hidden(BASE),
    "default, hidden layer starting as the digit network's": from_digit_head(BASE),
    "default, frozen layers run every batch (fresh augmentation)": frozen_every_batch(BASE),
    "from scratch, its default recipe (600 steps)": from_scratch(),
    "from scratch, 300 steps": from_scratch(dataclasses.replace(classes.ScratchConfig(), steps=300)),
}


def measure(method, base, data, split):
    """Train with method on a split's taught drawings -> (accuracy on the other labs' drawings, seconds)."""
    names = [LETTERS[c] for c in split.letters]
    start = time.perf_counter()
    model = method(base, data.x[split.taught], split.y, names)
    seconds = time.perf_counter() - start
    return float(np.mean(model.predict(data.x[split.test]) == split.y_test)), seconds


def row(label, scores, seconds):
    a = np.array(scores)
    return (f"| {label} | **{a.mean():.1%}** | {a.std():.1%} | {a.min():.1%}-{a.max():.1%} | "
            f"{np.mean(seconds):.2f} |")


HEADER = ["| letters x drawings, method | other writers read (mean) | sd | lowest-highest | CPython s |",
          "|---|---|---|---|---|"]


# ---- the page's Python: Pyodide under Node.js -------------------------------------------------------------
PYODIDE_CODE = """
import json, time, numpy as np, pycnn
from pycnn import classes
data = np.load("/data/split.npz")
base = pycnn.load("/data/base.npz")
out = {}
for key in ("small", "large"):
    x, y, names = data[key + "_x"], data[key + "_y"], [str(n) for n in data[key + "_names"]]
    times = {}
    start = time.perf_counter(); classes.transfer(base, x, y, names); times["transfer"] = time.perf_counter() - start
    start = time.perf_counter()
    job = classes.Transfer(base, x, y, names)
    slowest = 0.0
    while not job.done:
        step = time.perf_counter(); job.run(max_batches=1); slowest = max(slowest, time.perf_counter() - step)
    times["transfer job, a step per call"] = time.perf_counter() - start
    times["slowest step of it"] = slowest
    start = time.perf_counter(); classes.from_scratch("two-conv-dense", x, y, names)
    times["from scratch"] = time.perf_counter() - start
    out[key] = times
json.dumps(out)
"""


def pyodide_seconds(base, data, small, large):
    """The same trainings in Pyodide under Node.js -> {"small"|"large": {what: seconds}}."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base.save(folder / "base.npz")
        arrays = {}
        for key, split in (("small", small), ("large", large)):
            arrays.update({f"{key}_x": data.x[split.taught], f"{key}_y": split.y,
                           f"{key}_names": np.array([LETTERS[c] for c in split.letters])})
        np.savez(folder / "split.npz", **arrays)
        return in_pyodide(PYODIDE_CODE, folder)


def cpython_job_seconds(base, data, split):
    names = [LETTERS[c] for c in split.letters]
    start = time.perf_counter()
    job = classes.Transfer(base, data.x[split.taught], split.y, names)
    while not job.done:
        job.run(max_batches=1)
    return time.perf_counter() - start, job.result()["evaluation"]["accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", required=True, metavar="FILE", help="the UNIPEN capital letters JSON")
    parser.add_argument("--model", help="the model to transfer from (default: the page's network, trained and cached)")
    parser.add_argument("--classes", type=int, nargs="+", default=list(GRID_CLASSES), help="letters per split")
    parser.add_argument("--drawings", type=int, nargs="+", default=list(GRID_DRAWINGS), help="drawings per letter")
    parser.add_argument("--splits", type=int, default=10, help="random splits per cell (default 10)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--recipes", action="store_true", help="compare transfer recipes on 5 letters x 10 drawings")
    parser.add_argument("--pyodide", action="store_true", help="time the trainings in Pyodide under Node.js too")
    parser.add_argument("--seed", type=int, default=0, help="picks the splits (default 0)")
    parser.add_argument("--placement-seed", type=int, default=0, help="bench/handwriting.py's placement seed")
    parser.add_argument("--lock", help="hold an exclusive flock on this file while measuring")
    args = parser.parse_args()

    data = Letters(args.letters, args.placement_seed)
    print(data.describe())
    with heavy_lock(args.lock):
        base, described = base_model(args.model)
        print(f"base model: {described}")
        print(f"transfer recipe: {classes.TransferConfig()}\nfrom-scratch recipe: {classes.ScratchConfig()} "
              f"({DEFAULT_PRESET})")
        if args.recipes:
            chosen = splits(data, 5, 10, args.splits, args.seed)
            print(f"\n5 letters x 10 drawings, {args.splits} splits: transfer recipes\n")
            print("\n".join(HEADER))
            for label, method in RECIPES.items():
                results = [measure(method, base, data, split) for split in chosen]
                print(row(label, [a for a, _ in results], [s for _, s in results]), flush=True)
        else:
            print(f"\n{args.splits} splits per cell\n")
            print("\n".join(HEADER))
            for n_classes in args.classes:
                for per_class in args.drawings:
                    chosen = splits(data, n_classes, per_class, args.splits, args.seed)
                    for name in args.methods:
                        results = [measure(METHODS[name], base, data, split) for split in chosen]
                        print(row(f"{n_classes} x {per_class}, {name}", [a for a, _ in results],
                                  [s for _, s in results]), flush=True)
        small = splits(data, 5, 10, 1, args.seed)[0]
        seconds, estimate = cpython_job_seconds(base, data, small)
        print(f"\nthe page's job for 5 x 10 (pycnn.classes.Transfer: 3-fold cross-validation, then the head kept; "
              f"a step per call): {seconds:.2f} s in CPython (its estimate: {estimate:.1%})")
        if args.pyodide:
            large = splits(data, 26, 20, 1, args.seed)[0]
            times = pyodide_seconds(base, data, small, large)
            for key, label in (("small", "5 letters x 10 drawings"), ("large", "26 letters x 20 drawings")):
                print(f"Pyodide under Node.js, {label}: " + ", ".join(f"{what} {s:.2f} s"
                                                                     for what, s in times[key].items()))


if __name__ == "__main__":
    main()
