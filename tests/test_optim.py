"""Optimisers: Adam and SGD steps against values worked out by hand, state across steps,
and argument validation."""
import math

import numpy as np
import pytest

from pycnn import SGD, Adam, Dense, Layer, ReLU


def weights(values, grads):
    """One layer holding a single weight array W with the given gradient."""
    layer = Layer()
    layer.params = {"W": np.array(values, dtype=np.float64)}
    layer.grads = {"W": np.array(grads, dtype=np.float64)}
    return layer


# ---- Adam ------------------------------------------------------------------------------------
# lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8; p0 = [1, -2]; g1 = [0.5, -1]; g2 = [0.1, 0.3]
# step 1: m = 0.1 g1 = [0.05, -0.1]        v = 0.001 g1^2 = [0.00025, 0.001]
#         m_hat = m / 0.1 = [0.5, -1]       v_hat = v / 0.001 = [0.25, 1]
#         p1 = p0 - 0.1 * m_hat / (sqrt(v_hat) + 1e-8) = [0.900000002, -1.900000001]
# step 2: m = 0.9 m + 0.1 g2 = [0.055, -0.06]
#         v = 0.999 v + 0.001 g2^2 = [0.00025975, 0.001089]
#         m_hat = m / (1 - 0.9^2) = m / 0.19 = [0.28947368421052632, -0.31578947368421053]
#         v_hat = v / (1 - 0.999^2) = v / 0.001999 = [0.12993996998499250, 0.54477238619309655]
#         p2 = p1 - 0.1 * m_hat / (sqrt(v_hat) + 1e-8) = [0.81969590638465, -1.85721514242923]
ADAM_P1 = [0.900000002, -1.900000001]
ADAM_M1, ADAM_V1 = [0.05, -0.1], [0.00025, 0.001]
ADAM_P2 = [0.81969590638465, -1.85721514242923]
ADAM_M2, ADAM_V2 = [0.055, -0.06], [0.00025975, 0.001089]


def test_adam_first_step_matches_hand_computed_value():
    layer = weights([1.0, -2.0], [0.5, -1.0])
    opt = Adam(lr=0.1)
    opt.step([layer])
    np.testing.assert_allclose(layer.params["W"], ADAM_P1, rtol=1e-13)
    assert opt.t == 1


def test_adam_second_step_uses_carried_moments_and_bias_correction():
    layer = weights([1.0, -2.0], [0.5, -1.0])
    opt = Adam(lr=0.1)
    opt.step([layer])
    m, v = (a.copy() for a in opt.state["0.W"][:2])
    np.testing.assert_allclose(m, ADAM_M1, rtol=1e-13)
    np.testing.assert_allclose(v, ADAM_V1, rtol=1e-13)
    layer.grads["W"] = np.array([0.1, 0.3])
    opt.step([layer])
    assert opt.t == 2
    np.testing.assert_allclose(opt.state["0.W"][0], ADAM_M2, rtol=1e-13)
    np.testing.assert_allclose(opt.state["0.W"][1], ADAM_V2, rtol=1e-13)
    np.testing.assert_allclose(layer.params["W"], ADAM_P2, rtol=1e-12)


def test_adam_state_persists_and_counts_every_step():
    layer = weights([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    opt = Adam(lr=1e-3)
    for t in range(1, 6):
        opt.step([layer])
        assert opt.t == t
    # with a constant gradient g = 1 the moments are 1 - beta^t (zero-initialised EMAs)
    m, v = opt.state["0.W"][:2]
    np.testing.assert_allclose(m, 1 - 0.9 ** 5, rtol=1e-12)
    np.testing.assert_allclose(v, 1 - 0.999 ** 5, rtol=1e-12)
    # and the bias-corrected step is exactly lr every time: 5 steps of 1e-3
    np.testing.assert_allclose(layer.params["W"], -5e-3, rtol=1e-6)


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_adam_first_step_size_is_lr_whatever_the_gradient_scale(scale):
    # bias correction divides by (1 - beta^t); multiplying instead (the convnetjs bug) gives ~3e-6 * lr
    layer = weights([0.0, 0.0], [scale, -scale])
    Adam(lr=0.01).step([layer])
    np.testing.assert_allclose(layer.params["W"], [-0.01, 0.01], rtol=1e-3)


def test_adam_zero_gradient_leaves_weights_unchanged_and_finite():
    layer = weights([1.5, -0.5], [0.0, 0.0])
    Adam().step([layer])
    np.testing.assert_array_equal(layer.params["W"], [1.5, -0.5])


def test_adam_keys_state_by_layer_index_and_skips_layers_without_weights():
    rng = np.random.default_rng(0)
    layers = [Dense(3, 4, rng=rng), ReLU(), Dense(4, 2, rng=rng)]
    for layer in layers:
        layer.grads = {k: np.ones_like(v) for k, v in layer.params.items()}
    opt = Adam()
    opt.step(layers)
    assert sorted(opt.state) == ["0.W", "0.b", "2.W", "2.b"]


def test_adam_updates_weights_in_place_and_keeps_float32():
    layer = weights([1.0, 2.0], [0.5, 0.5])
    layer.params["W"] = layer.params["W"].astype(np.float32)
    layer.grads["W"] = layer.grads["W"].astype(np.float32)
    array = layer.params["W"]
    Adam(lr=0.1).step([layer])
    assert layer.params["W"] is array and array.dtype == np.float32
    np.testing.assert_allclose(array, [0.9, 1.9], rtol=1e-6)


def test_adam_reset_forgets_moments_and_step_count():
    layer = weights([1.0], [1.0])
    opt = Adam()
    opt.step([layer])
    opt.reset()
    assert opt.t == 0 and opt.state == {}


# ---- SGD -------------------------------------------------------------------------------------
def test_sgd_without_momentum_matches_hand_values():
    layer = weights([1.0, -2.0], [0.5, -1.0])
    opt = SGD(lr=0.1)
    opt.step([layer])
    np.testing.assert_allclose(layer.params["W"], [0.95, -1.9], rtol=1e-15)
    layer.grads["W"] = np.array([0.1, 0.3])
    opt.step([layer])
    np.testing.assert_allclose(layer.params["W"], [0.94, -1.93], rtol=1e-15)


def test_sgd_with_momentum_matches_hand_values():
    # v1 = g1 = [0.5, -1]            p1 = p0 - 0.1 v1 = [0.95, -1.9]
    # v2 = 0.9 v1 + g2 = [0.55, -0.6] p2 = p1 - 0.1 v2 = [0.895, -1.84]
    layer = weights([1.0, -2.0], [0.5, -1.0])
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step([layer])
    np.testing.assert_allclose(layer.params["W"], [0.95, -1.9], rtol=1e-15)
    layer.grads["W"] = np.array([0.1, 0.3])
    opt.step([layer])
    np.testing.assert_allclose(opt.state["0.W"], [0.55, -0.6], rtol=1e-15)
    np.testing.assert_allclose(layer.params["W"], [0.895, -1.84], rtol=1e-14)


def test_sgd_momentum_state_persists_across_steps():
    layer = weights([0.0], [1.0])
    opt = SGD(lr=1.0, momentum=0.5)
    for _ in range(3):
        opt.step([layer])
    # velocities 1, 1.5, 1.75 -> position -(1 + 1.5 + 1.75)
    np.testing.assert_allclose(layer.params["W"], [-4.25], rtol=1e-15)


# ---- argument validation ---------------------------------------------------------------------
BAD_ARGS = [
    (lambda v: Adam(lr=v), 0, "lr"), (lambda v: Adam(lr=v), -1e-3, "lr"),
    (lambda v: Adam(lr=v), math.nan, "lr"), (lambda v: Adam(lr=v), math.inf, "lr"),
    (lambda v: Adam(lr=v), "0.01", "lr"), (lambda v: Adam(lr=v), None, "lr"), (lambda v: Adam(lr=v), True, "lr"),
    (lambda v: SGD(lr=v), 0.0, "lr"), (lambda v: SGD(lr=v), -0.1, "lr"), (lambda v: SGD(lr=v), math.nan, "lr"),
    (lambda v: Adam(beta1=v), 1.0, "beta1"), (lambda v: Adam(beta1=v), -0.1, "beta1"),
    (lambda v: Adam(beta1=v), math.nan, "beta1"), (lambda v: Adam(beta1=v), "0.9", "beta1"),
    (lambda v: Adam(beta2=v), 1.0, "beta2"), (lambda v: Adam(beta2=v), 1.5, "beta2"),
    (lambda v: Adam(beta2=v), math.inf, "beta2"),
    (lambda v: Adam(eps=v), 0.0, "eps"), (lambda v: Adam(eps=v), -1e-8, "eps"), (lambda v: Adam(eps=v), math.nan, "eps"),
    (lambda v: SGD(0.1, momentum=v), 1.0, "momentum"), (lambda v: SGD(0.1, momentum=v), -0.5, "momentum"),
]


@pytest.mark.parametrize("make, bad, name", BAD_ARGS, ids=[f"{name}={bad!r}" for _, bad, name in BAD_ARGS])
def test_bad_optimizer_arguments_raise_value_error_naming_the_argument(make, bad, name):
    with pytest.raises(ValueError, match=rf"^{name} must be .*got {bad!r}".replace("(", r"\(").replace(")", r"\)")):
        make(bad)


@pytest.mark.parametrize("make", [lambda: Adam(lr=10 ** 400), lambda: SGD(lr=10 ** 400),
                                  lambda: Adam(beta1=10 ** 400)], ids=["Adam-lr", "SGD-lr", "Adam-beta1"])
def test_huge_integer_arguments_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_numpy_float32_learning_rate_is_accepted():
    layer = weights([1.0], [1.0])
    Adam(lr=np.float32(0.01)).step([layer])
    np.testing.assert_allclose(layer.params["W"], [0.99], rtol=1e-6)
