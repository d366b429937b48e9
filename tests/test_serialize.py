"""The model file: round trips give bit-identical predictions, and every kind of bad file is
refused with a ValueError that says what is wrong - without running any code."""
import builtins
import io
import json
import os
import pickle
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import pycnn
from pycnn import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential, seed_model

from model_files import members, npy, npy_with_header, rezip, with_config, with_member


# ---- crafting files --------------------------------------------------------------------------
def config_of(data):
    return json.loads(members(data)["config.json"])


def refused(data, match):
    """from_bytes(data) raises ValueError whose message matches; returns the message."""
    with pytest.raises(ValueError, match=match) as info:
        pycnn.from_bytes(data)
    return str(info.value)


@pytest.fixture(scope="module")
def model_bytes():
    model = seed_model(seed=0)
    model.metadata = {"epochs": 2}
    return model.to_bytes()


class CreatesFile:
    """Unpickling this object creates the file at self.path (a harmless stand-in for any code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


# ---- round trips -----------------------------------------------------------------------------
def test_save_and_load_give_bit_identical_predictions(trained_seed_model, split, tmp_path):
    model, _ = trained_seed_model
    x_test = split[2][:500]
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = pycnn.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x_test), model.predict_proba(x_test))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert loaded.summary() == model.summary()
    assert [type(s).__name__ for s in loaded._plan] == ["ConvPoolReLU", "Flatten", "Dense"]
    assert pycnn.load(str(path)).get_weights()[0].tobytes() == model.get_weights()[0].tobytes()


def test_bytes_round_trip_gives_bit_identical_predictions(trained_seed_model, split):
    model, _ = trained_seed_model
    x_test = split[2][:500]
    data = model.to_bytes()
    assert isinstance(data, bytes)
    np.testing.assert_array_equal(pycnn.from_bytes(data).predict_proba(x_test), model.predict_proba(x_test))
    for view in (bytearray(data), memoryview(data)):  # what the page may hand over
        np.testing.assert_array_equal(pycnn.from_bytes(view).predict_proba(x_test[:10]), model.predict_proba(x_test[:10]))


def test_float64_model_round_trips_as_float64(rng):
    model = Sequential([Conv2D(2, 3, 3, padding="same", stride=2), ReLU(), MaxPool2D(2), Flatten(), Dense(3 * 2 * 2, 4)],
                       seed=1, dtype="float64", input_shape=(2, 9, 9))
    x = rng.standard_normal((3, 2, 9, 9))
    loaded = pycnn.from_bytes(model.to_bytes())
    assert loaded.dtype == np.float64 and loaded.input_shape == (2, 9, 9)
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_metadata_round_trips():
    model = seed_model(seed=0)
    model.metadata = {"name": "digits", "epochs": 12, "val_accuracy": 0.9731, "history": [2.3, 0.4],
                      "config": {"lr": 0.005, "augment": True}, "note": "ünïcode ✓"}
    assert pycnn.from_bytes(model.to_bytes()).metadata == model.metadata


def test_class_names_round_trip_and_a_file_without_them_names_its_classes_by_number(model_bytes):
    model = seed_model(seed=0)
    assert pycnn.from_bytes(model.to_bytes()).names() == [str(d) for d in range(10)]
    assert "class_names" not in config_of(model.to_bytes())  # files of digit models stay as they were
    model.class_names = ["circle", "Star", "\u2603", "two words", "A", "b", "c", "d", "e", "\U0001F600"]
    loaded = pycnn.from_bytes(model.to_bytes())
    assert loaded.class_names == model.class_names and loaded.names() == model.class_names


@pytest.mark.parametrize("names, message", [
    (["a", "b"], "the model's class names must name the 10 classes, got 2 names"),
    (list("ABCDEFGHIa"), "'A' and 'a' are the same name"),
    (list("ABCDEFGHI") + ["x\ny"], "name 10 has a control character or line break"),
    (list("ABCDEFGHI") + [7], "name 10 must be a string"),
    ("ABCDEFGHIJ", "must be a list of strings"),
])
def test_a_file_with_bad_class_names_is_refused(model_bytes, names, message):
    refused(with_config(model_bytes, lambda c: c.update(class_names=names)), message)


def test_the_same_model_always_gives_the_same_bytes():
    assert seed_model(seed=5).to_bytes() == seed_model(seed=5).to_bytes()
    assert seed_model(seed=5).to_bytes() != seed_model(seed=6).to_bytes()


def test_model_file_is_an_npz_that_numpy_reads_without_pickle(model_bytes):
    model = pycnn.from_bytes(model_bytes)
    with np.load(io.BytesIO(model_bytes), allow_pickle=False) as npz:
        for key, weight in zip(["0.W", "0.b", "4.W", "4.b"], model.get_weights()):
            np.testing.assert_array_equal(npz[key], weight)
    config = config_of(model_bytes)
    assert config["format"] == "pycnn" and config["version"] == 1 and config["dtype"] == "float32"
    assert [layer["class"] for layer in config["layers"]] == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"]


# ---- layers with state: BatchNorm's running statistics --------------------------------------------
@pytest.fixture(scope="module")
def norm_bytes():
    """A network with a BatchNorm after a conv and one after Flatten, a few steps trained (statistics not 0 and 1)."""
    model = Sequential([Conv2D(1, 3, 3), BatchNorm(3), ReLU(), MaxPool2D(2), Flatten(), BatchNorm(507), Dropout(0.2),
                        Dense(507, 10)], seed=0, input_shape=(1, 28, 28))
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 1, 28, 28)), rng.integers(0, 10, 64), epochs=1, batch_size=16)
    return model.to_bytes()


def test_running_statistics_are_saved_and_loaded_bit_for_bit(norm_bytes, rng):
    model = pycnn.from_bytes(norm_bytes)
    assert [name for name in members(norm_bytes) if name.startswith("1.")] == [
        "1.gamma.npy", "1.beta.npy", "1.running_mean.npy", "1.running_var.npy"]
    running = model.layers[1].state["running_mean"]
    assert running.dtype == np.float32 and np.abs(running).min() > 0  # trained: not the starting zeros
    again = pycnn.from_bytes(model.to_bytes())
    for a, b in zip(again.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    x = rng.random((20, 1, 28, 28))
    np.testing.assert_array_equal(again.predict_proba(x), model.predict_proba(x))
    assert model.to_bytes() == norm_bytes


def test_a_file_written_before_layers_had_state_still_loads(model_bytes, rng):
    """Version 1 as it was first written: config.json and each layer's weights, nothing else."""
    model = pycnn.from_bytes(model_bytes)
    old = {"config.json": json.dumps({"format": "pycnn", "version": 1, **model.get_config(), "metadata": {}}).encode(),
           **{f"{i}.{name}.npy": npy(model.layers[i].params[name]) for i, name in
              [(0, "W"), (0, "b"), (4, "W"), (4, "b")]}}
    loaded = pycnn.from_bytes(rezip(old))
    x = rng.random((5, 1, 28, 28))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert list(members(model_bytes)) == list(old)  # and the file of such a network is still written so


def test_a_file_missing_a_running_statistic_or_with_a_negative_variance_is_refused(norm_bytes):
    files = members(norm_bytes)
    del files["5.running_var.npy"]
    refused(rezip(files), "missing weights: 5.running_var.npy")
    refused(with_member(norm_bytes, "1.running_var.npy", npy(np.array([1, -0.5, 1], np.float32))),
            "BatchNorm.running_var must be non-negative, got -0.5")
    refused(with_member(norm_bytes, "1.running_mean.npy", npy(np.array([1, np.nan, 1], np.float32))),
            "1.running_mean.npy: weights contain NaN or infinity")
    refused(with_member(norm_bytes, "1.running_mean.npy", npy(np.zeros(4, np.float32))),
            r"1.running_mean.npy: shape must be \(3,\)")


# ---- bad files -------------------------------------------------------------------------------
def test_empty_file_is_refused():
    refused(b"", "the model file is empty")


def test_non_bytes_are_refused():
    refused("PK not bytes", "model data must be bytes, got str")
    refused(None, "model data must be bytes, got NoneType")


@pytest.mark.parametrize("cut", [1, 2, 4, 30, 100, 1000, 0.5, -100, -22, -1])
def test_truncated_files_are_refused(model_bytes, cut):
    end = int(len(model_bytes) * cut) if isinstance(cut, float) else cut
    refused(model_bytes[:end], "not a (valid )?pycnn model file")


@pytest.mark.parametrize("seed, size", [(0, 1), (1, 64), (2, 5000), (3, 100_000)])
def test_random_bytes_are_refused(seed, size):
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    refused(data, r"not a pycnn model file \(it is not a zip/.npz archive\)")
    refused(b"PK\x03\x04" + data, "not a valid pycnn model file")


def test_a_zip_that_is_not_a_model_is_refused():
    refused(rezip({"readme.txt": b"hello"}), "has no config.json")
    refused(rezip({"config.json": b"{not json"}), "config.json is not valid JSON")
    refused(rezip({"config.json": b"[1, 2]"}), "format is not 'pycnn'")
    refused(rezip({"config.json": json.dumps({"format": "keras"}).encode()}), "format is not 'pycnn'")


@pytest.mark.parametrize("version, shown", [(3, "3"), (0, "0"), ("1", "'1'"), (None, "None"), (True, "True")])
def test_other_format_versions_are_refused(model_bytes, version, shown):
    def change(config):
        config["version"] = version
    refused(with_config(model_bytes, change),
            rf"unsupported model format version {shown}; this pycnn reads version 1")


def test_missing_version_is_refused(model_bytes):
    refused(with_config(model_bytes, lambda c: c.pop("version")), "unsupported model format version None")


@pytest.mark.parametrize("layer, key, value, message", [
    (4, "in_features", 1000, r"layer 4 \(Dense\): Dense expects input of shape \(1000,\), got \(1690,\)"),
    (0, "filters", 8, r"Dense expects input of shape \(1690,\), got \(1352,\)"),
    (0, "in_channels", 3, "Conv2D expects 3 input channels, got 1"),
    (0, "kernel_size", 5, r"Dense expects input of shape \(1690,\), got \(1440,\)"),
])
def test_config_with_wrong_layer_shapes_is_refused(model_bytes, layer, key, value, message):
    def change(config):
        config["layers"][layer]["config"][key] = value
    refused(with_config(model_bytes, change), message)


def test_wrong_shape_weights_with_a_consistent_config_are_refused(model_bytes):
    # shapes agree among the layers, but the stored arrays are for another model
    def change(config):
        config["layers"][0]["config"]["kernel_size"] = 5
        config["layers"][4]["config"]["in_features"] = 1440
    msg = refused(with_config(model_bytes, change), r"shape must be")
    assert msg in ("0.W.npy: shape must be (10, 1, 5, 5), got (10, 1, 3, 3)",
                   "4.W.npy: shape must be (1440, 10), got (1690, 10)")


@pytest.mark.parametrize("name, array, message", [
    ("0.W.npy", np.zeros((10, 1, 5, 5), np.float32), r"0.W.npy: shape must be \(10, 1, 3, 3\), got \(10, 1, 5, 5\)"),
    ("4.W.npy", np.zeros((10, 1690), np.float32), r"4.W.npy: shape must be \(1690, 10\), got \(10, 1690\)"),
    ("4.b.npy", np.zeros((), np.float32), r"4.b.npy: shape must be \(10,\), got \(\)"),
    ("0.b.npy", np.zeros(11, np.float32), r"0.b.npy: shape must be \(10,\), got \(11,\)"),
])
def test_wrong_shape_weight_arrays_are_refused(model_bytes, name, array, message):
    refused(with_member(model_bytes, name, npy(array)), message)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name, shape", [("0.W.npy", (10, 1, 3, 3)), ("4.b.npy", (10,))])
def test_nan_and_inf_weights_are_refused(model_bytes, name, shape, bad):
    array = np.ones(shape, np.float32)
    array.flat[3] = bad
    refused(with_member(model_bytes, name, npy(array)), f"{name}: weights contain NaN or infinity")


@pytest.mark.parametrize("array, shown", [
    (np.zeros((10, 1, 3, 3), np.float64), "'<f8'"),
    (np.zeros((10, 1, 3, 3), ">f4"), "'>f4'"),
    (np.zeros((10, 1, 3, 3), np.int32), "'<i4'"),
    (np.zeros((10, 1, 3, 3), np.float16), "'<f2'"),
    (np.zeros((10, 1, 3, 3), np.complex64), "'<c8'"),
])
def test_weights_of_the_wrong_dtype_are_refused(model_bytes, array, shown):
    refused(with_member(model_bytes, "0.W.npy", npy(array)), rf"0.W.npy: dtype must be float32 \(little-endian\), got {shown}")


@pytest.mark.parametrize("dtype", ["float16", "int8", "object", None])
def test_config_with_an_unsupported_dtype_is_refused(model_bytes, dtype):
    def change(config):
        config["dtype"] = dtype
    refused(with_config(model_bytes, change), "dtype must be one of float32, float64, got")


def test_fortran_ordered_weights_are_refused(model_bytes):
    header = "{'descr': '<f4', 'fortran_order': True, 'shape': (10, 1, 3, 3), }"
    refused(with_member(model_bytes, "0.W.npy", npy_with_header(header, bytes(360))),
            "Fortran-ordered arrays are not accepted")


def test_padded_or_short_weight_data_is_refused(model_bytes):
    good = members(model_bytes)["0.b.npy"]
    refused(with_member(model_bytes, "0.b.npy", good + b"\0\0\0\0"), "expected 40 bytes of data, found 41")
    refused(with_member(model_bytes, "0.b.npy", good[:-4]), "expected 40 bytes of data, found 36")


def test_missing_and_extra_members_are_refused(model_bytes):
    files = members(model_bytes)
    del files["4.b.npy"]
    refused(rezip(files), "missing weights: 4.b.npy")
    refused(with_member(model_bytes, "5.W.npy", npy(np.zeros(3, np.float32))), "unexpected members: 5.W.npy")


@pytest.mark.parametrize("kind", ["GaussianNoise", "Lambda", "os.system", "__import__", "Sequential", "Layer", None, 3])
def test_unknown_layer_classes_are_refused(model_bytes, kind):
    def change(config):
        config["layers"][1]["class"] = kind
    refused(with_config(model_bytes, change), "layer 1 is not a known pycnn layer")


@pytest.mark.parametrize("key, value, message", [
    ("kernel_size", "3", "kernel_size must be an int from 1 to 4096, got '3'"),
    ("kernel_size", 3.0, "kernel_size must be an int from 1 to 4096, got 3.0"),
    ("stride", True, "stride must be an int from 1 to 4096, got True"),
    ("padding", "full", "padding must be 'valid', 'same' or an int from 0 to 4096, got 'full'"),
    ("padding", [1, 1], r"padding must be 'valid', 'same' or an int from 0 to 4096, got \[1, 1\]"),
    ("padding", None, "padding must be 'valid', 'same' or an int from 0 to 4096, got None"),
    ("activation", "relu", "unexpected argument 'activation' "
                           r"\(takes in_channels, filters, kernel_size, stride, padding\)"),
    ("filters", -3, "filters must be an int from 1 to 10000000, got -3"),
    ("filters", 10 ** 30, "filters must be an int from 1 to 10000000, got 1000000000000000000000000000000"),
])
def test_bad_layer_arguments_are_refused(model_bytes, key, value, message):
    def change(config):
        config["layers"][0]["config"][key] = value
    msg = refused(with_config(model_bytes, change), message)
    assert msg.startswith("layer 0 (Conv2D)")


def test_bad_input_shapes_are_refused(model_bytes):
    for shape in ([1, 28], [1, 28, 28, 1], [0, 28, 28], [1, 28.0, 28], [1, 5000, 28], "1x28x28"):
        def change(config, shape=shape):
            config["input_shape"] = shape
        refused(with_config(model_bytes, change), "input_shape must be 3 ints from 1 to 4096")


# ---- pickles and code execution --------------------------------------------------------------
def test_pickle_payload_really_runs_when_unpickled(tmp_path):
    """Control for the tests below: this payload does create its file when unpickled."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(CreatesFile(marker))).close()
    assert marker.exists()


def test_object_dtype_npy_member_is_refused_without_unpickling(model_bytes, tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(10, dtype=object)
    payload[:] = [CreatesFile(marker)] * 10
    evil = npy(payload, allow_pickle=True)
    refused(with_member(model_bytes, "0.b.npy", evil), r"0.b.npy: dtype must be float32 \(little-endian\), got '\|O'")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["evil.pkl", "0.W.npy", "config.json", "data.pkl"])
def test_raw_pickle_members_are_refused_without_unpickling(model_bytes, tmp_path, name):
    marker = tmp_path / "pwned"
    refused(with_member(model_bytes, name, pickle.dumps(CreatesFile(marker))), ".")
    assert not marker.exists()


def test_pickle_member_is_named_in_the_message(model_bytes, tmp_path):
    refused(with_member(model_bytes, "evil.pkl", pickle.dumps(CreatesFile(tmp_path / "x"))),
            "unexpected members: evil.pkl")


def test_npy_header_with_code_is_never_evaluated(model_bytes, tmp_path):
    marker = tmp_path / "pwned"
    header = f"__import__('builtins').open({str(marker)!r}, 'w')"
    refused(with_member(model_bytes, "0.b.npy", npy_with_header(header)), "0.b.npy: unreadable .npy header")
    header = f"{{'descr': open({str(marker)!r}, 'w'), 'fortran_order': False, 'shape': (10,)}}"
    refused(with_member(model_bytes, "0.b.npy", npy_with_header(header)), "unreadable .npy header")
    assert not marker.exists()


# ---- absurd sizes ----------------------------------------------------------------------------
def load_peak(data):
    """(exception message, seconds, peak traced bytes) of from_bytes(data)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        pycnn.from_bytes(data)
        message = None
    except ValueError as err:
        message = str(err)
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return message, seconds, peak


def test_npy_header_claiming_a_billion_elements_is_refused_without_allocating(model_bytes):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }"
    message, _, peak = load_peak(with_member(model_bytes, "4.W.npy", npy_with_header(header, bytes(1000))))
    assert message and r"4.W.npy: shape must be (1690, 10), got (1000000000,)" in message
    assert peak < 20 * 2 ** 20


def test_config_asking_for_a_trillion_parameter_layer_is_refused_before_building(model_bytes):
    def change(config):
        config["layers"][4]["config"].update(in_features=10 ** 6, out_features=10 ** 6)
    message, seconds, peak = load_peak(with_config(model_bytes, change))
    assert message and "at most 10,000,000 are allowed" in message
    assert peak < 20 * 2 ** 20 and seconds < 1


@pytest.mark.parametrize("key, value", [
    ("filters", 10 ** 6),
    ("kernel_size", 4000),
    ("in_channels", 10 ** 6),
])
def test_config_asking_for_a_huge_conv_layer_is_refused_before_building(model_bytes, key, value):
    def change(config):
        config["layers"][0]["config"][key] = value
    message, seconds, peak = load_peak(with_config(model_bytes, change))
    assert message and "parameters" in message
    assert peak < 20 * 2 ** 20 and seconds < 1


def test_absurd_ints_in_a_layer_config_are_refused(model_bytes):
    def change(config):
        config["layers"][2]["config"]["pool_size"] = 10 ** 30
    refused(with_config(model_bytes, change), r"layer 2 \(MaxPool2D\): pool_size must be an int from 1 to 4096, got 10{30}")


def test_absurd_padding_is_refused_even_without_an_input_shape():
    model = Sequential([Conv2D(1, 2, 3), ReLU(), Flatten(), Dense(2 * 26 * 26, 10)], seed=0, input_shape=(1, 28, 28))

    def change(config):
        config["layers"][0]["config"]["padding"] = 10 ** 6
        config["input_shape"] = None
    with pytest.raises(ValueError, match="input_shape must be 3 ints"):
        pycnn.from_bytes(with_config(model.to_bytes(), change))


def test_a_model_without_input_shape_cannot_be_saved_until_fit_learns_it():
    model = Sequential([Conv2D(1, 2, 3), ReLU(), Flatten(), Dense(2 * 26 * 26, 10)], seed=0)
    with pytest.raises(ValueError, match="no input_shape"):
        model.to_bytes()
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 1, 28, 28)), rng.integers(0, 10, 8), batch_size=8)
    assert model.input_shape == (1, 28, 28)
    assert pycnn.from_bytes(model.to_bytes()).input_shape == (1, 28, 28)


def crafted_file(layers, input_shape, dtype="float32"):
    """A model file written by hand: config plus all-zero weights of the right shapes (deflated: tiny)."""
    config = {"format": "pycnn", "version": 1, "dtype": dtype, "input_shape": input_shape, "metadata": {},
              "layers": [{"class": kind, "config": args} for kind, args in layers]}
    files = {"config.json": json.dumps(config).encode()}
    for i, (kind, args) in enumerate(layers):
        if kind == "Conv2D":
            k = args["kernel_size"]
            shapes = {"W": (args["filters"], args["in_channels"], k, k), "b": (args["filters"],)}
        elif kind == "Dense":
            shapes = {"W": (args["in_features"], args["out_features"]), "b": (args["out_features"],)}
        else:
            shapes = {}
        for name, shape in shapes.items():
            files[f"{i}.{name}.npy"] = npy(np.zeros(shape, dtype))
    return rezip(files)


def test_layers_that_do_not_fit_together_are_refused_before_any_is_built(model_bytes):
    # a 64 kB file whose conv asks for 900,000 filters (9M weights, under MAX_PARAMS) that the Dense cannot take
    def change(config):
        config["layers"][0]["config"]["filters"] = 900_000
    message, seconds, peak = load_peak(with_config(model_bytes, change))
    assert message and "Dense expects input of shape (1690,)" in message
    assert peak < 20 * 2 ** 20, f"{peak / 2 ** 20:.0f} MB allocated to refuse a {len(model_bytes) // 1024} kB file"


@pytest.mark.parametrize("layers, input_shape, needs", [
    # no input_shape, so nothing bounds the padding: one 28x28 prediction pads to 8220x8220 (2.4 GB of columns)
    ([("Conv2D", {"in_channels": 1, "filters": 2, "kernel_size": 3, "stride": 1, "padding": 4096}),
      ("ReLU", {}), ("Flatten", {}), ("Dense", {"in_features": 2 * 26 * 26, "out_features": 10})], None, "2.4 GB"),
    # 4.5M weights (under MAX_PARAMS), but a 1500x1500 kernel slid over 1501x1501 places: ~5e12 values
    ([("Conv2D", {"in_channels": 1, "filters": 1, "kernel_size": 1500, "stride": 1, "padding": "valid"}),
      ("Flatten", {}), ("Dense", {"in_features": 1501 * 1501, "out_features": 1})], [1, 3000, 3000], "20 TB"),
], ids=["padding-4096-no-input-shape", "kernel-1500"])
def test_model_whose_one_image_prediction_needs_absurd_memory_is_refused(layers, input_shape, needs):
    data = crafted_file(layers, input_shape)
    assert len(data) < 2 ** 20
    message, _, _ = load_peak(data)  # never predict with it: that is what would need `needs`
    assert message, f"loaded a model that needs about {needs} to predict one image"


def test_zip_bomb_member_is_refused_without_inflating_it(model_bytes):
    files = members(model_bytes)
    files["4.W.npy"] = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1690, 10), }",
                                       bytes(80 * 2 ** 20))  # 80 MB of zeros deflate to ~80 kB
    bomb = rezip(files)
    assert len(bomb) < 2 ** 20
    message, seconds, peak = load_peak(bomb)
    assert message and "would unpack to" in message and "at most 67,108,864 allowed" in message
    assert peak < 20 * 2 ** 20 and seconds < 1


def test_huge_config_json_is_refused(model_bytes):
    def change(config):
        config["metadata"] = {"padding": "x" * (2 * 2 ** 20)}
    message, _, peak = load_peak(with_config(model_bytes, change))
    assert message == "config.json is absurdly large"
    assert peak < 20 * 2 ** 20


def test_200_mb_input_is_refused_quickly():
    data = b"PK\x03\x04" + bytes(200 * 2 ** 20)
    message, seconds, peak = load_peak(data)
    assert message == "the model file is 209,715,204 bytes; a pycnn model file is at most 67,108,864"
    assert seconds < 0.5
    assert peak < 2 ** 20  # nothing built, nothing copied


def test_200_mb_file_is_refused_by_load(tmp_path):
    path = tmp_path / "huge.npz"
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04")
        f.truncate(200 * 2 ** 20)  # sparse: costs no disk
    start = time.perf_counter()
    with pytest.raises(ValueError, match="a pycnn model file is at most 67,108,864"):
        pycnn.load(path)
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "file"])
def test_200_mb_input_is_refused_without_copying_it(kind, tmp_path):
    big = bytearray(200 * 2 ** 20)
    big[:4] = b"PK\x03\x04"
    if kind == "file":
        path = tmp_path / "huge.npz"
        path.write_bytes(big)
        del big
        tracemalloc.start()
        try:
            with pytest.raises(ValueError):
                pycnn.load(path)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    else:
        message, _, peak = load_peak(big if kind == "bytearray" else memoryview(big))
        assert message
    assert peak < 10 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MB"


def test_duplicate_members_are_refused(model_bytes):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name, content in members(model_bytes).items():
            zf.writestr(name, content)
        zf.writestr("0.b.npy", npy(np.zeros(10, np.float32)))
    refused(buf.getvalue(), "duplicate members")


def test_a_failed_load_leaves_no_trace_and_the_next_load_works(model_bytes, tmp_path):
    for bad in (b"", model_bytes[:100], with_member(model_bytes, "0.W.npy", npy(np.full((10, 1, 3, 3), np.nan, np.float32)))):
        with pytest.raises(ValueError):
            pycnn.from_bytes(bad)
    assert os.listdir(tmp_path) == []
    assert pycnn.from_bytes(model_bytes).count_params() == 17010
