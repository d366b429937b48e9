"""Fuzzing the model loader with hypothesis.

Mutated valid model files (bytes flipped, inserted, deleted, truncated; config.json values
replaced or deleted; members altered, dropped, added and re-zipped with valid CRCs) and
random bytes go to `pycnn.from_bytes`. Each call must either return a model that predicts
its input shape or raise ValueError - never another exception - within TIME_LIMIT seconds
and MEMORY_LIMIT bytes (tracemalloc peak, which includes numpy's buffers).

The number of cases run is printed in the "pycnn test figures" section of the pytest
summary. PYCNN_FUZZ_EXAMPLES scales the examples per test (default 500; 4 tests).
"""
import collections
import io
import json
import math
import os
import signal
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pycnn
from pycnn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, seed_model

MAX_EXAMPLES = int(os.environ.get("PYCNN_FUZZ_EXAMPLES", "500"))
TIME_LIMIT = 2.0  # seconds per from_bytes call (and per predict of an accepted model)
# A file may legitimately hold up to MAX_PARAMS (10M) weights, and building layers that big
# (float64 init, then float32 weights and grads) costs up to ~160 MB; 256 MB bounds that.
MEMORY_LIMIT = 256 * 2 ** 20
HANG_AFTER = 10.0  # seconds before a call is interrupted and reported as a hang


def _bases():
    seed = seed_model(seed=0)
    seed.metadata = {"epochs": 2, "note": "fuzz"}
    small = Sequential([Conv2D(1, 2, 3, padding="same"), MaxPool2D(2), ReLU(), Conv2D(2, 3, 2, stride=2),
                        ReLU(), Flatten(), Dense(3 * 2 * 2, 4)], seed=1, input_shape=(1, 8, 8))
    double = Sequential([Conv2D(2, 2, 3, padding=1), ReLU(), MaxPool2D(3, stride=2), Flatten(), Dense(2 * 3 * 3, 3)],
                        seed=2, dtype="float64", input_shape=(2, 7, 7))
    small.class_names = ["A", "star", "\u2603", "two words"]  # a model that names its classes
    return [m.to_bytes() for m in (seed, small, double)]


BASES = _bases()
ALL_COUNTS = collections.Counter()


class Hang(BaseException):
    """Raised by the alarm; a BaseException so the loader's `except Exception` cannot swallow it."""


def _on_alarm(signum, frame):
    raise Hang(f"no answer within {HANG_AFTER} s")


def measured(call):
    """(result, seconds, peak bytes) of call(), interrupted with Hang after HANG_AFTER seconds."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_AFTER)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = call()
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return result, seconds, peak


def check_loader(data, counts):
    """The property: a usable model or ValueError; bounded time and memory."""
    def load():
        try:
            return pycnn.from_bytes(data)
        except ValueError as err:
            assert str(err), "ValueError without a message"
            return None

    model, seconds, peak = measured(load)
    assert seconds < TIME_LIMIT, f"from_bytes took {seconds:.2f} s"
    assert peak < MEMORY_LIMIT, f"from_bytes peaked at {peak / 2 ** 20:.0f} MB"
    if model is None:
        counts["refused"] += 1
        return
    assert isinstance(model, Sequential)
    if any(isinstance(layer, Dense) for layer in model.layers):  # it has classes: each has one clean name
        names = model.names()
        assert len(names) == model.n_classes() and len({name.casefold() for name in names}) == len(names)
        assert all(isinstance(name, str) and name and name == name.strip() for name in names)
    declared = model.input_shape
    shape = declared or (1, 28, 28)  # nothing in the file says what it takes: probe with MNIST's shape
    model.input_shape = shape
    try:
        shapes = model.output_shapes()
    except ValueError:
        assert declared is None, "the loader accepted a model whose layers do not fit its input_shape"
        counts["accepted without input shape"] += 1
        return
    finally:
        model.input_shape = declared
    # what predicting costs: the loader should never accept a model that needs absurd memory
    work = 0
    for layer, s in zip(model.layers, [shape] + shapes[:-1]):
        if isinstance(layer, Conv2D):
            (top, bottom), (left, right) = layer.pads(s[1], s[2])
            work += s[0] * (s[1] + top + bottom) * (s[2] + left + right) * layer.kernel_size ** 2
    assert work < 5 * 10 ** 7, f"accepted a model that needs ~{work:,} values to predict one image"
    x = np.random.default_rng(0).random((1, *shape))
    proba, seconds, peak = measured(lambda: model.predict_proba(x))
    assert proba.ndim == 2 and proba.shape[0] == 1 and proba.shape[1] == shapes[-1][0]
    assert np.all(np.isfinite(proba)) and math.isclose(float(proba.sum()), 1.0, rel_tol=1e-4)
    assert seconds < TIME_LIMIT and peak < MEMORY_LIMIT
    counts["valid model"] += 1


def run_fuzz(strategy, label, record_property):
    """Run check_loader over `strategy`; record how many cases ran."""
    counts = collections.Counter()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(strategy)
    def fuzz(data):
        check_loader(data, counts)

    fuzz()
    total = sum(counts.values())
    ALL_COUNTS.update(counts)
    record_property("report", f"{label}: {total} cases passed ({dict(counts)}); "
                              f"all fuzz tests so far: {sum(ALL_COUNTS.values())}")
    assert total >= MAX_EXAMPLES // 2, f"only {total} cases ran"
    return counts


# ---- zip helpers -----------------------------------------------------------------------------
def members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def rezip(files, compression):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, content in files:
            zf.writestr(name, content)
    return buf.getvalue()


COMPRESSION = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])


# ---- byte-level mutations of whole files -----------------------------------------------------
@st.composite
def mutated_file_bytes(draw):
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]))
        if not data:
            break
        # bias positions towards the headers (local header, config.json, central directory)
        # (a region index, not st.one_of: one_of's exhaustion filter trips hypothesis' consistency check)
        low, high = [(0, min(len(data) - 1, 600)), (max(0, len(data) - 400), len(data) - 1),
                     (0, len(data) - 1)][draw(st.integers(0, 2))]
        pos = draw(st.integers(low, high))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[pos:]
        else:
            chunk = data[pos:pos + draw(st.integers(1, 64))]
            data[pos:pos] = chunk
    return bytes(data)


def test_fuzz_byte_mutations_of_model_files(record_property):
    run_fuzz(mutated_file_bytes(), "byte mutations (flip/set/insert/delete/truncate/duplicate)", record_property)


# ---- config.json value mutations (re-zipped, so they reach the validation) -------------------
JSON_INTS = st.one_of(
    st.sampled_from([0, 1, 2, 3, -1, 10, 13, 26, 28, 100, 1690, 4096, 4097, 10 ** 6, 10 ** 7, 2 ** 31, 2 ** 63,
                     10 ** 30, 16_777_216]),
    st.integers(-10, 40), st.integers())
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), JSON_INTS,
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1.0, 3.0, 0.5, -0.0, 1e308]),
    st.sampled_from(["", "valid", "same", "Conv2D", "Dense", "ReLU", "MaxPool2D", "Flatten", "pycnn", "float32",
                     "float64", "float16", "__import__", "os.system", "<f4", "|O"]),
    st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=8)


def json_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from json_paths(value, path + (i,))


@st.composite
def mutated_configs(draw):
    files = members(draw(st.sampled_from(BASES)))
    config = json.loads(files.pop("config.json"))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(json_paths(config))))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add key"]))
        if not path:
            config = draw(JSON_VALUES) if action == "replace" else config
            continue
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        if action == "delete":
            del parent[path[-1]]
        elif action == "add key" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["rng", "activation", "self", "stride", "dtype", "x", "class_names"]))] = \
                draw(JSON_VALUES)
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    text = json.dumps(config)  # NaN/Infinity become the non-standard tokens Python's json reads back
    order = [("config.json", text.encode())] + list(files.items())
    return rezip(order, draw(COMPRESSION))


def test_fuzz_config_json_mutations(record_property):
    run_fuzz(mutated_configs(), "config.json value mutations", record_property)


# ---- member-level mutations (valid zip, altered .npy / config bytes, members dropped or added)
@st.composite
def mutated_members(draw):
    files = list(members(draw(st.sampled_from(BASES))).items())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["bytes", "bytes", "header", "drop", "add", "rename", "swap", "duplicate"]))
        i = draw(st.integers(0, len(files) - 1)) if files else None
        if i is None:
            break
        name, content = files[i]
        content = bytearray(content)
        if kind == "bytes" and content:
            for _ in range(draw(st.integers(1, 4))):
                pos = draw(st.integers(0, len(content) - 1))
                content[pos] = draw(st.integers(0, 255))
            files[i] = (name, bytes(content))
        elif kind == "header":
            # rewrite the .npy header text: shape, dtype or order
            text = bytes(content[:128]).decode("latin1")
            replacement = draw(st.sampled_from([
                ("'<f4'", "'<f8'"), ("'<f4'", "'|O'"), ("'<f8'", "'<f4'"), ("False", "True"),
                ("(10,)", "(1000000000,)"), ("(10,)", "(11,)"), ("(1690, 10)", "(10, 1690)"), ("'<f4'", "'>f4'"),
                ("{", "{'extra': 1, "), ("'shape'", "'shap'"), ("}", ")"),
            ]))
            files[i] = (name, text.replace(*replacement).encode("latin1") + bytes(content[128:]))
        elif kind == "drop":
            files.pop(i)
        elif kind == "add":
            files.append((draw(st.sampled_from(["evil.pkl", "9.W.npy", "config.json", "0.W.npy", "../x.npy"])),
                          draw(st.binary(max_size=200))))
        elif kind == "rename":
            files[i] = (draw(st.sampled_from(["0.W.npy", "0.b.npy", "4.W.npy", "1.W.npy", "config.json", "x"])), content)
        elif kind == "swap":
            j = draw(st.integers(0, len(files) - 1))
            files[i], files[j] = (files[i][0], files[j][1]), (files[j][0], bytes(content))
        else:
            files.append((name, bytes(content)))
    return rezip(files, draw(COMPRESSION))


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_fuzz_member_mutations(record_property):
    run_fuzz(mutated_members(), "member mutations (re-zipped)", record_property)


# ---- random bytes ----------------------------------------------------------------------------
RANDOM_FILES = st.one_of(
    st.binary(max_size=4096),
    st.binary(max_size=4096).map(lambda b: b"PK\x03\x04" + b),
    st.binary(max_size=512).map(lambda b: b"PK\x05\x06" + b),
    st.binary(max_size=512).map(lambda b: b"\x93NUMPY" + b),
    st.lists(st.tuples(st.sampled_from(["config.json", "0.W.npy", "0.b.npy", "a"]), st.binary(max_size=300)),
             max_size=4).map(lambda fs: rezip(fs, zipfile.ZIP_STORED)),
)


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_fuzz_random_bytes(record_property):
    counts = run_fuzz(RANDOM_FILES, "random bytes", record_property)
    assert counts["valid model"] == 0


def test_unmutated_bases_load_and_predict():
    """Control: the files the fuzzers start from are valid, so a mutation is what gets refused."""
    counts = collections.Counter()
    for data in BASES:
        check_loader(data, counts)
    assert counts == {"valid model": len(BASES)}
