"""A job of several short training runs that measures itself, a batch per step: what Fine-tune
(yourdigits.FineTuneJob) and a project's training (classes.Transfer, classes.FromScratch) share.

The steps come in this order: the job's preparing steps (features computed ahead, if any), then a
run for each scored fold (its model reads the fold's drawings, which it was not trained on), then
the final run (None), whose model the job keeps. Every run takes config.steps batches. run() and
progress() follow Trainer's: the page and the command line drive either the same way.
"""
import time

from .training import TrainingDiverged


class FoldedJob:
    """Subclasses set config (with steps and batch_size), runs (the scored folds, then None), prepare_steps,
    step = 0, model = None (the model kept, once done), seconds = 0.0 and _trainer = None, and say how a run
    starts (_start) and ends (_finish)."""

    final_phase = "training"  # what progress() calls the final run

    @property
    def total_steps(self):
        return self.prepare_steps + len(self.runs) * self.config.steps

    @property
    def done(self):
        return self.model is not None

    def _preparing(self):
        """Whether the next step is a preparing one."""
        return False

    def _prepare_step(self):
        """One preparing step."""
        raise NotImplementedError

    def _start(self, run):
        """The Trainer of run `run`: a scored fold's, or the final one (None)."""
        raise NotImplementedError

    def _finish(self, run, trainer):
        """Run `run` is over: score its fold, or keep the final model."""
        raise NotImplementedError

    def _diverged(self, index, error):
        """Run number `index` blew up (TrainingDiverged `error`): raise, or set the job up to begin it again."""
        raise error

    def run(self, max_batches=None, callback=None):
        """Run up to max_batches steps (all that remain when None) -> progress() plus "stopped": callback(progress
        of the run in flight) after each of its batches; returning False stops."""
        started = time.perf_counter()
        left = self.total_steps - self.step if max_batches is None else int(max_batches)
        losses, stopped = [], False
        try:
            while left > 0 and not self.done:
                if self._preparing():
                    self._prepare_step()
                    self.step += 1
                    left -= 1
                    continue
                index = (self.step - self.prepare_steps) // self.config.steps
                run = self.runs[index]
                if self._trainer is None:
                    self._trainer = self._start(run)
                before = self._trainer.step
                try:
                    report = self._trainer.run(max_batches=left, callback=callback)
                except TrainingDiverged as error:
                    self._trainer = None
                    self._diverged(index, error)
                    continue
                self.step += self._trainer.step - before
                left -= self._trainer.step - before
                losses += report["losses"]
                if self._trainer.done:
                    trainer, self._trainer = self._trainer, None
                    self._finish(run, trainer)
                if report["stopped"]:
                    stopped = True
                    break
        finally:
            self.seconds += time.perf_counter() - started
        return {**self.progress(losses), "stopped": stopped}

    def progress(self, losses=()):
        """The report of a job, in Trainer.progress's fields: "step", "total_steps", "epoch" (the run in flight,
        1-based; 0 while preparing) of "epochs" (the scored folds and the final run), "batch" (steps done in it,
        or of preparing) of "batches_per_epoch", "losses" (of the batches just run), "accuracy" (None), "images"
        (trained on), "epoch_results" (none), "done"; plus "phase": "preparing" | "measuring" | final_phase |
        "done"."""
        if self._preparing():
            phase, index, batch, batches = "preparing", -1, self.step, self.prepare_steps
        else:
            done_steps = self.step - self.prepare_steps
            index = min(max(done_steps - 1, 0) // self.config.steps, len(self.runs) - 1)
            batch, batches = done_steps - index * self.config.steps, self.config.steps
            phase = "done" if self.done else self.final_phase if self.runs[index] is None else "measuring"
        return {"step": self.step, "total_steps": self.total_steps, "epoch": index + 1, "epochs": len(self.runs),
                "batch": batch, "batches_per_epoch": batches, "losses": list(losses), "accuracy": None,
                "images": len(losses) * self.config.batch_size, "epoch_results": [], "done": self.done,
                "phase": phase}
