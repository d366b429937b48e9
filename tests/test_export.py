"""Export (pycnn.export) checked by the real runtimes: onnxruntime in CPython and TensorFlow.js in Node
(tests/export_tfjs_check.mjs, pure JavaScript on the cpu backend) give pycnn's probabilities, for every
preset briefly trained and for networks using every option of the layers (stride, int and asymmetric
"same" padding, overlapping pools, a ReLU after Flatten, several channels, a non-square input,
float64), and for a briefly trained network of every other layer kind (BatchNorm after a conv, a
Flatten and a Dense; Dropout; AvgPool2D; LeakyReLU; Tanh; Sigmoid). Also the CLI (`python -m pycnn export`) through a subprocess, the page's request, bad input."""
import io
import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import onnxruntime as ort
import pytest

import pycnn
from pycnn import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, LeakyReLU, MaxPool2D, ReLU, Sequential,
                   Sigmoid, Tanh, export)
from pycnn.layers import LAYERS, register
from pycnn.page import Client, Session
from sitebuild import ROOT, outside

TOLERANCE = 1e-5  # float32 rounding: the runtimes sum in another order than numpy's im2col and BLAS
DIGITS = 1000
CHECK_SCRIPT = ROOT / "tests" / "export_tfjs_check.mjs"


def options_network():
    """Every Conv2D and MaxPool2D option: stride 2 with padding 2, an overlapping 3/2 pool, a strided "same"
    conv whose padding is uneven (0 before, 1 after), and a ReLU between Flatten and Dense."""
    return Sequential([Conv2D(1, 4, 5, stride=2, padding=2), ReLU(), MaxPool2D(3, stride=2),
                       Conv2D(4, 6, 3, stride=2, padding="same"), Flatten(), ReLU(), Dense(6 * 3 * 3, 10)],
                      seed=3, input_shape=(1, 28, 28))


def colour_network():
    """Three channels, a non-square image (height and width cannot be swapped unnoticed), float64, 7 classes."""
    return Sequential([Conv2D(3, 5, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(5, 4, 3, padding=1), ReLU(),
                       Flatten(), Dense(4 * 6 * 5, 16), ReLU(), Dense(16, 7)],
                      seed=4, dtype="float64", input_shape=(3, 12, 10))


def new_layers_network():
    """Every layer kind beyond the first five: BatchNorm after a conv (the fused block), after Flatten (whose
    features TensorFlow.js orders otherwise) and after a Dense; Dropout; a strided conv; AvgPool2D; LeakyReLU;
    Tanh; Sigmoid."""
    return Sequential([Conv2D(1, 8, 3, padding="same"), BatchNorm(8), ReLU(), MaxPool2D(2), Conv2D(8, 8, 3, stride=2),
                       LeakyReLU(0.1), AvgPool2D(2), Tanh(), Flatten(), BatchNorm(72), Dropout(0.3), Dense(72, 32),
                       BatchNorm(32), Sigmoid(), Dense(32, 10)], seed=5, input_shape=(1, 28, 28))


@pytest.fixture(scope="module")
def networks(split):
    """{name: (model, inputs)}: every preset after one short epoch (so the probabilities are far from
    uniform), and the option networks with random weights, each with the inputs it is checked on."""
    x_train, y_train, x_test, _ = split
    digits = x_test[:DIGITS]
    out = {}
    for name in pycnn.PRESETS:
        model = pycnn.preset(name, seed=0)
        model.fit(x_train[:2000], y_train[:2000], epochs=1, batch_size=32, optimizer=pycnn.Adam(2e-3))
        out[name] = (model, digits)
    out["options"] = (options_network(), digits)
    model = new_layers_network()
    model.fit(x_train[:2000], y_train[:2000], epochs=1, batch_size=32, optimizer=pycnn.Adam(2e-3))
    out["new_layers"] = (model, digits)
    out["colour"] = (colour_network(), np.random.default_rng(0).uniform(0, 1, (200, 3, 12, 10)).astype(np.float32))
    return out


NAMES = [*pycnn.PRESETS, "options", "colour", "new_layers"]


def onnx_probabilities(data, x):
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


# ---- ONNX ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_gives_pycnns_probabilities(networks, name, record_property):
    model, x = networks[name]
    got = onnx_probabilities(export.to_onnx(model), x)
    want = model.predict_proba(x)
    assert got.shape == want.shape and got.dtype == np.float32
    diff = float(np.abs(got - want).max())
    record_property("report", f"max |p_pycnn - p_onnxruntime| = {diff:.1e} on {len(x)} inputs")
    assert diff < TOLERANCE
    assert (got.argmax(axis=1) == want.argmax(axis=1)).mean() > 0.99
    if name in pycnn.PRESETS:  # trained: the check is about confident, distinct probabilities
        assert np.median(want.max(axis=1)) > 0.5


def test_the_batchnorm_statistics_exported_are_trained_ones(networks):
    """An epoch of training moved them away from 0 and 1 (the runtimes' check above is then not of the identity)."""
    model, _ = networks["new_layers"]
    for i in (1, 9, 12):
        state = model.layers[i].state
        assert np.abs(state["running_mean"]).max() > 0.05 and np.abs(state["running_var"] - 1).max() > 0.05


def test_onnx_declares_input_output_and_a_free_batch(networks):
    model, x = networks["seed"]
    session = ort.InferenceSession(export.to_onnx(model), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("input", ["N", 1, 28, 28], "tensor(float)")
    assert (out.name, out.shape, out.type) == ("probabilities", ["N", 10], "tensor(float)")
    for n in (1, 7):
        probabilities = session.run(None, {"input": x[:n]})[0]
        np.testing.assert_allclose(probabilities, model.predict_proba(x[:n]), atol=TOLERANCE)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-6)


def test_onnx_metadata_names_the_classes_and_the_input(networks):
    model, _ = networks["seed"]
    meta = ort.InferenceSession(export.to_onnx(model), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert meta.producer_name == "pycnn"
    props = meta.custom_metadata_map
    assert json.loads(props["class_names"]) == [str(d) for d in range(10)]
    assert "(N, 1, 28, 28) NCHW" in props["input"] and "[0, 1]" in props["input"]
    assert json.loads(props["pycnn_config"]) == model.get_config()
    colour, _ = networks["colour"]
    names = ["red", "green", "blue", "cyan", "magenta", "yellow", "grey"]
    meta = ort.InferenceSession(export.to_onnx(colour, names), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert json.loads(meta.custom_metadata_map["class_names"]) == names


@pytest.mark.parametrize("name", NAMES)
def test_the_onnx_checker_accepts_the_model(networks, name):
    onnx = pytest.importorskip("onnx", reason="the onnx package is optional; onnxruntime runs the models")
    proto = onnx.load_from_string(export.to_onnx(networks[name][0]))
    onnx.checker.check_model(proto, full_check=True)
    assert [(op.domain, op.version) for op in proto.opset_import] == [("", export.ONNX_OPSET)]


def test_varints_follow_protobufs_wire_format():
    assert export._varint(0) == b"\x00"
    assert export._varint(150) == b"\x96\x01"  # the protobuf documentation's example
    assert export._varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes of two's complement


# ---- TensorFlow.js ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tfjs_probabilities(networks, tmp_path_factory):
    """{name: (probabilities, class names)} of every network's export as TensorFlow.js reads it."""
    outside.ensure_node_modules(ROOT, log=lambda *a: None)
    folder = tmp_path_factory.mktemp("tfjs")
    groups = {}  # one node run per input set
    for name, (model, x) in networks.items():
        export.save(model, "tfjs", folder / name)
        groups.setdefault(id(x), (x, []))[1].append(name)
    out = {}
    for key, (x, names) in groups.items():
        inputs = folder / f"{key}.f32"
        np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype="<f4").tofile(inputs)
        result = run_tfjs(inputs, [folder / name for name in names])
        assert result["backend"] == "cpu"
        for name, got in zip(names, result["models"]):
            out[name] = (np.array(got["probabilities"], np.float32).reshape(got["shape"]), got["class_names"])
    return out


def run_tfjs(inputs, folders):
    node = shutil.which("node")
    assert node, "node is not installed: the TensorFlow.js check needs Node.js (the build needs it too)"
    done = subprocess.run([node, str(CHECK_SCRIPT), str(inputs), *map(str, folders)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", NAMES)
def test_tensorflow_js_gives_pycnns_probabilities(networks, tfjs_probabilities, name, record_property):
    model, x = networks[name]
    got, class_names = tfjs_probabilities[name]
    want = model.predict_proba(x)
    assert got.shape == want.shape
    diff = float(np.abs(got - want).max())
    record_property("report", f"max |p_pycnn - p_tfjs| = {diff:.1e} on {len(x)} inputs")
    assert diff < TOLERANCE
    assert class_names == [str(i) for i in range(model.n_classes())]


def test_tfjs_files_are_the_layers_format_with_an_nhwc_input(networks):
    model, _ = networks["lenet"]
    files = export.to_tfjs(model)
    assert set(files) == {"model.json", "model.weights.bin"}
    manifest = json.loads(files["model.json"])
    assert manifest["format"] == "layers-model"
    layers = manifest["modelTopology"]["config"]["layers"]
    assert layers[0]["config"]["batch_input_shape"] == [None, 28, 28, 1]
    assert layers[-1]["config"]["activation"] == "softmax"
    (group,) = manifest["weightsManifest"]
    assert group["paths"] == ["model.weights.bin"]
    assert sum(4 * np.prod(w["shape"]) for w in group["weights"]) == len(files["model.weights.bin"])
    assert group["weights"][0] == {"name": "conv2d/kernel", "shape": [5, 5, 1, 6], "dtype": "float32"}
    assert sum(np.prod(w["shape"]) for w in group["weights"]) == model.count_params()


# ---- bad input -------------------------------------------------------------------------------
class Square(Layer):
    """x ** 2: a layer kind registered by a user, unknown to export."""

    summary_name = "square"

    def forward(self, x, training=True):
        return x * x


@pytest.fixture
def square_layer():
    register(Square)
    yield Square
    del LAYERS["Square"]


@pytest.mark.parametrize("to", [export.to_onnx, export.to_tfjs])
def test_a_layer_export_does_not_know_is_named(square_layer, to):
    model = Sequential([Flatten(), square_layer(), Dense(784, 10)], seed=0, input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"layer 1 \(Square\) cannot be exported: export knows Conv2D, ReLU"):
        to(model)


@pytest.mark.parametrize("to", [export.to_onnx, export.to_tfjs])
def test_class_names_must_name_every_class(to):
    model = pycnn.seed_model(seed=0)
    with pytest.raises(ValueError, match="class_names must name the model's 10 classes, got 3 names"):
        to(model, ["a", "b", "c"])
    with pytest.raises(ValueError, match="class_names must be a list of strings, got '0123456789'"):
        to(model, "0123456789")
    with pytest.raises(ValueError, match="class_names must be a list of strings"):
        to(model, list(range(10)))


def test_a_model_must_know_its_input_shape_and_end_in_class_scores():
    with pytest.raises(ValueError, match="the model has no input_shape"):
        export.to_onnx(Sequential([Flatten(), Dense(784, 10)], seed=0))
    ends_in_relu_map = Sequential([Conv2D(1, 2, 3), Flatten(), Dense(1352, 10), ReLU(), Flatten()], seed=0,
                                  input_shape=(1, 28, 28))
    assert export.to_onnx(ends_in_relu_map)  # a flat end after the last Dense is still one score per class
    no_dense = Sequential([Conv2D(1, 2, 3), Flatten()], seed=0, input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="no Dense layer"):
        export.to_tfjs(no_dense)


def test_save_refuses_a_bad_format_or_place(tmp_path):
    model = pycnn.seed_model(seed=0)
    with pytest.raises(ValueError, match="format must be one of onnx, tfjs, got 'keras'"):
        export.save(model, "keras", tmp_path / "m")
    with pytest.raises(ValueError, match="is not a folder"):
        export.save(model, "onnx", tmp_path / "missing" / "m.onnx")
    with pytest.raises(ValueError, match="the ONNX export is one file; .* is a folder"):
        export.save(model, "onnx", tmp_path)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ValueError, match="the TensorFlow.js export is a folder"):
        export.save(model, "tfjs", tmp_path / "file")
    with pytest.raises(ValueError, match="weights_name must be a file name"):
        export.to_tfjs(model, weights_name="../w.bin")
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]


# ---- the page --------------------------------------------------------------------------------
def test_the_page_exports_the_current_model(subset):
    x, y = subset
    pick = np.random.default_rng(0).permutation(len(y))[:600]
    session = Session(np.round(x[pick, 0] * 255).astype(np.uint8), y[pick], heldout=100, seed=0)
    client = Client(session)
    model, digits = session.current.model, session.data.x_heldout
    reply = client("export_model", format="onnx")
    assert reply["file_name"] == "pycnn-model.onnx"
    np.testing.assert_allclose(onnx_probabilities(bytes(reply["bytes"]), digits), model.predict_proba(digits),
                               atol=TOLERANCE)
    reply = client("export_model", format="tfjs")
    assert reply["file_name"] == "pycnn-model-tfjs.zip"
    with zipfile.ZipFile(io.BytesIO(bytes(reply["bytes"]))) as zf:
        assert zf.namelist() == ["model.json", "model.weights.bin"]
        assert zf.read("model.weights.bin") == export.to_tfjs(model)["model.weights.bin"]
    with pytest.raises(ValueError, match="format must be one of onnx, tfjs, got 'pt'"):
        client("export_model", format="pt")


# ---- the command line ------------------------------------------------------------------------
def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pycnn", "export", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


@pytest.fixture(scope="module")
def model_file(networks, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "seed.npz"
    networks["seed"][0].save(path)
    return path


def test_cli_writes_an_onnx_file_that_runs_as_the_model(model_file, networks, tmp_path):
    done = cli(model_file, "--format", "onnx", "-o", tmp_path / "seed.onnx", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "(N, 1, 28, 28) NCHW" in done.stdout
    model, x = pycnn.load(model_file), networks["seed"][1]
    np.testing.assert_allclose(onnx_probabilities((tmp_path / "seed.onnx").read_bytes(), x),
                               model.predict_proba(x), atol=TOLERANCE)


def test_cli_writes_a_tfjs_folder(model_file, tmp_path):
    done = cli(model_file, "--format", "tfjs", "-o", "web_model", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "(N, 28, 28, 1) NHWC" in done.stdout
    files = export.to_tfjs(pycnn.load(model_file))
    assert {p.name: p.read_bytes() for p in (tmp_path / "web_model").iterdir()} == files


@pytest.mark.parametrize("args, message", [
    (["{model}", "--format", "keras", "-o", "m"], "argument --format: invalid choice: 'keras'"),
    (["{model}", "-o", "m"], "the following arguments are required: --format"),
    (["{text}", "--format", "onnx", "-o", "m.onnx"], "pycnn: error: not a pycnn model file"),
    (["{missing}", "--format", "onnx", "-o", "m.onnx"], "pycnn: error: "),
    (["{model}", "--format", "tfjs", "-o", "{text}"], "pycnn: error: the TensorFlow.js export is a folder"),
    (["{model}", "--format", "onnx", "-o", "nowhere/m.onnx"], "pycnn: error: cannot write the ONNX export"),
])
def test_cli_refuses_bad_input_with_one_line_and_writes_nothing(model_file, tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("not a model")
    paths = {"model": model_file, "text": tmp_path / "notes.txt", "missing": tmp_path / "missing.npz"}
    done = cli(*[arg.format(**paths) for arg in args], cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
