"""Turn a drawing into what the network was trained on: an MNIST-style 28x28 digit.

MNIST digits were size-normalised into a 20x20 box (keeping their aspect ratio, with
anti-aliasing) and centred by their centre of mass in a 28x28 field. A canvas drawing
must go through the same steps or a digit drawn small, off-centre or thick is misread;
and a small digit drawn with a wide pen also gets its strokes thinned to MNIST's width.
"""
import numpy as np

INK = 0.1            # a pixel counts as ink above this grey level
MIN_INK_PIXELS = 2   # fewer ink pixels than this is "nothing drawn"
BOX, FIELD = 20, 28
STROKE = 2.9         # median MNIST stroke width in the 28x28 field (2 * area / perimeter)
WORK = 4 * BOX       # strokes are thinned at this size, before the last scaling


def _area_weights(n_in, n_out):
    """(n_out, n_in) matrix averaging input pixels over each output pixel's span (area resampling)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def stroke_width(image):
    """Typical stroke width in pixels: 2 * ink area / ink perimeter (of the pixels above 0.5)."""
    ink = image > 0.5
    p = np.pad(ink, 1)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return 2 * np.count_nonzero(ink) / max(np.count_nonzero(ink & ~interior), 1)


def _erode(image, steps):
    """Shrink strokes by `steps` pixels on each side (3x3 minimum filter, applied steps times)."""
    for _ in range(steps):
        p = np.pad(image, 1)
        out = image.copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                np.minimum(out, p[dy:dy + image.shape[0], dx:dx + image.shape[1]], out=out)
        image = out
    return image


def _resize(image, new_h, new_w):
    """Area-averaging resize of a 2-D image."""
    h, w = image.shape
    return _area_weights(h, new_h) @ image @ _area_weights(w, new_w).T


def thin_thick_strokes(crop):
    """Shrink strokes that are much thicker than MNIST's, relative to the digit's size.

    A digit drawn small with a wide pen has strokes far thicker, for its size, than any
    MNIST digit, and is misread. (Thin strokes are left alone: thickening them measured
    no better.) Returns the crop at WORK pixels on its longer side, or less if it was smaller.
    """
    h, w = crop.shape
    if max(h, w) > WORK:
        factor = WORK / max(h, w)
        crop = _resize(crop, max(1, round(h * factor)), max(1, round(w * factor)))
    target = STROKE * max(crop.shape) / BOX  # MNIST's width at this scale
    steps = int(round((stroke_width(crop) - target) / 2))  # one step takes a pixel off each side
    if steps <= 0:
        return crop
    thinner = _erode(crop, steps)
    # never erase the drawing: keep at least a third of its ink
    return thinner if np.count_nonzero(thinner > 0.5) > np.count_nonzero(crop > 0.5) / 3 else crop


def center_of_mass(image):
    """(row, col) of the intensity-weighted centre of a 2-D image."""
    total = image.sum()
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum() / total), float((cols * image).sum() / total)


def to_mnist(gray):
    """gray: (H, W) grey levels, ink high (floats in [0, 1] or uint8) -> (1, 28, 28) float32 in [0, 1],
    or None when nothing (or next to nothing) is drawn."""
    gray = np.asarray(gray)
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise ValueError(f"gray must be a 2-D image, got shape {gray.shape}")
    gray = gray.astype(np.float64)
    if gray.max(initial=0) > 1:
        gray = gray / 255.0
    gray = np.clip(np.nan_to_num(gray), 0, 1)
    ink = gray > INK
    if np.count_nonzero(ink) < MIN_INK_PIXELS:
        return None
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = thin_thick_strokes(gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    h, w = crop.shape
    factor = BOX / max(h, w)
    new_h, new_w = max(1, round(h * factor)), max(1, round(w * factor))
    small = _resize(crop, new_h, new_w)
    small /= small.max()  # a thin or faint pen still gives full-strength strokes, as in MNIST
    # paste into the field so the centre of mass lands on the field's centre
    cy, cx = center_of_mass(small)
    top, left = round((FIELD - 1) / 2 - cy), round((FIELD - 1) / 2 - cx)
    out = np.zeros((FIELD, FIELD))
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + new_h, FIELD), min(left + new_w, FIELD)
    out[r0:r1, c0:c1] = small[r0 - top:r1 - top, c0 - left:c1 - left]
    return out.astype(np.float32)[None]
