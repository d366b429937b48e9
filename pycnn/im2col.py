"""im2col helpers: turn convolution into one matrix product.

Loops here run over kernel offsets (kh * kw iterations), never over pixels or samples.
"""
import numpy as np


def conv_output_size(size, kernel_size, stride, pad_total):
    """Output length of a convolution along one axis."""
    return (size + pad_total - kernel_size) // stride + 1


def same_padding(size, kernel_size, stride):
    """(before, after) padding that gives ceil(size / stride) outputs, as Keras 'same'."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def pad_input(x, pads):
    """x: (N, C, H, W), pads: ((top, bottom), (left, right)) -> zero-padded copy (or x itself)."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def im2col(xp, kernel_size, stride, out_h, out_w):
    """xp: padded (N, C, Hp, Wp) -> cols (N * out_h * out_w, C * kh * kw), rows in (n, i, j) order."""
    n, c = xp.shape[:2]
    k = kernel_size
    cols = np.empty((n, out_h, out_w, c, k, k), dtype=xp.dtype)
    for ki in range(k):
        for kj in range(k):
            window = xp[:, :, ki:ki + stride * out_h:stride, kj:kj + stride * out_w:stride]
            cols[:, :, :, :, ki, kj] = window.transpose(0, 2, 3, 1)
    return cols.reshape(n * out_h * out_w, c * k * k)


def col2im(dcols, padded_shape, kernel_size, stride, out_h, out_w):
    """Adjoint of im2col: dcols (N * out_h * out_w, C * kh * kw) -> d(xp) of padded_shape."""
    n, c = padded_shape[:2]
    k = kernel_size
    dcols = dcols.reshape(n, out_h, out_w, c, k, k)
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    for ki in range(k):
        for kj in range(k):
            # += is safe: within one offset the strided targets never overlap
            dxp[:, :, ki:ki + stride * out_h:stride, kj:kj + stride * out_w:stride] += (
                dcols[:, :, :, :, ki, kj].transpose(0, 3, 1, 2))
    return dxp
