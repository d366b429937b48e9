"""Fuzzing the digits-file reader with hypothesis.

Mutated valid digits files (bytes flipped, inserted, deleted, truncated; digits.json values
replaced, deleted or added; members altered, dropped, added and re-zipped with valid CRCs) and
random bytes go to `pycnn.yourdigits.from_bytes`. Each call must either return digits a model
can take (images (N, 1, 28, 28) float32 in [0, 1], labels (N,) in 0..9, N <= MAX_DIGITS) or raise
ValueError - never another exception - within TIME_LIMIT seconds and MEMORY_LIMIT bytes.

PYCNN_FUZZ_EXAMPLES scales the examples per test (default 500; 4 tests), as for the model loader.
"""
import collections
import json
import os
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycnn import yourdigits

from test_fuzz_loader import JSON_VALUES, measured, members, rezip

MAX_EXAMPLES = int(os.environ.get("PYCNN_FUZZ_EXAMPLES", "500"))
TIME_LIMIT = 2.0
MEMORY_LIMIT = 64 * 2 ** 20  # the largest valid file unpacks to 8 MB, its float32 images to 31 MB


def _bases():
    rng = np.random.default_rng(0)
    drawn = np.zeros((30, 28, 28), np.float32)
    drawn[:, 6:22, 12:16] = rng.random((30, 16, 4))
    return [yourdigits.to_bytes(drawn, np.arange(30) % 10),
            yourdigits.to_bytes(np.zeros((1, 28, 28), np.uint8), [7]),
            yourdigits.to_bytes(np.zeros((0, 28, 28)), [])]


BASES = _bases()


def check_reader(data, counts):
    """The property: digits a model can take, or ValueError; bounded time and memory."""
    def read():
        try:
            return yourdigits.from_bytes(data)
        except ValueError as err:
            assert str(err), "ValueError without a message"
            return None

    result, seconds, peak = measured(read)
    assert seconds < TIME_LIMIT, f"from_bytes took {seconds:.2f} s"
    assert peak < MEMORY_LIMIT, f"from_bytes peaked at {peak / 2 ** 20:.0f} MB"
    if result is None:
        counts["refused"] += 1
        return
    x, y = result
    assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1:] == (1, 28, 28)
    assert y.dtype == np.int64 and y.shape == (len(x),) and len(x) <= yourdigits.MAX_DIGITS
    assert np.all(np.isfinite(x)) and (x.size == 0 or (x.min() >= 0 and x.max() <= 1))
    assert y.size == 0 or (y.min() >= 0 and y.max() <= 9)
    counts["valid digits"] += 1


def run_fuzz(strategy, label, record_property):
    counts = collections.Counter()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(strategy)
    def fuzz(data):
        check_reader(data, counts)

    fuzz()
    total = sum(counts.values())
    record_property("report", f"digits file, {label}: {total} cases passed ({dict(counts)})")
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


def test_fuzz_byte_mutations_of_digits_files(record_property):
    run_fuzz(mutated_bytes(), "byte mutations", record_property)


@st.composite
def mutated_headers(draw):
    files = members(draw(st.sampled_from(BASES)))
    header = json.loads(files.pop("digits.json"))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(["format", "version", "count", "extra"]))
        action = draw(st.sampled_from(["replace", "replace", "delete"]))
        if action == "delete":
            header.pop(key, None)
        else:
            header[key] = draw(st.one_of(JSON_VALUES, st.sampled_from([0, 1, 2, 3, 29, 30, 31, 10_000, 10_001, -1])))
    if draw(st.booleans()):
        header = draw(JSON_VALUES) if draw(st.integers(0, 9)) == 0 else header
    order = [("digits.json", json.dumps(header).encode())] + list(files.items())
    return rezip(order, draw(COMPRESSION))


def test_fuzz_digits_json_mutations(record_property):
    run_fuzz(mutated_headers(), "digits.json mutations", record_property)


@st.composite
def mutated_members(draw):
    files = list(members(draw(st.sampled_from(BASES))).items())
    for _ in range(draw(st.integers(1, 3))):
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
                ("'|u1'", "'<f4'"), ("'|u1'", "'|O'"), ("'|u1'", "'<u2'"), ("False", "True"), ("(30,", "(10000000,"),
                ("(30,)", "(31,)"), ("28, 28)", "28, 29)"), ("28, 28)", "784)"), ("{", "{'extra': 1, "), ("}", ")"),
            ]))
            files[i] = (name, text.replace(*replacement).encode("latin1") + bytes(content[128:]))
        elif kind == "drop":
            files.pop(i)
        elif kind == "add":
            files.append((draw(st.sampled_from(["evil.pkl", "config.json", "images.npy", "../x.npy"])),
                          draw(st.binary(max_size=200))))
        elif kind == "rename":
            files[i] = (draw(st.sampled_from(["images.npy", "labels.npy", "digits.json", "x"])), bytes(content))
        elif kind == "swap":
            j = draw(st.integers(0, len(files) - 1))
            files[i], files[j] = (files[i][0], files[j][1]), (files[j][0], bytes(content))
        else:
            files.append((name, bytes(content)))
    return rezip(files, draw(COMPRESSION))


def test_fuzz_member_mutations_of_digits_files(record_property):
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
        run_fuzz(mutated_members(), "member mutations (re-zipped)", record_property)


RANDOM_FILES = st.one_of(
    st.binary(max_size=4096),
    st.binary(max_size=4096).map(lambda b: b"PK\x03\x04" + b),
    st.lists(st.tuples(st.sampled_from(["digits.json", "images.npy", "labels.npy", "a"]), st.binary(max_size=300)),
             max_size=4).map(lambda fs: rezip(fs, zipfile.ZIP_STORED)),
)


def test_fuzz_random_bytes_are_never_digits(record_property):
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
        counts = run_fuzz(RANDOM_FILES, "random bytes", record_property)
    assert counts["valid digits"] == 0


def test_unmutated_bases_are_read():
    """Control: the files the fuzzers start from are valid, so a mutation is what gets refused."""
    counts = collections.Counter()
    for data in BASES:
        check_reader(data, counts)
    assert counts == {"valid digits": len(BASES)}
