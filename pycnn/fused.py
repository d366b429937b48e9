"""The fast common path: Conv2D(stride 1) + ReLU + MaxPool2D(2) computed as one block.

Sequential uses this block instead of the three layers whenever they appear in that
order (or with the pool before the ReLU). The result is the same; the work is less:
- max-pool and ReLU commute, so the ReLU sees 4x fewer elements;
- im2col is laid out by pool offset, (4, C*k*k, N*H'*W'), so the 2x2 pool is an
  elementwise max of four contiguous blocks of the conv output;
- the 1-4 MB temporaries are kept between steps (allocating them afresh cost 3.6x in
  page faults);
- no input gradient when the block is the first layer.
"""
import numpy as np

from .im2col import pad_input
from .layers import Conv2D, MaxPool2D, ReLU


def fusable(layers, i):
    """Number of layers (3) starting at i that form a fusable conv-pool block, else 0."""
    if i + 2 >= len(layers):
        return 0
    conv, a, b = layers[i:i + 3]
    if not (isinstance(conv, Conv2D) and conv.stride == 1):
        return 0
    kinds = {type(a), type(b)}
    pool = a if isinstance(a, MaxPool2D) else b
    if kinds == {ReLU, MaxPool2D} and pool.pool_size == 2 and pool.stride == 2:
        return 3
    return 0


class ConvPoolReLU:
    """Conv2D (stride 1) -> 2x2 max-pool -> ReLU. x: (N, C, H, W) -> (N, F, oh // 2, ow // 2)."""

    def __init__(self, conv):
        self.conv = conv
        self._buffers = {}
        self._cache = None

    def _buffer(self, name, shape, dtype):
        key = (name, shape, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 16:  # batch shapes change rarely; don't grow without bound
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(shape, dtype=dtype)
        return buf

    def _geometry(self, x_shape):
        n, c, h, w = x_shape
        _, out_h, out_w = self.conv.output_shape((c, h, w))
        return n, c, out_h // 2, out_w // 2

    def forward(self, x, training=True):
        conv = self.conv
        k, f = conv.kernel_size, conv.filters
        n, c, ph, pw = self._geometry(x.shape)
        xp = pad_input(x, conv.pads(*x.shape[2:]))
        m = n * ph * pw
        tag = "train" if training else "infer"
        cols = self._buffer(tag + "cols", (4, c, k, k, n, ph, pw), x.dtype)
        xt = xp.transpose(1, 0, 2, 3)  # (C, N, Hp, Wp) so one copy fills all channels
        for q, (di, dj) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            for ki in range(k):
                for kj in range(k):
                    a, b = di + ki, dj + kj
                    # conv output (2i + di, 2j + dj) reads input row 2i + di + ki, col 2j + dj + kj
                    cols[q, :, ki, kj] = xt[:, :, a:a + 2 * ph:2, b:b + 2 * pw:2]
        cols = cols.reshape(4, c * k * k, m)
        w_mat = conv.params["W"].reshape(f, -1)
        z4 = np.matmul(w_mat, cols, out=self._buffer(tag + "z4", (4, f, m), x.dtype))
        # the bias is the same for all four pool offsets, so it can be added after the max
        z = z4.max(axis=0)
        z += conv.params["b"][:, None]
        if training:
            argmax = z4.argmax(axis=0)  # ties go to the first offset, like MaxPool2D
            self._cache = (x.shape, xp.shape, cols, argmax, z > 0)
        else:
            self._cache = None
        np.maximum(z, 0, out=z)
        return z.reshape(f, n, ph, pw).transpose(1, 0, 2, 3)

    def backward(self, dout, need_dx=True):
        if self._cache is None:
            raise RuntimeError("ConvPoolReLU.backward called without forward(training=True)")
        x_shape, xp_shape, cols, argmax, positive = self._cache
        conv = self.conv
        f, k = conv.filters, conv.kernel_size
        m = cols.shape[2]
        dz = dout.transpose(1, 0, 2, 3).reshape(f, m) * positive
        dconv = self._buffer("dconv", (4, f, m), dz.dtype)
        for q in range(4):
            np.multiply(dz, argmax == q, out=dconv[q])
        conv.grads["W"] = np.matmul(dconv, cols.transpose(0, 2, 1)).sum(axis=0).reshape(conv.params["W"].shape)
        conv.grads["b"] = dz.sum(axis=1)
        if not need_dx:
            return None
        n, c, ph, pw = self._geometry(x_shape)
        dcols = np.matmul(conv.params["W"].reshape(f, -1).T, dconv).reshape(4, c, k, k, n, ph, pw)
        dxt = np.zeros((c, n) + xp_shape[2:], dtype=dz.dtype)
        for q, (di, dj) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            for ki in range(k):
                for kj in range(k):
                    a, b = di + ki, dj + kj
                    dxt[:, :, a:a + 2 * ph:2, b:b + 2 * pw:2] += dcols[q, :, ki, kj]
        (top, _), (left, _) = conv.pads(*x_shape[2:])
        return dxt.transpose(1, 0, 2, 3)[:, :, top:top + x_shape[2], left:left + x_shape[3]]
