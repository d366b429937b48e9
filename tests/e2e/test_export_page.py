"""Take the page's model anywhere: the files that Download as ONNX and Download for TensorFlow.js save
are read by the real runtimes, which give pycnn's probabilities on 1,000 held-out digits within float32
rounding: onnxruntime in CPython, TensorFlow.js in Node (the zip unpacked, tests/export_tfjs_check.mjs)
and onnxruntime-web's wasm backend in Chromium (a dev-only npm package, served to a page of its own by a
test route: the site never ships it).

The shared page has the model `cli_model` loaded (`trained_app`); nothing is trained in the page.
"""
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

import pycnn
from e2e_support import ROOT
from test_export import DIGITS, TOLERANCE, onnx_probabilities, run_tfjs

ORT_WEB = ROOT / "node_modules" / "onnxruntime-web"
ORT_ORIGIN = "http://onnxruntime-web.test"  # answered by the test's route only: no server, no network

# In the onnxruntime-web page: the wasm build, one thread, the model and the digits fetched from the route.
RUN_ORT_WEB = """async ([n, h, w]) => {
  const ort = await import("/ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = location.origin + "/";
  ort.env.wasm.numThreads = 1;
  const model = new Uint8Array(await (await fetch("/model.onnx")).arrayBuffer());
  const pixels = new Float32Array(await (await fetch("/digits.f32")).arrayBuffer());
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  const input = new ort.Tensor("float32", pixels, [n, 1, h, w]);
  const { probabilities } = await session.run({ input });
  return { version: ort.env.versions.web, names: [session.inputNames, session.outputNames],
           dims: probabilities.dims, values: Array.from(probabilities.data) };
}"""


@pytest.fixture(scope="module")
def digits(split):
    """1,000 held-out subset digits, (N, 1, 28, 28) float32 in [0, 1]."""
    return split[2][:DIGITS]


@pytest.fixture(scope="module")
def want(cli_model, digits):
    """pycnn's probabilities of the model the page has loaded."""
    probabilities = pycnn.load(cli_model).predict_proba(digits)
    assert np.median(probabilities.max(axis=1)) > 0.5  # trained: confident, distinct probabilities to compare
    return probabilities


def download(app, testid, folder):
    """Click the page's button `testid` and save the file it downloads into folder -> its path."""
    with app.page.expect_download() as info:
        app.by_id(testid).click()
    path = Path(folder) / info.value.suggested_filename
    info.value.save_as(path)
    return path


def compare(got, want, runtime, record_property):
    diff = float(np.abs(got - want).max())
    record_property("report", f"max |p_pycnn - p_{runtime}| = {diff:.1e} on {len(want)} digits (the page's export)")
    assert got.shape == want.shape
    assert diff < TOLERANCE
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


def test_the_onnx_download_runs_in_onnxruntime_as_the_model_and_names_the_classes(trained_app, cli_model, digits,
                                                                                   want, tmp_path, record_property):
    path = download(trained_app, "export-onnx-button", tmp_path)
    assert path.name == "pycnn-model.onnx"
    compare(onnx_probabilities(path.read_bytes(), digits), want, "onnxruntime", record_property)
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert meta.producer_name == "pycnn"
    assert json.loads(meta.custom_metadata_map["class_names"]) == [str(d) for d in range(10)]
    assert json.loads(meta.custom_metadata_map["pycnn_config"]) == pycnn.load(cli_model).get_config()
    assert trained_app.log.page_errors == [] and trained_app.log.console_errors == []


def test_the_tensorflow_js_download_is_a_zip_tensorflow_js_reads_as_the_model(trained_app, digits, want, tmp_path,
                                                                               record_property):
    path = download(trained_app, "export-tfjs-button", tmp_path)
    assert path.name == "pycnn-model-tfjs.zip"
    folder = tmp_path / "web_model"
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["model.json", "model.weights.bin"]
        zf.extractall(folder)
    inputs = tmp_path / "digits.f32"
    np.ascontiguousarray(digits.transpose(0, 2, 3, 1), dtype="<f4").tofile(inputs)  # TensorFlow.js reads NHWC
    result = run_tfjs(inputs, [folder])
    assert result["backend"] == "cpu"
    (model,) = result["models"]
    assert model["class_names"] == [str(d) for d in range(10)]
    compare(np.array(model["probabilities"], np.float32).reshape(model["shape"]), want, "tfjs", record_property)
    assert trained_app.log.page_errors == [] and trained_app.log.console_errors == []


@pytest.fixture
def ort_web(browser):
    """A page in a context of its own whose route answers ORT_ORIGIN: onnxruntime-web's dist/ files from
    node_modules, and `files` the test puts there ({name: bytes}); `served` lists the names asked for,
    `pinned` is package.json's version of the package."""
    assert (ORT_WEB / "dist" / "ort.wasm.min.mjs").is_file(), "node_modules lacks onnxruntime-web: run npm ci"
    context = browser.new_context()
    ort_web = SimpleNamespace(page=context.new_page(), files={"": b"<!doctype html><title>onnxruntime-web</title>"},
                              served=[], pinned=json.loads((ROOT / "package.json").read_text())["devDependencies"]
                              ["onnxruntime-web"])
    types = {"": "text/html", ".mjs": "text/javascript", ".wasm": "application/wasm"}

    def serve(route):
        name = route.request.url[len(ORT_ORIGIN) + 1:]
        ort_web.served.append(name)
        body = ort_web.files.get(name)
        if body is None and "/" not in name and (ORT_WEB / "dist" / name).is_file():
            body = (ORT_WEB / "dist" / name).read_bytes()
        if body is None:
            return route.fulfill(status=404, body="")
        route.fulfill(status=200, body=body, content_type=types.get(Path(name).suffix, "application/octet-stream"))

    ort_web.page.route(f"{ORT_ORIGIN}/**", serve)
    yield ort_web
    context.close()


def test_onnxruntime_web_in_chromium_runs_the_onnx_download_as_the_model(trained_app, ort_web, digits, want, site_dir,
                                                                         tmp_path, record_property):
    path = download(trained_app, "export-onnx-button", tmp_path)
    ort_web.files.update({"model.onnx": path.read_bytes(), "digits.f32": digits.astype("<f4").tobytes()})
    ort_web.page.goto(f"{ORT_ORIGIN}/")
    result = ort_web.page.evaluate(RUN_ORT_WEB, [len(digits), *digits.shape[2:]])
    assert result["version"] == ort_web.pinned  # the package.json pin, not some other copy
    assert "ort-wasm-simd-threaded.wasm" in ort_web.served  # the wasm backend ran it
    assert result["names"] == [["input"], ["probabilities"]]
    got = np.array(result["values"], np.float32).reshape(result["dims"])
    compare(got, want, "onnxruntime-web", record_property)
    shipped = [p.name for p in site_dir.rglob("*") if p.name.startswith("ort") or "onnxruntime" in p.name]
    assert shipped == []  # a dev-only package: the site never carries it
