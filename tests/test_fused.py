"""The fused conv + 2x2 max-pool + ReLU block against the plain layers and finite differences,
on every kernel variant (the ops CPython uses and the ones Pyodide uses), at any depth."""
import dataclasses

import numpy as np
import pytest

from pycnn import Adam, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, preset, softmax_cross_entropy
from pycnn import fused
from pycnn.fused import ConvPoolReLU
from test_layers import TOL, conv_loop, max_rel_error, maxpool_loop, numeric_grad, relu_loop


# the kernel variants: CPython's, Pyodide's (einsum, np.where, Winograd from 4 channels), and
# Pyodide's with Winograd for every 3x3 kernel, so the small cases here reach it too
VARIANTS = {"cpython": fused.CPYTHON_KERNELS, "pyodide": fused.PYODIDE_KERNELS,
            "winograd": dataclasses.replace(fused.PYODIDE_KERNELS, winograd_channels=1)}


@pytest.fixture(params=list(VARIANTS))
def kernels(request, monkeypatch):
    """Every block built in the test uses this variant (fused.KERNELS is read at each call)."""
    monkeypatch.setattr(fused, "KERNELS", VARIANTS[request.param])
    return VARIANTS[request.param]


@pytest.mark.parametrize("padding, x_shape, k", [
    ("valid", (2, 2, 9, 9), 3), ("same", (3, 2, 7, 8), 3), (1, (2, 2, 6, 7), 3),
    ("same", (2, 2, 7, 9), 4), ("valid", (1, 2, 6, 5), 1), ("valid", (2, 2, 11, 10), 5), ("same", (1, 2, 3, 3), 2),
])
def test_fused_block_forward_matches_loop_reference(padding, x_shape, k, rng, kernels):
    conv = Conv2D(2, 3, k, padding=padding, rng=rng)
    conv.params["b"] = rng.standard_normal(3)
    x = rng.standard_normal(x_shape)
    expected = maxpool_loop(relu_loop(conv_loop(x, conv.params["W"], conv.params["b"], 1, padding)), 2, 2)
    for training in (True, False):
        np.testing.assert_allclose(ConvPoolReLU(conv).forward(x, training), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding, x_shape, k", [
    ("valid", (2, 2, 9, 9), 3), ("same", (3, 2, 7, 8), 3), (2, (2, 1, 5, 6), 3), ("same", (2, 2, 7, 6), 4),
    ("valid", (2, 1, 5, 7), 1),
])
def test_fused_block_backward_matches_numeric_gradient(padding, x_shape, k, rng, kernels):
    conv = Conv2D(x_shape[1], 3, k, padding=padding, rng=rng)
    conv.params["b"] = rng.standard_normal(3) * 0.1
    block = ConvPoolReLU(conv)
    x = rng.standard_normal(x_shape)
    out = block.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = block.backward(dout, need_dx=True)
    analytic = {"x": dx, "W": conv.grads["W"].copy(), "b": conv.grads["b"].copy()}

    def loss():
        return float(np.sum(block.forward(x, training=False) * dout))

    numeric = {"x": numeric_grad(loss, x), "W": numeric_grad(loss, conv.params["W"]),
               "b": numeric_grad(loss, conv.params["b"])}
    for name in analytic:
        assert max_rel_error(analytic[name], numeric[name]) < TOL, name


def _plan_names(model):
    return [type(step).__name__ for step in model._plan]


def _stack(kind, padding="valid"):
    """Small float64 models; 'late' puts the fused block after an unfused stride-2 conv."""
    if kind == "first_relu_then_pool":
        layers = [Conv2D(2, 3, 3, padding=padding), ReLU(), MaxPool2D(2), Flatten()]
        shape = (2, 9, 9)
    elif kind == "first_pool_then_relu":
        layers = [Conv2D(2, 3, 3, padding=padding), MaxPool2D(2), ReLU(), Flatten()]
        shape = (2, 9, 9)
    else:  # late
        layers = [Conv2D(1, 2, 3, stride=2, padding="same"), ReLU(),
                  Conv2D(2, 3, 3, padding=padding), ReLU(), MaxPool2D(2), Flatten()]
        shape = (1, 13, 11)
    probe = Sequential(list(layers), input_shape=shape, dtype="float64")
    features = probe.output_shapes()[-1][0]
    model = Sequential(layers + [Dense(features, 4)], seed=0, dtype="float64", input_shape=shape)
    # non-zero biases so the bias-after-max shortcut of the fused block is exercised
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.standard_normal(layer.params["b"].shape) * 0.1
    return model


@pytest.mark.parametrize("kind, expected_plan", [
    ("first_relu_then_pool", ["ConvPoolReLU", "Flatten", "Dense"]),
    ("first_pool_then_relu", ["ConvPoolReLU", "Flatten", "Dense"]),
    ("late", ["Conv2D", "ReLU", "ConvPoolReLU", "Flatten", "Dense"]),
])
def test_sequential_fuses_conv_relu_pool_blocks(kind, expected_plan):
    assert _plan_names(_stack(kind)) == expected_plan


def test_sequential_does_not_fuse_strided_conv_or_other_pools():
    model = Sequential([Conv2D(1, 2, 3, stride=2), ReLU(), MaxPool2D(2), Conv2D(2, 2, 1), ReLU(),
                        MaxPool2D(3), Flatten(), Dense(2, 2)], input_shape=(1, 13, 13))
    assert "ConvPoolReLU" not in _plan_names(model)


@pytest.mark.parametrize("padding", ["valid", "same", 1])
@pytest.mark.parametrize("kind", ["first_relu_then_pool", "first_pool_then_relu", "late"])
def test_fused_and_unfused_models_agree_on_outputs_and_gradients(kind, padding, rng, kernels):
    model = _stack(kind, padding)
    assert "ConvPoolReLU" in _plan_names(model)
    x = rng.standard_normal((3, *model.input_shape))
    y = rng.integers(0, 4, 3)
    fused_out = model.forward(x)
    fused_loss, fused_grads = model.compute_gradients(x, y)
    fused_proba = model.predict_proba(x)

    model._plan = list(model.layers)  # the plain layer-by-layer path
    plain_out = model.forward(x)
    plain_loss, plain_grads = model.compute_gradients(x, y)
    # "identical" up to float64 round-off: the two paths sum the conv products in different orders
    np.testing.assert_allclose(fused_out, plain_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(model.predict_proba(x), fused_proba, rtol=1e-12, atol=1e-13)
    assert fused_loss == pytest.approx(plain_loss, rel=1e-12)
    assert len(fused_grads) == len(plain_grads) == len(model.get_weights())
    for fused_grad, plain_grad in zip(fused_grads, plain_grads):
        np.testing.assert_allclose(fused_grad, plain_grad, rtol=1e-10, atol=1e-13)


def test_fused_float32_matches_unfused_float32_seed_model(rng, kernels):
    from pycnn import seed_model

    model = seed_model(seed=2)
    assert _plan_names(model) == ["ConvPoolReLU", "Flatten", "Dense"]
    x = rng.random((16, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    fused = model.predict_proba(x)
    _, fused_grads = model.compute_gradients(x, y)
    model._plan = list(model.layers)
    np.testing.assert_allclose(model.predict_proba(x), fused, rtol=1e-4, atol=1e-6)
    for a, b in zip(model.compute_gradients(x, y)[1], fused_grads):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)


# ---- whole-model gradient check --------------------------------------------------------------
@pytest.mark.parametrize("kind, padding", [
    ("first_relu_then_pool", "valid"), ("first_pool_then_relu", "same"), ("late", "same"), ("late", 1),
])
@pytest.mark.parametrize("fused", [True, False])
def test_model_gradients_match_numeric_gradient_of_the_loss(kind, padding, fused, rng):
    model = _stack(kind, padding)
    if not fused:
        model._plan = list(model.layers)
    x = rng.standard_normal((3, *model.input_shape))
    y = rng.integers(0, 4, 3)
    loss, grads = model.compute_gradients(x, y)
    assert loss == pytest.approx(softmax_cross_entropy(model.forward(x), y)[0], rel=1e-12)
    slots = [layer.params[name] for layer in model.layers for name in layer.params]
    assert [g.shape for g in grads] == [w.shape for w in model.get_weights()]

    def mean_loss():
        return softmax_cross_entropy(model.forward(x), y)[0]

    for grad, param in zip(grads, slots):
        err = max_rel_error(grad, numeric_grad(mean_loss, param))
        assert err < TOL, f"relative error {err:.2e} for a {param.shape} weight"


# ---- the block anywhere in a network ----------------------------------------------------------
def test_the_block_owns_its_conv_and_shares_its_weights_and_grads():
    conv = Conv2D(2, 3, 3, rng=0)
    block = ConvPoolReLU(conv)
    assert block.params is conv.params and block.grads is conv.grads
    conv.cast(np.float32)  # casting (as Sequential does) keeps the dicts shared
    assert block.params is conv.params and block.params["W"].dtype == np.float32
    with pytest.raises(ValueError, match="stride 1"):
        ConvPoolReLU(Conv2D(2, 3, 3, stride=2))


def test_a_test_can_give_a_block_its_kernel_variant(rng):
    conv = Conv2D(4, 3, 3, rng=rng)
    x = rng.standard_normal((2, 4, 9, 9))
    outs = [ConvPoolReLU(conv, kernels=k).forward(x) for k in VARIANTS.values()]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_ch, filters, k, padding, x_shape", [
    (1, 4, 3, "valid", (3, 1, 12, 12)),
    (5, 6, 3, "valid", (2, 5, 13, 13)),    # odd conv output: the pool drops the last row and column
    (4, 3, 3, "same", (1, 4, 9, 11)),
    (6, 2, 3, 1, (4, 6, 8, 7)),
    (3, 4, 5, "same", (2, 3, 10, 9)),
    (6, 5, 5, "valid", (3, 6, 14, 14)),
    (4, 3, 3, 2, (1, 4, 5, 5)),
    (8, 2, 2, "valid", (2, 8, 7, 6)),
    (2, 3, 3, "valid", (7, 2, 4, 4)),      # a 2x2 conv output: one pool window
])
def test_block_matches_the_plain_layers_forward_weight_grads_and_dx(in_ch, filters, k, padding, x_shape, rng,
                                                                   kernels):
    conv = Conv2D(in_ch, filters, k, padding=padding, rng=rng)
    conv.params["b"] = rng.standard_normal(filters) * 0.1
    x = rng.standard_normal(x_shape)
    layers = [conv, ReLU(), MaxPool2D(2)]
    expected = x
    for layer in layers:
        expected = layer.forward(expected, training=True)
    dout = rng.standard_normal(expected.shape)
    d = dout
    for layer in reversed(layers):
        d = layer.backward(d)
    plain = {"x": d, "W": conv.grads["W"].copy(), "b": conv.grads["b"].copy()}
    block = ConvPoolReLU(conv)
    for _ in range(2):  # the second step reuses the block's buffers
        out = block.forward(x, training=True)
        dx = block.backward(dout)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    for name, got in {"x": dx, "W": block.grads["W"], "b": block.grads["b"]}.items():
        np.testing.assert_allclose(got, plain[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert block.backward(dout, need_dx=False) is None


@pytest.mark.parametrize("batch", [1, 5, 32])
def test_float32_deep_block_matches_the_plain_layers(batch, rng, kernels):
    model = preset("two-conv", seed=3)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    out = model.forward(x)
    _, grads = model.compute_gradients(x, y)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    model._plan = list(model.layers)
    np.testing.assert_allclose(model.forward(x), out, rtol=1e-4, atol=1e-5)
    for a, b in zip(model.compute_gradients(x, y)[1], grads):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5 * np.abs(a).max())


def _deep_stack():
    """conv 5x5 same -> relu -> pool -> conv 5x5 same -> relu -> pool -> flatten -> dense -> relu -> dense."""
    layers = [Conv2D(2, 4, 5, padding="same"), ReLU(), MaxPool2D(2), Conv2D(4, 5, 5, padding="same"), MaxPool2D(2),
              ReLU(), Flatten(), Dense(5 * 3 * 3, 7), ReLU(), Dense(7, 3)]
    model = Sequential(layers, seed=1, dtype="float64", input_shape=(2, 13, 12))
    rng = np.random.default_rng(9)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.standard_normal(layer.params["b"].shape) * 0.1
    return model


def _check_model_gradients(model, x, y, per_array=None, seed=0):
    """Every weight gradient (or per_array random entries of each) against central differences."""
    _, grads = model.compute_gradients(x, y)
    pick = np.random.default_rng(seed)

    def mean_loss():
        return softmax_cross_entropy(model.forward(x), y)[0]

    slots = [layer.params[name] for layer in model.layers for name in layer.params]
    for grad, param in zip(grads, slots):
        flat = param.reshape(-1)
        entries = range(flat.size) if per_array is None or flat.size <= per_array else \
            pick.choice(flat.size, per_array, replace=False)
        numeric, analytic = [], []
        for i in entries:
            old = flat[i]
            flat[i] = old + 1e-6
            plus = mean_loss()
            flat[i] = old - 1e-6
            minus = mean_loss()
            flat[i] = old
            numeric.append((plus - minus) / 2e-6)
            analytic.append(grad.reshape(-1)[i])
        err = max_rel_error(analytic, numeric)
        assert err < TOL, f"relative error {err:.2e} for a {param.shape} weight"


def test_deep_stack_with_same_padding_and_5x5_kernels_matches_numeric_gradients(rng, kernels):
    model = _deep_stack()
    assert [type(s).__name__ for s in model._plan] == ["ConvPoolReLU", "ConvPoolReLU", "Flatten", "Dense", "ReLU",
                                                       "Dense"]
    x = rng.standard_normal((3, 2, 13, 12))
    _check_model_gradients(model, x, rng.integers(0, 3, 3))


@pytest.mark.parametrize("name", ["two-conv", "lenet"])
def test_deep_presets_match_numeric_gradients(name, rng, kernels):
    model = preset(name, seed=0, dtype="float64")
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.standard_normal(layer.params["b"].shape) * 0.05
    x = rng.random((2, 1, 28, 28))
    _check_model_gradients(model, x, np.array([3, 7]), per_array=25)


def test_tiny_deep_model_overfits_32_samples(subset, kernels):
    x, y = subset
    idx = np.random.default_rng(0).permutation(len(x))[:32]
    model = Sequential([Conv2D(1, 4, 3), ReLU(), MaxPool2D(2), Conv2D(4, 8, 3), ReLU(), MaxPool2D(2), Flatten(),
                        Dense(8 * 5 * 5, 16), ReLU(), Dense(16, 10)], seed=0, input_shape=(1, 28, 28))
    assert [type(s).__name__ for s in model._plan][:2] == ["ConvPoolReLU", "ConvPoolReLU"]
    model.fit(x[idx], y[idx], epochs=60, batch_size=8, optimizer=Adam(3e-3))
    assert model.evaluate(x[idx], y[idx])["accuracy"] == 1.0


# ---- conv + BatchNorm + ReLU + pool --------------------------------------------------------------
def _norm_stack(padding="same", order="relu_then_pool", shape=(2, 8, 10), dtype="float64", seed=0):
    """conv -> BatchNorm -> ReLU/pool (either order) -> conv -> BatchNorm -> ReLU -> pool -> Dense, with weights,
    biases and running statistics away from their starting values; a 'same' first conv keeps its map even."""
    from pycnn import BatchNorm

    tail = [ReLU(), MaxPool2D(2)] if order == "relu_then_pool" else [MaxPool2D(2), ReLU()]
    layers = [Conv2D(shape[0], 3, 3, padding=padding), BatchNorm(3), *tail,
              Conv2D(3, 4, 3, padding="same"), BatchNorm(4), ReLU(), MaxPool2D(2), Flatten()]
    probe = Sequential(list(layers), input_shape=shape, dtype=dtype)
    model = Sequential(layers + [Dense(probe.output_shapes()[-1][0], 5)], seed=seed, dtype=dtype, input_shape=shape)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        for name in ("b", "beta", "running_mean"):
            if name in layer.params or name in layer.state:
                arrays = layer.params if name in layer.params else layer.state
                arrays[name] = (rng.standard_normal(arrays[name].shape) * 0.3).astype(dtype)
        if "gamma" in layer.params:  # one negative gamma: the pool's winner is then the smallest conv value
            layer.params["gamma"] = rng.uniform(0.5, 1.5, layer.params["gamma"].shape) * np.where(
                np.arange(layer.params["gamma"].size) == 1, -1, 1)
            layer.state["running_var"] = rng.uniform(0.5, 2, layer.state["running_var"].shape).astype(dtype)
    return model


def _states(model):
    return [array.copy() for layer in model.layers for array in layer.state.values()]


@pytest.mark.parametrize("order", ["relu_then_pool", "pool_then_relu"])
def test_sequential_fuses_conv_batchnorm_relu_pool_blocks(order):
    assert _plan_names(_norm_stack(order=order)) == ["ConvPoolReLU", "ConvPoolReLU", "Flatten", "Dense"]
    from pycnn import AvgPool2D, BatchNorm, LeakyReLU

    unfused = Sequential([Conv2D(1, 2, 3), BatchNorm(2), LeakyReLU(), AvgPool2D(2), Flatten(), Dense(2 * 13 * 13, 3)],
                         input_shape=(1, 28, 28))
    assert _plan_names(unfused)[:4] == ["Conv2D", "BatchNorm", "LeakyReLU", "AvgPool2D"]


@pytest.mark.parametrize("padding, shape", [("same", (2, 8, 10)),   # even conv maps
                                            ("valid", (2, 9, 11)),  # a 7x9 map: a last row and column apart
                                            (1, (1, 6, 7))])        # a 6x7 map: a last column apart
@pytest.mark.parametrize("order", ["relu_then_pool", "pool_then_relu"])
def test_fused_batchnorm_blocks_match_the_plain_layers_in_training_and_inference(padding, shape, order, rng, kernels):
    model = _norm_stack(padding, order, shape)
    x = rng.standard_normal((4, *shape))
    y = rng.integers(0, 5, 4)
    start = model.get_weights()
    fused_out = model.forward(x, training=True)
    fused_loss, fused_grads = model.compute_gradients(x, y)
    fused_state = _states(model)
    fused_proba = model.predict_proba(x)

    model.set_weights(start)
    model._plan = list(model.layers)  # the plain layer-by-layer path
    np.testing.assert_allclose(model.forward(x, training=True), fused_out, rtol=1e-11, atol=1e-12)
    plain_loss, plain_grads = model.compute_gradients(x, y)
    assert fused_loss == pytest.approx(plain_loss, rel=1e-11)
    for fused_grad, plain_grad in zip(fused_grads, plain_grads):
        np.testing.assert_allclose(fused_grad, plain_grad, rtol=1e-9, atol=1e-11)
    for a, b in zip(fused_state, _states(model)):  # the running statistics moved the same way
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(model.predict_proba(x), fused_proba, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("order", ["relu_then_pool", "pool_then_relu"])
def test_fused_batchnorm_block_matches_the_loop_reference_in_training(order, rng, kernels):
    from pycnn import BatchNorm
    from test_layers import batchnorm_loop

    for padding, x_shape in (("same", (3, 2, 6, 8)), ("valid", (3, 2, 9, 8))):  # conv maps 6x8, 7x6 (odd)
        conv, norm = Conv2D(2, 3, 3, padding=padding, rng=rng), BatchNorm(3)
        conv.params["b"] = rng.standard_normal(3)
        norm.params["gamma"], norm.params["beta"] = np.array([1.2, -0.7, 0.4]), rng.standard_normal(3)
        x = rng.standard_normal(x_shape)
        normalised = batchnorm_loop(conv_loop(x, conv.params["W"], conv.params["b"], 1, padding),
                                    norm.params["gamma"], norm.params["beta"], norm.eps)
        np.testing.assert_allclose(ConvPoolReLU(conv, norm=norm).forward(x, training=True),
                                   maxpool_loop(relu_loop(normalised), 2, 2), rtol=1e-11, atol=1e-12)
        axes = (0, 2, 3)  # the state moved by the statistics of every conv cell, the dropped row too
        conv_out = conv_loop(x, conv.params["W"], conv.params["b"], 1, padding)
        np.testing.assert_allclose(norm.statistics["mean"], conv_out.mean(axis=axes), rtol=1e-12)
        np.testing.assert_allclose(norm.statistics["var"], conv_out.var(axis=axes, ddof=1), rtol=1e-11)


def _normalised_biases(model):
    """Which weights are the bias of a conv a BatchNorm follows: the batch mean takes it away, its gradient is 0."""
    return [isinstance(layer, Conv2D) and name == "b" and type(after).__name__ == "BatchNorm"
            for layer, after in zip(model.layers, model.layers[1:] + [None]) for name in layer.params]


def _check_training_gradients(model, x, y):
    """Every weight gradient against central differences of the training loss (BatchNorm: batch statistics)."""
    _, grads = model.compute_gradients(x, y)
    slots = [layer.params[name] for layer in model.layers for name in layer.params]

    def mean_loss():
        return softmax_cross_entropy(model.forward(x, training=True), y)[0]

    for grad, param, zero in zip(grads, slots, _normalised_biases(model)):
        numeric = numeric_grad(mean_loss, param)
        if zero:  # both are rounding: float64's in the sums, and the differences' (loss ~1, step 1e-6)
            assert np.abs(grad).max() < 1e-12 and np.abs(numeric).max() < 1e-8
            continue
        err = max_rel_error(grad, numeric)
        assert err < TOL, f"relative error {err:.2e} for a {param.shape} weight"


@pytest.mark.parametrize("padding, shape", [("same", (1, 6, 8)), ("valid", (1, 7, 9)), (1, (1, 5, 6))])
@pytest.mark.parametrize("order", ["relu_then_pool", "pool_then_relu"])
def test_fused_batchnorm_model_gradients_match_numeric_gradients_of_the_training_loss(order, padding, shape, rng,
                                                                                     kernels):
    model = _norm_stack(padding, order, shape)  # valid 7x9: a 5x7 map; padding 1 on 5x6: 5x6, an odd height
    assert _plan_names(model)[:2] == ["ConvPoolReLU", "ConvPoolReLU"]
    _check_training_gradients(model, rng.standard_normal((3, *shape)), rng.integers(0, 5, 3))


def test_fused_batchnorm_inference_folds_into_the_conv_and_frozen_runs_the_plain_layers(rng, kernels):
    model = _norm_stack()
    x = rng.standard_normal((5, *model.input_shape))
    fused = model.forward(x)
    before = _states(model)
    with model.frozen():
        frozen = model.forward(x, training=True)
        dx = model.backward(np.ones((5, 5)), input_gradient=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, _states(model)))
    model._plan = list(model.layers)
    np.testing.assert_allclose(model.forward(x), fused, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(frozen, fused, rtol=1e-11, atol=1e-12)
    with model.frozen():
        model.forward(x, training=True)
        np.testing.assert_allclose(model.backward(np.ones((5, 5)), input_gradient=True), dx, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("padding", ["same", "valid"])  # valid: the page's network, its second map 11x11
def test_float32_batchnorm_preset_like_network_matches_the_plain_layers(padding, rng, kernels):
    from pycnn import BatchNorm

    side = 7 if padding == "same" else 5
    model = Sequential([Conv2D(1, 16, 3, padding=padding), BatchNorm(16), ReLU(), MaxPool2D(2),
                        Conv2D(16, 32, 3, padding=padding), BatchNorm(32), ReLU(), MaxPool2D(2), Flatten(),
                        Dense(32 * side * side, 10)], seed=3, input_shape=(1, 28, 28))
    assert _plan_names(model)[:2] == ["ConvPoolReLU", "ConvPoolReLU"]
    x = rng.random((16, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    start = model.get_weights()
    _, grads = model.compute_gradients(x, y)
    state = _states(model)
    model.set_weights(start)
    model._plan = list(model.layers)
    _, plain = model.compute_gradients(x, y)
    for a, b, zero in zip(grads, plain, _normalised_biases(model)):
        if zero:  # 0 but for float32 rounding, next to weight gradients of order 1e-2
            assert max(np.abs(a).max(), np.abs(b).max()) < 1e-5
            continue
        # float32: sums in other orders, through the batch statistics
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max())
    for a, b in zip(state, _states(model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---- other activations in the block: LeakyReLU, Tanh, Sigmoid ----------------------------------------
def _activation(name):
    from pycnn import LeakyReLU, Sigmoid, Tanh

    return {"leaky": lambda: LeakyReLU(0.2), "flat-leaky": lambda: LeakyReLU(0.0), "tanh": Tanh,
            "sigmoid": Sigmoid}[name]()


def _activation_stack(name, order, norm, padding="valid", shape=(2, 9, 10)):
    from pycnn import BatchNorm

    def block(c_in, c_out):
        act, pool = _activation(name), MaxPool2D(2)
        return [Conv2D(c_in, c_out, 3, padding=padding), *([BatchNorm(c_out)] if norm else []),
                *((act, pool) if order == "act_then_pool" else (pool, act))]

    layers = [*block(shape[0], 3), *block(3, 4), Flatten()]
    probe = Sequential(list(layers), input_shape=shape, dtype="float64")
    model = Sequential(layers + [Dense(probe.output_shapes()[-1][0], 5)], seed=2, dtype="float64", input_shape=shape)
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.standard_normal(layer.params["b"].shape) * 0.3
    return model


ACTIVATION_CASES = [(name, order, norm) for name in ("leaky", "flat-leaky", "tanh", "sigmoid")
                    for order in ("act_then_pool", "pool_then_act") for norm in (False, True)]


@pytest.mark.parametrize("name, order, norm", ACTIVATION_CASES)
def test_blocks_with_other_activations_are_fused_and_match_the_plain_layers(name, order, norm, rng, kernels):
    model = _activation_stack(name, order, norm, padding="same", shape=(2, 8, 11))  # an odd width: edge cells
    assert _plan_names(model)[:2] == ["ConvPoolReLU", "ConvPoolReLU"]
    x = rng.standard_normal((4, *model.input_shape))
    y = rng.integers(0, 5, 4)
    start = model.get_weights()
    fused_out = model.forward(x, training=True)
    _, fused_grads = model.compute_gradients(x, y)
    fused_proba = model.predict_proba(x)
    model.set_weights(start)
    model._plan = list(model.layers)
    np.testing.assert_allclose(model.forward(x, training=True), fused_out, rtol=1e-11, atol=1e-12)
    _, plain_grads = model.compute_gradients(x, y)
    for a, b, zero in zip(fused_grads, plain_grads, _normalised_biases(model)):
        if not zero:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(model.predict_proba(x), fused_proba, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name, order, norm", [case for case in ACTIVATION_CASES if case[0] != "flat-leaky"])
def test_blocks_with_other_activations_match_numeric_gradients(name, order, norm, rng, kernels):
    model = _activation_stack(name, order, norm, shape=(1, 10, 11))  # an 8x9 conv map: an odd width
    x = rng.standard_normal((3, 1, 10, 11))
    y = rng.integers(0, 5, 3)
    if norm:
        _check_training_gradients(model, x, y)
    else:
        _check_model_gradients(model, x, y)


def test_a_block_refuses_an_activation_that_is_not_one_it_knows():
    with pytest.raises(ValueError, match="activation must be one of ReLU, LeakyReLU, Tanh, Sigmoid, got Dense"):
        ConvPoolReLU(Conv2D(1, 2, 3), activation=Dense(2, 2))
