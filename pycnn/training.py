"""Training in steps: a validated config, learning-rate schedules, and a Trainer that can
run a few batches at a time (the page's worker yields between chunks so Stop is seen), or take
a sharded step in two phases whose shards others compute (begin_step / finish_step)."""
import collections
import dataclasses
import math

import numpy as np

from .augment import random_affine
from .checks import Bool, Choice, Float, Int, Settings
from .optimizers import OPTIMIZERS, make_optimizer
from .parallel import MAX_SHARDS, ShardedStep, seed_layers, sharded_step

SCHEDULES = ("onecycle", "cosine", "constant")
# A mean loss above 4 * ln(classes) (9.2 for 10 classes: the true class gets 1e-4 of the
# probability on average) over the last DIVERGED_WINDOW images means the run blew up.
# Healthy runs of the seed model stay under 3 from the first batch; learning rates of 1 to
# 10 jump to 10-30,000 within a few batches. The window keeps one confidently mislabelled
# digit in a batch of 1 from looking like a blow-up; a non-finite loss counts at once.
DIVERGED_FACTOR = 4.0
DIVERGED_WINDOW = 32


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
        """(x, y) of the next batch; reshuffles at each epoch start."""
        batch = self.step % self.batches_per_epoch
        if batch == 0:
            n = len(self.x)
            self._order = self.rng.permutation(n) if self.config.shuffle else np.arange(n)
        idx = self._order[batch * self.config.batch_size:(batch + 1) * self.config.batch_size]
        xb = self.x[idx]
        if self.config.augment:
            xb = random_affine(xb, self.rng, out=xb)
        return xb, self.y[idx]

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
    def begin_step(self):
        """Begin the next step (its batch and learning rate, as run would) -> the task bytes of each
        non-empty shard, in shard order (pycnn.parallel.encode_tasks). Compute some here
        (compute_shard), add the others' results (add_result), then finish_step: the same weights as
        run(max_batches=1), bit for bit, whoever computed which shard."""
        self._no_open_step("begin_step")
        if self.done:
            raise ValueError(f"the run is over: all {self.total_steps} steps are taken")
        xb, yb = self._batch()
        self.optimizer.lr = learning_rate(self.config.schedule, self.base_lr, self.step, self.total_steps)
        if self.config.shards == 1:
            seed_layers(self.model, self.config.seed, self.step, 0)  # as _train_step's unsharded step
        self._open = ShardedStep(self.model, xb, yb, self.config.shards, self.config.seed, self.step)
        return self._open.tasks()

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
