"""Projects of your own classes in the page (pycnn.page's Projects), in CPython through the protocol the web worker
speaks: create one from comma-separated names, add drawings to its classes, train it by transfer and from
scratch (each scored on drawings it was not trained on), read drawings by class name, switch between it and the
digits losing nothing, and bring it back from the file the page keeps."""
import numpy as np
import pytest

from pycnn.project import Project
from page_driver import PageClient

FAST = {"transfer": {"steps": 30, "copies": 4}, "scratch": {"steps": 30}}


@pytest.fixture(scope="module")
def digits(subset):
    x, y = subset
    pick = np.random.default_rng(0).permutation(len(y))[:600]
    return np.round(x[pick, 0] * 255).astype(np.uint8), y[pick]


@pytest.fixture
def client(digits):
    return PageClient.of(*digits, heldout=100, seed=0)


def shape(kind, jitter=0, size=100):
    """A drawing as the canvas sends it (uint8 ink, row by row) -> (bytes, width, height): a ring, a cross or a bar."""
    ink = np.zeros((size, size), np.uint8)
    r, c = np.mgrid[:size, :size]
    j = jitter % 5
    if kind == "ring":
        d = np.hypot(r - 50 - j, c - 50 + j)
        ink[(d > 28 - j) & (d < 36)] = 255
    elif kind == "cross":
        ink[(abs(r - c) < 4 + j) | (abs(r + c - size) < 4 + j)] = 255
        ink[:10 + j] = ink[-10:] = 0
    else:
        ink[45 - j:55, 20:80 + j] = 255
    return ink.tobytes(), size, size


def add(client, label, kind, jitter=0):
    pixels, width, height = shape(kind, jitter)
    return client("add_drawing", pixels, label=label, width=width, height=height)


def made(client, names="ring, cross, bar", each=4):
    """A project of the three shapes with `each` drawings of each -> its project() reply."""
    client("create_project", names=names)
    for i in range(each):
        for label, kind in enumerate(("ring", "cross", "bar")):
            reply = add(client, label, kind, i)
    return reply


def test_a_project_is_made_of_comma_separated_names_and_opened(client):
    reply = client("create_project", names=" cat,dog , fish ,")
    assert reply["project"]["names"] == ["cat", "dog", "fish"] and reply["open"] == reply["project"]["id"]
    assert reply["project"]["count"] == 0 and reply["project"]["counts"] == [0, 0, 0]
    assert reply["projects"] == [{"id": reply["open"], "names": ["cat", "dog", "fish"], "count": 0, "model": False}]
    assert Project.from_bytes(reply["project"]["file"]).names == ["cat", "dog", "fish"]


@pytest.mark.parametrize("names, message", [
    ("cat", "there must be 2 to 20 classes, got 1"),
    ("cat, Cat", "'cat' and 'Cat' are the same name"),
    (",".join(f"c{i}" for i in range(21)), "there must be 2 to 20 classes, got 21"),
    ("cat, , dog", "name 2 is empty"),
])
def test_names_that_do_not_make_a_project_are_refused_and_nothing_is_made(client, names, message):
    assert message in client.error("create_project", names=names)
    assert client("open_project")["projects"] == []


def test_drawings_join_their_class_and_an_untrained_project_reads_nothing(client):
    client("create_project", names="ring, cross, bar")
    pixels, width, height = shape("ring")
    read = client("predict", pixels, width=width, height=height)
    assert read["untrained"] and read["names"] == ["ring", "cross", "bar"] and read["input"].shape == (28, 28)
    reply = add(client, 0, "ring")
    assert reply["project"]["labels"] == [0] and reply["project"]["images"].shape == (1, 28, 28)
    assert np.abs(reply["project"]["images"][0] - read["input"]).max() <= 0.5 / 255 + 1e-6  # kept as grey levels
    assert "label must be an int from 0 to 2, got 3" in client.error("add_drawing", pixels, label=3, width=width,
                                                                     height=height)
    assert "nothing to add" in client.error("add_drawing", bytes(width * height), label=1, width=width, height=height)
    assert "every class needs a drawing to learn from; none yet of cross, bar" in client.error(
        "train_project", how="transfer")
    assert client("remove_drawing", index=0)["project"]["count"] == 0


@pytest.mark.parametrize("method", ["transfer", "scratch"])
def test_a_trained_project_reads_drawings_by_class_name_and_the_digit_model_is_untouched(client, method):
    made(client)
    weights = [w.copy() for w in client.model.get_weights()]
    started, _ = client.run("train_project", how=method, config=FAST[method])
    assert started["runs"] == 4 and started["how"] == method  # 3 folds scored, then the model kept
    done = client.events_of("done")[-1]
    assert done["run"] == "train_project" and done["reason"] == "finished"
    evaluation = done["result"]["evaluation"]
    assert evaluation["method"] == "3-fold cross-validation" and evaluation["scored"] == 12
    assert 0 <= evaluation["accuracy"] <= 1
    assert done["project"]["model"] and done["project"]["results"][method]["evaluation"] == evaluation
    pixels, width, height = shape("cross", 2)
    read = client("predict", pixels, width=width, height=height)
    assert read["names"] == ["ring", "cross", "bar"] and read["probabilities"].shape == (3,)
    assert client("saliency", digit=2)["gradient"].shape == (28, 28)  # see inside: the project's network
    assert "open the digits first" in client.error("try_step", label=1)
    assert all(np.array_equal(a, b) for a, b in zip(weights, client.model.get_weights()))


def test_transfer_and_from_scratch_scores_stand_side_by_side(client):
    made(client)
    client.run("train_project", how="transfer", config=FAST["transfer"])
    client.run("train_project", how="scratch", config=FAST["scratch"])
    results = client("open_project", project=1)["project"]["results"]
    assert set(results) == {"transfer", "scratch"}
    assert results["transfer"]["method"] == "transfer" and results["scratch"]["method"] == "from scratch"


def test_switching_to_the_digits_and_back_loses_nothing(client):
    made(client, each=2)
    client.run("train_project", how="transfer", config=FAST["transfer"])
    pixels, width, height = shape("ring")
    digits = client("open_project", project=None)
    assert digits["project"] is None and digits["projects"][0]["count"] == 6 and digits["projects"][0]["model"]
    assert client("predict", pixels, width=width, height=height)["names"] == [str(d) for d in range(10)]
    other = client("create_project", names="x, o")
    assert other["project"]["id"] == 2 and len(other["projects"]) == 2
    back = client("open_project", project=1)["project"]
    assert back["count"] == 6 and back["counts"] == [2, 2, 2] and back["model"]
    assert client("predict", pixels, width=width, height=height)["names"] == ["ring", "cross", "bar"]


def test_a_project_comes_back_from_the_file_the_page_keeps(client, digits):
    made(client)
    kept = client.run("train_project", how="scratch", config=FAST["scratch"]) and client.events_of("done")[-1]
    pixels, width, height = shape("bar", 1)
    before = client("predict", pixels, width=width, height=height)["probabilities"]
    reloaded = PageClient.of(*digits, heldout=100, seed=0)
    listing = reloaded("load_project", kept["project"]["file"], project=7)
    assert listing["project"] is None and listing["projects"][0]["id"] == 7  # back, not opened
    shown = reloaded("open_project", project=7)["project"]
    assert shown["names"] == ["ring", "cross", "bar"] and shown["counts"] == [4, 4, 4]
    assert shown["results"]["scratch"]["evaluation"]["accuracy"] == kept["result"]["evaluation"]["accuracy"]
    after = reloaded("predict", pixels, width=width, height=height)["probabilities"]
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert reloaded("create_project", names="a, b")["project"]["id"] == 8  # ids are not reused
    assert "not a valid pycnn project file" in reloaded.error("load_project", b"PK\x03\x04 not a project")


def test_an_exported_project_imports_as_a_new_one_and_a_bad_file_changes_nothing(client, tmp_path):
    made(client, names="ring, Cross!, bar")
    client.run("train_project", how="transfer", config=FAST["transfer"])
    exported = client("export_project")
    assert exported["file_name"] == "ring-cross-bar.npz" and exported["count"] == 12
    path = tmp_path / exported["file_name"]
    path.write_bytes(exported["bytes"])
    assert Project.load(path).model is not None  # the file `python -m pycnn train --classes` reads
    reply = client("import_project", exported["bytes"])
    assert reply["added"] == 2 and reply["open"] == 2 and reply["project"]["counts"] == [4, 4, 4]
    assert reply["project"]["model"] and reply["project"]["results"]["transfer"]["evaluation"]["method"]
    assert "this is a digits file (Your digits), not a project file" in client.error(
        "import_project", client("export_digits")["bytes"])
    assert len(client("open_project", project=2)["projects"]) == 2


def test_a_stopped_project_run_keeps_nothing(client):
    made(client)
    client("train_project", how="transfer", config=FAST["transfer"])
    client("step")
    client("stop")
    client("step")
    done = client.events_of("done")[-1]
    assert done["reason"] == "stopped" and done["evaluation"] is None
    assert not client("open_project", project=1)["project"]["model"]


def test_a_drawing_goes_to_the_project_named_whichever_is_open(client):
    made(client, each=1)
    client("create_project", names="x, o")
    pixels, width, height = shape("bar")
    reply = client("add_drawing", pixels, label=2, width=width, height=height, project=1)
    assert reply["project"]["id"] == 1 and reply["project"]["counts"] == [1, 1, 2] and reply["open"] == 2
    assert client("remove_drawing", index=0, project=1)["project"]["counts"] == [0, 1, 2]
    assert "there is no project 9" in client.error("add_drawing", pixels, label=0, width=width, height=height, project=9)


def test_removing_a_project_opens_the_digits(client):
    made(client, each=1)
    reply = client("remove_project", project=1)
    assert reply["project"] is None and reply["projects"] == [] and reply["removed"] == 1
    assert "no project is open" in client.error("add_drawing", b"\xff" * 4, label=0, width=2, height=2)
