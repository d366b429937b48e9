// The training panel: the settings form and its validation, Train / Continue / Stop / Reset, the
// progress bar, the epoch-time estimate, the loss and accuracy charts, the first layer's filters,
// and what is said about the model (its state and held-out accuracy). Continue finishes the run
// the model's weights are from when it stopped before its end (Python's `resume`): the rest of its
// schedule with its own settings, as if it had never stopped.
import { AccuracyChart, LossChart } from "./chart.js";
import { FiltersView } from "./filters.js";
import { epochSeconds, fmtInt, fmtPct, fmtSeconds } from "./format.js";
import { UNTRAINED, whileBusy } from "./state.js";
import { FIELDS, validateSettings } from "./validate.js";

const RUN_RESULTS = { finished: "finished", stopped: "stopped", diverged: "stopped: the loss diverged", failed: "failed" };

export class TrainingPanel {
  /**
   * client: the WorkerClient; runs: the RunControl; state: the AppState; frame: the Frame; probe: the Probe;
   * messages / status: the banner and the status line; persistence: to forget the kept model on
   * Reset; el: this panel's elements (see main.js).
   */
  constructor({ client, runs, state, frame, probe, messages, status, announcer, persistence, projects, el }) {
    Object.assign(this, { client, runs, state, frame, probe, messages, status, announcer, persistence, projects, el });
    this.run = null; // {config, step, total_steps, epoch, epochs, batch, batches_per_epoch, images_per_second, result, stopClickedAt}
    this.epochsBeforeRun = 0;
    this.imagesPerSecond = null; // measured: the estimate, then real training
    this.evalImagesPerSecond = null;
    this.lossChart = new LossChart(el.lossChart);
    this.accuracyChart = new AccuracyChart(el.accuracyChart);
    this.filters = new FiltersView(el.filters, el.legend, el.deeperFilters, el.filtersTitle);
    this.redraws = {
      charts: () => {
        this.lossChart.render();
        this.accuracyChart.render();
      },
      progress: () => this.#renderProgress(),
      accuracy: () => this.#renderAccuracy(),
      controls: () => this.#renderControls(),
      resumable: () => this.#renderResumable(),
      model: () => this.#renderModelState(),
      estimate: () => this.#renderEstimate(),
    };

    for (const input of Object.values(el.inputs)) {
      input.addEventListener("input", () => {
        input.dataset.edited = "true";
        this.showValidation();
      });
      input.addEventListener("change", () => this.showValidation());
    }
    el.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#train();
    });
    el.continue.addEventListener("click", () => this.#continue());
    el.stop.addEventListener("click", () => this.#stop());
    el.reset.addEventListener("click", () => this.#reset());

    // a fine-tune's progress and end are yourdigits.js's
    client.on("epoch", (e) => this.#epoch(e));
    client.on("filters", ({ conv_layers }) => {
      this.filters.set(conv_layers);
      frame.request("filters", () => this.filters.render());
    });
    runs.watch("train", { progress: (p) => this.#progress(p), done: (d) => this.#done(d) });
    // what Continue would finish: told by Python whenever it appears (a stop, a model kept with one) or ends
    client.on("resumable", ({ run }) => state.setResumable(run));
    state.on("resumable", () => this.#render("controls", "resumable"));

    state.on("phase", () => {
      if (state.phase === "error") this.run = null;
      this.#render("controls", "estimate", "progress");
    });
    state.on("busy", () => this.#render("controls"));
    state.on("network", () => this.#render("controls"));
    state.on("project", () => this.#render("controls"));
    state.on("info", () => this.#applyDefaults());
    state.on("model", () => this.#render("model", "accuracy"));
    state.on("history", () => {
      this.lossChart.clear();
      this.lossChart.append(state.history.losses);
      this.accuracyChart.clear();
      for (const e of state.history.epochs) this.accuracyChart.append(e);
      this.#render("charts");
    });
    state.on("losses", (losses) => {
      this.lossChart.append(losses);
      this.#render("charts");
    });
    state.on("epoch", (result) => {
      this.accuracyChart.append(result);
      this.#render("charts");
    });
    this.#render("model", "accuracy", "progress", "charts", "controls", "resumable");
  }

  // ---------- settings ----------
  readSettings() {
    const info = this.state.info;
    if (!info) return { config: null, errors: {} }; // the limits come with the session's info
    const raw = Object.fromEntries(Object.entries(this.el.inputs).map(([name, input]) => [name, input.value]));
    return validateSettings(raw, info.limits, info.train_count, info.shards);
  }

  /** Show every field's message now; Train must never look enabled while a field is invalid. */
  showValidation() {
    const { config, errors } = this.readSettings();
    for (const name of Object.keys(FIELDS)) {
      const message = errors[name] ?? "";
      const error = this.el.errors[name];
      if (error) {
        error.textContent = message;
        error.hidden = !message;
      }
      this.el.inputs[name].setAttribute("aria-invalid", String(Boolean(message)));
    }
    this.el.form.dataset.valid = String(Boolean(config));
    this.#renderControls();
    this.#render("estimate");
    return config;
  }

  #applyDefaults() {
    const { defaults, limits, train_count: trainCount } = this.state.info;
    for (const [name, input] of Object.entries(this.el.inputs)) {
      const limit = limits[name];
      if (input.type === "number" && limit?.type === "int") { // the number fields' spinners stay in range
        input.min = String(limit.min);
        input.max = String(name === "train_size" ? Math.min(limit.max, trainCount) : limit.max);
      }
      // a field the learner already edited while Python was loading keeps their value
      const value = name === "train_size" ? Math.min(trainCount, defaults.train_size ?? trainCount) : defaults[name];
      if (value !== undefined && value !== null && !input.dataset.edited) input.value = String(value);
    }
    this.showValidation();
  }

  /** Time a few batches of the current settings, for the epoch-time estimate (again when the network changed). */
  async measureSpeed({ network = false } = {}) {
    const { config } = this.readSettings();
    if (network) {
      this.imagesPerSecond = null;
      this.#render("estimate");
    }
    if (!this.state.idle) return; // a run started meanwhile: it measures the speed itself
    try {
      const reply = await this.client.call("estimate", { config: config ?? {} });
      if (!this.imagesPerSecond && reply.train_images_per_second) this.imagesPerSecond = reply.train_images_per_second;
      this.evalImagesPerSecond = reply.eval_images_per_second;
    } catch (error) {
      if (this.state.phase !== "error") this.el.estimate.textContent = "";
      return;
    }
    this.#render("estimate");
  }

  // ---------- a run ----------
  async #train() {
    if (this.state.project) { // a project of your own classes is open: Train trains it from scratch
      if (this.state.networkReady) this.projects.train("scratch");
      return;
    }
    const config = this.showValidation();
    if (!config || !this.state.idle || !this.state.networkReady) return; // nothing is sent while a field is invalid
    this.messages.clear();
    this.run = {
      config, step: 0, total_steps: 0, epoch: 0, epochs: config.epochs, batch: 0, batches_per_epoch: 0,
      images_per_second: 0, result: "",
    };
    this.epochsBeforeRun = this.state.history.epochs.length;
    delete this.el.progress.dataset.batchesAfterStop;
    delete document.body.dataset.runResult;
    const join = this.el.joinDigits;
    const started = this.runs.start("train", { config, join_digits: Boolean(join && join.checked && !join.disabled) });
    this.status.say("Training…");
    this.#renderProgress(); // at once, so no stale step from the previous run is ever shown
    try {
      await started;
    } catch (error) { // refused (invalid settings): nothing started
      this.run = null;
      this.messages.show(error.message, "error");
      this.status.say("Training did not start");
      this.#renderProgress();
      return;
    }
    this.announcer.announce(`Training started: ${config.epochs} epoch${config.epochs === 1 ? "" : "s"} of ${fmtInt(config.train_size)} digits.`);
  }

  /** Continue: the rest of the stopped run, with its own settings (the form shows them while it trains). */
  async #continue() {
    const stopped = this.state.resumable;
    if (!stopped || !this.state.idle || !this.state.networkReady) return;
    this.messages.clear();
    const { config } = stopped;
    this.#showSettings(config);
    this.run = {
      config, step: stopped.step, total_steps: stopped.total_steps, epoch: stopped.epoch, epochs: stopped.epochs,
      batch: stopped.batch, batches_per_epoch: stopped.batches_per_epoch, images_per_second: 0, result: "",
    };
    // the run's epochs are numbered from its start: those it finished before the stop are in the history
    this.epochsBeforeRun = Math.max(0, this.state.history.epochs.length - Math.floor(stopped.step / stopped.batches_per_epoch));
    delete this.el.progress.dataset.batchesAfterStop;
    delete document.body.dataset.runResult;
    const started = this.runs.start("resume", {});
    this.status.say("Continuing the stopped run…");
    this.#renderProgress();
    try {
      await started;
    } catch (error) { // refused (your digits it joined changed since): the stopped run is still there
      this.run = null;
      this.messages.show(error.message, "error");
      this.status.say("The run did not continue");
      this.#renderProgress();
      return;
    }
    this.announcer.announce(`Continuing the run at epoch ${stopped.epoch} of ${stopped.epochs}, batch ${fmtInt(stopped.batch)} of ${fmtInt(stopped.batches_per_epoch)}.`);
  }

  /** The settings of the run being continued, in the form (where it has a field for them). */
  #showSettings(config) {
    for (const [name, input] of Object.entries(this.el.inputs)) {
      if (!(name in config) || config[name] === null) continue;
      input.value = String(config[name]);
      input.dataset.edited = "true";
    }
    this.showValidation();
  }

  #stop() {
    if (this.state.phase !== "training") return;
    this.el.stop.disabled = true;
    this.status.say("Stopping after the current batch…");
    if (this.run) this.run.stopClickedAt = performance.now();
    this.runs.stop();
  }

  #progress(p) {
    const run = this.run;
    if (!run) return;
    for (const key of ["step", "total_steps", "epoch", "epochs", "batch", "batches_per_epoch", "workers"]) run[key] = p[key];
    // images/s: smoothed over progress messages so the time left does not jump around
    if (p.images_per_second > 0) {
      run.images_per_second = run.images_per_second ? 0.7 * run.images_per_second + 0.3 * p.images_per_second : p.images_per_second;
      this.imagesPerSecond = run.images_per_second;
    }
    this.state.addLosses(p.losses);
    this.#render("progress");
  }

  #epoch(e) {
    const model = this.state.model;
    this.announcer.announce(`Epoch ${e.epoch} of ${this.run?.epochs ?? e.epoch} done: held-out accuracy ${fmtPct(e.val_accuracy)}.`);
    this.state.addEpoch({ ...e, epoch: this.epochsBeforeRun + e.epoch });
    this.state.describeModel(
      {
        kind: model.kind === "untrained" ? "trained" : model.kind,
        epochs: (model.epochs ?? 0) + 1,
        digits: this.run?.config.train_size ?? model.digits,
        partial: false,
      },
      { loss: e.val_loss, accuracy: e.val_accuracy },
    );
  }

  #done({ reason, evaluation, message, batches_after_stop: batchesAfterStop }) {
    const run = this.run;
    if (evaluation) this.state.describeModel({}, evaluation);
    if (run?.stopClickedAt !== undefined) {
      this.probe.set("stop_latency_ms", Math.round(performance.now() - run.stopClickedAt));
      if (batchesAfterStop !== undefined) this.el.progress.dataset.batchesAfterStop = String(batchesAfterStop);
    }
    if (run) run.result = RUN_RESULTS[reason] ?? reason;
    if (reason === "stopped" && run?.step > 0 && this.state.model.kind === "untrained") {
      // stopped inside the first epoch: the weights have learned something all the same
      this.state.describeModel({ kind: "trained", digits: run.config.train_size, partial: true });
    }
    if (reason === "finished") {
      this.status.say(`Finished: held-out accuracy ${evaluation ? fmtPct(evaluation.accuracy) : "–"}`);
    } else if (reason === "stopped") {
      const stopped = this.state.resumable; // told before done
      this.status.say(stopped
        ? `Stopped at epoch ${stopped.epoch} of ${stopped.epochs}, batch ${fmtInt(stopped.batch)} of ${fmtInt(stopped.batches_per_epoch)}. ` +
          "Continue finishes this run as if it had never stopped; Train starts a new run from these weights."
        : "Stopped. The model keeps what it learned so far; Train starts a new run from here.");
    } else if (reason === "diverged") {
      this.status.say("Training stopped: the loss diverged");
      this.messages.show(
        `Training stopped because the loss stopped being a finite number (${message}). ` +
          "The weights went back to their last good state. Try a smaller learning rate (for example 0.005).",
        "warning",
      );
    } else {
      this.status.say("Training failed");
      this.messages.show(`Training failed: ${message}`, "error");
    }
    this.announcer.announce(this.status.element.textContent);
    this.state.setPhase("ready");
    this.state.weightsChanged();
    // in the frame that shows the run's end (after its accuracy and model state): what reads the
    // result reads what the run left
    this.frame.request("training.runResult", () => {
      document.body.dataset.runResult = reason;
    });
  }

  async #reset() {
    if (!this.state.idle) return;
    const seed = this.readSettings().config?.seed ?? 0;
    const stopped = Boolean(this.state.resumable);
    await whileBusy(this.state, this.messages, async () => {
      await this.client.call("reset", { seed });
      this.run = null;
      delete document.body.dataset.runResult;
      await this.persistence.forget();
      this.state.replaceModel(UNTRAINED, null);
      this.status.say(`Fresh random weights: the model is untrained again${stopped ? ", and the stopped run cannot be continued" : ""}.`);
    });
    this.#render("progress");
  }

  // ---------- rendering ----------
  #render(...parts) {
    for (const part of parts) this.frame.request(`training.${part}`, this.redraws[part]);
  }

  #renderControls() {
    const { config } = this.readSettings();
    const idle = this.state.idle;
    const el = this.el;
    const project = this.state.project;
    el.train.disabled = project ? Boolean(this.projects.blocker("scratch")) || !this.state.networkReady
      : !(idle && config && this.state.networkReady);
    el.train.textContent = project ? "Train from scratch" : "Train";
    el.train.title = project ? this.projects.blocker("scratch") || `The network in the editor, from fresh weights, on your ${project.names.join(", ")} drawings` : "";
    // Continue takes the run's own settings: the form need not be valid
    const stopped = !project && this.state.resumable; // a stopped run of the digit network: Continue is the digits'
    el.continue.hidden = !stopped;
    el.continue.disabled = !(idle && stopped && this.state.networkReady);
    el.continue.classList.toggle("primary", Boolean(stopped)); // the first choice after a stop
    el.train.classList.toggle("primary", !stopped);
    el.stop.disabled = this.state.phase !== "training";
    el.reset.disabled = !idle;
    for (const input of Object.values(el.inputs)) input.disabled = this.state.phase === "training";
  }

  /** What Continue would do, by the buttons while it is on offer. */
  #renderResumable() {
    const stopped = this.state.resumable;
    const note = this.el.continueNote;
    note.hidden = !stopped;
    for (const key of ["step", "totalSteps"]) delete this.el.continue.dataset[key];
    if (!stopped) {
      note.textContent = "";
      return;
    }
    Object.assign(this.el.continue.dataset, { step: stopped.step, totalSteps: stopped.total_steps });
    const left = stopped.total_steps - stopped.step;
    note.textContent =
      `Continue: the stopped run goes on from epoch ${stopped.epoch} of ${stopped.epochs}, batch ${fmtInt(stopped.batch)} of ` +
      `${fmtInt(stopped.batches_per_epoch)} (${fmtInt(left)} batch${left === 1 ? "" : "es"} left) with its own settings, ` +
      "as if it had never stopped. Train starts a new run from these weights.";
  }

  #renderProgress() {
    const run = this.run;
    const el = this.el.progress;
    Object.assign(el.dataset, {
      step: run?.step ?? 0, totalSteps: run?.total_steps ?? 0, epoch: run?.epoch ?? 0, epochs: run?.epochs ?? 0,
      batch: run?.batch ?? 0, batchesPerEpoch: run?.batches_per_epoch ?? 0,
      imagesPerSecond: Math.round(run?.images_per_second ?? 0),
    });
    if (!run || !run.step) {
      this.el.progressBar.value = 0;
      this.el.progressText.textContent = run ? "Starting…" : "Not started";
      return;
    }
    this.el.progressBar.max = run.total_steps;
    this.el.progressBar.value = run.step;
    const parts = [`Epoch ${run.epoch} of ${run.epochs}`, `batch ${fmtInt(run.batch)} of ${fmtInt(run.batches_per_epoch)}`];
    if (run.images_per_second > 0) parts.push(`${fmtInt(run.images_per_second)} images/s`);
    if (run.workers) parts.push(`${run.workers} worker${run.workers === 1 ? "" : "s"}`);
    if (this.state.phase === "training") {
      if (run.images_per_second > 0) {
        const left = ((run.total_steps - run.step) * run.config.batch_size) / run.images_per_second;
        parts.push(`about ${fmtSeconds(left)} left`);
      }
    } else if (run.result) {
      parts.push(run.result);
    }
    this.el.progressText.textContent = parts.join(" · ");
  }

  #renderAccuracy() {
    const acc = this.state.evaluation?.accuracy;
    const { accuracy, accuracyDetail } = this.el;
    if (this.state.model.kind === "untrained" || !Number.isFinite(acc)) {
      accuracy.textContent = "–";
      accuracy.dataset.valAccuracy = "";
      accuracyDetail.textContent = "not trained yet";
      return;
    }
    const total = this.state.info?.heldout_count ?? 0;
    accuracy.textContent = fmtPct(acc);
    accuracy.dataset.valAccuracy = String(acc);
    accuracyDetail.textContent = total ? `${fmtInt(acc * total)} of ${fmtInt(total)} unseen digits right` : "";
  }

  #renderModelState() {
    const m = this.state.model;
    const epochs = m.epochs ? `${m.epochs} epoch${m.epochs === 1 ? "" : "s"}` : "part of an epoch";
    const text = {
      untrained: "Untrained model: its weights are random, so it guesses (about 1 digit in 10 right).",
      trained: `Trained for ${epochs} on ${fmtInt(m.digits)} digits in this browser.`,
      restored: `Restored from this browser's storage (${m.epochs ? `trained ${epochs}, ` : ""}saved ${new Date(m.savedAt).toLocaleString()}).`,
      loaded: `Loaded from the file ${m.fileName}.`,
    }[m.kind] ?? "";
    const partial = m.kind !== "untrained" && m.partial ? " The last run was stopped part-way through an epoch." : "";
    const steps = m.stepsKept ? ` Plus ${m.stepsKept} single step${m.stepsKept === 1 ? "" : "s"} kept from See inside one step.` : "";
    const tuned = m.kind !== "untrained" && m.fineTuned ? ` Fine-tuned on ${fmtInt(m.fineTuned)} of your digits.` : "";
    this.el.modelState.textContent = text + partial + steps + tuned;
  }

  #renderEstimate() {
    const { config } = this.readSettings();
    const el = this.el.estimate;
    if (!this.imagesPerSecond || !config) {
      el.textContent = this.state.phase === "ready" && !this.imagesPerSecond ? "Measuring this computer's speed…" : "";
      delete el.dataset.secondsPerEpoch;
      return;
    }
    const seconds = epochSeconds(config.train_size, this.state.info?.heldout_count ?? 0, this.imagesPerSecond, this.evalImagesPerSecond);
    el.dataset.secondsPerEpoch = seconds.toFixed(2);
    el.textContent =
      `One epoch of ${fmtInt(config.train_size)} digits takes about ${fmtSeconds(seconds)} on this computer ` +
      `(${fmtInt(this.imagesPerSecond)} images/s)` +
      (config.epochs > 1 ? `; ${config.epochs} epochs ≈ ${fmtSeconds(seconds * config.epochs)}.` : ".");
  }
}
