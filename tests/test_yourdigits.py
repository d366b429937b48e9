"""pycnn.yourdigits: the digits file (round trips, every kind of bad file refused with one
ValueError), the fine-tune (batches, determinism, learning a hand, divergence), the honest
before/after of FineTuneJob (checked against fine-tunes run by hand), and joining a training run."""
import io
import json
import zipfile

import numpy as np
import pytest

import pycnn
from pycnn import Trainer, TrainingConfig, TrainingDiverged, yourdigits
from pycnn.augment import random_affine
from pycnn.yourdigits import FineTuneConfig, FineTuneJob, FineTuner

from model_files import members, npy, npy_with_header, rezip

FAST = FineTuneConfig(steps=20)


def digits(n=30, seed=0):
    """n random images in [0, 1] (N, 1, 28, 28) and labels cycling 0-9."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28)).astype(np.float32), np.arange(n) % 10


def with_members(data, **changes):
    """The file with members replaced (bytes), added, or removed (None)."""
    files = members(data)
    for name, content in changes.items():
        name = name.replace("_json", ".json").replace("_npy", ".npy")
        if content is None:
            files.pop(name)
        else:
            files[name] = content
    return rezip(files)


def header_of(data):
    return json.loads(members(data)["digits.json"])


def with_header(data, **changes):
    header = {**header_of(data), **changes}
    return with_members(data, digits_json=json.dumps(header).encode())


def refused(data, match):
    with pytest.raises(ValueError, match=match) as info:
        yourdigits.from_bytes(data)
    return str(info.value)


GOOD = yourdigits.to_bytes(*digits(12))


# ---- the file: round trips -----------------------------------------------------------------------
def test_round_trip_keeps_labels_and_images_to_a_grey_level():
    x, y = digits(30)
    back, labels = yourdigits.from_bytes(yourdigits.to_bytes(x, y))
    assert back.shape == (30, 1, 28, 28) and back.dtype == np.float32
    assert labels.dtype == np.int64 and np.array_equal(labels, y)
    assert np.abs(back - x).max() <= 0.5 / 255 + 1e-7  # uint8 grey levels: half a level at most


def test_uint8_images_and_flat_images_are_stored_as_given():
    pixels = np.random.default_rng(1).integers(0, 256, (7, 28, 28)).astype(np.uint8)
    back, _ = yourdigits.from_bytes(yourdigits.to_bytes(pixels, [3] * 7))
    assert np.array_equal(np.rint(back[:, 0] * 255).astype(np.uint8), pixels)
    x, y = digits(5)
    assert yourdigits.to_bytes(x[:, 0], y) == yourdigits.to_bytes(x, y)


def test_the_same_digits_give_the_same_bytes_and_numpy_reads_the_file(tmp_path):
    x, y = digits(10)
    path = tmp_path / "my-digits.npz"
    yourdigits.save(path, x, y)
    assert path.read_bytes() == yourdigits.to_bytes(x, y)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["images"].shape == (10, 28, 28) and npz["images"].dtype == np.uint8
        assert np.array_equal(npz["labels"], y)
    loaded_x, loaded_y = yourdigits.load(path)
    assert np.array_equal(loaded_y, y) and loaded_x.shape == x.shape


def test_an_empty_gallery_round_trips():
    x, y = yourdigits.from_bytes(yourdigits.to_bytes(np.zeros((0, 28, 28)), []))
    assert x.shape == (0, 1, 28, 28) and y.shape == (0,)


def test_ten_thousand_digits_fit_and_one_more_is_refused():
    x = np.zeros((yourdigits.MAX_DIGITS, 28, 28), np.uint8)
    x[:, 10:18, 12:15] = 255
    data = yourdigits.to_bytes(x, np.arange(len(x)) % 10)
    assert len(data) < yourdigits.MAX_FILE_BYTES
    assert len(yourdigits.from_bytes(data)[1]) == yourdigits.MAX_DIGITS
    with pytest.raises(ValueError, match="at most 10,000 images, got 10,001"):
        yourdigits.to_bytes(np.zeros((10_001, 28, 28), np.uint8), np.zeros(10_001, int))


@pytest.mark.parametrize("images, labels, message", [
    (np.full((2, 28, 28), np.nan), [1, 2], "images contain NaN or infinity"),
    (np.full((2, 28, 28), 1.5), [1, 2], r"images must be in \[0, 1\], got values from 1.5 to 1.5"),
    (np.full((2, 28, 28), -0.1), [1, 2], r"images must be in \[0, 1\]"),
    (np.zeros((2, 28, 27)), [1, 2], r"images must have shape \(N, 28, 28\) or \(N, 1, 28, 28\), got \(2, 28, 27\)"),
    (np.zeros((2, 3, 28, 28)), [1, 2], "images must have shape"),
    (np.zeros((2, 28, 28), bool), [1, 2], "images must be floats in .0, 1. or uint8, got dtype bool"),
    (np.zeros((2, 28, 28)), [1, 10], "labels must be digits 0-9, got 1..10"),
    (np.zeros((2, 28, 28)), [-1, 3], "labels must be digits 0-9, got -1..3"),
    (np.zeros((2, 28, 28)), [1.0, 2.0], "labels must be a 1-D array of ints"),
    (np.zeros((2, 28, 28)), [1, 2, 3], "images and labels must be as many, got 2 images and 3 labels"),
])
def test_building_a_file_refuses_bad_digits(images, labels, message):
    with pytest.raises(ValueError, match=message):
        yourdigits.to_bytes(images, labels)


# ---- the file: bad files ---------------------------------------------------------------------------
def zip_bomb():
    """images.npy declaring a valid header but 50 MB of data (compresses to ~50 kB)."""
    big = npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (12, 28, 28), }", bytes(50 * 2 ** 20))
    return with_members(GOOD, images_npy=big)


def pickled_images():
    payload = np.empty(12, dtype=object)
    payload[:] = [print] * 12  # a pickled object array: never unpickled
    return with_members(GOOD, images_npy=npy(payload, allow_pickle=True))


BAD_FILES = {
    "random bytes": (bytes(range(256)) * 8, "not a pycnn digits file .it is not a zip"),
    "empty": (b"", "the digits file is empty"),
    "truncated": (GOOD[:len(GOOD) // 2], "not a valid pycnn digits file"),
    "newer version": (with_header(GOOD, version=3),
                      r"^this digits file is from a newer pycnn \(version 3\); this pycnn reads version 1$"),
    "version 0": (with_header(GOOD, version=0), "unsupported digits file version 0; this pycnn reads version 1"),
    "version as text": (with_header(GOOD, version="1"), "unsupported digits file version '1'"),
    "other format": (with_header(GOOD, format="pycnn"), "not a pycnn digits file .digits.json's format"),
    "unknown key": (with_header(GOOD, owner="me"), "digits.json has unknown keys: owner"),
    "absurd count": (with_header(GOOD, count=10 ** 9), "count must be an int from 0 to 10,000, got 1000000000"),
    "negative count": (with_header(GOOD, count=-1), "count must be an int from 0 to 10,000, got -1"),
    "count and shape disagree": (with_header(GOOD, count=11), r"images.npy: shape must be \(11, 28, 28\)"),
    "not JSON": (with_members(GOOD, digits_json=b"{nope"), "digits.json is not valid JSON"),
    "images 27 wide": (with_members(GOOD, images_npy=npy(np.zeros((12, 28, 27), np.uint8))),
                       r"images.npy: shape must be \(12, 28, 28\) .count in digits.json., got \(12, 28, 27\)"),
    "float images": (with_members(GOOD, images_npy=npy(np.zeros((12, 28, 28), np.float32))),
                     "images.npy: dtype must be uint8, got '<f4'"),
    "NaN images": (with_members(GOOD, images_npy=npy(np.full((12, 28, 28), np.nan))),
                   "images.npy: dtype must be uint8, got '<f8'"),
    "pickled objects": (pickled_images(), "images.npy: dtype must be uint8, got '|O'"),
    "label 10": (with_members(GOOD, labels_npy=npy(np.full(12, 10, np.uint8))), "labels must be digits 0-9, found 10"),
    "labels too few": (with_members(GOOD, labels_npy=npy(np.zeros(11, np.uint8))),
                       r"labels.npy: shape must be \(12,\)"),
    "fortran order": (with_members(GOOD, images_npy=npy(np.asfortranarray(np.zeros((12, 28, 28), np.uint8)))),
                      "Fortran-ordered arrays are not accepted"),
    "truncated data": (with_members(GOOD, labels_npy=npy(np.zeros(12, np.uint8))[:-3]),
                       "labels.npy: expected 12 bytes of data, found 9"),
    "padded data": (with_members(GOOD, labels_npy=npy(np.zeros(12, np.uint8)) + b"x"),
                    "labels.npy: expected 12 bytes of data, found 13"),
    "bad npy header": (with_members(GOOD, labels_npy=npy_with_header("{'descr': '|u1', 'shape': (12,), }", bytes(12))),
                       "labels.npy: unreadable .npy header"),
    "unknown member": (with_members(GOOD, **{"evil.pkl": b"x"}), "unexpected members: evil.pkl"),
    "missing labels": (with_members(GOOD, labels_npy=None), "the digits file is missing labels.npy"),
    "a model file": (pycnn.seed_model(seed=0).to_bytes(), "this is a pycnn model file, not a digits file"),
    "zip bomb": (zip_bomb(), "would unpack to 52,"),
    "too large": (b"PK" + bytes(yourdigits.MAX_FILE_BYTES),
                  "is 8,388,610 bytes; a pycnn digits file is at most 8,388,608"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_digits_file_is_refused_saying_what_is_wrong(kind):
    data, message = BAD_FILES[kind]
    refused(data, message)


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_duplicate_members_are_refused():
    files = members(GOOD)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in [*files.items(), ("labels.npy", npy(np.full(12, 9, np.uint8)))]:
            zf.writestr(name, content)
    refused(buf.getvalue(), "duplicate members")


def test_reading_refuses_non_bytes():
    with pytest.raises(ValueError, match="digits data must be bytes, got str"):
        yourdigits.from_bytes("PK...")


def test_load_names_the_file_and_refuses_a_huge_one_before_reading_it(tmp_path):
    path = tmp_path / "huge.npz"
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04")
        f.truncate(200 * 2 ** 20)  # sparse: costs no disk
    with pytest.raises(ValueError, match=f"{path}: the digits file is 209,715,200 bytes"):
        yourdigits.load(path)
    path.write_bytes(with_header(GOOD, version=2))
    with pytest.raises(ValueError, match=f"^{path}: this digits file is from a newer pycnn"):
        yourdigits.load(path)


# ---- the recipe --------------------------------------------------------------------------------------
def test_recipe_defaults_round_trip_and_bad_values_are_refused_naming_the_field():
    assert FineTuneConfig.from_dict({}).to_dict() == FineTuneConfig.defaults()
    assert set(FineTuneConfig.limits()) == set(FineTuneConfig.defaults())
    for field, value in [("steps", 0), ("lr", 0.0), ("mix", 1.5), ("rotation", -1), ("folds", 1), ("schedule", "x"),
                         ("augment_bundled", 1), ("seed", -1)]:
        with pytest.raises(ValueError, match=f"^{field} must be"):
            FineTuneConfig.from_dict({field: value})
    with pytest.raises(ValueError, match=r"unknown fine-tune setting\(s\): epochs"):
        FineTuneConfig.from_dict({"epochs": 3})


# ---- fine-tuning ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page_digits(split):
    """Bundled training digits and held-out digits (the held-out part is in class order: take every 4th)."""
    x_train, y_train, x_test, y_test = split
    return x_train[:4000], y_train[:4000], x_test[::4], y_test[::4]


@pytest.fixture(scope="module")
def base_model(page_digits):
    """A seed model trained briefly on the bundled digits (~1 s)."""
    x, y, _, _ = page_digits
    model = pycnn.seed_model(seed=0)
    Trainer(model, x, y, TrainingConfig(epochs=2, lr=0.003, schedule="cosine", augment=False)).run()
    return model


def a_hand(x, seed=0):
    """Digits in one writer's hand that the bundled digits do not have: drawn small (75%)."""
    return random_affine(x.copy(), np.random.default_rng(seed), max_shift=0.0, max_rotation=0.0, scale=(0.75, 0.75))


def copy_of(model):
    copy = pycnn.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_batches_mix_the_learners_drawings_into_taught_classes_only(base_model, page_digits):
    x_b, y_b, _, _ = page_digits
    body, head = yourdigits.split_head(base_model)
    own = np.full((6, *head.input_shape), 0.5, np.float32)  # recognisable: no digit's features are flat grey
    own_y = np.array([3, 3, 3, 7, 7, 7])
    bundled = body.forward(x_b[:2000])
    tuner = FineTuner(head, own, own_y, bundled, y_b[:2000], FineTuneConfig(steps=400, mix=0.75))
    labels, mine = [], []
    for _ in range(400):
        xb, yb = tuner._batch()
        labels.append(yb)
        mine.append(np.all(xb == 0.5, axis=(1, 2, 3)))
    labels, mine = np.concatenate(labels), np.concatenate(mine)
    share = np.bincount(labels, minlength=10) / len(labels)
    assert np.all(np.abs(share - 0.1) < 0.015)  # 12,800 slots: the classes stay balanced
    assert not mine[(labels != 3) & (labels != 7)].any()  # only taught digits get the learner's drawings
    taught = (labels == 3) | (labels == 7)
    assert abs(mine[taught].mean() - 0.75) < 0.03
    # the other slots are bundled digits of the slot's class
    xb, yb = tuner._batch()
    for features, label in zip(xb, yb):
        if not np.all(features == 0.5):
            assert np.any(np.all(bundled[y_b[:2000] == label] == features, axis=(1, 2, 3)))


def test_the_head_is_everything_from_the_flatten_on_and_the_body_is_left_alone(base_model, page_digits):
    x_b = page_digits[0][:50]
    body, head = yourdigits.split_head(base_model)
    assert [type(layer).__name__ for layer in body.layers] == ["Conv2D", "ReLU", "MaxPool2D"]
    assert [type(layer).__name__ for layer in head.layers] == ["Flatten", "Dense"]
    assert np.allclose(head.forward(body.forward(x_b)), base_model.forward(x_b), atol=1e-5)
    # copies: fine-tuning the head changes nothing of the model it came from
    head.layers[-1].params["W"] += 1
    assert not np.allclose(head.forward(body.forward(x_b)), base_model.forward(x_b), atol=1e-3)
    dense_only = pycnn.Sequential([pycnn.Flatten(), pycnn.Dense(784, 10)], seed=0, input_shape=(1, 28, 28))
    body, head = yourdigits.split_head(dense_only)
    assert body is None and len(head.layers) == 2


def test_a_network_with_batchnorm_splits_with_its_running_statistics(page_digits):
    x_b = page_digits[0][:64]
    model = pycnn.Sequential([pycnn.Conv2D(1, 4, 3), pycnn.BatchNorm(4), pycnn.ReLU(), pycnn.MaxPool2D(2),
                              pycnn.Flatten(), pycnn.BatchNorm(676), pycnn.Dense(676, 10)], seed=0,
                             input_shape=(1, 28, 28))
    model.fit(x_b, page_digits[1][:64], epochs=1, batch_size=16)  # running statistics away from 0 and 1
    body, head = yourdigits.split_head(model)
    assert [type(layer).__name__ for layer in head.layers] == ["Flatten", "BatchNorm", "Dense"]
    np.testing.assert_array_equal(body.layers[1].state["running_var"], model.layers[1].state["running_var"])
    np.testing.assert_array_equal(head.layers[1].state["running_mean"], model.layers[5].state["running_mean"])
    assert np.allclose(head.forward(body.forward(x_b)), model.forward(x_b), atol=1e-5)


def test_fine_tuning_is_deterministic_given_the_seed(base_model, page_digits):
    x_b, y_b, x_h, y_h = page_digits
    own, own_y = a_hand(x_b[:20]), y_b[:20]
    runs = [FineTuneJob(base_model, own, own_y, x_b, y_b, x_h, y_h, FineTuneConfig(steps=15, seed=seed))
            for seed in (0, 0, 1)]
    for job in runs:
        job.run()
    models = [job.model for job in runs]
    assert same_weights(models[0], models[1]) and not same_weights(models[0], models[2])
    assert runs[0].result()["digits"] == runs[1].result()["digits"]


def test_fine_tuning_learns_a_hand_from_30_drawings_and_mixing_keeps_the_others(base_model, page_digits, split):
    x_b, y_b, x_h, y_h = page_digits
    hand_x, hand_y = a_hand(split[2][1::4]), split[3][1::4]  # held-out digits never in x_b, in the new hand
    taught = np.concatenate([np.flatnonzero(hand_y == d)[:3] for d in range(10)])
    others = np.setdiff1d(np.arange(len(hand_y)), taught)
    before = base_model.evaluate(hand_x[others], hand_y[others])["accuracy"]
    heldout_before = base_model.evaluate(x_h, y_h)["accuracy"]
    after, drop = {}, {}
    for mix in (0.5, 1.0):  # half the learner's drawings, or only theirs
        model, _ = yourdigits.fine_tune(base_model, hand_x[taught], hand_y[taught], x_b, y_b, x_h, y_h,
                                        FineTuneConfig(mix=mix))
        after[mix] = model.evaluate(hand_x[others], hand_y[others])["accuracy"]
        drop[mix] = heldout_before - model.evaluate(x_h, y_h)["accuracy"]
    assert before < 0.7 and after[0.5] > before + 0.15, (before, after)
    # without the bundled digits it forgets them (~24 points): mixed in, a few at most
    assert drop[1.0] > 0.1 and drop[0.5] < min(0.05, drop[1.0] / 4), drop


def test_a_diverging_fine_tune_restores_the_weights_and_says_so(base_model, page_digits):
    x_b, y_b, _, _ = page_digits
    body, head = yourdigits.split_head(base_model)
    features = body.forward(x_b[:500])
    weights = head.get_weights()
    tuner = FineTuner(head, features[:10], y_b[:10], features, y_b[:500],
                      FineTuneConfig(steps=50, lr=1.0, schedule="constant"))
    with pytest.raises(TrainingDiverged, match="fine-tuning diverged; the model is as it was before - try a smaller "
                                               "learning rate than 1"):
        tuner.run()
    assert all(np.array_equal(a, b) for a, b in zip(weights, head.get_weights()))


def test_fine_tuning_refuses_no_digits_bad_labels_and_a_network_without_dense_layers(base_model, page_digits):
    x_b, y_b, x_h, y_h = page_digits
    body, head = yourdigits.split_head(base_model)
    features = body.forward(x_b[:100])
    with pytest.raises(ValueError, match="no digits of yours to fine-tune on"):
        FineTuner(head, features[:0], [], features, y_b[:100])
    with pytest.raises(ValueError, match="no digits of yours to fine-tune on"):
        FineTuneJob(base_model, np.zeros((0, 1, 28, 28)), [], x_b, y_b, x_h, y_h)
    with pytest.raises(ValueError, match=r"labels must be in 0..9, got 0..12"):
        FineTuneJob(base_model, x_b[:2], [0, 12], x_b, y_b, x_h, y_h)
    with pytest.raises(ValueError, match="the bundled digits have no digit 7"):
        keep = y_b != 7
        FineTuneJob(base_model, x_b[:2], y_b[:2], x_b[keep], y_b[keep], x_h, y_h)
    with pytest.raises(ValueError, match="fine-tuning needs a network that ends in Dense layers"):
        yourdigits.split_head(pycnn.Sequential([pycnn.Conv2D(1, 4, 3)], seed=0, input_shape=(1, 28, 28)))


# ---- the honest before/after ---------------------------------------------------------------------------
def test_folds_spread_each_digit_over_the_folds():
    y = np.repeat(np.arange(10), [3, 3, 3, 2, 2, 1, 1, 5, 3, 3])
    fold = yourdigits.folds_of(y, 3, seed=4)
    sizes = np.bincount(fold, minlength=3)
    assert sizes.max() - sizes.min() <= 1
    for d in range(10):
        per_fold = np.bincount(fold[y == d], minlength=3)
        assert per_fold.max() - per_fold.min() <= 1


def test_the_pools_are_copies_of_the_drawings_and_bundled_digits_read_through_the_filters(base_model, page_digits):
    x_b, y_b, x_h, y_h = page_digits
    own_x, own_y = a_hand(x_b[:30]), y_b[:30]
    plain = FineTuneConfig(steps=1, shift=0.0, rotation=0.0, zoom=0.0, augment_bundled=False, own_pool=100,
                           bundled_pool=500)
    job = FineTuneJob(base_model, own_x, own_y, x_b, y_b, x_h, y_h, plain)
    job.run(max_batches=job.prepare_steps)
    body, _ = yourdigits.split_head(base_model)
    features = job.features
    assert np.allclose(features["drawings"], body.forward(own_x), atol=1e-6)
    assert np.allclose(features["heldout"], body.forward(x_h), atol=1e-6)
    # 100 // 30 = 3 unaugmented copies of each drawing, each tied to the drawing it is a copy of
    assert np.array_equal(job.own_source, np.repeat(np.arange(30), 3))
    assert np.allclose(features["own"], features["drawings"][job.own_source], atol=1e-6)
    assert len(features["bundled"]) == len(job.bundled_y) == 500
    assert np.bincount(job.bundled_y, minlength=10).min() >= 45  # each class in turn: balanced
    small = FineTuneJob(base_model, own_x, own_y, x_b, y_b, x_h, y_h, FineTuneConfig(bundled_pool=10))
    assert sorted(small.bundled_y) == list(range(10))  # even ten bundled digits are one of each
    # augmented copies differ from the drawing, and are still read as it mostly
    job = FineTuneJob(base_model, own_x, own_y, x_b, y_b, x_h, y_h, FineTuneConfig(steps=1, own_pool=300))
    job.run(max_batches=job.prepare_steps)
    assert not np.allclose(job.features["own"], job.features["drawings"][job.own_source], atol=1e-3)


def test_cross_validation_scores_each_fold_with_a_fine_tune_that_never_saw_it(base_model, page_digits, split):
    x_b, y_b, x_h, y_h = page_digits
    hand_x, hand_y = a_hand(split[2][2::4][:30]), split[3][2::4][:30]
    job = FineTuneJob(base_model, hand_x, hand_y, x_b, y_b, x_h, y_h, FAST)
    job.run()
    result = job.result()
    # the same by hand: three fine-tunes of the starting head on the copies of the drawings outside
    # a fold, each scoring the fold
    fold, features, source = yourdigits.folds_of(hand_y, 3, FAST.seed), job.features, job.own_source
    _, head = yourdigits.split_head(base_model)
    correct = 0
    for k in range(3):
        tuned = yourdigits._copy(head)
        use = fold[source] != k
        FineTuner(tuned, features["own"][use], hand_y[source[use]], features["bundled"], job.bundled_y,
                  FineTuneConfig(steps=20, seed=FAST.seed + 1 + k)).run()
        correct += np.count_nonzero(tuned.predict(features["drawings"][fold == k]) == hand_y[fold == k])
    assert result["digits"] == {"method": "3-fold cross-validation", "n": 30, "scored": 30, "untaught": 0,
                                "before": base_model.evaluate(hand_x, hand_y)["accuracy"], "after": correct / 30}
    # the model the learner keeps: the starting body and a head fine-tuned on all the copies
    tuned = yourdigits._copy(head)
    FineTuner(tuned, features["own"], hand_y[source], features["bundled"], job.bundled_y, FAST).run()
    body_weights = len(base_model.get_weights()) - len(tuned.get_weights())
    kept = job.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(kept[:body_weights], base_model.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(kept[body_weights:], tuned.get_weights()))
    assert not same_weights(job.model, base_model)
    assert result["mnist"]["before"] == base_model.evaluate(x_h, y_h)["accuracy"]
    # read through the features, one chunk at a time as evaluate reads: the same answers
    assert abs(result["mnist"]["after"] - job.model.evaluate(x_h, y_h)["accuracy"]) <= 1 / len(y_h)
    assert result["mnist"]["n"] == len(y_h)
    assert result["steps"] == job.prepare_steps + 80 and result["seconds"] > 0


def test_the_job_runs_a_step_per_call_through_its_phases(base_model, page_digits):
    x_b, y_b, x_h, y_h = page_digits
    config = FineTuneConfig(steps=3, folds=2, own_pool=30, bundled_pool=256)
    job = FineTuneJob(base_model, x_b[:30], y_b[:30], x_b, y_b, x_h[:256], y_h[:256], config)
    assert job.prepare_steps == 4  # 30 drawings, 256 held-out, 30 copies, 256 bundled: up to 256 of one a step
    phases = []
    while not job.done:
        report = job.run(max_batches=1)
        phases.append((report["step"], report["phase"], report["epoch"], report["batch"], report["batches_per_epoch"]))
        assert len(report["losses"]) == (0 if report["step"] <= 4 else 1) and report["total_steps"] == 13
    assert phases == [(1, "preparing", 0, 1, 4), (2, "preparing", 0, 2, 4), (3, "preparing", 0, 3, 4),
                      (4, "measuring", 1, 0, 3),
                      (5, "measuring", 1, 1, 3), (6, "measuring", 1, 2, 3), (7, "measuring", 1, 3, 3),
                      (8, "measuring", 2, 1, 3), (9, "measuring", 2, 2, 3), (10, "measuring", 2, 3, 3),
                      (11, "fine-tuning", 3, 1, 3), (12, "fine-tuning", 3, 2, 3), (13, "done", 3, 3, 3)]
    assert job.run(max_batches=1)["losses"] == []


def test_a_callback_returning_false_stops_the_job_after_that_batch(base_model, page_digits):
    x_b, y_b, x_h, y_h = page_digits
    job = FineTuneJob(base_model, x_b[:30], y_b[:30], x_b, y_b, x_h, y_h, FAST)
    report = job.run(callback=lambda progress: progress["step"] < 5)
    assert report["step"] == job.prepare_steps + 5 and not job.done
    with pytest.raises(ValueError, match="has not finished"):
        job.result()


@pytest.mark.parametrize("n, method, runs, scored, untaught", [
    (1, "not measured: one drawing is not enough", 1, 0, 0),
    (2, "2-fold cross-validation", 3, 2, 2),
    (10, "3-fold cross-validation", 4, 10, 10),  # one per digit: every scored drawing is of a digit not taught
    (1000, "held back 1/3 of the digits", 2, 334, 0),
])
def test_small_and_large_galleries(n, method, runs, scored, untaught, base_model, page_digits, split):
    x_b, y_b, x_h, y_h = page_digits
    x, y = (split[2][:n], split[3][:n]) if n == 1000 else (x_b[:n], np.arange(n) % 10)
    job = FineTuneJob(base_model, x, y, x_b, y_b, x_h, y_h, FineTuneConfig(steps=2))
    job.run()
    digits_result = job.result()["digits"]
    assert digits_result["method"].startswith(method) and len(job.runs) == runs
    assert (digits_result["scored"], digits_result["untaught"]) == (scored, untaught)
    assert (digits_result["after"] is None) == (scored == 0)


def test_a_diverging_job_leaves_the_model_as_it_was(base_model, page_digits):
    x_b, y_b, x_h, y_h = page_digits
    weights = base_model.get_weights()
    job = FineTuneJob(base_model, x_b[:30], y_b[:30], x_b, y_b, x_h, y_h,
                      FineTuneConfig(steps=50, lr=1.0, schedule="constant"))
    with pytest.raises(TrainingDiverged, match="fine-tuning diverged"):
        job.run()
    assert all(np.array_equal(a, b) for a, b in zip(weights, base_model.get_weights()))


# ---- joining a full training run --------------------------------------------------------------------------
def test_join_appends_the_extra_digits_repeated(page_digits):
    x_b, y_b, _, _ = page_digits
    extra_x, extra_y = digits(30)
    x, y = yourdigits.join(x_b, y_b, extra_x[:, 0], extra_y, repeat=3)
    assert x.shape == (len(x_b) + 90, 1, 28, 28) and x.dtype == x_b.dtype
    assert np.array_equal(x[:len(x_b)], x_b) and np.array_equal(x[-30:], extra_x)
    assert np.array_equal(y[len(x_b):], np.tile(extra_y, 3))
    model = pycnn.seed_model(seed=0)
    Trainer(model, x, y, TrainingConfig(epochs=1, train_size=None)).run(max_batches=2)
    with pytest.raises(ValueError, match="repeat must be an int from 1 to 10000, got 0"):
        yourdigits.join(x_b, y_b, extra_x, extra_y, repeat=0)
    with pytest.raises(ValueError, match=r"the extra digits must have shape \(N, 1, 28, 28\), got \(2, 1, 8, 8\)"):
        yourdigits.join(x_b, y_b, np.zeros((2, 1, 8, 8)), [1, 2])


def test_auto_repeat_makes_the_extra_digits_about_the_share_asked():
    repeat = yourdigits.auto_repeat(8500, 30, share=0.05)
    assert abs(30 * repeat / (8500 + 30 * repeat) - 0.05) < 0.002
    assert yourdigits.auto_repeat(8500, 5000, share=0.05) == 1
