"""Training in steps: a validated config, learning-rate schedules, and a Trainer that can
run a few batches at a time (the page's worker yields between chunks so Stop is seen), or take
a sharded step in two phases whose shards others compute (begin_step / finish_step).

A run stops and continues: Trainer.run_state() is what it takes to continue (a dict of JSON-able
values plus {"arrays": {name: ndarray}}), Trainer.resume(model, x, y, state) a Trainer that
continues it; the stopped and resumed run ends with the same weights and history, bit for bit,
as the run never stopped. Sequential.save(path, run_state=...) keeps it in the model file.
"""
import collections
import copy
import dataclasses
import hashlib
import math

import numpy as np

from .augment import random_affine
from .checks import Bool, Choice, Float, Int, Settings, number
from .optimizers import OPTIMIZERS, SGD, Adam, make_optimizer, trainable
from .parallel import MAX_SHARDS, ShardedStep, assign_shards, seed_layers, sharded_step

SCHEDULES = ("onecycle", "cosine", "constant")
# A mean loss above 4 * ln(classes) (9.2 for 10 classes: the true class gets 1e-4 of the
# probability on average) over the last DIVERGED_WINDOW images means the run blew up.
# Healthy runs of the seed model stay under 3 from the first batch; learning rates of 1 to
# 10 jump to 10-30,000 within a few batches. The window keeps one confidently mislabelled
# digit in a batch of 1 from looking like a blow-up; a non-finite loss counts at once.
DIVERGED_FACTOR = 4.0
DIVERGED_WINDOW = 32
RUN_STATE_VERSION = 1  # of Trainer.run_state(); check_run_state reads it
MAX_HISTORY = 10 ** 7  # batch losses a run state may hold


class TrainingDiverged(ValueError):
    """The loss became non-finite or exploded; the weights were restored to the last good state."""


@dataclasses.dataclass
class TrainingConfig(Settings):
    """Hyper-parameters of one training run. The defaults are the page's recipe."""
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.02
    optimizer: str = "adam"
    schedule: str = "onecycle"
    augment: bool = True
    train_size: int | None = None  # None: all training samples
    shuffle: bool = True
    seed: int = 0
    shards: int = 1  # each batch's gradient as the sum of this many shards' (pycnn.parallel); 1: in one piece

    # every field's bounds: __post_init__ checks against them and limits() publishes them
    KIND = "training"  # in its messages
    ARGS = {
        "epochs": Int(1, 1000), "batch_size": Int(1, 4096), "lr": Float(1e-7, 10.0),
        "optimizer": Choice(OPTIMIZERS), "schedule": Choice(SCHEDULES), "augment": Bool(),
        "train_size": Int(1, 10 ** 7, optional=True), "shuffle": Bool(), "seed": Int(0, 2 ** 32 - 1),
        "shards": Int(1, MAX_SHARDS),
    }

    def __post_init__(self):
        super().__post_init__()
        if self.shards > self.batch_size:
            raise ValueError(f"shards ({self.shards}) is larger than batch_size ({self.batch_size}): "
                             f"every shard of a batch needs at least one image")


def learning_rate(schedule, peak, step, total_steps):
    """Learning rate at step (0-based) of total_steps for the schedule."""
    progress = min(step / max(total_steps, 1), 1.0)
    if schedule == "constant":
        return peak
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    # one-cycle: warm up from peak/25 over the first 25%, then cosine down to ~0
    warm = 0.25
    if progress < warm:
        return peak / 25 + (peak - peak / 25) * progress / warm
    return peak * (0.5 * (1 + math.cos(math.pi * (progress - warm) / (1 - warm))) + 1e-4)


class Trainer:
    """Runs a model's training a chunk of batches at a time, with history and divergence checks."""

    def __init__(self, model, x, y, config=None, validation_data=None, optimizer=None, compute_shards=None):
        """compute_shards: with config.shards > 1, who computes each step's shards (see
        pycnn.parallel.sharded_step's compute); None: this process. The weights are the same."""
        self.model = model
        self.compute_shards = compute_shards
        self.config = config if config is not None else TrainingConfig()
        x = model.as_input(x)
        y = model.as_labels(y, len(x))
        if model.input_shape is None:  # learn it from the data, so the model can be saved
            model.input_shape = tuple(x.shape[1:])
            model.output_shapes()  # and check that the layers fit it
        size = len(x) if self.config.train_size is None else self.config.train_size
        if size > len(x):
            raise ValueError(f"train_size must be at most the {len(x)} training samples, got {size}")
        if self.config.batch_size > size:
            raise ValueError(f"batch_size ({self.config.batch_size}) is larger than the training set ({size})")
        self.rng = np.random.default_rng(self.config.seed)
        if size < len(x):  # a random subset, the same for every epoch
            keep = np.sort(self.rng.permutation(len(x))[:size])
            x, y = x[keep], y[keep]
        self.x, self.y = x, y
        self.validation = None
        if validation_data is not None:
            xv, yv = validation_data
            xv = model.as_input(xv)
            self.validation = (xv, model.as_labels(yv, len(xv)))
        self.optimizer = optimizer if optimizer is not None else make_optimizer(self.config.optimizer, self.config.lr)
        self.base_lr = self.optimizer.lr
        self.batches_per_epoch = -(-len(x) // self.config.batch_size)
        self.total_steps = self.config.epochs * self.batches_per_epoch
        self.step = 0
        self.history = {"batch_loss": [], "epochs": []}
        self._order = None
        self._epoch_loss = 0.0
        self._epoch_correct = 0
        self._epoch_seen = 0
        self.diverged_loss = DIVERGED_FACTOR * math.log(max(model.n_classes(), 2))
        self._recent = collections.deque()  # (loss, images) of the last batches, DIVERGED_WINDOW images
        self._good = self._snapshot()   # weights known to give a healthy loss
        self._pending = None            # an epoch's end state, until a loss computed with it is healthy
        self._open = None               # the ShardedStep begun by begin_step, until finish_step
        self._prepared = None           # the next step's batch drawn ahead by prepare_batch

    @property
    def done(self):
        return self.step >= self.total_steps

    @property
    def epoch(self):
        """The epoch of the latest batch, 1-based (1 before any): "epoch 5, batch 266 of 266"."""
        return max(1, -(-self.step // self.batches_per_epoch))

    def _snapshot(self):
        state = {k: tuple(a.copy() for a in v) if isinstance(v, tuple) else v.copy()
                 for k, v in self.optimizer.state.items()}
        return self.model.get_weights(), state, getattr(self.optimizer, "t", None), self.step

    def _restore(self, snapshot):
        weights, state, t, step = snapshot
        self.model.set_weights(weights)
        self.optimizer.state = {k: tuple(a.copy() for a in v) if isinstance(v, tuple) else v.copy()
                                for k, v in state.items()}
        if t is not None:
            self.optimizer.t = t
        self.step = step
        self.history["epochs"] = [e for e in self.history["epochs"] if e["epoch"] <= step // self.batches_per_epoch]
        self._reset_epoch_totals()

    # ---- stop and continue -------------------------------------------------------------
    def run_state(self):
        """What it takes to continue this run -> {"version", "config", "step", "rng", "optimizer", "lr",
        "epoch_totals", "history", "recent", "good", "pending", "data", "validation", "weights",
        "arrays": {name: ndarray}}: JSON-able values, and the arrays (the epoch's order, the batch losses,
        the optimiser's state, the divergence check's last good state when it is not the current one).
        The model's weights are not in it: they are the model's (save both: model.save(path, run_state=...))."""
        self._no_open_step("run_state")
        optimizer = self.optimizer
        if type(optimizer) not in (Adam, SGD):
            raise ValueError(f"run_state supports the Adam and SGD optimisers, got {type(optimizer).__name__}")
        arrays = {}
        state = {
            "version": RUN_STATE_VERSION, "config": self.config.to_dict(), "step": self.step,
            "rng": _rng_to_json(self.rng),
            "optimizer": {**_optimizer_settings(optimizer, self.base_lr),
                          **_put_snapshot_arrays(arrays, "optimizer", optimizer.state,
                                                 getattr(optimizer, "t", None))},
            "lr": float(optimizer.lr),
            "epoch_totals": {"loss": float(self._epoch_loss), "correct": int(self._epoch_correct),
                             "seen": int(self._epoch_seen)},
            "history": {"epochs": [dict(e) for e in self.history["epochs"]],
                        "batch_losses": len(self.history["batch_loss"])},
            "recent": [[float(loss), int(n)] for loss, n in self._recent],
            "good": self._snapshot_json(arrays, "good", self._good),
            "pending": None if self._pending is None else self._snapshot_json(arrays, "pending", self._pending),
            "data": fingerprint(self.x, self.y),
            "validation": None if self.validation is None else fingerprint(*self.validation),
            "weights": weights_fingerprint(self.model),
        }
        arrays["history.batch_loss"] = np.array(self.history["batch_loss"], dtype=np.float64)
        if self.step % self.batches_per_epoch:  # inside an epoch: the rest of its order
            arrays["order"] = np.asarray(self._order, dtype=np.int64)
        state["arrays"] = arrays
        return state

    def _snapshot_json(self, arrays, prefix, snapshot):
        """A divergence snapshot: "current" when it is the state now (same step), else its arrays."""
        weights, opt_state, t, step = snapshot
        if step == self.step:
            return "current"
        for i, w in enumerate(weights):
            arrays[f"{prefix}.weights.{i}"] = w
        return {"step": step, **_put_snapshot_arrays(arrays, f"{prefix}.optimizer", opt_state, t)}

    @classmethod
    def resume(cls, model, x, y, run_state, validation_data=None, compute_shards=None):
        """A Trainer that continues the run run_state() described, on the model holding that run's weights
        and the same training (and validation) data: checked by their fingerprints. ValueError naming
        what does not fit."""
        state = check_run_state(model, run_state)
        settings = state["optimizer"]
        optimizer = (Adam(settings["lr"], settings["beta1"], settings["beta2"], settings["eps"])
                     if settings["class"] == "Adam" else SGD(settings["lr"], settings["momentum"]))
        config = TrainingConfig.from_dict(state["config"])
        trainer = cls(model, x, y, config, validation_data=validation_data, optimizer=optimizer,
                      compute_shards=compute_shards)
        for name, have, want in (("training data", fingerprint(trainer.x, trainer.y), state["data"]),
                                 ("validation data", None if trainer.validation is None
                                  else fingerprint(*trainer.validation), state["validation"])):
            if have != want:
                raise ValueError(f"the {name} is not the run's: the run had {_describe(want)}, got {_describe(have)}")
        if trainer.total_steps < state["step"]:
            raise ValueError(f"run state step must be at most the run's {trainer.total_steps} steps, got {state['step']}")
        if state["step"] % trainer.batches_per_epoch and "order" not in state["arrays"]:
            raise ValueError(f"run state: step {state['step']} is inside an epoch but the state has no order")
        arrays = state["arrays"]
        trainer.rng.bit_generator.state = _rng_from_json(state["rng"])
        trainer.step = state["step"]
        trainer._order = arrays.get("order", None)
        if trainer._order is not None:
            trainer._order = trainer._order.astype(np.intp)
        totals = state["epoch_totals"]
        trainer._epoch_loss, trainer._epoch_correct, trainer._epoch_seen = totals["loss"], totals["correct"], totals["seen"]
        trainer.history = {"batch_loss": [float(v) for v in arrays["history.batch_loss"]],
                           "epochs": [dict(e) for e in state["history"]["epochs"]]}
        trainer._recent = collections.deque((float(loss), int(n)) for loss, n in state["recent"])
        optimizer.state = _take_snapshot_arrays(arrays, "optimizer", settings["keys"], model, optimizer)
        if settings["t"] is not None:
            optimizer.t = settings["t"]
        optimizer.lr = state["lr"]
        trainer._good = trainer._snapshot_from(arrays, "good", state["good"])
        trainer._pending = None if state["pending"] is None else trainer._snapshot_from(arrays, "pending", state["pending"])
        return trainer

    def _snapshot_from(self, arrays, prefix, entry):
        if entry == "current":
            return self._snapshot()
        weights = [arrays[f"{prefix}.weights.{i}"].copy() for i in range(len(self.model.get_weights()))]
        opt_state = _take_snapshot_arrays(arrays, f"{prefix}.optimizer", entry["keys"], self.model, self.optimizer)
        return weights, opt_state, entry["t"], entry["step"]

    def _recent_loss(self, loss, images):
        """Mean loss over the last batches that add up to DIVERGED_WINDOW images, this one included."""
        self._recent.append((loss, images))
        while sum(n for _, n in self._recent) - self._recent[0][1] >= DIVERGED_WINDOW:
            self._recent.popleft()
        return sum(l * n for l, n in self._recent) / sum(n for _, n in self._recent)

    def _check_loss(self, loss, images=DIVERGED_WINDOW):
        """Raise TrainingDiverged, after restoring the last good state, if the loss has blown up."""
        if math.isfinite(loss) and self._recent_loss(loss, images) <= self.diverged_loss:
            if self._pending is not None:  # the weights that produced this loss are fine
                self._good, self._pending = self._pending, None
            return
        self._pending = None
        self._recent.clear()
        self._restore(self._good)
        raise TrainingDiverged(
            f"training diverged at epoch {self.step // self.batches_per_epoch + 1} (loss {loss:.3g}); the "
            f"weights were restored to the end of the last good epoch - try a smaller learning rate than "
            f"{self.base_lr:g}")

    def _batch(self):
        """(x, y) of the next batch; reshuffles at each epoch start. A batch prepare_batch drew for this step
        from the generator and order as they are now is taken as it is (the same draws, made earlier)."""
        ready, self._prepared = self._prepared, None
        if (ready is not None and ready["step"] == self.step and ready["order_before"] is self._order
                and ready["rng_before"] == self.rng.bit_generator.state):
            self.rng.bit_generator.state = ready["rng_after"]
            self._order = ready["order"]
            return ready["x"], ready["y"]
        xb, yb, self._order = self._draw(self.step, self.rng, self._order)
        return xb, yb

    def _draw(self, step, rng, order):
        """The batch of step `step` drawn with rng from the epoch's order (a new one at an epoch's start) ->
        (x, y, the order)."""
        batch = step % self.batches_per_epoch
        if batch == 0:
            n = len(self.x)
            order = rng.permutation(n) if self.config.shuffle else np.arange(n)
        idx = order[batch * self.config.batch_size:(batch + 1) * self.config.batch_size]
        xb = self.x[idx]
        if self.config.augment:
            xb = random_affine(xb, rng, out=xb)
        return xb, self.y[idx], order

    def prepare_batch(self):
        """Draw the next step's batch now (the one after the step begun, if any): its choice and augmentation
        do not depend on the weights, so a caller waiting for other workers' shards can do it meanwhile ->
        whether there is a next step. The run's generator and order are left as they are (a copy draws) until
        that step takes the batch; a run stopped, saved or restored before then never saw it."""
        step = self.step + (self._open is not None)
        if step >= self.total_steps:
            return False
        rng = copy.deepcopy(self.rng)
        before = self.rng.bit_generator.state
        xb, yb, order = self._draw(step, rng, self._order)
        self._prepared = {"step": step, "x": xb, "y": yb, "order": order, "order_before": self._order,
                          "rng_before": before, "rng_after": rng.bit_generator.state}
        return True

    def _train_step(self, xb, yb):
        """One optimiser step on the batch -> (loss, correct): in one piece, or as the sum of its shards."""
        seed, step = self.config.seed, self.step
        if self.config.shards == 1:
            seed_layers(self.model, seed, step, 0)  # the randomness of shard 0 of 1: the same as sharded_step's
            return self.model.train_step(xb, yb, self.optimizer)
        return sharded_step(self.model, self.optimizer, xb, yb, self.config.shards, seed, step,
                            compute=self.compute_shards)

    def run(self, max_batches=None, callback=None):
        """Train up to max_batches batches (all remaining when None) and report progress.

        callback(progress) is called after every batch; returning False stops at once.
        Raises TrainingDiverged (weights restored to the end of the last good epoch) when the
        loss is not finite or exceeds DIVERGED_FACTOR * ln(classes).
        """
        self._no_open_step("run")
        losses, epoch_results, stopped = [], [], False
        images = 0
        remaining = self.total_steps - self.step
        limit = remaining if max_batches is None else min(int(max_batches), remaining)
        for _ in range(limit):
            xb, yb = self._batch()
            self.optimizer.lr = learning_rate(self.config.schedule, self.base_lr, self.step, self.total_steps)
            loss, correct = self._train_step(xb, yb)
            ended = self._stepped(loss, correct, len(yb))
            images += len(yb)
            losses.append(loss)
            epoch_results += ended
            if callback is not None and callback(self.progress([loss], ended, images)) is False:
                stopped = True
                break
        report = self.progress(losses, epoch_results, images)
        report["stopped"] = stopped
        return report

    def _stepped(self, loss, correct, images):
        """After a step's update: the divergence check, the counts, the epoch's end -> [its result] or []."""
        self._check_loss(loss, images)  # the loss of the weights before this step's update
        self.step += 1
        self.history["batch_loss"].append(loss)
        self._epoch_loss += loss * images
        self._epoch_correct += correct
        self._epoch_seen += images
        return [self._end_epoch()] if self.step % self.batches_per_epoch == 0 else []

    # ---- one sharded step in two phases: the shards handed out, gathered, then the update ------------
    def begin_step(self, helpers=None):
        """Begin the next step (its batch and learning rate, as run would) -> task bytes: with helpers None,
        one per non-empty shard, in shard order (pycnn.parallel.encode_tasks); with helpers=k, one per helper
        given shards (pycnn.parallel.assign_shards: at most k tasks, each with the weights once and its shards;
        planned_shards() says which). Compute some shards here (compute_shard), add the others' results
        (add_result), then finish_step: the same weights as run(max_batches=1), bit for bit, whoever computed
        which shard."""
        self._no_open_step("begin_step")
        if self.done:
            raise ValueError(f"the run is over: all {self.total_steps} steps are taken")
        if helpers is not None:
            assign_shards(0, helpers)  # a bad count is refused before the batch is drawn
        xb, yb = self._batch()
        self.optimizer.lr = learning_rate(self.config.schedule, self.base_lr, self.step, self.total_steps)
        if self.config.shards == 1:
            seed_layers(self.model, self.config.seed, self.step, 0)  # as _train_step's unsharded step
        work = ShardedStep(self.model, xb, yb, self.config.shards, self.config.seed, self.step)
        if helpers is None:
            self._plan = [[i] for i in range(len(work.bounds))], []
            tasks = work.tasks()
        else:
            self._plan = assign_shards(len(work.bounds), helpers)
            tasks = [work.task(shards) for shards in self._plan[0]]
        self._open = work
        return tasks

    def planned_shards(self):
        """Of the step begun: (the shards of each task begin_step returned, the shards left to compute here)."""
        self._open_step("planned_shards")
        return self._plan

    def compute_shard(self, shard):
        """Compute shard `shard` of the step begun, here."""
        self._open_step("compute_shard").compute(shard)

    def add_result(self, data):
        """A result of the step begun, computed elsewhere (pycnn.parallel.run_task's bytes) -> its shard."""
        return self._open_step("add_result").add(data)

    def missing_shards(self):
        """The shards of the step begun that have no result yet."""
        return self._open_step("missing_shards").missing()

    def finish_step(self, results=()):
        """Finish the step begun: `results` (result bytes, in any order) join those added, every shard
        must have one; their sum in shard order makes one optimiser step -> the progress report of
        run(max_batches=1). A shard without a result: ValueError, and the step stays open."""
        work = self._open_step("finish_step")
        for data in results:
            work.add(data)
        loss, correct = work.finish(self.optimizer)  # raises, saying which shards are missing; 1 shard: train_step's update
        self._open = None  # with one shard: train_step's update, bit for bit
        ended = self._stepped(loss, correct, len(work.y))
        report = self.progress([loss], ended, len(work.y))
        report["stopped"] = False
        return report

    def _open_step(self, name):
        if self._open is None:
            raise ValueError(f"{name} needs a step begun with begin_step")
        return self._open

    def _no_open_step(self, name):
        if self._open is not None:
            raise ValueError(f"{name}: step {self._open.step} is begun and not finished (finish_step)")

    def _reset_epoch_totals(self):
        self._epoch_loss, self._epoch_correct, self._epoch_seen = 0.0, 0, 0

    def _end_epoch(self):
        result = {"epoch": self.step // self.batches_per_epoch,
                  "loss": self._epoch_loss / self._epoch_seen,
                  "accuracy": self._epoch_correct / self._epoch_seen}
        self._reset_epoch_totals()
        self._pending = self._snapshot()
        if self.validation is not None:
            scores = self.model.evaluate(*self.validation)
            self._check_loss(scores["loss"], len(self.validation[1]))  # checks the final weights at once
            result["val_loss"], result["val_accuracy"] = scores["loss"], scores["accuracy"]
        self.history["epochs"].append(result)
        return result

    def progress(self, losses=(), epoch_results=(), images=0):
        """The progress report the page and the CLI show (they time it themselves)."""
        return {
            "step": self.step, "total_steps": self.total_steps,
            "epoch": self.epoch, "epochs": self.config.epochs,
            "batch": self.step % self.batches_per_epoch or (self.batches_per_epoch if self.step else 0),
            "batches_per_epoch": self.batches_per_epoch,
            "losses": list(losses),
            "accuracy": self._epoch_correct / self._epoch_seen if self._epoch_seen else None,
            "images": images,
            "epoch_results": list(epoch_results),
            "lr": self.optimizer.lr,
            "done": self.done,
        }


# ---- run states: what Trainer.run_state() holds, and checking one before it is used -----------------
def fingerprint(x, y):
    """{"size": N, "sha256": hex} of a data set (images as the model reads them, labels as int64)."""
    digest = hashlib.sha256()
    digest.update(repr((x.shape, x.dtype.str)).encode())
    digest.update(np.ascontiguousarray(x).view(np.uint8).reshape(-1))
    digest.update(np.ascontiguousarray(y, dtype="<i8").view(np.uint8).reshape(-1))
    return {"size": int(len(y)), "sha256": digest.hexdigest()}


def weights_fingerprint(model):
    """sha256 hex of every array of the model (get_weights), their shapes and dtypes."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(repr((w.shape, w.dtype.str)).encode())
        digest.update(np.ascontiguousarray(w).view(np.uint8).reshape(-1))
    return digest.hexdigest()


def _describe(data):
    return "no validation data" if data is None else f"{data['size']:,} samples (sha256 {data['sha256'][:12]}...)"


def _rng_to_json(rng):
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"run_state supports the PCG64 generator, got {state['bit_generator']}")
    return {"bit_generator": "PCG64", "state": str(state["state"]["state"]), "inc": str(state["state"]["inc"]),
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def _rng_from_json(state):
    return {"bit_generator": "PCG64", "state": {"state": int(state["state"]), "inc": int(state["inc"])},
            "has_uint32": state["has_uint32"], "uinteger": state["uinteger"]}


def _optimizer_settings(optimizer, base_lr):
    if isinstance(optimizer, Adam):
        return {"class": "Adam", "lr": float(base_lr), "beta1": optimizer.beta1, "beta2": optimizer.beta2,
                "eps": optimizer.eps}
    return {"class": "SGD", "lr": float(base_lr), "momentum": optimizer.momentum}


def _slots(optimizer_class):
    """The arrays kept per weight: Adam's m and v (its third is scratch), SGD's velocity."""
    return 2 if optimizer_class in ("Adam", Adam) else 1


def _put_snapshot_arrays(arrays, prefix, opt_state, t):
    """Add an optimiser state's arrays as "prefix.key.j" -> {"keys": [...], "t": t}."""
    for key, value in opt_state.items():
        for j, array in enumerate(value[:2] if isinstance(value, tuple) else (value,)):  # Adam: m, v (not scratch)
            arrays[f"{prefix}.{key}.{j}"] = array
    return {"keys": list(opt_state), "t": t}


def _take_snapshot_arrays(arrays, prefix, keys, model, optimizer):
    """The optimiser state _put_snapshot_arrays stored, as the optimiser keeps it (copies)."""
    out = {}
    for key in keys:
        if isinstance(optimizer, Adam):
            m, v = (arrays[f"{prefix}.{key}.{j}"].copy() for j in range(2))
            out[key] = (m, v, np.empty_like(m))
        else:
            out[key] = arrays[f"{prefix}.{key}.0"].copy()
    return out


RUN_STATE_KEYS = ("version", "config", "step", "rng", "optimizer", "lr", "epoch_totals", "history", "recent",
                  "good", "pending", "data", "validation", "weights")


def _int(name, value, low=0, high=2 ** 63 - 1):
    return number(f"run state {name}", value, low, high, integer=True)


def _float(name, value, low=0.0):
    return number(f"run state {name}", value, low)


def _need(name, value, kind, what):
    if not isinstance(value, kind):
        raise ValueError(f"run state {name} must be {what}, got {str(value)[:60]!r}")
    return value


def _hex(name, value):
    if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
        raise ValueError(f"run state {name} must be a sha256 hex digest, got {str(value)[:70]!r}")


def _data_print(name, value, optional=False):
    if value is None and optional:
        return
    _need(name, value, dict, "{\"size\", \"sha256\"}")
    if set(value) != {"size", "sha256"}:
        raise ValueError(f"run state {name} must have the keys size, sha256, got {', '.join(map(str, value))}")
    _int(f"{name} size", value["size"], 1)
    _hex(f"{name} sha256", value["sha256"])


def _keys(name, keys, weight_keys):
    _need(name, keys, list, "a list of weight keys")
    unknown = [k for k in keys if k not in weight_keys]
    if unknown or len(set(keys)) != len(keys):
        raise ValueError(f"run state {name} must name distinct weights of the model ({', '.join(weight_keys)}), "
                         f"got {str(unknown or keys)[:80]}")
    return keys


def run_state_arrays(model, state):
    """Check the JSON-able part of a run state against the model -> {array name: (shape, dtype)} it must come
    with. ValueError naming the first thing that is wrong ("run state step must be ...")."""
    _need("", state, dict, "a dict")
    keys = set(state) - {"arrays"}
    if keys != set(RUN_STATE_KEYS):
        missing, extra = sorted(set(RUN_STATE_KEYS) - keys), sorted(map(str, keys - set(RUN_STATE_KEYS)))
        raise ValueError("run state keys are wrong: " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(extra)}" if extra else "") if part))
    if state["version"] != RUN_STATE_VERSION:
        raise ValueError(f"unsupported run state version {state['version']!r}; this pycnn reads version "
                         f"{RUN_STATE_VERSION}")
    try:
        config = TrainingConfig.from_dict(state["config"])
    except ValueError as err:
        raise ValueError(f"run state config: {err}") from None
    _data_print("data", state["data"])
    _data_print("validation", state["validation"], optional=True)
    _hex("weights", state["weights"])
    size = state["data"]["size"]
    batches = -(-size // config.batch_size)
    step = _int("step", state["step"], 0, config.epochs * batches)
    rng = _need("rng", state["rng"], dict, "a PCG64 state")
    if set(rng) != {"bit_generator", "state", "inc", "has_uint32", "uinteger"} or rng["bit_generator"] != "PCG64":
        raise ValueError("run state rng must be a PCG64 state {bit_generator, state, inc, has_uint32, uinteger}")
    for part in ("state", "inc"):
        value = rng[part]
        if not (isinstance(value, str) and value.isdigit() and len(value) <= 39 and int(value) < 2 ** 128):
            raise ValueError(f"run state rng {part} must be a decimal integer below 2**128, got {str(value)[:50]!r}")
    if int(rng["inc"]) % 2 != 1:
        raise ValueError("run state rng inc must be odd (a PCG64 increment)")
    _int("rng has_uint32", rng["has_uint32"], 0, 1)
    _int("rng uinteger", rng["uinteger"], 0, 2 ** 32 - 1)

    weight_keys = [key for key, _, _ in trainable(model.layers)]
    shapes = {key: layer.params[name].shape for key, layer, name in trainable(model.layers)}
    settings = _need("optimizer", state["optimizer"], dict, "a dict")
    kind = settings.get("class")
    fields = {"Adam": {"class", "lr", "beta1", "beta2", "eps", "keys", "t"},
              "SGD": {"class", "lr", "momentum", "keys", "t"}}
    if kind not in fields or set(settings) != fields[kind]:
        raise ValueError(f"run state optimizer must be Adam (lr, beta1, beta2, eps, keys, t) or SGD (lr, momentum, "
                         f"keys, t), got {str(settings)[:80]}")
    try:
        if kind == "Adam":
            Adam(settings["lr"], settings["beta1"], settings["beta2"], settings["eps"])
        else:
            SGD(settings["lr"], settings["momentum"])
    except ValueError as err:
        raise ValueError(f"run state optimizer: {err}") from None
    _float("lr", state["lr"])

    def t_of(name, value):
        if kind == "SGD":
            if value is not None:
                raise ValueError(f"run state {name} t must be null for SGD, got {value!r}")
            return
        _int(f"{name} t", value)

    dtype = model.dtype
    specs = {"history.batch_loss": ((_int("history batch_losses", state["history"].get("batch_losses")
                                         if isinstance(state["history"], dict) else None, 0, MAX_HISTORY),),
                                    np.dtype(np.float64))}

    def optimizer_arrays(prefix, entry):
        t_of(prefix, entry["t"])
        for key in _keys(f"{prefix} keys", entry["keys"], weight_keys):
            for j in range(_slots(kind)):
                specs[f"{prefix}.{key}.{j}"] = (shapes[key], dtype)

    optimizer_arrays("optimizer", settings)
    for name in ("good", "pending"):
        entry = state[name]
        if entry == "current" or (entry is None and name == "pending"):
            continue
        _need(name, entry, dict, '"current" or {"step", "t", "keys"}')
        if set(entry) != {"step", "t", "keys"}:
            raise ValueError(f"run state {name} must be \"current\" or have the keys step, t, keys")
        _int(f"{name} step", entry["step"], 0, step)
        for i, w in enumerate(model.get_weights()):
            specs[f"{name}.weights.{i}"] = (w.shape, dtype)
        optimizer_arrays(f"{name}.optimizer", entry)
    if step % batches:
        specs["order"] = ((size,), np.dtype(np.int64))

    totals = _need("epoch_totals", state["epoch_totals"], dict, "a dict")
    if set(totals) != {"loss", "correct", "seen"}:
        raise ValueError("run state epoch_totals must have the keys loss, correct, seen")
    _float("epoch_totals loss", totals["loss"])
    seen = _int("epoch_totals seen", totals["seen"], 0, size)
    _int("epoch_totals correct", totals["correct"], 0, seen)
    history = state["history"]
    if set(history) != {"epochs", "batch_losses"}:
        raise ValueError("run state history must have the keys epochs, batch_losses")
    epochs = _need("history epochs", history["epochs"], list, "a list")
    if len(epochs) != step // batches:
        raise ValueError(f"run state history must hold the {step // batches} finished epochs of step {step}, "
                         f"got {len(epochs)}")
    for i, entry in enumerate(epochs):
        _need(f"history epoch {i + 1}", entry, dict, "a dict")
        if not {"epoch", "loss", "accuracy"} <= set(entry) <= {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}:
            raise ValueError(f"run state history epoch {i + 1} must have epoch, loss, accuracy (val_loss, "
                             f"val_accuracy), got {', '.join(map(str, entry))}")
        if entry["epoch"] != i + 1:
            raise ValueError(f"run state history epoch {i + 1} is numbered {entry['epoch']!r}")
        for field in set(entry) - {"epoch"}:
            _float(f"history epoch {i + 1} {field}", entry[field])
    recent = _need("recent", state["recent"], list, "a list")
    if len(recent) > 100 * DIVERGED_WINDOW:
        raise ValueError(f"run state recent holds {len(recent)} losses; at most {100 * DIVERGED_WINDOW}")
    for entry in recent:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise ValueError(f"run state recent must hold [loss, images] pairs, got {str(entry)[:40]}")
        _float("recent loss", entry[0])
        _int("recent images", entry[1], 1)
    return specs


def check_run_state(model, state):
    """Check a whole run state (its JSON-able part and its arrays) against the model holding the run's
    weights -> the state. ValueError naming what is wrong; nothing in it is executed."""
    specs = run_state_arrays(model, state)
    arrays = _need("arrays", state.get("arrays"), dict, "a dict of arrays")
    missing, extra = sorted(set(specs) - set(arrays)), sorted(map(str, set(arrays) - set(specs)))
    if missing or extra:
        raise ValueError("run state arrays do not fit its step and optimiser: " + "; ".join(
            part for part in (f"missing {', '.join(missing[:5])}" if missing else "",
                              f"unexpected {', '.join(extra[:5])}" if extra else "") if part))
    for name, (shape, dtype) in specs.items():
        array = arrays[name]
        if not isinstance(array, np.ndarray) or array.shape != tuple(shape) or array.dtype != dtype:
            got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
            raise ValueError(f"run state array {name} must be {np.dtype(dtype).name} {tuple(shape)}, got {got}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ValueError(f"run state array {name} contains NaN or infinity")
    if "order" in arrays and not np.array_equal(np.sort(arrays["order"]), np.arange(len(arrays["order"]))):
        raise ValueError("run state array order must be a permutation of the training samples' indices")
    if weights_fingerprint(model) != state["weights"]:
        raise ValueError("the model's weights are not those of the run state (the model changed after it was saved)")
    return state
