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
import dataclasses
import sys

import numpy as np

from .layers import Conv2D, Layer, MaxPool2D, ReLU


@dataclasses.dataclass(frozen=True)
class Kernels:
    """Which numpy ops the block uses; what is fast differs between CPython and Pyodide.

    Measured per op on this block's arrays (bench/): Pyodide's numpy has no BLAS and no
    SIMD, and there np.matmul with an inner size of 9 runs at half einsum's speed and
    np.maximum at a fifth of np.where's; natively it is the other way round.
    """
    einsum_products: bool  # np.einsum, not np.matmul, for the conv's products
    where_max: bool        # np.where on a known comparison, not np.maximum, for the pool's max


CPYTHON_KERNELS = Kernels(einsum_products=False, where_max=False)
PYODIDE_KERNELS = Kernels(einsum_products=True, where_max=True)
# the variant a block uses when it is given none (read at each call, so tests can switch it)
KERNELS = PYODIDE_KERNELS if sys.platform == "emscripten" else CPYTHON_KERNELS


def _products(kernels, w, cols, out):
    """w: (F, K), cols: (4, K, M) -> out (4, F, M): the conv at the four pool offsets."""
    if not kernels.einsum_products:
        return np.matmul(w, cols, out=out)
    for q in range(len(cols)):
        np.einsum("fk,km->fm", w, cols[q], out=out[q])
    return out


def _products_grad(kernels, dconv, cols):
    """dconv: (4, F, M), cols: (4, K, M) -> (F, K), summed over the four blocks: dW."""
    if kernels.einsum_products:
        return np.einsum("qfm,qkm->fk", dconv, cols)
    return np.matmul(dconv, cols.transpose(0, 2, 1)).sum(axis=0)


def _products_input_grad(kernels, w, d, out):
    """w: (F, K), d: (F, L) -> out (K, L) = w.T @ d: the column gradients."""
    if kernels.einsum_products:
        return np.einsum("fk,fl->kl", w, d, out=out)
    return np.matmul(w.T, d, out=out)


def _larger(kernels, a, b, b_wins):
    """Elementwise max of a and b, where b_wins = b > a is already known."""
    return np.where(b_wins, b, a) if kernels.where_max else np.maximum(a, b)


def fusable(layers, i):
    """True when layers[i:i + 3] are Conv2D (stride 1), ReLU and a 2x2 MaxPool2D, in either order."""
    if i + 2 >= len(layers):
        return False
    conv, a, b = layers[i:i + 3]
    if not (isinstance(conv, Conv2D) and conv.stride == 1 and {type(a), type(b)} == {ReLU, MaxPool2D}):
        return False
    pool = a if isinstance(a, MaxPool2D) else b
    return pool.pool_size == 2 and pool.stride == 2


class ConvPoolReLU(Layer):
    """Conv2D (stride 1) -> 2x2 max-pool -> ReLU. x: (N, C, H, W) -> (N, F, oh // 2, ow // 2).

    The block owns its conv: its params and grads ARE the conv's dicts, so optimisers and
    model files, which walk the model's layers, see the same arrays. kernels picks the
    numpy ops (CPYTHON_KERNELS or PYODIDE_KERNELS; None: the module's KERNELS).

    Columns are (4, C*k*k, P*N): pool offset, kernel tap, then output position p = (i, j)
    and sample n with the sample fastest, so one gather builds them and each of the four
    (F, P*N) blocks of the conv output is contiguous.
    """

    summary_name = "conv_pool_re_lu"

    def __init__(self, conv, kernels=None):
        if not isinstance(conv, Conv2D) or conv.stride != 1:
            raise ValueError(f"ConvPoolReLU needs a Conv2D with stride 1, got {conv!r}")
        super().__init__()
        self.conv = conv
        self.params = conv.params
        self.grads = conv.grads
        self.kernels = kernels
        self._buffers = {}

    def get_config(self):
        return {"conv": self.conv.get_config()}

    def output_shape(self, input_shape):
        f, out_h, out_w = self.conv.output_shape(input_shape)
        return f, out_h // 2, out_w // 2

    def _kernels(self):
        return self.kernels if self.kernels is not None else KERNELS

    def _buffer(self, name, shape, dtype, keep=True, zero=False):
        """A scratch array, kept for the next step when keep (training), fresh otherwise.

        zero: all zeros when first made (a kept buffer whose borders are never written stays so).
        """
        make = np.zeros if zero else np.empty
        if not keep:  # inference: big chunks, once in a while; don't hold their memory
            return make(shape, dtype=dtype)
        key = (name, shape, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 32:  # batch shapes change rarely; don't grow without bound
                self._buffers.clear()
            buf = self._buffers[key] = make(shape, dtype=dtype)
        return buf

    def _gather_index(self, c, hp, wp, ph, pw):
        """Flat input index of every (pool offset, channel, tap, output position): (4*C*k*k*P,)."""
        key = ("index", c, hp, wp, ph, pw)
        index = self._buffers.get(key)
        if index is None:
            k = self.conv.kernel_size
            ch, di, dj, ki, kj, i, j = np.ogrid[0:c, 0:2, 0:2, 0:k, 0:k, 0:ph, 0:pw]
            # conv output (2i + di, 2j + dj) reads input row 2i + di + ki, column 2j + dj + kj
            index = ch * (hp * wp) + (2 * i + di + ki) * wp + (2 * j + dj + kj)
            index = self._buffers[key] = index.transpose(1, 2, 0, 3, 4, 5, 6).reshape(-1)
        return index

    def forward(self, x, training=True):
        conv = self.conv
        f = conv.filters
        n, c, h, w = x.shape
        _, out_h, out_w = conv.output_shape(x.shape[1:])
        ph, pw = out_h // 2, out_w // 2  # the pool floors: an odd last row or column is dropped
        (top, bottom), (left, right) = conv.pads(h, w)
        hp, wp = h + top + bottom, w + left + right
        # (channel, row, column, sample): a previous block's output is already laid out so
        x_t = x.transpose(1, 2, 3, 0)
        if top or bottom or left or right or not x_t.flags.c_contiguous:
            padded = self._buffer("x_t", (c, hp, wp, n), x.dtype, keep=training, zero=True)
            padded[:, top:top + h, left:left + w] = x_t  # the zero border is never written
            x_t = padded
        index = self._gather_index(c, hp, wp, ph, pw)
        m = ph * pw * n
        cols = np.take(x_t.reshape(-1, n), index, axis=0,
                       out=self._buffer("cols", (index.size, n), x.dtype, keep=training))
        cols = cols.reshape(4, -1, m)
        kernels = self._kernels()
        z4 = _products(kernels, conv.params["W"].reshape(f, -1), cols,
                       self._buffer("z4", (4, f, m), x.dtype, keep=training))
        # which offset wins each 2x2 max; ties go to the first, as in MaxPool2D's argmax
        right, lower_right = z4[1] > z4[0], z4[3] > z4[2]
        top_max, bottom_max = _larger(kernels, z4[0], z4[1], right), _larger(kernels, z4[2], z4[3], lower_right)
        lower = bottom_max > top_max
        z = _larger(kernels, top_max, bottom_max, lower)
        # the bias is the same for all four pool offsets, so it can be added after the max
        z += conv.params["b"][:, None]
        if training:
            self._cache = (x.shape, (ph, pw), cols, (right, lower_right, lower), z > 0)
        else:
            self._cache = None
        np.maximum(z, 0, out=z)
        return z.reshape(f, ph, pw, n).transpose(3, 0, 1, 2)

    def backward(self, dout, need_dx=True):
        x_shape, (ph, pw), cols, (right, lower_right, lower), positive = self._cached()
        kernels = self._kernels()
        conv = self.conv
        f, k = conv.filters, conv.kernel_size
        n = dout.shape[0]
        m = cols.shape[2]
        dz = dout.transpose(1, 2, 3, 0).reshape(f, m) * positive
        # route each pooled gradient to the offset that won its max
        dconv = self._buffer("dconv", (4, f, m), dz.dtype)
        d_bottom = dz * lower
        d_top = dz - d_bottom
        np.multiply(d_top, right, out=dconv[1])
        np.subtract(d_top, dconv[1], out=dconv[0])
        np.multiply(d_bottom, lower_right, out=dconv[3])
        np.subtract(d_bottom, dconv[3], out=dconv[2])
        self.grads["W"] = _products_grad(kernels, dconv, cols).reshape(conv.params["W"].shape)
        self.grads["b"] = dz.sum(axis=1)
        if not need_dx:
            return None
        # the input gradient without a scatter: first the conv output's gradient on the full
        # (2*ph, 2*pw) grid (four strided copies), then one product gives every tap's column
        # gradient, and each of the k*k taps adds a shifted block; the last axis (samples)
        # is contiguous, so are whole rows of the adds
        c, h, w = x_shape[1:]
        (top, bottom), (left, right_pad) = conv.pads(h, w)
        hp, wp = h + top + bottom, w + left + right_pad
        oh, ow = 2 * ph, 2 * pw
        dfull = self._buffer("dfull", (f, oh, ow, n), dz.dtype)
        blocks = dconv.reshape(2, 2, f, ph, pw, n)
        for di in range(2):
            for dj in range(2):
                dfull[:, di::2, dj::2] = blocks[di, dj]
        dcols = _products_input_grad(kernels, conv.params["W"].reshape(f, -1), dfull.reshape(f, -1),
                                     self._buffer("dcols", (c * k * k, oh * ow * n), dz.dtype))
        dcols = dcols.reshape(c, k, k, oh, ow, n)
        dx_t = np.zeros((c, hp, wp, n), dtype=dz.dtype)
        for ki in range(k):
            for kj in range(k):
                dx_t[:, ki:ki + oh, kj:kj + ow] += dcols[:, ki, kj]
        return dx_t[:, top:top + h, left:left + w].transpose(3, 0, 1, 2)
