"""The page's Python side: the data split, the current model and the current run.

The web worker (web/worker.js) makes one Session and calls its methods through `dispatch`,
which turns every reply into JSON text plus one buffer of packed little-endian float32
arrays (and raw bytes, e.g. a model file). The rules at that boundary:
- field names are the Python names (snake_case) on both sides: nothing is translated;
- an array crosses as {"shape": [...], "f32": offset}, bytes as {"u8": offset, "size": n}
  (byte offsets into the buffer, each a multiple of 4);
- non-finite floats become null, numpy scalars plain numbers;
- a ValueError becomes {"error": message}: bad settings, a bad model file, a bad index.
The session assumes nothing about the network beyond its input (1, 28, 28) and 10 classes.
"""
import json
import math
import time

import numpy as np

from . import __version__, codegen, datasets, explain, preprocess, yourdigits
from .checks import Choice, Int, check_args
from .layers import LAYERS, Conv2D, MaxPool2D, ReLU
from .model import Sequential
from .presets import DEFAULT_PRESET, PRESETS, preset
from .serialize import model_from_bytes
from .optimizers import OPTIMIZERS, Adam
from .training import Trainer, TrainingConfig, TrainingDiverged
from .yourdigits import FineTuneConfig, FineTuneJob

INPUT_SHAPE = (1, 28, 28)
CLASSES = 10
ESTIMATE_EVAL_IMAGES = 600  # held-out digits timed for the evaluation part of an epoch estimate
ESTIMATE_BATCHES = 12  # batches timed, after 8 of warm-up: within ~1% of 40 of them, and the worker is free sooner

# ---- the network editor ----------------------------------------------------------------------
PRESET_LABELS = {
    "two-conv-dense": "Two conv layers (16, 32 filters) and a dense layer of 64",
    "two-conv": "Two conv layers (16, 32 filters)",
    "seed": "The seed post's network (one conv layer)",
    "lenet": "LeNet-5-like (5x5 filters, dense 120-84)",
}
# What the editor offers of each layer kind: narrower than the library's bounds, so that whatever
# can be built fits the page and trains in reasonable time. Arguments not listed are fixed
# (stride 1, 2x2 pooling) or follow from the layer before (in_channels, in_features).
EDITOR_ARGS = {
    "Conv2D": {"filters": Int(1, 64), "kernel_size": Choice((3, 5)), "padding": Choice(("valid", "same"))},
    "ReLU": {},
    "MaxPool2D": {},
    "Flatten": {},
    "Dense": {"out_features": Int(1, 512)},
}
FIXED_ARGS = {"Conv2D": {"stride": 1}, "MaxPool2D": {"pool_size": 2, "stride": 2}}
MAX_EDITOR_LAYERS = 16
MAX_EDITOR_PARAMS = 1_000_000
# forward multiply-adds per digit: the two-conv preset needs 0.7 M; 5 M trains at about a minute per
# epoch of 8,500 digits in the page on a 2-core laptop
MAX_EDITOR_WORK = 5_000_000
TRAIN_WORK_FACTOR = 3  # a training step costs about three forward passes (forward, two products back)
MY_DIGITS_FILE = "my-digits.npz"


class Session:
    """What the page needs: the data split, the current model, the current run."""

    # the methods `dispatch` may run: everything the worker asks for
    CALLS = ("info", "start", "step", "evaluate", "filters", "model_bytes", "load", "reset", "estimate",
             "predict", "inspect_heldout", "next_heldout", "heldout_cell", "analyse", "network", "check_network",
             "set_network", "arithmetic", "saliency", "try_step", "keep_step", "undo_step", "python_code",
             "export_script", "add_digit", "remove_digit", "my_digits", "export_digits", "import_digits",
             "start_fine_tune", "undo_fine_tune", "keep_undo")

    def __init__(self, images, labels, heldout=1500, seed=0, model=None):
        """images: uint8 (N, 28, 28) or floats (N, 1, 28, 28); labels: (N,) digits; heldout: digits kept out."""
        # split the uint8 digits, then scale the parts: the float32 copy of all of them is never
        # made, which keeps ~31 MB out of the worker's memory (wasm memory never shrinks)
        x_train, self.y_train, x_heldout, self.y_heldout = datasets.train_test_split(
            images, np.asarray(labels), test_size=heldout, seed=seed)
        self.x_train, self.x_heldout = _as_floats(x_train), _as_floats(x_heldout)
        self.model = model if model is not None else preset(DEFAULT_PRESET, seed=0)
        self.trainer = None
        self.job = None  # the FineTuneJob in flight
        # the learner's digits ("your digits"): the 28x28 images the network saw, and their labels
        self.my_x = np.zeros((0, *INPUT_SHAPE), np.float32)
        self.my_y = np.zeros(0, np.int64)
        self.speed = None  # multiply-adds per second of training and of evaluation, once measured
        self.split = {"heldout": int(heldout), "seed": int(seed)}  # for the generated code
        self._new_model(0 if model is None else None)

    @classmethod
    def from_files(cls, images_path, labels_path, heldout=1500, seed=0):
        """The bundled subset's IDX files (plain or .gz) -> Session."""
        images = datasets.read_idx_pixels(images_path)
        labels = datasets.read_idx_labels(labels_path)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        return cls(images, labels, int(heldout), int(seed))

    def info(self):
        """Counts, the training defaults and the limits the page validates its form against."""
        return {
            "train_count": len(self.y_train),
            "heldout_count": len(self.y_heldout),
            "defaults": TrainingConfig.defaults(),
            "limits": TrainingConfig.limits(),
            "editor": editor_spec(),
            "network": self.network(),
            "my_digits": {"max_digits": yourdigits.MAX_DIGITS, "max_file_bytes": yourdigits.MAX_FILE_BYTES,
                          "file_name": MY_DIGITS_FILE, "fine_tune": FineTuneConfig.defaults()},
            "numpy": np.__version__,
            "pycnn": __version__,
        }

    # ---- training ------------------------------------------------------------------------
    def start(self, config, join_digits=False):
        """Begin a run of the current model with config (TrainingConfig's fields); ValueError if invalid.
        join_digits: your digits join the training digits (yourdigits.join, repeated auto_repeat times)."""
        cfg = TrainingConfig.from_dict(config)
        x, y, repeat = self.x_train, self.y_train, 0
        if join_digits:
            if not len(self.my_y):
                raise ValueError("there are no digits of yours to join: add some first")
            if cfg.train_size is not None and cfg.train_size < len(y):
                # the bundled subset Trainer would pick, so that the joined digits are not left out of it
                keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(y))[:cfg.train_size])
                x, y = x[keep], y[keep]
            repeat = yourdigits.auto_repeat(len(y), len(self.my_y))
            x, y = yourdigits.join(x, y, self.my_x, self.my_y, repeat)
            cfg = TrainingConfig(**{**cfg.to_dict(), "train_size": None})
        self._end_trial()
        trainer = Trainer(self.model, x, y, cfg, validation_data=(self.x_heldout, self.y_heldout))
        self.trainer, self.job, self.undo = trainer, None, None  # the model moves on: no fine-tune to undo
        started = {"total_steps": trainer.total_steps, "batches_per_epoch": trainer.batches_per_epoch}
        return {**started, "joined": {"digits": len(self.my_y), "repeat": repeat}} if join_digits else started

    def step(self):
        """Train one batch of the run or of the fine-tune -> the trainer's progress report, or {"diverged": why}
        (weights restored). A fine-tune's report has the same fields ("epoch": its run of "epochs", "batch": the
        step in that run) plus "phase", and on its last batch "fine_tune": the result (FineTuneJob.result())."""
        if self.job is not None:
            return self._fine_tune_step()
        if self.trainer is None:
            raise ValueError("no training run: start one first")
        try:
            return self.trainer.run(max_batches=1)
        except TrainingDiverged as err:
            self.trainer = None
            return {"diverged": str(err)}

    # ---- your digits -----------------------------------------------------------------------
    # The learner's own drawings, each the 28x28 image the network saw, with the digit it is. They
    # belong to the learner, not to a model: a new model, a run or a fine-tune keeps them. The page
    # keeps them across visits as the digits file (pycnn.yourdigits) and imports it back.
    def add_digit(self, label):
        """Add the digit inspected last as a drawing of `label` -> my_digits()."""
        label = _int("label", label)
        if not 0 <= label < CLASSES:
            raise ValueError(f"label must be a digit from 0 to {CLASSES - 1}, got {label}")
        x = self._inspected()
        if len(self.my_y) >= yourdigits.MAX_DIGITS:
            raise ValueError(f"you have {len(self.my_y):,} digits, the most the page keeps: remove some first")
        self.my_x = np.concatenate([self.my_x, np.asarray(x, np.float32)[None]])
        self.my_y = np.append(self.my_y, np.int64(label))
        return self.my_digits()

    def remove_digit(self, index):
        """Remove drawing `index` (its place in my_digits' lists) -> my_digits()."""
        index = _int("index", index)
        if not 0 <= index < len(self.my_y):
            raise ValueError(f"there is no drawing {index}: you have {len(self.my_y)}")
        self.my_x, self.my_y = np.delete(self.my_x, index, axis=0), np.delete(self.my_y, index)
        return self.my_digits()

    def my_digits(self):
        """{"count", "counts" (10: drawings of each digit), "labels" (N), "images" (N, 28, 28), "file": the
        digits file's bytes (what the page keeps)}."""
        # bincount takes intp only (int32 in Pyodide's 32-bit WebAssembly)
        counts = np.bincount(self.my_y.astype(np.intp), minlength=CLASSES)
        return {"count": len(self.my_y), "counts": counts.tolist(),
                "labels": self.my_y.tolist(), "images": self.my_x[:, 0], "file": self._digits_file()}

    def export_digits(self):
        """The digits file (what `python -m pycnn train --extra FILE` reads) -> {"bytes", "file_name", "count"}."""
        return {"bytes": self._digits_file(), "file_name": MY_DIGITS_FILE, "count": len(self.my_y)}

    def import_digits(self, data, replace=False):
        """Add the digits of a digits file (replace: instead of the kept ones) -> my_digits() plus "added".
        Not a valid digits file, or more digits than the page keeps: ValueError, the kept digits unchanged."""
        x, y = yourdigits.from_bytes(data)
        kept = 0 if replace else len(self.my_y)
        if kept + len(y) > yourdigits.MAX_DIGITS:
            raise ValueError(f"the file has {len(y):,} digits; with the {kept:,} you have that is more than the "
                             f"{yourdigits.MAX_DIGITS:,} the page keeps")
        if replace:
            self.my_x, self.my_y = x, y
        else:
            self.my_x, self.my_y = np.concatenate([self.my_x, x]), np.concatenate([self.my_y, y])
        return {**self.my_digits(), "added": len(y)}

    def _digits_file(self):
        return yourdigits.to_bytes(self.my_x, self.my_y)

    # ---- fine-tuning on your digits --------------------------------------------------------
    def start_fine_tune(self, config=None):
        """Begin fine-tuning the current model on your digits (a FineTuneJob; config: FineTuneConfig's fields),
        run by step() like training -> {"total_steps", "batches_per_epoch" (steps of one of its runs), "runs",
        "method", "count"}. The current model is left as it is until the last step makes the fine-tuned copy
        the current model (undo_fine_tune brings this one back); a fine-tune stopped before changes nothing."""
        cfg = FineTuneConfig.from_dict({} if config is None else config)
        if not len(self.my_y):
            raise ValueError("there are no digits of yours to fine-tune on: add some first")
        self._end_trial()
        job = FineTuneJob(self.model, self.my_x, self.my_y, self.x_train, self.y_train, self.x_heldout,
                          self.y_heldout, cfg)
        self.trainer, self.job = None, job
        return {"total_steps": job.total_steps, "batches_per_epoch": cfg.steps, "runs": len(job.runs),
                "method": job.method, "count": len(self.my_y)}

    def _fine_tune_step(self):
        job = self.job
        try:
            progress = job.run(max_batches=1)
        except TrainingDiverged as err:
            self.job = None
            return {"diverged": str(err)}
        report = {"step": progress["step"], "total_steps": job.total_steps, "epoch": progress["run"],
                  "epochs": progress["runs"], "batch": progress["batch"], "batches_per_epoch": progress["batches"],
                  "losses": progress["losses"], "accuracy": None,
                  "images": len(progress["losses"]) * job.config.batch_size, "epoch_results": [],
                  "phase": progress["phase"], "done": job.done}
        if job.done:
            report["fine_tune"] = self._finish_fine_tune()
        return report

    def _finish_fine_tune(self):
        """The fine-tuned copy becomes the current model -> the job's result."""
        job, self.job = self.job, None
        self.undo = {"model": self.model, "model_seed": self.model_seed}
        self.model, self.model_seed = job.model, None  # its weights are no longer drawn from a seed
        self.trial, self.step_optimizers = None, {}  # the digit inspected last stays: teaching goes on
        return job.result()

    def undo_fine_tune(self):
        """The model from before the last fine-tune is the current one again, exactly -> its held-out evaluation."""
        if self.undo is None:
            raise ValueError("there is no fine-tune to undo (a run, a new network or a loaded model since ends it)")
        undo, self.undo = self.undo, None
        self.model, self.model_seed = undo["model"], undo["model_seed"]
        self.trainer, self.trial, self.step_optimizers = None, None, {}
        return self.evaluate()

    def evaluate(self):
        """Loss and accuracy on the held-out digits."""
        return self.model.evaluate(self.x_heldout, self.y_heldout)

    def estimate(self, config, batches=ESTIMATE_BATCHES):
        """Images per second of training and of evaluation, timed on a copy of the model."""
        cfg = TrainingConfig.from_dict({**config, "epochs": 1})
        copy = Sequential.from_config(self.model.get_config())
        trainer = Trainer(copy, self.x_train, self.y_train, cfg)
        trainer.run(max_batches=8)  # warm-up: buffers get allocated, hot wasm code tiers up
        start = time.perf_counter()
        report = trainer.run(max_batches=int(batches))
        train_s = time.perf_counter() - start
        n_eval = min(ESTIMATE_EVAL_IMAGES, len(self.y_heldout))
        copy.evaluate(self.x_heldout[:100], self.y_heldout[:100])  # warm-up
        start = time.perf_counter()
        copy.evaluate(self.x_heldout[:n_eval], self.y_heldout[:n_eval])
        eval_s = time.perf_counter() - start
        if train_s > 0 and eval_s > 0:
            work = self.model.work()
            self.speed = {"train": report["images"] * TRAIN_WORK_FACTOR * work / train_s, "eval": n_eval * work / eval_s}
        return {
            "train_images_per_second": report["images"] / train_s if train_s > 0 else None,
            "eval_images_per_second": n_eval / eval_s if eval_s > 0 else None,
        }

    # ---- the network ------------------------------------------------------------------------
    def network(self):
        """The current model's network for the editor: its layers, the preset it is (or None), its full
        config (Sequential.get_config(): what `python -m pycnn train --arch` reads), its summary."""
        config = self.model.get_config()
        layers, editable = editor_layers(config)
        names = [name for name, architecture in PRESETS.items() if name in PRESET_LABELS
                 and architecture["layers"] == config["layers"]]
        return {"layers": layers, "editable": editable, "preset": names[0] if names else None, "config": config,
                **self._summary(self.model)}

    def check_network(self, layers):
        """The summary of the network the editor describes, or a ValueError saying which layer does not fit."""
        return self._summary(Sequential.from_config(network_config(layers)))

    def set_network(self, layers, seed=0):
        """Make the editor's network the current model, with fresh weights -> network(). Not evaluated:
        the page shows no accuracy for fresh weights, and the held-out digits take a second in Pyodide."""
        self.model = Sequential.from_config(network_config(layers), seed=_int("seed", seed))
        self.trainer = None
        self._new_model(seed)
        return self.network()

    def _summary(self, model):
        """Rows of the Keras-style summary, totals, and seconds per epoch on this machine once measured."""
        work = model.work()
        seconds = None
        if self.speed:
            seconds = (len(self.y_train) * TRAIN_WORK_FACTOR * work / self.speed["train"]
                       + len(self.y_heldout) * work / self.speed["eval"])
        return {"rows": model.summary_rows(), "total_params": model.count_params(), "work": work,
                "seconds_per_epoch": seconds}

    # ---- the model -----------------------------------------------------------------------
    def filters(self):
        """The weights of every conv layer: [{"layer": index, "weights": (F, C, k, k)}, ...]."""
        return {"conv_layers": [{"layer": i, "weights": layer.params["W"]}
                                for i, layer in enumerate(self.model.layers) if isinstance(layer, Conv2D)]}

    def model_bytes(self):
        """The model file (the same format `python -m pycnn train` writes) -> {"bytes", "undo": the model file
        Undo fine-tune would bring back, or None}. The page keeps both, so Undo works after a reload."""
        return {"bytes": self.model.to_bytes(), "undo": None if self.undo is None else self.undo["model"].to_bytes()}

    def keep_undo(self, data):
        """After load(): the model file `data` is what Undo fine-tune brings back (as kept by the page)."""
        model = model_from_bytes(data)
        if model.input_shape != self.model.input_shape or model.n_classes() != self.model.n_classes():
            raise ValueError("the model to undo to does not fit the page")
        self.undo = {"model": model, "model_seed": None}
        return {"undo": True}

    def load(self, data):
        """Make the model file `data` the current model -> its held-out evaluation; ValueError if it won't do."""
        model = model_from_bytes(data)
        if model.input_shape != INPUT_SHAPE:
            raise ValueError(f"this model does not fit the page: it reads images of shape {model.input_shape}, "
                             f"the page's digits are {INPUT_SHAPE}")
        classes = model.n_classes()
        if classes != CLASSES:
            raise ValueError(f"this model does not fit the page: it has {classes} classes, the page needs {CLASSES}")
        self.model = model
        self.trainer = None
        self._new_model(None)
        return self.evaluate()

    def reset(self, seed=0):
        """Fresh random weights for the current architecture -> the held-out evaluation."""
        self.model = Sequential.from_config(self.model.get_config(), seed=int(seed))
        self.trainer = None
        self._new_model(int(seed))
        return self.evaluate()

    # ---- looking inside --------------------------------------------------------------------
    def predict(self, data, width, height):
        """data: width*height uint8 ink levels (0 = paper), row by row -> inspection, or {"empty": True}."""
        width, height = int(width), int(height)
        if len(data) != width * height:
            raise ValueError(f"predict needs width*height = {width * height} pixels, got {len(data)}")
        gray = np.frombuffer(data, dtype=np.uint8).reshape(height, width)
        x = preprocess.to_mnist(gray)
        if x is None:
            return {"empty": True}
        return self._inspect(x)

    def inspect_heldout(self, index):
        """Held-out digit `index` -> inspection plus its label and index."""
        index = _int("index", index)
        if not 0 <= index < len(self.y_heldout):
            raise ValueError(f"held-out index must be in 0..{len(self.y_heldout) - 1}, got {index}")
        return {**self._inspect(self.x_heldout[index]), "label": int(self.y_heldout[index]), "index": index}

    def next_heldout(self, label=None, after=-1):
        """The first held-out digit after index `after` (of digit `label`, when given; wrapping round)
        -> its inspection: a way to ask the network about a digit without drawing it."""
        after = _int("after", after)
        if label is not None and _int("label", label) not in range(CLASSES):
            raise ValueError(f"label must be a digit from 0 to {CLASSES - 1}, got {label}")
        candidates = np.flatnonzero(self.y_heldout == label) if label is not None else np.arange(len(self.y_heldout))
        later = candidates[candidates > after]
        return self.inspect_heldout(int(later[0] if len(later) else candidates[0]))

    def heldout_cell(self, label, predicted, max_digits=40):
        """The held-out digits of one cell of the confusion matrix: true `label` read as `predicted`,
        most confident first -> {"label", "predicted", "count", "digits": [{index, confidence}], "images" (k, 28, 28)}."""
        label, predicted, max_digits = _int("label", label), _int("predicted", predicted), _int("max_digits", max_digits)
        for name, value in (("label", label), ("predicted", predicted)):
            if not 0 <= value < CLASSES:
                raise ValueError(f"{name} must be a digit from 0 to {CLASSES - 1}, got {value}")
        probs = self.model.predict_proba(self.x_heldout)
        members = np.flatnonzero((self.y_heldout == label) & (probs.argmax(axis=1) == predicted))
        members = members[np.argsort(-probs[members, predicted], kind="stable")]
        shown = members[:max(0, max_digits)]
        return {"label": label, "predicted": predicted, "count": len(members),
                "digits": [{"index": int(i), "confidence": float(probs[i, predicted])} for i in shown],
                "images": self.x_heldout[shown, 0]}

    def _inspect(self, x):
        """x: (1, 28, 28) -> probabilities, the input and the feature maps of every conv block."""
        batch = np.asarray(x, dtype=self.model.dtype)[None]
        outputs = self.model.activations(batch)
        probs = _softmax(outputs[-1][0])
        self.inspected = batch[0]  # what arithmetic, saliency and try_step explain
        return {
            "probabilities": probs,
            "prediction": int(probs.argmax()),
            "input": batch[0, 0],
            "blocks": conv_blocks(self.model.layers, [out[0] for out in outputs]),
            "saliency": explain.saliency(self.model, batch[0], int(probs.argmax())),
        }

    def analyse(self, max_mistakes=40):
        """Confusion matrix (rows: true digit, columns: read as) and the most confident mistakes."""
        max_mistakes = _int("max_mistakes", max_mistakes)
        probs = self.model.predict_proba(self.x_heldout)
        pred = probs.argmax(axis=1)
        y = self.y_heldout
        confusion = np.zeros((CLASSES, CLASSES), dtype=np.int64)
        np.add.at(confusion, (y, pred), 1)
        wrong = np.flatnonzero(pred != y)
        order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:max(0, max_mistakes)]
        return {
            "count": len(y), "correct": int(np.count_nonzero(pred == y)), "wrong": len(wrong),
            "confusion": confusion.tolist(),
            "mistakes": [{"index": int(i), "label": int(y[i]), "predicted": int(pred[i]),
                          "confidence": float(probs[i, pred[i]])} for i in order],
            "mistake_images": self.x_heldout[order, 0],
        }

    # ---- see inside one step -----------------------------------------------------------------
    # These explain the digit inspected last (predict, inspect_heldout, next_heldout keep it). A step
    # is tried on the current model and can be undone exactly: the first try_step snapshots the
    # weights and the optimiser, later ones go on from there; keep_step drops the snapshot, undo_step
    # puts it back. A new model (set_network, load, reset) drops it; a run (start) undoes a step that
    # was not kept, so the model changes only when the learner keeps it.
    def arithmetic(self, layer, channel, row, col, grid="activated"):
        """One cell of conv layer `layer`'s map `channel` (grid "activated" or "pooled") for the digit
        inspected last -> explain.conv_arithmetic's reply (patch, weights, products, sum, bias, conv, relu, pooled...)."""
        return explain.conv_arithmetic(self.model, self._inspected(), layer, channel, row, col, grid)

    def saliency(self, digit):
        """d logit[digit] / d pixel for the digit inspected last -> {"digit", "logit", "probability", "gradient" (28, 28)}."""
        return explain.saliency(self.model, self._inspected(), digit)

    def try_step(self, label, lr=None, optimizer=None):
        """One training step on the digit inspected last, with `label` -> explain.training_step's reply
        plus "steps" (tried since the last keep or undo). The optimiser is the run's, its state carrying
        on; without a run, one of kind `optimizer` ("adam", "sgd"; None: the default) that these steps keep."""
        x = self._inspected()
        if self.trial is None:
            chosen = self.trainer.optimizer if self.trainer is not None else self._step_optimizer(optimizer)
            self.trial = {"snapshot": explain.snapshot(self.model, chosen), "optimizer": chosen, "steps": 0}
        reply = explain.training_step(self.model, self.trial["optimizer"], x, label, lr)
        self.trial["steps"] += 1
        return {**reply, "steps": self.trial["steps"]}

    def keep_step(self):
        """Keep the steps tried since the last keep or undo -> {"steps", "evaluation"} (held out)."""
        if self.trial is None:
            raise ValueError("there is no step to keep: take one with Step first")
        steps, self.trial = self.trial["steps"], None
        return {"steps": steps, "evaluation": self.evaluate()}

    def undo_step(self):
        """Put back the weights and optimiser state from before the steps tried -> {"steps": how many were undone}."""
        if self.trial is None:
            raise ValueError("there is no step to undo")
        steps = self.trial["steps"]
        self._end_trial()
        return {"steps": steps}

    def python_code(self, config):
        """The pycnn Python of the current network and the training settings `config` -> {"code",
        "seed": the seed its weights were drawn from, or None (a loaded model: the code uses seed 0)}."""
        return {"code": codegen.python_code(self.model.get_config(), config, **self._code_args()),
                "seed": self.model_seed}

    def export_script(self, config):
        """python_code as a script that trains the same way in CPython -> {"script", "file_name", "seed"}."""
        return {"script": codegen.export_script(self.model.get_config(), config, **self._code_args()),
                "file_name": codegen.SCRIPT_NAME, "seed": self.model_seed}

    def _new_model(self, seed):
        """A new current model, its weights drawn from `seed` (None: unknown): no step to undo, no digit to explain."""
        self.model_seed = seed
        self.undo = None  # {"model", "model_seed"} from before the last fine-tune, while it can be undone
        self.job = None
        self.trial = None  # {"snapshot", "optimizer", "steps"} while steps are tried
        self.step_optimizers = {}  # kind -> the optimiser of steps taken without a run
        self.inspected = None

    def _end_trial(self):
        """Undo the steps tried and not kept, if any."""
        if self.trial is not None:
            explain.restore(self.model, self.trial["optimizer"], self.trial["snapshot"])
            self.trial = None

    def _step_optimizer(self, kind):
        kind = TrainingConfig.optimizer if kind is None else kind
        if kind not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")
        if kind not in self.step_optimizers:
            lr, cls = TrainingConfig.lr, OPTIMIZERS[kind]  # each step passes its own lr
            self.step_optimizers[kind] = cls(lr) if cls is Adam else cls(lr, momentum=0.9)  # as Trainer makes them
        return self.step_optimizers[kind]

    def _inspected(self):
        if self.inspected is None:
            raise ValueError("there is no digit to explain: draw one or show a held-out digit first")
        return self.inspected

    def _code_args(self):
        return {"seed": 0 if self.model_seed is None else self.model_seed, "heldout": self.split["heldout"],
                "split_seed": self.split["seed"]}


def editor_spec():
    """What the page's network editor offers: the layer kinds and their arguments, the limits, the presets."""
    return {
        "kinds": {kind: {"summary_name": LAYERS[kind].summary_name, "args": {name: arg.spec() for name, arg in args.items()}}
                  for kind, args in EDITOR_ARGS.items()},
        "max_layers": MAX_EDITOR_LAYERS, "max_params": MAX_EDITOR_PARAMS, "max_work": MAX_EDITOR_WORK,
        "classes": CLASSES,
        "presets": {name: {"label": label, "layers": editor_layers(PRESETS[name])[0]} for name, label in PRESET_LABELS.items()},
        "default_preset": DEFAULT_PRESET,
    }


def editor_layers(config):
    """A model config -> (the editor's layers [{"class", "config"}], whether the editor can change them all)."""
    layers, editable = [], True
    for spec in config["layers"]:
        kind, full = spec["class"], spec["config"]
        args = EDITOR_ARGS.get(kind, {})
        layers.append({"class": kind, "config": {name: full[name] for name in args if name in full}})
        try:
            check_args(args, layers[-1]["config"])
            fixed = FIXED_ARGS.get(kind, {})
            editable &= kind in EDITOR_ARGS and all(full.get(name) == value for name, value in fixed.items())
        except ValueError:
            editable = False
    return layers, editable


def network_config(layers):
    """The editor's layers [{"class", "config"}] -> a full model config (the arguments that follow from
    the layer before filled in), or a ValueError that names the layer (counted from 1) and says why:
    it does not fit the layer before, the last layer is not the 10 digits, or the network is more
    than the page can hold or train in reasonable time. Nothing is allocated."""
    if not isinstance(layers, list) or not layers:
        raise ValueError("the network needs at least one layer")
    if len(layers) > MAX_EDITOR_LAYERS:
        raise ValueError(f"the page holds networks of at most {MAX_EDITOR_LAYERS} layers; this one has {len(layers)}")
    shape, full, sizes = INPUT_SHAPE, [], []  # sizes: (weights, multiply-adds per digit) of each layer
    for number, spec in enumerate(layers, 1):
        kind = spec.get("class") if isinstance(spec, dict) else None
        if kind not in EDITOR_ARGS:
            raise ValueError(f"layer {number}: the editor has no layer kind {kind!r} (it has {', '.join(EDITOR_ARGS)})")
        where = f"layer {number} ({kind})"
        if kind == "Dense" and len(shape) != 1:
            raise ValueError(f"{where} needs a flat input but gets {_shape(shape)}: add a Flatten layer before it")
        if kind in ("Conv2D", "MaxPool2D") and len(shape) != 3:
            raise ValueError(f"{where} works on images (channels, height, width) but gets the flat {_shape(shape)}: "
                             f"move it before the Flatten layer")
        try:
            config = {**check_args(EDITOR_ARGS[kind], spec.get("config") or {}), **FIXED_ARGS.get(kind, {}),
                      **LAYERS[kind].input_args(shape)}
            layer = LAYERS[kind].from_config(config)
            sizes.append((sum(math.prod(s) for s in layer.weight_shapes().values()), layer.work(shape)))
            shape = layer.output_shape(shape)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        full.append({"class": kind, "config": config})
    last = full[-1]
    if last["class"] != "Dense" or last["config"]["out_features"] != CLASSES:
        raise ValueError(f"layer {len(full)} ({last['class']}): the last layer must be a Dense layer with {CLASSES} "
                         f"units, one per digit")
    weights, work = (sum(column) for column in zip(*sizes))
    if weights > MAX_EDITOR_PARAMS:
        number = max(range(len(sizes)), key=lambda i: sizes[i][0]) + 1
        raise ValueError(f"layer {number} ({full[number - 1]['class']}) has {sizes[number - 1][0]:,} of the network's "
                         f"{weights:,} weights; the page holds at most {MAX_EDITOR_PARAMS:,}: give it fewer filters or "
                         f"units, or pool before it")
    if work > MAX_EDITOR_WORK:
        number = max(range(len(sizes)), key=lambda i: sizes[i][1]) + 1
        raise ValueError(f"the network needs {work / 1e6:.1f} M multiply-adds per digit, more than the "
                         f"{MAX_EDITOR_WORK / 1e6:.0f} M the page trains in reasonable time; layer {number} "
                         f"({full[number - 1]['class']}) alone needs {sizes[number - 1][1] / 1e6:.1f} M: give it "
                         f"fewer filters, or pool before it")
    return {"input_shape": list(INPUT_SHAPE), "dtype": "float32", "layers": full}


def _shape(shape):
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def conv_blocks(layers, outputs):
    """Feature maps of each conv block: [{"layer": i, "activated": (F, H, W), "pooled": (F, h, w) or None}].

    A block is a Conv2D and the ReLU and MaxPool2D right after it (in either order);
    "activated" is the conv output after the ReLU (the conv output itself without one) and
    "pooled" the block's output after its pool. outputs: each layer's output for one image.
    """
    blocks = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, Conv2D):
            continue
        end, has_relu, has_pool = i + 1, False, False
        while end < len(layers) and isinstance(layers[end], (ReLU, MaxPool2D)) and end - i <= 2:
            has_relu |= isinstance(layers[end], ReLU)
            has_pool |= isinstance(layers[end], MaxPool2D)
            end += 1
        conv_out = outputs[i]
        blocks.append({
            "layer": i,
            "activated": np.maximum(conv_out, 0) if has_relu else conv_out,
            "pooled": outputs[end - 1] if has_pool else None,
        })
    return blocks


def _as_floats(images):
    images = np.asarray(images)
    return datasets.scale(images) if images.dtype == np.uint8 else images.astype(np.float32)


def _softmax(logits):
    e = np.exp(logits - logits.max())
    return e / e.sum()


def _int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return int(value)


# ---- the boundary ------------------------------------------------------------------------------
def dispatch(session, method, args_json="{}", data=None):
    """session.<method>(**args[, data]) -> (JSON text, binary buffer); see the module docstring.

    args_json: a JSON object of keyword arguments; data: bytes (or a Pyodide proxy of a
    Uint8Array) passed as the `data` argument.
    """
    if method not in Session.CALLS:
        return encode({"error": f"unknown request {method!r}"})
    try:
        args = json.loads(args_json)
        if not isinstance(args, dict):
            raise ValueError("the arguments must be a JSON object")
        if data is not None:
            args["data"] = data.to_bytes() if hasattr(data, "to_bytes") else bytes(data)
        result = getattr(session, method)(**args)
    except ValueError as err:
        result = {"error": str(err)}
    return encode(result)


def encode(value):
    """A reply -> (JSON text, binary buffer): arrays as packed little-endian float32, bytes as bytes.

    Each array or bytes value is replaced by where it sits in the buffer: {"shape", "f32": byte
    offset} or {"u8": byte offset, "size"}; every part starts on a 4-byte boundary.
    """
    buffer = bytearray()

    def append(raw):
        buffer.extend(bytes(-len(buffer) % 4))
        offset = len(buffer)
        buffer.extend(raw)
        return offset

    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(item) for k, item in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(item) for item in v]
        if isinstance(v, np.ndarray):
            return {"shape": list(v.shape), "f32": append(np.ascontiguousarray(v, dtype="<f4").tobytes())}
        if isinstance(v, (bytes, bytearray, memoryview)):
            raw = bytes(v)
            return {"u8": append(raw), "size": len(raw)}
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.dumps(clean(value), allow_nan=False), bytes(buffer)
