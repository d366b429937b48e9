"""Layers and the loss: shapes, slow loop references, float64 finite-difference gradient
checks, what a layer kind declares, and adding one (the fused block: test_fused.py).

Relative error (max_rel_error below) is the global form
max|a - b| / max(1e-8, max|a| + max|b|); every check must be below 1e-6.
"""
import inspect
import io
import json
import zipfile

import numpy as np
import pytest

import pycnn
from pycnn import LAYERS, Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Sequential, softmax, softmax_cross_entropy
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


def maxpool_loop(x, pool, stride):
    n, c, h, w = x.shape
    out_h, out_w = (h - pool) // stride + 1, (w - pool) // stride + 1
    out = np.zeros((n, c, out_h, out_w))
    for i in range(n):
        for ch in range(c):
            for r in range(out_h):
                for q in range(out_w):
                    best = -np.inf
                    for di in range(pool):
                        for dj in range(pool):
                            best = max(best, x[i, ch, r * stride + di, q * stride + dj])
                    out[i, ch, r, q] = best
    return out


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
def check_layer_gradients(layer, x, rng):
    """Analytic dx and param grads vs central differences of L = sum(forward(x) * dout)."""
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    analytic = {"x": dx, **{name: g.copy() for name, g in layer.grads.items()}}

    def loss():
        return float(np.sum(layer.forward(x, training=False) * dout))

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


# ---- the layer contract ----------------------------------------------------------------------
@pytest.mark.parametrize("make, x_shape", [
    (lambda r: Conv2D(1, 2, 3, rng=r), (1, 1, 5, 5)),
    (lambda r: ReLU(), (1, 3)),
    (lambda r: MaxPool2D(2), (1, 1, 4, 4)),
    (lambda r: Flatten(), (1, 2, 2, 2)),
    (lambda r: Dense(3, 2, rng=r), (1, 3)),
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
    assert list(specs) == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"]
    assert {name: spec["summary_name"] for name, spec in specs.items()} == {
        "Conv2D": "conv2d", "ReLU": "re_lu", "MaxPool2D": "max_pool2d", "Flatten": "flatten", "Dense": "dense"}
    assert specs["Conv2D"]["args"] == {
        "in_channels": {"type": "int", "min": 1, "max": 10 ** 7}, "filters": {"type": "int", "min": 1, "max": 10 ** 7},
        "kernel_size": {"type": "int", "min": 1, "max": 4096},
        "stride": {"type": "int", "min": 1, "max": 4096, "default": 1},
        "padding": {"type": "padding", "choices": ["valid", "same"], "min": 0, "max": 4096, "default": "valid"}}
    assert specs["MaxPool2D"]["args"]["stride"] == {"type": "int", "min": 1, "max": 4096, "optional": True,
                                                    "default": None}
    assert specs["ReLU"]["args"] == {} and specs["Flatten"]["args"] == {}
    assert json.loads(json.dumps(specs)) == specs


@pytest.mark.parametrize("name", ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"])
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
])
def test_from_config_builds_without_weights_and_init_draws_them(name, config):
    layer = LAYERS[name].from_config(config)
    assert layer.params == {}
    layer.init(np.random.default_rng(0))
    assert {k: v.shape for k, v in layer.params.items()} == layer.weight_shapes()
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
