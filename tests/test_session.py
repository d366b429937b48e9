"""The page's Python session (pycnn.session), in CPython: the same code the web worker runs."""
import json
import math

import numpy as np
import pytest

import pycnn
from pycnn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, codegen, explain
from pycnn import session as session_module
from pycnn.session import Session, conv_blocks, dispatch, encode

TINY_RUN = {"epochs": 1, "batch_size": 32, "lr": 0.01, "train_size": 256, "augment": False}


@pytest.fixture(scope="module")
def digits(subset):
    """1,200 subset digits of every kind (the subset is sorted by digit) as the page holds them: uint8 (N, 28, 28), labels."""
    x, y = subset
    pick = np.random.default_rng(0).permutation(len(y))[:1200]
    return np.round(x[pick, 0] * 255).astype(np.uint8), y[pick]


@pytest.fixture
def session(digits):
    return Session(*digits, heldout=200, seed=0)


def two_conv():
    return Sequential([Conv2D(1, 4, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(4, 6, 3), MaxPool2D(2), ReLU(),
                       Flatten(), Dense(6 * 6 * 6, 10)], seed=1, input_shape=(1, 28, 28))


def decode(reply):
    """dispatch()'s (JSON, buffer) -> the reply with numpy arrays and bytes put back, as worker.js does."""
    text, buffer = reply

    def revive(v):
        if isinstance(v, dict):
            if "f32" in v:
                size = math.prod(v["shape"])
                return np.frombuffer(buffer, "<f4", size, v["f32"]).reshape(v["shape"])
            if "u8" in v:
                return buffer[v["u8"]:v["u8"] + v["size"]]
            return {k: revive(item) for k, item in v.items()}
        if isinstance(v, list):
            return [revive(item) for item in v]
        return v
    return revive(json.loads(text))


def draw_seven(width=120, height=100):
    """A 7 as the canvas sends it: uint8 ink levels, row by row."""
    ink = np.zeros((height, width), np.uint8)
    ink[15:23, 20:100] = 255
    for row in range(23, 90):
        col = 95 - (row - 23) * 50 // 67
        ink[row, col - 4:col + 4] = 255
    return ink.tobytes(), width, height


def test_split_is_stratified_and_seeded_and_info_reports_counts_defaults_and_limits(session, digits):
    info = session.info()
    assert (info["train_count"], info["heldout_count"]) == (1000, 200)
    assert session.x_train.dtype == np.float32 and session.x_train.shape == (1000, 1, 28, 28)
    assert 0 <= session.x_train.min() and session.x_train.max() <= 1
    # every digit keeps its share of the held-out part, and the same seed gives the same split
    counts = np.bincount(session.y_heldout, minlength=10) / 200
    assert np.allclose(counts, np.bincount(digits[1], minlength=10) / 1200, atol=0.01)
    again = Session(*digits, heldout=200, seed=0)
    assert np.array_equal(again.y_heldout, session.y_heldout)
    assert info["defaults"] == pycnn.TrainingConfig.defaults()
    assert info["limits"] == pycnn.TrainingConfig.limits()
    json.dumps(info)  # the page gets it as JSON


def test_from_files_reads_the_bundled_idx_files(subset_dir):
    session = Session.from_files(subset_dir / "subset-images-idx3-ubyte.gz", subset_dir / "subset-labels-idx1-ubyte.gz",
                                 1500, 0)
    assert (len(session.y_train), len(session.y_heldout)) == (8500, 1500)


def test_a_run_starts_steps_one_batch_at_a_time_and_ends_with_an_epoch(session):
    started = session.start(TINY_RUN)
    assert started == {"total_steps": 8, "batches_per_epoch": 8}
    reports = [session.step() for _ in range(8)]
    assert [r["step"] for r in reports] == list(range(1, 9))
    assert all(len(r["losses"]) == 1 for r in reports)
    assert reports[-1]["done"] and reports[-1]["epoch_results"][0]["epoch"] == 1
    assert "val_accuracy" in reports[-1]["epoch_results"][0]
    assert session.evaluate()["accuracy"] > 0.4  # 256 digits, one epoch: far better than 10% guessing


def test_stopping_between_batches_keeps_a_usable_model_and_train_continues_from_it(session):
    session.start({**TINY_RUN, "epochs": 3})
    for _ in range(5):
        session.step()
    stopped = session.model.get_weights()
    assert 0 <= session.evaluate()["accuracy"] <= 1
    session.start(TINY_RUN)  # a new run continues from the stopped weights, not from scratch
    first = session.step()
    assert first["step"] == 1
    assert not all(np.array_equal(a, b) for a, b in zip(stopped, session.model.get_weights()))


def test_invalid_settings_are_refused_and_no_run_starts(session):
    for bad in ({"epochs": 0}, {"lr": -1}, {"optimizer": "rmsprop"}, {"nonsense": 1}, {"batch_size": 300, "train_size": 256}):
        text, _ = dispatch(session, "start", json.dumps({"config": bad}))
        assert "error" in json.loads(text), bad
    assert session.trainer is None
    assert "error" in json.loads(dispatch(session, "step")[0])


def test_a_diverging_run_reports_it_and_the_weights_go_back(session):
    before = session.model.get_weights()
    session.start({**TINY_RUN, "lr": 10.0})
    for _ in range(8):
        report = session.step()
        if "diverged" in report:
            break
    assert "diverged" in report and "smaller learning rate" in report["diverged"]
    assert all(np.array_equal(a, b) for a, b in zip(before, session.model.get_weights()))
    assert session.trainer is None


def test_load_accepts_a_model_file_and_reports_its_heldout_accuracy(session):
    other = two_conv()
    result = session.load(other.to_bytes())
    assert result == other.evaluate(session.x_heldout, session.y_heldout)
    assert [type(layer) for layer in session.model.layers] == [type(layer) for layer in other.layers]


@pytest.mark.parametrize("model, message", [
    (Sequential([Flatten(), Dense(784, 3)], seed=0, input_shape=(1, 28, 28)), "it has 3 classes, the page needs 10"),
    (Sequential([Flatten(), Dense(256, 10)], seed=0, input_shape=(1, 16, 16)), "it reads images of shape (1, 16, 16)"),
])
def test_load_refuses_a_model_that_does_not_fit_the_page_and_keeps_the_current_one(session, model, message):
    current = session.model
    text, _ = dispatch(session, "load", "{}", model.to_bytes())
    assert message in json.loads(text)["error"]
    assert session.model is current


def test_load_refuses_a_corrupt_file_with_the_loaders_message(session):
    current = session.model
    reply = json.loads(dispatch(session, "load", "{}", b"this is not a model")[0])
    assert "not a pycnn model file" in reply["error"]
    assert session.model is current


def test_reset_rebuilds_the_current_architecture_with_fresh_weights(session):
    session.load(two_conv().to_bytes())
    trained = session.model.get_weights()
    result = session.reset(seed=3)
    assert set(result) == {"loss", "accuracy"}
    assert session.model.get_config() == two_conv().get_config()  # same layers, not the seed network
    assert not any(np.array_equal(a, b) for a, b in zip(trained, session.model.get_weights()) if a.any())
    fresh = session.model.get_weights()
    session.reset(seed=3)  # the same seed gives the same weights
    assert all(np.array_equal(a, b) for a, b in zip(fresh, session.model.get_weights()))


def test_filters_report_every_conv_layer(session):
    session.load(two_conv().to_bytes())
    reply = decode(dispatch(session, "filters"))
    layers = reply["conv_layers"]
    assert [entry["layer"] for entry in layers] == [0, 3]
    assert [entry["weights"].shape for entry in layers] == [(4, 1, 3, 3), (6, 4, 3, 3)]
    assert np.array_equal(layers[1]["weights"], session.model.layers[3].params["W"])


def test_a_drawing_is_preprocessed_and_inspected_with_the_maps_of_every_conv_block(session):
    session.load(two_conv().to_bytes())
    pixels, width, height = draw_seven()
    reply = decode(dispatch(session, "predict", json.dumps({"width": width, "height": height}), pixels))
    probs = np.asarray(reply["probabilities"])
    assert probs.shape == (10,) and probs.sum() == pytest.approx(1, abs=1e-5)
    assert reply["prediction"] == int(probs.argmax())
    assert reply["input"].shape == (28, 28) and reply["input"].max() == pytest.approx(1)
    blocks = reply["blocks"]
    assert [b["layer"] for b in blocks] == [0, 3]
    assert blocks[0]["activated"].shape == (4, 28, 28) and blocks[0]["pooled"].shape == (4, 14, 14)
    assert blocks[1]["activated"].shape == (6, 12, 12) and blocks[1]["pooled"].shape == (6, 6, 6)
    assert min(b["activated"].min() for b in blocks) >= 0  # after the ReLU
    # the maps are the layers' own outputs for the digit the network saw
    expected = session.model.activations(reply["input"][None, None])
    assert np.allclose(blocks[1]["pooled"], expected[5][0], atol=1e-6)
    assert reply["probabilities"] == pytest.approx(session.model.predict_proba(reply["input"][None, None])[0], abs=1e-6)


def test_conv_blocks_without_relu_or_pool_report_the_conv_output():
    model = Sequential([Conv2D(1, 2, 3), Conv2D(2, 3, 3), ReLU(), Flatten(), Dense(3 * 24 * 24, 10)], seed=0,
                       input_shape=(1, 28, 28))
    outputs = [o[0] for o in model.activations(np.random.default_rng(0).random((1, 1, 28, 28)))]
    first, second = conv_blocks(model.layers, outputs)
    assert first["pooled"] is None and np.array_equal(first["activated"], outputs[0])
    assert first["activated"].min() < 0  # no ReLU: the raw conv output
    assert second["pooled"] is None and np.array_equal(second["activated"], np.maximum(outputs[1], 0))


def test_an_empty_drawing_is_not_read(session):
    reply = json.loads(dispatch(session, "predict", json.dumps({"width": 50, "height": 40}), bytes(2000))[0])
    assert reply == {"empty": True}


def test_a_drawing_of_the_wrong_size_is_refused(session):
    reply = json.loads(dispatch(session, "predict", json.dumps({"width": 50, "height": 40}), bytes(100))[0])
    assert "width*height = 2000 pixels, got 100" in reply["error"]


def test_a_heldout_digit_is_inspected_with_its_label(session):
    reply = decode(dispatch(session, "inspect_heldout", json.dumps({"index": 7})))
    assert reply["index"] == 7 and reply["label"] == int(session.y_heldout[7])
    assert np.array_equal(reply["input"], session.x_heldout[7, 0])
    assert reply["prediction"] == int(session.model.predict(session.x_heldout[7:8])[0])
    for index in (-1, 200, "3", 2.5, True):
        assert "index" in json.loads(dispatch(session, "inspect_heldout", json.dumps({"index": index}))[0])["error"]


def test_analysis_counts_every_heldout_digit_and_lists_the_most_confident_mistakes_first(session):
    session.start(TINY_RUN)
    for _ in range(8):
        session.step()
    reply = decode(dispatch(session, "analyse", json.dumps({"max_mistakes": 5})))
    confusion = np.array(reply["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 200 == reply["count"]
    assert np.array_equal(confusion.sum(axis=1), np.bincount(session.y_heldout, minlength=10))
    pred = session.model.predict(session.x_heldout)
    assert reply["correct"] == np.trace(confusion) == np.count_nonzero(pred == session.y_heldout)
    assert reply["wrong"] == 200 - reply["correct"] > 5
    mistakes = reply["mistakes"]
    assert len(mistakes) == 5 and reply["mistake_images"].shape == (5, 28, 28)
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    for m, image in zip(mistakes, reply["mistake_images"]):
        assert m["label"] != m["predicted"] == pred[m["index"]]
        assert np.array_equal(image, session.x_heldout[m["index"], 0])


def test_estimate_times_a_copy_and_leaves_the_model_alone(session):
    before = session.model.get_weights()
    reply = session.estimate({"batch_size": 32}, batches=4)
    assert reply["train_images_per_second"] > 0 and reply["eval_images_per_second"] > 0
    assert all(np.array_equal(a, b) for a, b in zip(before, session.model.get_weights()))


def test_the_model_file_crosses_as_bytes_and_loads_back(session):
    reply = decode(dispatch(session, "model_bytes"))
    assert bytes(reply["bytes"]) == session.model.to_bytes()
    assert pycnn.from_bytes(bytes(reply["bytes"])).get_config() == session.model.get_config()


def test_encode_makes_numpy_values_json_safe_and_packs_arrays_as_little_endian_float32():
    value = {"nan": float("nan"), "inf": np.float32(np.inf), "int": np.int64(3), "float": np.float32(0.5),
             "tuple": (1, 2), "nested": [{"a": np.arange(6, dtype=np.float64).reshape(2, 3)}],
             "blob": b"\x01\x02\x03", "b": np.ones(3, np.float32)}
    text, buffer = encode(value)
    plain = json.loads(text)
    assert plain["nan"] is None and plain["inf"] is None and plain["int"] == 3 and plain["float"] == 0.5
    assert plain["tuple"] == [1, 2]
    assert plain["nested"][0]["a"] == {"shape": [2, 3], "f32": 0}
    assert plain["blob"] == {"u8": 24, "size": 3}
    assert plain["b"] == {"shape": [3], "f32": 28}  # the next part starts on a 4-byte boundary
    revived = decode((text, buffer))
    assert np.array_equal(revived["nested"][0]["a"], np.arange(6).reshape(2, 3))
    assert revived["blob"] == b"\x01\x02\x03" and np.array_equal(revived["b"], np.ones(3))
    assert buffer[:8] == np.array([0, 1], "<f4").tobytes()


def test_call_refuses_unknown_and_private_methods(session):
    for method in ("_inspect", "__init__", "nonsense", "model"):
        assert "unknown request" in json.loads(dispatch(session, method)[0])["error"]
    assert "JSON object" in json.loads(dispatch(session, "evaluate", "[1]")[0])["error"]


# ---- the network editor ----------------------------------------------------------------------
CONV = {"class": "Conv2D", "config": {"filters": 4, "kernel_size": 3, "padding": "valid"}}
RELU = {"class": "ReLU", "config": {}}
POOL = {"class": "MaxPool2D", "config": {}}
FLAT = {"class": "Flatten", "config": {}}


def dense(units):
    return {"class": "Dense", "config": {"out_features": units}}


def test_every_preset_goes_through_the_editor_unchanged():
    spec = session_module.editor_spec()
    assert spec["default_preset"] in spec["presets"]
    for name, entry in spec["presets"].items():
        assert session_module.network_config(entry["layers"]) == {**pycnn.presets.PRESETS[name], "input_shape": [1, 28, 28]}
    json.dumps(spec)


def test_the_editor_fills_in_what_follows_from_the_layer_before():
    config = session_module.network_config([CONV, RELU, POOL, {**CONV, "config": {**CONV["config"], "filters": 6}},
                                            RELU, POOL, FLAT, dense(10)])
    conv1, conv2, dense_layer = config["layers"][0]["config"], config["layers"][3]["config"], config["layers"][7]["config"]
    assert conv1["in_channels"] == 1 and conv2["in_channels"] == 4 and conv1["stride"] == 1
    assert config["layers"][2]["config"] == {"pool_size": 2, "stride": 2}
    assert dense_layer["in_features"] == 6 * 5 * 5
    assert Sequential.from_config(config).output_shapes()[-1] == (10,)


@pytest.mark.parametrize("layers, message", [
    ([], "at least one layer"),
    ([CONV, dense(10)], "layer 2 (Dense) needs a flat input but gets (4, 26, 26): add a Flatten layer before it"),
    ([FLAT, CONV, FLAT, dense(10)], "layer 2 (Conv2D) works on images (channels, height, width) but gets the flat (784,)"),
    ([CONV, POOL, CONV, POOL, CONV, POOL, CONV, FLAT, dense(10)], "layer 7 (Conv2D): Conv2D kernel_size 3 is larger than its 1x1 input"),
    ([POOL] * 5 + [FLAT, dense(10)], "layer 5 (MaxPool2D): MaxPool2D pool_size 2 is larger than its 1x1 input"),
    ([CONV, FLAT, dense(7)], "layer 3 (Dense): the last layer must be a Dense layer with 10 units"),
    ([CONV, FLAT], "layer 2 (Flatten): the last layer must be a Dense layer"),
    ([{"class": "Conv2D", "config": {"filters": 4, "kernel_size": 4, "padding": "valid"}}, FLAT, dense(10)],
     "layer 1 (Conv2D): kernel_size must be one of 3, 5, got 4"),
    ([{"class": "Conv2D", "config": {"filters": 65, "kernel_size": 3, "padding": "valid"}}, FLAT, dense(10)],
     "layer 1 (Conv2D): filters must be an int from 1 to 64, got 65"),
    ([{"class": "Conv2D", "config": {"filters": 4, "kernel_size": 3, "padding": "valid", "stride": 2}}, FLAT, dense(10)],
     "layer 1 (Conv2D): unexpected argument 'stride'"),
    ([{"class": "Softmax", "config": {}}], "layer 1: the editor has no layer kind 'Softmax'"),
    ([FLAT, dense(512), dense(512), dense(512), dense(512), dense(10)], "layer 2 (Dense) has 401,920 of the network's"),
    ([{"class": "Conv2D", "config": {"filters": 64, "kernel_size": 5, "padding": "same"}}] * 2 + [FLAT, dense(10)],
     "the network needs 82.1 M multiply-adds per digit, more than the 5 M the page trains in reasonable time; "
     "layer 2 (Conv2D) alone needs 80.3 M"),
    ([CONV] * 17, "at most 16 layers; this one has 17"),
])
def test_a_network_that_does_not_fit_is_refused_naming_the_layer_and_why(session, layers, message):
    current = session.model
    for method in ("check_network", "set_network"):
        reply = json.loads(dispatch(session, method, json.dumps({"layers": layers}))[0])
        assert message in reply["error"], reply
    assert session.model is current


def test_check_network_summarises_without_touching_the_model(session):
    current = session.model.get_weights()
    reply = decode(dispatch(session, "check_network", json.dumps({"layers": [CONV, RELU, POOL, FLAT, dense(10)]})))
    assert [row["name"] for row in reply["rows"]] == ["conv2d", "re_lu", "max_pool2d", "flatten", "dense"]
    assert [row["output_shape"] for row in reply["rows"]] == [[4, 26, 26], [4, 26, 26], [4, 13, 13], [676], [10]]
    assert [row["params"] for row in reply["rows"]] == [40, 0, 0, 0, 6770]
    assert reply["total_params"] == 6810 and reply["work"] == 4 * 26 * 26 * 9 + 4 * 26 * 26 + 4 * 26 * 26 + 676 + 6760
    assert reply["seconds_per_epoch"] is None  # nothing measured yet
    assert all(np.array_equal(a, b) for a, b in zip(current, session.model.get_weights()))


def test_once_the_speed_is_measured_the_summary_estimates_seconds_per_epoch(session):
    session.estimate({"batch_size": 32}, batches=4)
    small = session.check_network([CONV, RELU, POOL, FLAT, dense(10)])["seconds_per_epoch"]
    bigger = session.check_network([{**CONV, "config": {**CONV["config"], "filters": 16}}, RELU, POOL, FLAT, dense(10)])
    assert 0 < small < bigger["seconds_per_epoch"]


def test_set_network_replaces_the_model_with_fresh_weights_and_network_describes_it(session):
    layers = [CONV, RELU, POOL, FLAT, dense(10)]
    reply = session.set_network(layers, seed=2)
    assert reply["layers"] == layers and reply["editable"] and reply["preset"] is None
    assert session.model.count_params() == 6810 == reply["total_params"]
    assert session.network()["layers"] == layers
    session.reset(seed=5)  # Reset keeps this network
    assert session.network()["layers"] == layers
    for name, entry in session_module.editor_spec()["presets"].items():
        assert session.set_network(entry["layers"])["preset"] == name


def test_a_loaded_network_the_editor_cannot_make_is_shown_but_not_editable(session):
    model = Sequential([Conv2D(1, 4, 3, stride=2), ReLU(), Flatten(), Dense(4 * 13 * 13, 10)], seed=0, input_shape=(1, 28, 28))
    session.load(model.to_bytes())
    network = session.network()
    assert not network["editable"] and network["preset"] is None
    assert [layer["class"] for layer in network["layers"]] == ["Conv2D", "ReLU", "Flatten", "Dense"]
    assert network["rows"][0]["output_shape"] == [4, 13, 13]


def test_info_publishes_the_editor_and_the_current_network(session):
    info = session.info()
    assert info["editor"]["kinds"]["Conv2D"]["args"]["kernel_size"] == {"type": "choice", "choices": [3, 5]}
    assert info["network"]["preset"] == info["editor"]["default_preset"]


# ---- asking about a digit without drawing it ---------------------------------------------------
def test_next_heldout_steps_through_the_digits_of_one_label(session):
    sevens = np.flatnonzero(session.y_heldout == 7)
    first = session.next_heldout(label=7)
    assert first["index"] == sevens[0] and first["label"] == 7
    second = session.next_heldout(label=7, after=first["index"])
    assert second["index"] == sevens[1]
    assert session.next_heldout(label=7, after=int(sevens[-1]))["index"] == sevens[0]  # wraps round
    assert session.next_heldout(after=4)["index"] == 5  # any digit
    reply = json.loads(dispatch(session, "next_heldout", json.dumps({"label": 12}))[0])
    assert "label must be a digit from 0 to 9, got 12" in reply["error"]


def test_a_confusion_matrix_cell_lists_its_digits_most_confident_first(session):
    session.start(TINY_RUN)
    for _ in range(8):
        session.step()
    confusion = np.array(session.analyse()["confusion"])
    label, predicted = np.unravel_index(np.argmax(confusion - np.diag(np.diag(confusion))), confusion.shape)
    cell = decode(dispatch(session, "heldout_cell", json.dumps({"label": int(label), "predicted": int(predicted),
                                                               "max_digits": 3})))
    assert cell["count"] == confusion[label, predicted] > 0
    assert len(cell["digits"]) == min(3, cell["count"]) == len(cell["images"])
    probs = session.model.predict_proba(session.x_heldout)
    for digit, image in zip(cell["digits"], cell["images"]):
        assert session.y_heldout[digit["index"]] == label and probs[digit["index"]].argmax() == predicted
        assert np.array_equal(image, session.x_heldout[digit["index"], 0])
    confidences = [d["confidence"] for d in cell["digits"]]
    assert confidences == sorted(confidences, reverse=True)
    diagonal = session.heldout_cell(3, 3, max_digits=1)
    assert diagonal["count"] == confusion[3, 3]
    assert "predicted must be a digit" in json.loads(dispatch(session, "heldout_cell",
                                                             json.dumps({"label": 1, "predicted": -1}))[0])["error"]


# ---- see inside one step --------------------------------------------------------------------------
def trained_session(session):
    """The session after one tiny run: a model worth explaining and a run's optimiser with state."""
    session.start(TINY_RUN)
    while not session.step()["done"]:
        pass
    return session


def weights_and_state(session, optimizer):
    """The model file and a deep copy of the optimiser's state: what Undo must give back exactly."""
    state = {k: [a.copy() for a in v] if isinstance(v, tuple) else v.copy() for k, v in optimizer.state.items()}
    return session.model.to_bytes(), state, getattr(optimizer, "t", None)


def same_state(a, b):
    (bytes_a, state_a, t_a), (bytes_b, state_b, t_b) = a, b
    return (bytes_a == bytes_b and t_a == t_b and state_a.keys() == state_b.keys()
            and all(all(np.array_equal(x, y) for x, y in zip(state_a[k], state_b[k])) for k in state_a))


@pytest.mark.parametrize("model", [None, two_conv()], ids=["default preset", "two conv layers"])
def test_the_arithmetic_of_a_cell_is_the_inspected_digits_and_crosses_the_boundary(digits, model):
    session = Session(*digits, heldout=200, seed=0, model=model)
    assert "no digit to explain" in json.loads(dispatch(session, "arithmetic", json.dumps(
        {"layer": 0, "channel": 0, "row": 0, "col": 0}))[0])["error"]
    shown = session.inspect_heldout(7)
    x = session.x_heldout[7]
    for block in shown["blocks"]:
        layer, (f, h, w) = block["layer"], block["activated"].shape
        for grid, (row, col) in (("activated", (h // 2, w - 1)), ("pooled", (1, 2))):
            args = {"layer": layer, "channel": f - 1, "row": row, "col": col, "grid": grid}
            if grid == "pooled" and block["pooled"] is None:
                continue
            reply = decode(dispatch(session, "arithmetic", json.dumps(args)))
            expected = explain.conv_arithmetic(session.model, x, layer, f - 1, row, col, grid)
            assert reply["sum"] == expected["sum"] and reply["conv"] == expected["conv"] == reply["sum"] + reply["bias"]
            np.testing.assert_array_equal(reply["products"], expected["products"].astype(np.float32))
            conv_row, conv_col = reply["row"], reply["col"]  # the conv cell explained (the pool's winner for "pooled")
            assert reply["relu"] == pytest.approx(block["activated"][f - 1, conv_row, conv_col], abs=2e-6)
            if reply["pooled"] is not None:
                pr, pc = reply["pooled_cell"]
                assert reply["pooled"] == pytest.approx(block["pooled"][f - 1, pr, pc], abs=1e-7)
    bad = json.loads(dispatch(session, "arithmetic", json.dumps({"layer": 1, "channel": 0, "row": 0, "col": 0}))[0])
    assert "layer must be the index of a Conv2D layer" in bad["error"]


def test_every_inspection_has_the_saliency_of_its_reading_and_any_digit_has_one_on_request(session):
    trained_session(session)
    text, buffer = dispatch(session, "predict", json.dumps({"width": 120, "height": 100}), draw_seven()[0])
    shown = decode((text, buffer))
    json.loads(text)  # JSON-safe
    x = session.inspected
    assert shown["saliency"]["digit"] == shown["prediction"]
    expected = explain.saliency(session.model, x, shown["prediction"])["gradient"]
    np.testing.assert_array_equal(shown["saliency"]["gradient"], expected.astype(np.float32))
    assert shown["saliency"]["gradient"].shape == (28, 28)
    other = (shown["prediction"] + 1) % 10
    why_not = decode(dispatch(session, "saliency", json.dumps({"digit": other})))
    assert why_not["digit"] == other and not np.array_equal(why_not["gradient"], shown["saliency"]["gradient"])
    assert "digit must be an int from 0 to 9" in json.loads(dispatch(session, "saliency", '{"digit": 10}')[0])["error"]


def test_a_step_tried_on_the_inspected_digit_is_undone_exactly_optimiser_state_included(session):
    trained_session(session)
    optimizer = session.trainer.optimizer
    session.inspect_heldout(3)
    before = weights_and_state(session, optimizer)
    label = int(session.y_heldout[3])
    first = decode(dispatch(session, "try_step", json.dumps({"label": label, "lr": 0.01})))
    assert first["steps"] == 1 and first["label"] == label and first["optimizer_step"] == before[2] + 1
    assert first["loss"] == pytest.approx(-math.log(first["probability_before"]), rel=1e-5)
    assert first["probability_after"] > first["probability_before"]  # a step towards the label
    conv = [entry for entry in first["layers"] if entry["class"] == "Conv2D"][0]
    assert conv["gradient"].shape == session.model.layers[0].params["W"].shape
    again = session.try_step(label, lr=0.01)  # Step again: from the stepped weights
    assert again["steps"] == 2 and again["loss"] == pytest.approx(first["loss_after"], rel=1e-5)
    assert not same_state(before, weights_and_state(session, optimizer))
    assert decode(dispatch(session, "undo_step")) == {"steps": 2}
    assert same_state(before, weights_and_state(session, optimizer))  # bit for bit
    assert "no step to undo" in json.loads(dispatch(session, "undo_step")[0])["error"]
    assert "no step to keep" in json.loads(dispatch(session, "keep_step")[0])["error"]


def test_a_kept_step_is_the_model_and_the_next_step_goes_on_from_it(session):
    trained_session(session)
    session.inspect_heldout(5)
    before = session.model.to_bytes()
    stepped = session.try_step(int(session.y_heldout[5]), lr=0.05)
    kept = decode(dispatch(session, "keep_step"))
    assert kept["steps"] == 1 and kept["evaluation"] == session.evaluate()
    after = session.model.to_bytes()
    assert after != before
    assert session.try_step(int(session.y_heldout[5]), lr=0.05)["loss"] == pytest.approx(stepped["loss_after"], rel=1e-5)
    session.undo_step()  # undoes only what came after the keep
    assert session.model.to_bytes() == after


def test_a_step_without_a_run_uses_an_optimiser_of_the_chosen_kind_and_a_run_undoes_a_step_not_kept(session):
    session.inspect_heldout(0)
    before = session.model.to_bytes()
    first = session.try_step(int(session.y_heldout[0]), lr=0.01, optimizer="adam")
    assert first["optimizer"] == "Adam" and first["first_step"] and first["optimizer_step"] == 1
    session.start(TINY_RUN)  # a run starts from the model as it was: the step was never kept
    assert session.model.to_bytes() == before
    assert "no step to undo" in json.loads(dispatch(session, "undo_step")[0])["error"]
    assert session.try_step(1)["optimizer_step"] == 1  # now the run's optimiser, which has taken no step yet
    session.reset()
    session.inspect_heldout(0)
    reply = json.loads(dispatch(session, "try_step", json.dumps({"label": 1, "optimizer": "rmsprop"}))[0])
    assert "optimizer must be one of" in reply["error"]


@pytest.mark.parametrize("replace", [lambda s: s.reset(seed=1), lambda s: s.load(two_conv().to_bytes()),
                                     lambda s: s.set_network(s.network()["layers"], seed=0)],
                         ids=["reset", "load", "set_network"])
def test_a_new_model_drops_the_step_and_the_digit_it_was_tried_on(session, replace):
    session.inspect_heldout(0)
    session.try_step(0, lr=0.01)
    replace(session)
    assert "no step to undo" in json.loads(dispatch(session, "undo_step")[0])["error"]
    assert "no digit to explain" in json.loads(dispatch(session, "try_step", '{"label": 0}')[0])["error"]


def test_the_code_is_the_current_network_and_settings_with_the_pages_split_and_seed(digits):
    session = Session(*digits, heldout=200, seed=3)
    settings = {"epochs": 2, "batch_size": 64, "lr": 0.005, "optimizer": "sgd", "train_size": 500, "seed": 4}
    session.set_network(session_module.editor_spec()["presets"]["two-conv"]["layers"], seed=2)
    shown = json.loads(dispatch(session, "python_code", json.dumps({"config": settings}))[0])
    config = session.model.get_config()
    assert shown == {"code": codegen.python_code(config, settings, seed=2, heldout=200, split_seed=3), "seed": 2}
    assert "seed=2, input_shape=(1, 28, 28))" in shown["code"] and "test_size=200, seed=3" in shown["code"]
    exported = json.loads(dispatch(session, "export_script", json.dumps({"config": settings}))[0])
    assert exported["file_name"] == codegen.SCRIPT_NAME == "train_pycnn.py"
    assert exported["script"] == codegen.export_script(config, settings, seed=2, heldout=200, split_seed=3)
    session.reset(seed=7)
    assert "seed=7, input_shape" in session.python_code(settings)["code"]
    session.load(two_conv().to_bytes())  # a loaded model's first weights are unknown: fresh ones from seed 0
    loaded = session.python_code(settings)
    assert loaded["seed"] is None and "seed=0, input_shape" in loaded["code"]
    assert "lr must be" in json.loads(dispatch(session, "python_code", json.dumps({"config": {"lr": -1}}))[0])["error"]


# ---- your digits ---------------------------------------------------------------------------------
FAST_FINE_TUNE = {"steps": 4, "batch_size": 8, "own_pool": 100, "bundled_pool": 256}


def teach(session, images, labels):
    """Show each 28x28 image to the network (as a held-out digit would be) and add it with its label."""
    for image, label in zip(images, labels):
        session._inspect(image)
        session.add_digit(int(label))


def taught_session(session, n=10):
    """session with n of its held-out digits taught, one of each digit first."""
    order = np.argsort(session.y_heldout, kind="stable")
    firsts = order[np.searchsorted(session.y_heldout[order], np.arange(10))]
    pick = np.concatenate([firsts, np.setdiff1d(np.arange(len(session.y_heldout)), firsts)])[:n]
    teach(session, session.x_heldout[pick], session.y_heldout[pick])
    return session


def test_a_drawing_inspected_last_is_added_as_the_image_the_network_saw_and_listed_packed(session):
    assert "error" in json.loads(dispatch(session, "add_digit", json.dumps({"label": 3}))[0])  # nothing inspected yet
    pixels, width, height = draw_seven()
    seen = decode(dispatch(session, "predict", json.dumps({"width": width, "height": height}), pixels))["input"]
    reply = decode(dispatch(session, "add_digit", json.dumps({"label": 7})))
    assert reply["count"] == 1 and reply["labels"] == [7] and reply["counts"] == [0] * 7 + [1, 0, 0]
    assert reply["images"].shape == (1, 28, 28) and np.array_equal(reply["images"][0], seen)
    # the file the page keeps is the same digits, to a grey level
    x, y = pycnn.yourdigits.from_bytes(reply["file"])
    assert y.tolist() == [7] and np.abs(x[0, 0] - seen).max() <= 0.5 / 255 + 1e-6
    session.inspect_heldout(0)
    reply = decode(dispatch(session, "add_digit", json.dumps({"label": int(session.y_heldout[0])})))
    assert reply["count"] == 2 and np.array_equal(reply["images"][1], session.x_heldout[0, 0])


@pytest.mark.parametrize("label, message", [(10, "label must be a digit from 0 to 9, got 10"),
                                            (-1, "label must be a digit from 0 to 9, got -1"),
                                            ("3", "label must be an int, got '3'")])
def test_a_label_that_is_not_a_digit_is_refused_and_nothing_is_added(session, label, message):
    session.inspect_heldout(0)
    assert json.loads(dispatch(session, "add_digit", json.dumps({"label": label}))[0]) == {"error": message}
    assert session.my_digits()["count"] == 0


def test_removing_a_drawing_keeps_the_others_in_order(session):
    taught_session(session, 4)
    images, labels = session.my_x.copy(), session.my_y.tolist()
    reply = session.remove_digit(1)
    assert reply["labels"] == labels[:1] + labels[2:]
    assert np.array_equal(reply["images"], images[[0, 2, 3], 0])
    assert "there is no drawing 3: you have 3" in json.loads(dispatch(session, "remove_digit", '{"index": 3}')[0])["error"]


def test_exported_digits_import_back_added_to_the_kept_ones(session, digits):
    taught_session(session, 12)
    exported = session.export_digits()
    assert exported["count"] == 12 and exported["file_name"] == "my-digits.npz"
    other = Session(*digits, heldout=200, seed=0)
    reply = decode(dispatch(other, "import_digits", "{}", exported["bytes"]))
    assert reply["added"] == 12 and reply["labels"] == session.my_y.tolist()
    assert np.abs(reply["images"] - session.my_x[:, 0]).max() <= 0.5 / 255 + 1e-6
    again = other.import_digits(exported["bytes"])  # import adds; replace=True is what a reload does
    assert again["count"] == 24 and other.import_digits(exported["bytes"], replace=True)["count"] == 12


def _digits_file_with(images, labels, version=1):
    """A digits file written by hand (as another program or a newer pycnn might), bypassing to_bytes' checks."""
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("digits.json", json.dumps({"format": "pycnn-digits", "version": version, "count": len(labels)}))
        for name, array in (("images.npy", images), ("labels.npy", labels)):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array, np.uint8))
            zf.writestr(name, member.getvalue())
    return buf.getvalue()


@pytest.mark.parametrize("data, message", [
    (b"garbage, not a file", "not a pycnn digits file"),
    (b"", "the digits file is empty"),
    (two_conv().to_bytes(), "this is a pycnn model file, not a digits file"),
    (_digits_file_with(np.zeros((2, 28, 28)), [1, 2], version=2), "this digits file is from a newer pycnn (version 2)"),
    (_digits_file_with(np.zeros((2, 16, 16)), [1, 2]), "images.npy: shape must be (2, 28, 28)"),
    (_digits_file_with(np.zeros((2, 28, 28)), [1, 12]), "labels must be digits 0-9, found 12"),
    (b"PK" + bytes(9 * 2 ** 20), "a pycnn digits file is at most"),
])
def test_a_file_that_is_not_good_digits_is_refused_and_the_kept_digits_stay(session, data, message):
    taught_session(session, 3)
    kept = session.my_x.copy(), session.my_y.copy()
    reply = json.loads(dispatch(session, "import_digits", "{}", data)[0])
    assert message in reply["error"]
    assert np.array_equal(session.my_x, kept[0]) and np.array_equal(session.my_y, kept[1])


def test_importing_past_the_most_the_page_keeps_is_refused_whole(session, monkeypatch):
    monkeypatch.setattr(pycnn.yourdigits, "MAX_DIGITS", 5)
    taught_session(session, 3)
    reply = json.loads(dispatch(session, "import_digits", "{}", pycnn.yourdigits.to_bytes(session.my_x, session.my_y))[0])
    assert reply["error"] == "the file has 3 digits; with the 3 you have that is more than the 5 the page keeps"
    assert session.my_digits()["count"] == 3


def run_fine_tune(session, config=FAST_FINE_TUNE):
    started = session.start_fine_tune(config)
    reports = [session.step() for _ in range(started["total_steps"])]
    return started, reports


def test_a_fine_tune_runs_a_batch_per_step_reports_before_and_after_and_makes_the_tuned_model_current(session):
    session.start(TINY_RUN)
    while not session.step()["done"]:
        pass
    taught_session(session, 10)
    before_model = session.model
    before = [w.copy() for w in before_model.get_weights()]
    started, reports = run_fine_tune(session)
    # 10 digits: the features of 10 drawings, 200 held-out, 100 copies and 256 bundled digits
    # (a step each), 3-fold cross-validation (3 fine-tunes scored) and the fine-tune kept
    assert started == {"total_steps": 20, "batches_per_epoch": 4, "runs": 4, "method": "3-fold cross-validation",
                       "count": 10}
    assert [r["step"] for r in reports] == list(range(1, 21))
    assert [r["phase"] for r in reports[:3]] == ["preparing"] * 3
    assert [(r["epoch"], r["batch"]) for r in reports[7:9]] == [(1, 4), (2, 1)]
    assert [r["phase"] for r in reports[3:16]] == ["measuring"] * 13 and reports[16]["phase"] == "fine-tuning"
    assert all(len(r["losses"]) == 1 and r["images"] == 8 for r in reports[4:])
    assert not any(r["done"] for r in reports[:-1]) and reports[-1]["done"]
    result = reports[-1]["fine_tune"]
    digits, mnist = result["digits"], result["mnist"]
    assert digits["method"] == "3-fold cross-validation" and digits["n"] == digits["scored"] == 10
    assert digits["before"] == pytest.approx(np.mean(before_model.predict(session.my_x) == session.my_y))
    assert 0 <= digits["after"] <= 1 and digits["untaught"] == 10  # one of each: each fold's digits were never taught
    assert mnist["before"] == pytest.approx(before_model.evaluate(session.x_heldout, session.y_heldout)["accuracy"])
    assert mnist["after"] == pytest.approx(session.evaluate()["accuracy"]) and mnist["n"] == 200
    assert session.model is not before_model and session.job is None
    assert all(np.array_equal(a, b) for a, b in zip(before, before_model.get_weights()))  # the job trained copies
    json.dumps(decode(encode(reports[-1])))  # crosses the boundary


def test_undo_fine_tune_brings_back_the_model_from_before_exactly(session):
    taught_session(session, 5)
    before = session.model
    weights = [w.copy() for w in before.get_weights()]
    predicted = before.predict_proba(session.x_heldout[:50])
    run_fine_tune(session)
    assert not all(np.array_equal(a, b) for a, b in zip(weights, session.model.get_weights()))
    evaluation = session.undo_fine_tune()
    assert evaluation == before.evaluate(session.x_heldout, session.y_heldout)
    assert all(np.array_equal(a, b) for a, b in zip(weights, session.model.get_weights()))
    assert np.array_equal(session.model.predict_proba(session.x_heldout[:50]), predicted)
    assert "there is no fine-tune to undo" in json.loads(dispatch(session, "undo_fine_tune")[0])["error"]


def test_the_model_bytes_carry_the_undo_so_a_new_session_can_still_undo(session, digits):
    taught_session(session, 5)
    weights = [w.copy() for w in session.model.get_weights()]
    assert session.model_bytes()["undo"] is None  # nothing to undo yet
    run_fine_tune(session)
    kept = session.model_bytes()
    # a reload: a new session loads the kept model, then the model to undo to
    again = Session(*digits, heldout=200, seed=0)
    again.load(kept["bytes"])
    assert json.loads(dispatch(again, "keep_undo", "{}", kept["undo"])[0]) == {"undo": True}
    again.undo_fine_tune()
    assert all(np.array_equal(a, b) for a, b in zip(weights, again.model.get_weights()))
    assert "not a pycnn model file" in json.loads(dispatch(again, "keep_undo", "{}", b"junk")[0])["error"]
    assert again.undo is None


@pytest.mark.parametrize("change", ["start", "reset", "load"])
def test_a_run_or_a_new_model_after_a_fine_tune_ends_its_undo(session, change):
    taught_session(session, 3)
    run_fine_tune(session)
    {"start": lambda: session.start(TINY_RUN), "reset": lambda: session.reset(1),
     "load": lambda: session.load(two_conv().to_bytes())}[change]()
    assert "error" in json.loads(dispatch(session, "undo_fine_tune")[0])
    assert session.my_digits()["count"] == 3  # your digits stay with you, whatever the model


def test_a_fine_tune_stopped_part_way_leaves_the_model_unchanged(session):
    taught_session(session, 4)
    model, weights = session.model, [w.copy() for w in session.model.get_weights()]
    session.start_fine_tune(FAST_FINE_TUNE)
    for _ in range(5):
        session.step()
    session.start(TINY_RUN)  # what the page can do after Stop: train instead
    assert session.job is None and session.model is model
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def test_one_digit_fine_tunes_without_a_score_it_cannot_measure_honestly(session):
    taught_session(session, 1)
    started, reports = run_fine_tune(session)
    assert started["runs"] == 1 and started["total_steps"] == 4 + 4  # 4 steps preparing
    result = reports[-1]["fine_tune"]
    assert result["digits"]["after"] is None and result["digits"]["method"].startswith("not measured")


def test_fine_tune_needs_digits_and_a_valid_recipe(session):
    assert "no digits of yours" in json.loads(dispatch(session, "start_fine_tune", "{}")[0])["error"]
    taught_session(session, 2)
    for bad, message in (({"steps": 0}, "steps"), ({"nonsense": 1}, "unknown fine-tune setting(s): nonsense")):
        assert message in json.loads(dispatch(session, "start_fine_tune", json.dumps({"config": bad}))[0])["error"]
    assert session.job is None


def test_a_diverging_fine_tune_reports_it_and_leaves_the_model(session):
    taught_session(session, 3)
    model, weights = session.model, [w.copy() for w in session.model.get_weights()]
    started = session.start_fine_tune({"steps": 20, "batch_size": 8, "lr": 1.0, "schedule": "constant"})
    for _ in range(started["total_steps"]):
        report = session.step()
        if "diverged" in report:
            break
    assert "fine-tuning diverged" in report["diverged"]
    assert session.model is model and all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert "error" in json.loads(dispatch(session, "step")[0])


def test_a_run_with_your_digits_joined_trains_on_them_repeated(session):
    assert "no digits of yours to join" in json.loads(
        dispatch(session, "start", json.dumps({"config": TINY_RUN, "join_digits": True}))[0])["error"]
    taught_session(session, 10)
    started = session.start({**TINY_RUN, "train_size": 256}, join_digits=True)
    repeat = pycnn.yourdigits.auto_repeat(256, 10)
    assert started["joined"] == {"digits": 10, "repeat": repeat}
    assert len(session.trainer.y) == 256 + 10 * repeat
    # the taught digits are in the run, each `repeat` times
    tail = session.trainer.x[256:].reshape(repeat, 10, 1, 28, 28)
    assert all(np.array_equal(block, session.my_x) for block in tail)
    assert "joined" not in session.start(TINY_RUN) and len(session.trainer.y) == 256


def test_info_publishes_the_digit_limits_and_the_fine_tune_recipe(session):
    mine = session.info()["my_digits"]
    assert mine["max_digits"] == pycnn.yourdigits.MAX_DIGITS and mine["max_file_bytes"] == pycnn.yourdigits.MAX_FILE_BYTES
    assert mine["fine_tune"] == pycnn.yourdigits.FineTuneConfig.defaults()
