"""CPython benchmark of pycnn against PyTorch (1 thread) and the seed post's loop code.

    python -m bench.cpython                  # everything, every preset (about 5 minutes)
    python -m bench.cpython --quick          # fewer rounds and seeds
    python -m bench.cpython --model two-conv # the throughput of one preset only

Prints training images/s of each preset (pycnn.presets: seed, two-conv, lenet; float32,
Adam, batch 32, the seed network at batch 128 too), measured alternately with PyTorch
training the same network in the same run, the seed code's images/s on a few hundred
images, single-image predict latency, accuracy of the same recipe in both libraries, the
page recipe's held-out accuracy, and peak RSS of training the page recipe per preset.
Needs `python build.py` first (for the bundled subset); PyTorch is optional
(`pip install torch==2.13.0`).
"""
import argparse
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import pycnn
from bench import seed_code
from pycnn import datasets
from pycnn.training import Trainer, TrainingConfig

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None


# the page recipe (TrainingConfig defaults) on the bundled subset, as `python -m pycnn train`
# does it, in a fresh process that reports its own peak RSS
PEAK_RSS_CHILD = """
import sys, time
import pycnn
from pycnn import datasets
from pycnn.cli import _limit_threads
x, y, split = datasets.load_subset()
x_train, y_train, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
model = pycnn.preset(sys.argv[1], seed=0)
start = time.perf_counter()
with _limit_threads(1):
    pycnn.Trainer(model, x_train, y_train, pycnn.TrainingConfig(), validation_data=(x_test, y_test)).run()
took = time.perf_counter() - start
status = open("/proc/self/status").read().split("VmHWM:")[1].split()
print(f"{int(status[0]) / 1024:.0f} MB, {took:.1f} s of training, held-out accuracy "
      f"{model.evaluate(x_test, y_test)['accuracy']:.2%}")
"""


def torch_model(seed, name="seed"):
    """The preset's network in PyTorch (same layers, PyTorch's own initialisation)."""
    torch.manual_seed(seed)
    layers = []
    for spec in pycnn.PRESETS[name]["layers"]:
        c = spec["config"]
        if spec["class"] == "Conv2D":
            layers.append(torch.nn.Conv2d(c["in_channels"], c["filters"], c["kernel_size"], c["stride"], c["padding"]))
        elif spec["class"] == "ReLU":
            layers.append(torch.nn.ReLU())
        elif spec["class"] == "MaxPool2D":
            layers.append(torch.nn.MaxPool2d(c["pool_size"], c["stride"]))
        elif spec["class"] == "Flatten":
            layers.append(torch.nn.Flatten())
        else:
            layers.append(torch.nn.Linear(c["in_features"], c["out_features"]))
    return torch.nn.Sequential(*layers)


def pycnn_trainer(x, y, batch, seed=0, name="seed"):
    """A closure running n training steps of pycnn on (x, y) batches, cycling through the data."""
    model, opt = pycnn.preset(name, seed=seed), pycnn.Adam(1e-3)
    state = {"i": 0}

    def run(steps):
        for _ in range(steps):
            i = state["i"] % (len(x) - batch)
            model.train_step(x[i:i + batch], y[i:i + batch], opt)
            state["i"] += batch
    return run


def torch_trainer(x, y, batch, seed=0, name="seed"):
    model = torch_model(seed, name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()
    state = {"i": 0}

    def run(steps):
        for _ in range(steps):
            i = state["i"] % (len(x) - batch)
            opt.zero_grad()
            loss_fn(model(xt[i:i + batch]), yt[i:i + batch]).backward()
            opt.step()
            state["i"] += batch
    return run


def images_per_second(run, batch, seconds):
    run(3)  # warm up: buffers, caches
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(10)
        steps += 10
    return steps * batch / (time.perf_counter() - start)


def throughput(x, y, batch, rounds, seconds, model="seed"):
    """Median images/s of pycnn and torch, measured alternately round by round (order flipped
    every round), and the median of the per-round ratios."""
    runners = {"pycnn": pycnn_trainer(x, y, batch, name=model)}
    if torch is not None:
        runners["torch"] = torch_trainer(x, y, batch, name=model)
    samples = {name: [] for name in runners}
    for r in range(rounds):
        for name in (list(runners) if r % 2 == 0 else list(reversed(runners))):
            samples[name].append(images_per_second(runners[name], batch, seconds))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratio = statistics.median(p / t for p, t in zip(samples["pycnn"], samples["torch"])) if torch else None
    return medians, samples, ratio


def seed_speed(x, y, images):
    model = seed_code.cnn(input_size=(1, 28, 28), kernel_size=3, n_filters=10, output_size=10)
    start = time.perf_counter()
    for i in range(0, images, 32):
        model.adamGD(x[i:i + 32], y[i:i + 32], 0.005, 0.95, 0.99, [])
    return images / (time.perf_counter() - start)


def predict_latency(x):
    model = pycnn.seed_model(seed=0)
    times = []
    for i in range(2000):
        start = time.perf_counter()
        model.predict_proba(x[i % len(x)][None])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_accuracy(x_train, y_train, x_test, y_test, seed, epochs=2, batch=32):
    model = torch_model(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    with torch.no_grad():
        return float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())


def pycnn_accuracy(x_train, y_train, x_test, y_test, config):
    model = pycnn.seed_model(seed=config.seed)
    start = time.perf_counter()
    Trainer(model, x_train, y_train, config).run()
    return model.evaluate(x_test, y_test)["accuracy"], time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and seeds")
    parser.add_argument("--model", choices=["all", *pycnn.PRESETS], default="all",
                        help="the preset whose throughput to measure; one preset skips everything else")
    args = parser.parse_args()
    rounds, seconds, seeds = (3, 1.0, 2) if args.quick else (5, 2.0, 3)

    x, y, split = datasets.load_subset()
    x_train, y_train, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    print(f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}, "
          f"subset {len(x_train)} train / {len(x_test)} held-out, 1 BLAS thread")

    print("\n## Training throughput, float32, Adam, no augmentation (images/s, median of alternate rounds; "
          "ratio: median of the per-round ratios)")
    models = list(pycnn.PRESETS) if args.model == "all" else [args.model]
    for model in models:
        work = pycnn.preset(model).work()
        for batch in ((32, 128) if model == "seed" else (32,)):
            medians, samples, ratio = throughput(x_train, y_train, batch, rounds, seconds, model)
            rows = "  ".join(f"{name} {value:,.0f} (rounds: {', '.join(f'{v:,.0f}' for v in samples[name])})"
                             for name, value in medians.items())
            shown = f"  ratio pycnn/torch {ratio:.2f}x" if ratio else ""
            print(f"{model:<8} ({work / 1e6:.2f} M multiply-adds/image forward) batch {batch:>3}: {rows}{shown}")
    if args.model != "all":
        return
    n_seed = 64 if args.quick else 256
    seed_rate = seed_speed(x_train, y_train, n_seed)
    pycnn_rate = images_per_second(pycnn_trainer(x_train, y_train, 32), 32, seconds)
    print(f"seed post's code: {seed_rate:.1f} images/s on {n_seed} images; pycnn right after: {pycnn_rate:,.0f} "
          f"-> {pycnn_rate / seed_rate:,.0f}x")

    print(f"\n## Single-image predict: median {predict_latency(x_test) * 1e6:.0f} us")

    print("\n## Same recipe, same accuracy: Adam 1e-3, batch 32, 2 epochs, held-out accuracy")
    mine = [pycnn_accuracy(x_train, y_train, x_test, y_test,
                           TrainingConfig(epochs=2, lr=1e-3, schedule="constant", augment=False, seed=s))[0]
            for s in range(seeds)]
    print(f"pycnn: {', '.join(f'{a:.2%}' for a in mine)} (mean {statistics.mean(mine):.2%})")
    if torch is not None:
        theirs = [torch_accuracy(x_train, y_train, x_test, y_test, s) for s in range(seeds)]
        print(f"torch: {', '.join(f'{a:.2%}' for a in theirs)} (mean {statistics.mean(theirs):.2%})")

    print("\n## The page recipe (TrainingConfig defaults): held-out accuracy")
    print(f"recipe: {TrainingConfig.defaults()}")
    for s in range(seeds):
        acc, took = pycnn_accuracy(x_train, y_train, x_test, y_test, TrainingConfig(seed=s))
        print(f"seed {s}: {acc:.2%} in {took:.1f} s")

    print(f"\npeak RSS of this process (numpy, torch, data): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    # pycnn alone: training the page recipe in a fresh child process, without torch. The
    # child reports its own VmHWM: a forked child's ru_maxrss would include this process.
    for model in ("seed", "two-conv"):
        child = subprocess.run([sys.executable, "-c", PEAK_RSS_CHILD, model], check=True, capture_output=True,
                               text=True)
        print(f"peak RSS training the {model} preset with the page recipe (15 epochs, 8,500 digits, augmented): "
              f"{child.stdout.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
