"""Layers and the loss: shapes, slow loop references, float64 finite-difference gradient
checks, what a layer kind declares, and adding one (the fused block: test_fused.py).

Relative error (max_rel_error below) is the global form
max|a - b| / max(1e-8, max|a| + max|b|); every check must be below 1e-6.
"""
import inspect
import io
import json
import math
import re
import zipfile

import numpy as np
import pytest

import pycnn
from pycnn import (LAYERS, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, LeakyReLU, MaxPool2D, ReLU,
                   Sequential, Sigmoid, Tanh, softmax, softmax_cross_entropy)
from pycnn.checks import Int

TOL = 1e-6


# ---- gradient-check helpers ------------------------------------------------------------------
def max_rel_error(a, b):
    """Relative error of two arrays, normalised globally: max|a - b| / max(1e-8, max|a| + max|b|).

    The global form (rather than elementwise) keeps entries that are ~0 in both arrays
    from turning round-off into huge ratios; 1e-8 is the floor for all-zero arrays.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, np.max(np.abs(a)) + np.max(np.abs(b))))


def numeric_grad(f, array, h=1e-6):
    """Central finite differences of the scalar f() with respect to array (perturbed in place)."""
    grad = np.zeros_like(array, dtype=np.float64)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    assert np.shares_memory(flat, array), "array must be contiguous so it can be perturbed in place"
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


# ---- slow per-pixel references (kept here on purpose: they are the spec) ------------------
def ref_pads(padding, size, kernel, stride):
    """(before, after) zero padding along one axis, as Keras defines 'valid', 'same' and ints."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // stride)  # ceil(size / stride) outputs
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    return padding, padding


def conv_loop(x, W, b, stride, padding):
    n, c, h, w = x.shape
    f, _, k, _ = W.shape
    top, bottom = ref_pads(padding, h, k, stride)
    left, right = ref_pads(padding, w, k, stride)
    xp = np.zeros((n, c, h + top + bottom, w + left + right))
    xp[:, :, top:top + h, left:left + w] = x
    out_h = (xp.shape[2] - k) // stride + 1
    out_w = (xp.shape[3] - k) // stride + 1
    out = np.zeros((n, f, out_h, out_w))
    for i in range(n):
        for o in range(f):
            for r in range(out_h):
                for q in range(out_w):
                    total = b[o]
                    for ch in range(c):
                        for di in range(k):
                            for dj in range(k):
                                total += xp[i, ch, r * stride + di, q * stride + dj] * W[o, ch, di, dj]
                    out[i, o, r, q] = total
    return out


def pool_loop(x, pool, stride, reduce):
    """Plain pooling: reduce (max, or the mean) of each pool x pool window, stride apart."""
    n, c, h, w = x.shape
    out_h, out_w = (h - pool) // stride + 1, (w - pool) // stride + 1
    out = np.zeros((n, c, out_h, out_w))
    for i in range(n):
        for ch in range(c):
            for r in range(out_h):
                for q in range(out_w):
                    window = [x[i, ch, r * stride + di, q * stride + dj] for di in range(pool) for dj in range(pool)]
                    out[i, ch, r, q] = reduce(window)
    return out


def maxpool_loop(x, pool, stride):
    return pool_loop(x, pool, stride, max)


def relu_loop(x):
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        out[idx] = x[idx] if x[idx] > 0 else 0.0
    return out


def flatten_loop(x):
    n = x.shape[0]
    out = np.zeros((n, x[0].size))
    for i in range(n):
        for j, idx in enumerate(np.ndindex(x.shape[1:])):  # C order: channel, row, column
            out[i, j] = x[(i, *idx)]
    return out


def dense_loop(x, W, b):
    n, d = x.shape
    out = np.zeros((n, W.shape[1]))
    for i in range(n):
        for j in range(W.shape[1]):
            out[i, j] = b[j] + sum(x[i, k] * W[k, j] for k in range(d))
    return out


# ---- gradient-check helper -----------------------------------------------------------------
def check_layer_gradients(layer, x, rng, training=False, before=lambda: None):
    """Analytic dx and param grads vs central differences of L = sum(forward(x) * dout).

    training: the function differentiated numerically is the training forward pass (BatchNorm's
    batch statistics, dropout's mask) rather than inference's; before() runs before every
    forward pass (dropout: the same draws each time).
    """
    before()
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    analytic = {"x": dx, **{name: g.copy() for name, g in layer.grads.items()}}

    def loss():
        before()
        return float(np.sum(layer.forward(x, training=training) * dout))

    numeric = {"x": numeric_grad(loss, x)}
    for name in layer.params:
        numeric[name] = numeric_grad(loss, layer.params[name])
    errors = {name: max_rel_error(analytic[name], numeric[name]) for name in analytic}
    assert set(errors) == {"x", *layer.params}
    for name, err in errors.items():
        assert err < TOL, f"{type(layer).__name__} d{name}: relative error {err:.2e} (all: {errors})"
    return errors


# ---- Conv2D ----------------------------------------------------------------------------------
CONV_SHAPES = [
    # in_ch, filters, kernel, stride, padding, input shape, expected output shape
    (1, 10, 3, 1, "valid", (2, 1, 28, 28), (2, 10, 26, 26)),
    (3, 4, 3, 2, "valid", (2, 3, 7, 7), (2, 4, 3, 3)),
    (2, 3, 3, 1, "same", (3, 2, 7, 5), (3, 3, 7, 5)),
    (2, 3, 3, 2, "same", (2, 2, 7, 7), (2, 3, 4, 4)),
    (2, 5, 4, 2, "same", (1, 2, 9, 6), (1, 5, 5, 3)),
    (3, 2, 5, 1, 2, (2, 3, 9, 9), (2, 2, 9, 9)),
    (1, 2, 3, 2, 1, (4, 1, 8, 7), (4, 2, 4, 4)),
    (2, 2, 1, 1, "valid", (1, 2, 5, 3), (1, 2, 5, 3)),
    (1, 1, 5, 3, "valid", (1, 1, 11, 13), (1, 1, 3, 3)),
    (1, 3, 3, 1, 0, (2, 1, 5, 5), (2, 3, 3, 3)),
]


@pytest.mark.parametrize("in_ch, filters, k, stride, padding, x_shape, expected", CONV_SHAPES)
def test_conv2d_output_shape_table(in_ch, filters, k, stride, padding, x_shape, expected, rng):
    layer = Conv2D(in_ch, filters, k, stride=stride, padding=padding, rng=rng)
    out = layer.forward(rng.standard_normal(x_shape))
    assert out.shape == expected
    assert layer.output_shape(x_shape[1:]) == expected[1:]


@pytest.mark.parametrize("in_ch, filters, k, stride, padding, x_shape, expected",
                         [row for row in CONV_SHAPES if np.prod(row[5]) < 2000])
def test_conv2d_forward_matches_loop_reference(in_ch, filters, k, stride, padding, x_shape, expected, rng):
    layer = Conv2D(in_ch, filters, k, stride=stride, padding=padding, rng=rng)
    layer.params["b"] = rng.standard_normal(filters)  # a non-zero bias, so it is checked too
    x = rng.standard_normal(x_shape)
    np.testing.assert_allclose(layer.forward(x), conv_loop(x, layer.params["W"], layer.params["b"], stride, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_ch, filters, k, stride, padding, x_shape", [
    (1, 2, 3, 1, "valid", (2, 1, 7, 7)),
    (3, 2, 3, 2, "valid", (2, 3, 9, 7)),
    (2, 3, 3, 1, "same", (3, 2, 5, 7)),
    (2, 2, 3, 2, "same", (2, 2, 7, 7)),
    (2, 2, 4, 2, "same", (2, 2, 7, 6)),   # even kernel: asymmetric padding
    (2, 3, 3, 2, 1, (2, 2, 8, 7)),
    (1, 2, 5, 3, 2, (2, 1, 11, 9)),
])
def test_conv2d_backward_matches_numeric_gradient(in_ch, filters, k, stride, padding, x_shape, rng):
    layer = Conv2D(in_ch, filters, k, stride=stride, padding=padding, rng=rng)
    layer.params["b"] = rng.standard_normal(filters)
    check_layer_gradients(layer, rng.standard_normal(x_shape), rng)


def test_conv2d_weight_layout_is_out_in_kh_kw(rng):
    layer = Conv2D(3, 5, 4, rng=rng)
    assert layer.params["W"].shape == (5, 3, 4, 4)
    assert layer.params["b"].shape == (5,)
    assert layer.get_config() == {"in_channels": 3, "filters": 5, "kernel_size": 4, "stride": 1, "padding": "valid"}


def test_conv2d_he_initialisation_has_the_right_spread():
    layer = Conv2D(8, 64, 3, rng=np.random.default_rng(1))
    std = layer.params["W"].std()
    assert abs(std - np.sqrt(2 / (8 * 9))) < 0.1 * np.sqrt(2 / (8 * 9))
    assert np.all(layer.params["b"] == 0)


@pytest.mark.parametrize("kwargs, message", [
    ({"in_channels": 0}, "in_channels must be an int from 1 to 10000000, got 0"),
    ({"filters": -1}, "filters must be an int from 1 to 10000000, got -1"),
    ({"kernel_size": 2.5}, "kernel_size must be an int from 1 to 4096, got 2.5"),
    ({"stride": 0}, "stride must be an int from 1 to 4096, got 0"),
    ({"padding": "full"}, "padding must be 'valid', 'same' or an int from 0 to 4096, got 'full'"),
    ({"padding": -1}, "padding must be"),
    ({"kernel_size": True}, "kernel_size must be an int from 1 to 4096, got True"),
    ({"kernel_size": 5000}, "kernel_size must be an int from 1 to 4096, got 5000"),
])
def test_conv2d_bad_arguments_raise_a_message_naming_them(kwargs, message):
    args = {"in_channels": 1, "filters": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Conv2D(**args)


def test_conv2d_refuses_wrong_channels_and_too_small_inputs(rng):
    layer = Conv2D(2, 3, 5, rng=rng)
    with pytest.raises(ValueError, match="expects 2 input channels, got 3"):
        layer.forward(rng.standard_normal((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="larger than its 4x4 input"):
        layer.forward(rng.standard_normal((1, 2, 4, 4)))


# ---- ReLU ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 10), (1, 1, 1, 1)])
def test_relu_keeps_shape_and_matches_loop_reference(shape, rng):
    x = rng.standard_normal(shape)
    out = ReLU().forward(x)
    assert out.shape == shape
    np.testing.assert_array_equal(out, relu_loop(x))


def test_relu_backward_matches_numeric_gradient(rng):
    x = rng.standard_normal((3, 2, 5, 7))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kink at 0
    check_layer_gradients(ReLU(), x, rng)


def test_relu_gradient_mask_comes_from_the_input_not_the_output():
    layer = ReLU()
    layer.forward(np.array([[-2.0, 0.0, 3.0]]))
    np.testing.assert_array_equal(layer.backward(np.array([[5.0, 5.0, 5.0]])), [[0.0, 0.0, 5.0]])


# ---- MaxPool2D -------------------------------------------------------------------------------
POOL_SHAPES = [
    # pool, stride, input, expected
    (2, None, (2, 3, 28, 28), (2, 3, 14, 14)),
    (2, None, (1, 2, 27, 27), (1, 2, 13, 13)),   # odd: floored, like Keras 'valid'
    (2, None, (2, 1, 7, 5), (2, 1, 3, 2)),
    (3, None, (1, 2, 9, 10), (1, 2, 3, 3)),
    (3, 2, (1, 1, 7, 8), (1, 1, 3, 3)),          # overlapping windows
    (2, 1, (2, 2, 5, 4), (2, 2, 4, 3)),
    (2, None, (1, 1, 3, 3), (1, 1, 1, 1)),
]


@pytest.mark.parametrize("pool, stride, x_shape, expected", POOL_SHAPES)
def test_maxpool_output_shape_table(pool, stride, x_shape, expected, rng):
    layer = MaxPool2D(pool, stride)
    assert layer.forward(rng.standard_normal(x_shape)).shape == expected
    assert layer.output_shape(x_shape[1:]) == expected[1:]


@pytest.mark.parametrize("pool, stride, x_shape, expected", POOL_SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_maxpool_forward_matches_loop_reference(pool, stride, x_shape, expected, training, rng):
    x = rng.standard_normal(x_shape)
    out = MaxPool2D(pool, stride).forward(x, training=training)
    np.testing.assert_array_equal(out, maxpool_loop(x, pool, stride if stride else pool))


@pytest.mark.parametrize("pool, stride, x_shape", [
    (2, None, (2, 3, 7, 9)), (3, 2, (2, 2, 7, 8)), (2, 1, (2, 2, 5, 4)), (3, None, (1, 2, 10, 9)),
])
def test_maxpool_backward_matches_numeric_gradient(pool, stride, x_shape, rng):
    check_layer_gradients(MaxPool2D(pool, stride), rng.standard_normal(x_shape), rng)


def test_maxpool_routes_gradient_to_argmax():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0],
                    [3.0, 4.0, 9.0, 8.0],
                    [-1.0, -2.0, 0.5, 0.25],
                    [-4.0, -0.5, 0.75, 0.1]]]])
    layer = MaxPool2D(2)
    np.testing.assert_array_equal(layer.forward(x), [[[[5.0, 9.0], [-0.5, 0.75]]]])
    dx = layer.backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 10.0, 0.0, 0.0],
                                         [0.0, 0.0, 20.0, 0.0],
                                         [0.0, 0.0, 0.0, 0.0],
                                         [0.0, 30.0, 40.0, 0.0]]]])


def test_maxpool_ties_send_the_gradient_to_one_element_only():
    layer = MaxPool2D(2)
    layer.forward(np.ones((1, 1, 2, 2)))
    dx = layer.backward(np.array([[[[1.0]]]]))
    assert dx.sum() == 1.0 and np.count_nonzero(dx) == 1
    assert dx[0, 0, 0, 0] == 1.0  # the first element, like PyTorch


def test_maxpool_odd_input_floors_and_gives_dropped_edge_zero_gradient(rng):
    x = rng.standard_normal((2, 3, 7, 7))
    layer = MaxPool2D(2)
    out = layer.forward(x)
    assert out.shape == (2, 3, 3, 3)
    dx = layer.backward(np.ones_like(out))
    assert np.all(dx[:, :, 6, :] == 0) and np.all(dx[:, :, :, 6] == 0)
    assert dx.sum() == out.size  # every window routed its one unit of gradient


def test_maxpool_overlapping_windows_sum_their_gradients():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # the max of all four 2x2 windows at stride 1
    layer = MaxPool2D(2, stride=1)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_maxpool_refuses_input_smaller_than_pool(rng):
    with pytest.raises(ValueError, match="pool_size 3 is larger than its 2x5 input"):
        MaxPool2D(3).forward(rng.standard_normal((1, 1, 2, 5)))
    with pytest.raises(ValueError, match="pool_size must be an int from 1 to 4096, got 0"):
        MaxPool2D(0)


# ---- Flatten ---------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape, expected", [((2, 3, 5, 7), (2, 105)), ((1, 10, 13, 13), (1, 1690)), ((3, 4), (3, 4))])
def test_flatten_shape_and_loop_reference(x_shape, expected, rng):
    x = rng.standard_normal(x_shape)
    layer = Flatten()
    out = layer.forward(x)
    assert out.shape == expected and layer.output_shape(x_shape[1:]) == expected[1:]
    np.testing.assert_array_equal(out, flatten_loop(x))


def test_flatten_backward_matches_numeric_gradient(rng):
    check_layer_gradients(Flatten(), rng.standard_normal((3, 2, 3, 5)), rng)


# ---- Dense -----------------------------------------------------------------------------------
@pytest.fixture(params=[False, True], ids=["matmul", "einsum"])
def dense_products(request, monkeypatch):
    """Each test of Dense runs with both products: BLAS matmul (CPython) and einsum (Pyodide)."""
    monkeypatch.setattr(pycnn.layers, "DENSE_EINSUM", request.param)


@pytest.mark.parametrize("n, d_in, d_out", [(1, 1, 1), (5, 7, 3), (4, 1690, 10)])
def test_dense_shape_and_loop_reference(n, d_in, d_out, rng, dense_products):
    layer = Dense(d_in, d_out, rng=rng)
    layer.params["b"] = rng.standard_normal(d_out)
    x = rng.standard_normal((n, d_in))
    out = layer.forward(x)
    assert out.shape == (n, d_out) and layer.output_shape((d_in,)) == (d_out,)
    np.testing.assert_allclose(out, dense_loop(x, layer.params["W"], layer.params["b"]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, d_in, d_out", [(1, 4, 3), (5, 7, 3)])
def test_dense_backward_matches_numeric_gradient(n, d_in, d_out, rng, dense_products):
    layer = Dense(d_in, d_out, rng=rng)
    layer.params["b"] = rng.standard_normal(d_out)
    check_layer_gradients(layer, rng.standard_normal((n, d_in)), rng)


def test_dense_glorot_init_stays_within_the_limit():
    layer = Dense(100, 50, rng=np.random.default_rng(2))
    limit = np.sqrt(6 / 150)
    assert np.abs(layer.params["W"]).max() <= limit
    assert np.abs(layer.params["W"]).max() > 0.9 * limit
    assert np.all(layer.params["b"] == 0)


def test_dense_refuses_bad_sizes_and_mismatched_inputs():
    with pytest.raises(ValueError, match="in_features must be an int from 1 to 10000000, got 0"):
        Dense(0, 3)
    with pytest.raises(ValueError, match=r"Dense expects input of shape \(4,\), got \(5,\)"):
        Dense(4, 3).output_shape((5,))


# ---- BatchNorm -------------------------------------------------------------------------------
def batchnorm_loop(x, gamma, beta, eps, mean=None, var=None):
    """Per channel (axis 1) of (N, C, H, W) or (N, F): the batch's mean and biased variance unless given."""
    out = np.zeros_like(x)
    for ch in range(x.shape[1]):
        values = [x[(i, ch, *rest)] for i in range(x.shape[0]) for rest in np.ndindex(x.shape[2:])]
        m = sum(values) / len(values) if mean is None else mean[ch]
        v = sum((value - m) ** 2 for value in values) / len(values) if var is None else var[ch]
        for i in range(x.shape[0]):
            for rest in np.ndindex(x.shape[2:]):
                out[(i, ch, *rest)] = gamma[ch] * (x[(i, ch, *rest)] - m) / np.sqrt(v + eps) + beta[ch]
    return out


def random_batchnorm(features, rng, momentum=0.1, eps=1e-5):
    """A BatchNorm with weights and running statistics away from their starting values."""
    layer = BatchNorm(features, momentum=momentum, eps=eps)
    layer.params["gamma"] = rng.uniform(0.5, 1.5, features) * rng.choice([-1, 1], features)
    layer.params["beta"] = rng.standard_normal(features)
    layer.state["running_mean"] = rng.standard_normal(features)
    layer.state["running_var"] = rng.uniform(0.5, 2, features)
    return layer


BATCHNORM_SHAPES = [(2, 3, 4, 5), (5, 1, 3, 3), (1, 2, 3, 4), (6, 4), (2, 7)]


@pytest.mark.parametrize("x_shape", BATCHNORM_SHAPES)
def test_batchnorm_training_normalises_with_the_batch_statistics_like_the_loop_reference(x_shape, rng):
    layer = random_batchnorm(x_shape[1], rng)
    x = rng.standard_normal(x_shape) * 3 + 2
    out = layer.forward(x, training=True)
    assert out.shape == x_shape and layer.output_shape(x_shape[1:]) == x_shape[1:]
    gamma, beta = layer.params["gamma"], layer.params["beta"]
    np.testing.assert_allclose(out, batchnorm_loop(x, gamma, beta, 1e-5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape", BATCHNORM_SHAPES)
def test_batchnorm_inference_uses_the_running_statistics_like_the_loop_reference(x_shape, rng):
    layer = random_batchnorm(x_shape[1], rng, eps=1e-3)
    x = rng.standard_normal(x_shape)
    state = {name: array.copy() for name, array in layer.state.items()}
    expected = batchnorm_loop(x, layer.params["gamma"], layer.params["beta"], 1e-3,
                              state["running_mean"], state["running_var"])
    np.testing.assert_allclose(layer.forward(x, training=False), expected, rtol=1e-12, atol=1e-12)
    for name, array in layer.state.items():  # inference changes nothing
        np.testing.assert_array_equal(array, state[name])


@pytest.mark.parametrize("x_shape", [(4, 3, 2, 5), (8, 6)])
def test_batchnorm_running_statistics_move_by_momentum_toward_the_batch_with_unbiased_variance(x_shape, rng):
    layer = random_batchnorm(x_shape[1], rng, momentum=0.25)
    before = {name: array.copy() for name, array in layer.state.items()}
    x = rng.standard_normal(x_shape) * 2 + 1
    layer.forward(x, training=True)
    axes = (0, 2, 3) if len(x_shape) == 4 else (0,)
    mean, var = x.mean(axis=axes), x.var(axis=axes, ddof=1)
    np.testing.assert_allclose(layer.state["running_mean"], 0.75 * before["running_mean"] + 0.25 * mean, rtol=1e-13)
    np.testing.assert_allclose(layer.state["running_var"], 0.75 * before["running_var"] + 0.25 * var, rtol=1e-13)
    np.testing.assert_allclose(layer.statistics["var"], var, rtol=1e-13)


def test_batchnorm_of_one_vector_outputs_beta_and_keeps_its_state(rng):
    layer = random_batchnorm(4, rng)
    before = {name: array.copy() for name, array in layer.state.items()}
    np.testing.assert_allclose(layer.forward(rng.standard_normal((1, 4)), training=True)[0], layer.params["beta"],
                               atol=1e-12)
    assert layer.statistics == {}
    for name, array in layer.state.items():
        np.testing.assert_array_equal(array, before[name])


def test_batchnorm_deferred_statistics_leave_the_state_until_applied(rng):
    layer = random_batchnorm(3, rng)
    before = {name: array.copy() for name, array in layer.state.items()}
    x = rng.standard_normal((4, 3, 2, 2))
    layer.defer_statistics = True
    out = layer.forward(x, training=True)
    for name, array in layer.state.items():
        np.testing.assert_array_equal(array, before[name])
    layer.defer_statistics = False
    layer.update_statistics(layer.statistics)
    deferred = {name: array.copy() for name, array in layer.state.items()}
    layer.set_state({name: array.copy() for name, array in before.items()})
    np.testing.assert_array_equal(layer.forward(x, training=True), out)
    for name, array in layer.state.items():
        np.testing.assert_array_equal(array, deferred[name])  # the same update, bit for bit


# three values per channel at least: two are normalised to about -1 and 1 whatever they are, so
# their gradient is of the order of eps and finite differences only see their own rounding
@pytest.mark.parametrize("x_shape", [(3, 2, 3, 4), (3, 3, 1, 1), (5, 4), (3, 2)])
def test_batchnorm_training_backward_matches_numeric_gradient(x_shape, rng):
    layer = random_batchnorm(x_shape[1], rng)
    check_layer_gradients(layer, rng.standard_normal(x_shape) * 2 + 0.5, rng, training=True)


@pytest.mark.parametrize("x_shape", [(3, 2, 3, 4), (4, 5)])
def test_batchnorm_frozen_backward_is_the_gradient_of_inference(x_shape, rng):
    layer = random_batchnorm(x_shape[1], rng)
    layer.frozen = True
    before = {name: array.copy() for name, array in layer.state.items()}
    check_layer_gradients(layer, rng.standard_normal(x_shape), rng, training=False)
    for name, array in layer.state.items():
        np.testing.assert_array_equal(array, before[name])


@pytest.mark.parametrize("kwargs, message", [
    ({"features": 0}, "features must be an int from 1 to 10000000, got 0"),
    ({"momentum": 1.5}, "momentum must be a number from 0 to 1, got 1.5"),
    ({"eps": 0}, "eps must be a number from 1e-10 to 1, got 0"),
    ({"eps": "small"}, "eps must be a number from 1e-10 to 1, got 'small'"),
])
def test_batchnorm_bad_arguments_raise_a_message_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BatchNorm(**{"features": 3, **kwargs})


def test_batchnorm_refuses_inputs_of_another_width_or_rank():
    with pytest.raises(ValueError, match="BatchNorm expects 3 channels, got 4"):
        BatchNorm(3).output_shape((4, 5, 5))
    with pytest.raises(ValueError, match="BatchNorm expects 3 features, got 2"):
        BatchNorm(3).output_shape((2,))
    with pytest.raises(ValueError, match=r"expects \(channels, height, width\) maps or \(features,\) vectors, got \(3, 4\)"):
        BatchNorm(3).output_shape((3, 4))


# ---- Dropout ---------------------------------------------------------------------------------
def dropout_loop(x, draws, rate):
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        out[idx] = x[idx] / (1 - rate) if draws[idx] >= rate else 0.0
    return out


@pytest.mark.parametrize("rate, x_shape", [(0.5, (3, 2, 4, 4)), (0.25, (5, 7)), (0.9, (2, 30))])
def test_dropout_zeroes_with_probability_rate_and_scales_the_rest_like_the_loop_reference(rate, x_shape, rng):
    layer = Dropout(rate)
    assert layer.uses_rng
    layer.rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape)
    out = layer.forward(x, training=True)
    draws = np.random.default_rng(11).random(x_shape)  # the same stream the layer drew from
    np.testing.assert_allclose(out, dropout_loop(x, draws, rate), rtol=1e-15, atol=0)
    np.testing.assert_array_equal(layer.backward(np.ones(x_shape)), dropout_loop(np.ones(x_shape), draws, rate))


def test_dropout_keeps_the_expected_value_and_is_the_identity_in_inference(rng):
    layer = Dropout(0.3)
    layer.rng = np.random.default_rng(0)
    x = np.ones((1000, 1000), dtype=np.float32)
    out = layer.forward(x, training=True)
    assert out.dtype == np.float32
    assert abs(float(out.mean(dtype=np.float64)) - 1) < 0.005  # 1e6 draws: the standard error is 0.0007
    assert abs(np.count_nonzero(out) / out.size - 0.7) < 0.003
    assert layer.forward(x, training=False) is x
    layer.frozen = True
    assert layer.forward(x, training=True) is x
    np.testing.assert_array_equal(layer.backward(x), x)
    assert Dropout(0).forward(x, training=True) is x


def test_dropout_backward_matches_numeric_gradient_with_the_same_draws(rng):
    layer = Dropout(0.4)

    def same_draws():
        layer.rng = np.random.default_rng(3)

    check_layer_gradients(layer, rng.standard_normal((3, 2, 4, 5)), rng, training=True, before=same_draws)


@pytest.mark.parametrize("rate, message", [(1.5, "rate must be a number from 0 to 0.9, got 1.5"),
                                           (-0.1, "rate must be a number from 0 to 0.9, got -0.1"),
                                           (0.95, "rate must be a number from 0 to 0.9, got 0.95"),
                                           ("0.5", "rate must be a number from 0 to 0.9, got '0.5'")])
def test_dropout_bad_rate_raises_a_message_naming_it(rate, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Dropout(rate)


# ---- AvgPool2D -------------------------------------------------------------------------------
def avgpool_loop(x, pool, stride):
    return pool_loop(x, pool, stride, lambda window: sum(window) / len(window))


@pytest.mark.parametrize("pool, stride, x_shape, expected", POOL_SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_avgpool_shapes_and_forward_match_loop_reference(pool, stride, x_shape, expected, training, rng):
    layer = AvgPool2D(pool, stride)
    x = rng.standard_normal(x_shape)
    out = layer.forward(x, training=training)
    assert out.shape == expected and layer.output_shape(x_shape[1:]) == expected[1:]
    np.testing.assert_allclose(out, avgpool_loop(x, pool, stride if stride else pool), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("pool, stride, x_shape", [
    (2, None, (2, 3, 7, 9)), (3, 2, (2, 2, 7, 8)), (2, 1, (2, 2, 5, 4)), (3, None, (1, 2, 10, 9)),
])
def test_avgpool_backward_matches_numeric_gradient(pool, stride, x_shape, rng):
    check_layer_gradients(AvgPool2D(pool, stride), rng.standard_normal(x_shape), rng)


def test_avgpool_spreads_the_gradient_evenly_and_sums_overlapping_windows():
    layer = AvgPool2D(2, stride=1)
    layer.forward(np.zeros((1, 1, 3, 3)))
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(dx[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


def test_avgpool_refuses_flat_or_too_small_input(rng):
    with pytest.raises(ValueError, match="AvgPool2D pool_size 3 is larger than its 2x5 input"):
        AvgPool2D(3).forward(rng.standard_normal((1, 1, 2, 5)))
    with pytest.raises(ValueError, match=r"AvgPool2D expects \(channels, height, width\) maps, got \(10,\)"):
        AvgPool2D(2).output_shape((10,))
    with pytest.raises(ValueError, match="stride must be an int from 1 to 4096, got 0"):
        AvgPool2D(2, stride=0)


# ---- LeakyReLU, Tanh, Sigmoid -----------------------------------------------------------------
def leaky_relu_loop(x, slope):
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        out[idx] = x[idx] if x[idx] > 0 else slope * x[idx]
    return out


def tanh_loop(x):
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        out[idx] = math.tanh(x[idx])
    return out


def sigmoid_loop(x):
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        v = float(x[idx])
        out[idx] = 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))
    return out


ACTIVATION_REFERENCES = {
    "LeakyReLU": (lambda: LeakyReLU(0.2), lambda x: leaky_relu_loop(x, 0.2)),
    "LeakyReLU default": (lambda: LeakyReLU(), lambda x: leaky_relu_loop(x, 0.01)),
    "Tanh": (Tanh, tanh_loop),
    "Sigmoid": (Sigmoid, sigmoid_loop),
}


@pytest.mark.parametrize("name", list(ACTIVATION_REFERENCES))
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 10)])
def test_activations_keep_shape_and_match_loop_reference(name, shape, rng):
    make, reference = ACTIVATION_REFERENCES[name]
    x = rng.standard_normal(shape) * 4
    out = make().forward(x)
    assert out.shape == shape
    np.testing.assert_allclose(out, reference(x), rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("name", list(ACTIVATION_REFERENCES))
def test_activations_backward_match_numeric_gradient(name, rng):
    x = rng.standard_normal((3, 2, 5, 4)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from LeakyReLU's kink at 0
    check_layer_gradients(ACTIVATION_REFERENCES[name][0](), x, rng)


def test_sigmoid_and_tanh_saturate_without_overflow_and_keep_float32():
    x = np.array([[-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sig = Sigmoid().forward(x)
        tanh = Tanh().forward(x)
    assert sig.dtype == np.float32 and tanh.dtype == np.float32
    np.testing.assert_array_equal(sig[0, [0, 3, 6]], [0.0, 0.5, 1.0])
    assert 0 < sig[0, 2] < 3e-9  # exp(-20): small but not cancelled to zero
    np.testing.assert_array_equal(tanh[0, [0, 3, 6]], [-1.0, 0.0, 1.0])


def test_leaky_relu_gradient_is_one_above_zero_and_the_slope_below():
    layer = LeakyReLU(0.1)
    out = layer.forward(np.array([[-2.0, 0.0, 3.0]]))
    np.testing.assert_allclose(out, [[-0.2, 0.0, 3.0]])
    np.testing.assert_allclose(layer.backward(np.array([[5.0, 5.0, 5.0]])), [[0.5, 0.5, 5.0]])
    with pytest.raises(ValueError, match=re.escape("negative_slope must be a number from 0 to 1, got 2")):
        LeakyReLU(2)


# ---- the layer contract ----------------------------------------------------------------------
@pytest.mark.parametrize("make, x_shape", [
    (lambda r: Conv2D(1, 2, 3, rng=r), (1, 1, 5, 5)),
    (lambda r: ReLU(), (1, 3)),
    (lambda r: MaxPool2D(2), (1, 1, 4, 4)),
    (lambda r: Flatten(), (1, 2, 2, 2)),
    (lambda r: Dense(3, 2, rng=r), (1, 3)),
    (lambda r: BatchNorm(2), (3, 2, 2, 2)),
    (lambda r: Dropout(0.5), (2, 3)),
    (lambda r: AvgPool2D(2), (1, 1, 4, 4)),
    (lambda r: LeakyReLU(), (1, 3)),
    (lambda r: Tanh(), (1, 3)),
    (lambda r: Sigmoid(), (1, 3)),
])
def test_inference_forward_keeps_no_cache_so_backward_refuses(make, x_shape, rng):
    layer = make(rng)
    out = layer.forward(rng.standard_normal(x_shape), training=False)
    with pytest.raises(RuntimeError, match="without forward"):
        layer.backward(np.ones_like(out))


def test_backward_overwrites_grads_instead_of_accumulating(rng):
    layer = Dense(3, 2, rng=rng)
    x = rng.standard_normal((4, 3))
    dout = rng.standard_normal((4, 2))
    layer.forward(x)
    layer.backward(dout)
    first = layer.grads["W"].copy()
    layer.forward(x)
    layer.backward(dout)
    np.testing.assert_array_equal(layer.grads["W"], first)


# ---- what a layer kind declares: specs, weight shapes, work -------------------------------------
def test_layer_specs_describe_every_kind_with_its_arguments_and_bounds():
    specs = pycnn.layer_specs()
    assert list(specs) == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "BatchNorm", "Dropout", "AvgPool2D",
                           "LeakyReLU", "Tanh", "Sigmoid"]
    assert {name: spec["summary_name"] for name, spec in specs.items()} == {
        "Conv2D": "conv2d", "ReLU": "re_lu", "MaxPool2D": "max_pool2d", "Flatten": "flatten", "Dense": "dense",
        "BatchNorm": "batch_normalization", "Dropout": "dropout", "AvgPool2D": "average_pooling2d",
        "LeakyReLU": "leaky_re_lu", "Tanh": "tanh", "Sigmoid": "sigmoid"}
    assert specs["Conv2D"]["args"] == {
        "in_channels": {"type": "int", "min": 1, "max": 10 ** 7}, "filters": {"type": "int", "min": 1, "max": 10 ** 7},
        "kernel_size": {"type": "int", "min": 1, "max": 4096},
        "stride": {"type": "int", "min": 1, "max": 4096, "default": 1},
        "padding": {"type": "padding", "choices": ["valid", "same"], "min": 0, "max": 4096, "default": "valid"}}
    for pool in ("MaxPool2D", "AvgPool2D"):
        assert specs[pool]["args"]["stride"] == {"type": "int", "min": 1, "max": 4096, "optional": True,
                                                 "default": None}
    assert specs["BatchNorm"]["args"] == {"features": {"type": "int", "min": 1, "max": 10 ** 7},
                                          "momentum": {"type": "float", "min": 0, "max": 1, "default": 0.1},
                                          "eps": {"type": "float", "min": 1e-10, "max": 1, "default": 1e-5}}
    assert specs["Dropout"]["args"] == {"rate": {"type": "float", "min": 0, "max": 0.9, "default": 0.5}}
    assert specs["LeakyReLU"]["args"] == {"negative_slope": {"type": "float", "min": 0, "max": 1, "default": 0.01}}
    for name in ("ReLU", "Flatten", "Tanh", "Sigmoid"):
        assert specs[name]["args"] == {}
    assert json.loads(json.dumps(specs)) == specs


@pytest.mark.parametrize("name", list(LAYERS))
def test_constructor_defaults_are_the_spec_defaults(name):
    cls = LAYERS[name]
    signature = inspect.signature(cls).parameters
    for arg, spec in cls.spec()["args"].items():
        default = signature[arg].default
        assert spec.get("default", inspect.Parameter.empty) == default, arg


@pytest.mark.parametrize("name, config", [
    ("Conv2D", {"in_channels": 3, "filters": 4, "kernel_size": 5, "padding": 2}),
    ("Dense", {"in_features": 7, "out_features": 2}),
    ("MaxPool2D", {"pool_size": 3}),
    ("ReLU", {}),
    ("BatchNorm", {"features": 6, "momentum": 0.2}),
    ("Dropout", {"rate": 0.25}),
    ("AvgPool2D", {"pool_size": 3, "stride": 1}),
    ("LeakyReLU", {"negative_slope": 0.3}),
    ("Tanh", {}),
    ("Sigmoid", {}),
])
def test_from_config_builds_without_weights_and_init_draws_them(name, config):
    layer = LAYERS[name].from_config(config)
    assert layer.params == {} and layer.state == {}
    layer.init(np.random.default_rng(0))
    assert {k: v.shape for k, v in layer.params.items()} == layer.weight_shapes()
    assert {k: v.shape for k, v in layer.state.items()} == layer.state_shapes()
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize("name, config, message", [
    ("Conv2D", {"in_channels": 1, "filters": 2}, "missing argument 'kernel_size'"),
    ("Conv2D", {"in_channels": 1, "filters": 2, "kernel_size": 3, "rng": 0}, "unexpected argument 'rng'"),
    ("Dense", {"in_features": 2, "out_features": 0}, "out_features must be an int from 1 to 10000000, got 0"),
    ("ReLU", {"x": 1}, r"unexpected argument 'x' \(takes no arguments\)"),
    ("MaxPool2D", {"pool_size": 2, "stride": 5000}, "stride must be an int from 1 to 4096, got 5000"),
])
def test_from_config_refuses_bad_arguments_naming_them(name, config, message):
    with pytest.raises(ValueError, match=message):
        LAYERS[name].from_config(config)


def test_work_counts_multiply_adds_and_the_padded_input():
    conv = Conv2D(2, 3, 3, padding="same")
    assert conv.work((2, 5, 5)) == 3 * 5 * 5 * 2 * 9  # every output: 2 * 9 products
    assert Conv2D(1, 1, 1, padding=10).work((1, 2, 2)) == 22 * 22  # 484 padded values, 484 products
    assert Conv2D(1, 1, 3, stride=3, padding=6).work((1, 3, 3)) == 15 * 15  # 25 products, 225 padded values
    assert Dense(20, 3).work((20,)) == 60
    assert MaxPool2D(2).work((2, 5, 5)) == 50
    assert MaxPool2D(3, stride=1).work((1, 4, 4)) == 4 * 9  # overlapping windows read values twice
    assert AvgPool2D(2).work((2, 5, 5)) == 50 and AvgPool2D(3, stride=1).work((1, 4, 4)) == 36
    assert BatchNorm(3).work((3, 4, 4)) == Dropout().work((3, 4, 4)) == Sigmoid().work((48,)) == 48
    assert BatchNorm(3).weight_shapes() == {"gamma": (3,), "beta": (3,)}
    assert BatchNorm(3).state_shapes() == {"running_mean": (3,), "running_var": (3,)}
    assert ReLU().work((3, 4, 4)) == Flatten().work((3, 4, 4)) == 48


# ---- adding a layer kind is one class ---------------------------------------------------------
class Scale(Layer):
    """Per-channel scale: y[:, c] = x[:, c] * W[c]. x: (N, C, H, W) -> same shape; W: (C,)."""

    summary_name = "scale"
    ARGS = {"channels": Int(1, 1000)}

    def __init__(self, channels, rng=None):
        self.set_config({"channels": channels})
        self.init(rng)

    def weight_shapes(self):
        return {"W": (self.channels,)}

    def init(self, rng=None):
        self.set_params({"W": np.random.default_rng(rng).uniform(0.5, 1.5, self.channels)})

    def output_shape(self, input_shape):
        if input_shape[0] != self.channels:
            raise ValueError(f"Scale expects {self.channels} channels, got {input_shape[0]}")
        return tuple(input_shape)

    def forward(self, x, training=True):
        self._cache = x if training else None
        return x * self.params["W"][:, None, None]

    def backward(self, dout, need_dx=True):
        x = self._cached()
        self.grads["W"] = (dout * x).sum(axis=(0, 2, 3))
        return dout * self.params["W"][:, None, None] if need_dx else None


@pytest.fixture
def scale_kind():
    pycnn.register(Scale)
    yield Scale
    del LAYERS["Scale"]


def scale_model(seed=0, dtype="float32"):
    return Sequential([Conv2D(1, 3, 3), Scale(3), ReLU(), MaxPool2D(2), Flatten(), Dense(3 * 3 * 3, 4)],
                      seed=seed, dtype=dtype, input_shape=(1, 8, 8))


def test_registered_layer_kind_has_a_spec_and_a_gradient_checked_backward(scale_kind, rng):
    assert pycnn.layer_specs()["Scale"] == {"summary_name": "scale", "args": {"channels": {"type": "int", "min": 1,
                                                                                            "max": 1000}}}
    check_layer_gradients(Scale(2, rng=1), rng.standard_normal((2, 2, 3, 4)), rng)


def test_registered_layer_kind_shows_in_summary_and_survives_save_and_load(scale_kind, rng):
    model = scale_model()
    text = model.summary()
    assert "scale (Scale)                (None, 3, 6, 6)           3" in text
    assert "Total params: 145" in text
    loaded = pycnn.from_bytes(model.to_bytes())
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    x = rng.random((5, 1, 8, 8))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    copy = Sequential.from_config(model.get_config(), seed=3)
    assert copy.get_config() == model.get_config()


@pytest.mark.parametrize("change, message", [
    (lambda c: c["layers"][1]["config"].update(channels=0), r"layer 1 \(Scale\): channels must be an int from 1 to 1000"),
    (lambda c: c["layers"][1]["config"].update(gain=2), r"layer 1 \(Scale\): unexpected argument 'gain'"),
    (lambda c: c["layers"][1]["config"].update(channels=4), r"layer 1 \(Scale\): Scale expects 4 channels, got 3"),
])
def test_loader_refuses_bad_configs_of_a_registered_layer_kind(scale_kind, change, message):
    data = scale_model().to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(files["config.json"])
    change(config)
    files["config.json"] = json.dumps(config).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    with pytest.raises(ValueError, match=message):
        pycnn.from_bytes(buf.getvalue())


def test_an_unregistered_kind_is_unknown_to_the_loader(rng):
    pycnn.register(Scale)
    data = scale_model().to_bytes()
    del LAYERS["Scale"]
    with pytest.raises(ValueError, match="layer 1 is not a known pycnn layer"):
        pycnn.from_bytes(data)


def test_register_refuses_what_is_not_a_layer_kind():
    with pytest.raises(ValueError, match="Layer subclass"):
        pycnn.register(dict)

    class Nameless(Layer):
        pass
    with pytest.raises(ValueError, match="summary_name"):
        pycnn.register(Nameless)

    class Conv2D(Layer):  # noqa: F811 - another class under a registered name
        summary_name = "conv"
    with pytest.raises(ValueError, match="already registered as 'Conv2D'"):
        pycnn.register(Conv2D)


# ---- softmax cross-entropy -------------------------------------------------------------------
def naive_cross_entropy(logits, y):
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return float(np.mean(-np.log(p[np.arange(len(y)), y])))


def test_softmax_cross_entropy_matches_the_naive_formula(rng):
    logits = rng.standard_normal((6, 10)) * 3
    y = rng.integers(0, 10, 6)
    loss, dlogits = softmax_cross_entropy(logits, y)
    assert loss == pytest.approx(naive_cross_entropy(logits, y), rel=1e-12)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(10)[y]
    np.testing.assert_allclose(dlogits, (p - onehot) / 6, rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 0.0], [-1e4, -1e4, -1e4]])
    y = np.array([1, 0, 2])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        loss, dlogits = softmax_cross_entropy(logits, y)
    # row losses: 1e4, log 2, log 3
    assert loss == pytest.approx((1e4 + np.log(2) + np.log(3)) / 3, rel=1e-12)
    assert np.all(np.isfinite(dlogits))
    np.testing.assert_allclose(dlogits * 3, [[1, -1, 0], [-0.5, 0.5, 0], [1 / 3, 1 / 3, -2 / 3]], atol=1e-12)
    probs = softmax(logits)
    assert np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1)


def test_softmax_cross_entropy_gradient_matches_numeric_gradient(rng):
    logits = rng.standard_normal((5, 7))
    y = rng.integers(0, 7, 5)
    _, dlogits = softmax_cross_entropy(logits, y)
    numeric = numeric_grad(lambda: softmax_cross_entropy(logits, y)[0], logits)
    assert max_rel_error(dlogits, numeric) < TOL


def test_softmax_cross_entropy_float32_stays_float32(rng):
    logits = rng.standard_normal((4, 10)).astype(np.float32)
    loss, dlogits = softmax_cross_entropy(logits, np.array([0, 1, 2, 3]))
    assert dlogits.dtype == np.float32 and isinstance(loss, float)
