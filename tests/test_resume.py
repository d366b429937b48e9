"""Stopping a run and continuing it (Trainer.run_state / Trainer.resume, the run state in the model
file): the resumed run ends with the same weights, bit for bit, and the same history as the run
never stopped; a damaged or inconsistent run state is refused, naming what is wrong."""
import json

import numpy as np
import pytest

import pycnn
from pycnn import Trainer, TrainingConfig, TrainingDiverged, seed_model
from pycnn.serialize import load_run, run_from_bytes

from model_files import members, npy, rezip, with_config, with_member

EPOCHS, BATCHES = 2, 10  # 300 digits in batches of 32: 9 of 32 and one of 12


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def data(split):
    x_train, y_train, x_test, y_test = split
    return x_train[:300], y_train[:300], x_test[::20], y_test[::20]


def config(**changes):
    return TrainingConfig(**{"epochs": EPOCHS, "batch_size": 32, "lr": 0.01, "augment": True, **changes})


def finished(data, cfg, validation=True):
    x, y, xv, yv = data
    trainer = Trainer(seed_model(seed=0), x, y, cfg, validation_data=(xv, yv) if validation else None)
    trainer.run()
    return trainer


def stopped(data, cfg, k, validation=True):
    x, y, xv, yv = data
    trainer = Trainer(seed_model(seed=0), x, y, cfg, validation_data=(xv, yv) if validation else None)
    trainer.run(max_batches=k)
    return trainer


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize("k", [0, 1, 7, BATCHES, BATCHES + 3, EPOCHS * BATCHES - 1, EPOCHS * BATCHES])
def test_a_run_stopped_after_k_steps_and_resumed_from_its_file_ends_as_the_run_never_stopped(data, optimizer,
                                                                                                shards, k):
    cfg = config(optimizer=optimizer, shards=shards)
    never_stopped = finished(data, cfg)
    first = stopped(data, cfg, k)
    model, state = run_from_bytes(first.model.to_bytes(run_state=first.run_state()))
    x, y, xv, yv = data
    resumed = Trainer.resume(model, x, y, state, validation_data=(xv, yv))
    assert resumed.step == k and resumed.total_steps == EPOCHS * BATCHES
    resumed.run()
    assert resumed.done
    assert same_weights(model.get_weights(), never_stopped.model.get_weights())
    assert resumed.history == never_stopped.history


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_run_stopped_many_times_in_memory_ends_as_the_run_never_stopped(data, optimizer):
    cfg = config(optimizer=optimizer, train_size=250)
    never_stopped = finished(data, cfg, validation=False)
    x, y, _, _ = data
    trainer = stopped(data, cfg, 3, validation=False)
    for chunk in (1, 5, 4, 100):
        state = trainer.run_state()
        model = pycnn.from_bytes(trainer.model.to_bytes())
        trainer = Trainer.resume(model, x, y, state)
        trainer.run(max_batches=chunk)
    assert trainer.done
    assert same_weights(trainer.model.get_weights(), never_stopped.model.get_weights())
    assert trainer.history == never_stopped.history


def test_the_divergence_check_restores_the_same_weights_after_a_resume(data):
    # inside epoch 2 the last good state is the end of epoch 1, not the current weights: the run state keeps it
    cfg = config()
    x, y, _, _ = data
    first = stopped(data, cfg, BATCHES + 3, validation=False)
    resumed = Trainer.resume(pycnn.from_bytes(first.model.to_bytes()), x, y, first.run_state())
    for trainer in (first, resumed):
        weights = trainer.model.get_weights()
        weights[-2] = weights[-2] * 1e4  # the Dense layer's W: the next loss explodes
        trainer.model.set_weights(weights)
        with pytest.raises(TrainingDiverged):
            trainer.run(max_batches=1)
    assert first.step == resumed.step == BATCHES
    assert same_weights(first.model.get_weights(), resumed.model.get_weights())
    assert first.history == resumed.history


def test_a_file_without_a_run_state_is_version_1_and_loads_as_before(data, tmp_path):
    trainer = stopped(data, config(), 4)
    plain = trainer.model.to_bytes()
    assert json.loads(members(plain)["config.json"])["version"] == 1
    assert not any(name.startswith("run.") for name in members(plain))
    trainer.model.save(tmp_path / "plain.npz")
    model, state = load_run(tmp_path / "plain.npz")
    assert state is None and same_weights(model.get_weights(), trainer.model.get_weights())


def test_a_file_with_a_run_state_is_version_2_small_and_loads_as_a_model_too(data, tmp_path):
    trainer = stopped(data, config(), 4)
    trainer.model.save(tmp_path / "run.npz", run_state=trainer.run_state())
    files = members((tmp_path / "run.npz").read_bytes())
    assert json.loads(files["config.json"])["version"] == 2
    assert {"run.order.npy", "run.history.batch_loss.npy", "run.optimizer.0.W.0.npy", "run.good.weights.0.npy"} \
        <= set(files)
    model = pycnn.load(tmp_path / "run.npz")
    assert same_weights(model.get_weights(), trainer.model.get_weights())
    x = data[2][:50]
    assert np.array_equal(model.predict_proba(x), trainer.model.predict_proba(x))


def test_resume_refuses_other_data_and_other_weights_naming_them(data):
    x, y, xv, yv = data
    trainer = stopped(data, config(), 4)
    state = trainer.run_state()
    with pytest.raises(ValueError, match=r"the training data is not the run's: the run had 300 samples"):
        Trainer.resume(pycnn.from_bytes(trainer.model.to_bytes()), x[1:], y[1:], state, validation_data=(xv, yv))
    changed = x.copy()
    changed[5, 0, 3, 3] += 0.5
    with pytest.raises(ValueError, match=r"the training data is not the run's"):
        Trainer.resume(pycnn.from_bytes(trainer.model.to_bytes()), changed, y, state, validation_data=(xv, yv))
    with pytest.raises(ValueError, match=r"the validation data is not the run's: .* got no validation data"):
        Trainer.resume(pycnn.from_bytes(trainer.model.to_bytes()), x, y, state)
    with pytest.raises(ValueError, match=r"the model's weights are not those of the run state"):
        Trainer.resume(seed_model(seed=1), x, y, state, validation_data=(xv, yv))


def test_run_state_refuses_a_step_begun_and_not_finished(data):
    x, y, _, _ = data
    trainer = Trainer(seed_model(seed=0), x, y, config(shards=2))
    trainer.begin_step()
    with pytest.raises(ValueError, match=r"run_state: step 0 is begun and not finished"):
        trainer.run_state()


@pytest.fixture(scope="module")
def run_file(data):
    trainer = stopped(data, config(), BATCHES + 3)
    return trainer.model.to_bytes(run_state=trainer.run_state())


def _state(change):
    def edit(config):
        change(config["run_state"])
    return edit


DAMAGED_STATES = {
    "step beyond the run": (_state(lambda s: s.update(step=10 ** 6)), r"run state step must be an int from 0 to 20"),
    "step before its good state": (_state(lambda s: s.update(step=5)),
                                   r"run state good step must be an int from 0 to 5, got 10"),
    "history of another step": (_state(lambda s: s.update(step=5, good="current")),
                                r"run state history must hold the 0 finished epochs of step 5, got 1"),
    "unknown key": (_state(lambda s: s.update(extra=1)), r"run state keys are wrong: unknown extra"),
    "missing key": (_state(lambda s: s.pop("rng")), r"run state keys are wrong: missing rng"),
    "newer version": (_state(lambda s: s.update(version=2)), r"unsupported run state version 2"),
    "bad config": (_state(lambda s: s["config"].update(lr=-1)), r"run state config: lr must be"),
    "even rng increment": (_state(lambda s: s["rng"].update(inc="2")), r"run state rng inc must be odd"),
    "code in the rng": (_state(lambda s: s["rng"].update(state="__import__('os')")),
                        r"run state rng state must be a decimal integer"),
    "unknown optimiser": (_state(lambda s: s["optimizer"].update({"class": "RMSprop"})),
                          r"run state optimizer must be Adam"),
    "bad beta": (_state(lambda s: s["optimizer"].update(beta1=1.5)), r"run state optimizer: beta1 must be"),
    "foreign weight key": (_state(lambda s: s["optimizer"].update(keys=["9.W"])),
                           r"run state optimizer keys must name distinct weights of the model"),
    "negative totals": (_state(lambda s: s["epoch_totals"].update(seen=-1)), r"run state epoch_totals seen must be"),
    "bad fingerprint": (_state(lambda s: s["data"].update(sha256="x")), r"run state data sha256 must be a sha256"),
    "good from the future": (_state(lambda s: s["good"].update(step=99)), r"run state good step must be an int"),
    "no run state in version 2": (lambda c: c.pop("run_state"), r"unsupported model format version 2 without a run state"),
    "run state in version 1": (lambda c: c.update(version=1), r"unsupported model format version 1 with a run state"),
}


@pytest.mark.parametrize("kind", list(DAMAGED_STATES))
def test_a_damaged_run_state_is_refused_naming_what_is_wrong(run_file, kind):
    change, message = DAMAGED_STATES[kind]
    with pytest.raises(ValueError, match=message):
        run_from_bytes(with_config(run_file, change))


def test_damaged_run_arrays_are_refused_naming_the_member(run_file):
    files = members(run_file)
    order = np.load(__import__("io").BytesIO(files["run.order.npy"]))
    cases = {
        "missing": ({k: v for k, v in files.items() if k != "run.order.npy"},
                    r"the model file's run state is missing arrays: run.order.npy"),
        "not a permutation": ({**files, "run.order.npy": npy(np.zeros_like(order))},
                              r"run state array order must be a permutation"),
        "wrong length": ({**files, "run.order.npy": npy(order[:-1])}, r"run.order.npy: shape must be \(300,\)"),
        "NaN moment": ({**files, "run.optimizer.0.W.0.npy": npy(np.full((10, 1, 3, 3), np.nan, np.float32))},
                       r"run state array optimizer.0.W.0 contains NaN"),
        "pickled order": ({**files, "run.order.npy": npy(np.array([None] * 300, dtype=object), allow_pickle=True)},
                          r"run.order.npy: dtype must be int64"),
        "stray member": ({**files, "run.extra.npy": npy(np.zeros(3))}, r"unexpected members: run.extra.npy"),
    }
    for name, (content, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            run_from_bytes(rezip(content))
    assert run_from_bytes(rezip(files))[1] is not None  # the untouched file loads


def test_saving_a_run_state_with_another_models_weights_is_refused(data):
    trainer = stopped(data, config(), 4)
    with pytest.raises(ValueError, match=r"the model's weights are not those of the run state"):
        seed_model(seed=3).to_bytes(run_state=trainer.run_state())


def test_with_member_keeps_a_run_file_loadable(run_file):
    # the crafting helper itself: replacing a member by the same content changes nothing
    same = with_member(run_file, "run.order.npy", members(run_file)["run.order.npy"])
    assert run_from_bytes(same)[1]["step"] == BATCHES + 3
