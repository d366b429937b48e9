"""The page's Python side (pycnn.page), in CPython: the same code the web worker runs, driven
through the same protocol (dispatch, decoded as the worker decodes it)."""
import json
import math

import numpy as np
import pytest

import pycnn
from pycnn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, codegen, explain
from pycnn.page import Session, dispatch, encode
from pycnn.page.editor import editor_spec, network_config
from pycnn.page.reading import conv_blocks
from page_driver import PageClient, decode

TINY_RUN = {"epochs": 1, "batch_size": 32, "lr": 0.01, "train_size": 256, "augment": False}


@pytest.fixture(scope="module")
def digits(subset):
    """1,200 subset digits of every kind (the subset is sorted by digit) as the page holds them: uint8 (N, 28, 28), labels."""
    x, y = subset
    pick = np.random.default_rng(0).permutation(len(y))[:1200]
    return np.round(x[pick, 0] * 255).astype(np.uint8), y[pick]


@pytest.fixture
def client(digits):
    return PageClient.of(*digits, heldout=200, seed=0)


def two_conv():
    return Sequential([Conv2D(1, 4, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(4, 6, 3), MaxPool2D(2), ReLU(),
                       Flatten(), Dense(6 * 6 * 6, 10)], seed=1, input_shape=(1, 28, 28))


def draw_seven(width=120, height=100):
    """A 7 as the canvas sends it: uint8 ink levels, row by row -> (pixels, width, height)."""
    ink = np.zeros((height, width), np.uint8)
    ink[15:23, 20:100] = 255
    for row in range(23, 90):
        col = 95 - (row - 23) * 50 // 67
        ink[row, col - 4:col + 4] = 255
    return ink.tobytes(), width, height


def predict_seven(client):
    pixels, width, height = draw_seven()
    return client("predict", pixels, width=width, height=height)


def same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_split_is_stratified_and_seeded_and_info_reports_counts_defaults_and_limits(client, digits):
    info = client("info")
    assert (info["train_count"], info["heldout_count"]) == (1000, 200)
    assert client.data.x_train.dtype == np.float32 and client.data.x_train.shape == (1000, 1, 28, 28)
    assert 0 <= client.data.x_train.min() and client.data.x_train.max() <= 1
    # every digit keeps its share of the held-out part, and the same seed gives the same split
    counts = np.bincount(client.data.y_heldout, minlength=10) / 200
    assert np.allclose(counts, np.bincount(digits[1], minlength=10) / 1200, atol=0.01)
    again = Session(*digits, heldout=200, seed=0)
    assert np.array_equal(again.data.y_heldout, client.data.y_heldout)
    assert info["defaults"] == pycnn.TrainingConfig.defaults()
    assert info["limits"] == pycnn.TrainingConfig.limits()
    assert info["max_model_bytes"] == pycnn.serialize.MAX_FILE_BYTES
    assert [event["type"] for event in client.events] == ["filters"]  # the page draws the filters at ready


def test_from_files_reads_the_bundled_idx_files(subset_dir):
    session = Session.from_files(subset_dir / "subset-images-idx3-ubyte.gz", subset_dir / "subset-labels-idx1-ubyte.gz",
                                 1500, 0)
    assert (len(session.data.y_train), len(session.data.y_heldout)) == (8500, 1500)


def test_a_run_starts_steps_one_batch_at_a_time_and_ends_with_an_epoch(client):
    started, steps = client.run("train", config=TINY_RUN)
    assert started == {"total_steps": 8, "batches_per_epoch": 8, "shards": 1}  # (TrainingConfig's default)
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert all(len(r["losses"]) == 1 and r["run"] == "train" for r in steps)
    assert [r["ended"] for r in steps] == [False] * 7 + [True]
    # the last step tells the epoch, the filters, the model to keep, then the end
    assert [e["type"] for e in client.events] == ["epoch", "filters", "checkpoint", "done"]
    epoch, _, checkpoint, done = client.events
    assert epoch["epoch"] == 1 and "val_accuracy" in epoch
    assert checkpoint["reason"] == "epoch" and checkpoint["evaluation"]["accuracy"] == epoch["val_accuracy"]
    assert pycnn.from_bytes(bytes(checkpoint["bytes"])).get_config() == client.model.get_config()
    assert done["run"] == "train" and done["reason"] == "finished"
    assert done["evaluation"] == client.session.current.evaluate() and done["evaluation"]["accuracy"] > 0.4  # far better than guessing
    assert client.error("step") == "no training run: start one first"


def test_stopping_between_batches_keeps_a_usable_model_and_train_continues_from_it(client):
    client("train", config={**TINY_RUN, "epochs": 3})
    for _ in range(5):
        client("step")
    assert client("stop", sent_at=None) == {"stopping": True}
    stopped = client("step")  # the next step ends the run instead of training
    assert stopped["ended"] and stopped["step"] == 5 and stopped["losses"] == []
    assert [e["type"] for e in client.events] == ["filters", "resumable", "checkpoint", "done"]
    checkpoint, done = client.events[2:]
    assert checkpoint["reason"] == "stopped" and checkpoint["partial_epoch"]
    assert done["reason"] == "stopped" and done["step"] == 5 and 0 <= done["evaluation"]["accuracy"] <= 1
    weights = client.model.get_weights()
    client("train", config=TINY_RUN)  # a new run continues from the stopped weights, not from scratch
    assert client("step")["step"] == 1
    assert not same_weights(weights, client.model.get_weights())
    assert client("stop") == {"stopping": True} and client("step")["ended"]
    assert client("stop") == {"stopping": False}  # no run: nothing to stop


def test_stop_counts_the_batches_that_ended_after_the_page_asked(client):
    client("train", config={**TINY_RUN, "epochs": 3})
    client("step")
    client("step")
    client("stop", sent_at=0)  # "asked at the epoch's start": every batch ended after it
    assert client.events_of("done", client.reply("step")["events"])[0]["batches_after_stop"] == 2


def test_while_a_run_trains_the_page_can_read_and_teach_but_not_change_the_model(client):
    client("train", config=TINY_RUN)
    client("step")
    assert client.error("reset") == "cannot reset while training: stop first"
    assert client.error("load", two_conv().to_bytes()) == "cannot load while training: stop first"
    assert client.error("train", config=TINY_RUN) == "cannot train while training: stop first"
    assert predict_seven(client)["prediction"] in range(10)  # answered between batches
    assert client("add_digit", label=7)["count"] == 1
    assert client("step")["step"] == 2  # the run goes on


def sharded_run(client, config, helper_shards=(1, 3), stop_after=None):
    """A run stepped as the worker steps it with helpers up: begin_step, the shards in `helper_shards` computed
    by run_task as a helper worker would (their results handed in last-first), the others by compute_shard,
    then finish_step -> the replies of every finish (and, last, of the begin_step that ended the run)."""
    from pycnn import parallel
    client("train", config=config)
    runner, replies = parallel.TaskRunner(), []
    while True:
        if stop_after is not None and len(replies) == stop_after:
            client("stop", sent_at=None)
        begun = client("begin_step")
        if begun["ended"]:
            return replies + [begun]
        tasks = begun["tasks"]
        assert begun["step"] == len(replies) and all(isinstance(task, bytes) for task in tasks)
        results = [runner(task) for i, task in enumerate(tasks) if i in helper_shards]
        for i in range(len(tasks)):
            if i not in helper_shards:
                assert client("compute_shard", shard=i) == {"shard": i}
        for data in reversed(results):
            assert client("shard_result", data)["shard"] in helper_shards
        replies.append(client("finish_step"))
        if replies[-1]["ended"]:
            return replies


def helper_run(client, config, helpers):
    """A run stepped as the worker steps it with `helpers` helpers up: begin_step(helpers) -> a task per helper
    (computed by run_shards as a helper worker would, a result per shard), this worker's shards by compute_shard,
    then prepare_step, the helpers' results last-first, finish_step -> the replies of every finish."""
    from pycnn import parallel
    client("train", config=config)
    runner, replies = parallel.TaskRunner(), []
    while not (replies and replies[-1]["ended"]):
        begun = client("begin_step", helpers=helpers)
        assert (begun["given"], begun["mine"]) == parallel.assign_shards(config["shards"], helpers)
        results = [result for task in begun["tasks"] for result in runner.results(task)]
        for shard in begun["mine"]:
            client("compute_shard", shard=shard)
        assert client("prepare_step") == {"prepared": begun["step"] + 1 < replies_total(config)}
        for data in reversed(results):
            client("shard_result", data)
        replies.append(client("finish_step"))
    return replies


def replies_total(config):
    return config["epochs"] * -(-config["train_size"] // config["batch_size"])


def test_a_run_taken_with_a_task_per_helper_is_the_run_step_takes_bit_for_bit(digits):
    config = {**TINY_RUN, "epochs": 2, "batch_size": 64, "train_size": 300, "augment": True, "seed": 5, "shards": 4}
    by_step = PageClient.of(*digits, heldout=200, seed=0)
    _, steps = by_step.run("train", config=config)
    for helpers in (1, 3):
        sharded = PageClient.of(*digits, heldout=200, seed=0)
        assert helper_run(sharded, config, helpers) == steps
        assert same_weights(sharded.model.get_weights(), by_step.model.get_weights())


def test_info_says_how_the_page_splits_a_runs_batches_into_shards(client):
    assert client("info")["shards"] == {"max": 4, "shard_images": 16}
    started = client("train", config={**TINY_RUN, "batch_size": 64, "shards": 4})
    assert started["shards"] == 4
    client("stop")
    client("step")


def test_a_run_taken_in_shards_by_helpers_is_the_run_step_takes_bit_for_bit(digits):
    """The worker's two ways of stepping a run (step; or begin_step, shards computed here and by helpers,
    finish_step) give the same weights, replies and events: 1 or 4 workers make the same run."""
    config = {**TINY_RUN, "epochs": 2, "batch_size": 64, "train_size": 300, "augment": True, "seed": 5, "shards": 4}
    by_step = PageClient.of(*digits, heldout=200, seed=0)
    _, steps = by_step.run("train", config=config)
    sharded = PageClient.of(*digits, heldout=200, seed=0)
    replies = sharded_run(sharded, config)
    assert same_weights(sharded.model.get_weights(), by_step.model.get_weights())
    assert replies == steps and len(replies) == 10 and replies[-1]["ended"]
    strip = lambda events: [{k: v for k, v in e.items() if k != "bytes"} for e in events if e["type"] != "filters"]  # noqa: E731
    assert strip(sharded.told) == strip(by_step.told)
    assert by_step.events_of("done")[0]["reason"] == "finished"


def test_a_run_taken_in_shards_stops_after_the_batch_in_flight(client):
    replies = sharded_run(client, {**TINY_RUN, "epochs": 3, "shards": 2}, stop_after=3)
    assert [r["ended"] for r in replies] == [False, False, False, True] and replies[-1]["step"] == 3
    assert client.events_of("done")[-1]["reason"] == "stopped" and not client.session.running()


def test_the_phases_of_a_step_refuse_what_does_not_belong_to_it(client):
    from pycnn import parallel
    assert client.error("begin_step") == "no training run: start one first"
    client("train", config={**TINY_RUN, "batch_size": 64, "shards": 4})
    assert client.error("begin_step", helpers=-1) == "helpers must be an int from 0 to 64, got -1"
    tasks = client("begin_step")["tasks"]  # (the refused one drew no batch: this is step 0's)
    assert len(tasks) == 4
    assert client.error("begin_step") == "begin_step: step 0 is begun and not finished (finish_step)"
    assert client.error("compute_shard", shard=4) == "shard must be an int from 0 to 3, got 4"
    assert client.error("shard_result", b"garbage") == "not a pycnn result (it does not start with b'PYCNNSH1')"
    client("compute_shard", shard=0)
    assert client("shard_result", parallel.run_task(tasks[2])) == {"shard": 2, "missing": [1, 3]}
    assert client.error("finish_step") == ("expected one result for each of shards 0 to 3 of step 0; shard(s) 1, 3 "
                                           "missing")
    assert client.error("shard_result", parallel.run_task(tasks[2])).endswith("got shard 2 of step 0 twice")
    client("compute_shard", shard=1)
    client("compute_shard", shard=3)
    assert client("finish_step")["step"] == 1
    client("stop")
    client("step")  # ends the run
    client("inspect_heldout", index=0)
    client("add_digit", label=int(client.data.y_heldout[0]))
    client("fine_tune", config={"steps": 2, "batch_size": 8, "own_pool": 100, "bundled_pool": 256})
    assert client.error("begin_step") == "begin_step: a fine tune run is not taken in shards; step it instead"


def test_invalid_settings_are_refused_and_no_run_starts(client):
    for bad in ({"epochs": 0}, {"lr": -1}, {"optimizer": "rmsprop"}, {"nonsense": 1}, {"batch_size": 300, "train_size": 256}):
        assert client.error("train", config=bad).startswith("Invalid settings: "), bad
    assert client.session.runs.active is None
    assert client.error("step") == "no training run: start one first"


def test_a_diverging_run_reports_it_and_the_weights_go_back(client):
    before = client.model.get_weights()
    client("train", config={**TINY_RUN, "lr": 10.0})
    for _ in range(8):
        report = client("step")
        if report["ended"]:
            break
    done = client.events_of("done", client.events)[0]
    assert done["reason"] == "diverged" and "smaller learning rate" in done["message"]
    assert same_weights(before, client.model.get_weights())
    assert client.session.runs.active is None


def test_load_accepts_a_model_file_and_reports_its_heldout_accuracy(client):
    other = two_conv()
    result = client("load", other.to_bytes())
    assert result == {"evaluation": other.evaluate(client.data.x_heldout, client.data.y_heldout)}
    assert [type(layer) for layer in client.model.layers] == [type(layer) for layer in other.layers]
    assert [e["type"] for e in client.events] == ["filters"]


@pytest.mark.parametrize("model, message", [
    (Sequential([Flatten(), Dense(784, 3)], seed=0, input_shape=(1, 28, 28)), "it has 3 classes, the page needs 10"),
    (Sequential([Flatten(), Dense(256, 10)], seed=0, input_shape=(1, 16, 16)), "it reads images of shape (1, 16, 16)"),
])
def test_load_refuses_a_model_that_does_not_fit_the_page_and_keeps_the_current_one(client, model, message):
    current = client.model
    assert message in client.error("load", model.to_bytes())
    assert client.model is current and client.events == []  # a refused request tells nothing


def test_load_refuses_a_corrupt_file_with_the_loaders_message(client):
    current = client.model
    assert "not a pycnn model file" in client.error("load", b"this is not a model")
    assert client.model is current


def test_reset_rebuilds_the_current_architecture_with_fresh_weights(client):
    client("load", two_conv().to_bytes())
    trained = client.model.get_weights()
    assert client("reset", seed=3) == {"seed": 3}
    assert client.model.get_config() == two_conv().get_config()  # same layers, not the seed network
    assert not any(np.array_equal(a, b) for a, b in zip(trained, client.model.get_weights()) if a.any())
    fresh = client.model.get_weights()
    client("reset", seed=3)  # the same seed gives the same weights
    assert same_weights(fresh, client.model.get_weights())
    assert "seed must be an int from 0 to 4294967295" in client.error("reset", seed=-1)


def test_filters_report_every_conv_layer(client):
    client("load", two_conv().to_bytes())
    layers = client.events_of("filters", client.events)[0]["conv_layers"]
    assert [entry["layer"] for entry in layers] == [0, 3]
    assert [entry["weights"].shape for entry in layers] == [(4, 1, 3, 3), (6, 4, 3, 3)]
    assert np.array_equal(layers[1]["weights"], client.model.layers[3].params["W"])


def test_a_drawing_is_preprocessed_and_inspected_with_the_maps_of_every_conv_block(client):
    client("load", two_conv().to_bytes())
    reply = predict_seven(client)
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
    expected = client.model.activations(reply["input"][None, None])
    assert np.allclose(blocks[1]["pooled"], expected[5][0], atol=1e-6)
    assert reply["probabilities"] == pytest.approx(client.model.predict_proba(reply["input"][None, None])[0], abs=1e-6)


def test_conv_blocks_without_relu_or_pool_report_the_conv_output():
    model = Sequential([Conv2D(1, 2, 3), Conv2D(2, 3, 3), ReLU(), Flatten(), Dense(3 * 24 * 24, 10)], seed=0,
                       input_shape=(1, 28, 28))
    outputs = [o[0] for o in model.activations(np.random.default_rng(0).random((1, 1, 28, 28)))]
    first, second = conv_blocks(model.layers, outputs)
    assert first["pooled"] is None and np.array_equal(first["activated"], outputs[0])
    assert first["activated"].min() < 0  # no ReLU: the raw conv output
    assert second["pooled"] is None and np.array_equal(second["activated"], np.maximum(outputs[1], 0))
    assert (first["what"], second["what"]) == ("conv", "conv + ReLU")


def test_conv_blocks_with_batchnorm_and_another_activation_report_their_output():
    model = Sequential([Conv2D(1, 2, 3), pycnn.BatchNorm(2), pycnn.Tanh(), pycnn.AvgPool2D(2), Flatten(),
                        Dense(2 * 13 * 13, 10)], seed=0, input_shape=(1, 28, 28))
    model.layers[1].state["running_mean"][:] = 0.3
    outputs = [o[0] for o in model.activations(np.random.default_rng(0).random((1, 1, 28, 28)))]
    (block,) = conv_blocks(model.layers, outputs)
    assert block["what"] == "conv + batch norm + tanh"
    assert np.array_equal(block["activated"], outputs[2]) and np.array_equal(block["pooled"], outputs[3])


def test_an_empty_drawing_is_not_read(client):
    assert client("predict", bytes(2000), width=50, height=40) == {"empty": True}


def test_a_drawing_of_the_wrong_size_is_refused(client):
    assert "width*height = 2000 pixels, got 100" in client.error("predict", bytes(100), width=50, height=40)


def test_a_heldout_digit_is_inspected_with_its_label(client):
    reply = client("inspect_heldout", index=7)
    assert reply["index"] == 7 and reply["label"] == int(client.data.y_heldout[7])
    assert np.array_equal(reply["input"], client.data.x_heldout[7, 0])
    assert reply["prediction"] == int(client.model.predict(client.data.x_heldout[7:8])[0])
    for index in (-1, 200, "3", 2.5, True):
        assert "index must be an int from 0 to 199" in client.error("inspect_heldout", index=index)


def test_analysis_counts_every_heldout_digit_and_lists_the_most_confident_mistakes_first(client):
    client.run("train", config=TINY_RUN)
    reply = client("analyse", max_mistakes=5)
    confusion = np.array(reply["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 200 == reply["count"]
    assert np.array_equal(confusion.sum(axis=1), np.bincount(client.data.y_heldout, minlength=10))
    pred = client.model.predict(client.data.x_heldout)
    assert reply["correct"] == np.trace(confusion) == np.count_nonzero(pred == client.data.y_heldout)
    assert reply["wrong"] == 200 - reply["correct"] > 5
    mistakes = reply["mistakes"]
    assert len(mistakes) == 5 and reply["mistake_images"].shape == (5, 28, 28)
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    for m, image in zip(mistakes, reply["mistake_images"]):
        assert m["label"] != m["predicted"] == pred[m["index"]]
        assert np.array_equal(image, client.data.x_heldout[m["index"], 0])


def test_estimate_times_a_copy_and_leaves_the_model_alone(client):
    before = client.model.get_weights()
    reply = client("estimate", config={"batch_size": 32}, batches=4)
    assert reply["train_images_per_second"] > 0 and reply["eval_images_per_second"] > 0
    assert same_weights(before, client.model.get_weights())


def test_the_model_file_crosses_as_bytes_and_loads_back(client):
    reply = client("save")
    assert bytes(reply["bytes"]) == client.model.to_bytes() and reply["undo"] is None
    assert pycnn.from_bytes(bytes(reply["bytes"])).get_config() == client.model.get_config()


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


def test_call_refuses_unknown_and_private_methods_and_unknown_arguments(client):
    for method in ("_inspect", "__init__", "nonsense", "model", "replace", "part", "inspect"):
        assert client.error(method) == f"unknown request {method!r}"
    assert "JSON object" in decode(dispatch(client.session, "save", "[1]"))["error"]
    assert "unexpected keyword argument 'bogus'" in client.error("save", bogus=1)
    assert "missing a required argument: 'label'" in client.error("add_digit")


# ---- the network editor ----------------------------------------------------------------------
CONV = {"class": "Conv2D", "config": {"filters": 4, "kernel_size": 3, "padding": "valid"}}
RELU = {"class": "ReLU", "config": {}}
POOL = {"class": "MaxPool2D", "config": {}}
FLAT = {"class": "Flatten", "config": {}}


def dense(units):
    return {"class": "Dense", "config": {"out_features": units}}


def test_every_preset_goes_through_the_editor_unchanged():
    spec = editor_spec()
    assert spec["default_preset"] in spec["presets"]
    for name, entry in spec["presets"].items():
        assert network_config(entry["layers"]) == {**pycnn.presets.PRESETS[name], "input_shape": [1, 28, 28]}
    json.dumps(spec)


def test_the_editor_fills_in_what_follows_from_the_layer_before():
    config = network_config([CONV, RELU, POOL, {**CONV, "config": {**CONV["config"], "filters": 6}}, RELU, POOL, FLAT,
                             dense(10)])
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
    ([{"class": "Conv2D", "config": {"filters": 4, "kernel_size": 3, "padding": "valid", "stride": 3}}, FLAT, dense(10)],
     "layer 1 (Conv2D): stride must be one of 1, 2, got 3"),
    ([FLAT, {"class": "Dropout", "config": {"rate": 1.5}}, dense(10)], "layer 2 (Dropout): rate must be a number from 0 "
                                                                       "to 0.9, got 1.5"),
    ([FLAT, {"class": "BatchNorm", "config": {"momentum": 0.5}}, dense(10)],
     "layer 2 (BatchNorm): unexpected argument 'momentum' (takes no arguments)"),
    ([FLAT, {"class": "AvgPool2D", "config": {}}, dense(10)], "layer 2 (AvgPool2D) works on images (channels, height, "
                                                              "width) but gets the flat (784,)"),
    ([{"class": "Softmax", "config": {}}], "layer 1: the editor has no layer kind 'Softmax'"),
    ([FLAT, dense(512), dense(512), dense(512), dense(512), dense(10)], "layer 2 (Dense) has 401,920 of the network's"),
    ([{"class": "Conv2D", "config": {"filters": 64, "kernel_size": 5, "padding": "same"}}] * 2 + [FLAT, dense(10)],
     "the network needs 82.1 M multiply-adds per digit, more than the 5 M the page trains in reasonable time; "
     "layer 2 (Conv2D) alone needs 80.3 M"),
    ([CONV] * 17, "at most 16 layers; this one has 17"),
])
def test_a_network_that_does_not_fit_is_refused_naming_the_layer_and_why(client, layers, message):
    current = client.model
    for method in ("check_network", "set_network"):
        assert message in client.error(method, layers=layers)
    assert client.model is current


def test_check_network_summarises_without_touching_the_model(client):
    current = client.model.get_weights()
    reply = client("check_network", layers=[CONV, RELU, POOL, FLAT, dense(10)])
    assert [row["name"] for row in reply["rows"]] == ["conv2d", "re_lu", "max_pool2d", "flatten", "dense"]
    assert [row["output_shape"] for row in reply["rows"]] == [[4, 26, 26], [4, 26, 26], [4, 13, 13], [676], [10]]
    assert [row["params"] for row in reply["rows"]] == [40, 0, 0, 0, 6770]
    assert reply["total_params"] == 6810 and reply["work"] == 4 * 26 * 26 * 9 + 4 * 26 * 26 + 4 * 26 * 26 + 676 + 6760
    assert reply["images_per_second"] is None  # nothing measured yet
    assert same_weights(current, client.model.get_weights())


def test_once_the_speed_is_measured_the_summary_estimates_the_speed_of_any_network(client):
    client("estimate", config={"batch_size": 32}, batches=4)
    small = client("check_network", layers=[CONV, RELU, POOL, FLAT, dense(10)])["images_per_second"]
    bigger = client("check_network", layers=[{**CONV, "config": {**CONV["config"], "filters": 16}}, RELU, POOL, FLAT,
                                           dense(10)])["images_per_second"]
    assert small["train"] > bigger["train"] > 0 and small["eval"] > bigger["eval"] > 0


def test_set_network_replaces_the_model_with_fresh_weights_and_network_describes_it(client):
    layers = [CONV, RELU, POOL, FLAT, dense(10)]
    reply = client("set_network", layers=layers, seed=2)
    assert reply["layers"] == layers and reply["editable"] and reply["preset"] is None
    assert client.model.count_params() == 6810 == reply["total_params"]
    assert client("network")["layers"] == layers
    client("reset", seed=5)  # Reset keeps this network
    assert client("network")["layers"] == layers
    for name, entry in editor_spec()["presets"].items():
        assert client("set_network", layers=entry["layers"])["preset"] == name


def test_a_loaded_network_the_editor_cannot_make_is_shown_but_not_editable(client):
    model = Sequential([Conv2D(1, 4, 3, stride=3), ReLU(), Flatten(), Dense(4 * 9 * 9, 10)], seed=0, input_shape=(1, 28, 28))
    client("load", model.to_bytes())
    network = client("network")
    assert not network["editable"] and network["preset"] is None
    assert [layer["class"] for layer in network["layers"]] == ["Conv2D", "ReLU", "Flatten", "Dense"]
    assert network["rows"][0]["output_shape"] == [4, 9, 9]
    other_momentum = Sequential([Flatten(), pycnn.BatchNorm(784, momentum=0.5), Dense(784, 10)], seed=0,
                                input_shape=(1, 28, 28))
    client("load", other_momentum.to_bytes())
    assert not client("network")["editable"]


def test_the_editor_builds_every_layer_kind_and_leaves_arguments_at_their_default_out(client):
    layers = [{"class": "Conv2D", "config": {"filters": 8, "kernel_size": 3, "padding": "same"}},
              {"class": "BatchNorm", "config": {}}, {"class": "ReLU", "config": {}}, POOL,
              {"class": "Conv2D", "config": {"filters": 8, "kernel_size": 3, "padding": "valid", "stride": 2}},
              {"class": "LeakyReLU", "config": {"negative_slope": 0.1}}, {"class": "AvgPool2D", "config": {}},
              {"class": "Tanh", "config": {}}, FLAT, {"class": "Dropout", "config": {"rate": 0.25}}, dense(32),
              {"class": "BatchNorm", "config": {}}, {"class": "Sigmoid", "config": {}}, dense(10)]
    reply = client("set_network", layers=layers, seed=1)
    assert reply["layers"] == layers and reply["editable"]
    config = client.model.get_config()["layers"]
    assert config[1]["config"] == {"features": 8, "momentum": 0.1, "eps": 1e-5}
    assert config[4]["config"]["stride"] == 2 and config[6]["config"] == {"pool_size": 2, "stride": 2}
    assert config[9]["config"] == {"rate": 0.25} and config[11]["config"]["features"] == 32
    assert [row["output_shape"] for row in reply["rows"]][4:9] == [[8, 6, 6]] * 2 + [[8, 3, 3]] * 2 + [[72]]
    defaults = client("set_network", layers=[FLAT, {"class": "Dropout", "config": {"rate": 0.5}},
                                             {"class": "LeakyReLU", "config": {"negative_slope": 0.01}}, dense(10)])
    assert [layer["config"] for layer in defaults["layers"][1:3]] == [{}, {}]
    conv = editor_spec()["kinds"]["Conv2D"]["args"]["stride"]
    assert conv == {"type": "choice", "choices": [1, 2], "default": 1}


def test_info_publishes_the_editor_and_the_current_network(client):
    info = client("info")
    assert info["editor"]["kinds"]["Conv2D"]["args"]["kernel_size"] == {"type": "choice", "choices": [3, 5]}
    assert info["network"]["preset"] == info["editor"]["default_preset"]


# ---- asking about a digit without drawing it ---------------------------------------------------
def test_next_heldout_steps_through_the_digits_of_one_label(client):
    sevens = np.flatnonzero(client.data.y_heldout == 7)
    first = client("next_heldout", label=7)
    assert first["index"] == sevens[0] and first["label"] == 7
    second = client("next_heldout", label=7, after=first["index"])
    assert second["index"] == sevens[1]
    assert client("next_heldout", label=7, after=int(sevens[-1]))["index"] == sevens[0]  # wraps round
    assert client("next_heldout", after=4)["index"] == 5  # any digit
    assert "label must be an int from 0 to 9, got 12" in client.error("next_heldout", label=12)


def test_a_confusion_matrix_cell_lists_its_digits_most_confident_first(client):
    client.run("train", config=TINY_RUN)
    confusion = np.array(client("analyse")["confusion"])
    label, predicted = np.unravel_index(np.argmax(confusion - np.diag(np.diag(confusion))), confusion.shape)
    cell = client("heldout_cell", label=int(label), predicted=int(predicted), max_digits=3)
    assert cell["count"] == confusion[label, predicted] > 0
    assert len(cell["digits"]) == min(3, cell["count"]) == len(cell["images"])
    probs = client.model.predict_proba(client.data.x_heldout)
    for digit, image in zip(cell["digits"], cell["images"]):
        assert client.data.y_heldout[digit["index"]] == label and probs[digit["index"]].argmax() == predicted
        assert np.array_equal(image, client.data.x_heldout[digit["index"], 0])
    confidences = [d["confidence"] for d in cell["digits"]]
    assert confidences == sorted(confidences, reverse=True)
    diagonal = client("heldout_cell", label=3, predicted=3, max_digits=1)
    assert diagonal["count"] == confusion[3, 3]
    assert "predicted must be an int from 0 to 9" in client.error("heldout_cell", label=1, predicted=-1)


# ---- see inside one step --------------------------------------------------------------------------
def trained(client):
    """The page after one tiny run: a model worth explaining and a run's optimiser with state."""
    client.run("train", config=TINY_RUN)
    return client


def weights_and_state(client, optimizer):
    """The model file and a deep copy of the optimiser's state: what Undo must give back exactly."""
    state = {k: [a.copy() for a in v] if isinstance(v, tuple) else v.copy() for k, v in optimizer.state.items()}
    return client.model.to_bytes(), state, getattr(optimizer, "t", None)


def same_state(a, b):
    (bytes_a, state_a, t_a), (bytes_b, state_b, t_b) = a, b
    return (bytes_a == bytes_b and t_a == t_b and state_a.keys() == state_b.keys()
            and all(all(np.array_equal(x, y) for x, y in zip(state_a[k], state_b[k])) for k in state_a))


@pytest.mark.parametrize("model", [None, two_conv()], ids=["default preset", "two conv layers"])
def test_the_arithmetic_of_a_cell_is_the_inspected_digits_and_crosses_the_boundary(digits, model):
    client = PageClient.of(*digits, heldout=200, seed=0, model=model)
    assert "no digit to explain" in client.error("arithmetic", layer=0, channel=0, row=0, col=0)
    shown = client("inspect_heldout", index=7)
    x = client.data.x_heldout[7]
    for block in shown["blocks"]:
        layer, (f, h, w) = block["layer"], block["activated"].shape
        for grid, (row, col) in (("activated", (h // 2, w - 1)), ("pooled", (1, 2))):
            if grid == "pooled" and block["pooled"] is None:
                continue
            reply = client("arithmetic", layer=layer, channel=f - 1, row=row, col=col, grid=grid)
            expected = explain.conv_arithmetic(client.model, x, layer, f - 1, row, col, grid)
            assert reply["sum"] == expected["sum"] and reply["conv"] == expected["conv"] == reply["sum"] + reply["bias"]
            np.testing.assert_array_equal(reply["products"], expected["products"].astype(np.float32))
            conv_row, conv_col = reply["row"], reply["col"]  # the conv cell explained (the pool's winner for "pooled")
            assert reply["relu"] == pytest.approx(block["activated"][f - 1, conv_row, conv_col], abs=2e-6)
            if reply["pooled"] is not None:
                pr, pc = reply["pooled_cell"]
                assert reply["pooled"] == pytest.approx(block["pooled"][f - 1, pr, pc], abs=1e-7)
    assert "layer must be the index of a Conv2D layer" in client.error("arithmetic", layer=1, channel=0, row=0, col=0)


def test_every_inspection_has_the_saliency_of_its_reading_and_any_digit_has_one_on_request(client):
    trained(client)
    shown = predict_seven(client)
    x = client.session.current.inspected
    assert shown["saliency"]["digit"] == shown["prediction"]
    expected = explain.saliency(client.model, x, shown["prediction"])["gradient"]
    np.testing.assert_array_equal(shown["saliency"]["gradient"], expected.astype(np.float32))
    assert shown["saliency"]["gradient"].shape == (28, 28)
    other = (shown["prediction"] + 1) % 10
    why_not = client("saliency", digit=other)
    assert why_not["digit"] == other and not np.array_equal(why_not["gradient"], shown["saliency"]["gradient"])
    assert "digit must be an int from 0 to 9" in client.error("saliency", digit=10)


def test_a_step_tried_on_the_inspected_digit_is_undone_exactly_optimiser_state_included(client):
    trained(client)
    optimizer = client.session.current.optimizer
    client("inspect_heldout", index=3)
    before = weights_and_state(client, optimizer)
    label = int(client.data.y_heldout[3])
    first = client("try_step", label=label, lr=0.01)
    assert [e["type"] for e in client.events] == ["filters"]  # the step moved them
    assert first["steps"] == 1 and first["label"] == label and first["optimizer_step"] == before[2] + 1
    assert first["loss"] == pytest.approx(-math.log(first["probability_before"]), rel=1e-5)
    assert first["probability_after"] > first["probability_before"]  # a step towards the label
    conv = [entry for entry in first["layers"] if entry["class"] == "Conv2D"][0]
    assert conv["gradient"].shape == client.model.layers[0].params["W"].shape
    again = client("try_step", label=label, lr=0.01)  # Step again: from the stepped weights
    assert again["steps"] == 2 and again["loss"] == pytest.approx(first["loss_after"], rel=1e-5)
    assert not same_state(before, weights_and_state(client, optimizer))
    assert client("undo_step") == {"steps": 2}
    assert same_state(before, weights_and_state(client, optimizer))  # bit for bit
    assert "no step to undo" in client.error("undo_step")
    assert "no step to keep" in client.error("keep_step")


def test_a_kept_step_is_the_model_and_the_next_step_goes_on_from_it(client):
    trained(client)
    client("inspect_heldout", index=5)
    before = client.model.to_bytes()
    stepped = client("try_step", label=int(client.data.y_heldout[5]), lr=0.05)
    kept = client("keep_step")
    assert kept["steps"] == 1 and kept["evaluation"] == client.session.current.evaluate()
    after = client.model.to_bytes()
    assert after != before
    checkpoint = client.events_of("checkpoint")[-1]  # the page keeps the model with the step
    assert checkpoint["reason"] == "keep_step" and bytes(checkpoint["bytes"]) == after
    assert checkpoint["evaluation"] == kept["evaluation"]
    assert client("try_step", label=int(client.data.y_heldout[5]), lr=0.05)["loss"] == pytest.approx(stepped["loss_after"],
                                                                                               rel=1e-5)
    client("undo_step")  # undoes only what came after the keep
    assert client.model.to_bytes() == after


def test_a_step_without_a_run_uses_an_optimiser_of_the_chosen_kind_and_a_run_undoes_a_step_not_kept(client):
    client("inspect_heldout", index=0)
    before = client.model.to_bytes()
    first = client("try_step", label=int(client.data.y_heldout[0]), lr=0.01, optimizer="adam")
    assert first["optimizer"] == "Adam" and first["first_step"] and first["optimizer_step"] == 1
    client("train", config=TINY_RUN)  # a run starts from the model as it was: the step was never kept
    assert client.model.to_bytes() == before
    client("stop")
    client("step")
    assert client.model.to_bytes() == before  # stopped before its first batch
    assert "no step to undo" in client.error("undo_step")
    assert client("try_step", label=1)["optimizer_step"] == 1  # now the run's optimiser, which has taken no step yet
    client("reset")
    client("inspect_heldout", index=0)
    assert "optimizer must be one of" in client.error("try_step", label=1, optimizer="rmsprop")


@pytest.mark.parametrize("replace", [lambda p: p("reset", seed=1), lambda p: p("load", two_conv().to_bytes()),
                                     lambda p: p("set_network", layers=p("network")["layers"], seed=0)],
                         ids=["reset", "load", "set_network"])
def test_a_new_model_drops_the_step_and_the_digit_it_was_tried_on(client, replace):
    client("inspect_heldout", index=0)
    client("try_step", label=0, lr=0.01)
    replace(client)
    assert "no step to undo" in client.error("undo_step")
    assert "no digit to explain" in client.error("try_step", label=0)


def test_the_code_is_the_current_network_and_settings_with_the_pages_split_and_seed(digits):
    client = PageClient.of(*digits, heldout=200, seed=3)
    settings = {"epochs": 2, "batch_size": 64, "lr": 0.005, "optimizer": "sgd", "train_size": 500, "seed": 4}
    client("set_network", layers=editor_spec()["presets"]["two-conv"]["layers"], seed=2)
    shown = client("python_code", config=settings)
    config = client.model.get_config()
    assert shown == {"code": codegen.python_code(config, settings, seed=2, heldout=200, split_seed=3), "seed": 2}
    assert "seed=2, input_shape=(1, 28, 28))" in shown["code"] and "test_size=200, seed=3" in shown["code"]
    exported = client("export_script", config=settings)
    assert exported["file_name"] == codegen.SCRIPT_NAME == "train_pycnn.py"
    assert exported["script"] == codegen.export_script(config, settings, seed=2, heldout=200, split_seed=3)
    client("reset", seed=7)
    assert "seed=7, input_shape" in client("python_code", config=settings)["code"]
    client("load", two_conv().to_bytes())  # a loaded model's first weights are unknown: fresh ones from seed 0
    loaded = client("python_code", config=settings)
    assert loaded["seed"] is None and "seed=0, input_shape" in loaded["code"]
    assert "lr must be" in client.error("python_code", config={"lr": -1})


# ---- your digits ---------------------------------------------------------------------------------
FAST_FINE_TUNE = {"steps": 4, "batch_size": 8, "own_pool": 100, "bundled_pool": 256}


def teach(client, indices):
    """Show held-out digits `indices` to the network and add each with its label, as a learner would."""
    for index in indices:
        client("inspect_heldout", index=int(index))
        client("add_digit", label=int(client.data.y_heldout[index]))


def taught(client, n=10):
    """The page with n of its held-out digits taught, one of each digit first."""
    y = client.data.y_heldout
    order = np.argsort(y, kind="stable")
    firsts = order[np.searchsorted(y[order], np.arange(10))]
    teach(client, np.concatenate([firsts, np.setdiff1d(np.arange(len(y)), firsts)])[:n])
    return client


def test_a_drawing_inspected_last_is_added_as_the_image_the_network_saw_and_listed_packed(client):
    assert "no digit to explain" in client.error("add_digit", label=3)  # nothing inspected yet
    seen = predict_seven(client)["input"]
    reply = client("add_digit", label=7)
    assert reply["count"] == 1 and reply["labels"] == [7] and reply["counts"] == [0] * 7 + [1, 0, 0]
    assert reply["images"].shape == (1, 28, 28) and np.array_equal(reply["images"][0], seen)
    # the file the page keeps is the same digits, to a grey level
    x, y = pycnn.yourdigits.from_bytes(reply["file"])
    assert y.tolist() == [7] and np.abs(x[0, 0] - seen).max() <= 0.5 / 255 + 1e-6
    client("inspect_heldout", index=0)
    reply = client("add_digit", label=int(client.data.y_heldout[0]))
    assert reply["count"] == 2 and np.array_equal(reply["images"][1], client.data.x_heldout[0, 0])


def test_a_drawing_sent_with_its_label_is_added_as_predict_reads_it_whatever_was_inspected_last(client):
    pixels, width, height = draw_seven()
    seen = client("predict", pixels, width=width, height=height)["input"]
    client("inspect_heldout", index=0)  # the learner moved on: the drawing sent is what is added
    reply = client("add_digit", pixels, label=7, width=width, height=height)
    assert reply["labels"] == [7] and np.array_equal(reply["images"][0], seen)
    assert "nothing to add: the drawing is empty" in client.error("add_digit", bytes(width * height), label=7,
                                                                  width=width, height=height)
    assert "add_digit needs width*height = 12000 pixels, got 3" in client.error("add_digit", b"abc", label=7,
                                                                                width=width, height=height)
    assert client.digits.my_digits()["count"] == 1


@pytest.mark.parametrize("label, message", [(10, "label must be an int from 0 to 9, got 10"),
                                            (-1, "label must be an int from 0 to 9, got -1"),
                                            ("3", "label must be an int from 0 to 9, got '3'")])
def test_a_label_that_is_not_a_digit_is_refused_and_nothing_is_added(client, label, message):
    client("inspect_heldout", index=0)
    assert client.error("add_digit", label=label) == message
    assert client.digits.my_digits()["count"] == 0


def test_removing_a_drawing_keeps_the_others_in_order(client):
    taught(client, 4)
    images, labels = client.digits.x.copy(), client.digits.y.tolist()
    reply = client("remove_digit", index=1)
    assert reply["labels"] == labels[:1] + labels[2:]
    assert np.array_equal(reply["images"], images[[0, 2, 3], 0])
    assert "index must be an int from 0 to 2, got 3" in client.error("remove_digit", index=3)


def test_remove_all_leaves_no_drawing_and_an_empty_file_to_keep(client):
    taught(client, 5)
    reply = client("remove_all_digits")
    assert reply["count"] == 0 and reply["labels"] == [] and reply["images"].shape == (0, 28, 28)
    assert pycnn.yourdigits.from_bytes(reply["file"])[1].tolist() == []  # what the page keeps after it
    taught(client, 1)  # and teaching goes on
    assert client.digits.my_digits()["count"] == 1


def test_exported_digits_import_back_added_to_the_kept_ones(client, digits):
    taught(client, 12)
    exported = client("export_digits")
    assert exported["count"] == 12 and exported["file_name"] == "my-digits.npz"
    other = PageClient.of(*digits, heldout=200, seed=0)
    reply = other("import_digits", exported["bytes"])
    assert reply["added"] == 12 and reply["labels"] == client.digits.y.tolist()
    assert np.abs(reply["images"] - client.digits.x[:, 0]).max() <= 0.5 / 255 + 1e-6
    again = other("import_digits", exported["bytes"])  # import adds; replace=True is what a reload does
    assert again["count"] == 24 and other("import_digits", exported["bytes"], replace=True)["count"] == 12


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


NOT_GOOD_DIGITS = [
    (b"garbage, not a file", "not a pycnn digits file"),
    (b"", "the digits file is empty"),
    (two_conv().to_bytes(), "this is a pycnn model file, not a digits file"),
    (_digits_file_with(np.zeros((2, 28, 28)), [1, 2], version=2), "this digits file is from a newer pycnn (version 2)"),
    (_digits_file_with(np.zeros((2, 16, 16)), [1, 2]), "images.npy: shape must be (2, 28, 28)"),
    (_digits_file_with(np.zeros((2, 28, 28)), [1, 12]), "labels must be digits 0-9, found 12"),
    (b"PK" + bytes(9 * 2 ** 20), "a pycnn digits file is at most"),
]


# named by the message: the files' bytes hold the zip's timestamps, and pytest-xdist's workers must
# collect the same test ids whenever each of them imports this module
@pytest.mark.parametrize("data, message", NOT_GOOD_DIGITS, ids=[message for _, message in NOT_GOOD_DIGITS])
def test_a_file_that_is_not_good_digits_is_refused_and_the_kept_digits_stay(client, data, message):
    taught(client, 3)
    kept = client.digits.x.copy(), client.digits.y.copy()
    assert message in client.error("import_digits", data)
    assert np.array_equal(client.digits.x, kept[0]) and np.array_equal(client.digits.y, kept[1])


def test_importing_past_the_most_the_page_keeps_is_refused_whole(client, monkeypatch):
    monkeypatch.setattr(pycnn.yourdigits, "MAX_DIGITS", 5)
    taught(client, 3)
    message = client.error("import_digits", pycnn.yourdigits.to_bytes(client.digits.x, client.digits.y))
    assert message == "the file has 3 digits; with the 3 you have that is more than the 5 the page keeps"
    assert client.digits.my_digits()["count"] == 3


def test_a_fine_tune_runs_a_batch_per_step_reports_before_and_after_and_makes_the_tuned_model_current(client):
    trained(client)
    taught(client, 10)
    before_model = client.model
    before = [w.copy() for w in before_model.get_weights()]
    told_before = len(client.told)
    started, reports = client.run("fine_tune", config=FAST_FINE_TUNE)
    # 10 digits: the features of 10 drawings, 200 held-out, 100 copies and 256 bundled digits
    # (a step each), 3-fold cross-validation (3 fine-tunes scored) and the fine-tune kept
    assert started == {"total_steps": 20, "batches_per_epoch": 4, "runs": 4, "method": "3-fold cross-validation",
                       "count": 10}
    assert [r["step"] for r in reports] == list(range(1, 21))
    assert [r["phase"] for r in reports[:3]] == ["preparing"] * 3
    assert [(r["epoch"], r["batch"]) for r in reports[7:9]] == [(1, 4), (2, 1)]
    assert [r["phase"] for r in reports[3:16]] == ["measuring"] * 13 and reports[16]["phase"] == "fine-tuning"
    assert all(len(r["losses"]) == 1 and r["images"] == 8 for r in reports[4:])
    assert not any(r["ended"] for r in reports[:-1]) and reports[-1]["ended"]
    # no filters while it runs (it trains copies of the dense layers); at the end: done, then the model to keep
    assert [e["type"] for e in client.told[told_before:]] == ["done", "checkpoint"]
    done, checkpoint = client.told[-2:]
    assert checkpoint["reason"] == "fine_tune" and bytes(checkpoint["undo"]) == before_model.to_bytes()
    result = done["fine_tune"]
    digits, mnist = result["digits"], result["mnist"]
    assert digits["method"] == "3-fold cross-validation" and digits["n"] == digits["scored"] == 10
    assert digits["before"] == pytest.approx(np.mean(before_model.predict(client.digits.x) == client.digits.y))
    assert 0 <= digits["after"] <= 1 and digits["untaught"] == 10  # one of each: each fold's digits were never taught
    assert mnist["before"] == pytest.approx(before_model.evaluate(client.data.x_heldout, client.data.y_heldout)["accuracy"])
    assert mnist["after"] == pytest.approx(client.session.current.evaluate()["accuracy"]) == done["evaluation"]["accuracy"]
    assert mnist["n"] == 200
    assert client.model is not before_model and client.session.runs.active is None
    assert same_weights(before, before_model.get_weights())  # the job trained copies


def test_undo_fine_tune_brings_back_the_model_from_before_exactly(client):
    taught(client, 5)
    before = client.model
    weights = [w.copy() for w in before.get_weights()]
    predicted = before.predict_proba(client.data.x_heldout[:50])
    client.run("fine_tune", config=FAST_FINE_TUNE)
    assert not same_weights(weights, client.model.get_weights())
    undone = client("undo_fine_tune")
    assert undone == {"evaluation": before.evaluate(client.data.x_heldout, client.data.y_heldout)}
    assert [e["type"] for e in client.events] == ["filters", "checkpoint"]  # the model from before is kept again
    assert same_weights(weights, client.model.get_weights())
    assert np.array_equal(client.model.predict_proba(client.data.x_heldout[:50]), predicted)
    assert "there is no fine-tune to undo" in client.error("undo_fine_tune")


def test_the_model_bytes_carry_the_undo_so_a_new_session_can_still_undo(client, digits):
    taught(client, 5)
    weights = [w.copy() for w in client.model.get_weights()]
    assert client("save")["undo"] is None  # nothing to undo yet
    client.run("fine_tune", config=FAST_FINE_TUNE)
    kept = client("save")
    # a reload: a new session loads the kept model, then the model to undo to
    again = PageClient.of(*digits, heldout=200, seed=0)
    again("load", kept["bytes"])
    assert again("keep_undo", kept["undo"]) == {"undo": True}
    again("undo_fine_tune")
    assert same_weights(weights, again.model.get_weights())
    assert "not a pycnn model file" in again.error("keep_undo", b"junk")
    assert again.session.current.undo is None


@pytest.mark.parametrize("change", ["train", "reset", "load"])
def test_a_run_or_a_new_model_after_a_fine_tune_ends_its_undo(client, change):
    taught(client, 3)
    client.run("fine_tune", config=FAST_FINE_TUNE)
    {"train": lambda: client("train", config=TINY_RUN), "reset": lambda: client("reset", seed=1),
     "load": lambda: client("load", two_conv().to_bytes())}[change]()
    if change == "train":
        client("stop")
        client("step")
    assert "no fine-tune to undo" in client.error("undo_fine_tune")
    assert client.digits.my_digits()["count"] == 3  # your digits stay with you, whatever the model


def test_a_fine_tune_stopped_part_way_leaves_the_model_unchanged(client):
    taught(client, 4)
    model, weights = client.model, [w.copy() for w in client.model.get_weights()]
    client("fine_tune", config=FAST_FINE_TUNE)
    for _ in range(5):
        client("step")
    client("stop")
    assert client("step")["ended"]
    assert [e["type"] for e in client.events] == ["done"]  # nothing to keep, no filters: nothing changed
    assert client.events[0]["reason"] == "stopped"
    assert client.session.runs.active is None and client.model is model
    assert same_weights(weights, model.get_weights())


def test_one_digit_fine_tunes_without_a_score_it_cannot_measure_honestly(client):
    taught(client, 1)
    started, _ = client.run("fine_tune", config=FAST_FINE_TUNE)
    assert started["runs"] == 1 and started["total_steps"] == 4 + 4  # 4 steps preparing
    result = client.events_of("done")[-1]["fine_tune"]
    assert result["digits"]["after"] is None and result["digits"]["method"].startswith("not measured")


def test_fine_tune_needs_digits_and_a_valid_recipe(client):
    assert client.error("fine_tune") == "Cannot fine-tune: there are no digits of yours to fine-tune on: add some first"
    taught(client, 2)
    for bad, message in (({"steps": 0}, "steps"), ({"nonsense": 1}, "unknown fine-tune setting(s): nonsense")):
        assert message in client.error("fine_tune", config=bad)
    assert client.session.runs.active is None


def test_a_diverging_fine_tune_reports_it_and_leaves_the_model(client):
    taught(client, 3)
    model, weights = client.model, [w.copy() for w in client.model.get_weights()]
    started = client("fine_tune", config={"steps": 20, "batch_size": 8, "lr": 1.0, "schedule": "constant"})
    for _ in range(started["total_steps"]):
        if client("step")["ended"]:
            break
    done = client.events_of("done", client.events)[0]
    assert done["reason"] == "diverged" and "fine-tuning diverged" in done["message"]
    assert client.model is model and same_weights(weights, model.get_weights())
    assert "no training run" in client.error("step")


def test_a_run_with_your_digits_joined_trains_on_them_repeated(client):
    assert "no digits of yours to join" in client.error("train", config=TINY_RUN, join_digits=True)
    taught(client, 10)
    started = client("train", config={**TINY_RUN, "train_size": 256}, join_digits=True)
    repeat = pycnn.yourdigits.auto_repeat(256, 10)
    assert started["joined"] == {"digits": 10, "repeat": repeat}
    trainer = client.session.runs.active.job
    assert len(trainer.y) == 256 + 10 * repeat
    # the taught digits are in the run, each `repeat` times
    tail = trainer.x[256:].reshape(repeat, 10, 1, 28, 28)
    assert all(np.array_equal(block, client.digits.x) for block in tail)
    client("stop")
    client("step")
    assert "joined" not in client("train", config=TINY_RUN) and len(client.session.runs.active.job.y) == 256


def test_info_publishes_the_digit_limits_and_the_fine_tune_recipe(client):
    mine = client("info")["my_digits"]
    assert mine["max_digits"] == pycnn.yourdigits.MAX_DIGITS and mine["max_file_bytes"] == pycnn.yourdigits.MAX_FILE_BYTES
    assert mine["fine_tune"] == pycnn.yourdigits.FineTuneConfig.defaults()
