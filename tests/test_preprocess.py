"""pycnn.preprocess.to_mnist: a drawing becomes an MNIST-style 28x28 digit.

The main test replays real held-out MNIST digits as canvas drawings - blown up to a
280x280 canvas, shifted, shrunk and thickened by the generator below - and checks that a
trained model reads them (after to_mnist) within 2 points of the untouched digits.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pycnn import seed_model
from pycnn.preprocess import to_mnist
from pycnn.training import Trainer, TrainingConfig

CANVAS = 280
N_DIGITS = 500  # held-out digits compared (every 4th of the 2,000, so all classes appear)


# ---- a canvas generator of our own -----------------------------------------------------------
def bilinear_resize(image, size):
    """(h, w) -> (size, size), sampling at pixel centres with bilinear weights."""
    h, w = image.shape

    def axis(n_in):
        pos = (np.arange(size) + 0.5) * n_in / size - 0.5
        lo = np.floor(pos)
        frac = np.clip(pos - lo, 0, 1)
        lo = lo.astype(int)
        return np.clip(lo, 0, n_in - 1), np.clip(lo + 1, 0, n_in - 1), frac

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def dilate(image, radius):
    """Grey dilation with a (2r+1) square max filter, separably: thickens every stroke by 2r pixels."""
    if radius == 0:
        return image
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        out = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=axis).max(axis=-1)
    return out


def draw_digit_on_canvas(digit, rng, max_thickening=0.5):
    """A 28x28 digit as a person might draw it on a 280x280 canvas: blown up to a random size
    (a quarter of the canvas to all of it), placed at a random position, strokes thickened by
    up to max_thickening MNIST pixels on each side; half the canvases as uint8 0-255."""
    size = int(rng.integers(CANVAS // 4, CANVAS + 1))
    big = bilinear_resize(digit, size)
    big = dilate(big, int(rng.integers(0, round(max_thickening * size / 28) + 1)))
    top, left = rng.integers(0, CANVAS - size + 1, 2)
    canvas = np.zeros((CANVAS, CANVAS))
    canvas[top:top + size, left:left + size] = big
    return np.round(canvas * 255).astype(np.uint8) if rng.random() < 0.5 else canvas


def scribble(rng, strokes=3, width=None):
    """Random pen strokes with a round, soft brush (a polyline per stroke)."""
    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float64)
    width = width if width is not None else rng.uniform(4, 24)
    canvas = np.zeros((CANVAS, CANVAS))
    for _ in range(strokes):
        points = np.cumsum(rng.normal(0, 30, (int(rng.integers(2, 6)), 2)), axis=0) + rng.uniform(60, 220, 2)
        for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
            dy, dx = y1 - y0, x1 - x0
            t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-9), 0, 1)
            dist = np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))
            canvas = np.maximum(canvas, np.clip(width / 2 + 0.5 - dist, 0, 1))
    return canvas


def centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    return (rows * image).sum() / image.sum(), (cols * image).sum() / image.sum()


def assert_mnist_like(out):
    assert out is not None
    assert out.shape == (1, 28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    cy, cx = centre_of_mass(out[0])
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1, (cy, cx)


# ---- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digit_model(split):
    """The seed model trained with augmentation (the page's recipe, shortened to 3 epochs)."""
    x_train, y_train, _, _ = split
    model = seed_model(seed=0)
    Trainer(model, x_train, y_train, TrainingConfig(epochs=3, augment=True, seed=0)).run()
    return model


@pytest.fixture(scope="module")
def held_out(split):
    _, _, x_test, y_test = split
    step = len(x_test) // N_DIGITS
    return x_test[::step][:N_DIGITS], y_test[::step][:N_DIGITS]


# ---- nothing drawn ---------------------------------------------------------------------------
@pytest.mark.parametrize("canvas", [
    np.zeros((CANVAS, CANVAS)), np.zeros((CANVAS, CANVAS), np.uint8), np.zeros((28, 28)),
    np.full((CANVAS, CANVAS), 0.05),                  # faint smudge below the ink level
], ids=["empty-float", "empty-uint8", "empty-28", "faint"])
def test_empty_canvas_gives_nothing_drawn(canvas):
    assert to_mnist(canvas) is None


@pytest.mark.parametrize("dtype, ink", [(np.float64, 1.0), (np.uint8, 255)])
def test_one_pixel_canvas_gives_nothing_drawn(dtype, ink):
    canvas = np.zeros((CANVAS, CANVAS), dtype)
    canvas[140, 17] = ink
    assert to_mnist(canvas) is None


def test_two_pixels_are_enough_to_count_as_a_drawing():
    canvas = np.zeros((CANVAS, CANVAS))
    canvas[140, 17:19] = 1.0
    assert_mnist_like(to_mnist(canvas))


@pytest.mark.parametrize("shape", [(28,), (2, 28, 28), (0, 5), ()])
def test_non_2d_input_is_refused(shape):
    with pytest.raises(ValueError, match="gray must be a 2-D image"):
        to_mnist(np.zeros(shape))


# ---- what comes out --------------------------------------------------------------------------
def test_drawn_digits_come_out_28x28_in_unit_range_with_centred_mass(held_out):
    x, _ = held_out
    rng = np.random.default_rng(1)
    for digit in x[:200, 0]:
        assert_mnist_like(to_mnist(draw_digit_on_canvas(digit, rng)))


def test_random_scribbles_come_out_28x28_in_unit_range_with_centred_mass():
    rng = np.random.default_rng(2)
    for _ in range(30):
        assert_mnist_like(to_mnist(scribble(rng, strokes=int(rng.integers(1, 4)))))


def outline(canvas, top, left, height, width, pen):
    """A hollow rectangle drawn with a pen `pen` pixels wide (a stroke, not a blob)."""
    canvas[top:top + height, left:left + width] = 1.0
    canvas[top + pen:top + height - pen, left + pen:left + width - pen] = 0.0
    return canvas


def ink_extent(out):
    rows, cols = np.flatnonzero(out[0].any(axis=1)), np.flatnonzero(out[0].any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_ink_is_scaled_to_fit_a_20x20_box_keeping_the_aspect_ratio():
    # 200 tall, 100 wide, drawn with a pen of MNIST's width for that size (2.9 / 20 of the height)
    out = to_mnist(outline(np.zeros((CANVAS, CANVAS)), 30, 100, 200, 100, pen=29))
    assert ink_extent(out) == (20, 10)


def test_small_digits_are_enlarged_to_the_same_20_pixel_box():
    out = to_mnist(outline(np.zeros((CANVAS, CANVAS)), 10, 10, 40, 20, pen=6))  # a small mark in a corner
    assert ink_extent(out) == (20, 10)


def test_the_same_drawing_anywhere_on_the_canvas_gives_the_same_input(held_out):
    digit = bilinear_resize(held_out[0][0, 0], 150)
    outputs = []
    for top, left in [(0, 0), (130, 130), (7, 101), (129, 3)]:
        canvas = np.zeros((CANVAS, CANVAS))
        canvas[top:top + 150, left:left + 150] = digit
        outputs.append(to_mnist(canvas))
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])


def test_uint8_and_float_canvases_give_the_same_input(held_out):
    canvas = draw_digit_on_canvas(held_out[0][3, 0], np.random.default_rng(3))
    as_float = canvas / 255.0 if canvas.dtype == np.uint8 else canvas
    as_uint8 = np.round(as_float * 255).astype(np.uint8)
    np.testing.assert_allclose(to_mnist(as_uint8), to_mnist(as_float), atol=0.02)


def test_thin_strokes_are_anti_aliased_not_dropped():
    canvas = np.zeros((CANVAS, CANVAS))
    canvas[20:260, 139:141] = 1.0    # a 2-pixel line, 240 long: 1/12 of an output pixel wide
    canvas[20:22, 60:220] = 1.0      # and a bar across the top, so the box is not just the line
    out = to_mnist(canvas)[0]
    line_column = out[:, out.sum(axis=0).argmax()]
    assert np.count_nonzero(line_column) >= 18  # the line survives along its length
    assert np.all(out <= 1) and np.count_nonzero((out > 0.02) & (out < 0.98)) > 0


def test_untouched_mnist_digits_pass_through_almost_unchanged(held_out):
    x, _ = held_out
    diffs = [np.abs(to_mnist(d) - d).mean() for d in x[:100, 0]]
    assert np.median(diffs) < 0.08


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=60),
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_any_grey_image_gives_nothing_or_a_28x28_unit_range_image(gray):
    out = to_mnist(gray)
    if out is not None:
        assert out.shape == (1, 28, 28) and out.dtype == np.float32
        assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1 and out.max() > 0


# ---- the accuracy that matters ---------------------------------------------------------------
def test_preprocessed_canvas_digits_keep_accuracy_within_2_points(digit_model, held_out, record_property):
    x, y = held_out
    assert len(x) >= 300 and set(y) == set(range(10))
    rng = np.random.default_rng(0)
    canvases = [draw_digit_on_canvas(digit, rng) for digit in x[:, 0]]
    inputs = np.stack([to_mnist(canvas) for canvas in canvases])
    plain = float(np.mean(digit_model.predict(x) == y))
    drawn = float(np.mean(digit_model.predict(inputs) == y))
    record_property("report", f"{len(x)} held-out digits: untouched {plain:.1%}, drawn on a 280x280 canvas and "
                              f"preprocessed {drawn:.1%}")
    assert plain > 0.9, f"the model is not trained well enough to compare ({plain:.1%})"
    assert abs(drawn - plain) <= 0.02, f"untouched {plain:.1%}, drawn on a canvas {drawn:.1%}"


def test_naive_shrinking_loses_accuracy_that_to_mnist_keeps(digit_model, held_out):
    """Control: the canvas generator really makes digits hard - shrinking the canvas to 28x28
    without MNIST's box-and-centre step reads them far worse."""
    x, y = held_out
    rng = np.random.default_rng(0)
    naive = []
    for digit in x[:200, 0]:
        canvas = draw_digit_on_canvas(digit, rng).astype(np.float64)
        canvas = canvas / 255 if canvas.max() > 1 else canvas
        naive.append(canvas.reshape(28, 10, 28, 10).mean(axis=(1, 3))[None])
    naive_accuracy = float(np.mean(digit_model.predict(np.stack(naive)) == y[:200]))
    assert naive_accuracy < 0.8
