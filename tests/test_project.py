"""pycnn.project: the project file of your own classes (round trips, with and without a model; every
kind of bad file refused with one ValueError that says what is wrong) and changing a project (a refused
change leaves it as it was)."""
import io
import json
import re

import numpy as np
import pytest

import pycnn
from pycnn import project, yourdigits
from pycnn.project import MAX_CLASSES, MAX_DRAWINGS, MAX_FILE_BYTES, Project

from model_files import members, npy, npy_with_header, rezip

NAMES = ["circle", "Star", "\u2603", "two words", "\U0001F600"]


def drawings(n=15, classes=5, seed=0):
    """n random drawings in [0, 1] (N, 1, 28, 28) and labels cycling through the classes."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28)).astype(np.float32), np.arange(n) % classes


def small_network(classes=5, seed=0):
    return pycnn.Sequential([pycnn.Conv2D(1, 2, 3), pycnn.ReLU(), pycnn.MaxPool2D(2), pycnn.Flatten(),
                             pycnn.Dense(2 * 13 * 13, classes)], seed=seed, input_shape=(1, 28, 28))


def named_network(names):
    model = small_network(len(names))
    model.class_names = names
    return model


def good(model=False):
    x, y = drawings()
    return Project(NAMES, x, y, small_network() if model else None).to_bytes()


GOOD, WITH_MODEL = good(), good(model=True)


def with_members(data, **changes):
    """The file with members replaced (bytes), added, or removed (None); classes_json means classes.json."""
    files = members(data)
    for name, content in changes.items():
        name = name.replace("_json", ".json").replace("_npy", ".npy").replace("_npz", ".npz")
        if content is None:
            files.pop(name)
        else:
            files[name] = content
    return rezip(files)


def header_of(data):
    return json.loads(members(data)["classes.json"])


def with_header(data, **changes):
    header = {**header_of(data), **changes}
    return with_members(data, classes_json=json.dumps(header).encode())


def refused(data, match):
    with pytest.raises(ValueError, match=match) as info:
        Project.from_bytes(data)
    return str(info.value)


# ---- round trips -----------------------------------------------------------------------------------
def test_round_trip_keeps_names_drawings_to_a_grey_level_and_labels():
    x, y = drawings(40)
    saved = Project([" circle ", *NAMES[1:]], x, y)
    back = Project.from_bytes(saved.to_bytes())
    assert back.names == NAMES  # stored trimmed
    np.testing.assert_array_equal(back.y, y)
    np.testing.assert_allclose(back.x, x, atol=0.5 / 255 + 1e-7)
    assert back.x.dtype == np.float32 and back.x.shape == (40, 1, 28, 28)
    assert back.model is None and back.counts() == [8] * 5
    again = Project.from_bytes(back.to_bytes())  # what a project holds survives any number of round trips
    np.testing.assert_array_equal(again.x, back.x)


def test_round_trip_with_a_model_gives_the_same_predictions_and_names(tmp_path):
    x, y = drawings()
    saved = Project(NAMES, x, y, small_network())
    saved.save(tmp_path / "p.npz")
    back = Project.load(tmp_path / "p.npz")
    assert back.model.class_names == NAMES
    np.testing.assert_array_equal(back.model.predict_proba(x), saved.model.predict_proba(x))
    assert back.model.predict_names(x[:3]) == saved.model.predict_names(x[:3])


def test_classes_without_drawings_and_a_project_without_any_round_trip():
    x, y = drawings(4, classes=2)
    back = Project.from_bytes(Project(NAMES, x, y).to_bytes())
    assert back.counts() == [2, 2, 0, 0, 0]
    empty = Project.from_bytes(Project(["a", "b"]).to_bytes())
    assert len(empty) == 0 and empty.x.shape == (0, 1, 28, 28) and empty.names == ["a", "b"]


def test_the_file_is_an_npz_numpy_reads_without_pickle_and_the_same_project_gives_the_same_bytes():
    with np.load(io.BytesIO(WITH_MODEL), allow_pickle=False) as npz:
        assert npz["images"].dtype == np.uint8 and npz["images"].shape == (15, 28, 28)
        assert list(npz["labels"]) == list(np.arange(15) % 5)
    assert good(model=True) == WITH_MODEL
    assert header_of(WITH_MODEL) == {"format": "pycnn-classes", "version": 1, "names": NAMES, "count": 15,
                                     "model": True}


def test_an_oversized_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.npz"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ValueError, match=re.escape(f"{path}: the project file is {MAX_FILE_BYTES + 1:,} bytes")):
        Project.load(path)


# ---- bad files: one ValueError saying what is wrong ----------------------------------------------------
def labels_npy(labels):
    return npy(np.asarray(labels, np.uint8))


BAD_FILES = {
    "empty": (b"", "the project file is empty"),
    "random bytes": (bytes(range(256)) * 4, "not a pycnn project file \\(it is not a zip/.npz archive\\)"),
    "truncated": (GOOD[:len(GOOD) // 2], "not a valid pycnn project file"),
    "a model file": (small_network().to_bytes(), "this is a pycnn model file, not a project file"),
    "a digits file": (yourdigits.to_bytes(*drawings(3)), "this is a digits file \\(Your digits\\), not a project file"),
    "newer version": (with_header(GOOD, version=2), "from a newer pycnn \\(version 2\\); this pycnn reads version 1"),
    "version as text": (with_header(GOOD, version="1"), "unsupported project file version '1'"),
    "version true": (with_header(GOOD, version=True), "unsupported project file version True"),
    "other format": (with_header(GOOD, format="pycnn-digits"), "not a pycnn project file"),
    "not json": (with_members(GOOD, classes_json=b"{names: "), "classes.json is not valid JSON"),
    "unknown key": (with_header(GOOD, colour="red"), "classes.json has unknown keys: colour"),
    "one class": (with_header(GOOD, names=["only"]), "there must be 2 to 20 classes, got 1"),
    "21 classes": (with_header(GOOD, names=[f"c{i}" for i in range(21)]), "there must be 2 to 20 classes, got 21"),
    "names not a list": (with_header(GOOD, names="circle"), "must be a list of strings, got str"),
    "duplicate names": (with_header(GOOD, names=["circle", "Star", "star ", "a", "b"]),
                        "'Star' and 'star' are the same name"),
    "empty name": (with_header(GOOD, names=["circle", "  ", "a", "b", "c"]), "name 2 is empty"),
    "long name": (with_header(GOOD, names=["circle", "x" * 41, "a", "b", "c"]), "name 2 is 41 characters long"),
    "line break": (with_header(GOOD, names=["circle", "a\nb", "c", "d", "e"]), "name 2 has a control character"),
    "number name": (with_header(GOOD, names=["circle", 2, "c", "d", "e"]), "name 2 must be a string"),
    "label out of range": (with_members(GOOD, labels_npy=labels_npy([0, 1, 2, 3, 5] * 3)),
                           "labels must be class indices 0-4 \\(the 5 names\\), found 5"),
    "fewer names than labels use": (with_header(GOOD, names=["a", "b"]), "found 4"),
    "count above the limit": (with_header(GOOD, count=MAX_DRAWINGS + 1), "count must be an int from 0 to 10,000"),
    "negative count": (with_header(GOOD, count=-1), "count must be an int"),
    "count mismatch": (with_header(GOOD, count=14),
                       "images.npy: shape must be \\(14, 28, 28\\) \\(count in classes.json\\)"),
    "float images": (with_members(GOOD, images_npy=npy(np.zeros((15, 28, 28), np.float32))), "dtype must be uint8"),
    "wrong image size": (with_members(GOOD, images_npy=npy(np.zeros((15, 27, 28), np.uint8))),
                         "shape must be \\(15, 28, 28\\)"),
    "absurd header": (with_members(GOOD, images_npy=npy_with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 28, 28), }")),
        "shape must be \\(15, 28, 28\\)"),
    "pickled labels": (with_members(GOOD, labels_npy=npy(np.array([object()] * 15), allow_pickle=True)),
                       "dtype must be uint8"),
    "missing labels": (with_members(GOOD, labels_npy=None), "the project file is missing labels.npy"),
    "unexpected member": (with_members(GOOD, evil_pkl=b"x"), "unexpected members: evil_pkl"),
    "model said, none there": (with_header(GOOD, model=True), "says the project has a model, but model.npz is missing"),
    "model there, none said": (with_header(WITH_MODEL, model=False), "has no model, but model.npz is there"),
    "model flag not a bool": (with_header(GOOD, model=1), "model must be true or false, got 1"),
    "model of other classes": (with_members(WITH_MODEL, model_npz=small_network(classes=4).to_bytes()),
                               "model.npz: the model has 4 classes; the project names 5"),
    "model of other names": (with_members(WITH_MODEL, model_npz=named_network(list("ABCDE")).to_bytes()),
                             "model.npz: the model names its classes \\['A', 'B', 'C', 'D', 'E'\\], the project"),
    "model for other images": (with_members(WITH_MODEL, model_npz=pycnn.Sequential(
        [pycnn.Flatten(), pycnn.Dense(16, 5)], seed=0, input_shape=(1, 4, 4)).to_bytes()),
        "model.npz: the model must read \\(1, 28, 28\\) drawings"),
    "corrupt model": (with_members(WITH_MODEL, model_npz=b"PK\x03\x04 broken"),
                      "model.npz: not a valid pycnn model file"),
    "oversized json": (with_members(GOOD, classes_json=b" " * (project.MAX_JSON_BYTES + 1)),
                       "classes.json is 16,385 bytes; at most 16,384"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_project_file_is_refused_saying_what_is_wrong(kind):
    data, match = BAD_FILES[kind]
    refused(data, match)


def test_non_bytes_are_refused():
    with pytest.raises(ValueError, match="project data must be bytes, got str"):
        Project.from_bytes("classes.json")


def test_a_zip_claiming_to_unpack_beyond_the_limit_is_refused_before_reading():
    files = members(GOOD)
    files["images.npy"] = bytes(project.MAX_UNPACKED_BYTES)  # deflates to a few kB
    refused(rezip(files), "would unpack to")


def test_a_bad_file_named_by_path_says_which_file(tmp_path):
    path = tmp_path / "mine.npz"
    path.write_bytes(with_header(GOOD, version=3))
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: this project file is from a newer pycnn"):
        Project.load(path)


# ---- building and changing a project -----------------------------------------------------------------------
@pytest.mark.parametrize("args, match", [
    ((["a"],), "there must be 2 to 20 classes, got 1"),
    (([f"c{i}" for i in range(MAX_CLASSES + 1)],), "there must be 2 to 20 classes, got 21"),
    ((["a", "A"],), "'a' and 'A' are the same name"),
    ((["a", "b"], np.full((2, 28, 28), np.nan), [0, 1]), "drawings contain NaN or infinity"),
    ((["a", "b"], np.full((2, 28, 28), 2.0), [0, 1]), "drawings must be in \\[0, 1\\], got values from 2 to 2"),
    ((["a", "b"], np.zeros((2, 28, 27)), [0, 1]), "drawings must have shape \\(N, 28, 28\\)"),
    ((["a", "b"], np.zeros((2, 28, 28)), [0, 2]), "labels must be class indices 0-1 \\(the 2 classes\\), got 0..2"),
    ((["a", "b"], np.zeros((2, 28, 28)), [0]), "labels must be 2 class indices"),
    ((["a", "b"], None, None, small_network(classes=3)), "the model has 3 classes; the project has 2 \\(a, b\\)"),
])
def test_a_project_that_does_not_fit_together_is_refused(args, match):
    with pytest.raises(ValueError, match=match):
        Project(*args)


def test_renaming_a_class_renames_it_for_the_model_too_and_a_clashing_name_changes_nothing():
    x, y = drawings()
    mine = Project(NAMES, x, y, small_network())
    mine.rename(1, "  big star ")
    assert mine.names[1] == "big star" and mine.model.class_names[1] == "big star"
    with pytest.raises(ValueError, match="'circle' and 'CIRCLE' are the same name"):
        mine.rename(1, "CIRCLE")
    assert mine.names[1] == "big star" and mine.model.class_names == mine.names


def test_adding_and_removing_classes_keeps_the_drawings_labelled_and_drops_the_model():
    x, y = drawings()
    mine = Project(NAMES, x, y, small_network())
    assert mine.add_class("square") == 5 and mine.model is None and mine.counts() == [3, 3, 3, 3, 3, 0]
    mine.add(x[:2], 5)
    kept = mine.x[mine.y != 1]
    mine.remove_class(1)
    assert mine.names == [NAMES[0], *NAMES[2:], "square"] and mine.counts() == [3, 3, 3, 3, 2]
    np.testing.assert_array_equal(mine.x, kept)  # the others' drawings, in order, their classes moved up
    np.testing.assert_array_equal(mine.y, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 4])


def test_refused_changes_leave_the_project_as_it_was():
    x, y = drawings(4, classes=2)
    mine = Project(["a", "b"], x, y)
    before = mine.to_bytes()
    for change, match in ((lambda: mine.remove_class(0), "a project has at least 2 classes: add another before "
                                                          "removing 'a'"),
                          (lambda: mine.add_class("B"), "'b' and 'B' are the same name"),
                          (lambda: mine.add(np.zeros((2, 28, 28)), [0, 2]), "labels must be class indices 0-1"),
                          (lambda: mine.add(np.zeros((MAX_DRAWINGS, 28, 28), np.uint8), 0),
                           "a project holds at most 10,000 drawings; it has 4"),
                          (lambda: mine.remove(4), "index must be an int from 0 to 3, got 4"),
                          (lambda: mine.rename(2, "c"), "class index must be an int from 0 to 1, got 2")):
        with pytest.raises(ValueError, match=match):
            change()
        assert mine.to_bytes() == before
