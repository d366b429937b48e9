"""Where a pycnn training step spends its time, numpy op by numpy op (Pyodide or CPython).

profile(x, y, steps, augment) runs `steps` batches of the seed model twice, interleaved:
model.train_step itself (timed as a whole) and a replica of it with a timer around every
numpy operation of ConvPoolReLU.forward/backward, Flatten, Dense, the softmax
cross-entropy, Adam (one timer per parameter) and, with augment, the Trainer's batch gather
and random_affine. The replica copies the code of pycnn/fused.py, layers.py, losses.py,
training.py and augment.py as of this benchmark and uses fused.py's own helpers
(_conv_taps, _conv_taps_grad, _larger) so it takes the same NO_BLAS branches; "grads_match"
says whether the replica's weights still equal train_step's after all the steps (if the
library changes, the replica must follow).

    python bench/browser/profile_step.py [STEPS]       # CPython, one BLAS thread
(the browser benchmark runs it in the Pyodide worker with --profile STEPS)
"""
import os

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import pycnn  # noqa: E402
from pycnn import fused  # noqa: E402
from pycnn.augment import random_affine  # noqa: E402
from pycnn.losses import softmax_cross_entropy  # noqa: E402


class Clock:
    def __init__(self):
        self.totals = {}
        self.last = time.perf_counter()

    def start(self):
        self.last = time.perf_counter()

    def tick(self, name):
        now = time.perf_counter()
        self.totals[name] = self.totals.get(name, 0.0) + now - self.last
        self.last = time.perf_counter()


def _affine(x, rng, clock, max_shift=2.0, max_rotation=5.0, scale=(0.95, 1.05), out=None):
    """augment.random_affine with a timer per step."""
    tick = clock.tick
    n, c, h, w = x.shape
    f32 = np.float32
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n)).astype(f32)
    zoom = rng.uniform(scale[0], scale[1], n).astype(f32)
    shift = rng.uniform(-max_shift, max_shift, (2, n)).astype(f32)
    tick("augment: random draws")
    cos, sin = (np.cos(angle) / zoom)[:, None], (np.sin(angle) / zoom)[:, None]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.indices((h, w), dtype=f32)
    yy, xx = (yy - cy).reshape(1, -1), (xx - cx).reshape(1, -1)
    tick("augment: grid")
    src_y = cos * yy - sin * xx + (cy - shift[0])[:, None]
    src_x = sin * yy + cos * xx + (cx - shift[1])[:, None]
    tick("augment: source coordinates (N, 784) x2")
    y0, x0 = np.floor(src_y), np.floor(src_x)
    fy, fx = (src_y - y0).astype(x.dtype), (src_x - x0).astype(x.dtype)
    y0, x0 = y0.astype(np.intp), x0.astype(np.intp)
    tick("augment: floor, fractions, astype(intp)")
    inside = (y0 >= -1) & (y0 <= h - 1) & (x0 >= -1) & (x0 <= w - 1)
    tick("augment: inside mask")
    pw = w + 2
    plane = (h + 2) * pw
    padded = np.zeros((n, c, h + 2, pw), dtype=x.dtype)
    padded[:, :, 1:-1, 1:-1] = x
    flat = padded.reshape(-1)
    tick("augment: zero-padded copy")
    base = np.clip(y0 + 1, 0, h) * pw + np.clip(x0 + 1, 0, w)
    planes = (np.arange(n * c) * plane).reshape(n, c, 1)
    index = planes + base[:, None, :]
    fx, fy = fx[:, None, :], fy[:, None, :]
    tick("augment: clip + flat index")
    top_left, top_right = flat[index], flat[index + 1]
    bottom_left, bottom_right = flat[index + pw], flat[index + pw + 1]
    tick("augment: 4 gathers flat[index + k]")
    top = top_left + (top_right - top_left) * fx
    bottom = bottom_left + (bottom_right - bottom_left) * fx
    result = (top + (bottom - top) * fy) * inside[:, None, :]
    tick("augment: bilinear blend")
    out[...] = result.reshape(n, c, h, w)
    tick("augment: write out")
    return out


def _replica_step(model, opt, xb, yb, clock):
    """Sequential.train_step of the seed model through the fused block, one timer per op."""
    tick = clock.tick
    block, dense = model._plan[0], model.layers[4]
    conv = block.conv
    f = conv.filters
    # ---- ConvPoolReLU.forward(xb, training=True)
    n, c = xb.shape[:2]
    _, out_h, out_w = conv.output_shape(xb.shape[1:])
    ph, pw = out_h // 2, out_w // 2
    xp = fused.pad_input(xb, conv.pads(*xb.shape[2:]))
    hp, wp = xp.shape[2:]
    index = block._gather_index(c, hp, wp, ph, pw)
    x_t = block._buffer("trainx_t", (c * hp * wp, n), xb.dtype)
    tick("fwd: shapes, pad, buffers (python)")
    np.copyto(x_t, xp.reshape(n, -1).T)
    tick("fwd: copyto x_t = x.T (784 x N)")
    m = ph * pw * n
    cols = np.take(x_t, index, axis=0, out=block._buffer("traincols", (index.size, n), xb.dtype))
    cols = cols.reshape(4, -1, m)
    tick("fwd: np.take gather -> cols (4, 9, 169N)")
    z4 = fused._conv_taps(conv.params["W"].reshape(f, -1), cols, block._buffer("trainz4", (4, f, m), xb.dtype))
    tick("fwd: conv taps (einsum/matmul) -> z4 (4, 10, 169N)")
    right, lower_right = z4[1] > z4[0], z4[3] > z4[2]
    tick("fwd: pool compares z4[1]>z4[0], z4[3]>z4[2]")
    top, bottom = fused._larger(z4[0], z4[1], right), fused._larger(z4[2], z4[3], lower_right)
    tick("fwd: pool select x2 (np.where/maximum)")
    lower = bottom > top
    tick("fwd: pool compare bottom>top")
    z = fused._larger(top, bottom, lower)
    tick("fwd: pool select (np.where/maximum)")
    z += conv.params["b"][:, None]
    tick("fwd: bias add")
    positive = z > 0
    tick("fwd: relu mask z>0")
    np.maximum(z, 0, out=z)
    tick("fwd: relu np.maximum")
    a = z.reshape(f, ph, pw, n).transpose(3, 0, 1, 2)
    # ---- Flatten.forward + Dense.forward
    flat = a.reshape(a.shape[0], -1)
    tick("fwd: flatten (transpose copy N x 1690)")
    logits = flat @ dense.params["W"] + dense.params["b"]
    tick("fwd: dense x @ W + b (N x 1690 @ 1690 x 10)")
    # ---- loss
    loss, dlogits = softmax_cross_entropy(logits, yb)
    tick("loss: softmax cross-entropy + grad")
    correct = int(np.count_nonzero(logits.argmax(axis=1) == yb))
    tick("loss: argmax / correct count")
    # ---- Dense.backward(need_dx=True)
    dense.grads["W"] = flat.T @ dlogits
    tick("bwd: dense dW = x.T @ dout (1690 x N @ N x 10)")
    dense.grads["b"] = dlogits.sum(axis=0)
    tick("bwd: dense db")
    dflat = dlogits @ dense.params["W"].T
    tick("bwd: dense dx = dout @ W.T (N x 10 @ 10 x 1690)")
    dout = dflat.reshape(a.shape)
    # ---- ConvPoolReLU.backward(need_dx=False)
    dz = dout.reshape(n, f, -1).transpose(1, 2, 0).reshape(f, m)
    tick("bwd: dout transpose copy -> (10, 169N)")
    dz = dz * positive
    tick("bwd: dz * relu mask")
    dconv = block._buffer("dconv", (4, f, m), dz.dtype)
    d_bottom = dz * lower
    d_top = dz - d_bottom
    tick("bwd: route to top/bottom (mul, sub)")
    np.multiply(d_top, right, out=dconv[1])
    np.subtract(d_top, dconv[1], out=dconv[0])
    np.multiply(d_bottom, lower_right, out=dconv[3])
    np.subtract(d_bottom, dconv[3], out=dconv[2])
    tick("bwd: route to 4 offsets (2 mul, 2 sub)")
    conv.grads["W"] = fused._conv_taps_grad(dconv, cols).reshape(conv.params["W"].shape)
    tick("bwd: conv dW (einsum qfm,qkm->fk / matmul)")
    conv.grads["b"] = dz.sum(axis=1)
    tick("bwd: conv db")
    # ---- Adam
    opt.t += 1
    opt._step_size = opt.lr * math.sqrt(1 - opt.beta2 ** opt.t) / (1 - opt.beta1 ** opt.t)
    opt._eps_hat = opt.eps * math.sqrt(1 - opt.beta2 ** opt.t)
    for key, layer, name in pycnn.optimizers.trainable(model.layers):
        opt._update(key, layer.params[name], layer.grads[name])
        tick(f"adam: {type(layer).__name__}.{name} {layer.params[name].shape}")
    return loss, correct


def profile(x, y, steps=100, augment=False, batch=32, seed=0):
    """-> {"ops": [{name, ms, share}] sorted, "train_step_ms", "replica_ms", "grads_match", ...}"""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.intp)
    real, replica = pycnn.seed_model(seed=seed), pycnn.seed_model(seed=seed)
    opt_real, opt_replica = pycnn.Adam(1e-3), pycnn.Adam(1e-3)
    rng_real, rng_replica = np.random.default_rng(seed), np.random.default_rng(seed)
    order = np.random.default_rng(seed).permutation(len(x))
    clock = Clock()
    real_s = 0.0
    warm = 3
    for s in range(steps + warm):
        if s == warm:  # buffers allocated, caches warm: start counting
            clock.totals, real_s = {}, 0.0
        idx = order[(s * batch) % (len(x) - batch):][:batch]
        # train_step as the Trainer calls it (batch gather and augmentation included)
        t0 = time.perf_counter()
        xb = x[idx]
        if augment:
            xb = random_affine(xb, rng_real, out=xb)
        real.train_step(xb, y[idx], opt_real)
        real_s += time.perf_counter() - t0
        # the replica, op by op
        clock.start()
        xb = x[idx]
        yb = y[idx]
        clock.tick("batch: x[idx] gather")
        if augment:
            xb = _affine(xb, rng_replica, clock, out=xb)
        _replica_step(replica, opt_replica, xb, yb, clock)
    replica_s = sum(clock.totals.values())
    match = all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(real.get_weights(), replica.get_weights()))
    ops = sorted(({"name": k, "ms": v / steps * 1e3, "share": v / replica_s} for k, v in clock.totals.items()),
                 key=lambda o: -o["ms"])
    groups = {}
    for o in ops:
        g = o["name"].split(":")[0]
        groups[g] = groups.get(g, 0.0) + o["ms"]
    return {"steps": steps, "augment": augment, "platform": sys.platform, "numpy": np.__version__,
            "no_blas_branch": fused.NO_BLAS, "train_step_ms": real_s / steps * 1e3,
            "replica_ms": replica_s / steps * 1e3, "grads_match": bool(match), "groups_ms": groups, "ops": ops}


def _candidates(model, x, y, batch=32):
    """Alternative numpy formulations of the step's heaviest ops, on the arrays of a real
    step: {op: {variant: zero-argument function}}; each op's first variant is what pycnn does."""
    block, dense = model._plan[0], model.layers[4]
    xb, yb = x[:batch], y[:batch]
    logits = model.forward(xb, training=True)
    _, dlogits = softmax_cross_entropy(logits, yb)
    model.backward(dlogits)
    x_shape, xp_shape, cols, (right, lower_right, lower), positive = block._cache
    f = block.conv.filters
    m = cols.shape[2]
    w9 = block.conv.params["W"].reshape(f, -1)
    z4 = np.empty((4, f, m), np.float32)
    flat = np.ascontiguousarray(dense._cache)
    W = dense.params["W"]
    WT = np.ascontiguousarray(W.T)
    d = np.ascontiguousarray(dlogits)
    rng = np.random.default_rng(0)
    dz = rng.standard_normal((f, m)).astype(np.float32)
    dconv = rng.standard_normal((4, f, m)).astype(np.float32)
    positive_f = positive.astype(np.float32)
    out2 = np.empty((f, m), np.float32)

    def taps_loop_q():
        for q in range(4):
            np.einsum("fk,km->fm", w9, cols[q], out=z4[q])

    def taps_dot_rows():
        for q in range(4):
            for k in range(w9.shape[1]):
                if k == 0:
                    np.multiply(w9[:, :1], cols[q, 0], out=z4[q])
                else:
                    z4[q] += w9[:, k:k + 1] * cols[q, k]

    def dw_inner_per_q():
        g = np.inner(dconv[0], cols[0])
        for q in range(1, 4):
            g += np.inner(dconv[q], cols[q])
        return g

    return {
        "conv forward taps: (10, 9) x (4, 9, 5408)": {
            "einsum fk,km->fm per q (pycnn in Pyodide)": taps_loop_q,
            "einsum fk,qkm->qfm at once": lambda: np.einsum("fk,qkm->qfm", w9, cols, out=z4),
            "matmul w @ cols": lambda: np.matmul(w9, cols, out=z4),
            "9 broadcast multiply-adds per q": taps_dot_rows,
        },
        "conv dW: (4, 10, 5408) x (4, 9, 5408) -> (10, 9)": {
            "einsum qfm,qkm->fk (pycnn in Pyodide)": lambda: np.einsum("qfm,qkm->fk", dconv, cols),
            "np.inner per q, summed": dw_inner_per_q,
            "matmul with transpose, sum": lambda: np.matmul(dconv, cols.transpose(0, 2, 1)).sum(axis=0),
        },
        "dense forward: (32, 1690) @ (1690, 10)": {
            "x @ W (pycnn)": lambda: flat @ W,
            "einsum nk,kf->nf": lambda: np.einsum("nk,kf->nf", flat, W),
            "np.inner(x, W.T contiguous)": lambda: np.inner(flat, WT),
        },
        "dense dW: (1690, 32) @ (32, 10)": {
            "x.T @ dout (pycnn)": lambda: flat.T @ d,
            "einsum nk,nf->kf": lambda: np.einsum("nk,nf->kf", flat, d),
            "(dout.T @ x).T": lambda: (d.T @ flat).T,
            "np.inner(dout.T, x.T).T": lambda: np.inner(np.ascontiguousarray(d.T), np.ascontiguousarray(flat.T)).T,
        },
        "dense dx: (32, 10) @ (10, 1690)": {
            "dout @ W.T (pycnn)": lambda: d @ W.T,
            "dout @ W.T contiguous": lambda: d @ WT,
            "einsum nf,kf->nk": lambda: np.einsum("nf,kf->nk", d, W),
        },
        "mask: (10, 5408) float * bool": {
            "dz * bool mask (pycnn)": lambda: dz * positive,
            "np.where(mask, dz, 0)": lambda: np.where(positive, dz, np.float32(0)),
            "dz * float32 mask (precomputed)": lambda: dz * positive_f,
            "np.multiply(dz, mask, out=)": lambda: np.multiply(dz, positive, out=out2),
        },
    }


def alternatives(x, y, rounds=15, batch_ms=4.0, seed=0):
    """ms per call of each candidate: calls are timed in batches of at least batch_ms (browsers
    coarsen performance.now() to 0.1 ms), the variants of an op round-robin, median of the
    rounds. "same" says whether a variant's result equals the first variant's."""
    model = pycnn.seed_model(seed=seed)
    opt = pycnn.Adam(1e-3)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.intp)
    for s in range(5):
        model.train_step(x[s * 32:(s + 1) * 32], y[s * 32:(s + 1) * 32], opt)
    out = {}
    for op, variants in _candidates(model, x, y).items():
        results = {name: fn() for name, fn in variants.items()}
        ref = next(iter(results.values()))
        inner = {}
        for name, fn in variants.items():  # calibrate: calls per timed batch
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < batch_ms / 1e3:
                fn()
                n += 1
            inner[name] = max(1, n)
        times = {name: [] for name in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                for _ in range(inner[name]):
                    fn()
                times[name].append((time.perf_counter() - t0) / inner[name])
        out[op] = [{"variant": name, "ms": sorted(t)[len(t) // 2] * 1e3,
                    "same": bool(results[name] is None or ref is None
                                 or np.allclose(results[name], ref, rtol=1e-4, atol=1e-5))}
                   for name, t in times.items()]
    return out


def main(argv):
    from pycnn import datasets
    steps = int(argv[1]) if len(argv) > 1 else 200
    x, y, split = datasets.load_subset()
    x_tr, y_tr, _, _ = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    for augment in (False, True):
        p = profile(x_tr, y_tr, steps, augment)
        print(f"\n{p['platform']} numpy {p['numpy']}, augment={augment}: train_step {p['train_step_ms']:.3f} ms/step "
              f"({32 / p['train_step_ms'] * 1e3:,.0f} images/s), replica {p['replica_ms']:.3f} ms, "
              f"grads match: {p['grads_match']}")
        for g, ms in sorted(p["groups_ms"].items(), key=lambda kv: -kv[1]):
            print(f"  {g:<8} {ms:7.3f} ms")
        for o in p["ops"]:
            print(f"  {o['ms']:7.3f} ms {o['share']:6.1%}  {o['name']}")
    print("\nalternatives (median ms):")
    for op, variants in alternatives(x_tr, y_tr).items():
        print(f"  {op}")
        for v in variants:
            print(f"    {v['ms']:7.3f} ms  {v['variant']}{'' if v['same'] else '  (DIFFERENT RESULT)'}")


if __name__ == "__main__":
    main(sys.argv)
