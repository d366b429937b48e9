"""The command line (`python -m pycnn train | evaluate`) refuses bad model files, bad data and
bad settings with one line on stderr and exit status 2: no traceback, no code run, no file written.

Most cases call `pycnn.cli.main` in-process (what `python -m pycnn` runs); a few run the real
`python -m pycnn` in a child process to check the exit status and stderr end to end."""
import builtins
import gzip
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pycnn
from pycnn import cli

from model_files import npy, npy_with_header, with_config, with_member

ROOT = Path(__file__).resolve().parents[1]


# ---- crafting files (the same kinds as tests/test_serialize.py, written to disk) -------------
GOOD = pycnn.seed_model(seed=0).to_bytes()


def nan_weights():
    w = np.ones((10, 1, 3, 3), np.float32)
    w.flat[3] = np.nan
    return with_member(GOOD, "0.W.npy", npy(w))


class CreatesFile:
    """Unpickling this object creates the file at self.path (a harmless stand-in for any code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


def pickled_weights(marker):
    payload = np.empty(10, dtype=object)
    payload[:] = [CreatesFile(marker)] * 10
    return with_member(GOOD, "0.b.npy", npy(payload, allow_pickle=True))


def run_main(argv, capsys):
    """(exit status, stdout, stderr) of `python -m pycnn *argv`, run in-process."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_refused(status, err, *needles):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pycnn: error: "), err  # one line, no traceback
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(autouse=True)
def subset_env(subset_dir, monkeypatch):
    monkeypatch.setenv("PYCNN_DATA", str(subset_dir))


# ---- evaluate: bad model files ---------------------------------------------------------------
BAD_MODELS = {
    "random": (os.urandom(4096), "not a pycnn model file"),
    "truncated": (GOOD[: len(GOOD) // 2], "not a valid pycnn model file"),
    "empty": (b"", "the model file is empty"),
    "other-version": (with_config(GOOD, lambda c: c.update(version=2)), "unsupported model format version 2"),
    "wrong-layer-shapes": (with_config(GOOD, lambda c: c["layers"][4]["config"].update(in_features=1000)),
                           "Dense expects input of shape (1000,), got (1690,)"),
    "nan-weights": (nan_weights(), "0.W.npy: weights contain NaN or infinity"),
    "billion-element-header": (
        with_member(GOOD, "4.W.npy", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }",
                                               bytes(1000))),
        "4.W.npy: shape must be (1690, 10), got (1000000000,)"),
    "trillion-parameter-config": (with_config(GOOD, lambda c: c["layers"][4]["config"].update(in_features=10 ** 6,
                                                                                        out_features=10 ** 6)),
                                  "at most 10,000,000 are allowed"),
}


@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_evaluate_refuses_a_bad_model_file_in_one_line(kind, tmp_path, capsys):
    data, message = BAD_MODELS[kind]
    path = tmp_path / f"{kind}.npz"
    path.write_bytes(data)
    status, out, err = run_main(["evaluate", path], capsys)
    assert_refused(status, err, message)
    assert out == ""


def test_evaluate_refuses_pickled_weights_without_running_them(tmp_path, capsys):
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(CreatesFile(tmp_path / "control"))).close()
    assert (tmp_path / "control").exists()  # control: this payload does run when unpickled
    path = tmp_path / "evil.npz"
    path.write_bytes(pickled_weights(marker))
    status, _, err = run_main(["evaluate", path], capsys)
    assert_refused(status, err, "0.b.npy: dtype must be float32")
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(CreatesFile(marker)))
    status, _, err = run_main(["summary", raw], capsys)
    assert_refused(status, err, "not a pycnn model file")
    assert not marker.exists()


def test_evaluate_refuses_a_200_mb_file_before_reading_it(tmp_path, capsys):
    path = tmp_path / "huge.npz"
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04")
        f.truncate(200 * 2 ** 20)  # sparse: costs no disk
    status, _, err = run_main(["evaluate", path], capsys)
    assert_refused(status, err, "the model file is 209,715,200 bytes; a pycnn model file is at most 67,108,864")


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_evaluate_names_a_missing_model_file(where, tmp_path, capsys):
    path = tmp_path / "nope.npz" if where == "missing" else tmp_path
    status, _, err = run_main(["evaluate", path], capsys)
    assert_refused(status, err, str(path))


def test_python_m_pycnn_evaluate_refuses_a_pickle_payload_end_to_end(tmp_path):
    """The real command in a child process: exit status 2, one line on stderr, nothing run."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickled_weights(marker))
    result = subprocess.run([sys.executable, "-m", "pycnn", "evaluate", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("pycnn: error: 0.b.npy: dtype must be float32")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not marker.exists()


# ---- missing or malformed data files ---------------------------------------------------------
def idx(array):
    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()


def mnist_folder(folder, prefix, images, labels, gz=False):
    folder.mkdir(exist_ok=True)
    for name, data in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def good_images(n=8):
    return idx(np.random.default_rng(0).integers(0, 256, (n, 28, 28)))


def good_labels(n=8):
    return idx(np.arange(n) % 10)


@pytest.mark.parametrize("case", ["no-folder", "empty-folder", "bad-magic", "truncated", "truncated-gzip",
                                  "count-mismatch", "labels-out-of-range"])
def test_train_refuses_missing_or_malformed_data_naming_the_file(case, tmp_path, capsys):
    folder = tmp_path / "mnist"
    needles = {
        "no-folder": ("no such directory", str(folder)),
        "empty-folder": ("no train-images-idx3-ubyte[.gz] in", str(folder)),
        "bad-magic": ("train-images-idx3-ubyte", "not an IDX file"),
        "truncated": ("train-images-idx3-ubyte", "header says (8, 28, 28)"),
        "truncated-gzip": ("train-images-idx3-ubyte.gz", "header says (8, 28, 28)"),
        "count-mismatch": ("8 images but 7 labels",),
        "labels-out-of-range": ("labels must be digits 0..9, found 60",),
    }[case]
    if case == "empty-folder":
        folder.mkdir()
    elif case == "bad-magic":
        mnist_folder(folder, "train", b"garbage, not IDX" * 4, good_labels())
    elif case == "truncated":
        mnist_folder(folder, "train", good_images()[:-100], good_labels())
    elif case == "truncated-gzip":
        mnist_folder(folder, "train", good_images(), good_labels(), gz=True)
        path = folder / "train-images-idx3-ubyte.gz"
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif case == "count-mismatch":
        mnist_folder(folder, "train", good_images(8), good_labels(7))
    elif case == "labels-out-of-range":
        mnist_folder(folder, "train", good_images(), idx([3, 1, 4, 1, 5, 9, 2, 60]))
    output = tmp_path / "model.npz"
    status, _, err = run_main(["train", "--data", folder, "--epochs", "1", "--output", output], capsys)
    assert_refused(status, err, *needles)
    assert not output.exists()


def test_evaluate_refuses_malformed_test_data_naming_the_file(tmp_path, capsys):
    model = tmp_path / "model.npz"
    model.write_bytes(GOOD)
    folder = mnist_folder(tmp_path / "mnist", "t10k", good_images(), good_labels())
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (9).to_bytes(4, "big") + bytes(3))
    status, _, err = run_main(["evaluate", model, "--data", folder], capsys)
    assert_refused(status, err, "t10k-labels-idx1-ubyte")


# ---- bad settings ----------------------------------------------------------------------------
BAD_SETTINGS = [
    (["--epochs", "0"], "epochs must be an int from 1 to 1000, got 0"),
    (["--epochs", "-2"], "epochs must be an int from 1 to 1000, got -2"),
    (["--epochs", "10000000000"], "epochs must be an int from 1 to 1000"),
    (["--batch-size", "0"], "batch_size must be an int from 1 to 4096, got 0"),
    (["--lr", "0"], "lr must be a number from 1e-07 to 10"),
    (["--lr", "-1"], "lr must be a number from 1e-07 to 10"),
    (["--lr", "nan"], "lr must be a number from 1e-07 to 10, got nan"),
    (["--lr", "inf"], "lr must be a number from 1e-07 to 10, got inf"),
    (["--lr", "1e30"], "lr must be a number from 1e-07 to 10"),
    (["--train-size", "10", "--batch-size", "32"], "batch_size (32) is larger than the training set (10)"),
    (["--shards", "0"], "shards must be an int from 1 to 64, got 0"),
    (["--shards", "65"], "shards must be an int from 1 to 64, got 65"),
    (["--shards", "8", "--batch-size", "4"], "shards (8) is larger than batch_size (4): every shard of a batch needs"),
]


@pytest.mark.parametrize("args, message", BAD_SETTINGS, ids=[" ".join(args) for args, _ in BAD_SETTINGS])
def test_train_refuses_bad_settings(args, message, tmp_path, capsys):
    output = tmp_path / "model.npz"
    status, _, err = run_main(["train", *args, "--output", output], capsys)
    assert_refused(status, err, message)
    assert not output.exists()


@pytest.mark.parametrize("args", [["--lr", "abc"], ["--epochs", "two"], ["--batch-size", ""], ["--max-steps", "2.5"]],
                         ids=["lr abc", "epochs two", "batch-size empty", "max-steps 2.5"])
def test_non_numeric_settings_are_refused_by_the_argument_parser(args, capsys):
    status, _, err = run_main(["train", *args], capsys)
    assert status == 2
    assert f"argument {args[0]}: invalid" in err and "Traceback" not in err


# ---- once library bugs (reported here as strict xfails, fixed in pycnn/ by d6f1ffa) -----------
def test_an_unwritable_output_is_refused_before_training(tmp_path, capsys, monkeypatch):
    runs = []
    real_run = cli.Trainer.run
    monkeypatch.setattr(cli.Trainer, "run", lambda self, *a, **k: runs.append(1) or real_run(self, *a, **k))
    output = tmp_path / "missing-folder" / "model.npz"
    status, _, err = run_main(["train", "--epochs", "1", "--train-size", "64", "--output", output], capsys)
    assert_refused(status, err, "cannot write the model to", str(output))
    assert runs == [], "trained first, then failed to save"


@pytest.mark.parametrize("args, limit", [(["--seed", "-1"], "from 0 to 4294967295"), (["--train-size", "0"], "from 1 to 10000000")],
                         ids=["seed", "train-size"])
def test_integer_limits_are_printed_exactly(args, limit, capsys):
    status, _, err = run_main(["train", *args], capsys)
    assert_refused(status, err, limit)


# ---- choosing the network ----------------------------------------------------------------------
def test_train_with_a_preset_saves_that_network(subset_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYCNN_DATA", str(subset_dir))
    out = tmp_path / "two-conv.npz"
    status, _, err = run_main(["train", "--preset", "two-conv", "--epochs", "1", "--train-size", "512",
                               "--no-augment", "-o", out], capsys)
    assert status == 0, err
    assert "the two-conv network (12,810 params)" in err
    assert pycnn.load(str(out)).get_config() == pycnn.presets.PRESETS["two-conv"]


def test_train_with_an_arch_file_saves_that_network(subset_dir, tmp_path, capsys, monkeypatch):
    """--arch reads a network as JSON: Sequential.get_config(), which the page exports too."""
    import json
    monkeypatch.setenv("PYCNN_DATA", str(subset_dir))
    config = pycnn.presets.PRESETS["lenet"]
    arch = tmp_path / "lenet.json"
    arch.write_text(json.dumps(config))
    out = tmp_path / "lenet.npz"
    status, _, err = run_main(["train", "--arch", arch, "--epochs", "1", "--train-size", "256", "-o", out], capsys)
    assert status == 0, err
    assert pycnn.load(str(out)).get_config() == config
    status, summary, _ = run_main(["summary", "--arch", arch], capsys)
    assert status == 0 and "Total params: 61,706" in summary


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read the network"),
    ('{"input_shape": [1, 28, 28], "dtype": "float32", "layers": [{"class": "Dense", "config": {"in_features": 5, '
     '"out_features": 10}}]}', "layer 0 (Dense): Dense expects input of shape (5,), got (1, 28, 28)"),
    ('{"input_shape": [1, 28, 28], "dtype": "float32", "layers": [{"class": "Nope", "config": {}}]}',
     "layer 0 is not a known pycnn layer"),
])
def test_a_bad_arch_file_is_refused_with_one_line(tmp_path, capsys, content, message):
    arch = tmp_path / "bad.json"
    arch.write_text(content)
    status, _, err = run_main(["train", "--arch", arch, "-o", tmp_path / "m.npz"], capsys)
    assert status == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()


def test_preset_and_arch_exclude_each_other(tmp_path, capsys):
    status, _, err = run_main(["train", "--preset", "seed", "--arch", tmp_path / "x.json"], capsys)
    assert status == 2 and "not allowed with argument" in err


# ---- your digits: --extra and finetune -----------------------------------------------------------
def your_digits_file(tmp_path, n=30):
    """A digits file of n held-out subset digits (the page's Your digits, exported)."""
    from pycnn import datasets, yourdigits
    x, y, split = datasets.load_subset()
    _, _, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    path = tmp_path / "my-digits.npz"
    yourdigits.save(path, x_test[::50][:n], y_test[::50][:n])
    return path


def test_train_with_extra_digits_joins_them_and_says_so(tmp_path, capsys):
    extra = your_digits_file(tmp_path)
    out = tmp_path / "model.npz"
    status, _, err = run_main(["train", "--epochs", "1", "--train-size", "512", "--no-augment", "--extra", extra,
                               "--extra-repeat", "4", "-o", out], capsys)
    assert status == 0, err
    assert f"on 632 digits (with the 30 digits of {extra}, 4x)" in err
    assert pycnn.load(str(out)).metadata["extra"] == {"file": "my-digits.npz", "digits": 30, "repeat": 4}


def test_evaluate_with_extra_digits_scores_them_too(tmp_path, capsys):
    model = tmp_path / "model.npz"
    model.write_bytes(GOOD)
    extra = your_digits_file(tmp_path)
    status, out, err = run_main(["evaluate", model, "--extra", extra], capsys)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and "on the held-out subset" in lines[0]
    assert lines[1].startswith(f"{model}: accuracy ") and lines[1].endswith(f"on the digits of {extra}")


def test_finetune_saves_the_fine_tuned_model_and_prints_before_and_after(tmp_path, capsys):
    model = tmp_path / "model.npz"
    model.write_bytes(GOOD)
    extra = your_digits_file(tmp_path)
    out = tmp_path / "tuned.npz"
    status, printed, err = run_main(["finetune", model, "--extra", extra, "--steps", "5", "-o", out], capsys)
    assert status == 0, err
    assert "3-fold cross-validation: 4 fine-tunes of 5 batches of 32" in err
    lines = printed.strip().splitlines()
    assert lines[0].startswith("your digits: ") and "(3-fold cross-validation;" in lines[0]
    assert lines[1].startswith("held-out digits: ") and "(1,500 digits)" in lines[1]
    tuned = pycnn.load(str(out))
    assert tuned.metadata["fine_tuned"]["digits"] == 30
    assert not all(np.array_equal(a, b) for a, b in zip(tuned.get_weights(), pycnn.from_bytes(GOOD).get_weights()))


@pytest.mark.parametrize("command", ["train", "evaluate", "finetune"])
def test_a_bad_digits_file_is_refused_in_one_line_naming_it(command, tmp_path, capsys):
    from pycnn import yourdigits
    from model_files import members, rezip
    files = members(yourdigits.to_bytes(np.zeros((3, 28, 28)), [1, 2, 3]))
    files["digits.json"] = b'{"format": "pycnn-digits", "version": 3, "count": 3}'
    extra = tmp_path / "newer.npz"
    extra.write_bytes(rezip(files))
    model = tmp_path / "model.npz"
    model.write_bytes(GOOD)
    out = tmp_path / "out.npz"
    argv = {"train": ["train", "--epochs", "1", "--train-size", "64", "-o", out],
            "evaluate": ["evaluate", model], "finetune": ["finetune", model, "-o", out]}[command]
    status, _, err = run_main([*argv, "--extra", extra], capsys)
    assert_refused(status, err,
                   f"{extra}: this digits file is from a newer pycnn (version 3); this pycnn reads version 1")
    assert not out.exists()


def test_finetune_refuses_an_empty_digits_file(tmp_path, capsys):
    from pycnn import yourdigits
    model = tmp_path / "model.npz"
    model.write_bytes(GOOD)
    extra = tmp_path / "none.npz"
    yourdigits.save(extra, np.zeros((0, 28, 28)), [])
    status, _, err = run_main(["finetune", model, "--extra", extra, "-o", tmp_path / "out.npz"], capsys)
    assert_refused(status, err, "no digits of yours to fine-tune on")


# ---- data-parallel training: --shards ----------------------------------------------------------------
def test_python_m_pycnn_train_with_shards_makes_the_sharded_run(subset_dir, tmp_path):
    """The real command in a child process trains the run TrainingConfig(shards=4) makes here, bit for bit."""
    out = tmp_path / "sharded.npz"
    settings = ["--preset", "seed", "--epochs", "1", "--train-size", "300", "--batch-size", "64", "--seed", "2"]
    result = subprocess.run([sys.executable, "-m", "pycnn", "train", *settings, "--shards", "4", "-o", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYCNN_DATA": str(subset_dir)})
    assert result.returncode == 0, result.stderr
    assert "batch 64, adam lr 0.02 (onecycle), augmented, 4 shards" in result.stderr
    saved = pycnn.load(str(out))
    assert saved.metadata["trained_with"]["shards"] == 4

    x, y = cli._load_data("subset", "train")
    model = pycnn.preset("seed", seed=2)
    pycnn.Trainer(model, x, y, pycnn.TrainingConfig(epochs=1, train_size=300, batch_size=64, seed=2, shards=4)).run()
    assert all(np.array_equal(a, b) for a, b in zip(saved.get_weights(), model.get_weights()))


def test_python_m_pycnn_train_refuses_a_bad_shards_value_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pycnn", "train", "--shards", "-3", "-o", str(tmp_path / "m.npz")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "pycnn: error: shards must be an int from 1 to 64, got -3\n" and result.stdout == ""


# ---- stopping a run and continuing it: --max-steps, Ctrl-C, --resume ----------------------------------
RUN = ["--preset", "seed", "--epochs", "2", "--train-size", "300", "--batch-size", "32", "--seed", "3"]


def pycnn_train(args, subset_dir, **kwargs):
    return subprocess.run([sys.executable, "-m", "pycnn", "train", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "PYCNN_DATA": str(subset_dir)}, **kwargs)


def same_run(a, b):
    """The same weights, bit for bit, and the same metadata but for the seconds taken."""
    a, b = pycnn.load(str(a)), pycnn.load(str(b))
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    assert {k: v for k, v in a.metadata.items() if k != "seconds"} == \
        {k: v for k, v in b.metadata.items() if k != "seconds"}
    return True


@pytest.fixture(scope="module")
def never_stopped(subset_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("never_stopped") / "full.npz"
    result = pycnn_train([*RUN, "--shards", "2", "-o", out], subset_dir)
    assert result.returncode == 0, result.stderr
    return out


def test_python_m_pycnn_train_stopped_by_max_steps_and_resumed_makes_the_run_never_stopped(never_stopped, subset_dir,
                                                                                            tmp_path):
    part = tmp_path / "part.npz"
    result = pycnn_train([*RUN, "--shards", "2", "--max-steps", 5, "-o", part], subset_dir)
    assert result.returncode == 0, result.stderr
    assert f"stopped at step 5 of 20 (epoch 1, batch 5 of 10)" in result.stdout
    assert f"continue with python -m pycnn train --resume {part}" in result.stdout
    assert pycnn.serialize.load_run(part)[1]["step"] == 5
    result = pycnn_train(["--resume", part, "--max-steps", 8], subset_dir)  # into epoch 2, in place
    assert result.returncode == 0, result.stderr
    assert "continuing the run of" in result.stderr and "stopped at step 13 of 20" in result.stdout
    done = tmp_path / "done.npz"
    result = pycnn_train(["--resume", part, "--seed", 3, "--data", "subset", "-o", done], subset_dir)  # same values
    assert result.returncode == 0, result.stderr
    assert pycnn.serialize.load_run(done)[1] is None  # finished: nothing left to continue
    assert same_run(done, never_stopped)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_python_m_pycnn_train_interrupted_by_ctrl_c_saves_the_run_and_resumes_it(subset_dir, tmp_path):
    run = ["--preset", "seed", "--epochs", "40", "--train-size", "400", "--batch-size", "16", "--no-augment"]
    part, full = tmp_path / "part.npz", tmp_path / "full.npz"
    child = subprocess.Popen([sys.executable, "-m", "pycnn", "train", *run, "-o", str(part)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYCNN_DATA": str(subset_dir)})
    assert child.stderr.readline().startswith("training the seed network")  # the handler is in place
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=180)
    assert child.returncode == 0, err
    assert "stopping after this batch" in err and "stopped at step" in out
    assert not pycnn.serialize.load_run(part)[1] is None
    result = pycnn_train(["--resume", part], subset_dir)
    assert result.returncode == 0, result.stderr
    result = pycnn_train([*run, "-o", full], subset_dir)
    assert result.returncode == 0, result.stderr
    assert same_run(part, full)


@pytest.fixture
def stopped_file(tmp_path, capsys):
    out = tmp_path / "part.npz"
    status, _, err = run_main(["train", "--preset", "seed", "--epochs", 2, "--batch-size", 4, "--max-steps", 3,
                               "--no-augment", "-o", out], capsys)
    assert status == 0, err
    return out


@pytest.mark.parametrize("args, needles", [
    (["--lr", "0.5", "--epochs", "3"], ["these would change it: --epochs 3 (the run's: 2), --lr 0.5 (the run's: 0.02)"]),
    (["--augment"], ["--augment True (the run's: False)"]),
    (["--preset", "lenet"], ["--preset (the network is the file's)"]),
    (["--arch", "network.json"], ["--arch (the network is the file's)"]),
    (["--extra", "digits.npz"], ["the run joined no digits file: leave out --extra"]),
], ids=["settings", "augment", "network", "arch", "extra"])
def test_resume_refuses_options_that_would_change_the_run_naming_them(stopped_file, args, needles, capsys):
    status, _, err = run_main(["train", "--resume", stopped_file, *args], capsys)
    assert_refused(status, err, *needles)


def test_resume_refuses_other_data_by_its_fingerprint(stopped_file, tmp_path, capsys):
    mnist_folder(tmp_path / "other", "train", good_images(), good_labels())
    status, _, err = run_main(["train", "--resume", stopped_file, "--data", tmp_path / "other"], capsys)
    assert_refused(status, err, f"cannot continue the run of {stopped_file}: the training data is not the run's: "
                                "the run had 8,500 samples", "got 8 samples")


def test_resume_refuses_a_finished_run_and_a_file_without_a_run(tmp_path, capsys):
    plain = tmp_path / "plain.npz"
    plain.write_bytes(GOOD)
    status, _, err = run_main(["train", "--resume", plain], capsys)
    assert_refused(status, err, "holds no run state to continue", "a finished run has nothing left")


@pytest.mark.parametrize("steps", [0, -3])
def test_max_steps_must_be_positive(steps, capsys, tmp_path):
    status, _, err = run_main(["train", "--max-steps", steps, "-o", tmp_path / "m.npz"], capsys)
    assert_refused(status, err, f"--max-steps must be a positive int, got {steps}")
    assert not (tmp_path / "m.npz").exists()
