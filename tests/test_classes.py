"""pycnn.classes: transfer and from-scratch training for your own classes (learning a toy set of shapes
neither network has seen, the frozen layers untouched, the cached features against the frozen network
computed in full, determinism, a batch per call), the honest cross-validated scores against a plain
reference, refusals, and `python -m pycnn train --classes` / `evaluate --classes` end to end."""
import dataclasses

import numpy as np
import pytest

import pycnn
from pycnn import classes, cli
from pycnn.classes import DrawingTrainer, FromScratch, ScratchConfig, Transfer, TransferConfig
from pycnn.project import Project
from pycnn.yourdigits import split_head

NAMES = ["ring", "cross", "bar", "\u25b3"]
FAST = TransferConfig(steps=60, copies=4)
FAST_SCRATCH = ScratchConfig(steps=80, lr=0.01)


def shapes(per_class, seed):
    """A toy set of 4 classes no digit network was trained on: rings, crosses, horizontal bars and triangles,
    each drawn at a random size, place and thickness -> x (N, 1, 28, 28) float32, y (N,)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((28, 28))
    x = np.zeros((4 * per_class, 1, 28, 28), np.float32)
    y = np.repeat(np.arange(4), per_class)
    for i, label in enumerate(y):
        cy, cx = rng.uniform(11, 17, 2)
        size, width = rng.uniform(6, 9), rng.uniform(1.0, 2.0)
        dy, dx = rows - cy, cols - cx
        if label == 0:
            distance = np.abs(np.hypot(dy, dx) - size)
        elif label == 1:
            distance = np.minimum(np.abs(dy - dx), np.abs(dy + dx)) / np.sqrt(2)
            distance = np.where(np.maximum(np.abs(dy), np.abs(dx)) <= size, distance, 99)
        elif label == 2:
            distance = np.where(np.abs(dx) <= size, np.abs(dy), 99)
        else:  # a triangle's outline: its three sides
            corners = [(cy - size, cx), (cy + size, cx - size), (cy + size, cx + size)]
            distance = np.min([_segment(rows, cols, corners[j], corners[(j + 1) % 3]) for j in range(3)], axis=0)
        x[i, 0] = np.clip(width - distance, 0, 1)
    return x, y


def _segment(rows, cols, a, b):
    """Distance of every pixel to the segment a-b."""
    (ay, ax), (by, bx) = a, b
    t = np.clip(((rows - ay) * (by - ay) + (cols - ax) * (bx - ax)) / ((by - ay) ** 2 + (bx - ax) ** 2), 0, 1)
    return np.hypot(rows - (ay + t * (by - ay)), cols - (ax + t * (bx - ax)))


@pytest.fixture(scope="module")
def toy():
    """8 drawings of each shape to learn from, 40 others of each to read."""
    return shapes(8, seed=1), shapes(40, seed=2)


@pytest.fixture(scope="module")
def base(trained_seed_model):
    """The network transferred from: the seed network after two epochs of digits."""
    return trained_seed_model[0]


# ---- transfer ---------------------------------------------------------------------------------------
def test_transfer_learns_shapes_the_digit_network_never_saw_and_keeps_its_filters_bit_for_bit(base, toy):
    (x, y), (x_test, y_test) = toy
    before = base.get_weights()
    model = classes.transfer(base, x, y, NAMES, FAST)
    assert all(np.array_equal(a, b) for a, b in zip(before, base.get_weights()))  # the model given is untouched
    assert np.array_equal(model.layers[0].params["W"], base.layers[0].params["W"])  # the conv layer, kept
    assert np.array_equal(model.layers[0].params["b"], base.layers[0].params["b"])
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense",
                                                               "ReLU", "Dense"]
    assert model.class_names == NAMES and model.n_classes() == 4
    accuracy = classes.evaluate(model, x_test, y_test)["accuracy"]
    assert accuracy >= 0.9, f"read {accuracy:.1%} of the shapes it was not trained on"
    assert model.metadata["classes"]["method"] == "transfer"


def test_the_kept_model_computes_the_frozen_layers_then_the_trained_head(base, toy):
    """A plain reference: the frozen layers' features, then the head's two dense layers by hand."""
    (x, y), (x_test, _) = toy
    model = classes.transfer(base, x, y, NAMES, FAST)
    body, _ = split_head(base)
    features = body.forward(x_test).reshape(len(x_test), -1).astype(np.float64)
    hidden, out = model.layers[4].params, model.layers[6].params
    logits = np.maximum(features @ hidden["W"] + hidden["b"], 0) @ out["W"] + out["b"]
    np.testing.assert_allclose(model.forward(x_test), logits, rtol=1e-4, atol=1e-4)


def test_training_the_head_on_cached_features_equals_training_the_frozen_network(base, toy):
    (x, y), _ = toy
    config = dataclasses.replace(FAST, steps=15)
    body, _ = split_head(base)
    features = body.forward(x)
    rng = np.random.default_rng(0)
    head_layers = [pycnn.Flatten(), pycnn.Dense(1690, 16, rng=rng), pycnn.ReLU(), pycnn.Dense(16, 4, rng=rng)]
    head = pycnn.Sequential(head_layers, input_shape=features.shape[1:])
    full = pycnn.Sequential([*pycnn.Sequential.from_config(body.get_config()).layers,
                             *pycnn.Sequential.from_config(head.get_config()).layers], input_shape=(1, 28, 28))
    full.set_weights(body.get_weights() + head.get_weights())
    full.freeze(len(body.layers))
    DrawingTrainer(head, features, y, config, 4, augment=False).run()
    DrawingTrainer(full, x, y, config, 4, augment=False).run()
    weights = full.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(weights[:2], body.get_weights()))
    for a, b in zip(weights[2:], head.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_job_run_a_batch_per_call_ends_as_one_run_does_and_reports_its_phases(base, toy):
    (x, y), _ = toy
    whole = Transfer(base, x, y, NAMES, FAST)
    whole.run()
    stepped = Transfer(base, x, y, NAMES, FAST)
    assert stepped.progress()["phase"] == "preparing" and stepped.prepare_steps == 1  # 32 drawings and 4 copies of each
    phases = []
    while not stepped.done:
        report = stepped.run(max_batches=1)
        phases.append(report["phase"])
        assert report["step"] == len(phases) and report["total_steps"] == stepped.total_steps
    assert len(phases) == stepped.total_steps == stepped.prepare_steps + 4 * FAST.steps  # 3 folds and the head kept
    assert phases[0] == "measuring" and phases[-1] == "done" and phases.count("training") == FAST.steps - 1
    assert all(np.array_equal(a, b) for a, b in zip(whole.model.get_weights(), stepped.model.get_weights()))
    assert whole.result()["evaluation"] == stepped.result()["evaluation"]


def test_the_same_seed_gives_the_same_model_and_another_seed_another(base, toy):
    (x, y), _ = toy
    a, b = (classes.transfer(base, x, y, NAMES, FAST).get_weights() for _ in range(2))
    c = classes.transfer(base, x, y, NAMES, dataclasses.replace(FAST, seed=1)).get_weights()
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[-2], c[-2])


# ---- the honest score ------------------------------------------------------------------------------------
def test_the_cross_validated_score_scores_each_drawing_once_with_a_model_that_never_saw_it(base, toy):
    (x, y), _ = toy
    job = Transfer(base, x, y, NAMES, FAST)
    job.run()
    evaluation = job.result()["evaluation"]
    assert evaluation["method"] == "3-fold cross-validation" and evaluation["scored"] == len(y) == 32
    # a plain reference: each fold's head trained by hand on the features of the other folds' drawings and copies
    predicted = np.full(len(y), -1)
    for fold in range(3):
        config = dataclasses.replace(FAST, seed=FAST.seed + 1 + fold)
        trainer = job._trainer_for(job.fold != fold, config)
        trainer.run()
        test = np.flatnonzero(job.fold == fold)
        predicted[test] = trainer.model.predict(job.features[test])
    assert evaluation["correct"] == int(np.sum(predicted == y))
    confusion = np.zeros((4, 4), int)
    for label, read in zip(y, predicted):
        confusion[label, read] += 1
    assert evaluation["confusion"] == confusion.tolist()
    assert evaluation["accuracy"] == pytest.approx(np.trace(confusion) / 32)


def test_from_many_drawings_on_one_held_back_fold_is_scored():
    x, y = shapes(30, seed=3)
    job = FromScratch("seed", x, y, NAMES, dataclasses.replace(FAST_SCRATCH, steps=5, holdback_from=100))
    assert job.scoring == "held back 1/3 of the drawings" and len(job.runs) == 2
    job.run()
    assert job.result()["evaluation"]["scored"] == np.count_nonzero(job.fold == 0) == 40


def test_evaluate_matches_a_plain_count_and_lists_the_most_confident_mistakes_first(base, toy):
    (x, y), (x_test, y_test) = toy
    model = classes.transfer(base, x[::4], y[::4], NAMES, dataclasses.replace(FAST, steps=3, copies=0))  # a poor one
    result = classes.evaluate(model, x_test, y_test)
    proba = model.predict_proba(x_test)
    read = proba.argmax(axis=1)
    assert result["accuracy"] == pytest.approx(np.mean(read == y_test))
    assert result["mistake_count"] == int(np.sum(read != y_test)) > 0
    mistakes = result["mistakes"]
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
    for m in mistakes:
        assert y_test[m["index"]] == m["label"] != m["predicted"] == read[m["index"]]
        assert m["label_name"] == NAMES[m["label"]] and m["confidence"] == pytest.approx(proba[m["index"]].max())
    assert result["per_class"][0] == pytest.approx(np.mean(read[y_test == 0] == 0))


def test_a_class_drawn_once_is_scored_by_a_fold_that_never_saw_it_and_counted(base, toy):
    (x, y), _ = toy
    keep = np.flatnonzero((y != 3) | (np.arange(len(y)) == np.flatnonzero(y == 3)[0]))  # one triangle
    job = Transfer(base, x[keep], y[keep], NAMES, dataclasses.replace(FAST, steps=10))
    job.run()
    assert job.result()["evaluation"]["untaught"] == 1
    assert job.result()["counts"] == [8, 8, 8, 1]


# ---- from scratch -----------------------------------------------------------------------------------------
def test_from_scratch_learns_the_shapes_with_a_preset_sized_for_the_classes(toy):
    (x, y), (x_test, y_test) = toy
    model = classes.from_scratch("seed", x, y, NAMES, FAST_SCRATCH)
    assert model.layers[-1].params["W"].shape == (1690, 4) and model.class_names == NAMES
    assert classes.evaluate(model, x_test, y_test)["accuracy"] >= 0.85


def test_from_scratch_takes_a_layer_list_and_a_models_architecture(toy):
    (x, y), _ = toy
    layers = pycnn.preset("seed").get_config()["layers"]
    a = classes.from_scratch(layers, x, y, NAMES, dataclasses.replace(FAST_SCRATCH, steps=3))
    b = classes.from_scratch(pycnn.preset("seed"), x, y, NAMES, dataclasses.replace(FAST_SCRATCH, steps=3))
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


# ---- refusals ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, match", [
    (lambda x, y: (x, y, NAMES[:1]), "there must be at least 2 classes, got 1"),
    (lambda x, y: (x, y, NAMES + ["ring "]), "'ring' and 'ring' are the same name"),
    (lambda x, y: (x[y != 2], y[y != 2], NAMES), "every class needs a drawing to learn from; none yet of 'bar'"),
    (lambda x, y: (x, y + 1, NAMES), "y must be class indices 0-3 \\(the 4 classes\\), got 1..4"),
    (lambda x, y: (x[:, :, :27], y, NAMES), "x must have shape \\(N, 1, 28, 28\\)"),
    (lambda x, y: (x, y[:-1], NAMES), "y must be 32 class indices"),
])
def test_training_data_that_does_not_fit_is_refused_for_both_ways(base, toy, change, match):
    (x, y), _ = toy
    for start in (lambda *a: Transfer(base, *a, FAST), lambda *a: FromScratch("seed", *a, FAST_SCRATCH)):
        with pytest.raises(ValueError, match=match):
            start(*change(x, y))


@pytest.mark.parametrize("start, match", [
    (lambda x, y: Transfer(pycnn.Sequential([pycnn.Dense(784, 10)]), x, y, NAMES),
     "transfer needs a trained model \\(a Sequential that knows its input shape\\)"),
    (lambda x, y: FromScratch("resnet", x, y, NAMES), "preset must be one of seed, two-conv"),
    (lambda x, y: FromScratch([{"class": "Flatten", "config": {}}], x, y, NAMES),
     "the network needs a Dense layer to give one score per class"),
    (lambda x, y: Transfer(pycnn.seed_model(0), x, y, NAMES, TransferConfig(copies=-1)),
     "copies must be an int from 0 to 1000, got -1"),
    (lambda x, y: Transfer(pycnn.seed_model(0), x, y, NAMES, ScratchConfig.from_dict({"elastic": 9})),
     "elastic must be a number from 0 to 4, got 9"),
])
def test_a_network_or_recipe_that_cannot_be_used_is_refused(toy, start, match):
    (x, y), _ = toy
    with pytest.raises(ValueError, match=match):
        start(x, y)


def test_a_run_that_diverges_begins_again_at_half_the_learning_rate(toy):
    (x, y), _ = toy
    job = FromScratch("seed", x, y, NAMES, dataclasses.replace(FAST_SCRATCH, lr=1.0, optimizer="sgd"), evaluate=False)
    steps = []
    job.run(callback=lambda progress: steps.append(progress["step"]))
    result = job.result()
    assert (result["restarts"], result["lr"], result["steps"]) == (1, 0.5, FAST_SCRATCH.steps)
    assert job.model.metadata["classes"]["recipe"]["lr"] == 0.5
    assert steps[-1] == FAST_SCRATCH.steps and steps.count(1) == 2  # the run began again from its first step
    assert np.all(np.isfinite(job.model.predict_proba(x)))


def test_a_run_that_diverges_at_every_rate_tried_raises_and_keeps_nothing(toy):
    (x, y), _ = toy
    job = FromScratch("seed", x, y, NAMES, dataclasses.replace(FAST_SCRATCH, lr=1.0, optimizer="adam"), evaluate=False)
    with pytest.raises(pycnn.TrainingDiverged, match="from scratch training diverged, at learning rates from 1 down "
                                                     "to 0.125; nothing was kept"):
        job.run()
    assert job.model is None


# ---- the command line ----------------------------------------------------------------------------------------
@pytest.fixture
def files(base, toy, tmp_path):
    (x, y), (x_test, y_test) = toy
    Project(NAMES, x, y).save(tmp_path / "shapes.npz")
    Project(NAMES, x_test, y_test).save(tmp_path / "others.npz")
    base.save(tmp_path / "digits.npz")
    return tmp_path


def run_main(argv, capsys):
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_transfer_trains_a_model_naming_the_classes_and_reports_its_honest_score(files, capsys):
    status, out, err = run_main(["train", "--classes", files / "shapes.npz", "--transfer", files / "digits.npz",
                                 "--steps", "60", "-o", files / "shapes-model.npz"], capsys)
    assert status == 0, err
    assert "4 classes of" in err and "(ring 8, cross 8, bar 8, \u25b3 8): 3-fold cross-validation" in err
    assert out.splitlines()[0] == "on drawings held back from training (3-fold cross-validation):"
    assert out.splitlines()[1].startswith("accuracy ") and "/32)" in out.splitlines()[1]
    assert out.strip().endswith("(classes: ring, cross, bar, \u25b3)")
    model = pycnn.load(str(files / "shapes-model.npz"))
    assert model.class_names == NAMES and model.metadata["transfer_from"] == "digits.npz"
    status, out, err = run_main(["evaluate", files / "shapes-model.npz", "--classes", files / "others.npz"], capsys)
    assert status == 0, err
    accuracy = float(out.splitlines()[1].split()[1].rstrip("%")) / 100
    assert accuracy >= 0.9
    status, out, _ = run_main(["summary", files / "shapes-model.npz"], capsys)
    assert out.strip().endswith("Classes: ring, cross, bar, \u25b3")


def test_cli_from_scratch_trains_the_preset_for_the_classes(files, capsys):
    status, out, err = run_main(["train", "--classes", files / "shapes.npz", "--preset", "seed", "--steps", "20",
                                 "--no-evaluate", "-o", files / "scratch.npz"], capsys)
    assert status == 0, err
    assert "the seed network from scratch" in err and "held back" not in out
    assert pycnn.load(str(files / "scratch.npz")).class_names == NAMES


@pytest.mark.parametrize("args, message", [
    (["--epochs", "3"], "--classes trains on the project's drawings: --epochs does not apply"),
    (["--transfer", "digits.npz", "--preset", "seed"], "--transfer starts from a trained model's features"),
    (["--steps", "0"], "steps must be an int from 1 to 100000, got 0"),
    (["--transfer", "digits.npz", "-o", "shapes.npz"], "would overwrite the --classes file: write the model elsewhere"),
])
def test_cli_refuses_options_that_do_not_fit_a_project_in_one_line(files, capsys, args, message):
    before = (files / "shapes.npz").read_bytes()
    argv = ["train", "--classes", files / "shapes.npz", "-o", files / "out.npz",
            *[files / a if a.endswith(".npz") else a for a in args]]
    status, _, err = run_main(argv, capsys)
    assert status == 2 and err.count("\n") == 1 and message in err
    assert not (files / "out.npz").exists() and (files / "shapes.npz").read_bytes() == before


def test_cli_refuses_a_bad_project_and_a_model_of_other_classes_naming_them(files, capsys):
    (files / "bad.npz").write_bytes(b"PK\x03\x04 not a project")
    status, _, err = run_main(["train", "--classes", files / "bad.npz", "-o", files / "out.npz"], capsys)
    assert status == 2 and f"{files / 'bad.npz'}: not a valid pycnn project file" in err
    status, _, err = run_main(["evaluate", files / "digits.npz", "--classes", files / "others.npz"], capsys)
    assert status == 2 and "reads the classes 0, 1, 2" in err and "has ring, cross, bar, \u25b3" in err
    status, _, err = run_main(["train", "--transfer", files / "digits.npz", "-o", files / "out.npz"], capsys)
    assert status == 2 and "--transfer: only with --classes PROJECT.npz" in err
