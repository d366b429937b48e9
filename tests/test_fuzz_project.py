"""Fuzzing the project-file reader with hypothesis.

Mutated valid project files (bytes flipped, inserted, deleted, truncated; classes.json values replaced,
deleted or added, names among them; members altered, dropped, added and re-zipped with valid CRCs, the
model file inside among them) and random bytes go to `pycnn.project.Project.from_bytes`. Each call
must either return a project a model can learn from (2-20 clean, distinct names; drawings (N, 1, 28, 28)
float32 in [0, 1]; labels naming a class; a model, if any, reading (1, 28, 28) with one output per class
and the project's names) or raise ValueError - never another exception - within TIME_LIMIT seconds and
MEMORY_LIMIT bytes.

PYCNN_FUZZ_EXAMPLES scales the examples per test (default 500; 4 tests), as for the model loader.
"""
import collections
import json
import os
import warnings
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pycnn
from pycnn.project import MAX_CLASSES, MAX_DRAWINGS, MIN_CLASSES, Project

from test_fuzz_loader import JSON_VALUES, measured, members, rezip

MAX_EXAMPLES = int(os.environ.get("PYCNN_FUZZ_EXAMPLES", "500"))
TIME_LIMIT = 2.0
MEMORY_LIMIT = 128 * 2 ** 20  # the largest valid file unpacks to 8 MB of drawings and a 16 MB model


def _bases():
    rng = np.random.default_rng(0)
    drawn = np.zeros((12, 28, 28), np.float32)
    drawn[:, 6:22, 12:16] = rng.random((12, 16, 4))
    model = pycnn.Sequential([pycnn.Conv2D(1, 2, 3), pycnn.ReLU(), pycnn.MaxPool2D(2), pycnn.Flatten(),
                              pycnn.Dense(2 * 13 * 13, 3)], seed=0, input_shape=(1, 28, 28))
    return [Project(["circle", "Star", "\U0001F600"], drawn, np.arange(12) % 3, model).to_bytes(),
            Project(["a", "b"], drawn[:1], [1]).to_bytes(),
            Project([f"class {i}" for i in range(MAX_CLASSES)]).to_bytes()]


BASES = _bases()
NAMES = st.one_of(JSON_VALUES, st.lists(st.text(max_size=45), max_size=22),
                  st.sampled_from([["a", "A"], ["a", " a "], ["x"] * 21, ["a", ""], ["a", "b\n"], ["\ud800", "b"],
                                   ["circle", "Star", "\U0001F600"], ["a", "b", "c", "d"]]))


def check_reader(data, counts):
    """The property: a project a model can learn from, or ValueError; bounded time and memory."""
    def read():
        try:
            return Project.from_bytes(data)
        except ValueError as err:
            assert str(err), "ValueError without a message"
            return None

    result, seconds, peak = measured(read)
    assert seconds < TIME_LIMIT, f"from_bytes took {seconds:.2f} s"
    assert peak < MEMORY_LIMIT, f"from_bytes peaked at {peak / 2 ** 20:.0f} MB"
    if result is None:
        counts["refused"] += 1
        return
    names, x, y = result.names, result.x, result.y
    assert MIN_CLASSES <= len(names) <= MAX_CLASSES and len({n.casefold() for n in names}) == len(names)
    assert all(isinstance(n, str) and n and n == n.strip() for n in names)
    assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1:] == (1, 28, 28) and len(x) <= MAX_DRAWINGS
    assert np.all(np.isfinite(x)) and (x.size == 0 or (x.min() >= 0 and x.max() <= 1))
    assert y.shape == (len(x),) and (y.size == 0 or (y.min() >= 0 and y.max() < len(names)))
    if result.model is not None:
        assert result.model.input_shape == (1, 28, 28) and result.model.class_names == names
        proba = result.model.predict_proba(np.zeros((1, 1, 28, 28), np.float32))
        assert proba.shape == (1, len(names)) and np.all(np.isfinite(proba))
        counts["valid project with a model"] += 1
    else:
        counts["valid project"] += 1


def run_fuzz(strategy, label, record_property):
    counts = collections.Counter()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(strategy)
    def fuzz(data):
        check_reader(data, counts)

    with warnings.catch_warnings():  # the strategies write duplicate members on purpose
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
        fuzz()
    total = sum(counts.values())
    record_property("report", f"project file, {label}: {total} cases passed ({dict(counts)})")
    assert total >= MAX_EXAMPLES // 2, f"only {total} cases ran"
    return counts


COMPRESSION = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])


@st.composite
def mutated_bytes(draw):
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        else:
            del data[pos:]
    return bytes(data)


def test_fuzz_byte_mutations_of_project_files(record_property):
    run_fuzz(mutated_bytes(), "byte mutations", record_property)


@st.composite
def mutated_headers(draw):
    files = members(draw(st.sampled_from(BASES)))
    header = json.loads(files.pop("classes.json"))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(["format", "version", "names", "names", "count", "model", "extra"]))
        action = draw(st.sampled_from(["replace", "replace", "delete"]))
        if action == "delete":
            header.pop(key, None)
        elif key == "names":
            header[key] = draw(NAMES)
        else:
            header[key] = draw(st.one_of(JSON_VALUES, st.sampled_from([0, 1, 2, 3, 11, 12, 13, 10_000, 10_001, -1,
                                                                         True, False])))
    if draw(st.integers(0, 9)) == 0:
        header = draw(JSON_VALUES)
    order = [("classes.json", json.dumps(header).encode())] + list(files.items())
    return rezip(order, draw(COMPRESSION))


def test_fuzz_classes_json_mutations(record_property):
    run_fuzz(mutated_headers(), "classes.json mutations", record_property)


@st.composite
def mutated_members(draw):
    files = list(members(draw(st.sampled_from(BASES))).items())
    if "model.npz" in dict(files) and draw(st.booleans()):  # the model file inside, its config edited
        inner = members(dict(files)["model.npz"])
        config = json.loads(inner["config.json"])
        config[draw(st.sampled_from(["class_names", "class_names", "input_shape", "version", "layers"]))] = draw(
            st.one_of(JSON_VALUES, NAMES))
        inner["config.json"] = json.dumps(config).encode()
        files = [(n, rezip(list(inner.items()), zipfile.ZIP_DEFLATED) if n == "model.npz" else c) for n, c in files]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["bytes", "header", "drop", "add", "rename", "swap", "duplicate"]))
        if not files:
            break
        i = draw(st.integers(0, len(files) - 1))
        name, content = files[i]
        content = bytearray(content)
        if kind == "bytes" and content:
            for _ in range(draw(st.integers(1, 4))):
                content[draw(st.integers(0, len(content) - 1))] = draw(st.integers(0, 255))
            files[i] = (name, bytes(content))
        elif kind == "header":
            text = bytes(content[:128]).decode("latin1")
            replacement = draw(st.sampled_from([
                ("'|u1'", "'<f4'"), ("'|u1'", "'|O'"), ("'|u1'", "'<u2'"), ("False", "True"), ("(12,", "(10000000,"),
                ("(12,)", "(13,)"), ("28, 28)", "28, 29)"), ("28, 28)", "784)"), ("{", "{'extra': 1, "), ("}", ")"),
            ]))
            files[i] = (name, text.replace(*replacement).encode("latin1") + bytes(content[128:]))
        elif kind == "drop":
            files.pop(i)
        elif kind == "add":
            files.append((draw(st.sampled_from(["evil.pkl", "config.json", "digits.json", "model.npz", "../x.npy"])),
                          draw(st.binary(max_size=200))))
        elif kind == "rename":
            files[i] = (draw(st.sampled_from(["images.npy", "labels.npy", "classes.json", "model.npz", "x"])),
                        bytes(content))
        elif kind == "swap":
            j = draw(st.integers(0, len(files) - 1))
            files[i], files[j] = (files[i][0], files[j][1]), (files[j][0], bytes(content))
        else:
            files.append((name, bytes(content)))
    return rezip(files, draw(COMPRESSION))


def test_fuzz_member_mutations_of_project_files(record_property):
    run_fuzz(mutated_members(), "member mutations (re-zipped)", record_property)


RANDOM_FILES = st.one_of(
    st.binary(max_size=4096),
    st.binary(max_size=4096).map(lambda b: b"PK\x03\x04" + b),
    st.lists(st.tuples(st.sampled_from(["classes.json", "images.npy", "labels.npy", "model.npz", "a"]),
                       st.binary(max_size=300)), max_size=4).map(lambda fs: rezip(fs, zipfile.ZIP_STORED)),
)


def test_fuzz_random_bytes_are_never_projects(record_property):
    counts = run_fuzz(RANDOM_FILES, "random bytes", record_property)
    assert counts["valid project"] == counts["valid project with a model"] == 0


def test_unmutated_bases_are_read():
    """Control: the files the fuzzers start from are valid, so a mutation is what gets refused."""
    counts = collections.Counter()
    for data in BASES:
        check_reader(data, counts)
    assert counts == {"valid project": 2, "valid project with a model": 1}
