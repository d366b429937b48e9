"""Where a pycnn training step spends its time, and which kernel variant is fastest here
(Pyodide or CPython).

profile(x, y, steps, augment, model) runs `steps` batches of a preset twice, interleaved:
model.train_step itself (timed as a whole) and the same step taken apart, with a timer
around every plan step's forward and backward (fused blocks, Flatten, Dense ...), the loss,
Adam and, with augment, the batch gather and random_affine. Both use the library's own
objects, so "grads_match" (the two models' weights after all the steps) must be True.

alternatives(x, y, rounds, models) times whole train_steps of each preset under each
fused.Kernels variant (what fused.KERNELS picks per platform comes from such runs).

    python -m bench.browser.profile_step [STEPS] [MODEL]   # CPython, one BLAS thread
(the browser benchmark runs it in the Pyodide worker with --profile STEPS)
"""
import dataclasses
import sys
import time

import numpy as np

import pycnn
from pycnn import fused
from pycnn.augment import random_affine
from pycnn.losses import softmax_cross_entropy

VARIANTS = {
    "cpython (matmul, np.maximum)": fused.CPYTHON_KERNELS,
    "pyodide (einsum, np.where, Winograd from 4 channels)": fused.PYODIDE_KERNELS,
    "pyodide without Winograd": dataclasses.replace(fused.PYODIDE_KERNELS, winograd_channels=None),
    "pyodide, Winograd from 1 channel": dataclasses.replace(fused.PYODIDE_KERNELS, winograd_channels=1),
}


def _timed_step(model, opt, xb, yb, totals):
    """model.train_step, a timer around each part: totals[name] += seconds."""
    def tick(name, start):
        now = time.perf_counter()
        totals[name] = totals.get(name, 0.0) + now - start
        return now

    t = time.perf_counter()
    h = xb
    for i, step in enumerate(model._plan):
        h = step.forward(h, training=True)
        t = tick(f"forward: {i} {type(step).__name__}", t)
    _, d = softmax_cross_entropy(h, yb)
    t = tick("loss: softmax cross-entropy", t)
    for i in range(len(model._plan) - 1, -1, -1):
        d = model._plan[i].backward(d, need_dx=i > 0)
        t = tick(f"backward: {i} {type(model._plan[i]).__name__}", t)
    opt.step(model.layers)
    tick("adam: step", t)


def profile(x, y, steps=100, augment=False, batch=32, seed=0, model="seed"):
    """-> {"ops": [{name, ms, share}] sorted, "train_step_ms", "replica_ms", "grads_match", ...}"""
    x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
    y = np.asarray(y).astype(np.intp)
    real, parts = pycnn.preset(model, seed=seed), pycnn.preset(model, seed=seed)
    opt_real, opt_parts = pycnn.Adam(1e-3), pycnn.Adam(1e-3)
    rng_real, rng_parts = np.random.default_rng(seed), np.random.default_rng(seed)
    order = np.random.default_rng(seed).permutation(len(x))
    totals, real_s, warm = {}, 0.0, 3
    for s in range(steps + warm):
        if s == warm:  # buffers allocated, caches warm: start counting
            totals, real_s = {}, 0.0
        idx = order[(s * batch) % (len(x) - batch):][:batch]
        t0 = time.perf_counter()  # train_step as the Trainer calls it (batch gather and augmentation included)
        xb = x[idx]
        if augment:
            xb = random_affine(xb, rng_real, out=xb)
        real.train_step(xb, y[idx], opt_real)
        real_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        xb = x[idx]
        totals["batch: x[idx] gather"] = totals.get("batch: x[idx] gather", 0.0) + time.perf_counter() - t0
        if augment:
            t0 = time.perf_counter()
            xb = random_affine(xb, rng_parts, out=xb)
            totals["augment: random_affine"] = totals.get("augment: random_affine", 0.0) + time.perf_counter() - t0
        _timed_step(parts, opt_parts, xb, y[idx], totals)
    parts_s = sum(totals.values())
    match = all(np.array_equal(a, b) for a, b in zip(real.get_weights(), parts.get_weights()))
    ops = sorted(({"name": k, "ms": v / steps * 1e3, "share": v / parts_s} for k, v in totals.items()),
                 key=lambda o: -o["ms"])
    groups = {}
    for o in ops:
        g = o["name"].split(":")[0]
        groups[g] = groups.get(g, 0.0) + o["ms"]
    return {"steps": steps, "augment": augment, "model": model, "platform": sys.platform, "numpy": np.__version__,
            "kernels": str(fused.KERNELS), "train_step_ms": real_s / steps * 1e3,
            "replica_ms": parts_s / steps * 1e3, "grads_match": bool(match), "groups_ms": groups, "ops": ops}


def alternatives(x, y, rounds=15, batch_ms=40.0, seed=0, models=("seed", "two-conv", "lenet")):
    """ms per train_step of each preset under each kernel variant: steps are timed in batches of
    at least batch_ms, the variants round-robin, median of the rounds. "same" says whether a
    variant's loss after the warm-up equals the first variant's (to float32 rounding)."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
    y = np.asarray(y).astype(np.intp)
    default = fused.KERNELS
    out = {}
    try:
        for name in models:
            runs, losses = {}, {}
            for label, kernels in VARIANTS.items():
                model, opt = pycnn.preset(name, seed=seed), pycnn.Adam(1e-3)
                for s in range(3):
                    losses[label] = model.train_step(x[s * 32:(s + 1) * 32], y[s * 32:(s + 1) * 32], opt)[0]
                runs[label] = (model, opt, kernels)
            times = {label: [] for label in VARIANTS}
            inner = {}
            for _ in range(rounds):
                for label, (model, opt, kernels) in runs.items():
                    fused.KERNELS = kernels
                    n, t0 = 0, time.perf_counter()
                    while n < inner.get(label, 10 ** 9) and (label in inner or time.perf_counter() - t0 < batch_ms / 1e3):
                        model.train_step(x[:32], y[:32], opt)
                        n += 1
                    inner.setdefault(label, n)
                    times[label].append((time.perf_counter() - t0) / n)
            first = next(iter(losses.values()))
            out[f"train_step {name}"] = [{"variant": label, "ms": sorted(t)[len(t) // 2] * 1e3,
                                          "same": bool(abs(losses[label] - first) < 1e-4 * max(1.0, abs(first)))}
                                         for label, t in times.items()]
    finally:
        fused.KERNELS = default
    return out


def main(argv):
    from pycnn import datasets
    steps = int(argv[1]) if len(argv) > 1 else 200
    model = argv[2] if len(argv) > 2 else "two-conv"
    x, y, split = datasets.load_subset()
    x_tr, y_tr, _, _ = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    for augment in (False, True):
        p = profile(x_tr, y_tr, steps, augment, model=model)
        print(f"\n{p['platform']} numpy {p['numpy']}, {model}, augment={augment}: train_step {p['train_step_ms']:.3f} "
              f"ms/step ({32 / p['train_step_ms'] * 1e3:,.0f} images/s), taken apart {p['replica_ms']:.3f} ms, "
              f"grads match: {p['grads_match']}")
        for o in p["ops"]:
            print(f"  {o['ms']:7.3f} ms {o['share']:6.1%}  {o['name']}")
    print("\nkernel variants (median ms per train_step, batch 32):")
    for op, variants in alternatives(x_tr, y_tr, rounds=5).items():
        print(f"  {op}")
        for v in variants:
            print(f"    {v['ms']:7.3f} ms  {v['variant']}{'' if v['same'] else '  (DIFFERENT RESULT)'}")


if __name__ == "__main__":
    main(sys.argv)
