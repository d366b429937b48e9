"""Turn MNIST digits into pen strokes, and strokes back into canvas pixels.

Used to replay real digits on the page's canvas as mouse strokes (bench/browser) and to
estimate the same thing in CPython (bench/drawn_digits.py):
    digit_to_strokes(image) -> list of strokes, each a list of (x, y) in 0..28 units
    place(strokes, canvas, rng, min_frac, max_frac) -> strokes in canvas pixels
    render(strokes, canvas, width) -> (canvas, canvas) grey image drawn with a round pen
    spaced(stroke, spacing) -> the stroke with points closer than spacing to the last one dropped
    paint(strokes, canvas) -> (canvas, canvas) ink levels as the page's brush draws them (web/sketch.js)
"""
import math

import numpy as np

NEIGHBOURS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # P2..P9 clockwise


def thin(mask):
    """Zhang-Suen thinning of a boolean image to a one-pixel-wide skeleton."""
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(img, -dy, 0), -dx, 1) for dy, dx in NEIGHBOURS]
            count = sum(p)
            ring = p + [p[0]]
            transitions = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.uint8) for i in range(8))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (img == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & cond
            if remove.any():
                img[remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def trace(skeleton):
    """Skeleton pixels -> paths [(row, col), ...], walking from endpoints first."""
    left = set(zip(*np.nonzero(skeleton)))
    paths = []

    def neighbours(pixel):
        r, c = pixel
        return [(r + dr, c + dc) for dr, dc in NEIGHBOURS if (r + dr, c + dc) in left]

    while left:
        ends = [p for p in left if len(neighbours(p)) == 1]
        current = min(ends) if ends else min(left)
        path = [current]
        left.discard(current)
        while True:
            options = neighbours(current)
            if not options:
                break
            # prefer straight (4-connected) steps, then diagonal ones
            options.sort(key=lambda p: abs(p[0] - current[0]) + abs(p[1] - current[1]))
            current = options[0]
            path.append(current)
            left.discard(current)
        if len(path) >= 2:
            paths.append(path)
    return paths


def upsample(image, factor):
    """Bilinear upsampling of a 2-D image by an integer factor (smooth edges: fewer skeleton spurs)."""
    h, w = image.shape
    ys = np.clip((np.arange(h * factor) + 0.5) / factor - 0.5, 0, h - 1)
    xs = np.clip((np.arange(w * factor) + 0.5) / factor - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def digit_to_strokes(image, upscale=4, min_length=2.0):
    """(28, 28) digit in [0, 1] -> strokes as lists of (x, y) points in 28-pixel units.

    Paths shorter than min_length (28-pixel units) are skeleton spurs, not strokes: dropped.
    """
    big = upsample(image, upscale) > 0.4
    strokes = []
    for path in trace(thin(big)):
        if len(path) < min_length * upscale:
            continue
        points = [((c + 0.5) / upscale, (r + 0.5) / upscale) for r, c in path]
        strokes.append(points[::2] + ([points[-1]] if len(points) % 2 == 0 else []))
    return strokes


def place(strokes, canvas, rng, min_frac=0.25, max_frac=1.0):
    """Scale strokes so the digit's larger side is a random fraction of the canvas; random position."""
    points = np.concatenate([np.asarray(s) for s in strokes])
    low, high = points.min(axis=0), points.max(axis=0)
    span = max(high - low)
    margin = 0.06 * canvas  # room for the pen's width
    size = rng.uniform(min_frac, max_frac) * (canvas - 2 * margin)
    factor = size / max(span, 1e-6)
    extent = (high - low) * factor
    origin = margin + rng.uniform(0, 1, 2) * np.maximum(canvas - 2 * margin - extent, 0)
    return [[tuple(origin + (np.asarray(p) - low) * factor) for p in s] for s in strokes]


def render(strokes, canvas, width):
    """Draw strokes with a round pen of the given width -> (canvas, canvas) grey image in [0, 1]."""
    image = np.zeros((canvas, canvas))
    radius = width / 2
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=float)
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            # only the pixels near the segment can change
            r0 = max(int(min(y0, y1) - radius - 2), 0)
            r1 = min(int(max(y0, y1) + radius + 2), canvas)
            c0 = max(int(min(x0, x1) - radius - 2), 0)
            c1 = min(int(max(x0, x1) + radius + 2), canvas)
            yy, xx = np.mgrid[r0:r1, c0:c1] + 0.5
            dx, dy = x1 - x0, y1 - y0
            length2 = dx * dx + dy * dy
            t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / length2, 0, 1) if length2 else 0
            dist = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
            # a soft edge one pixel wide, like an anti-aliased canvas line
            window = image[r0:r1, c0:c1]
            np.maximum(window, np.clip(radius + 0.5 - dist, 0, 1), out=window)
    return image


# the page's brush (web/sketch.js): diameter as a fraction of the canvas width, blur as a fraction of it
BRUSH_FRACTION = 0.065
SOFTNESS = 0.1


def spaced(stroke, spacing):
    """Points of a stroke, dropping each one closer than spacing to the last kept one (the end is kept).

    A pointer reports a point per event, not per tablet sample; a move to the same spot sends no event.
    """
    kept = [tuple(stroke[0])]
    for point in stroke[1:-1]:
        if math.dist(point, kept[-1]) >= spacing:
            kept.append(tuple(point))
    if len(stroke) > 1 and math.dist(stroke[-1], kept[-1]) > 0:
        if len(kept) > 1 and math.dist(stroke[-1], kept[-1]) < spacing:
            kept[-1] = tuple(stroke[-1])  # end where the pen was lifted
        else:
            kept.append(tuple(stroke[-1]))
    return kept


# Phi(z), the standard normal CDF, tabulated: math.erf has no numpy form without scipy
_Z = np.linspace(-8, 8, 3201)
_PHI = np.array([0.5 * (1 + math.erf(z / math.sqrt(2))) for z in _Z])


def _quantise(a):
    """Alpha in [0, 1] -> the nearest of the canvas' 256 levels."""
    return np.rint(a * 255) / 255


def paint(strokes, canvas=280, width=None, softness=SOFTNESS):
    """Strokes in canvas pixels -> (canvas, canvas) ink levels in [0, 1] (multiples of 1/255), drawn as
    the page's canvas draws them while the pointer moves (web/sketch.js):

    a dot at a stroke's first point, then every segment to the next point stroked on its own with round
    caps (width = BRUSH_FRACTION of the canvas) and a shadow blurred by softness * width; each is
    composited over what is there ("source-over", 8-bit alpha), so where caps overlap the soft edge
    darkens as it does on the page. The canvas' shadow is a Gaussian of standard deviation blur / 2
    (the HTML canvas spec) applied to the anti-aliased shape; anti-aliasing is taken as a one-pixel
    linear ramp, whose blur adds a box's variance (1/12) to the Gaussian's.
    """
    width = canvas * BRUSH_FRACTION if width is None else width
    radius = width / 2
    sigma = math.hypot(softness * width / 2, math.sqrt(1 / 12))
    reach = radius + 3 * sigma + 1  # the canvas' blur kernel ends at about 3 standard deviations
    paper = np.zeros((canvas, canvas))  # alpha of the canvas
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=float).reshape(-1, 2)
        segments = [(pts[0], pts[0])] + list(zip(pts[:-1], pts[1:]))
        for (x0, y0), (x1, y1) in segments:
            r0, r1 = max(int(min(y0, y1) - reach), 0), min(int(max(y0, y1) + reach) + 1, canvas)
            c0, c1 = max(int(min(x0, x1) - reach), 0), min(int(max(x0, x1) + reach) + 1, canvas)
            if r0 >= r1 or c0 >= c1:
                continue
            yy, xx = np.mgrid[r0:r1, c0:c1] + 0.5  # pixel centres
            dx, dy = x1 - x0, y1 - y0
            length2 = dx * dx + dy * dy
            t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / length2, 0, 1) if length2 else 0
            dist = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
            shape = _quantise(np.clip(radius + 0.5 - dist, 0, 1))
            shadow = _quantise(np.interp((radius - dist) / sigma, _Z, _PHI) * (dist < reach))
            window = paper[r0:r1, c0:c1]
            window[...] = _quantise(shadow + window * (1 - shadow))  # the shadow is drawn first
            window[...] = _quantise(shape + window * (1 - shape))
    return paper
