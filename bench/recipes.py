"""Which network and recipe should the page train by default? Candidates scored three ways.

    python -m bench.recipes --unipen FILE                                  # every recipe, 15 epochs, seed 0
    python -m bench.recipes --unipen FILE --only lenet two-conv-16-32 --epochs 8 15 --augment page none --seeds 0 1
    python -m bench.recipes --unipen FILE --only lenet --lr 0.005 0.01 0.02 --json runs.json
    python -m bench.recipes --table runs.json                              # the table of saved runs again
    python -m bench.recipes --init fresh/ --only lenet                      # untrained model files for the page

--unipen is the UNIPEN digits JSON (not part of the project). Every run trains with
pycnn.training.Trainer (the code the page runs) on the bundled subset's 8,500 training digits and is
scored on the subset's 1,500 held-out digits, on the 10,000 real MNIST test digits (bench/real_mnist.py)
and on the UNIPEN pen digits drawn on the page's canvas (bench/handwriting.py, placement seed 0).
Printed per run: forward multiply-adds per image (Conv2D and Dense), parameters, CPython training
seconds (one BLAS thread) and an estimate of one click on Train in the page: epochs times the page's
measured seconds per epoch of that network (--page-epoch-s NET=S, from bench.browser.handwriting --model
untrained.npz --train, which trains 15 epochs: its time / 15), else the CPython time divided by a
browser/CPython speed ratio (--browser-ratio; 0.17: the two-conv and lenet presets in bench/browser/RESULTS.md).
The ratio is a rough guess for other networks: they spend their time in other numpy operations, and
the page also evaluates the held-out digits after every epoch.

--lock FILE holds an exclusive flock on FILE for each run (training and scoring), and only then, so
other heavy jobs on a shared machine interleave with a long grid and timings are not disturbed by them.
"""
import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from bench import handwriting, heavy_lock, real_mnist
from pycnn import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential, datasets
from pycnn.augment import random_affine
from pycnn.training import Trainer, TrainingConfig

BROWSER_RATIO = 0.17  # images/s in the page's worker / in CPython, two-conv and lenet (bench/browser/RESULTS.md)
BUDGET_S = 60         # one click on Train, in the page

# The candidate networks, as layer lists (Conv2D(in, filters, kernel)); conv -> ReLU -> 2x2 pool blocks
# run as pycnn's fused block.
NETWORKS = {
    "seed": lambda: [Conv2D(1, 10, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(13 * 13 * 10, 10)],
    "two-conv-8-16": lambda: [Conv2D(1, 8, 3), ReLU(), MaxPool2D(2), Conv2D(8, 16, 3), ReLU(), MaxPool2D(2),
                              Flatten(), Dense(5 * 5 * 16, 10)],
    "two-conv-16-32": lambda: [Conv2D(1, 16, 3), ReLU(), MaxPool2D(2), Conv2D(16, 32, 3), ReLU(), MaxPool2D(2),
                               Flatten(), Dense(5 * 5 * 32, 10)],
    "two-conv-12-24-same": lambda: [Conv2D(1, 12, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(12, 24, 3), ReLU(),
                                    MaxPool2D(2), Flatten(), Dense(6 * 6 * 24, 10)],
    "two-conv-16-32-same": lambda: [Conv2D(1, 16, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(16, 32, 3), ReLU(),
                                    MaxPool2D(2), Flatten(), Dense(6 * 6 * 32, 10)],
    # the two-conv network with a hidden dense layer, as LeNet has: is it the head that reads pen digits better?
    "two-conv-16-32-d64": lambda: [Conv2D(1, 16, 3), ReLU(), MaxPool2D(2), Conv2D(16, 32, 3), ReLU(), MaxPool2D(2),
                                   Flatten(), Dense(5 * 5 * 32, 64), ReLU(), Dense(64, 10)],
    "lenet": lambda: [Conv2D(1, 6, 5, padding="same"), ReLU(), MaxPool2D(2), Conv2D(6, 16, 5), ReLU(), MaxPool2D(2),
                      Flatten(), Dense(5 * 5 * 16, 120), ReLU(), Dense(120, 84), ReLU(), Dense(84, 10)],
    # the page's default with a BatchNorm after each conv, with Dropout before the output layer, or both:
    # does a preset of the newer layers earn its place?
    "two-conv-16-32-d64-bn": lambda: [Conv2D(1, 16, 3), BatchNorm(16), ReLU(), MaxPool2D(2), Conv2D(16, 32, 3),
                                      BatchNorm(32), ReLU(), MaxPool2D(2), Flatten(), Dense(5 * 5 * 32, 64), ReLU(),
                                      Dense(64, 10)],
    "two-conv-16-32-d64-drop": lambda: [Conv2D(1, 16, 3), ReLU(), MaxPool2D(2), Conv2D(16, 32, 3), ReLU(),
                                        MaxPool2D(2), Flatten(), Dense(5 * 5 * 32, 64), ReLU(), Dropout(0.25),
                                        Dense(64, 10)],
    "two-conv-16-32-d64-bn-drop": lambda: [Conv2D(1, 16, 3), BatchNorm(16), ReLU(), MaxPool2D(2), Conv2D(16, 32, 3),
                                           BatchNorm(32), ReLU(), MaxPool2D(2), Flatten(), Dense(5 * 5 * 32, 64),
                                           ReLU(), Dropout(0.25), Dense(64, 10)],
}

# Random affine maps per batch (pycnn.augment.random_affine's arguments). "page" is what
# TrainingConfig(augment=True) does; the others need arguments TrainingConfig does not have, so
# AffineTrainer below passes them.
AUGMENTATIONS = {
    "none": None,
    "page": {"max_shift": 2.0, "max_rotation": 5.0, "scale": (0.95, 1.05)},
    "shift": {"max_shift": 2.0, "max_rotation": 0.0, "scale": (1.0, 1.0)},
    "wider": {"max_shift": 2.0, "max_rotation": 10.0, "scale": (0.9, 1.1)},
    "strong": {"max_shift": 3.0, "max_rotation": 15.0, "scale": (0.85, 1.15)},
}

# A recipe: a network plus TrainingConfig settings plus an augmentation. The default of each
# candidate is the page's recipe (TrainingConfig's defaults: 15 epochs, batch 32, Adam, one-cycle,
# peak lr 0.01, "page" augmentation); the command line overrides epochs, lr and augmentation.
RECIPES = {name: {"net": name, "epochs": 15, "batch_size": 32, "lr": 0.01, "schedule": "onecycle",
                  "augment": "page"} for name in NETWORKS}


class AffineTrainer(Trainer):
    """Trainer whose batches get random_affine with the given arguments (TrainingConfig has only on/off)."""

    def __init__(self, model, x, y, config, affine):
        super().__init__(model, x, y, config)
        self.affine = affine

    def _batch(self):
        xb, yb = super()._batch()  # config.augment is off: the plain batch, a copy
        return random_affine(xb, self.rng, out=xb, **self.affine), yb


# the networks pycnn.presets names (when the library has it): built from there, as the page builds them
PRESET_NAMES = {"seed": "seed", "two-conv-16-32": "two-conv", "two-conv-16-32-d64": "two-conv-dense", "lenet": "lenet"}


def build(net, seed):
    """A fresh model of the named network, weights from seed (pycnn.presets' when it has the network)."""
    model = Sequential(NETWORKS[net](), seed=seed, input_shape=(1, 28, 28))
    try:
        from pycnn.presets import preset
    except ImportError:
        return model
    if net not in PRESET_NAMES:
        return model
    chosen = preset(PRESET_NAMES[net], seed=seed)
    if chosen.get_config() != model.get_config():
        raise ValueError(f"pycnn.presets' {PRESET_NAMES[net]!r} is not the network {net!r} of this script")
    return chosen


def multiply_adds(model):
    """Multiply-adds per image of a forward pass through the Conv2D and Dense layers."""
    total = 0
    for layer, out in zip(model.layers, model.output_shapes()):
        if isinstance(layer, Conv2D):
            total += int(np.prod(out)) * layer.in_channels * layer.kernel_size ** 2
        elif isinstance(layer, Dense):
            total += layer.params["W"].size
    return total


def describe(recipe):
    return (f"{recipe['net']}, {recipe['epochs']} epochs, batch {recipe['batch_size']}, {recipe['schedule']} "
            f"peak lr {recipe['lr']:g}, augmentation {recipe['augment']}")


_DATA = {}


def training_digits():
    """The subset's 8,500 training and 1,500 held-out digits, as the page splits them (loaded once)."""
    if not _DATA:
        x, y, split = datasets.load_subset()
        _DATA["split"] = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    return _DATA["split"]


def train(recipe, seed=0):
    """Train the recipe with the given seed (weights and batches) -> the model."""
    x_tr, y_tr, _, _ = training_digits()
    model = build(recipe["net"], seed)
    affine = AUGMENTATIONS[recipe["augment"]]
    config = TrainingConfig(epochs=recipe["epochs"], batch_size=recipe["batch_size"], lr=recipe["lr"],
                            schedule=recipe["schedule"], augment=recipe["augment"] == "page", seed=seed)
    if affine is None or recipe["augment"] == "page":
        Trainer(model, x_tr, y_tr, config).run()
    else:
        AffineTrainer(model, x_tr, y_tr, config, affine).run()
    return model


def run(recipe, seed, scorers, lock=None):
    """Train and score one recipe -> (result dict, model); the timing is only the training."""
    with heavy_lock(lock):
        start = time.perf_counter()
        model = train(recipe, seed)
        seconds = time.perf_counter() - start
        scores = {name: score(model) for name, score in scorers.items()}
    result = {**recipe, "seed": seed, "multiply_adds": multiply_adds(model), "params": model.count_params(),
              "train_s": seconds, "load_average": os.getloadavg()[0], **scores}
    return result, model


HEADER = ("| network | epochs | lr | augment | seed | fwd MACs/img | params | CPython train s | page s (est.) "
          "| held-out | MNIST test | UNIPEN |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def page_seconds(r, ratio=BROWSER_RATIO, per_epoch=None):
    """Estimated seconds of one click on Train in the page for a result r, and how it was estimated."""
    if per_epoch and r["net"] in per_epoch:
        return r["epochs"] * per_epoch[r["net"]]
    return r["train_s"] / ratio


def row(r, ratio=BROWSER_RATIO, per_epoch=None):
    page_s = page_seconds(r, ratio, per_epoch)
    return (f"| {r['net']} | {r['epochs']} | {r['lr']:g} | {r['augment']} | {r['seed']} | {r['multiply_adds'] / 1e6:.3f} M "
            f"| {r['params']:,} | {r['train_s']:.1f} | ~{page_s:.0f}{'' if page_s <= BUDGET_S else ' (over 60)'} "
            f"| {r['heldout']:.2%} | {r['mnist_test']:.2%} | {r['unipen']:.2%} |")


def summary(results, ratio=BROWSER_RATIO, per_epoch=None):
    """Mean over seeds of each (network, epochs, lr, batch size, augmentation), best UNIPEN first."""
    groups = {}
    for r in results:
        groups.setdefault((r["net"], r["epochs"], r["lr"], r.get("batch_size", 32), r["augment"]), []).append(r)
    lines = ["| network | epochs | lr | batch | augment | seeds | CPython train s | page s (est.) | MNIST test | UNIPEN | "
             "held-out |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (net, epochs, lr, batch, aug), rs in sorted(groups.items(), key=lambda kv: -np.mean([r["unipen"] for r in kv[1]])):
        mean = lambda key: np.mean([r[key] for r in rs])  # noqa: E731
        spread = lambda key: (f" ({min(r[key] for r in rs):.2%}-{max(r[key] for r in rs):.2%})"  # noqa: E731
                              if len(rs) > 1 else "")
        lines.append(f"| {net} | {epochs} | {lr:g} | {batch} | {aug} | {len(rs)} | {mean('train_s'):.1f} | "
                     f"~{np.mean([page_seconds(r, ratio, per_epoch) for r in rs]):.0f} | {mean('mnist_test'):.2%}{spread('mnist_test')} | "
                     f"{mean('unipen'):.2%}{spread('unipen')} | {mean('heldout'):.2%} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unipen", metavar="FILE", help="the UNIPEN digits JSON (not part of the project)")
    parser.add_argument("--only", nargs="+", choices=list(RECIPES), metavar="NAME",
                        help=f"these recipes (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--epochs", type=int, nargs="+", help="override the recipes' epochs (15)")
    parser.add_argument("--lr", type=float, nargs="+", help="override the peak learning rate (0.01)")
    parser.add_argument("--batch-size", type=int, nargs="+", help="override the batch size (32)")
    parser.add_argument("--augment", nargs="+", choices=list(AUGMENTATIONS), help="override the augmentation (page)")
    parser.add_argument("--schedule", choices=["onecycle", "cosine", "constant"], help="override the schedule")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--browser-ratio", type=float, default=BROWSER_RATIO,
                        help=f"page/CPython training speed for the estimate (default {BROWSER_RATIO})")
    parser.add_argument("--page-epoch-s", nargs="+", default=[], metavar="NET=S",
                        help="the page's measured seconds per epoch of a network, for the page time estimate")
    parser.add_argument("--lock", metavar="FILE", help="hold an exclusive flock on FILE during each run")
    parser.add_argument("--json", metavar="FILE", help="append each run's result to this JSON file")
    parser.add_argument("--table", metavar="JSON", help="print the tables of a saved --json file and exit")
    parser.add_argument("--save-models", metavar="DIR", help="also write each trained model to DIR")
    parser.add_argument("--init", metavar="DIR", help="write an untrained model file of every --only network "
                        "(weights from the first --seeds) to DIR and exit: for the page's Load model + Train")
    args = parser.parse_args()
    try:
        per_epoch = {net: float(s) for net, s in (item.split("=") for item in args.page_epoch_s)}
    except ValueError:
        parser.error(f"--page-epoch-s takes NET=SECONDS items, got {args.page_epoch_s}")
    unknown = set(per_epoch) - set(NETWORKS)
    if unknown:
        parser.error(f"--page-epoch-s: unknown network(s) {', '.join(sorted(unknown))}")

    if args.table:
        results = json.loads(Path(args.table).read_text())
        print(HEADER)
        print("\n".join(row(r, args.browser_ratio, per_epoch) for r in results))
        print()
        print("\n".join(summary(results, args.browser_ratio, per_epoch)))
        return
    if args.init:
        Path(args.init).mkdir(parents=True, exist_ok=True)
        for name in args.only or NETWORKS:
            model = build(RECIPES[name]["net"], args.seeds[0])
            model.save(Path(args.init) / f"{name}.npz")
            print(f"{Path(args.init) / name}.npz: untrained {name}, {multiply_adds(model):,} multiply-adds per image")
        return
    if not args.unipen:
        parser.error("--unipen FILE is required (the UNIPEN digits JSON, not part of the project)")

    recipes = []
    for name in args.only or RECIPES:
        base = RECIPES[name]
        for epochs, lr, aug, batch in itertools.product(args.epochs or [base["epochs"]], args.lr or [base["lr"]],
                                                        args.augment or [base["augment"]],
                                                        args.batch_size or [base["batch_size"]]):
            recipes.append({**base, "epochs": epochs, "lr": lr, "augment": aug, "batch_size": batch,
                            "schedule": args.schedule or base["schedule"]})
    _, _, x_ho, y_ho = training_digits()
    x_test, y_test = real_mnist.test_set()
    with heavy_lock(args.lock):
        replay = handwriting.Replay(args.unipen, seed=0)
    print(replay.describe(), flush=True)
    scorers = {
        "heldout": lambda m: m.evaluate(x_ho, y_ho)["accuracy"],
        "mnist_test": lambda m: m.evaluate(x_test, y_test)["accuracy"],
        "unipen": replay.accuracy,
    }
    print(f"{len(recipes) * len(args.seeds)} runs; page time estimated as "
          + "".join(f"epochs x {s:g} s for {net}, " for net, s in per_epoch.items())
          + f"CPython time / {args.browser_ratio:g}" + (" otherwise" if per_epoch else ""))
    print(HEADER, flush=True)
    saved = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).is_file() else []
    for recipe in recipes:
        for seed in args.seeds:
            result, model = run(recipe, seed, scorers, args.lock)
            print(row(result, args.browser_ratio, per_epoch), flush=True)
            if args.json:
                saved.append(result)
                Path(args.json).write_text(json.dumps(saved, indent=1) + "\n")
            if args.save_models:
                Path(args.save_models).mkdir(parents=True, exist_ok=True)
                model.save(Path(args.save_models) / (f"{recipe['net']}-e{recipe['epochs']}-lr{recipe['lr']:g}-"
                                                     f"{recipe['augment']}-s{seed}.npz"))
    if args.json:
        print()
        print("\n".join(summary(saved, args.browser_ratio, per_epoch)))


if __name__ == "__main__":
    main()
