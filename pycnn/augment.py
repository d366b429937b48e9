"""Seeded, vectorised data augmentation: small random shifts, rotations, scalings, shears and stretches,
and smooth elastic distortions."""
import numpy as np

ELASTIC_GRID = 4  # the elastic distortion's random displacements sit on a (GRID + 1) x (GRID + 1) grid


def random_affine(x, rng, max_shift=2.0, max_rotation=5.0, scale=(0.95, 1.05), out=None, shear=0.0, stretch=0.0):
    """x: (N, C, H, W) -> same shape, each image moved by its own small random affine map.

    Bilinear sampling about the image centre; pixels that come from outside are 0.
    max_shift in pixels, max_rotation in degrees, scale a (low, high) zoom range; shear: the
    largest horizontal shear (x moves by up to shear * y), stretch: the largest log aspect change
    (width * e^s, height / e^s for s in [-stretch, stretch]). With shear and stretch 0 the random
    numbers drawn and the images made are those of the map without them.
    """
    n, c, h, w = x.shape
    f32 = np.float32
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n)).astype(f32)
    zoom = rng.uniform(scale[0], scale[1], n).astype(f32)
    shift = rng.uniform(-max_shift, max_shift, (2, n)).astype(f32)
    # inverse map: for each output pixel, where in the input it comes from
    cos, sin = (np.cos(angle) / zoom)[:, None], (np.sin(angle) / zoom)[:, None]
    inverse = [[cos, -sin], [sin, cos]]  # (row, column) of the source from (row, column) of the output
    if shear or stretch:
        # the forward map rotates a sheared, stretched image: its inverse undoes the rotation, then the
        # shear (column -= shear * row), then the stretch (rows * e^s, columns / e^s)
        slant = rng.uniform(-shear, shear, n).astype(f32)[:, None] if shear else f32(0)
        aspect = np.exp(rng.uniform(-stretch, stretch, n)).astype(f32)[:, None] if stretch else f32(1)
        (a, b), (c_, d) = inverse
        inverse = [[a * aspect, b * aspect], [(c_ - slant * a) / aspect, (d - slant * b) / aspect]]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.indices((h, w), dtype=f32)
    yy, xx = (yy - cy).reshape(1, -1), (xx - cx).reshape(1, -1)
    src_y = inverse[0][0] * yy + inverse[0][1] * xx + (cy - shift[0])[:, None]
    src_x = inverse[1][0] * yy + inverse[1][1] * xx + (cx - shift[1])[:, None]
    return _sample(x, src_y, src_x, out)


def random_elastic(x, rng, amount=1.0, grid=ELASTIC_GRID, out=None):
    """x: (N, C, H, W) -> same shape, each image bent by its own smooth random displacement field.

    The displacements (rows and columns) are drawn uniform in [-amount, amount] pixels at the points of
    a (grid + 1) x (grid + 1) lattice over the image and interpolated bilinearly in between, so strokes
    bend and wobble a little the way two hands draw the same shape differently (Simard et al. 2003
    blur random fields; a coarse lattice gives the same smoothness for two small matrix products).
    """
    n, c, h, w = x.shape
    f32 = np.float32
    moves = rng.uniform(-amount, amount, (2, n, grid + 1, grid + 1)).astype(f32)
    rows, cols = _lattice(h, grid), _lattice(w, grid)           # (h, grid + 1), (w, grid + 1)
    fields = rows @ moves @ cols.T                                # (2, N, h, w)
    yy, xx = np.indices((h, w), dtype=f32)
    src_y = (yy + fields[0]).reshape(n, -1)
    src_x = (xx + fields[1]).reshape(n, -1)
    return _sample(x, src_y, src_x, out)


def _lattice(size, grid):
    """(size, grid + 1) float32 weights interpolating grid + 1 evenly spaced values linearly over size pixels."""
    at = np.linspace(0, grid, size)
    weights = np.maximum(0, 1 - np.abs(at[:, None] - np.arange(grid + 1)[None, :]))
    return weights.astype(np.float32)


def _sample(x, src_y, src_x, out):
    """x (N, C, H, W) read bilinearly at (src_y, src_x) (N, H*W) per output pixel; outside the image is 0."""
    n, c, h, w = x.shape
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
