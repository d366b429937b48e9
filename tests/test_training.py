"""pycnn.training: config validation, the chunked Trainer (steps, progress, epoch results),
divergence detection and weight restore, learning-rate schedules, and augmentation."""
import math

import numpy as np
import pytest

import pycnn
from pycnn import SGD, Adam, Trainer, TrainingConfig, TrainingDiverged, seed_model
from pycnn.augment import random_affine, random_elastic
from pycnn.training import learning_rate

PROGRESS_KEYS = {"step", "total_steps", "epoch", "epochs", "batch", "batches_per_epoch", "losses", "accuracy",
                 "images", "epoch_results", "lr", "done", "stopped"}


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def train_data(split):
    """2,000 mixed training digits and 500 held-out digits (every 4th: the held-out part is in class order)."""
    x_train, y_train, x_test, y_test = split
    return x_train[:2000], y_train[:2000], x_test[::4], y_test[::4]


# ---- TrainingConfig --------------------------------------------------------------------------
def test_config_defaults_are_the_pages_recipe_and_round_trip():
    config = TrainingConfig.from_dict({})
    assert config.to_dict() == TrainingConfig.defaults()
    assert config.optimizer == "adam" and config.schedule in ("onecycle", "cosine", "constant")
    custom = TrainingConfig.from_dict({"epochs": 3, "batch_size": 64, "lr": 0.01, "optimizer": "sgd",
                                       "schedule": "cosine", "augment": False, "train_size": 500, "seed": 9})
    assert TrainingConfig.from_dict(custom.to_dict()) == custom
    assert TrainingConfig.from_dict({"lr": 1}).lr == 1.0 and isinstance(TrainingConfig.from_dict({"lr": 1}).lr, float)


BAD_SETTINGS = [
    # field, value (each kind a learner can type: empty, negative, zero, NaN, huge, non-numeric)
    ("epochs", ""), ("epochs", -1), ("epochs", 0), ("epochs", math.nan), ("epochs", 10 ** 6), ("epochs", "3"),
    ("epochs", 2.5), ("epochs", None), ("epochs", True),
    ("batch_size", ""), ("batch_size", -32), ("batch_size", 0), ("batch_size", math.nan), ("batch_size", 10 ** 9),
    ("batch_size", "32"), ("batch_size", [32]),
    ("lr", ""), ("lr", -0.001), ("lr", 0), ("lr", 0.0), ("lr", math.nan), ("lr", math.inf), ("lr", 1e6),
    ("lr", "0.01"), ("lr", None), ("lr", 1e-12),
    ("train_size", ""), ("train_size", -5), ("train_size", 0), ("train_size", math.nan), ("train_size", 10 ** 12),
    ("train_size", "all"),
    ("seed", -1), ("seed", ""), ("seed", math.nan), ("seed", 2 ** 40), ("seed", "0"),
    ("optimizer", ""), ("optimizer", "rmsprop"), ("optimizer", None), ("optimizer", 1),
    ("schedule", ""), ("schedule", "step"), ("schedule", None),
    ("augment", "yes"), ("augment", 1), ("augment", ""), ("shuffle", "no"), ("shuffle", None),
]


@pytest.mark.parametrize("field, value", BAD_SETTINGS, ids=[f"{f}={v!r}" for f, v in BAD_SETTINGS])
def test_config_refuses_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be") as info:
        TrainingConfig.from_dict({field: value})
    assert repr(value) in str(info.value) or field in ("optimizer", "schedule")


@pytest.mark.parametrize("field", ["epochs", "lr", "batch_size"])
def test_config_refuses_astronomically_large_integers_with_value_error(field):
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        TrainingConfig.from_dict({field: 10 ** 400})


def test_config_refuses_unknown_keys_and_non_dicts():
    with pytest.raises(ValueError, match="unknown training setting\\(s\\): learning_rate, momentum"):
        TrainingConfig.from_dict({"learning_rate": 0.1, "momentum": 0.9})
    with pytest.raises(ValueError, match="training config must be a dict, got list"):
        TrainingConfig.from_dict([("epochs", 1)])


def test_trainer_refuses_batch_larger_than_the_training_set(train_data):
    x, y, _, _ = train_data
    with pytest.raises(ValueError, match=r"batch_size \(64\) is larger than the training set \(50\)"):
        Trainer(seed_model(seed=0), x[:50], y[:50], TrainingConfig(batch_size=64))
    with pytest.raises(ValueError, match=r"batch_size \(64\) is larger than the training set \(40\)"):
        Trainer(seed_model(seed=0), x, y, TrainingConfig(batch_size=64, train_size=40))
    with pytest.raises(ValueError, match="train_size must be at most the 2000 training samples, got 5000"):
        Trainer(seed_model(seed=0), x, y, TrainingConfig(train_size=5000))


def test_trainer_refuses_bad_data(train_data):
    x, y, _, _ = train_data
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
        Trainer(seed_model(seed=0), x[:40], np.full(40, 10), TrainingConfig(batch_size=8))
    with pytest.raises(ValueError, match="x must have shape"):
        Trainer(seed_model(seed=0), x[:40, :, :20], y[:40], TrainingConfig(batch_size=8))


def test_limits_publish_every_fields_bounds_and_are_what_the_config_enforces():
    limits = TrainingConfig.limits()
    assert list(limits) == list(TrainingConfig.defaults())
    assert limits["epochs"] == {"type": "int", "min": 1, "max": 1000}
    assert limits["lr"] == {"type": "float", "min": 1e-07, "max": 10.0}
    assert limits["optimizer"] == {"type": "choice", "choices": ["adam", "sgd"]}
    assert limits["augment"] == {"type": "bool"}
    assert limits["train_size"] == {"type": "int", "min": 1, "max": 10 ** 7, "optional": True}
    for field, spec in limits.items():
        if spec["type"] in ("int", "float"):
            TrainingConfig(**{field: spec["min"]})
            TrainingConfig(**{field: spec["max"]})
            step = 1 if spec["type"] == "int" else spec["min"] / 2
            for bad in (spec["min"] - step, spec["max"] + step):
                with pytest.raises(ValueError, match=f"^{field} must be"):
                    TrainingConfig(**{field: bad})
        elif spec["type"] == "choice":
            for choice in spec["choices"]:
                TrainingConfig(**{field: choice})
            with pytest.raises(ValueError, match=f"^{field} must be one of {', '.join(spec['choices'])}"):
                TrainingConfig(**{field: "other"})
        else:
            assert spec["type"] == "bool"
            with pytest.raises(ValueError, match=f"^{field} must be true or false, got 1"):
                TrainingConfig(**{field: 1})
        if spec.get("optional"):
            assert getattr(TrainingConfig(**{field: None}), field) is None


# ---- Trainer in chunks -----------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 5, 17, 20, 21])
def test_run_max_batches_advances_exactly_k_steps_and_reports_progress(train_data, k):
    x, y, _, _ = train_data
    trainer = Trainer(seed_model(seed=0), x[:640], y[:640], TrainingConfig(epochs=2, batch_size=32, augment=False))
    before = seed_model(seed=0).get_weights()
    report = trainer.run(max_batches=k)
    assert trainer.step == k and report["step"] == k
    assert len(report["losses"]) == k and len(trainer.history["batch_loss"]) == k
    assert set(report) == PROGRESS_KEYS
    assert report["total_steps"] == 40 and report["batches_per_epoch"] == 20 and report["epochs"] == 2
    # the epoch and batch of the latest batch: the 20th is "epoch 1, batch 20 of 20"
    assert report["epoch"] == 1 + (k - 1) // 20 and report["batch"] == (k % 20 or 20)
    assert report["stopped"] is False and report["done"] is False
    if k % 20:
        assert 0 <= report["accuracy"] <= 1  # running training accuracy of the epoch under way
    else:
        assert report["accuracy"] is None  # the next epoch has seen no batch yet
    assert report["images"] == k * trainer.config.batch_size
    assert not same_weights(before, trainer.model.get_weights())
    trainer.run(max_batches=3)
    assert trainer.step == k + 3


def test_run_stops_at_the_end_and_reports_done(train_data):
    x, y, _, _ = train_data
    trainer = Trainer(seed_model(seed=0), x[:100], y[:100], TrainingConfig(epochs=2, batch_size=32, augment=False))
    report = trainer.run(max_batches=1000)
    assert trainer.step == 8 and report["done"] is True and trainer.done
    assert trainer.run(max_batches=5)["step"] == 8  # nothing left to do


def test_epoch_results_appear_at_epoch_ends_with_validation_accuracy(train_data):
    x, y, xv, yv = train_data
    trainer = Trainer(seed_model(seed=0), x[:320], y[:320], TrainingConfig(epochs=2, batch_size=32, augment=False),
                      validation_data=(xv, yv))
    assert trainer.run(max_batches=9)["epoch_results"] == []
    report = trainer.run(max_batches=1)
    (result,) = report["epoch_results"]
    assert result["epoch"] == 1
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(result)
    assert result["val_accuracy"] == pytest.approx(trainer.model.evaluate(xv, yv)["accuracy"])
    assert trainer.history["epochs"] == [result]
    seen = []
    trainer.run(callback=seen.append)
    assert [len(p["epoch_results"]) for p in seen] == [0] * 9 + [1]
    assert seen[-1]["epoch_results"][0]["epoch"] == 2 and seen[-1]["done"]


def test_callback_returning_false_stops_and_training_can_resume(train_data):
    x, y, _, _ = train_data
    trainer = Trainer(seed_model(seed=0), x[:320], y[:320], TrainingConfig(epochs=1, batch_size=32, augment=False))
    report = trainer.run(callback=lambda progress: progress["step"] < 4)
    assert report["stopped"] is True and trainer.step == 4
    assert trainer.run()["step"] == 10


def test_trainer_is_deterministic_given_the_seed_even_with_augmentation(train_data):
    x, y, _, _ = train_data
    weights = []
    for _ in range(2):
        trainer = Trainer(seed_model(seed=1), x[:256], y[:256], TrainingConfig(epochs=1, batch_size=32, seed=4))
        trainer.run()
        weights.append(trainer.model.get_weights())
    assert same_weights(*weights)


def test_augmented_training_never_modifies_the_callers_images(train_data):
    x, y, _, _ = train_data
    x = x[:256].copy()
    original = x.copy()
    Trainer(seed_model(seed=0), x, y[:256], TrainingConfig(epochs=2, batch_size=32, augment=True)).run()
    np.testing.assert_array_equal(x, original)


def test_train_size_trains_on_a_fixed_subset(train_data):
    x, y, _, _ = train_data
    trainer = Trainer(seed_model(seed=0), x, y, TrainingConfig(epochs=1, batch_size=50, train_size=300))
    assert trainer.batches_per_epoch == 6 and len(trainer.x) == 300
    assert trainer.run()["step"] == 6


def test_trainer_learns(train_data):
    x, y, xv, yv = train_data
    model = seed_model(seed=0)
    Trainer(model, x, y, TrainingConfig(epochs=2, batch_size=32, lr=5e-3), validation_data=(xv, yv)).run()
    assert model.evaluate(xv, yv)["accuracy"] > 0.85


# ---- divergence ------------------------------------------------------------------------------
def test_diverging_run_raises_and_restores_the_initial_weights(train_data):
    x, y, xv, yv = train_data
    model = seed_model(seed=0)
    initial = model.get_weights()
    trainer = Trainer(model, x[:640], y[:640],
                      TrainingConfig(epochs=3, batch_size=32, lr=10.0, schedule="constant", augment=False))
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 1 .*smaller learning rate than 10"):
        trainer.run()
    assert same_weights(model.get_weights(), initial)
    assert trainer.step == 0
    assert np.isfinite(model.predict_proba(xv)).all()  # the model is still there and usable
    assert isinstance(TrainingDiverged("x"), ValueError)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_non_finite_loss_is_detected_and_the_initial_weights_restored(train_data):
    x, y, _, _ = train_data
    model = seed_model(seed=0)
    initial = model.get_weights()
    trainer = Trainer(model, x[:320], y[:320], TrainingConfig(epochs=1, batch_size=32, augment=False),
                      optimizer=SGD(lr=1e30))
    with pytest.raises(TrainingDiverged, match=r"loss (nan|inf)"):
        trainer.run()
    assert same_weights(model.get_weights(), initial)


def test_divergence_in_a_later_epoch_restores_the_last_good_epoch(train_data):
    x, y, xv, yv = train_data
    model = seed_model(seed=0)
    trainer = Trainer(model, x[:640], y[:640],
                      TrainingConfig(epochs=3, batch_size=32, lr=1e-3, schedule="constant", augment=False),
                      validation_data=(xv, yv))
    trainer.run(max_batches=20)  # exactly one good epoch
    after_epoch_1 = model.get_weights()
    good_accuracy = model.evaluate(xv, yv)["accuracy"]
    trainer.run(max_batches=5)
    trainer.base_lr = 10.0  # the learning rate now blows the run up
    with pytest.raises(TrainingDiverged, match="training diverged at epoch 2"):
        trainer.run()
    assert same_weights(model.get_weights(), after_epoch_1)
    assert trainer.step == 20
    assert model.evaluate(xv, yv)["accuracy"] == good_accuracy
    trainer.base_lr = 1e-3  # the user lowers the rate and carries on
    assert trainer.run()["done"]


def test_divergence_caused_by_an_epochs_last_update_restores_weights_from_before_it(train_data):
    x, y, xv, yv = train_data
    model = seed_model(seed=0)
    initial = model.get_weights()
    trainer = Trainer(model, x[:64], y[:64],
                      TrainingConfig(epochs=5, batch_size=64, lr=10.0, schedule="constant", augment=False))
    with pytest.raises(TrainingDiverged):
        trainer.run()
    assert model.evaluate(xv, yv)["loss"] < 10, "restored weights are not a good state"
    assert same_weights(model.get_weights(), initial)


@pytest.mark.parametrize("settings", [
    {"lr": 10.0},                                                   # the page's recipe (Adam, one-cycle, augment)
    {"lr": 10.0, "optimizer": "sgd", "schedule": "constant"},
    {"lr": 10.0, "optimizer": "sgd"},                                # SGD + momentum, one-cycle
    {"lr": 1.0, "optimizer": "adam", "schedule": "constant", "augment": False},
], ids=["adam-onecycle", "sgd-constant", "sgd-onecycle", "adam-lr1-constant"])
def test_huge_learning_rates_on_real_data_are_detected_as_diverging(train_data, settings):
    x, y, xv, yv = train_data
    model = seed_model(seed=0)
    trainer = Trainer(model, x, y, TrainingConfig(epochs=1, **settings))
    try:
        trainer.run()
    except TrainingDiverged:
        return
    pytest.fail(f"lr={settings['lr']:g} finished without TrainingDiverged: max batch loss {max(trainer.history['batch_loss']):.0f}, "
                f"held-out accuracy {model.evaluate(xv, yv)['accuracy']:.1%}")


def test_one_mislabelled_digit_at_batch_size_1_is_not_mistaken_for_divergence(trained_seed_model, train_data):
    x, y, _, _ = train_data
    model = seed_model(seed=0)
    model.set_weights(trained_seed_model[0].get_weights())  # a trained model (91.8% held-out)
    x, y = x[:16], y[:16].copy()
    proba = model.predict_proba(x)
    i = int(np.argmax(proba.max(axis=1)))          # the digit the model is surest about...
    y[i] = int(np.argmin(proba[i]))                # ...labelled as the class it finds least likely
    assert -math.log(proba[i, y[i]]) > 9.3          # one sample's loss is above the threshold on its own
    trainer = Trainer(model, x, y, TrainingConfig(epochs=1, batch_size=1, lr=1e-7, schedule="constant",
                                                  augment=False, shuffle=False))
    trainer.run()  # a learning rate of 1e-7 cannot make anything diverge
    assert trainer.done


# ---- learning-rate schedules -----------------------------------------------------------------
def test_onecycle_warms_up_then_decays_to_near_zero():
    total, peak = 400, 5e-3
    rates = np.array([learning_rate("onecycle", peak, step, total) for step in range(total)])
    top = int(np.argmax(rates))
    assert rates[0] == pytest.approx(peak / 25)
    assert 0.2 * total <= top <= 0.3 * total and rates[top] == pytest.approx(peak, rel=1e-2)
    assert np.all(np.diff(rates[:top + 1]) > 0)
    assert np.all(np.diff(rates[top:]) <= 0)
    assert rates[-1] < 1e-3 * peak and rates.min() > 0


def test_cosine_starts_at_the_peak_and_ends_near_zero():
    total, peak = 300, 0.1
    rates = np.array([learning_rate("cosine", peak, step, total) for step in range(total + 1)])
    assert rates[0] == pytest.approx(peak)
    assert rates[total // 2] == pytest.approx(peak / 2)
    assert np.all(np.diff(rates) <= 0)
    assert rates[-2] < 1e-3 * peak and rates[-1] == pytest.approx(0, abs=1e-15)


def test_constant_schedule_is_constant():
    assert {learning_rate("constant", 0.02, step, 50) for step in range(60)} == {0.02}


def test_trainer_applies_the_schedule_step_by_step(train_data):
    x, y, _, _ = train_data
    trainer = Trainer(seed_model(seed=0), x[:320], y[:320],
                      TrainingConfig(epochs=2, batch_size=32, lr=0.01, schedule="cosine", augment=False))
    rates = []
    trainer.run(callback=lambda progress: rates.append(progress["lr"]))
    expected = [learning_rate("cosine", 0.01, step, 20) for step in range(20)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)


# ---- augmentation ----------------------------------------------------------------------------
def test_augmentation_with_no_movement_is_the_identity(train_data):
    x = train_data[0][:8]
    out = random_affine(x, np.random.default_rng(0), max_shift=0, max_rotation=0, scale=(1, 1))
    np.testing.assert_allclose(out, x, atol=1e-6)


def test_augmentation_moves_digits_a_little_and_is_seeded(train_data):
    x = train_data[0][:64]
    a = random_affine(x, np.random.default_rng(3))
    b = random_affine(x, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert not np.allclose(a, x)
    assert 0 <= a.min() and a.max() <= 1 + 1e-6
    # small maps keep most of the ink and keep it near where it was
    ink_ratio = a.sum(axis=(1, 2, 3)) / x.sum(axis=(1, 2, 3))
    assert np.all((ink_ratio > 0.7) & (ink_ratio < 1.35))
    rows = np.arange(28)
    com = lambda img: (img.sum(axis=(0, 2)) @ rows / img.sum(), img.sum(axis=(0, 1)) @ rows / img.sum())  # noqa: E731
    for before, after in zip(x, a):
        assert max(abs(p - q) for p, q in zip(com(before), com(after))) < 4


def test_augmentation_shift_moves_by_the_drawn_amount():
    # rotation 0 and scale 1: a single bright pixel moves by the (rounded) random shift
    image = np.zeros((1, 1, 28, 28), np.float32)
    image[0, 0, 14, 14] = 1.0
    rng = np.random.default_rng(11)
    out = random_affine(image, rng, max_shift=3.0, max_rotation=0, scale=(1, 1))
    assert out.sum() == pytest.approx(1.0, abs=1e-5)  # bilinear spreads the pixel but keeps its mass
    rows, cols = np.indices((28, 28))
    cy, cx = (rows * out[0, 0]).sum(), (cols * out[0, 0]).sum()
    assert 0 < math.hypot(cy - 14, cx - 14) <= 3 * math.sqrt(2) + 1e-6


def _two_dots_through_augmentation(seed, a, b, **kwargs):
    """Positions (centres of mass) of two single-pixel dots after one shared random map."""
    x = np.zeros((1, 2, 28, 28), np.float32)
    x[0, 0][a] = x[0, 1][b] = 1.0  # two channels of one image get the same map
    out = random_affine(x, np.random.default_rng(seed), max_shift=0, **kwargs)[0]
    rows, cols = np.indices((28, 28))
    return [np.array([(rows * c).sum() / c.sum(), (cols * c).sum() / c.sum()]) for c in out]


DOT_PAIRS = [((4, 6), (22, 21)), ((5, 20), (21, 7)), ((13, 3), (14, 24))]


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_rotation_is_rigid_and_within_max_rotation(seed):
    for a, b in DOT_PAIRS:
        p, q = _two_dots_through_augmentation(seed, a, b, max_rotation=10, scale=(1, 1))
        before, after = np.subtract(b, a), q - p
        assert np.linalg.norm(after) == pytest.approx(np.linalg.norm(before), rel=0.01)  # no shear, no stretch
        cos = before @ after / (np.linalg.norm(before) * np.linalg.norm(after))
        assert math.degrees(math.acos(min(cos, 1.0))) <= 10.5


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_zoom_stays_in_the_scale_range(seed):
    for a, b in DOT_PAIRS:
        p, q = _two_dots_through_augmentation(seed, a, b, max_rotation=0, scale=(0.9, 1.1))
        ratio = np.linalg.norm(q - p) / np.linalg.norm(np.subtract(b, a))
        assert 0.89 <= ratio <= 1.11



@pytest.mark.parametrize("seed", range(6))
def test_augmentation_shear_slants_a_vertical_pair_by_at_most_the_shear(seed):
    p, q = _two_dots_through_augmentation(seed, (6, 14), (22, 14), max_rotation=0, scale=(1, 1), shear=0.4)
    rows, cols = q - p
    assert rows == pytest.approx(16, abs=0.05)  # a horizontal shear keeps rows
    assert abs(cols) / rows <= 0.4 + 1e-3


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_stretch_widens_what_it_flattens(seed):
    (p, q), (r, s) = (_two_dots_through_augmentation(seed, a, b, max_rotation=0, scale=(1, 1), stretch=0.3)
                      for a, b in (((14, 6), (14, 22)), ((6, 14), (22, 14))))
    wide, tall = np.linalg.norm(q - p) / 16, np.linalg.norm(s - r) / 16
    assert math.exp(-0.3) - 0.01 <= wide <= math.exp(0.3) + 0.01
    assert wide * tall == pytest.approx(1.0, abs=0.02)  # the area stays: width * e^s, height / e^s


def test_elastic_bend_moves_ink_at_most_the_amount_is_seeded_and_without_amount_is_the_identity(train_data):
    x = train_data[0][:32]
    np.testing.assert_array_equal(random_elastic(x, np.random.default_rng(0), amount=0.0), x)
    a = random_elastic(x, np.random.default_rng(5), amount=1.5)
    np.testing.assert_array_equal(a, random_elastic(x, np.random.default_rng(5), amount=1.5))
    assert a.shape == x.shape and a.dtype == x.dtype and not np.allclose(a, x)
    dot = np.zeros((200, 1, 28, 28), np.float32)
    dot[:, 0, 14, 9] = 1.0
    moved = random_elastic(dot, np.random.default_rng(1), amount=1.5)
    rows, cols = np.indices((28, 28))
    mass = moved[:, 0].sum(axis=(1, 2))
    centre = [(moved[:, 0] * at).sum(axis=(1, 2)) / mass for at in (rows, cols)]
    shift = np.hypot(centre[0] - 14, centre[1] - 9)
    assert shift.max() <= 1.5 * math.sqrt(2) + 0.1 and shift.mean() > 0.2

def test_pycnn_exposes_the_training_api():
    assert pycnn.Trainer is Trainer and pycnn.TrainingConfig is TrainingConfig
    assert issubclass(pycnn.TrainingDiverged, ValueError)
    assert isinstance(Adam(), pycnn.Optimizer)
