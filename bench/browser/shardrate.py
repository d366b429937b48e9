"""What splitting each batch into shards costs one worker: the page's recipe trained by
pycnn.training.Trainer with TrainingConfig(shards=k) for several k, in alternate rounds.

Runs where it is imported: in Pyodide the benchmark worker (static/pycnn_worker.mjs, command
`shards`) installs the bench package and calls rates(); in CPython it runs as is. Every k
trains its own copy of the default network from the same weights on the same digits; each
round gives every k `seconds` in turn, the order reversed every other round.
"""
import time

import numpy as np

import pycnn
from pycnn.presets import DEFAULT_PRESET
from pycnn.training import Trainer, TrainingConfig


def trainers(x_bytes, y_bytes, shard_counts, preset=DEFAULT_PRESET, batch_size=64):
    """{k: Trainer} of the page's recipe (TrainingConfig's defaults, batch_size) with shards=k, on the
    digits given as raw uint8 bytes (N*784 pixels, N labels)."""
    x = (np.frombuffer(x_bytes, dtype=np.uint8).astype(np.float32) / np.float32(255)).reshape(-1, 1, 28, 28)
    y = np.frombuffer(y_bytes, dtype=np.uint8).astype(np.intp)
    out = {}
    for k in shard_counts:
        config = TrainingConfig(epochs=1000, batch_size=batch_size, shards=int(k))
        out[int(k)] = Trainer(pycnn.preset(preset, seed=0), x, y, config)
        out[int(k)].run(max_batches=3)  # warm-up: buffers, caches
    return out


def images_per_second(trainer, seconds):
    """Training images/s of trainer over about `seconds` (whole batches)."""
    images, start = 0, time.perf_counter()
    while True:
        images += trainer.run(max_batches=2)["images"]
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return images / elapsed


def rates(x_bytes, y_bytes, shard_counts=(1, 2, 4), rounds=5, seconds=3.0, preset=DEFAULT_PRESET, batch_size=64):
    """{k: [images/s of each round]} for each shard count k, alternately."""
    runs = trainers(x_bytes, y_bytes, shard_counts, preset, batch_size)
    samples = {k: [] for k in runs}
    for r in range(int(rounds)):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for k in order:
            samples[k].append(images_per_second(runs[k], float(seconds)))
    return samples
