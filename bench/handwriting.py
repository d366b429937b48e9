"""Real handwriting in CPython: UNIPEN pen digits replayed on the page's canvas and read by a model.

    python -m bench.handwriting --unipen FILE --model model.npz    # a model file (CLI or page download)
    python -m bench.handwriting --unipen FILE --recipe lenet       # train a recipe of bench/recipes.py first
    python -m bench.handwriting --unipen FILE --model m.npz --count 500 --seed 1

--unipen is the UNIPEN digits JSON (not part of the project): 3,000 isolated digits written on pen
tablets by 267 people, strokes as the pen recorded them. Each digit is scaled (aspect kept) so its
larger side is a random 1/3 to 0.88 of the 280 px canvas and put at a random place on it, its points
are thinned to one every --spacing canvas pixels (a pointer sends one event per move, not per tablet
sample), drawn with the page's brush (bench/strokes.py paint: round pen 6.5% of the canvas, soft edge
10% of the pen), put through pycnn.preprocess.to_mnist and classified. The placement of digit i
depends only on (--seed, i), so a subset (--count) or the browser replay
(bench/browser/handwriting.py) draws the very same digits. Prints overall, per-digit and
per-contributor accuracy and the confusion matrix.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.strokes import paint, place, spaced

CANVAS = 280                 # the page's drawing canvas, in canvas pixels
SIZES = (1 / 3, 0.88)        # the digit's larger side, as a fraction of the canvas
MARGIN = 0.06                # place() keeps the pen's centre this fraction of the canvas from its edges
SPACING = 3.0                # canvas pixels between replayed points


def load_unipen(path):
    """The UNIPEN digits JSON -> list of {"label", "contributor", "writer", "strokes"}.

    Raises ValueError naming the file when it is not that JSON.
    """
    path = Path(path)
    try:
        digits = json.loads(path.read_text())["digits"]
        for d in digits:
            if not (isinstance(d["label"], int) and 0 <= d["label"] <= 9 and d["strokes"] and d["contributor"]):
                raise ValueError(f"a digit has label {d['label']!r} and {len(d['strokes'])} strokes")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--unipen {path}: expected the UNIPEN digits JSON "
                         f"({{'digits': [{{'label', 'contributor', 'strokes'}}, ...]}}), got: {e}") from None
    return digits


def fractions(sizes=SIZES, canvas=CANVAS):
    """Canvas fractions -> the min_frac, max_frac of strokes.place (a fraction of the canvas inside its margins)."""
    inner = canvas * (1 - 2 * MARGIN)
    return sizes[0] * canvas / inner, sizes[1] * canvas / inner


def placement(strokes, index, seed, canvas=CANVAS, sizes=SIZES, spacing=SPACING):
    """Strokes of digit `index` at their random size and place for `seed` -> strokes in canvas pixels."""
    rng = np.random.default_rng([seed, index])
    low, high = fractions(sizes, canvas)
    return [spaced(s, spacing) for s in place(strokes, canvas, rng, low, high)]


def pick(n_digits, count, seed):
    """Which digits to replay: all of them in order, or `count` of them at random (seeded)."""
    if count is None or count >= n_digits:
        return np.arange(n_digits)
    return np.sort(np.random.default_rng(seed).choice(n_digits, size=count, replace=False))


def to_inputs(drawings, canvas=CANVAS):
    """Placed strokes -> (N, 1, 28, 28) float32 model inputs via the page's brush and to_mnist, and
    how many came out empty (those are zeros, which no model should read as a digit)."""
    from pycnn import preprocess
    out, empty = np.zeros((len(drawings), 1, 28, 28), np.float32), 0
    for n, strokes in enumerate(drawings):
        image = preprocess.to_mnist(paint(strokes, canvas))
        if image is None:
            empty += 1
        else:
            out[n] = image
    return out, empty


class Replay:
    """The UNIPEN digits drawn on the canvas once (placement seed fixed), ready to score models on."""

    def __init__(self, path, seed=0, count=None, spacing=SPACING, sizes=SIZES):
        digits = load_unipen(path)
        self.seed, self.spacing, self.sizes = seed, spacing, sizes
        self.indices = pick(len(digits), count, seed)
        chosen = [digits[i] for i in self.indices]
        self.labels = np.array([d["label"] for d in chosen])
        self.contributors = np.array([d["contributor"] for d in chosen])
        self.writers = len({d["writer"] for d in chosen})
        start = time.perf_counter()
        self.drawings = [placement(d["strokes"], i, seed, CANVAS, sizes, spacing) for i, d in zip(self.indices, chosen)]
        self.x, self.empty = to_inputs(self.drawings)
        self.seconds = time.perf_counter() - start

    def describe(self):
        lo, hi = (round(f * CANVAS) for f in self.sizes)
        return (f"{len(self.labels):,} UNIPEN digits ({self.writers} writers, {len(set(self.contributors))} "
                f"contributors), placement seed {self.seed}: larger side {lo}-{hi} px of the {CANVAS} px canvas "
                f"(aspect kept, random place), points >= {self.spacing:g} px apart, the page's brush; "
                f"{self.empty} came out empty; drawn and preprocessed in {self.seconds:.1f} s")

    def accuracy(self, model):
        return float(np.mean(model.predict(self.x) == self.labels))


def confusion(labels, reads, classes=10):
    """(classes, classes) counts: rows the label, columns what was read (-1, nothing read, is left out)."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    ok = (reads >= 0) & (reads < classes)
    np.add.at(matrix, (labels[ok], reads[ok]), 1)
    return matrix


def report(labels, reads, contributors, title="read correctly"):
    """Lines: overall, per-digit and per-contributor accuracy, the confusion matrix, the commonest mistakes."""
    labels, reads, contributors = np.asarray(labels), np.asarray(reads), np.asarray(contributors)
    right = reads == labels
    lines = [f"{title}: **{right.mean():.2%}** ({right.sum():,}/{len(labels):,})"]
    lines.append("per digit: " + ", ".join(f"{d} {right[labels == d].mean():.1%}" for d in range(10) if (labels == d).any()))
    names = sorted(set(contributors), key=lambda c: (-np.sum(contributors == c), c))
    lines.append("per contributor (digits): " + ", ".join(
        f"{c} {right[contributors == c].mean():.1%} ({np.sum(contributors == c)})" for c in names))
    matrix = confusion(labels, reads)
    lines.append("confusion (rows: label, columns: read):")
    lines.append("      " + "".join(f"{d:>5}" for d in range(10)))
    lines += [f"  {d:>3} " + "".join(f"{n:>5}" for n in row) for d, row in enumerate(matrix)]
    off = [(matrix[i, j], i, j) for i in range(10) for j in range(10) if i != j and matrix[i, j]]
    lines.append("commonest mistakes (label->read): " + ", ".join(f"{i}->{j} {n}" for n, i, j in sorted(off, reverse=True)[:10]))
    nothing = int(np.sum(reads < 0))
    if nothing:
        lines.append(f"nothing read: {nothing}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unipen", required=True, metavar="FILE", help="the UNIPEN digits JSON (not part of the project)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model file (python -m pycnn train, or the page's Download model)")
    source.add_argument("--recipe", help="train this recipe of bench/recipes.py on the bundled training digits first")
    parser.add_argument("--train-seed", type=int, default=0, help="with --recipe: the training seed (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="placement seed (default 0)")
    parser.add_argument("--count", type=int, help="replay this many digits, picked at random (default: all)")
    parser.add_argument("--spacing", type=float, default=SPACING, help=f"canvas px between points (default {SPACING:g})")
    args = parser.parse_args()

    import pycnn
    replay = Replay(args.unipen, args.seed, args.count, args.spacing)
    print(replay.describe())
    if args.model:
        model = pycnn.load(args.model)
        print(f"model: {args.model}")
    else:
        from bench import recipes  # only when asked: it imports this module
        recipe = recipes.RECIPES[args.recipe] if args.recipe in recipes.RECIPES else None
        if recipe is None:
            sys.exit(f"--recipe must be one of {', '.join(recipes.RECIPES)}, got {args.recipe!r}")
        start = time.perf_counter()
        model = recipes.train(recipe, args.train_seed)
        print(f"model: recipe {args.recipe} ({recipes.describe(recipe)}), seed {args.train_seed}, "
              f"trained in {time.perf_counter() - start:.1f} s")
    reads = model.predict(replay.x)
    reads[np.all(replay.x == 0, axis=(1, 2, 3))] = -1  # an empty drawing is read as nothing
    for line in report(replay.labels, reads, replay.contributors):
        print(line)


if __name__ == "__main__":
    main()
