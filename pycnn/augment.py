"""Seeded, vectorised data augmentation: small random shifts, rotations and scalings."""
import numpy as np


def random_affine(x, rng, max_shift=2.0, max_rotation=5.0, scale=(0.95, 1.05), out=None):
    """x: (N, C, H, W) -> same shape, each image moved by its own small random affine map.

    Bilinear sampling about the image centre; pixels that come from outside are 0.
    max_shift in pixels, max_rotation in degrees, scale a (low, high) zoom range.
    """
    n, c, h, w = x.shape
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n))
    zoom = rng.uniform(scale[0], scale[1], n)
    shift = rng.uniform(-max_shift, max_shift, (2, n))
    # inverse map: for each output pixel, where in the input does it come from
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = (yy - cy).ravel(), (xx - cx).ravel()
    src_y = cos[:, None] * yy[None] - sin[:, None] * xx[None] + (cy - shift[0])[:, None]
    src_x = sin[:, None] * yy[None] + cos[:, None] * xx[None] + (cx - shift[1])[:, None]
    y0, x0 = np.floor(src_y), np.floor(src_x)
    fy, fx = (src_y - y0).astype(x.dtype), (src_x - x0).astype(x.dtype)
    y0, x0 = y0.astype(np.intp), x0.astype(np.intp)
    # a sample whose 2x2 neighbourhood misses the image entirely reads 0
    inside = ((y0 >= -1) & (y0 <= h - 1) & (x0 >= -1) & (x0 <= w - 1)).astype(x.dtype)
    # pad by one pixel of zeros so every corner index is in range after clipping
    padded = np.zeros((n, c, h + 2, w + 2), dtype=x.dtype)
    padded[:, :, 1:-1, 1:-1] = x
    flat = padded.reshape(n, c, -1)
    y0 = np.clip(y0 + 1, 0, h)
    x0 = np.clip(x0 + 1, 0, w)
    base = y0 * (w + 2) + x0
    rows = np.arange(n)[:, None, None]
    chans = np.arange(c)[None, :, None]

    def corner(offset):
        return flat[rows, chans, (base + offset)[:, None, :]]

    top = corner(0) * (1 - fx[:, None]) + corner(1) * fx[:, None]
    bottom = corner(w + 2) * (1 - fx[:, None]) + corner(w + 3) * fx[:, None]
    result = (top * (1 - fy[:, None]) + bottom * fy[:, None]) * inside[:, None]
    if out is None:
        return result.reshape(n, c, h, w)
    out[...] = result.reshape(n, c, h, w)
    return out
