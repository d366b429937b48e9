"""Drawn-digit accuracy in CPython: held-out digits replayed as pen strokes on a canvas.

    python -m bench.drawn_digits [--count 500] [--canvas 280] [--pen 18] [--model model.npz]

Each digit is thinned to a skeleton, traced into strokes, drawn at a random size (a
quarter to all of the canvas) and position with a round pen, then put through
pycnn.preprocess.to_mnist and classified. Without --model, the page recipe is trained
first. The browser version of this replays the strokes with the mouse (bench/browser).
"""
import argparse
import time

import numpy as np

import pycnn
from bench.strokes import digit_to_strokes, place, render
from pycnn import datasets, preprocess
from pycnn.training import Trainer, TrainingConfig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--canvas", type=int, default=280)
    parser.add_argument("--pen", type=float, default=18.0, help="pen width in canvas pixels")
    parser.add_argument("--model", help="a model file; default: train the page recipe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y, split = datasets.load_subset()
    x_train, y_train, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    if args.model:
        model = pycnn.load(args.model)
    else:
        model = pycnn.seed_model(seed=0)
        Trainer(model, x_train, y_train, TrainingConfig()).run()
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(x_test), size=min(args.count, len(x_test)), replace=False)
    start = time.perf_counter()
    drawn, empty = [], 0
    for i in pick:
        strokes = place(digit_to_strokes(x_test[i, 0]), args.canvas, rng)
        image = preprocess.to_mnist(render(strokes, args.canvas, args.pen))
        if image is None:
            empty += 1
            image = np.zeros((1, 28, 28), np.float32)
        drawn.append(image)
    drawn = np.stack(drawn)
    untouched = model.evaluate(x_test[pick], y_test[pick])["accuracy"]
    replayed = float(np.mean(model.predict(drawn) == y_test[pick]))
    print(f"{len(pick)} held-out digits, canvas {args.canvas}px, pen {args.pen}px, sizes 1/4..1 of the canvas: "
          f"untouched {untouched:.2%}, drawn and preprocessed {replayed:.2%} "
          f"({empty} came out empty; {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
