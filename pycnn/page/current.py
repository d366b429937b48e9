"""The page's current model and what hangs on it, changed in one place (`replace`).

Besides the model: the seed its weights were drawn from (for the generated code), the model
Undo fine-tune brings back, the optimiser whose state goes with these weights (the last run's,
or the one of steps taken without a run), the run these weights are from when it stopped before
its end (its run state: Continue finishes it, see Runs.resume), the steps tried with See inside
one step and not yet kept or undone, and the digit inspected last (what those steps and the
explanations are about).
"""
from .. import explain, export
from ..checks import number
from ..layers import Conv2D
from ..model import Sequential
from ..optimizers import make_optimizer
from ..serialize import run_from_bytes
from ..training import TrainingConfig, fingerprint
from .protocol import request

INPUT_SHAPE = (1, 28, 28)
CLASSES = 10


class CurrentModel:
    """The model the page trains, shows and keeps, and the state that is only valid with it."""

    def __init__(self, session, model, seed):
        self.session = session
        self.inspected = None  # (1, 28, 28): the digit read last (predict, inspect_heldout, next_heldout)
        self.stopped = None  # the stopped run these weights are from: {"state", "recipe"} (see keep_run)
        self._heldout_print = {}  # dtype -> the held-out digits' fingerprint, as a run state records them
        self.replace(model, seed)

    def replace(self, model, seed, undo=None, keep_inspected=False, stopped=None):
        """Make `model` current, its weights drawn from `seed` (None: unknown): no step tried on it, no
        optimiser state yet; undo: {"model", "seed", "stopped"} that Undo fine-tune brings back, or None;
        stopped: the stopped run these weights are from (see keep_run), or None."""
        self.model, self.seed, self.undo = model, seed, undo
        self.optimizer = None  # the optimiser whose state goes with these weights: set by a run
        self.step_optimizers = {}  # kind -> the optimiser of steps taken without a run
        self.trial = None  # {"snapshot", "optimizer", "steps"} while steps are tried
        if not keep_inspected:
            self.inspected = None
        self.keep_run(stopped)

    def end_trial(self):
        """Undo the steps tried and not kept, if any (a run or a fine-tune starts from the kept model)."""
        if self.trial is not None:
            explain.restore(self.model, self.trial["optimizer"], self.trial["snapshot"])
            self.trial = None

    def digit(self):
        """The digit inspected last, or a ValueError that says how to get one."""
        if self.inspected is None:
            raise ValueError("there is no digit to explain: draw one or show a held-out digit first")
        return self.inspected

    def filters(self):
        """The weights of every conv layer: {"conv_layers": [{"layer": index, "weights": (F, C, k, k)}, ...]}."""
        return {"conv_layers": [{"layer": i, "weights": layer.params["W"]}
                                for i, layer in enumerate(self.model.layers) if isinstance(layer, Conv2D)]}

    def evaluate(self):
        """Loss and accuracy on the held-out digits."""
        data = self.session.data
        return self.model.evaluate(data.x_heldout, data.y_heldout)

    # ---- the stopped run these weights are from ---------------------------------------------
    def keep_run(self, stopped):
        """The stopped run these weights are from, which resume continues: {"state": its Trainer.run_state(),
        "recipe": how its training digits were made, as `python -m pycnn train` records it in the model's
        metadata ({"trained_with": the settings asked for, "extra": {"file", "digits", "repeat"} when digits
        were joined})}; None: none, or it ended. The page is told `resumable` when that changes."""
        if stopped is not None:  # a copy: the live optimiser's arrays go on changing (steps tried, a new run)
            state = stopped["state"]
            stopped = {"state": {**state, "arrays": {name: a.copy() for name, a in state["arrays"].items()}},
                       "recipe": dict(stopped["recipe"])}
        had = self.stopped is not None
        self.stopped = stopped
        if had or stopped is not None:
            self.session.tell("resumable", run=self.resumable())

    def resumable(self):
        """What Continue would finish, or None: {"step", "total_steps", "epoch", "epochs", "batch",
        "batches_per_epoch" (where the run stopped, as a step's progress says it), "config" (the run's
        settings as the page's form holds them), "joined" (your digits joined its training digits)}."""
        if self.stopped is None:
            return None
        state = self.stopped["state"]
        config = TrainingConfig.from_dict(state["config"])
        per_epoch = -(-state["data"]["size"] // config.batch_size)
        step = state["step"]
        asked = self.run_settings()
        return {"step": step, "total_steps": config.epochs * per_epoch, "epoch": max(1, -(-step // per_epoch)),
                "epochs": config.epochs, "batch": step % per_epoch or (per_epoch if step else 0),
                "batches_per_epoch": per_epoch,
                "config": {**asked.to_dict(), "train_size": asked.train_size or len(self.session.data.y_train)},
                "joined": self.run_joined() is not None}

    def run_settings(self):
        """The stopped run's settings as they were asked for: its recipe's "trained_with" (which keeps the
        number of training digits asked for when your digits joined them) when it is the run's, else its
        run state's."""
        config = TrainingConfig.from_dict(self.stopped["state"]["config"])
        try:
            asked = TrainingConfig.from_dict(self.stopped["recipe"]["trained_with"])
        except (KeyError, TypeError, ValueError):
            return config
        same = {**asked.to_dict(), "train_size": None} == {**config.to_dict(), "train_size": None}
        return asked if same else config

    def run_joined(self):
        """How your digits joined the stopped run's training digits ({"digits", "repeat"}), or None."""
        extra = self.stopped["recipe"].get("extra")
        if isinstance(extra, dict) and isinstance(extra.get("repeat"), int) and not isinstance(extra["repeat"], bool):
            return extra
        return None

    def fits_heldout(self, model, run_state):
        """Whether the validation data of `model`'s run state is the page's held-out digits (a cheap check at
        load; its training digits are checked when it continues)."""
        dtype = model.dtype.str
        if dtype not in self._heldout_print:
            data = self.session.data
            self._heldout_print[dtype] = fingerprint(model.as_input(data.x_heldout),
                                                     model.as_labels(data.y_heldout, len(data.y_heldout)))
        return run_state["validation"] == self._heldout_print[dtype]

    # ---- keeping it -----------------------------------------------------------------------
    @request()
    def save(self):
        """The model file (the format `python -m pycnn train` writes) -> {"bytes", "undo": the model file
        Undo fine-tune would bring back, or None}. The page keeps both, so Undo works after a reload. A model
        whose run stopped before its end carries that run (model file version 2), so it can be continued
        after a reload, or by `python -m pycnn train --resume`."""
        return self.files(self.stopped if self.trial is None else None)  # steps tried: not the run's weights

    def files(self, run=None):
        """save's reply, the model file carrying the run `run` ({"state", "recipe"}: the stopped run's, or
        the run in flight's at an epoch's end)."""
        undo = self.undo
        return {"bytes": model_file(self.model, run),
                "undo": None if undo is None else model_file(undo["model"], undo.get("stopped"))}

    @request()
    def export_model(self, format):
        """The current model for another runtime -> {"bytes", "file_name"}: format "onnx" (an .onnx file,
        input "input" NCHW (N, 1, 28, 28)) or "tfjs" (a zip of TensorFlow.js' model.json and model.weights.bin,
        input NHWC (N, 28, 28, 1)); both read grey levels / 255 (ink 1) and give the ten probabilities."""
        if format == "onnx":
            return {"bytes": export.to_onnx(self.model), "file_name": "pycnn-model.onnx"}
        if format == "tfjs":
            return {"bytes": export.tfjs_zip(self.model), "file_name": "pycnn-model-tfjs.zip"}
        raise ValueError(f"format must be one of {', '.join(export.FORMATS)}, got {format!r}")

    @request(then=("filters",))
    def load(self, data):
        """Make the model file `data` the current model -> {"evaluation"} on the held-out digits, plus "run"
        when the file carries a stopped run: "continues" (resume can continue it) or "other digits" (its
        held-out digits are not the page's: the model loads without it). A file that is not a model or does
        not fit the page: ValueError, and the current model stays."""
        model, state = run_from_bytes(data)
        if model.input_shape != INPUT_SHAPE:
            raise ValueError(f"this model does not fit the page: it reads images of shape {model.input_shape}, "
                             f"the page's digits are {INPUT_SHAPE}")
        classes = model.n_classes()
        if classes != CLASSES:
            raise ValueError(f"this model does not fit the page: it has {classes} classes, the page needs {CLASSES}")
        run = None if state is None else "continues" if self.fits_heldout(model, state) else "other digits"
        self.replace(model, None, stopped=stopped_run(model, state) if run == "continues" else None)
        return {"evaluation": self.evaluate(), **({"run": run} if run else {})}

    @request()
    def keep_undo(self, data):
        """After load: the model file `data` is what Undo fine-tune brings back (the page kept it with the
        model) -> {"undo": True}."""
        model, state = run_from_bytes(data)
        if model.input_shape != self.model.input_shape or model.n_classes() != self.model.n_classes():
            raise ValueError("the model to undo to does not fit the page")
        self.undo = {"model": model, "seed": None, "stopped": None if state is None else stopped_run(model, state)}
        return {"undo": True}

    @request(then=("filters",))
    def reset(self, seed=0):
        """Fresh random weights for the current network -> {"seed"}. Not evaluated: an untrained model reads
        about one digit in ten, and the page says it is untrained instead."""
        seed = number("seed", seed, 0, 2 ** 32 - 1, integer=True)
        self.replace(Sequential.from_config(self.model.get_config(), seed=seed), seed)
        return {"seed": seed}

    @request(then=("filters", "checkpoint"))
    def undo_fine_tune(self):
        """The model from before the last fine-tune is the current one again, exactly -> {"evaluation"}."""
        if self.undo is None:
            raise ValueError("there is no fine-tune to undo (a run, a new network or a loaded model since ends it)")
        undo = self.undo
        self.replace(undo["model"], undo["seed"], keep_inspected=True, stopped=undo.get("stopped"))
        return {"evaluation": self.evaluate()}

    # ---- see inside one step -------------------------------------------------------------
    # A step is tried on the current model and can be undone exactly: the first try_step
    # snapshots the weights and the optimiser, later ones go on from there; keep_step drops the
    # snapshot, undo_step puts it back. A new model drops it; a run undoes a step not kept.
    @request(then=("filters",))
    def try_step(self, label, lr=None, optimizer=None):
        """One training step on the digit inspected last, with `label` -> explain.training_step's reply
        plus "steps" (tried since the last keep or undo). The optimiser is the last run's, its state carrying
        on; without a run, one of kind `optimizer` ("adam", "sgd"; None: the default) that these steps keep."""
        if self.session.projects.open is not None:
            raise ValueError("a training step here trains the digit network: open the digits first")
        x = self.digit()
        if self.trial is None:
            chosen = self.optimizer or self._step_optimizer(optimizer)
            self.trial = {"snapshot": explain.snapshot(self.model, chosen), "optimizer": chosen, "steps": 0}
        reply = explain.training_step(self.model, self.trial["optimizer"], x, label, lr)
        self.trial["steps"] += 1
        return {**reply, "steps": self.trial["steps"]}

    @request(then=("filters", "checkpoint"))
    def keep_step(self):
        """Keep the steps tried since the last keep or undo -> {"steps", "evaluation"} (held out)."""
        if self.trial is None:
            raise ValueError("there is no step to keep: take one with Step first")
        steps, self.trial = self.trial["steps"], None
        self.keep_run(None)  # the weights moved on from the stopped run's: it cannot be continued
        return {"steps": steps, "evaluation": self.evaluate()}

    @request(then=("filters",))
    def undo_step(self):
        """Put back the weights and optimiser state from before the steps tried -> {"steps": how many were undone}."""
        if self.trial is None:
            raise ValueError("there is no step to undo")
        steps = self.trial["steps"]
        self.end_trial()
        return {"steps": steps}

    def _step_optimizer(self, kind):
        kind = TrainingConfig.optimizer if kind is None else kind
        if kind not in self.step_optimizers:
            self.step_optimizers[kind] = make_optimizer(kind, TrainingConfig.lr)  # each step passes its own lr
        return self.step_optimizers[kind]


RECIPE = ("trained_with", "extra")  # the model metadata that says how a run's training digits were made


def model_file(model, run=None):
    """The model file of `model`, carrying the run `run` ({"state", "recipe"}, or None): its run state, and
    its recipe in the metadata as `python -m pycnn train` writes it (so `train --resume` reads it too)."""
    if run is None:
        return model.to_bytes()
    kept = model.metadata
    model.metadata = {**kept, **run["recipe"]}
    try:
        return model.to_bytes(run["state"])
    finally:
        model.metadata = kept


def stopped_run(model, state):
    """A loaded model's stopped run: its run state and the recipe its metadata holds (see keep_run)."""
    return {"state": state, "recipe": {key: model.metadata[key] for key in RECIPE if key in model.metadata}}
