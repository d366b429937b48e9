"""pycnn.parallel: the sharded training step (TrainingConfig(shards=k)), its split, its sum in
shard order, the per-shard randomness, and the task/result bytes that other processes (and
the page's helper workers) compute shards from."""
import concurrent.futures
import multiprocessing
import os
import re

import numpy as np
import pytest

import pycnn
from pycnn import Adam, Trainer, TrainingConfig, parallel
from pycnn.augment import random_affine
from pycnn.training import learning_rate

# Tolerances for a sharded run against the unsharded one. A shard's gradient is a sum over
# its images; sharding regroups that sum, so each gradient entry may differ by a few units of
# the dtype's rounding (float32: 1.2e-7, float64: 2.2e-16) times the size of its terms, and
# the weights (of size ~1) drift by about that much per step. Measured after 12 steps of the
# two-conv-dense network: 7e-7 in float32 (Adam; SGD 5e-8), 1e-15 in float64; the bounds are
# about 15x and 1,000x that.
ATOL = {"float32": 1e-5, "float64": 1e-12}


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def data(split):
    """300 training digits: 4 batches of 64 and a last one of 44 per epoch."""
    x_train, y_train, _, _ = split
    return x_train[:300], y_train[:300]


def train(data, steps=12, compute_shards=None, preset="two-conv-dense", dtype="float32", **settings):
    """The model's weights after `steps` steps of a Trainer with TrainingConfig(**settings) -> (weights, trainer)."""
    settings = {"epochs": 3, "batch_size": 64, "lr": 0.01, **settings}
    model = pycnn.preset(preset, seed=0, dtype=dtype)
    trainer = Trainer(model, *data, TrainingConfig(**settings), compute_shards=compute_shards)
    trainer.run(max_batches=steps)
    return model.get_weights(), trainer


def pin_one_blas_thread():
    """A helper process's BLAS uses one thread, like this one's (conftest)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


@pytest.fixture(scope="module")
def pool():
    """Two fresh Python processes (spawned: nothing inherited but the environment) computing tasks."""
    env = {var: os.environ.get(var) for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    os.environ.update({var: "1" for var in env})  # read by the children's numpy when it loads
    try:
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=pin_one_blas_thread) as executor:
            yield executor
    finally:
        for var, value in env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


# ---- the split ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n, shards, sizes", [
    (64, 4, [16, 16, 16, 16]), (10, 4, [3, 3, 2, 2]), (44, 3, [15, 15, 14]), (7, 1, [7]),
    (3, 4, [1, 1, 1]),  # the last batch of an epoch may be smaller than shards: no empty shard
    (0, 4, []),
])
def test_a_batch_splits_into_contiguous_shards_of_even_sizes_the_larger_first(n, shards, sizes):
    bounds = parallel.shard_bounds(n, shards)
    assert [b - a for a, b in bounds] == sizes
    assert [a for a, _ in bounds] == [sum(sizes[:i]) for i in range(len(sizes))]  # contiguous, in order
    assert bounds == parallel.shard_bounds(n, shards)  # the same rule every time


# ---- shards=1 is today's training ------------------------------------------------------------------
def test_one_shard_is_the_unsharded_trainer_bit_for_bit(data):
    """TrainingConfig(shards=1) (the default) trains exactly as before shards existed: the Trainer's
    batches, augmentation and schedule replayed by hand around model.train_step give the same bits."""
    settings = {"epochs": 2, "batch_size": 64, "lr": 0.01, "augment": True, "schedule": "onecycle", "seed": 3}
    config = TrainingConfig(**settings, shards=1)
    assert TrainingConfig(**settings) == config
    model = pycnn.preset("two-conv-dense", seed=0)
    trainer = Trainer(model, *data, config)
    trainer.run()

    x, y = data
    reference = pycnn.preset("two-conv-dense", seed=0)
    optimizer = Adam(config.lr)
    rng = np.random.default_rng(config.seed)
    total = config.epochs * trainer.batches_per_epoch
    losses = []
    for step in range(total):
        batch = step % trainer.batches_per_epoch
        if batch == 0:
            order = rng.permutation(len(x))
        idx = order[batch * config.batch_size:(batch + 1) * config.batch_size]
        xb = random_affine(x[idx], rng, out=x[idx])
        optimizer.lr = learning_rate(config.schedule, config.lr, step, total)
        losses.append(reference.train_step(xb, y[idx], optimizer)[0])
    assert same_weights(model.get_weights(), reference.get_weights())
    assert trainer.history["batch_loss"] == losses


def test_sharded_step_with_one_shard_is_train_step_bit_for_bit(data):
    x, y = data[0][:64], data[1][:64]
    a, b = pycnn.preset("two-conv-dense", seed=0), pycnn.preset("two-conv-dense", seed=0)
    opt_a, opt_b = Adam(1e-2), Adam(1e-2)
    for _ in range(3):
        assert a.train_step(x, y, opt_a) == parallel.sharded_step(b, opt_b, x, y, shards=1)
    assert same_weights(a.get_weights(), b.get_weights())


# ---- shards=4 computes the same gradient, up to rounding -------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_shards_gradients_add_up_to_the_batch_mean_gradient(data, dtype):
    model = pycnn.preset("two-conv-dense", seed=0, dtype=dtype)
    x, y = model.as_input(data[0][:50]), data[1][:50]
    loss, whole = model.compute_gradients(x, y)
    results = [parallel.shard_gradients(model, x[a:b], y[a:b], len(x)) for a, b in parallel.shard_bounds(50, 4)]
    summed, shard_loss, correct, count = parallel.combine(results)
    keys = [f"{i}.{name}" for i, layer in enumerate(model.layers) for name in layer.params]
    assert list(summed) == keys and count == 50
    for key, g in zip(keys, whole):
        assert summed[key].dtype == model.dtype
        np.testing.assert_allclose(summed[key], g, rtol=0, atol=ATOL[dtype] * max(1.0, float(np.abs(g).max())))
    assert shard_loss == pytest.approx(loss, rel=ATOL[dtype])
    assert correct == int(np.count_nonzero(model.predict(x) == y))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_four_shards_train_like_one_within_the_dtypes_rounding(data, dtype, optimizer):
    """12 steps (two epochs and a bit, each ending in a batch of 44), augmented, one-cycle schedule."""
    initial = pycnn.preset("two-conv-dense", seed=0, dtype=dtype).get_weights()
    whole, one = train(data, dtype=dtype, optimizer=optimizer, shards=1)
    sharded, four = train(data, dtype=dtype, optimizer=optimizer, shards=4)
    assert max_difference(whole, initial) > 1000 * ATOL[dtype]  # the weights moved: the comparison means something
    assert max_difference(whole, sharded) < ATOL[dtype]
    np.testing.assert_allclose(four.history["batch_loss"], one.history["batch_loss"], rtol=ATOL[dtype])


# ---- who computes a shard does not matter ----------------------------------------------------------
def test_shards_computed_in_other_processes_give_identical_weights(data, pool):
    here, trainer = train(data, shards=4)
    elsewhere, remote = train(data, shards=4, compute_shards=lambda tasks: list(pool.map(parallel.run_task, tasks)))
    assert same_weights(here, elsewhere)
    assert remote.history == trainer.history
    assert remote.optimizer.t == trainer.optimizer.t == 12
    assert all(np.array_equal(a, b) for key in trainer.optimizer.state
               for a, b in zip(trainer.optimizer.state[key], remote.optimizer.state[key]))


def test_results_arriving_in_any_order_are_summed_in_shard_order(data, pool):
    """Shards computed last-first here, or in the pool and taken as they complete, or shard 0 here
    and the others in the pool: the results are put in shard order, so the bits are the same."""
    def reversed_here(tasks):
        runner = parallel.TaskRunner()  # a fresh model, as a helper worker has
        return [runner(task) for task in reversed(tasks)]

    def as_completed(tasks):
        futures = [pool.submit(parallel.run_task, task) for task in reversed(tasks)]
        return [future.result() for future in concurrent.futures.as_completed(futures)]

    def mixed(tasks):
        futures = [pool.submit(parallel.run_task, task) for task in tasks[1:]]
        return [parallel.run_task(tasks[0])] + [future.result() for future in futures]

    here, _ = train(data, shards=4)
    for compute in (reversed_here, as_completed, mixed):
        assert same_weights(here, train(data, shards=4, compute_shards=compute)[0]), compute.__name__


def test_the_sum_follows_shard_order_not_arrival_order(data):
    """Summing the same results in another order is not the same bits in float32 (which is why
    the order is fixed); the step puts them back in shard order first."""
    model = pycnn.preset("two-conv-dense", seed=0)
    x, y = model.as_input(data[0][:64]), data[1][:64]
    results = [parallel.shard_gradients(model, x[a:b], y[a:b], 64) for a, b in parallel.shard_bounds(64, 4)]
    in_order = parallel.sum_gradients(r.grads for r in results)
    backwards = parallel.sum_gradients(r.grads for r in reversed(results))
    # (float addition does not associate: over 56,714 sums some last bits differ)
    assert any(not np.array_equal(in_order[k], backwards[k]) for k in in_order)
    tasks = parallel.encode_tasks(model, x, y, 4)
    answers = [parallel.run_task(task) for task in tasks]
    stepped = []
    for order in (answers, answers[::-1], answers[2:] + answers[:2]):
        m = pycnn.preset("two-conv-dense", seed=0)
        parallel.sharded_step(m, Adam(1e-2), x, y, 4, compute=lambda tasks, order=order: order)
        stepped.append(m.get_weights())
    assert same_weights(stepped[0], stepped[1]) and same_weights(stepped[0], stepped[2])
    reference = pycnn.preset("two-conv-dense", seed=0)
    parallel.apply_gradients(reference, Adam(1e-2), in_order)
    assert same_weights(stepped[0], reference.get_weights())


@pytest.mark.parametrize("answer, message", [
    (lambda answers: answers[:-1], r"shard\(s\) 3 missing"),
    (lambda answers: answers + answers[:1], "got shard 0 of step 0"),
    (lambda answers: [answers[0]] * 4, "got shard 0 of step 0"),
], ids=["missing", "extra", "duplicate"])
def test_missing_or_repeated_results_are_refused(data, answer, message):
    model = pycnn.preset("seed", seed=0)
    x, y = data[0][:64], data[1][:64]
    answers = [parallel.run_task(task) for task in parallel.encode_tasks(model, x, y, 4)]
    before = model.get_weights()
    with pytest.raises(ValueError, match=rf"^compute must return one result for each of shards 0 to 3.*{message}"):
        parallel.sharded_step(model, Adam(), x, y, 4, compute=lambda tasks: answer(answers))
    assert same_weights(model.get_weights(), before)  # nothing was applied


def test_a_result_of_another_step_is_refused(data):
    model = pycnn.preset("seed", seed=0)
    x, y = data[0][:64], data[1][:64]
    stale = [parallel.run_task(task) for task in parallel.encode_tasks(model, x, y, 2, step=4)]
    with pytest.raises(ValueError, match="of step 5, got shard 0 of step 4"):
        parallel.sharded_step(model, Adam(), x, y, 2, step=5, compute=lambda tasks: stale)


# ---- a batch smaller than shards ---------------------------------------------------------------------
def test_a_last_batch_smaller_than_shards_computes_one_shard_per_image(data):
    """130 digits in batches of 64 end each epoch with a batch of 2: 2 tasks of one image, none empty."""
    seen = []

    def count(tasks):
        seen.append([len(parallel.decode_task(task)[3]) for task in tasks])
        return [parallel.run_task(task) for task in tasks]

    small = (data[0][:130], data[1][:130])
    sharded, trainer = train(small, steps=6, shards=4, compute_shards=count)
    assert seen == [[16, 16, 16, 16], [16, 16, 16, 16], [1, 1]] * 2
    assert trainer.history["epochs"][-1]["epoch"] == 2
    whole, _ = train(small, steps=6, shards=1)
    assert max_difference(whole, sharded) < ATOL["float32"]
    model = pycnn.preset("seed", seed=0)
    assert len(parallel.encode_tasks(model, small[0][:3], small[1][:3], 4)) == 3


# ---- a step in two phases: shards handed out, gathered, finished ----------------------------------------
def two_phase(trainer, steps, here=lambda tasks: range(0, len(tasks), 2), order=reversed):
    """`steps` steps of trainer taken in two phases: the shards `here` picks computed in this process (with
    the model), the others by run_task as a helper worker would, their results added in `order`."""
    runner = parallel.TaskRunner()  # a fresh model, as a helper worker has
    reports = []
    for _ in range(steps):
        tasks = trainer.begin_step()
        local = set(here(tasks))
        results = [runner(task) for i, task in enumerate(tasks) if i not in local]
        for i in local:
            trainer.compute_shard(i)
        for data in order(results[1:]):
            trainer.add_result(data)
        reports.append(trainer.finish_step(results[:1]))
    return reports


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_a_step_in_two_phases_trains_as_run_does_bit_for_bit(data, shards):
    """begin_step / compute_shard / add_result / finish_step, whoever computes which shard and in whatever
    order the results come: the weights, optimiser state, history and reports of run(), to the bit."""
    reference, by_run = train(data, steps=12, shards=shards)
    for here in (lambda tasks: range(len(tasks)), lambda tasks: (), lambda tasks: range(0, len(tasks), 2)):
        model = pycnn.preset("two-conv-dense", seed=0)
        trainer = Trainer(model, *data, TrainingConfig(epochs=3, batch_size=64, lr=0.01, shards=shards))
        reports = two_phase(trainer, 12, here)
        assert same_weights(model.get_weights(), reference)
        assert trainer.history == by_run.history and trainer.step == by_run.step == 12
        assert all(np.array_equal(a, b) for key in by_run.optimizer.state
                   for a, b in zip(trainer.optimizer.state[key], by_run.optimizer.state[key]))
    assert [r["step"] for r in reports] == list(range(1, 13)) and all(len(r["losses"]) == 1 for r in reports)
    assert [len(r["epoch_results"]) for r in reports] == [0, 0, 0, 0, 1] * 2 + [0, 0]  # 5 batches an epoch
    assert reports[-1].keys() == by_run.run(max_batches=0).keys()


def test_two_phase_steps_give_the_weights_of_sharded_step_with_helper_processes(data, pool):
    """The same run as Trainer(compute_shards=...) whose shards all go to other processes."""
    elsewhere, _ = train(data, steps=7, shards=4, compute_shards=lambda tasks: list(pool.map(parallel.run_task, tasks)))
    model = pycnn.preset("two-conv-dense", seed=0)
    trainer = Trainer(model, *data, TrainingConfig(epochs=3, batch_size=64, lr=0.01, shards=4))
    for _ in range(7):
        tasks = trainer.begin_step()
        trainer.compute_shard(0)
        trainer.finish_step(list(pool.map(parallel.run_task, tasks[1:])))
    assert same_weights(model.get_weights(), elsewhere)


def test_a_last_batch_smaller_than_shards_hands_out_one_task_per_image(data):
    small = (data[0][:130], data[1][:130])
    trainer = Trainer(pycnn.preset("seed", seed=0), *small, TrainingConfig(epochs=1, batch_size=64, shards=4))
    sizes = []
    while not trainer.done:
        tasks = trainer.begin_step()
        sizes.append([len(parallel.decode_task(task)[3]) for task in tasks])
        trainer.finish_step([parallel.run_task(task) for task in tasks])
    assert sizes == [[16, 16, 16, 16], [16, 16, 16, 16], [1, 1]]


def test_finishing_with_a_shard_missing_is_refused_and_the_step_stays_open(data):
    model = pycnn.preset("seed", seed=0)
    trainer = Trainer(model, *data, TrainingConfig(epochs=1, batch_size=64, shards=4))
    before = model.get_weights()
    tasks = trainer.begin_step()
    results = [parallel.run_task(task) for task in tasks]
    trainer.compute_shard(1)
    with pytest.raises(ValueError, match=r"^expected one result for each of shards 0 to 3 of step 0; shard\(s\) 0, 2 "
                                         r"missing$"):
        trainer.finish_step([results[3]])  # (added: it waits with shard 1 for the others)
    assert same_weights(model.get_weights(), before) and trainer.step == 0  # nothing was applied
    assert trainer.missing_shards() == [0, 2]
    with pytest.raises(ValueError, match="^begin_step: step 0 is begun and not finished"):
        trainer.begin_step()
    with pytest.raises(ValueError, match="^run: step 0 is begun and not finished"):
        trainer.run(max_batches=1)
    trainer.finish_step([results[0], results[2]])
    assert trainer.step == 1 and not same_weights(model.get_weights(), before)


@pytest.mark.parametrize("act, message", [
    (lambda t, results, stale: t.compute_shard(4), "shard must be an int from 0 to 3, got 4"),
    (lambda t, results, stale: t.compute_shard(True), "shard must be an int from 0 to 3, got True"),
    (lambda t, results, stale: t.compute_shard(2), "shard 2 of step 1 is computed already"),
    (lambda t, results, stale: t.add_result(results[2]), "expected one result for each of shards 0 to 3 of step 1, got "
                                                          "shard 2 of step 1 twice"),
    (lambda t, results, stale: t.add_result(stale), "expected one result for each of shards 0 to 3 of step 1, got "
                                                     "shard 0 of step 0"),
    (lambda t, results, stale: t.add_result(b"nonsense"), "not a pycnn result"),
], ids=["out of range", "a bool", "computed twice", "a result twice", "another step's", "not a result"])
def test_a_wrong_shard_or_result_is_refused_saying_which(data, act, message):
    trainer = Trainer(pycnn.preset("seed", seed=0), *data, TrainingConfig(epochs=1, batch_size=64, shards=4))
    first = [parallel.run_task(task) for task in trainer.begin_step()]
    stale = first[0]
    trainer.finish_step(first)
    results = [parallel.run_task(task) for task in trainer.begin_step()]
    trainer.compute_shard(2)
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        act(trainer, results, stale)


def test_the_phases_need_a_step_begun_and_a_run_not_over(data):
    trainer = Trainer(pycnn.preset("seed", seed=0), *data[:2], TrainingConfig(epochs=1, batch_size=150, train_size=150))
    for name, call in [("compute_shard", lambda: trainer.compute_shard(0)), ("add_result", lambda: trainer.add_result(b"")),
                       ("finish_step", trainer.finish_step), ("missing_shards", trainer.missing_shards)]:
        with pytest.raises(ValueError, match=f"^{name} needs a step begun with begin_step$"):
            call()
    trainer.run()
    with pytest.raises(ValueError, match="^the run is over: all 1 steps are taken$"):
        trainer.begin_step()


def test_a_run_that_diverges_in_two_phases_restores_the_weights_as_run_does(data):
    """A huge learning rate: both ways raise TrainingDiverged at the same step, weights back at the start."""
    outcomes = []
    for phases in (False, True):
        model = pycnn.preset("seed", seed=0)
        trainer = Trainer(model, *data, TrainingConfig(epochs=3, batch_size=64, lr=10.0, schedule="constant", shards=2))
        with pytest.raises(pycnn.TrainingDiverged):
            for _ in range(15):
                if phases:
                    two_phase(trainer, 1)
                else:
                    trainer.run(max_batches=1)
        outcomes.append((trainer.step, model.get_weights()))
    assert outcomes[0][0] == outcomes[1][0] and same_weights(outcomes[0][1], outcomes[1][1])
    assert same_weights(outcomes[0][1], pycnn.preset("seed", seed=0).get_weights())


# ---- settings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -1, 65, 2.5, "4", True, None, 10 ** 400])
def test_a_bad_shards_value_is_refused_naming_the_setting(value):
    with pytest.raises(ValueError, match=r"^shards must be an int from 1 to 64, got "):
        TrainingConfig.from_dict({"shards": value})


def test_more_shards_than_the_batch_size_is_refused():
    with pytest.raises(ValueError, match=r"^shards \(8\) is larger than batch_size \(4\): every shard of a batch "
                                         r"needs at least one image$"):
        TrainingConfig(batch_size=4, shards=8)
    assert TrainingConfig(batch_size=4, shards=4).shards == 4
    assert TrainingConfig.limits()["shards"] == {"type": "int", "min": 1, "max": 64}
    assert TrainingConfig.defaults()["shards"] == 1


# ---- randomness in training: from (seed, step, shard) ----------------------------------------------
@pytest.fixture
def dropout_model():
    """A network with pycnn's Dropout: the kind of layer that draws random numbers in training."""
    return lambda: pycnn.Sequential([pycnn.Flatten(), pycnn.Dense(784, 32, rng=0), pycnn.ReLU(), pycnn.Dropout(0.5),
                                     pycnn.Dense(32, 10, rng=1)], input_shape=(1, 28, 28))


def test_a_layer_that_draws_random_numbers_gets_the_rng_of_its_seed_step_and_shard(data, dropout_model):
    model = dropout_model()
    trainer = Trainer(model, *data, TrainingConfig(epochs=1, batch_size=64, seed=7, augment=False))
    trainer.run(max_batches=3)
    assert model.layers[3].rng.bit_generator.seed_seq.entropy == [7, 2, 0]  # step 2 (the third), shard 0 of 1

    draws = {(s, t, k): parallel.shard_rng(s, t, k).random() for s in (0, 1) for t in (0, 1) for k in (0, 1)}
    assert len(set(draws.values())) == len(draws)  # each (seed, step, shard) its own numbers
    assert draws[(0, 1, 1)] == parallel.shard_rng(0, 1, 1).random()


def test_random_layers_draw_the_same_numbers_whoever_computes_the_shard(data, dropout_model):
    def reversed_elsewhere(tasks):
        runner = parallel.TaskRunner()
        return [runner(task) for task in reversed(tasks)]

    weights = []
    for compute in (None, reversed_elsewhere):
        model = dropout_model()
        Trainer(model, *data, TrainingConfig(epochs=2, batch_size=64, shards=4), compute_shards=compute).run()
        weights.append(model.get_weights())
    assert same_weights(*weights)
    other_seed = dropout_model()
    Trainer(other_seed, *data, TrainingConfig(epochs=2, batch_size=64, shards=4, seed=1)).run()
    assert not same_weights(weights[0], other_seed.get_weights())


# ---- bytes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_task_carries_the_exact_weights_images_and_settings(data, dtype):
    model = pycnn.preset("two-conv-dense", seed=0, dtype=dtype)
    x, y = data[0][:10], data[1][:10]
    header, weights, x_task, y_task = parallel.decode_task(parallel.encode_task(model, x, y, 64, 5, 9, 2))
    assert {k: header[k] for k in ("batch_size", "seed", "step", "shards", "counts")} == {
        "batch_size": 64, "seed": 5, "step": 9, "shards": [2], "counts": [10]}
    assert header["model"] == model.get_config()
    assert same_weights(list(weights.values()), model.get_weights()) and list(weights)[0] == "0.W"
    assert all(w.dtype == model.dtype for w in weights.values())
    assert np.array_equal(x_task, model.as_input(x)) and x_task.dtype == model.dtype
    assert np.array_equal(y_task, y)


def test_a_result_round_trips_exactly():
    rng = np.random.default_rng(0)
    grads = {"0.W": rng.standard_normal((3, 1, 3, 3)).astype(np.float32), "0.b": np.zeros(3, np.float32)}
    header, result = parallel.decode_result(parallel.encode_result(parallel.ShardResult(grads, 0.25, 7, 9), 3, 1))
    assert (header["step"], header["shard"], result.loss, result.correct, result.count) == (3, 1, 0.25, 7, 9)
    assert list(result.grads) == ["0.W", "0.b"] and same_weights(list(result.grads.values()), list(grads.values()))


def _task():
    return parallel.encode_task(pycnn.preset("seed", seed=0), np.zeros((2, 1, 28, 28)), np.array([1, 2]), 4)


def _shards_task(shards, counts, batch_size=4):
    """A task whose header says `shards` and `counts` (unchecked), of 2 images."""
    model = pycnn.preset("seed", seed=0)
    header = {"kind": "task", "model": model.get_config(), "batch_size": batch_size, "seed": 0, "step": 0,
              "shards": shards, "counts": counts}
    return parallel._pack(header, parallel._weight_arrays(model) + [
        ("x", np.zeros((2, 1, 28, 28), np.float32)), ("y", np.array([1, 2], "<i4"))])


@pytest.mark.parametrize("make, message", [
    (lambda: b"", "not a pycnn task"),
    (lambda: b"PK\x03\x04" + bytes(40), "not a pycnn task"),
    (lambda: _task()[:-5], "the task is truncated: array y needs 8 bytes, 3 are left"),
    (lambda: _task() + b"\0", "the task has 1 byte(s) after its last array"),
    (lambda: parallel.encode_result(parallel.ShardResult({}, 0.0, 0, 1)),
     "not a pycnn task (its header's kind is 'result')"),
    (lambda: _task()[:8] + (2 ** 31).to_bytes(4, "little") + _task()[12:],
     "the task's header says 2,147,483,648 bytes"),
    (lambda: "text", "a task must be bytes, got str"),
    (lambda: _shards_task([], []), "the task's shards must be a list of 1 to 64 distinct shard indices, got []"),
    (lambda: _shards_task([1, 1], [1, 1]), "the task's shards must be a list of 1 to 64 distinct shard indices"),
    (lambda: _shards_task([0, True], [1, 1]), "the task's shards must be a list of 1 to 64 distinct shard indices"),
    (lambda: _shards_task([0, 64], [1, 1]), "the task's shards must be a list of 1 to 64 distinct shard indices"),
    (lambda: _shards_task(0, [2]), "the task's shards must be a list of 1 to 64 distinct shard indices, got 0"),
    (lambda: _shards_task([0, 1], [1, 2]), "the task's counts must give the images of each of its 2 shard(s), "
                                           "2 images and 2 labels in all, of a batch of 4, got [1, 2]"),
    (lambda: _shards_task([0, 1], [2]), "the task's counts must give the images of each of its 2 shard(s)"),
    (lambda: _shards_task([0, 1], [2, 0]), "the task's counts must give the images of each of its 2 shard(s)"),
    (lambda: _shards_task([0], [2], batch_size=1), "the task's counts must give the images of each of its 1 shard"),
    (lambda: _shards_task([0], None), "the task's counts must give the images of each of its 1 shard"),
])
def test_bad_task_bytes_are_refused_saying_what_is_wrong(make, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parallel.decode_task(make())


def test_gradients_that_do_not_fit_the_model_are_refused():
    model = pycnn.preset("seed", seed=0)
    grads = {f"{i}.{n}": np.zeros_like(p) for i, layer in enumerate(model.layers) for n, p in layer.params.items()}
    with pytest.raises(ValueError, match=r"^grads must have the keys 0\.W, 0\.b, 4\.W, 4\.b, got 0\.W, 0\.b$"):
        parallel.apply_gradients(model, Adam(), {"0.W": grads["0.W"], "0.b": grads["0.b"]})
    with pytest.raises(ValueError, match=r"^gradient 4\.b must have shape \(10,\), got \(9,\)"):
        parallel.apply_gradients(model, Adam(), {**grads, "4.b": np.zeros(9, np.float32)})
    with pytest.raises(ValueError, match="^sum_gradients needs the gradients of at least one shard, got none"):
        parallel.sum_gradients([])
    with pytest.raises(ValueError, match=r"^shard 1's gradients must have the keys 0\.W, 0\.b, 4\.W, 4\.b"):
        parallel.sum_gradients([grads, {"0.W": grads["0.W"]}])
    with pytest.raises(ValueError, match=r"^batch_size must be an int of at least the shard's 2 images"):
        parallel.shard_gradients(model, np.zeros((2, 1, 28, 28)), np.array([1, 2]), 1)


def test_pycnn_exposes_the_parallel_module():
    assert pycnn.parallel is parallel and "parallel" in pycnn.__all__


def test_decoded_arrays_are_read_only_views_of_the_bytes():
    model = pycnn.preset("seed", seed=0)
    data = parallel.encode_task(model, np.zeros((2, 1, 28, 28)), np.array([1, 2]), 4)
    _, weights, x, y = parallel.decode_task(data)
    for array in (*weights.values(), x, y):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
    assert parallel.decode_task(bytearray(data))[2].flags.writeable is False  # not the caller's buffer either


# ---- a task of several shards: the weights once, a result per shard ---------------------------------------
@pytest.mark.parametrize("count, helpers, given, mine", [
    (4, 1, [[0, 1]], [2, 3]), (4, 2, [[0, 1], [2]], [3]), (4, 3, [[0], [1], [2]], [3]), (4, 0, [], [0, 1, 2, 3]),
    (4, 5, [[0], [1], [2], [3]], []), (3, 1, [[0, 1]], [2]), (1, 1, [[0]], []), (2, 3, [[0], [1]], []),
    (0, 2, [], []),
])
def test_shards_are_dealt_to_helpers_first_in_contiguous_runs(count, helpers, given, mine):
    assert parallel.assign_shards(count, helpers) == (given, mine)


@pytest.mark.parametrize("bad", [-1, 65, True, 1.0, None])
def test_a_bad_helper_count_is_refused(bad):
    with pytest.raises(ValueError, match=r"^helpers must be an int from 0 to 64, got "):
        parallel.assign_shards(4, bad)


@pytest.mark.parametrize("preset", ["two-conv-dense", "dropout"])
def test_a_task_of_several_shards_gives_each_shards_result_as_its_own_task_bit_for_bit(data, preset, dropout_model):
    """The runner sets the weights once and computes the shards one after another: each result is the bytes
    of the shard's own one-shard task's result, whichever shards a task holds and in whatever order."""
    model = dropout_model() if preset == "dropout" else pycnn.preset(preset, seed=0)
    x, y = model.as_input(data[0][:62]), data[1][:62]  # shards of 16, 16, 15, 15
    work = parallel.ShardedStep(model, x, y, 4, seed=3, step=7)
    alone = [parallel.TaskRunner()(task) for task in work.tasks()]
    for shards in ([0, 1], [2, 3], [1, 3], [3, 0], [0, 1, 2, 3], [2]):
        task = work.task(shards)
        header, _, x_task, _ = parallel.decode_task(task)
        assert header["shards"] == shards and header["counts"] == [len(range(*work.bounds[i])) for i in shards]
        assert len(x_task) == sum(header["counts"])
        assert parallel.TaskRunner().results(task) == [alone[i] for i in shards]
        assert parallel.run_shards(task) == [alone[i] for i in shards]
    assert len(work.task([0, 1])) < len(work.tasks()[0]) + len(work.tasks()[1])  # the weights once
    with pytest.raises(ValueError, match=r"^the task holds 2 shards; run_shards computes a task of several$"):
        parallel.run_task(work.task([0, 1]))
    with pytest.raises(ValueError, match=r"^shards must be distinct ints from 0 to 3, got \[1, 1\]$"):
        work.task([1, 1])
    with pytest.raises(ValueError, match=r"^shards must be distinct ints from 0 to 3, got \[\]$"):
        work.task([])


@pytest.mark.parametrize("helpers", [0, 1, 2, 3, 5])
def test_steps_with_a_task_per_helper_train_as_run_does_bit_for_bit(data, helpers):
    """begin_step(helpers=k): a task per helper given shards, the rest computed here, the next batch drawn
    ahead while the helpers compute (prepare_batch): the weights, history and generator of run()."""
    reference, by_run = train(data, steps=12, shards=4)
    model = pycnn.preset("two-conv-dense", seed=0)
    trainer = Trainer(model, *data, TrainingConfig(epochs=3, batch_size=64, lr=0.01, shards=4))
    runner = parallel.TaskRunner()
    for step in range(12):
        tasks = trainer.begin_step(helpers)
        given, mine = trainer.planned_shards()
        assert (given, mine) == parallel.assign_shards(len(trainer.missing_shards()), helpers)
        assert len(tasks) == len(given) <= helpers
        for shard in mine:
            trainer.compute_shard(shard)
        assert trainer.prepare_batch() is (step < 14)
        for task in reversed(tasks):
            for result in runner.results(task):
                trainer.add_result(result)
        trainer.finish_step()
    assert same_weights(model.get_weights(), reference)
    assert trainer.history == by_run.history
    assert trainer.rng.bit_generator.state == by_run.rng.bit_generator.state


def test_a_batch_drawn_ahead_changes_nothing_the_run_keeps(data):
    """prepare_batch draws with a copy of the generator: a run state taken meanwhile is the run's, a run that
    continues from it (or restores its weights) draws that batch again, the same, and steps taken whole use it."""
    settings = {"epochs": 2, "batch_size": 64, "lr": 0.01, "shards": 2}
    reference, by_run = train(data, steps=10, **settings)
    model = pycnn.preset("two-conv-dense", seed=0)
    trainer = Trainer(model, *data, TrainingConfig(**settings))
    states = []
    for step in range(10):
        if step % 2:
            assert trainer.prepare_batch()  # no step open: the next one's batch
        if step == 4:  # an epoch's last batch drawn, the next epoch's order drawn ahead
            assert trainer.prepare_batch()
            states.append(trainer.run_state())
        trainer.run(max_batches=1)
        if step == 4:
            assert trainer.prepare_batch()
            states.append(trainer.run_state())
    assert same_weights(model.get_weights(), reference) and trainer.history == by_run.history
    for state in states:
        _, ahead = train(data, steps=state["step"], **settings)
        plain = ahead.run_state()
        assert state["rng"] == plain["rng"] and np.array_equal(state["arrays"].get("order", []),
                                                               plain["arrays"].get("order", []))
    assert not trainer.prepare_batch() and trainer.done  # no next step
