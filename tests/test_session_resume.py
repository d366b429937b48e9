"""Continue in the page (pycnn.page's `resume`), in CPython through the protocol the web worker speaks: a run
stopped part-way and continued, in this session or in a new one that loads the model the page kept (a
reload), ends with the weights of the run never stopped, bit for bit; what ends a stopped run, and what a
refusal leaves."""
import numpy as np
import pytest

import pycnn
from pycnn import parallel, serialize
from pycnn.page.current import model_file
from page_driver import PageClient

# 2 epochs of 8 batches of 64 (4 shards of 16: the page's split of a batch of 64), augmented: every part
# of a run state counts (the data order, the generator, the optimiser, the schedule, the epoch totals)
RUN = {"epochs": 2, "batch_size": 64, "lr": 0.01, "train_size": 512, "augment": True, "seed": 3}


@pytest.fixture(scope="module")
def digits(subset):
    """1,200 subset digits of every kind, as the page holds them: uint8 (N, 28, 28), labels."""
    x, y = subset
    pick = np.random.default_rng(0).permutation(len(y))[:1200]
    return np.round(x[pick, 0] * 255).astype(np.uint8), y[pick]


def new_page(digits):
    """A page's session on the digits (what a reload opens: the same held-out split)."""
    return PageClient.of(*digits, heldout=200, seed=0)


@pytest.fixture
def client(digits):
    return new_page(digits)


@pytest.fixture(scope="module")
def never_stopped(digits):
    """{shards: (the weights, the epochs' results, every step's reply)} of RUN never stopped."""
    runs = {}
    for shards in (1, 4):
        page = new_page(digits)
        _, steps = page.run("train", config={**RUN, "shards": shards})
        runs[shards] = (page.model.get_weights(), page.events_of("epoch"), steps)
    return runs


def stop_after(client, steps, config):
    """Train `config`, stop after `steps` batches -> the stop's events (the page keeps its checkpoint)."""
    client("train", config=config)
    for _ in range(steps):
        assert not client("step")["ended"]
    client("stop", sent_at=None)
    assert client("step")["ended"]
    return client.events


def finish(client, method="resume"):
    """Start `method` and step it to its end -> (its start, every step's reply)."""
    return client.run(method)


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize("steps", [5, 8, 11], ids=["inside epoch 1", "at epoch 1's end", "inside epoch 2"])
def test_a_stopped_run_continued_ends_with_the_weights_of_the_run_never_stopped(client, never_stopped, shards, steps):
    weights, epochs, unstopped = never_stopped[shards]
    told = stop_after(client, steps, {**RUN, "shards": shards})
    resumable = client.events_of("resumable", told)
    assert resumable == [{"type": "resumable", "run": {
        "step": steps, "total_steps": 16, "epoch": 1 + (steps - 1) // 8, "epochs": 2, "batch": (steps - 1) % 8 + 1,
        "batches_per_epoch": 8, "config": {**pycnn.TrainingConfig.defaults(), **RUN, "shards": shards},
        "joined": False}}]
    started, rest = finish(client)
    assert started == {"total_steps": 16, "batches_per_epoch": 8, "shards": shards, "step": steps,
                       "config": resumable[0]["run"]["config"]}
    # the same replies (losses, accuracy, step, epoch), of a run named by the request that started it
    assert rest == [{**reply, "run": "resume"} for reply in unstopped[steps:]]
    assert same_weights(client.model.get_weights(), weights)
    assert client.events_of("epoch") == epochs  # the epochs' results, held-out included
    assert client.events_of("done")[-1]["reason"] == "finished"
    assert client.events_of("resumable")[-1]["run"] is None  # nothing left to continue
    assert client.error("resume").startswith("Cannot continue: the current model has no stopped run to continue")


def test_a_reload_continues_the_run_from_the_model_the_page_kept(digits, never_stopped):
    """The checkpoint the page keeps in IndexedDB on Stop carries the run: a new session (a reload) that loads
    it continues the run to the unstopped weights, with 4 shards computed here and by helpers."""
    weights, epochs, _ = never_stopped[4]
    first = new_page(digits)
    told = stop_after(first, 6, {**RUN, "shards": 4})
    kept = first.events_of("checkpoint", told)[0]
    assert kept["reason"] == "stopped" and kept["partial_epoch"]
    _, state = serialize.run_from_bytes(bytes(kept["bytes"]))
    assert state["step"] == 6 and state["config"]["shards"] == 4  # the model file version 2 carries the run

    reloaded = new_page(digits)
    assert reloaded("load", kept["bytes"]) == {"evaluation": kept["evaluation"], "run": "continues"}
    assert reloaded.events_of("resumable", reloaded.events)[0]["run"]["step"] == 6
    assert reloaded("resume")["step"] == 6
    runner, replies = parallel.TaskRunner(), []
    while not (replies and replies[-1]["ended"]):  # as the worker steps a run with helpers up
        tasks = reloaded("begin_step")["tasks"]
        reloaded("compute_shard", shard=0)
        for task in tasks[:0:-1]:
            reloaded("shard_result", runner(task))
        replies.append(reloaded("finish_step"))
    assert len(replies) == 10 and replies[-1]["step"] == 16
    assert same_weights(reloaded.model.get_weights(), weights)
    assert reloaded.events_of("epoch") == epochs  # epoch 1's end too, held-out scores included


def test_a_closed_tab_continues_from_the_model_kept_at_the_last_epoch(digits, never_stopped):
    """No Stop: the page keeps the model at each epoch's end, with the run in flight, so a reload continues it."""
    weights, _, _ = never_stopped[1]
    page = new_page(digits)
    page("train", config={**RUN, "shards": 1})
    for _ in range(10):  # into epoch 2, then the tab is closed
        page("step")
    kept = page.events_of("checkpoint")
    assert [c["reason"] for c in kept] == ["epoch"]
    assert serialize.run_from_bytes(bytes(kept[0]["bytes"]))[1]["step"] == 8
    reloaded = new_page(digits)
    assert reloaded("load", kept[0]["bytes"])["run"] == "continues"
    _, rest = finish(reloaded)
    assert rest[0]["step"] == 9 and rest[-1]["step"] == 16
    assert same_weights(reloaded.model.get_weights(), weights)
    # the model kept at the last epoch's end of a finished run has nothing left to continue
    last = reloaded.events_of("checkpoint")[-1]
    assert last["reason"] == "epoch" and serialize.run_from_bytes(bytes(last["bytes"]))[1] is None


def test_the_downloaded_model_of_a_stopped_run_carries_the_run_and_how_it_was_made(digits):
    """Download model after Stop is the model file version 2 with the run and the metadata `python -m pycnn
    train` writes ("trained_with"): the file holds everything resume needs."""
    page = new_page(digits)
    stop_after(page, 3, {**RUN, "shards": 4})
    data = page("save")["bytes"]
    model, state = serialize.run_from_bytes(bytes(data))
    assert state["step"] == 3
    assert model.metadata["trained_with"] == {**pycnn.TrainingConfig.defaults(), **RUN, "shards": 4}
    # the current model's own metadata is not changed: only the file says how the run was made
    assert "trained_with" not in page.model.metadata


@pytest.mark.parametrize("end, why", [
    (lambda page: page("reset", seed=1), "Reset"),
    (lambda page: page("set_network", layers=page("network")["layers"][:-2] + page("network")["layers"][-1:]),
     "a new network"),
    (lambda page: page("load", pycnn.presets.preset("seed", seed=0).to_bytes()), "a model loaded"),
    (lambda page: page("train", config={**RUN, "epochs": 1}), "a new run"),
], ids=["reset", "network", "load", "train"])
def test_what_changes_the_model_ends_the_stopped_run(client, end, why):
    stop_after(client, 3, RUN)
    assert client.session.current.resumable()["step"] == 3, why
    end(client)
    assert client.events_of("resumable", client.events) == [{"type": "resumable", "run": None}]
    if client.session.running():
        client("stop")
        client("step")  # that new run, stopped before its first batch, leaves nothing to continue
    assert client.session.current.resumable() is None
    assert client.error("resume").startswith("Cannot continue: the current model has no stopped run")
    assert serialize.run_from_bytes(bytes(client("save")["bytes"]))[1] is None


def test_a_kept_step_ends_the_stopped_run_and_a_step_tried_and_undone_does_not(client, never_stopped):
    stop_after(client, 4, RUN)
    client("inspect_heldout", index=0)
    label = int(client.data.y_heldout[0])
    client("try_step", label=label)
    assert serialize.run_from_bytes(bytes(client("save")["bytes"]))[1] is None  # not the run's weights now
    client("undo_step")
    assert client.session.current.resumable()["step"] == 4
    client("try_step", label=label)  # not kept: Continue undoes it, as Train does
    _, rest = finish(client)
    assert same_weights(client.model.get_weights(), never_stopped[1][0])

    stop_after(client, 2, RUN)
    client("inspect_heldout", index=0)
    client("try_step", label=label)
    client("keep_step")
    assert client.events_of("resumable", client.events) == [{"type": "resumable", "run": None}]
    assert client.error("resume").startswith("Cannot continue")


def test_a_fine_tune_ends_the_stopped_run_and_undo_fine_tune_brings_it_back(digits, never_stopped):
    page = new_page(digits)
    stop_after(page, 5, RUN)
    for index in range(6):
        page("inspect_heldout", index=index)
        page("add_digit", label=int(page.data.y_heldout[index]))
    fine_tune = {"steps": 2, "batch_size": 8, "own_pool": 100, "bundled_pool": 256}
    page("fine_tune", config=fine_tune)  # stopped: the model is as it was, and so is its run
    page("stop")
    page("step")
    assert page.session.current.resumable()["step"] == 5
    page.run("fine_tune", config=fine_tune)
    assert page.events_of("resumable")[-1]["run"] is None and page.error("resume").startswith("Cannot continue")
    undo = page("save")["undo"]
    assert serialize.run_from_bytes(bytes(undo))[1]["step"] == 5  # kept with the model, for a reload

    reloaded = new_page(digits)  # a reload: the fine-tuned model, and the one before it to undo to
    reloaded("load", page("save")["bytes"])
    reloaded("keep_undo", undo)
    reloaded("undo_fine_tune")
    assert reloaded.events_of("resumable", reloaded.events)[0]["run"]["step"] == 5
    finish(reloaded)
    assert same_weights(reloaded.model.get_weights(), never_stopped[1][0])


def test_a_run_with_your_digits_joined_continues_with_them_and_is_refused_when_they_changed(client, digits):
    for index in range(5):
        client("inspect_heldout", index=index)
        client("add_digit", label=int(client.data.y_heldout[index]))
    config = {**RUN, "epochs": 1, "train_size": 300}
    unstopped = new_page(digits)
    for index in range(5):
        unstopped("inspect_heldout", index=index)
        unstopped("add_digit", label=int(unstopped.data.y_heldout[index]))
    unstopped.run("train", config=config, join_digits=True)

    client("train", config=config, join_digits=True)
    for _ in range(3):
        client("step")
    client("stop")
    client("step")
    resumable = client.session.current.resumable()
    assert resumable["joined"] and resumable["config"]["train_size"] == 300  # as the form asked for it
    kept = client("save")["bytes"]
    client("remove_digit", index=0)
    client("try_step", label=int(client.data.y_heldout[4]))  # on the digit inspected last
    message = client.error("resume")
    assert message == ("Cannot continue the stopped run: it trained on 5 of your digits joined to the bundled ones, "
                       "and your digits changed since. Press Train to start a new run")
    assert client("undo_step") == {"steps": 1}  # refused: the step tried is still there to undo,
    assert client.session.current.resumable() == resumable  # and the stopped run too
    assert client("save")["bytes"] == kept

    reloaded = new_page(digits)  # a reload with the same digits continues it
    for index in range(5):
        reloaded("inspect_heldout", index=index)
        reloaded("add_digit", label=int(reloaded.data.y_heldout[index]))
    reloaded("load", kept)
    _, rest = finish(reloaded)
    assert rest[0]["step"] == 4 and rest[-1]["ended"] and rest[-1]["step"] == rest[-1]["total_steps"]
    assert same_weights(reloaded.model.get_weights(), unstopped.model.get_weights())


def test_a_model_whose_run_had_other_heldout_digits_loads_without_continue(client, digits):
    other = PageClient.of(*digits, heldout=300, seed=1)  # another split: other held-out digits
    stop_after(other, 3, RUN)
    reply = client("load", other("save")["bytes"])
    assert reply["run"] == "other digits" and client.session.current.resumable() is None
    assert client.events_of("resumable", client.events) == []
    assert client.error("resume").startswith("Cannot continue: the current model has no stopped run")


def test_the_model_file_the_page_writes_for_a_run_puts_its_recipe_in_the_metadata(client):
    stop_after(client, 2, RUN)
    stopped = client.session.current.stopped
    model, state = serialize.run_from_bytes(model_file(client.model, stopped))
    assert model.metadata == {"trained_with": {**pycnn.TrainingConfig.defaults(), **RUN}} and state["step"] == 2
    assert model_file(client.model) == client.model.to_bytes()  # without a run: the plain model file


def test_a_run_stopped_before_its_first_batch_leaves_nothing_to_continue(client):
    client("train", config=RUN)
    client("stop")
    client("step")
    assert client.session.current.resumable() is None
    assert client.events_of("resumable") == []


def test_the_page_and_the_command_line_continue_each_others_stopped_runs(subset_dir, tmp_path, monkeypatch):
    """The page's digits are `python -m pycnn train --data subset`'s, split the same way: a run stopped in the
    page is finished by `train --resume`, and one stopped by `train --max-steps` is continued in the page."""
    from pycnn import cli
    monkeypatch.setenv("PYCNN_DATA", str(subset_dir))
    files = [subset_dir / "subset-images-idx3-ubyte.gz", subset_dir / "subset-labels-idx1-ubyte.gz"]
    page_run = {**RUN, "shards": 4}
    unstopped = PageClient(pycnn.page.Session.from_files(*files))
    unstopped.run("train", config=page_run)
    page = PageClient(pycnn.page.Session.from_files(*files))
    stop_after(page, 5, page_run)
    (tmp_path / "page.npz").write_bytes(bytes(page("save")["bytes"]))
    assert cli.main(["train", "--resume", str(tmp_path / "page.npz"), "-o", str(tmp_path / "done.npz")]) == 0
    assert same_weights(pycnn.load(str(tmp_path / "done.npz")).get_weights(), unstopped.model.get_weights())

    settings = ["--epochs", "2", "--batch-size", "64", "--train-size", "512", "--seed", "3", "--shards", "4"]
    assert cli.main(["train", *settings, "-o", str(tmp_path / "cli.npz")]) == 0
    assert cli.main(["train", *settings, "--max-steps", "11", "-o", str(tmp_path / "part.npz")]) == 0
    page("load", (tmp_path / "part.npz").read_bytes())
    assert page.session.current.resumable()["step"] == 11
    finish(page)
    assert same_weights(page.model.get_weights(), pycnn.load(str(tmp_path / "cli.npz")).get_weights())
