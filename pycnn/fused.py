"""The fast common path: Conv2D(stride 1) [+ BatchNorm] + ReLU + MaxPool2D(2) computed as one block.

Sequential uses this block instead of the three (or four) layers whenever they appear in that
order (or with the pool before the ReLU), anywhere in the network, and with LeakyReLU, Tanh or
Sigmoid in place of the ReLU. The result is the same; the work is less:
- max-pool and a non-decreasing activation commute, so the activation sees 4x fewer elements;
- im2col is laid out by pool offset, (4, C*k*k, N*H'*W'), so the 2x2 pool is an
  elementwise max of four contiguous blocks of the conv output;
- activations are (channel, row, column, sample) inside the block, and a block hands the
  next one its output in that order, so neither copies it;
- the input gradient needs no scatter (np.add.at): k*k shifted adds of contiguous rows;
- in Pyodide, 3x3 kernels on 4+ channels go through Winograd's F(2x2, 3x3);
- the 1-4 MB temporaries are kept between steps (allocating them afresh cost 3.6x in
  page faults);
- no input gradient when the block is the first layer;
- a BatchNorm is folded into the conv's weights and bias at inference (a fixed per-channel
  scale and shift), so the block costs what it costs without one; in training it normalises
  the conv output in the block's own layout, with the batch's statistics over every conv output
  cell: a last odd row or column, which the pool drops, is computed apart (a small im2col) for
  them, and gets their gradient. In Sequential.frozen() the block runs its plain layers.
"""
import dataclasses
import sys

import numpy as np

from .layers import ACTIVATIONS, BatchNorm, Conv2D, Layer, MaxPool2D, ReLU, conv_block


@dataclasses.dataclass(frozen=True)
class Kernels:
    """Which numpy ops the block uses; what is fast differs between CPython and Pyodide.

    Measured per op on this block's arrays (bench/): Pyodide's numpy has no BLAS and no
    SIMD, and there np.matmul with an inner size of 9 runs at half einsum's speed and
    np.maximum at a fifth of np.where's; natively it is the other way round.
    """
    einsum_products: bool  # np.einsum, not np.matmul, for the conv's products
    where_max: bool        # np.where on a known comparison, not np.maximum, for the pool's max
    # 3x3 kernels with at least this many input channels by Winograd's F(2x2, 3x3), 2.25x
    # fewer multiply-adds for more elementwise work; None: never. In Pyodide a block of 16
    # filters took 7.1 instead of 9.5 ms at 16 channels, 2.7 vs 2.8 at 4, 2.0 vs 1.9 at 2
    # (the first layer of the seed network, 1 channel, went 4.6 -> 5.5 ms a step); in
    # CPython, where BLAS does the products, it was 2x slower throughout.
    winograd_channels: int | None


CPYTHON_KERNELS = Kernels(einsum_products=False, where_max=False, winograd_channels=None)
PYODIDE_KERNELS = Kernels(einsum_products=True, where_max=True, winograd_channels=4)
# the variant a block uses when it is given none (read at each call, so tests can switch it)
KERNELS = PYODIDE_KERNELS if sys.platform == "emscripten" else CPYTHON_KERNELS


def _product(kernels, a, b, out):
    """a: (F, K) or (Q, F, K), b: (Q, K, M) -> out (Q, F, M) = a @ b per block q."""
    if not kernels.einsum_products:
        return np.matmul(a, b, out=out)
    for q in range(len(b)):
        np.einsum("fk,km->fm", a if a.ndim == 2 else a[q], b[q], out=out[q])
    return out


def _product_bt(kernels, a, b):
    """a: (Q, F, M), b: (Q, K, M) -> (Q, F, K) = a @ b^T per block: weight gradients."""
    if kernels.einsum_products:
        return np.einsum("qfm,qkm->qfk", a, b)
    return np.matmul(a, b.transpose(0, 2, 1))


def _product_at(kernels, a, b, out):
    """a: (F, K) or (Q, F, K), b: (Q, F, M) -> out (Q, K, M) = a^T @ b per block: input gradients."""
    if not kernels.einsum_products:
        return np.matmul(a.swapaxes(-1, -2), b, out=out)
    for q in range(len(b)):
        np.einsum("fk,fm->km", a if a.ndim == 2 else a[q], b[q], out=out[q])
    return out


def _larger(kernels, a, b, b_wins):
    """Elementwise max of a and b, where b_wins = b > a is already known."""
    return np.where(b_wins, b, a) if kernels.where_max else np.maximum(a, b)


# Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2015): a 2x2 output tile of a 3x3
# correlation is A^T [(G g G^T) * (B^T d B)] A from its 4x4 input tile d: 16 multiplies
# instead of 36. The 2x2 output tiles are the 2x2 pool windows, so a tile's four outputs are
# the block's four pool offsets. The adjoints give dW and dx the same way.
WINO_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def _wino_input(x_t, ph, pw, out):
    """x_t: (C, Hp, Wp, N) -> out (4, 4, C, ph, pw, N): B^T d B of every 4x4 input tile (stride 2)."""
    d = [x_t[:, r:r + 2 * ph:2] for r in range(4)]  # row r of every tile: (C, ph, Wp, N)
    t = np.empty((4, *d[0].shape), dtype=x_t.dtype)
    np.subtract(d[0], d[2], out=t[0])
    np.add(d[1], d[2], out=t[1])
    np.subtract(d[2], d[1], out=t[2])
    np.subtract(d[1], d[3], out=t[3])
    e = [t[..., s:s + 2 * pw:2, :] for s in range(4)]  # column s of every tile: (4, C, ph, pw, N)
    np.subtract(e[0], e[2], out=out[:, 0])
    np.add(e[1], e[2], out=out[:, 1])
    np.subtract(e[2], e[1], out=out[:, 2])
    np.subtract(e[1], e[3], out=out[:, 3])
    return out


def _wino_input_grad(dv, shape):
    """Adjoint of _wino_input: dv (4, 4, C, ph, pw, N) -> dx_t of shape (C, Hp, Wp, N)."""
    _, _, c, ph, pw, n = dv.shape
    dt = np.zeros((4, c, ph, shape[2], n), dtype=dv.dtype)
    dt[..., 0:2 * pw:2, :] += dv[:, 0]
    dt[..., 1:1 + 2 * pw:2, :] += dv[:, 1] - dv[:, 2] + dv[:, 3]
    dt[..., 2:2 + 2 * pw:2, :] += dv[:, 1] + dv[:, 2] - dv[:, 0]
    dt[..., 3:3 + 2 * pw:2, :] -= dv[:, 3]
    dx_t = np.zeros(shape, dtype=dv.dtype)
    dx_t[:, 0:2 * ph:2] += dt[0]
    dx_t[:, 1:1 + 2 * ph:2] += dt[1] - dt[2] + dt[3]
    dx_t[:, 2:2 + 2 * ph:2] += dt[1] + dt[2] - dt[0]
    dx_t[:, 3:3 + 2 * ph:2] -= dt[3]
    return dx_t


def _wino_filter(w):
    """w: (F, C, 3, 3) -> (16, F, C): G g G^T of every (filter, channel) kernel."""
    g = WINO_G.astype(w.dtype)
    return np.einsum("ai,fcij,bj->abfc", g, w, g).reshape(16, *w.shape[:2])


def _wino_output(m, out):
    """m: (4, 4, F, M) -> out (4, F, M) = A^T m A: each tile's outputs, offset (di, dj) at 2*di + dj."""
    rows = (m[0] + m[1] + m[2], m[1] - m[2] - m[3])  # (4, F, M) each
    for di, r in enumerate(rows):
        np.add(r[0] + r[1], r[2], out=out[2 * di])
        np.subtract(r[1] - r[2], r[3], out=out[2 * di + 1])
    return out


def _wino_output_grad(dy, out):
    """Adjoint of _wino_output: dy (4, F, M) -> out (4, 4, F, M)."""
    dr = np.empty((2, 4, *dy.shape[1:]), dtype=dy.dtype)
    for di in range(2):
        y0, y1 = dy[2 * di], dy[2 * di + 1]
        dr[di, 0] = y0
        np.add(y0, y1, out=dr[di, 1])
        np.subtract(y0, y1, out=dr[di, 2])
        np.negative(y1, out=dr[di, 3])
    out[0] = dr[0]
    np.add(dr[0], dr[1], out=out[1])
    np.subtract(dr[0], dr[1], out=out[2])
    np.negative(dr[1], out=out[3])
    return out


def fusable(layers, i):
    """How many layers from layers[i] run as one fused block: 3 for a Conv2D (stride 1), an activation (ReLU,
    LeakyReLU, Tanh, Sigmoid) and a 2x2 MaxPool2D in either order, 4 with a BatchNorm between the conv and
    them; 0 when they do not."""
    if not (isinstance(layers[i], Conv2D) and layers[i].stride == 1):
        return 0
    block = conv_block(layers, i)
    start = i + 1 if block.norm is None else i + 2
    pools = [layers[j] for j in block.pools]
    fits = (block.end == start + 2 and block.activation is not None and type(layers[block.activation]) in ACTIVATIONS
            and len(pools) == 1 and type(pools[0]) is MaxPool2D and (pools[0].pool_size, pools[0].stride) == (2, 2))
    return block.end - i if fits else 0


def fuse(layers, i):
    """(the fused block of the layers from layers[i], how many layers it runs), or (None, 0) (see fusable)."""
    size = fusable(layers, i)
    if not size:
        return None, 0
    block = conv_block(layers, i)
    activation = layers[block.activation]
    return ConvPoolReLU(layers[i], norm=None if block.norm is None else layers[block.norm],
                        activation=None if type(activation) is ReLU else activation), size


class ConvPoolReLU(Layer):
    """Conv2D (stride 1) [-> BatchNorm] -> 2x2 max-pool -> ReLU. x: (N, C, H, W) -> (N, F, oh // 2, ow // 2).

    The block owns its conv: its params and grads ARE the conv's dicts, so optimisers and
    model files, which walk the model's layers, see the same arrays; norm (a BatchNorm, or
    None) keeps its own weights, grads and state, which the block reads and writes. activation:
    a LeakyReLU, Tanh or Sigmoid layer applied (forward and backward) to the pooled map instead
    of the ReLU; None: the ReLU. kernels picks the numpy ops (CPYTHON_KERNELS or PYODIDE_KERNELS;
    None: the module's KERNELS).

    Columns are (4, C*k*k, P*N): pool offset, kernel tap, then output position p = (i, j)
    and sample n with the sample fastest, so one gather builds them and each of the four
    (F, P*N) blocks of the conv output is contiguous.
    """

    summary_name = "conv_pool_re_lu"

    def __init__(self, conv, kernels=None, norm=None, activation=None):
        if not isinstance(conv, Conv2D) or conv.stride != 1:
            raise ValueError(f"ConvPoolReLU needs a Conv2D with stride 1, got {conv!r}")
        if norm is not None and not (isinstance(norm, BatchNorm) and norm.features == conv.filters):
            raise ValueError(f"ConvPoolReLU's norm must be a BatchNorm of the conv's {conv.filters} channels, "
                             f"got {norm!r}")
        if activation is not None and type(activation) not in ACTIVATIONS:
            raise ValueError(f"ConvPoolReLU's activation must be one of "
                             f"{', '.join(cls.__name__ for cls in ACTIVATIONS)}, got {activation!r}")
        super().__init__()
        self.conv = conv
        self.norm = norm
        self.activation = activation
        self.params = conv.params
        self.grads = conv.grads
        self.kernels = kernels
        self._buffers = {}
        # what the block computes, as plain layers (training with a BatchNorm it cannot normalise fused)
        self._plain = [conv, *([norm] if norm is not None else []), activation or ReLU(), MaxPool2D(2)]

    def get_config(self):
        config = {"conv": self.conv.get_config()}
        if self.norm is not None:
            config["norm"] = self.norm.get_config()
        if self.activation is not None:
            config["activation"] = {"class": type(self.activation).__name__, "config": self.activation.get_config()}
        return config

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
        conv, norm = self.conv, self.norm
        f = conv.filters
        n, c, h, w = x.shape
        _, out_h, out_w = conv.output_shape(x.shape[1:])
        batch_norm = norm is not None and training
        if batch_norm and norm.frozen:
            for layer in self._plain:
                x = layer.forward(x, training=True)
            self._cache = ("plain",)
            return x
        ph, pw = out_h // 2, out_w // 2  # the pool floors: an odd last row or column is dropped
        (top, bottom), (left, right) = conv.pads(h, w)
        hp, wp = h + top + bottom, w + left + right
        # (channel, row, column, sample): a previous block's output is already laid out so
        x_t = x.transpose(1, 2, 3, 0)
        if top or bottom or left or right or not x_t.flags.c_contiguous:
            padded = self._buffer("x_t", (c, hp, wp, n), x.dtype, keep=training, zero=True)
            padded[:, top:top + h, left:left + w] = x_t  # the zero border is never written
            x_t = padded
        m = ph * pw * n
        kernels = self._kernels()
        w, b = conv.params["W"], conv.params["b"]
        if norm is not None and not training:  # inference: y = conv(x) * scale + shift is a conv
            scale, shift = norm.scale_shift()
            w, b = w * scale[:, None, None, None], b * scale + shift
        winograd = (conv.kernel_size == 3 and kernels.winograd_channels is not None
                    and c >= kernels.winograd_channels)
        if winograd:  # cols: the transformed tiles (16, C, M)
            cols = _wino_input(x_t, ph, pw, self._buffer("tiles", (4, 4, c, ph, pw, n), x.dtype, keep=training))
            cols = cols.reshape(16, c, m)
            prod = _product(kernels, _wino_filter(w), cols, self._buffer("prod", (16, f, m), x.dtype, keep=training))
            z4 = _wino_output(prod.reshape(4, 4, f, m), self._buffer("z4", (4, f, m), x.dtype, keep=training))
        else:  # cols: im2col by pool offset (4, C*k*k, M)
            index = self._gather_index(c, hp, wp, ph, pw)
            cols = np.take(x_t.reshape(-1, n), index, axis=0,
                           out=self._buffer("cols", (index.size, n), x.dtype, keep=training))
            cols = cols.reshape(4, -1, m)
            z4 = _product(kernels, w.reshape(f, -1), cols, self._buffer("z4", (4, f, m), x.dtype, keep=training))
        normalised = None
        if batch_norm:  # the batch's statistics of the conv output, every cell (the four offsets) counted
            edges = None
            if out_h % 2 or out_w % 2:  # cells the pool drops count in the statistics too
                index = self._edge_index(c, hp, wp, out_h, out_w)
                edge_cols = x_t.reshape(-1, n)[index].reshape(c * conv.kernel_size ** 2, -1)  # (C*k*k, E*N)
                edges = (index, edge_cols, w.reshape(f, -1) @ edge_cols)
            z4, normalised = self._normalise(z4, b, edges)
        # which offset wins each 2x2 max; ties go to the first, as in MaxPool2D's argmax
        right, lower_right = z4[1] > z4[0], z4[3] > z4[2]
        top_max, bottom_max = _larger(kernels, z4[0], z4[1], right), _larger(kernels, z4[2], z4[3], lower_right)
        lower = bottom_max > top_max
        z = _larger(kernels, top_max, bottom_max, lower)
        if not batch_norm:
            # the bias is the same for all four pool offsets, so it can be added after the max
            z += b[:, None]
        positive = None
        if self.activation is not None:  # it keeps what its backward needs itself
            z = self.activation.forward(z, training)
        else:
            positive = z > 0 if training else None
            np.maximum(z, 0, out=z)
        self._cache = (x.shape, (ph, pw), winograd, cols, (right, lower_right, lower), positive, normalised) \
            if training else None
        return z.reshape(f, ph, pw, n).transpose(3, 0, 1, 2)

    def _edge_index(self, c, hp, wp, out_h, out_w):
        """Flat input index (C*k*k*E,) of every (channel, tap, edge cell): the conv output cells outside the
        pool's 2x2 windows, a last odd row (every column) and a last odd column (the rows above it)."""
        key = ("edges", c, hp, wp, out_h, out_w)
        index = self._buffers.get(key)
        if index is None:
            k = self.conv.kernel_size
            last_row, last_col = 2 * (out_h // 2), 2 * (out_w // 2)
            cells = ([(last_row, j) for j in range(out_w)] if out_h % 2 else []) + \
                    ([(i, last_col) for i in range(last_row)] if out_w % 2 else [])
            i, j = np.array(cells).T
            ch, ki, kj = (a[..., None] for a in np.ogrid[0:c, 0:k, 0:k])
            index = self._buffers[key] = (ch * (hp * wp) + (ki + i) * wp + (kj + j)).reshape(-1)
        return index

    def _normalise(self, z4, b, edges=None):
        """The conv output z4 (4, F, M) without its bias, and edges (index, columns, conv output (F, E*N)) of
        the cells the pool drops or None -> (the BatchNorm's output (4, F, M), (xhat, 1 / std, edges, their
        xhat)) with the batch's statistics over all of them; the norm's state moves toward them."""
        norm = self.norm
        count = z4.shape[0] * z4.shape[2]
        total = z4.sum(axis=(0, 2))  # the bias shifts the mean only, and the normalisation takes it away
        if edges is not None:
            count += edges[2].shape[1]
            total += edges[2].sum(axis=1)
        mean = total / count
        xhat = np.subtract(z4, mean[:, None], out=self._buffer("xhat", z4.shape, z4.dtype))
        squares = np.einsum("qfm,qfm->f", xhat, xhat)
        edge_xhat = None
        if edges is not None:
            edge_xhat = edges[2] - mean[:, None]
            squares += np.einsum("fe,fe->f", edge_xhat, edge_xhat)
        var = squares / count
        inv_std = 1 / np.sqrt(var + z4.dtype.type(norm.eps))
        xhat *= inv_std[:, None]
        if edges is not None:
            edge_xhat *= inv_std[:, None]
        y4 = np.multiply(xhat, norm.params["gamma"][:, None], out=self._buffer("y4", z4.shape, z4.dtype))
        y4 += norm.params["beta"][:, None]
        norm.measured({"mean": mean + b, "var": var * (count / (count - 1))})
        return y4, (xhat, inv_std, edges, edge_xhat)

    def backward(self, dout, need_dx=True):
        cache = self._cached()
        if cache[0] == "plain":
            for i in range(len(self._plain) - 1, -1, -1):
                dout = self._plain[i].backward(dout, need_dx=i > 0 or need_dx)
            return dout
        x_shape, (ph, pw), winograd, cols, (right, lower_right, lower), positive, normalised = cache
        kernels = self._kernels()
        conv = self.conv
        f, k = conv.filters, conv.kernel_size
        n = dout.shape[0]
        m = cols.shape[2]
        dz = dout.transpose(1, 2, 3, 0).reshape(f, m)
        dz = dz * positive if self.activation is None else self.activation.backward(dz)
        # route each pooled gradient to the offset that won its max
        dconv = self._buffer("dconv", (4, f, m), dz.dtype)
        d_bottom = dz * lower
        d_top = dz - d_bottom
        np.multiply(d_top, right, out=dconv[1])
        np.subtract(d_top, dconv[1], out=dconv[0])
        np.multiply(d_bottom, lower_right, out=dconv[3])
        np.subtract(d_bottom, dconv[3], out=dconv[2])
        if normalised is None:
            self.grads["b"] = dz.sum(axis=1)
        else:  # through the BatchNorm: its weights' gradients, then the conv output's
            xhat, inv_std, edges, edge_xhat = normalised
            norm = self.norm
            count = 4 * m + (0 if edges is None else edges[2].shape[1])
            dbeta = dconv.sum(axis=(0, 2))  # the cells the pool drops have no gradient of their own
            dgamma = np.einsum("qfm,qfm->f", dconv, xhat)
            norm.grads["gamma"], norm.grads["beta"] = dgamma, dbeta
            scale = (norm.params["gamma"] * inv_std)[:, None]
            dconv -= (dbeta / count)[:, None]
            dconv -= xhat * (dgamma / count)[:, None]
            dconv *= scale
            self.grads["b"] = dconv.sum(axis=(0, 2))
            if edges is not None:  # but the statistics depend on them: their share of dW, db and dx
                d_edges = -(edge_xhat * (dgamma / count)[:, None] + (dbeta / count)[:, None]) * scale
                self.grads["b"] += d_edges.sum(axis=1)
        w = conv.params["W"]
        c, h, w_in = x_shape[1:]
        (top, bottom), (left, right_pad) = conv.pads(h, w_in)
        hp, wp = h + top + bottom, w_in + left + right_pad
        edges = None if normalised is None else normalised[2]
        if winograd:
            dprod = _wino_output_grad(dconv, self._buffer("dprod", (4, 4, f, m), dz.dtype)).reshape(16, f, m)
            g = WINO_G.astype(w.dtype)
            du = _product_bt(kernels, dprod, cols).reshape(4, 4, f, c)
            self.grads["W"] = np.einsum("ai,abfc,bj->fcij", g, du, g)
            if edges is not None:
                self.grads["W"] += (d_edges @ edges[1].T).reshape(w.shape)
            if not need_dx:
                return None
            dtiles = _product_at(kernels, _wino_filter(w), dprod, self._buffer("dtiles", (16, c, m), dz.dtype))
            dx_t = _wino_input_grad(dtiles.reshape(4, 4, c, ph, pw, n), (c, hp, wp, n))
        else:
            self.grads["W"] = _product_bt(kernels, dconv, cols).sum(axis=0).reshape(w.shape)
            if edges is not None:
                self.grads["W"] += (d_edges @ edges[1].T).reshape(w.shape)
            if not need_dx:
                return None
            # the input gradient without a scatter: first the conv output's gradient on the
            # full (2*ph, 2*pw) grid (four strided copies), then one product gives every tap's
            # column gradient, and each of the k*k taps adds a shifted block; the samples axis
            # is the last, so whole rows of the adds are contiguous
            oh, ow = 2 * ph, 2 * pw
            dfull = self._buffer("dfull", (f, oh, ow, n), dz.dtype)
            blocks = dconv.reshape(2, 2, f, ph, pw, n)
            for di in range(2):
                for dj in range(2):
                    dfull[:, di::2, dj::2] = blocks[di, dj]
            dcols = _product_at(kernels, w.reshape(f, -1), dfull.reshape(1, f, -1),
                                self._buffer("dcols", (1, c * k * k, oh * ow * n), dz.dtype))
            dcols = dcols.reshape(c, k, k, oh, ow, n)
            dx_t = np.zeros((c, hp, wp, n), dtype=dz.dtype)
            for ki in range(k):
                for kj in range(k):
                    dx_t[:, ki:ki + oh, kj:kj + ow] += dcols[:, ki, kj]
        if edges is not None:  # each tap's pixels are distinct, so one fancy-indexed add per tap (no np.add.at)
            flat, cells = dx_t.reshape(-1, n), edges[2].shape[1] // n
            index = edges[0].reshape(c, k * k, cells)
            dcols = (w.reshape(f, -1).T @ d_edges).reshape(c, k * k, cells, n)
            for tap in range(k * k):
                flat[index[:, tap].reshape(-1)] += dcols[:, tap].reshape(-1, n)
        return dx_t[:, top:top + h, left:left + w_in].transpose(3, 0, 1, 2)
