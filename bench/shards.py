"""Data-parallel training in CPython: the sharded step in one process and over helper processes.

    python -m bench.shards                        # the seed and two-conv-dense presets, batch 64
    python -m bench.shards --model two-conv-dense --batch 256 --rounds 5 --seconds 3

Prints the training images/s of pycnn.training.Trainer (float32, Adam, no augmentation, the
bundled subset's 8,500 training digits) three ways, measured alternately round by round (the
order flipped every round), each as a ratio to the unsharded rate (the median of the
per-round ratios):
- unsharded: TrainingConfig(shards=1), today's step;
- shards=4 in one process: the four shards' gradients one after another, summed, one step;
- shards=4 over 2 processes: a ProcessPoolExecutor of 2 spawned helpers (one BLAS thread
  each) computes the shards from their task bytes (pycnn.parallel.run_task), two tasks per
  round trip; this process chooses the batch, encodes the tasks, sums the results in shard
  order and applies them.
All three make the same run up to float rounding; the last two the same bits. Then the peak
RSS of this process and of the larger helper. Needs `python build.py` first (the subset).
"""
import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import statistics
import time

import numpy as np

import pycnn
from pycnn import datasets, parallel
from pycnn.training import Trainer, TrainingConfig

SHARDS, HELPERS = 4, 2


def one_blas_thread():
    """A helper's BLAS uses one thread (its environment says so too, before numpy loads)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def load_average():
    """The 1-minute load average (other work on the cores slows the helpers most), or "unknown"."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def images_per_second(trainer, seconds):
    """Training images/s of trainer over about `seconds`, after a few warm-up batches."""
    trainer.run(max_batches=3)  # buffers, caches, the helpers' models
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += trainer.run(max_batches=10)["images"]
    return images / (time.perf_counter() - start)


def compare(x, y, model, batch, rounds, seconds, pool):
    """{way: [images/s per round]} of the three ways, measured alternately."""
    def trainer(shards, compute=None):
        config = TrainingConfig(epochs=1000, batch_size=batch, lr=1e-3, schedule="constant", augment=False,
                                shards=shards)
        return Trainer(pycnn.preset(model, seed=0), x, y, config, compute_shards=compute)

    trainers = {
        "unsharded": trainer(1),
        f"shards={SHARDS}, 1 process": trainer(SHARDS),
        f"shards={SHARDS}, {HELPERS} processes": trainer(SHARDS, lambda tasks: list(
            pool.map(parallel.run_task, tasks, chunksize=-(-len(tasks) // HELPERS)))),
    }
    samples = {name: [] for name in trainers}
    for r in range(rounds):
        for name in (list(trainers) if r % 2 == 0 else list(reversed(trainers))):
            samples[name].append(images_per_second(trainers[name], seconds))
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["all", *pycnn.PRESETS], default="all",
                        help="the preset to train (default: seed and two-conv-dense)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64, the page's)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per way and round")
    args = parser.parse_args()

    x, y, split = datasets.load_subset()
    x_train, y_train, _, _ = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    print(f"numpy {np.__version__}, {os.cpu_count()} cores, subset {len(x_train)} training digits, float32, Adam, "
          f"batch {args.batch}, no augmentation, 1 BLAS thread per process; load average {load_average()}")
    models = ["seed", "two-conv-dense"] if args.model == "all" else [args.model]
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # for the helpers' numpy (bench/__init__ set it here already)
    with concurrent.futures.ProcessPoolExecutor(HELPERS, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=one_blas_thread) as pool:
        print(f"\n## Training images/s (median of {args.rounds} alternate rounds of {args.seconds:g} s; "
              f"ratio: median of the per-round ratios to unsharded)")
        for model in models:
            samples = compare(x_train, y_train, model, args.batch, args.rounds, args.seconds, pool)
            base = samples["unsharded"]
            print(f"{model} ({pycnn.preset(model).count_params():,} weights):")
            for name, rates in samples.items():
                ratio = statistics.median(r / b for r, b in zip(rates, base))
                rounds = ", ".join(f"{r:,.0f}" for r in rates)
                print(f"  {name:<24} {statistics.median(rates):>8,.0f} images/s  {ratio:.2f}x  (rounds: {rounds})")
    # the pool is shut down: its helpers were waited for, so RUSAGE_CHILDREN holds the larger one's peak
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    helper = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak RSS: this process {own:.0f} MB (data, the three trainers), the larger helper {helper:.0f} MB; "
          f"load average {load_average()}")


if __name__ == "__main__":
    main()
