"""Seeded, vectorised data augmentation: small random shifts, rotations and scalings."""
import numpy as np


def random_affine(x, rng, max_shift=2.0, max_rotation=5.0, scale=(0.95, 1.05), out=None):
    """x: (N, C, H, W) -> same shape, each image moved by its own small random affine map.

    Bilinear sampling about the image centre; pixels that come from outside are 0.
    max_shift in pixels, max_rotation in degrees, scale a (low, high) zoom range.
    """
    n, c, h, w = x.shape
    f32 = np.float32
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n)).astype(f32)
    zoom = rng.uniform(scale[0], scale[1], n).astype(f32)
    shift = rng.uniform(-max_shift, max_shift, (2, n)).astype(f32)
    # inverse map: for each output pixel, where in the input it comes from
    cos, sin = (np.cos(angle) / zoom)[:, None], (np.sin(angle) / zoom)[:, None]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.indices((h, w), dtype=f32)
    yy, xx = (yy - cy).reshape(1, -1), (xx - cx).reshape(1, -1)
    src_y = cos * yy - sin * xx + (cy - shift[0])[:, None]
    src_x = sin * yy + cos * xx + (cx - shift[1])[:, None]
    y0, x0 = np.floor(src_y), np.floor(src_x)
    fy, fx = (src_y - y0).astype(x.dtype), (src_x - x0).astype(x.dtype)
    y0, x0 = y0.astype(np.intp), x0.astype(np.intp)
    # a sample whose 2x2 neighbourhood misses the image entirely reads 0
    inside = (y0 >= -1) & (y0 <= h - 1) & (x0 >= -1) & (x0 <= w - 1)
    # a one-pixel border of zeros keeps every clipped corner index in range
    pw = w + 2
    plane = (h + 2) * pw
    padded = np.zeros((n, c, h + 2, pw), dtype=x.dtype)
    padded[:, :, 1:-1, 1:-1] = x
    flat = padded.reshape(-1)
    base = np.clip(y0 + 1, 0, h) * pw + np.clip(x0 + 1, 0, w)          # (N, H*W)
    planes = (np.arange(n * c) * plane).reshape(n, c, 1)
    index = planes + base[:, None, :]                                   # (N, C, H*W) into flat
    fx, fy = fx[:, None, :], fy[:, None, :]
    top_left, top_right = flat[index], flat[index + 1]
    bottom_left, bottom_right = flat[index + pw], flat[index + pw + 1]
    top = top_left + (top_right - top_left) * fx
    bottom = bottom_left + (bottom_right - bottom_left) * fx
    result = (top + (bottom - top) * fy) * inside[:, None, :]
    if out is None:
        return result.reshape(n, c, h, w)
    out[...] = result.reshape(n, c, h, w)
    return out
