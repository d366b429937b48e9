"""Sequential: summary, weights, determinism, dtypes, inference shapes, input validation,
fit/callbacks/history, the issue's accuracy recipe, and the seed-compatible `cnn` API."""
import io
import json
import re
import zipfile

import numpy as np
import pytest

import pycnn
from pycnn import Adam, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, seed_model

SEED_SHAPES = [(10, 1, 3, 3), (10,), (1690, 10), (10,)]


def small_model(seed=0, dtype="float32", filters=4):
    return Sequential([Conv2D(1, filters, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(filters * 13 * 13, 10)],
                      seed=seed, dtype=dtype, input_shape=(1, 28, 28))


def mixed_sample(subset, n, seed=0):
    """n subset digits of mixed classes (the subset itself is sorted by class)."""
    x, y = subset
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    return x[idx], y[idx]


# ---- summary ---------------------------------------------------------------------------------
def test_seed_model_summary_reports_17010_params_and_every_layer():
    text = seed_model().summary()
    assert "Total params: 17,010" in text
    assert "Trainable params: 17,010" in text and "Non-trainable params: 0" in text
    rows = [
        ("conv2d (Conv2D)", "(None, 10, 26, 26)", "100"),
        ("re_lu (ReLU)", "(None, 10, 26, 26)", "0"),
        ("max_pool2d (MaxPool2D)", "(None, 10, 13, 13)", "0"),
        ("flatten (Flatten)", "(None, 1690)", "0"),
        ("dense (Dense)", "(None, 10)", "16910"),
    ]
    lines = text.splitlines()
    for name, shape, params in rows:
        pattern = rf"^{re.escape(name)}\s+{re.escape(shape)}\s+{params}$"
        assert any(re.match(pattern, line) for line in lines), f"no row {name} {shape} {params} in\n{text}"
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    # rows appear in layer order
    order = [next(i for i, line in enumerate(lines) if line.startswith(name)) for name, _, _ in rows]
    assert order == sorted(order)


def test_summary_numbers_repeated_layer_kinds_like_keras():
    model = Sequential([Conv2D(1, 2, 3, padding="same"), ReLU(), Conv2D(2, 3, 3), ReLU(), Flatten(),
                        Dense(3 * 5 * 5, 4)], input_shape=(1, 7, 7))
    text = model.summary()
    assert re.search(r"^conv2d \(Conv2D\)\s+\(None, 2, 7, 7\)\s+20$", text, re.M)
    assert re.search(r"^conv2d_1 \(Conv2D\)\s+\(None, 3, 5, 5\)\s+57$", text, re.M)
    assert re.search(r"^re_lu_1 \(ReLU\)", text, re.M)
    assert "Total params: 381" in text  # 20 + 57 + 75 * 4 + 4


def test_summary_without_input_shape_says_how_to_fix_it():
    with pytest.raises(ValueError, match="pass input_shape"):
        Sequential([Flatten(), Dense(4, 2)]).summary()


def test_layers_that_do_not_fit_together_are_refused_at_construction():
    with pytest.raises(ValueError, match=r"layer 4 \(Dense\): Dense expects input of shape \(1000,\), got \(1690,\)"):
        Sequential([Conv2D(1, 10, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(1000, 10)], input_shape=(1, 28, 28))


@pytest.mark.parametrize("kwargs, message", [
    ({"layers": []}, "layers must be a non-empty list"),
    ({"layers": ["conv"]}, "layers must be a non-empty list of pycnn layers"),
    ({"dtype": "int32"}, "dtype must be 'float32' or 'float64', got 'int32'"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
    ({"dtype": "nonsense"}, "dtype must be 'float32' or 'float64'"),
    ({"input_shape": (28, 28)}, r"input_shape must be \(channels, height, width\)"),
    ({"input_shape": (1, 0, 28)}, "input_shape must be"),
])
def test_sequential_bad_arguments_raise_value_error(kwargs, message):
    args = {"layers": [Flatten(), Dense(784, 10)], **kwargs}
    with pytest.raises(ValueError, match=message):
        Sequential(**args)


# ---- architecture as data: get_config / from_config / work ------------------------------------
def test_get_config_is_the_model_files_architecture_and_from_config_rebuilds_it(rng):
    model = small_model(seed=0, dtype="float64")
    config = model.get_config()
    assert config == {"input_shape": [1, 28, 28], "dtype": "float64", "layers": [
        {"class": "Conv2D", "config": {"in_channels": 1, "filters": 4, "kernel_size": 3, "stride": 1,
                                       "padding": "valid"}},
        {"class": "ReLU", "config": {}}, {"class": "MaxPool2D", "config": {"pool_size": 2, "stride": 2}},
        {"class": "Flatten", "config": {}}, {"class": "Dense", "config": {"in_features": 676, "out_features": 10}}]}
    with zipfile.ZipFile(io.BytesIO(model.to_bytes())) as zf:
        stored = json.loads(zf.read("config.json"))
    assert {key: stored[key] for key in config} == config
    a, b = Sequential.from_config(config, seed=5), Sequential.from_config(config, seed=5)
    assert a.get_config() == config and a.dtype == np.float64
    x = rng.random((3, 1, 28, 28))
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert not np.array_equal(Sequential.from_config(config, seed=6).predict_proba(x), a.predict_proba(x))


def _seed_config(**changes):
    config = seed_model().get_config()
    for index, args in changes.get("layers", {}).items():
        config["layers"][index]["config"].update(args)
    return {**config, **{k: v for k, v in changes.items() if k != "layers"}}


@pytest.mark.parametrize("config, message", [
    (_seed_config(layers={4: {"in_features": 1000}}), r"^layer 4 \(Dense\): Dense expects input of shape \(1000,\), "
                                                        r"got \(1690,\)$"),
    (_seed_config(layers={0: {"kernel_size": 0}}), r"^layer 0 \(Conv2D\): kernel_size must be an int from 1 to 4096"),
    (_seed_config(layers={0: {"in_channels": 3}}), r"^layer 0 \(Conv2D\): Conv2D expects 3 input channels, got 1$"),
    (_seed_config(layers={2: {"pool_size": 27}}), r"^layer 2 \(MaxPool2D\): MaxPool2D pool_size 27 is larger"),
    (_seed_config(layers={0: {"filters": 9 * 10 ** 6}}), "the model would have 90,016,910 parameters; at most "
                                                        "10,000,000 are allowed"),
    (_seed_config(input_shape=[1, 2000, 2000], layers={0: {"filters": 20}, 2: {"pool_size": 100, "stride": 100},
                                                     4: {"in_features": 20 * 19 * 19}}),
     r"^layer 0 \(Conv2D\) would need 718,560,720 multiply-adds or values for one image; at most 50,000,000"),
    (_seed_config(dtype="float16"), "dtype must be one of float32, float64, got 'float16'"),
    (_seed_config(input_shape=[1, 28]), r"input_shape must be 3 ints from 1 to 4096, got \[1, 28\]"),
    (_seed_config(extra=1), r"unknown model config key\(s\): extra"),
    ({**_seed_config(), "layers": []}, "layers must be a list of 1 to 256 layers"),
    ({**_seed_config(), "layers": [{"class": "GaussianNoise", "config": {}}]}, "layer 0 is not a known pycnn layer"),
    ("seed", "a model config must be a dict, got str"),
])
def test_from_config_refuses_what_cannot_be_built_naming_the_layer(config, message):
    with pytest.raises(ValueError, match=message):
        Sequential.from_config(config)


def test_model_work_is_the_sum_of_its_layers_multiply_adds(rng):
    model = seed_model()
    # conv: 26*26 outputs * 10 filters * 9 taps; relu: 6760 values; pool: 6760; flatten: 1690; dense: 16,900
    assert model.work() == 60840 + 6760 + 6760 + 1690 + 16900


# ---- weights ---------------------------------------------------------------------------------
def test_get_weights_lists_each_layers_weight_then_bias():
    weights = seed_model(seed=0).get_weights()
    assert [w.shape for w in weights] == SEED_SHAPES
    assert all(w.dtype == np.float32 for w in weights)


def test_get_set_weights_round_trip_changes_predictions_back_and_forth(rng):
    a, b = seed_model(seed=1), seed_model(seed=2)
    x = rng.random((5, 1, 28, 28), dtype=np.float32)
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(b.predict_proba(x), a.predict_proba(x))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_get_weights_returns_copies_and_set_weights_keeps_its_own():
    model = seed_model(seed=0)
    weights = model.get_weights()
    weights[0][...] = 123.0
    assert not np.any(model.get_weights()[0] == 123.0)
    model.set_weights(weights)
    weights[0][...] = -1.0
    assert np.all(model.get_weights()[0] == 123.0)


def test_set_weights_casts_to_the_model_dtype():
    model = seed_model(seed=0)
    model.set_weights([w.astype(np.float64) for w in model.get_weights()])
    assert all(w.dtype == np.float32 for w in model.get_weights())


@pytest.mark.parametrize("change, message", [
    (lambda w: w[:3], "set_weights expects 4 arrays, got 3"),
    (lambda w: w + [w[-1]], "set_weights expects 4 arrays, got 5"),
    (lambda w: [np.zeros((10, 1, 3, 4))] + w[1:], r"Conv2D.W must have shape \(10, 1, 3, 3\), got \(10, 1, 3, 4\)"),
    (lambda w: w[:2] + [w[2].T] + w[3:], r"Dense.W must have shape \(1690, 10\), got \(10, 1690\)"),
    (lambda w: w[:3] + [np.zeros(9)], r"Dense.b must have shape \(10,\), got \(9,\)"),
    (lambda w: [np.full((10, 1, 3, 3), np.nan)] + w[1:], "Conv2D.W must hold finite numbers"),
    (lambda w: w[:1] + [np.full(10, np.inf)] + w[2:], "Conv2D.b must hold finite numbers"),
    (lambda w: w[:1] + [np.array(["a"] * 10)] + w[2:], "Conv2D.b must hold finite numbers"),
])
def test_set_weights_validates_count_shapes_and_values(change, message):
    model = seed_model(seed=0)
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.set_weights(change(model.get_weights()))
    for old, new in zip(before, model.get_weights()):  # nothing half-applied
        np.testing.assert_array_equal(old, new)


# ---- determinism and dtypes ------------------------------------------------------------------
def test_same_seed_gives_identical_models_and_different_seeds_differ(rng):
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    a, b, c = seed_model(seed=3), seed_model(seed=3), seed_model(seed=4)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    assert not np.array_equal(a.get_weights()[2], c.get_weights()[2])


def test_training_is_deterministic_given_the_seed(subset):
    x, y = mixed_sample(subset, 256)
    results = []
    for _ in range(2):
        model = seed_model(seed=7)
        model.fit(x, y, epochs=1, batch_size=32, optimizer=Adam(1e-3))
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_float64_model_trains_and_predicts_in_float64(subset):
    x, y = mixed_sample(subset, 64)
    model = seed_model(seed=0, dtype="float64")
    assert all(w.dtype == np.float64 for w in model.get_weights())
    history = model.fit(x, y, epochs=2, batch_size=16, optimizer=Adam(1e-3))
    assert np.isfinite(history["batch_loss"]).all()
    assert model.predict_proba(x).dtype == np.float64
    assert all(w.dtype == np.float64 for w in model.get_weights())


def test_float32_model_stays_float32_through_training(subset):
    x, y = mixed_sample(subset, 64)
    model = seed_model(seed=0)
    model.fit(x.astype(np.float64), y, epochs=1, batch_size=16, optimizer=Adam(1e-3))
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert model.predict_proba(x).dtype == np.float32


# ---- inference -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 1500])
def test_predict_predict_proba_and_evaluate_shapes(n, rng):
    model = seed_model(seed=0)
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    proba = model.predict_proba(x)
    assert proba.shape == (n, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert np.all(proba >= 0)
    labels = model.predict(x)
    assert labels.shape == (n,) and np.issubdtype(labels.dtype, np.integer)
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    scores = model.evaluate(x, y)
    assert set(scores) == {"loss", "accuracy"}
    assert isinstance(scores["loss"], float) and isinstance(scores["accuracy"], float)
    assert scores["accuracy"] == pytest.approx(np.mean(labels == y))


@pytest.mark.parametrize("training", [False, True])
def test_forward_results_are_not_overwritten_by_later_calls(training, rng):
    # the fused block reuses its work buffers between calls; its outputs must not be among them
    model = seed_model(seed=0)
    x1, x2 = rng.random((2, 8, 1, 28, 28), dtype=np.float32)
    out = model.forward(x1, training)
    kept = out.copy()
    model.forward(x2, training)
    np.testing.assert_array_equal(out, kept)


def test_predict_proba_in_chunks_equals_predict_proba_of_the_parts(rng):
    model = seed_model(seed=0)
    x = rng.random((2500, 1, 28, 28), dtype=np.float32)
    whole = model.predict_proba(x)
    parts = np.concatenate([model.predict_proba(x[i:i + 700]) for i in range(0, 2500, 700)])
    # float32 matrix products may sum in a different order for a different batch size
    # (BLAS blocking depends on the shape and the processor): equal to float32 rounding
    np.testing.assert_allclose(whole, parts, rtol=1e-5, atol=1e-6)


def test_predict_accepts_grey_images_without_a_channel_axis(rng):
    model = seed_model(seed=0)
    x = rng.random((3, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_proba(x[:, None]))


def test_predict_on_no_images_gives_empty_results():
    model = seed_model(seed=0)
    assert model.predict_proba(np.zeros((0, 1, 28, 28))).shape == (0, 10)
    assert model.predict(np.zeros((0, 1, 28, 28))).shape == (0,)


def test_evaluate_matches_mean_cross_entropy_over_chunks(rng):
    # 2,500 rows are evaluated in chunks; the result must equal one big batch
    model = seed_model(seed=0, dtype="float64")
    x = rng.random((2500, 1, 28, 28))
    y = rng.integers(0, 10, 2500)
    loss, _ = pycnn.softmax_cross_entropy(model.forward(x), y)
    assert model.evaluate(x, y)["loss"] == pytest.approx(loss, rel=1e-10)


@pytest.mark.parametrize("x_shape, message", [
    ((2, 1, 28, 27), r"x must have shape \(N, 1, 28, 28\), got \(2, 1, 28, 27\)"),
    ((2, 3, 28, 28), r"x must have shape \(N, 1, 28, 28\)"),
    ((2, 784), r"x must have shape \(N, C, H, W\), got \(2, 784\)"),
    ((28, 28), r"x must have shape \(N, C, H, W\)"),
])
def test_wrong_input_shapes_raise_value_error(x_shape, message):
    model = seed_model(seed=0)
    for call in (model.predict, model.predict_proba, lambda x: model.evaluate(x, np.zeros(len(x), int))):
        with pytest.raises(ValueError, match=message):
            call(np.zeros(x_shape, np.float32))


def test_evaluate_on_no_images_raises_value_error():
    with pytest.raises(ValueError, match="evaluate needs at least one sample"):
        seed_model(seed=0).evaluate(np.zeros((0, 1, 28, 28)), np.zeros(0, int))


def test_non_numeric_input_raises_value_error():
    with pytest.raises(ValueError, match="x must hold numbers"):
        seed_model(seed=0).predict(np.full((1, 1, 28, 28), "a"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", ["predict", "predict_proba", "evaluate", "fit"])
def test_images_with_nan_or_infinity_are_refused_and_the_weights_kept(call, bad):
    model = seed_model(seed=0)
    before = model.get_weights()
    x = np.zeros((4, 1, 28, 28), np.float32)
    x[2, 0, 5, 5] = bad
    y = np.array([0, 1, 2, 3])
    args = (x,) if call.startswith("predict") else (x, y)
    with pytest.raises(ValueError, match="x contains NaN or infinity"):
        getattr(model, call)(*args, **({"batch_size": 2} if call == "fit" else {}))
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("labels, message", [
    ([0, 10], r"labels must be in 0\.\.9, got 0\.\.10"),
    ([-1, 3], r"labels must be in 0\.\.9, got -1\.\.3"),
    ([0.0, 1.0], "y must be 2 integer class labels"),
    ([0, 1, 2], r"y must be 2 integer class labels, got shape \(3,\)"),
    ([[0], [1]], "y must be 2 integer class labels"),
])
def test_bad_labels_raise_value_error(labels, message, rng):
    model = seed_model(seed=0)
    x = rng.random((2, 1, 28, 28), dtype=np.float32)
    for call in (model.evaluate, model.compute_gradients,
                 lambda x, y: model.fit(x, y, epochs=1, batch_size=2, optimizer=Adam())):
        with pytest.raises(ValueError, match=message):
            call(x, np.array(labels))


def test_activations_give_each_layers_feature_maps(rng):
    model = seed_model(seed=0)
    x = rng.random((2, 1, 28, 28), dtype=np.float32)
    maps = model.activations(x)
    assert [m.shape for m in maps] == [(2, 10, 26, 26), (2, 10, 26, 26), (2, 10, 13, 13), (2, 1690), (2, 10)]
    assert np.all(maps[1] >= 0)
    np.testing.assert_allclose(maps[-1], model.forward(x), rtol=1e-5, atol=1e-6)


# ---- fit -------------------------------------------------------------------------------------
def test_tiny_model_overfits_32_samples_to_100_percent(subset):
    x, y = mixed_sample(subset, 32)
    model = small_model(seed=0)
    model.fit(x, y, epochs=30, batch_size=8, optimizer=Adam(1e-2))
    scores = model.evaluate(x, y)
    assert scores["accuracy"] == 1.0, scores
    assert scores["loss"] < 0.05


def test_tiny_model_memorises_32_random_labels(subset):
    # random labels can only be learnt by following the true gradient for many steps
    x, _ = mixed_sample(subset, 32)
    y = np.random.default_rng(1).integers(0, 10, 32)
    model = small_model(seed=0)
    model.fit(x, y, epochs=40, batch_size=8, optimizer=Adam(1e-2))
    assert model.evaluate(x, y)["accuracy"] == 1.0


def test_fit_returns_history_with_batch_losses_and_epoch_results(subset):
    x, y = mixed_sample(subset, 100)
    xv, yv = mixed_sample(subset, 40, seed=1)
    model = small_model(seed=0)
    history = model.fit(x, y, epochs=3, batch_size=32, optimizer=Adam(1e-3), validation_data=(xv, yv))
    assert len(history["batch_loss"]) == 3 * 4  # ceil(100 / 32) batches per epoch
    assert all(isinstance(v, float) and np.isfinite(v) for v in history["batch_loss"])
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]
    for result in history["epochs"]:
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(result)
        assert 0 <= result["accuracy"] <= 1 and 0 <= result["val_accuracy"] <= 1
    assert history["epochs"][-1]["val_accuracy"] == pytest.approx(model.evaluate(xv, yv)["accuracy"])
    assert history["epochs"][-1]["loss"] < history["epochs"][0]["loss"]


def test_fit_callback_sees_every_batch_and_returning_false_stops_training(subset):
    x, y = mixed_sample(subset, 128)
    model = small_model(seed=0)
    seen = []

    def callback(progress):
        seen.append(progress)
        return len(seen) < 3  # False on the third batch: stop

    history = model.fit(x, y, epochs=5, batch_size=16, optimizer=Adam(1e-3), callback=callback)
    assert len(seen) == 3
    assert len(history["batch_loss"]) == 3
    assert [p["step"] for p in seen] == [1, 2, 3]
    assert {"step", "epoch", "losses", "accuracy", "epoch_results", "done"} <= set(seen[0])
    assert not seen[-1]["done"]
    # the stopped model is consistent and usable
    assert all(np.isfinite(w).all() for w in model.get_weights())
    labels = model.predict(x)
    assert labels.shape == (128,) and set(labels) <= set(range(10))
    assert model.evaluate(x, y)["loss"] < 10


def test_fit_callback_returning_none_does_not_stop(subset):
    x, y = mixed_sample(subset, 64)
    calls = []
    small_model().fit(x, y, epochs=2, batch_size=16, optimizer=Adam(), callback=calls.append)
    assert len(calls) == 8


def test_fit_refuses_batch_larger_than_training_set(subset):
    x, y = mixed_sample(subset, 20)
    with pytest.raises(ValueError, match=r"batch_size \(32\) is larger than the training set \(20\)"):
        small_model().fit(x, y, epochs=1, batch_size=32)


# ---- the accuracy recipe -------------------------------------------------------------
def test_seed_model_reaches_90_percent_on_held_out_subset_digits(split, trained_seed_model, record_property):
    _, _, x_test, y_test = split
    model, history = trained_seed_model
    assert len(x_test) == 2000
    assert len(history["epochs"]) == 2 and len(history["batch_loss"]) == 2 * 250
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    record_property("report", f"seed model, 2 epochs, batch 32, Adam 1e-3: {accuracy:.2%} on 2,000 held-out digits")
    assert accuracy >= 0.90, f"held-out accuracy {accuracy:.2%}"


# ---- the seed-compatible API -----------------------------------------------------------------
def as_uint8(x):
    return np.round(x * 255).astype(np.uint8)


def test_seed_cnn_trains_on_raw_uint8_images_and_predicts_well_above_chance(split, capsys):
    x_train, y_train, x_test, y_test = split
    net = pycnn.cnn(input_size=(1, 28, 28), kernel_size=3, n_filters=10, output_size=10)
    costs = net.train(as_uint8(x_train), y_train, num_epochs=1, verbose=False)
    assert len(costs) == 250 and costs[-1] < costs[0]
    assert capsys.readouterr().out == ""  # verbose=False prints nothing
    predictions = net.predict(as_uint8(x_test))
    assert predictions.shape == (2000,)
    accuracy = np.mean(predictions == y_test)
    assert accuracy > 0.8, f"held-out accuracy {accuracy:.2%}"
    # uint8 0-255 and floats in [0, 1] are the same images to the model
    np.testing.assert_array_equal(net.predict(as_uint8(x_test[:50]).astype(np.float32) / 255), predictions[:50])


def test_seed_cnn_summary_is_the_seed_table():
    net = pycnn.cnn()
    assert "Total params: 17,010" in net.summary()
    assert "(None, 10, 13, 13)" in net.summary()


def test_seed_cnn_verbose_training_prints_each_epoch_and_save_path_writes_a_model(subset, tmp_path, capsys):
    x, y = mixed_sample(subset, 64)
    net = pycnn.cnn(seed=0)
    path = tmp_path / "seed.npz"
    net.train(as_uint8(x), y, num_epochs=2, batch_size=32, save_path=str(path))
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out
    loaded = pycnn.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), net.model.predict_proba(x))


def test_seed_cnn_takes_other_image_sizes_and_channels(rng):
    net = pycnn.cnn(input_size=(3, 32, 32), n_filters=4, seed=0)
    assert net.model.output_shapes() == [(4, 30, 30), (4, 30, 30), (4, 15, 15), (900,), (10,)]
    images = rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8)
    net.train(images, rng.integers(0, 10, 64), num_epochs=1, verbose=False)
    assert net.predict(images).shape == (64,)
    assert pycnn.cnn(input_size=(1, 27, 27)).model.output_shapes()[3] == (1440,)  # 25x25 -> pool floors to 12x12


def test_seed_cnn_with_stride_2_builds_the_matching_dense_layer():
    net = pycnn.cnn(stride=2)
    assert net.model.output_shapes()[3] == (360,)  # 13x13 -> pool 6x6 -> 10 * 36


# ---- layers with state (BatchNorm) and training-only behaviour (Dropout) ------------------------
def norm_model(seed=0, dtype="float32"):
    """Every new layer kind in one network: BatchNorm after a conv (the fused block) and after Flatten."""
    from pycnn import AvgPool2D, BatchNorm, Dropout, LeakyReLU, Sigmoid, Tanh

    return Sequential([Conv2D(1, 4, 3), BatchNorm(4), ReLU(), MaxPool2D(2), Conv2D(4, 6, 3, stride=2), LeakyReLU(0.1),
                       AvgPool2D(2), Tanh(), Flatten(), BatchNorm(54), Dropout(0.25), Dense(54, 16), Sigmoid(),
                       Dense(16, 10)], seed=seed, dtype=dtype, input_shape=(1, 28, 28))


def test_batchnorm_weights_and_running_statistics_are_counted_as_keras_counts_them():
    model = norm_model()
    rows = {row["name"]: row["params"] for row in model.summary_rows()}
    assert rows["batch_normalization"] == 4 * 4 and rows["batch_normalization_1"] == 4 * 54
    trained = 40 + 2 * 4 + 6 * 4 * 9 + 6 + 2 * 54 + 54 * 16 + 16 + 16 * 10 + 10
    assert model.count_params(trainable=True) == trained
    assert model.count_params(trainable=False) == 2 * 4 + 2 * 54
    assert model.count_params() == trained + 2 * 4 + 2 * 54
    text = model.summary()
    assert f"Total params: {model.count_params():,}\nTrainable params: {trained:,}\nNon-trainable params: 116" in text
    assert "batch_normalization_1 (BatchNorm) (None, 54)" in text  # a long name widens its column
    shapes = [w.shape for w in model.get_weights()]
    assert shapes[2:6] == [(4,), (4,), (4,), (4,)]  # gamma, beta, running_mean, running_var


def test_set_weights_takes_every_array_or_the_trained_ones_and_checks_the_running_variance(rng):
    model, other = norm_model(seed=0), norm_model(seed=1)
    other.layers[1].state["running_var"][:] = 2.0
    model.set_weights(other.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))
    trained = [layer.params[name] for layer in norm_model(seed=2).layers for name in layer.params]
    model.set_weights(trained)  # the trained weights only: the state stays
    np.testing.assert_array_equal(model.layers[1].state["running_var"], 2.0)
    np.testing.assert_array_equal(model.layers[0].params["W"], trained[0])
    with pytest.raises(ValueError, match=r"set_weights expects 16 arrays \(or 12, the trained ones only\), got 3"):
        model.set_weights(trained[:3])
    bad = model.get_weights()
    bad[5] = -np.ones(4)
    with pytest.raises(ValueError, match="BatchNorm.running_var must be non-negative, got -1"):
        model.set_weights(bad)


@pytest.mark.parametrize("optimizer", [lambda: Adam(1e-2), lambda: pycnn.SGD(0.1, momentum=0.9)])
def test_optimisers_train_gamma_and_beta_while_the_running_statistics_follow_the_batches(optimizer, rng):
    model = norm_model()
    opt = optimizer()
    x, y = rng.random((8, 1, 28, 28)), rng.integers(0, 10, 8)
    for _ in range(3):
        state = {i: {k: v.copy() for k, v in model.layers[i].state.items()} for i in (1, 9)}
        gamma = model.layers[1].params["gamma"].copy()
        model.train_step(model.as_input(x), y, opt)
        for i in (1, 9):
            stats = model.layers[i].statistics
            np.testing.assert_allclose(model.layers[i].state["running_mean"],
                                       0.9 * state[i]["running_mean"] + 0.1 * stats["mean"], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(model.layers[i].state["running_var"],
                                       0.9 * state[i]["running_var"] + 0.1 * stats["var"], rtol=1e-6)
        assert not np.array_equal(model.layers[1].params["gamma"], gamma)
    assert not any("running" in key for key in opt.state)
    assert {"1.gamma", "1.beta", "9.gamma", "9.beta"} <= set(opt.state) or not opt.state  # SGD without state


def test_a_diverged_run_restores_the_running_statistics_with_the_weights(subset):
    model = norm_model()
    x, y = mixed_sample(subset, 512)
    before = model.get_weights()
    trainer = pycnn.Trainer(model, x, y, pycnn.TrainingConfig(epochs=1, batch_size=32, lr=10.0, schedule="constant",
                                                              augment=False, optimizer="adam"))
    with pytest.raises(pycnn.TrainingDiverged):
        trainer.run()
    assert model.layers[1].statistics  # training batches moved the running statistics before the blow-up
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_frozen_forward_and_backward_are_the_gradient_of_predict_and_change_nothing(rng):
    model = norm_model(dtype="float64")
    model.fit(rng.random((64, 1, 28, 28)), rng.integers(0, 10, 64), epochs=1, batch_size=16)  # statistics != 0, 1
    x = rng.random((2, 1, 28, 28))
    before = model.get_weights()
    with model.frozen():
        logits = model.forward(model.as_input(x), training=True)
        dx = model.backward(np.eye(10)[[3, 7]], input_gradient=True)
    np.testing.assert_allclose(logits, model.forward(model.as_input(x)), rtol=1e-12, atol=1e-12)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    assert not any(layer.frozen for layer in model.layers)
    h = 1e-6
    for index in [(0, 0, 10, 10), (1, 0, 14, 5), (0, 0, 20, 17)]:
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        row, digit = index[0], [3, 7][index[0]]
        numeric = (model.forward(model.as_input(up))[row, digit] - model.forward(model.as_input(down))[row, digit]) / (2 * h)
        assert dx[index] == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_deferred_statistics_measured_here_move_another_copy_of_the_network_alike(rng):
    model, copy = norm_model(), norm_model()
    x = model.as_input(rng.random((6, 1, 28, 28)))
    with model.deferred_statistics():
        model.forward(x, training=True)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), copy.get_weights()))
    statistics = model.batch_statistics()
    assert sorted(statistics) == ["1.mean", "1.var", "9.mean", "9.var"]
    copy.update_statistics(statistics)
    model.forward(x, training=True)  # not deferred: the state moves at once, the same way
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), copy.get_weights()))


# ---- sharded training (pycnn.parallel) of a network with state and dropout --------------------------
def _sharded(model, optimizer, x, y, shards, order=None, elsewhere=False):
    """One sharded step: the shards computed here in `order`, or elsewhere (task and result bytes)."""
    from pycnn import parallel

    work = parallel.ShardedStep(model, x, y, shards, seed=5, step=3)
    if elsewhere:
        runner = parallel.TaskRunner()
        for data in reversed(work.tasks()):
            work.add(runner(data))
    else:
        for shard in order or range(len(work.bounds)):
            work.compute(shard)
    return work.finish(optimizer)


def test_a_sharded_step_moves_the_running_statistics_the_same_whoever_computes_the_shards(rng):
    x, y = rng.random((10, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 10)
    runs = []
    for how in ({}, {"order": [2, 0, 1]}, {"elsewhere": True}):
        model, optimizer = norm_model(), Adam(1e-2)
        _sharded(model, optimizer, x, y, 3, **how)
        runs.append(model.get_weights())
    for other in runs[1:]:
        assert all(a.tobytes() == b.tobytes() for a, b in zip(runs[0], other))
    # each shard's own statistics, applied in shard order after the update
    model, expected = norm_model(), norm_model()
    from pycnn import parallel

    for i, (a, b) in enumerate(parallel.shard_bounds(10, 3)):
        parallel.seed_layers(expected, 5, 3, i)
        expected.forward(expected.as_input(x[a:b]), training=True)
    _sharded(model, Adam(1e-2), x, y, 3)
    for i in (1, 9):
        for name in ("running_mean", "running_var"):
            assert model.layers[i].state[name].tobytes() == expected.layers[i].state[name].tobytes()


def test_one_shard_is_train_step_bit_for_bit_with_batchnorm_and_dropout(rng):
    from pycnn import parallel

    x, y = rng.random((8, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 8)
    model, plain = norm_model(), norm_model()
    _sharded(model, Adam(1e-2), x, y, 1)
    parallel.seed_layers(plain, 5, 3, 0)
    plain.train_step(plain.as_input(x), y, Adam(1e-2))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(model.get_weights(), plain.get_weights()))


def test_a_result_with_statistics_that_do_not_fit_is_refused(rng):
    from pycnn import parallel

    model = norm_model()
    x, y = rng.random((4, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 4)
    work = parallel.ShardedStep(model, x, y, 1)
    result = parallel.shard_gradients(norm_model(), x, y, 4)
    assert sorted(result.statistics) == ["1.mean", "1.var", "9.mean", "9.var"]
    header, decoded = parallel.decode_result(parallel.encode_result(result))
    assert all(decoded.statistics[k].tobytes() == v.tobytes() for k, v in result.statistics.items())
    result.statistics["1.mean"] = np.zeros(5, np.float32)
    work.add(parallel.encode_result(result))
    with pytest.raises(ValueError, match=r"BatchNorm statistics must be a mean and a var of shape \(4,\)"):
        work.finish(Adam())
    with pytest.raises(ValueError, match="statistics are keyed 'layer index.name' of this model's layers, got '99.mean'"):
        model.update_statistics({"99.mean": np.zeros(4)})


@pytest.mark.parametrize("shards", [1, 4])
def test_a_run_with_batchnorm_and_dropout_stopped_and_resumed_from_its_file_ends_as_never_stopped(split, shards):
    from pycnn.serialize import run_from_bytes

    x_train, y_train, x_test, y_test = split
    data = (x_train[:300], y_train[:300])
    validation = (x_test[::20], y_test[::20])
    config = pycnn.TrainingConfig(epochs=2, batch_size=32, lr=0.01, augment=True, shards=shards)
    never_stopped = pycnn.Trainer(norm_model(), *data, config, validation_data=validation)
    never_stopped.run()
    first = pycnn.Trainer(norm_model(), *data, config, validation_data=validation)
    first.run(max_batches=13)  # inside the second epoch: the running statistics have moved
    model, state = run_from_bytes(first.model.to_bytes(run_state=first.run_state()))
    resumed = pycnn.Trainer.resume(model, *data, state, validation_data=validation)
    resumed.run()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(model.get_weights(), never_stopped.model.get_weights()))
    assert resumed.history == never_stopped.history


# ---- freezing leading layers ------------------------------------------------------------------
def two_conv(seed=0):
    return pycnn.preset("two-conv-dense", seed=seed)


def test_frozen_layers_keep_their_weights_bit_for_bit_and_the_rest_trains(subset):
    x, y = mixed_sample(subset, 64)
    model = two_conv().freeze(7)  # the conv blocks and the Flatten
    before = model.get_weights()
    optimizer = Adam(1e-2)
    for start in range(0, 64, 16):
        model.train_step(x[start:start + 16], y[start:start + 16].astype(np.intp), optimizer)
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before[:4], after[:4]))  # conv weights and biases
    assert not any(np.array_equal(a, b) for a, b in zip(before[4:], after[4:]))  # both dense layers moved
    assert sorted(optimizer.state) == ["7.W", "7.b", "9.W", "9.b"]


def test_a_frozen_models_head_gets_the_same_gradient_as_the_unfrozen_models(subset):
    x, y = mixed_sample(subset, 16)
    loss, grads = two_conv().compute_gradients(x, y)
    frozen_loss, frozen_grads = two_conv().freeze(7).compute_gradients(x, y)
    assert frozen_loss == pytest.approx(loss, rel=1e-6)
    assert len(frozen_grads) == 4  # the dense layers' weights only
    for a, b in zip(frozen_grads, grads[4:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_frozen_leading_layers_run_no_backward_pass(subset, monkeypatch):
    x, y = mixed_sample(subset, 8)
    model = two_conv().freeze(7)
    ran = []
    for step in model._plan:
        monkeypatch.setattr(step, "backward", lambda dout, need_dx=True, step=step, run=step.backward:
                            ran.append(type(step).__name__) or run(dout, need_dx))
    model.train_step(x, y.astype(np.intp), Adam())
    assert ran == ["Dense", "ReLU", "Dense"]


def test_unfreezing_trains_every_layer_again_and_summary_counts_frozen_weights_as_non_trainable(subset):
    model = two_conv().freeze(7)
    assert "Trainable params: 51,914" in model.summary() and "Non-trainable params: 4,800" in model.summary()
    model.freeze(0)
    assert "Non-trainable params: 0" in model.summary()
    x, y = mixed_sample(subset, 16)
    before = model.get_weights()
    model.train_step(x, y.astype(np.intp), Adam(1e-2))
    assert not any(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("count", [-1, 12, 2.5, True])
def test_freeze_refuses_a_count_that_is_not_a_layer_count(count):
    with pytest.raises(ValueError, match="count must be an int from 0 to 10"):
        two_conv().freeze(count)


# ---- class names --------------------------------------------------------------------------------
def test_a_model_names_its_classes_and_predict_names_reads_them(subset):
    x, y = mixed_sample(subset, 32)
    model = small_model()
    assert model.class_names is None and model.names() == [str(d) for d in range(10)]
    model.class_names = ["zero", " one ", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert model.names()[1] == "one"  # trimmed
    names = model.predict_names(x)
    assert names == [model.names()[i] for i in model.predict(x)]


@pytest.mark.parametrize("names, message", [
    (["a", "b"], "must name the 10 classes, got 2 names"),
    ([str(d) for d in range(9)] + ["0 "], "'0' and '0' are the same name"),
    ([str(d) for d in range(9)] + [""], "name 10 is empty"),
    ("0123456789", "must be a list of strings"),
])
def test_class_names_that_do_not_fit_are_refused_and_the_old_ones_kept(names, message):
    model = small_model()
    model.class_names = list("ABCDEFGHIJ")
    with pytest.raises(ValueError, match=message):
        model.class_names = names
    assert model.class_names == list("ABCDEFGHIJ")
