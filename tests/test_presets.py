"""Presets: the named architectures build, have the documented shapes, and train."""
import numpy as np
import pytest

import pycnn
from pycnn import PRESETS, Sequential, preset, seed_model


@pytest.mark.parametrize("name, params, plan", [
    ("seed", 17010, ["ConvPoolReLU", "Flatten", "Dense"]),
    ("two-conv", 16 * 10 + 32 * (16 * 9 + 1) + 800 * 10 + 10, ["ConvPoolReLU", "ConvPoolReLU", "Flatten", "Dense"]),
    ("lenet", 6 * 26 + 16 * (6 * 25 + 1) + 401 * 120 + 121 * 84 + 85 * 10,
     ["ConvPoolReLU", "ConvPoolReLU", "Flatten", "Dense", "ReLU", "Dense", "ReLU", "Dense"]),
])
def test_presets_build_the_documented_networks(name, params, plan):
    model = preset(name, seed=0)
    assert model.input_shape == (1, 28, 28) and model.output_shapes()[-1] == (10,)
    assert model.count_params() == params
    assert [type(step).__name__ for step in model._plan] == plan
    assert model.get_config() == {**PRESETS[name], "dtype": "float32"}


def test_preset_is_deterministic_for_a_seed_and_takes_a_dtype():
    a, b = preset("two-conv", seed=1), preset("two-conv", seed=1, dtype="float64")
    assert b.dtype == np.float64
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)


def test_seed_model_is_the_seed_preset():
    assert seed_model(seed=3).get_config() == preset("seed", seed=3).get_config()
    for a, b in zip(seed_model(seed=3).get_weights(), preset("seed", seed=3).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="preset must be one of seed, two-conv, two-conv-dense, lenet, got 'resnet'"):
        preset("resnet")


def test_adding_a_preset_is_one_entry(monkeypatch):
    config = {"input_shape": [1, 8, 8], "dtype": "float32",
              "layers": [{"class": "Flatten", "config": {}}, {"class": "Dense", "config": {"in_features": 64,
                                                                                            "out_features": 3}}]}
    monkeypatch.setitem(PRESETS, "linear", config)
    assert isinstance(preset("linear"), Sequential) and preset("linear").count_params() == 195


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_survive_save_and_load(name, rng):
    model = preset(name, seed=0)
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(pycnn.from_bytes(model.to_bytes()).predict_proba(x), model.predict_proba(x))
