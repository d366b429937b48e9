"""Runs: training the current model, or fine-tuning it on your digits, one batch per step.

Both follow one protocol: a job (Trainer, FineTuneJob) trains a batch per `job.run(max_batches=1)`
and reports its progress with the same fields. The worker calls `step` until a step says the run
ended; between steps it answers the page (a `stop` lands after the batch in flight). What the
page is told along the way is decided here: each epoch's result, the filters now and then and at
each epoch, the model to keep at each epoch and on stop, and the run's end (`done`).

A training run stopped before its end can be continued (`resume`): the current model keeps the
run's state (Trainer.run_state(): its step, data order, optimiser state, history) and how its
training digits were made (the settings asked for, your digits joined), and the model file the page
keeps carries both (the metadata as `python -m pycnn train` writes it), so a reload keeps them
too. The continued run ends with the same weights, bit for bit, as the run never stopped.

The page splits a training run's batches into shards (TrainingConfig.shards, pycnn.parallel; how
many follows from the batch size, PAGE_SHARDS) however many workers there are, so that one worker
or several make the same run bit for bit. With
helper workers up, the worker takes a step in phases instead of `step`: `begin_step` hands out the
helpers' tasks (one per helper, its shards in it), `compute_shard` computes one here, `prepare_step` draws
the next batch while the helpers compute, `shard_result` takes a helper's result (one per shard), and
`finish_step` sums them in shard order and reports as `step` does.
"""
import collections
import math
import time

import numpy as np

from .. import yourdigits
from ..model import Sequential
from ..training import Trainer, TrainingConfig, TrainingDiverged, fingerprint
from ..yourdigits import FineTuneConfig, FineTuneJob
from .protocol import request

FILTERS_EVERY_S = 0.25  # the filters the page draws while a run trains (also at every epoch end)
ESTIMATE_EVAL_IMAGES = 600  # held-out digits timed for the evaluation part of an epoch estimate
ESTIMATE_BATCHES = 12  # batches timed, after 8 of warm-up: within ~1% of 40 of them, and the worker is free sooner
TRAIN_WORK_FACTOR = 3  # a training step costs about three forward passes (forward, two products back)
# How the page splits a training run's batches (info's "shards"; the page sends TrainingConfig.shards =
# min(max, batch_size // shard_images), at least 1): at most 4 shards (so up to 4 workers share a batch), of
# at least 16 images. Measured in one Pyodide worker (python -m bench.browser.cores), the default network at
# batch 64 trains 0.91x as fast in 2 shards and 0.77x in 4 as in one piece; in the page, 4 shards of 16 trained
# as fast as 2 of 32 (1,358 and 1,279 images/s), and they let up to 4 workers share a batch.
PAGE_SHARDS = {"max": 4, "shard_images": 16}


def page_shards(batch_size):
    """The shards the page splits a batch of batch_size into (web/validate.js computes the same from info)."""
    return max(1, min(PAGE_SHARDS["max"], batch_size // PAGE_SHARDS["shard_images"]))


PROGRESS_FIELDS = ("step", "total_steps", "epoch", "epochs", "batch", "batches_per_epoch", "losses", "accuracy",
                   "images", "phase")  # what a step reports of a job's progress (phase: a fine-tune's)


class Run:
    """A run in flight. name: the request that started it ("train", "fine_tune"); job: what trains it;
    changes_filters: its steps change the conv weights the page draws (a fine-tune trains copies)."""

    def __init__(self, name, job, changes_filters):
        self.name, self.job, self.changes_filters = name, job, changes_filters
        self.stop_sent_at = None  # once the page asked to stop: when (ms since the epoch), or inf
        self.recipe = None  # a training run's: how its digits were made (CurrentModel.keep_run)
        self.batch_ends = collections.deque(maxlen=16)  # when the latest batches ended (ms since the epoch)
        self.filters_at = time.perf_counter()


class Runs:
    """The run in flight, if any, and this machine's measured speed."""

    def __init__(self, session):
        self.session = session
        self.active = None  # the Run in flight
        self.speed = None  # multiply-adds per second of training and of evaluation, once measured

    @request(starts_run=True)
    def train(self, config, join_digits=False):
        """Start a run of the current model with `config` (TrainingConfig's fields; missing ones take the
        defaults) -> {"total_steps", "batches_per_epoch", "shards", "joined"?}. join_digits: your digits join
        the training digits (pycnn.yourdigits.join, repeated auto_repeat times). Invalid settings: ValueError."""
        data, digits = self.session.data, self.session.digits
        try:
            asked = TrainingConfig.from_dict(config)
        except ValueError as err:
            raise ValueError(f"Invalid settings: {err}") from None
        if join_digits and not len(digits.y):
            raise ValueError("Invalid settings: there are no digits of yours to join: add some first")
        train_count = len(data.y_train)
        chosen = asked.train_size if asked.train_size is not None and asked.train_size < train_count else train_count
        repeat = yourdigits.auto_repeat(chosen, len(digits.y)) if join_digits else 0
        x, y, cfg = self._training_digits(asked, repeat if join_digits else None)
        current = self.session.current
        current.end_trial()
        try:
            trainer = Trainer(current.model, x, y, cfg, validation_data=(data.x_heldout, data.y_heldout))
        except ValueError as err:  # settings that do not fit the data (a batch larger than the digits)
            raise ValueError(f"Invalid settings: {err}") from None
        current.optimizer, current.undo = trainer.optimizer, None  # the model moves on: no fine-tune to undo
        current.keep_run(None)  # a new run: the stopped one is given up
        self.active = Run("train", trainer, changes_filters=True)
        # how its digits were made (what resume makes them from again), as `python -m pycnn train` records it
        self.active.recipe = {"trained_with": asked.to_dict(), **(
            {"extra": {"file": "your digits", "digits": len(digits.y), "repeat": repeat}} if join_digits else {})}
        started = {"total_steps": trainer.total_steps, "batches_per_epoch": trainer.batches_per_epoch,
                   "shards": cfg.shards}
        return {**started, "joined": {"digits": len(digits.y), "repeat": repeat}} if join_digits else started

    @request(starts_run=True)
    def resume(self):
        """Continue the stopped run of the current model from its run state (its settings, the rest of its
        schedule, its data order and optimiser state; the page's held-out digits) -> train's reply plus
        "step" (where it goes on from) and "config" (the run's settings). It ends with the same weights, bit
        for bit, as the run never stopped. Nothing to continue, or training digits that are not the run's
        (your digits joined it and changed since): ValueError, and the stopped run stays."""
        data, current = self.session.data, self.session.current
        if current.stopped is None:
            raise ValueError("Cannot continue: the current model has no stopped run to continue (a run that "
                             "finished, Reset, a new network, a loaded model without one, a fine-tune or a "
                             "kept step leaves none): press Train to start a new run")
        state, recipe = current.stopped["state"], current.stopped["recipe"]
        described, joined, model = current.resumable(), current.run_joined(), current.model
        refused = "Cannot continue the stopped run: {}. Press Train to start a new run"
        try:  # the digits first: a refusal changes nothing (steps tried stay tried)
            x, y, _ = self._training_digits(current.run_settings(), None if joined is None else joined["repeat"])
            same = joined is None or fingerprint(model.as_input(x), model.as_labels(y, len(x))) == state["data"]
        except ValueError:
            same = False
        if not same:
            raise ValueError(refused.format(f"it trained on {joined.get('digits', 'some')} of your digits joined to "
                                            f"the bundled ones, and your digits changed since"))
        current.end_trial()  # steps tried and not kept are undone, as before a new run
        try:
            trainer = Trainer.resume(model, x, y, state, validation_data=(data.x_heldout, data.y_heldout))
        except ValueError as err:
            raise ValueError(refused.format(err)) from None
        current.optimizer, current.undo = trainer.optimizer, None
        current.keep_run(None)  # it is the run in flight now; a stop keeps its state again
        self.active = Run("resume", trainer, changes_filters=True)
        self.active.recipe = recipe
        return {"total_steps": trainer.total_steps, "batches_per_epoch": trainer.batches_per_epoch,
                "shards": trainer.config.shards, "step": trainer.step, "config": described["config"]}

    def _training_digits(self, asked, repeat):
        """The training digits of a run asked with `asked`, your digits joined `repeat` times (None: not
        joined) -> (x, y, the config Trainer takes: train_size is already applied when they are joined)."""
        data, digits = self.session.data, self.session.digits
        x, y = data.x_train, data.y_train
        if repeat is None:
            return x, y, asked
        if asked.train_size is not None and asked.train_size < len(y):
            # the bundled subset Trainer would pick, so that the joined digits are not left out of it
            keep = np.sort(np.random.default_rng(asked.seed).permutation(len(y))[:asked.train_size])
            x, y = x[keep], y[keep]
        x, y = yourdigits.join(x, y, digits.x, digits.y, repeat)
        return x, y, TrainingConfig(**{**asked.to_dict(), "train_size": None})

    @request(starts_run=True)
    def fine_tune(self, config=None):
        """Start fine-tuning the current model on your digits (a FineTuneJob; config: FineTuneConfig's
        fields) -> {"total_steps", "batches_per_epoch" (steps of one of its fine-tunes), "runs", "method",
        "count"}. The current model stays as it is until the last step makes the fine-tuned copy current
        (undo_fine_tune brings this one back); a fine-tune stopped before changes nothing."""
        data, digits, current = self.session.data, self.session.digits, self.session.current
        try:
            cfg = FineTuneConfig.from_dict({} if config is None else config)
            if not len(digits.y):
                raise ValueError("there are no digits of yours to fine-tune on: add some first")
        except ValueError as err:
            raise ValueError(f"Cannot fine-tune: {err}") from None
        current.end_trial()
        job = FineTuneJob(current.model, digits.x, digits.y, data.x_train, data.y_train, data.x_heldout,
                          data.y_heldout, cfg)
        self.active = Run("fine_tune", job, changes_filters=False)
        return {"total_steps": job.total_steps, "batches_per_epoch": cfg.steps, "runs": len(job.runs),
                "method": job.method, "count": len(digits.y)}

    @request(starts_run=True)
    def train_project(self, how, config=None):
        """Start training the open project of your own classes (Projects.job): how "transfer" (a new head on the
        digit network's convolutions, which stay as they are; TransferConfig's fields) or "scratch" (the editor's
        network from fresh weights; ScratchConfig's) -> {"total_steps", "batches_per_epoch" (steps of one of its
        runs), "runs", "how", "count", "project"}. Each first measures on drawings it was not trained on, then
        trains the model the project keeps; stopped before its end, it keeps nothing."""
        try:
            job, project = self.session.projects.job(how, config)
        except ValueError as err:
            raise ValueError(f"Cannot train: {err}") from None
        self.active = Run("train_project", job, changes_filters=False)
        self.active.project = project
        return {"total_steps": job.total_steps, "batches_per_epoch": job.config.steps, "runs": len(job.runs),
                "how": how, "count": len(job.y), "project": project}

    @request(during_run="now")
    def stop(self, sent_at=None):
        """Stop the run after the batch in flight -> {"stopping": whether a run was going}. sent_at: when
        the page asked (ms since the epoch), to count the batches that ended after it (normally 1)."""
        if self.active is None:
            return {"stopping": False}
        self.active.stop_sent_at = math.inf if sent_at is None else float(sent_at)
        return {"stopping": True}

    @request(during_run="now")
    def step(self):
        """Train one batch of the run in flight -> its progress (the job's report: step, total_steps, epoch,
        epochs, batch, batches_per_epoch, losses, accuracy, images, phase for a fine-tune) plus "run" and
        "ended". The page is told each epoch's result, the filters (every FILTERS_EVERY_S and each epoch),
        the model to keep (each epoch, on stop) and, last, `done` {run, reason, evaluation, ...}."""
        run = self._in_flight()
        if run.stop_sent_at is not None:
            return self._stopped(run)
        return self._stepped(run, lambda: run.job.run(max_batches=1))

    @request(during_run="now")
    def begin_step(self, helpers=None):
        """Begin the next batch of a training run as shards that helper workers may compute -> {"tasks", "given",
        "mine", "step", "run", "ended": False}: with `helpers` (how many are free), a task per helper given
        shards, each with the weights once and its shards (pycnn.parallel.run_shards computes it, a result per
        shard), "given" the shards of each task and "mine" those left to this worker; without, a task per
        non-empty shard in shard order (pycnn.parallel.run_task computes one). Or, when the run is stopping,
        what `step` replies as it ends the run. Then compute_shard and shard_result, one per shard in any order,
        and finish_step."""
        run = self._in_flight()
        if run.stop_sent_at is not None:
            return self._stopped(run)
        if not isinstance(run.job, Trainer):
            raise ValueError(f"begin_step: a {run.name.replace('_', ' ')} run is not taken in shards; step it instead")
        tasks = run.job.begin_step(helpers)
        given, mine = run.job.planned_shards()
        return {"tasks": tasks, "given": given, "mine": mine, "step": run.job.step, "run": run.name, "ended": False}

    @request(during_run="now")
    def prepare_step(self):
        """Draw the batch after the one begun now (Trainer.prepare_batch: its choice and augmentation), while
        helpers compute their shards -> {"prepared": whether there is a next batch}. The run is the same."""
        job = self._in_flight().job
        return {"prepared": isinstance(job, Trainer) and job.prepare_batch()}

    @request(during_run="now")
    def compute_shard(self, shard):
        """Compute shard `shard` of the batch begun (begin_step) in this worker -> {"shard"}."""
        self._in_flight().job.compute_shard(shard)
        return {"shard": shard}

    @request(during_run="now")
    def shard_result(self, data):
        """A helper's result (pycnn.parallel.run_task's bytes) for the batch begun -> {"shard", "missing": the
        shards still without a result}. Bytes that are not a result of one of its shards still open:
        ValueError (the worker then computes that helper's shards itself)."""
        job = self._in_flight().job
        shard = job.add_result(data)
        return {"shard": shard, "missing": job.missing_shards()}

    @request(during_run="now")
    def finish_step(self):
        """Finish the batch begun once each of its shards has a result: their gradients summed in shard order,
        one optimiser step -> what `step` replies (the same weights, bit for bit)."""
        run = self._in_flight()
        return self._stepped(run, run.job.finish_step)

    def _in_flight(self):
        if self.active is None:
            raise ValueError("no training run: start one first")
        return self.active

    def _stepped(self, run, train):
        """One batch of the run by train() -> the step's reply; what the page is told about it."""
        try:
            report = train()
        except TrainingDiverged as err:
            evaluation = None if run.name == "train_project" else self.session.current.evaluate()
            return {**_progress(run.job.progress()),
                    **self._end(run, "diverged", {"message": str(err), "evaluation": evaluation},
                                filters=run.changes_filters)}
        run.batch_ends.append(time.time() * 1000)
        tell = self.session.tell
        for result in report["epoch_results"]:
            tell("epoch", **result)
        if report["epoch_results"]:
            last = report["epoch_results"][-1]
            run.filters_at = time.perf_counter()
            tell("filters", **self.session.current.filters())
            # the model kept carries the run until its end, so a reload (a closed tab) can continue it
            going = None if report["done"] else {"state": run.job.run_state(), "recipe": run.recipe}
            self.session.checkpoint("epoch", {"loss": last["val_loss"], "accuracy": last["val_accuracy"]}, run=going)
        elif run.changes_filters and time.perf_counter() - run.filters_at >= FILTERS_EVERY_S:
            run.filters_at = time.perf_counter()
            tell("filters", **self.session.current.filters())
        if report["done"]:
            return {**_progress(report), **self._finished(run)}
        return {**_progress(report), "run": run.name, "ended": False}

    def _finished(self, run):
        current = self.session.current
        if run.name == "train_project":  # the project keeps the model; the digit model is not touched
            return self._end(run, "finished", {"evaluation": None, **self.session.projects.trained(run.project, run.job)})
        if run.name == "fine_tune":  # the fine-tuned copy becomes the current model, kept like any trained one
            undo = {"model": current.model, "seed": current.seed, "stopped": current.stopped}
            current.replace(run.job.model, None, undo=undo, keep_inspected=True)
            evaluation = current.evaluate()
            end = self._end(run, "finished", {"evaluation": evaluation, "fine_tune": run.job.result()})
            self.session.checkpoint("fine_tune", evaluation)  # after done: the page describes the model first
            return end
        last = run.job.history["epochs"][-1]  # the final weights' held-out scores
        return self._end(run, "finished", {"evaluation": {"loss": last["val_loss"], "accuracy": last["val_accuracy"]}})

    def _stopped(self, run):
        """The run ends where it is: a stopped training run keeps what it learned and its state (resume
        continues it), a stopped fine-tune nothing."""
        current = self.session.current
        evaluation = None if run.name == "train_project" else current.evaluate()
        step = run.job.step
        if run.changes_filters:
            self.session.tell("filters", **current.filters())
            if step > 0:  # stopped before its first batch: there is nothing to continue
                current.keep_run({"state": run.job.run_state(), "recipe": run.recipe})
            partial = step % run.job.batches_per_epoch != 0
            self.session.checkpoint("stopped", evaluation, partial_epoch=partial)
        after = sum(end > run.stop_sent_at for end in run.batch_ends)
        return {**_progress(run.job.progress()),
                **self._end(run, "stopped", {"evaluation": evaluation, "step": step, "batches_after_stop": after})}

    def _end(self, run, reason, details, filters=False):
        """End the run: the page is told `done` (after the filters, when they changed) -> the step's end fields."""
        self.active = None
        if filters:
            self.session.tell("filters", **self.session.current.filters())
        self.session.tell("done", run=run.name, reason=reason, **details)
        return {"run": run.name, "ended": True}

    @request()
    def estimate(self, config, batches=ESTIMATE_BATCHES):
        """Images per second of training with `config` and of evaluation, timed on a copy of the model
        -> {"train_images_per_second", "eval_images_per_second"}; the editor's estimates use them."""
        data, model = self.session.data, self.session.current.model
        cfg = TrainingConfig.from_dict({**config, "epochs": 1})
        copy = Sequential.from_config(model.get_config())
        trainer = Trainer(copy, data.x_train, data.y_train, cfg)
        trainer.run(max_batches=8)  # warm-up: buffers get allocated, hot wasm code tiers up
        start = time.perf_counter()
        report = trainer.run(max_batches=int(batches))
        train_s = time.perf_counter() - start
        n_eval = min(ESTIMATE_EVAL_IMAGES, len(data.y_heldout))
        copy.evaluate(data.x_heldout[:100], data.y_heldout[:100])  # warm-up
        start = time.perf_counter()
        copy.evaluate(data.x_heldout[:n_eval], data.y_heldout[:n_eval])
        eval_s = time.perf_counter() - start
        if train_s > 0 and eval_s > 0:
            work = model.work()
            self.speed = {"train": report["images"] * TRAIN_WORK_FACTOR * work / train_s, "eval": n_eval * work / eval_s}
        return {
            "train_images_per_second": report["images"] / train_s if train_s > 0 else None,
            "eval_images_per_second": n_eval / eval_s if eval_s > 0 else None,
        }

    def images_per_second(self, model):
        """This machine's estimated {"train", "eval"} images per second for `model`, or None before a measurement."""
        if not self.speed:
            return None
        work = model.work()
        return {"train": self.speed["train"] / (TRAIN_WORK_FACTOR * work), "eval": self.speed["eval"] / work}


def _progress(report):
    """The fields of a job's report that a step passes on (PROGRESS_FIELDS)."""
    return {key: report[key] for key in PROGRESS_FIELDS if key in report}
