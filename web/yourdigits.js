// Teach it your handwriting. After a drawing is read, "It's a ..." adds it (the 28x28 image the
// network saw) to your digits; the gallery shows them by digit, each removable. They are kept in
// IndexedDB (store.js) across reloads and as a file (Export / Import, the format of
// pycnn.yourdigits). Fine-tune runs in the worker like training (progress, Stop), then says how
// well the network reads your digits before and after, measured on drawings it was not trained
// on, and the held-out MNIST accuracy before and after; Undo brings back the model from before.
// A checkbox by Train joins your digits to a full run instead.
// While a project of your own classes is open (projects.js), the same gallery, "It's a ..." buttons (one per
// class) and result show that project: its drawings, and its network's score; Fine-tune trains it by transfer.
import { download, readChosenFile } from "./files.js";
import { fmtInt, fmtPct } from "./format.js";
import { drawGrey } from "./insight.js";
import { whileBusy } from "./state.js";

const plural = (n, one, many = `${one}s`) => `${fmtInt(n)} ${n === 1 ? one : many}`;
const EMPTY_TEXT = "No digits of yours yet: draw a digit above and press the digit it is.";
const PROJECT_METHODS = new Set(["add_drawing", "remove_drawing"]); // changes of a project's drawings

export class YourDigits {
  /**
   * store: the ModelStore (opened by persistence); predictor: to take a drawing off the canvas once taught;
   * projects: the Projects part (a project's drawings are kept and trained there);
   * el: {title, intro, projectIntro, collectionTitle, teach, teachButtons (their container), teachHint, gallery, exportButton, importInput,
   * importLabel, removeAll, fineTune, note, stop, progress, progressBar, progressText, accuracy, undo, join,
   * joinLabel, storageNote}; the rest as for TrainingPanel.
   */
  constructor({ client, runs, state, frame, probe, messages, status, announcer, store, persistence, predictor, projects, el }) {
    Object.assign(this, { client, runs, state, frame, probe, messages, status, announcer, store, persistence, predictor, projects, el });
    this.digits = { count: 0, counts: new Array(10).fill(0), labels: [], images: null };
    // changes of your digits go to Python one at a time, in the order asked, none dropped: the chain of them,
    // how many are sent or waiting, and the reply not yet kept in IndexedDB (the last of a burst is)
    this.chain = Promise.resolve();
    this.pending = 0;
    this.unkept = null;
    this.adding = 0; // drawings taken off the canvas by "It's a ..." and not yet added
    // a key per drawing shown, in their order, so a removal asked while others are on their way removes the
    // drawing pressed (its index may have moved by then)
    this.keys = [];
    this.projectKeys = new Map(); // the same for each project's drawings: id -> keys
    this.nextKey = 0;
    this.result = null; // the last fine-tune's result (the digits'), shown again when the digits are open
    this.keeping = null; // true: kept in this browser; false: could not be; null: not known yet
    this.canUndo = false; // the session holds the model from before the last fine-tune
    this.run = null; // {step, total_steps, epoch, epochs, phase, method, count} while fine-tuning

    el.teachButtons.addEventListener("click", (event) => {
      const button = event.target.closest("[data-label]");
      if (button) this.teach(Number(button.dataset.label));
    });
    el.gallery.addEventListener("click", (event) => {
      const item = event.target.closest("[data-index]");
      if (item) this.#remove(Number(item.dataset.index));
    });
    el.exportButton.addEventListener("click", () => this.#export());
    el.importInput.addEventListener("change", () => this.#import());
    el.removeAll.addEventListener("click", () => this.#removeAll());
    el.fineTune.addEventListener("click", () => (this.state.project ? this.projects.train("transfer") : this.#fineTune()));
    el.stop.addEventListener("click", () => this.#stop());
    el.undo.addEventListener("click", () => this.#undo());

    runs.watch("fine_tune", { progress: (p) => this.#progress(p), done: (d) => this.#done(d) });
    // a run, a reset or another model replaces the one a fine-tune could go back from
    state.on("history", () => this.#dropUndo());
    state.on("phase", () => {
      if (state.phase === "training" && state.job === "train") this.#dropUndo();
      this.#renderControls();
    });
    for (const event of ["busy", "model", "reading"]) state.on(event, () => this.#renderControls());
    state.on("project", () => {
      this.frame.request("yourdigits.gallery", () => this.#renderGallery());
      this.#renderControls();
      this.#renderAccuracy();
    });
    this.#renderGallery();
    this.#renderControls();
  }

  /** Bring back the digits kept in this browser (at ready, after the model). */
  async restore() {
    this.keeping = await this.persistence.opened;
    if (!this.keeping) {
      this.#storageNote(`Your digits won't be kept across reloads here (${this.store.reason || "browser storage is unavailable"}). Use Export to keep them.`);
      return;
    }
    let record = null;
    try {
      record = await this.store.loadDigits();
    } catch (error) {
      record = null;
    }
    if (record?.bytes) {
      const bytes = new Uint8Array(record.bytes);
      try {
        const reply = await this.client.call("import_digits", { data: bytes, replace: true });
        this.#rekey("import_digits", {}, reply);
        this.#show(reply);
      } catch (error) {
        // left in storage as they are: a later version of the page may read them
        this.messages.show(`Your digits kept in this browser could not be read (${error.message}).`, "warning");
      }
    }
    this.#storageNote("Your digits are kept in this browser.");
    if (this.persistence.restoredUndo) { // the model kept was fine-tuned: Undo can still bring back the one before
      this.canUndo = true;
      this.#renderControls();
    }
  }

  // ---------- changing your digits ----------
  /**
   * Change your digits with Python's `method`, after the changes asked before it -> its reply (null: skipped).
   * args: the request's arguments, or a function that makes them when it is sent (null: skip it). Each reply is
   * shown; the last of a burst is kept in IndexedDB (its file holds them all).
   */
  #change(method, args = {}) {
    this.pending += 1;
    this.#renderControls();
    const done = this.chain.then(async () => {
      try {
        const sent = typeof args === "function" ? args() : args;
        if (!sent) return null;
        const reply = await this.client.call(method, sent);
        this.#rekey(method, sent, reply);
        if (PROJECT_METHODS.has(method)) {
          this.projects.show(reply); // kept there, as a project file
        } else {
          this.#show(reply);
          this.unkept = reply;
        }
        return reply;
      } finally {
        this.pending -= 1;
        if (!this.pending && this.unkept) {
          const reply = this.unkept;
          this.unkept = null;
          await this.#keep(reply.file, reply.count);
        }
        this.#renderControls();
      }
    });
    this.chain = done.catch(() => {});
    return done;
  }

  /** The keys of the drawings after Python's `method` answered `reply`. */
  #rekey(method, args, reply) {
    if (PROJECT_METHODS.has(method)) {
      const { id, count } = reply.project;
      const keys = this.projectKeys.get(id);
      if (keys && method === "add_drawing" && keys.length === count - 1) keys.push(this.nextKey++);
      else if (keys && method === "remove_drawing" && keys.length === count + 1) keys.splice(args.index, 1);
      else this.projectKeys.set(id, Array.from({ length: count }, () => this.nextKey++));
    } else if (method === "add_digit") this.keys.push(this.nextKey++);
    else if (method === "remove_digit") this.keys.splice(args.index, 1);
    else this.keys = reply.labels.map(() => this.nextKey++);
  }

  /** The keys of the drawings of the collection shown: your digits, or the open project's (made for one not seen
   * before). */
  #shownKeys() {
    const project = this.state.project;
    if (!project) return this.keys;
    if (this.projectKeys.get(project.id)?.length !== project.count) {
      this.projectKeys.set(project.id, Array.from({ length: project.count }, () => this.nextKey++));
    }
    return this.projectKeys.get(project.id);
  }

  /**
   * "It's a <digit>": the drawing is taken off the canvas at once (the next one can begin) and added after the
   * adds before it -> a promise of whether it was added, or null when nothing was taken (the page says why).
   * One that cannot be added says why and goes back on the canvas if nothing was drawn since. The state
   * emits "taught" {digit, added: that promise}.
   */
  teach(digit) {
    if (this.state.reading?.source !== "drawing") return null;
    const project = this.state.project;
    const most = project ? this.state.info?.projects?.max_drawings ?? Infinity : this.state.info?.my_digits?.max_digits ?? Infinity;
    if ((project ? project.count : this.digits.count) + this.adding >= most) {
      const what = project ? `the project has ${fmtInt(most)} drawings, the most it keeps` : `you have ${fmtInt(most)} digits, the most the page keeps`;
      this.messages.show(`Could not add the drawing: ${what}. Remove some first; your drawing is still there.`, "error");
      return null;
    }
    const taken = this.predictor.takeDrawing();
    if (!taken) {
      this.status.say(`Nothing to add: draw the next ${project ? "one" : "digit"} first.`);
      return null;
    }
    const added = project ? this.#add(digit, taken, project) : this.#add(digit, taken);
    this.state.emit("taught", { digit, added, project: project?.id ?? null });
    return added;
  }

  /** Every change of your digits asked so far is made (or refused). */
  settled() {
    return this.chain;
  }

  /** Add drawing `taken` as `label` of your digits, or of `project` (the one it was drawn for) -> whether it was. */
  async #add(label, taken, project = null) {
    const name = project ? project.names[label] : String(label);
    this.adding += 1;
    this.probe.count("my_digits_asked");
    if (this.adding > 1) this.status.say(`Adding your ${name} after the ${plural(this.adding - 1, "drawing")} before it…`);
    const { pixels: data, width, height } = taken;
    const cleared = this.predictor.drawing.version; // the canvas' version once the drawing was taken off it
    try {
      const reply = project
        ? await this.#change("add_drawing", { label, data, width, height, project: project.id })
        : await this.#change("add_digit", { label, data, width, height });
      this.probe.count("my_digits_added");
      if (this.predictor.drawing.version > cleared) this.probe.count("my_digits_added_while_drawing");
      const { counts, count } = project ? reply.project : reply;
      const text = `Added your ${name}: ${plural(counts[label], `drawing of ${name}`, `drawings of ${name}`)}, ${plural(count, project ? "drawing" : "digit")} in all.`;
      this.status.say(text);
      this.announcer.announce(text);
      return true;
    } catch (error) {
      const back = this.predictor.putBack(taken);
      this.messages.show(`Could not add your drawing of ${name}: ${error.message}. ${back ? "It is back on the canvas." : "It was not added."}`, "error");
      return false;
    } finally {
      this.adding -= 1;
    }
  }

  async #remove(index) {
    const project = this.state.project;
    const keys = this.#shownKeys();
    const key = keys[index];
    const label = project ? project.names[project.labels[index]] : this.digits.labels[index];
    try {
      const where = () => { // where it is once the changes before this one are made
        const now = keys.indexOf(key);
        return now < 0 ? null : { index: now, ...(project ? { project: project.id } : {}) };
      };
      const reply = project ? await this.#change("remove_drawing", where) : await this.#change("remove_digit", where);
      const left = project ? reply?.project.count : reply?.count;
      if (reply) this.status.say(`Removed a drawing of ${label}: ${plural(left, project ? "drawing" : "digit")} left.`);
    } catch (error) {
      this.messages.show(`Could not remove the drawing: ${error.message}`, "error");
    }
  }

  async #removeAll() {
    const count = this.digits.count;
    const what = count === 1 ? "your one digit" : `all ${fmtInt(count)} of your digits`;
    if (!count || !window.confirm(`Remove ${what}? Export them first to keep a copy.`)) return;
    try {
      const reply = await this.#change("remove_all_digits");
      if (reply) this.status.say(`Removed all your digits (${fmtInt(count)}).`);
    } catch (error) {
      this.messages.show(`Could not remove your digits: ${error.message}`, "error");
    }
  }

  async #export() {
    try {
      const reply = await this.client.call("export_digits");
      download(reply.file_name, reply.bytes);
      this.status.say(`Exported ${plural(reply.count, "digit")} as ${reply.file_name}.`);
    } catch (error) {
      this.messages.show(`Could not export your digits: ${error.message}`, "error");
    }
  }

  async #import() {
    const refuse = (name, why) => this.messages.show(`Could not import ${name}: ${why}. Your digits are unchanged.`, "error");
    const chosen = await readChosenFile(this.el.importInput, this.state.info?.my_digits?.max_file_bytes, "a digits file", refuse);
    if (!chosen) return;
    const { file, bytes } = chosen;
    try {
      const reply = await this.#change("import_digits", { data: bytes });
      if (!reply) return;
      this.messages.clear();
      this.status.say(`Imported ${plural(reply.added, "digit")} from ${file.name}: ${plural(reply.count, "digit")} in all.`);
    } catch (error) {
      refuse(file.name, error.message);
    }
  }

  /** Keep the digits file in IndexedDB; when storage is full, the Python snapshot makes room first. */
  async #keep(bytes, count) {
    if (!this.keeping) return;
    const record = { format: 1, bytes, count, savedAt: Date.now() };
    try {
      await this.store.saveDigits(record);
      this.probe.set("my_digits_kept", count);
      this.#storageNote("Your digits are kept in this browser.");
    } catch (error) {
      this.keeping = false;
      const why = error?.name === "QuotaExceededError" ? "the browser's storage for this page is full"
        : error?.message || error?.name || String(error);
      this.#storageNote(`Could not keep your digits in this browser (${why}); they won't be kept across reloads. Use Export to keep them.`);
    }
  }

  #storageNote(text) {
    this.el.storageNote.dataset.kept = String(Boolean(this.keeping));
    this.el.storageNote.textContent = text;
  }

  // ---------- fine-tuning ----------
  /** Fine-tune on your digits (as the button does) -> whether it started; blocker() says why not. */
  fineTune() {
    return this.#fineTune();
  }

  /** Why Fine-tune cannot start now, or "" when it can. */
  blocker() {
    return this.#fineTuneBlocker();
  }

  async #fineTune() {
    if (this.#fineTuneBlocker()) return false;
    this.messages.clear();
    this.run = {
      step: 0, total_steps: 0, epoch: 0, epochs: 0, phase: "preparing", method: "", count: this.digits.count,
      startedAt: performance.now(), endsStoppedRun: Boolean(this.state.resumable),
    };
    delete this.el.progress.dataset.result;
    const started = this.runs.start("fine_tune", { config: {} });
    this.status.say("Fine-tuning on your digits…");
    this.#renderProgress();
    try {
      this.#started(await started);
    } catch (error) { // refused (no digits, a bad recipe): nothing started
      this.run = null;
      this.messages.show(error.message, "error");
      this.status.say("The fine-tune did not start: the model is as it was before.");
      this.#renderProgress();
      return false;
    }
    this.announcer.announce(`Fine-tuning on your ${plural(this.digits.count, "digit")} started.`);
    return true;
  }

  #stop() {
    if (this.state.job !== "fine_tune") return;
    this.el.stop.disabled = true;
    this.status.say("Stopping the fine-tune…");
    this.runs.stop();
  }

  #started({ total_steps: totalSteps, runs, method, count }) {
    if (!this.run) return;
    Object.assign(this.run, { total_steps: totalSteps, epochs: runs, method, count });
    this.#renderProgress();
  }

  #progress(p) {
    if (!this.run) return;
    for (const key of ["step", "total_steps", "epoch", "epochs", "phase"]) this.run[key] = p[key];
    this.frame.request("yourdigits.progress", () => this.#renderProgress());
  }

  #done({ reason, evaluation, message, fine_tune: result }) {
    const run = this.run;
    if (run) {
      run.ms = performance.now() - run.startedAt;
      this.probe.set("fine_tune_ms", Math.round(run.ms));
    }
    this.el.progress.dataset.result = reason;
    if (reason === "finished" && result) {
      this.canUndo = true;
      this.#showResult(result);
      this.state.describeModel({ fineTuned: result.digits.n }, evaluation);
      this.status.say(`Fine-tuned on your ${plural(result.digits.n, "digit")}.` +
        (run?.endsStoppedRun ? " The stopped run cannot be continued now (Undo fine-tune brings it back)." : ""));
    } else if (reason === "stopped") {
      this.status.say("Fine-tune stopped: the model is as it was before.");
    } else if (reason === "diverged") {
      this.messages.show(`The fine-tune stopped: ${message}`, "warning");
    } else {
      this.status.say("The fine-tune failed: the model is as it was before.");
      this.messages.show(`Fine-tuning failed: ${message}`, "error");
    }
    if (run) run.result = reason;
    this.announcer.announce(this.status.element.textContent);
    this.state.setPhase("ready");
    if (reason === "finished") this.state.weightsChanged();
    this.#renderProgress();
  }

  async #undo() {
    if (!this.canUndo || !this.state.idle) return;
    await whileBusy(this.state, this.messages, async () => {
      const { evaluation } = await this.client.call("undo_fine_tune");
      this.canUndo = false;
      this.state.describeModel({ fineTuned: 0 }, evaluation);
      this.state.weightsChanged();
      this.el.accuracy.dataset.undone = "true";
      this.status.say(`Undone: the model from before the fine-tune is back (held-out accuracy ${fmtPct(evaluation.accuracy)}).`);
    });
  }

  #dropUndo() {
    if (!this.canUndo) return;
    this.canUndo = false;
    this.#renderControls();
  }

  /** Why Fine-tune cannot start now, or "" when it can. */
  #fineTuneBlocker() {
    if (this.state.phase === "training") return this.state.job === "fine_tune" ? "Fine-tuning…" : "Wait for the training run to end.";
    if (this.state.phase !== "ready") return "Python is still loading.";
    if (!this.digits.count) return "Add some of your digits first: draw a digit above and press the digit it is.";
    if (this.state.model.kind === "untrained") return "Train the model (or load one) first: fine-tuning adjusts a trained network to your hand.";
    if (this.state.busy || this.pending) return "Wait a moment…";
    return "";
  }

  // ---------- rendering ----------
  #show(reply) {
    this.digits = { count: reply.count, counts: reply.counts, labels: reply.labels, images: reply.images };
    this.state.setMyDigits({ count: reply.count, counts: reply.counts });
    this.frame.request("yourdigits.gallery", () => this.#renderGallery());
    this.#renderControls();
  }

  /** The result shown: the last fine-tune's (the digits), or the open project's network's score. */
  #renderAccuracy() {
    const project = this.state.project;
    const el = this.el.accuracy;
    if (!project) {
      if (this.result) this.#showResult(this.result);
      else el.hidden = true;
      return;
    }
    const result = project.results?.[project.model_from];
    const evaluation = result?.evaluation;
    el.hidden = !evaluation;
    if (!evaluation) return;
    delete el.dataset.undone;
    const how = project.model_from === "transfer" ? "by transfer" : "from scratch";
    Object.assign(el.dataset, {
      before: "", after: evaluation.accuracy === null ? "" : String(evaluation.accuracy), mnistBefore: "", mnistAfter: "",
      method: evaluation.method.includes("cross-validation") ? "cross-validation" : "held-back",
    });
    el.querySelector(".my-accuracy-digits").textContent =
      `Your ${plural(project.names.length, "class", "classes")}: ${evaluation.accuracy === null ? "not measured" : fmtPct(evaluation.accuracy)} read right (trained ${how})`;
    el.querySelector(".my-accuracy-method").textContent =
      `Measured by ${evaluation.method}${evaluation.scored === undefined ? "" : ` on ${plural(evaluation.scored, "drawing")}`}: each read by a network trained on the other drawings only, so never by a network trained on it.`;
    el.querySelector(".my-accuracy-mnist").textContent = "";
  }

  #showResult(result) {
    this.result = result;
    if (this.state.project) return; // shown when the digits are open again
    const { digits, mnist } = result;
    const el = this.el.accuracy;
    el.hidden = false;
    delete el.dataset.undone;
    Object.assign(el.dataset, {
      before: String(digits.before), after: digits.after === null ? "" : String(digits.after),
      mnistBefore: String(mnist.before), mnistAfter: mnist.after === null ? "" : String(mnist.after),
      method: digits.after === null ? "none" : digits.scored < digits.n ? "held-back" : "cross-validation",
    });
    const after = digits.after === null ? "not measured" : fmtPct(digits.after);
    el.querySelector(".my-accuracy-digits").textContent = `Your digits: ${fmtPct(digits.before)} → ${after}`;
    let how;
    if (digits.after === null) {
      how = `Before: the network as it was, on your drawing. After: not measured, because one drawing is not enough to check it on a drawing it was not trained on. Add more to see it.`;
    } else if (digits.scored < digits.n) {
      how = `Before: the network as it was, on all ${fmtInt(digits.n)} of your drawings. After: measured on a held-back part (${fmtInt(digits.scored)} drawings) read by a network fine-tuned on the others only, so it was never trained on them.`;
    } else {
      const folds = digits.method.split("-")[0];
      how = `Before: the network as it was, on all ${fmtInt(digits.n)} of your drawings. After: measured by ${digits.method}: your drawings were split into ${folds} parts, and each part was read by a network fine-tuned on the other parts only, so none was read by a network trained on it.`;
      if (digits.untaught) how += ` ${plural(digits.untaught, "drawing was", "drawings were")} of a digit that network never saw from you, which is harder.`;
    }
    el.querySelector(".my-accuracy-method").textContent = how;
    el.querySelector(".my-accuracy-mnist").textContent =
      `Held-out MNIST digits (${fmtInt(mnist.n)}, never trained on): ${fmtPct(mnist.before)} → ${mnist.after === null ? "–" : fmtPct(mnist.after)}`;
  }

  #renderControls() {
    const el = this.el;
    const project = this.state.project;
    const reading = this.state.reading;
    const canTeach = reading?.source === "drawing" && (this.state.phase === "ready" || this.state.phase === "training");
    this.#renderTeachButtons();
    el.teach.hidden = !canTeach;
    for (const button of el.teachButtons.children) button.disabled = !canTeach; // adds wait their turn, none is refused for it
    if (canTeach) el.teach.dataset.reads = reading.prediction === null ? "" : String(reading.prediction);
    el.title.textContent = project ? `Your classes: ${project.names.join(", ")}` : "Teach it your handwriting";
    el.intro.hidden = Boolean(project);
    el.projectIntro.hidden = !project;
    el.collectionTitle.textContent = project ? "Your drawings" : "Your digits";
    el.storageNote.hidden = Boolean(project); // the digits'; a project says its own
    el.teachHint.textContent = project ? "adds the drawing to that class" : "adds the drawing to your digits";
    const blocker = project ? this.projects.blocker("transfer") : this.#fineTuneBlocker();
    el.fineTune.textContent = project ? "Train by transfer" : "Fine-tune";
    el.fineTune.disabled = Boolean(blocker);
    el.fineTune.title = blocker;
    const busy = project ? this.state.job === "train_project" : this.state.job === "fine_tune";
    el.note.textContent = blocker && !busy ? blocker : busy ? ""
      : project ? `Train a network on your ${plural(project.count, "drawing")} of ${plural(project.names.length, "class", "classes")}.`
      : `Fine-tune the network on your ${plural(this.digits.count, "digit")}.`;
    el.note.dataset.reason = blocker ? "blocked" : "ready";
    el.stop.hidden = Boolean(project);
    el.stop.disabled = this.state.job !== "fine_tune";
    el.undo.disabled = !(this.canUndo && this.state.idle);
    el.undo.hidden = Boolean(project) || (!this.canUndo && el.accuracy.dataset.undone !== "true");
    const idle = this.state.phase === "ready" || this.state.phase === "training";
    for (const control of [el.exportButton, el.importLabel, el.removeAll]) control.hidden = Boolean(project); // the digits'
    el.exportButton.disabled = !idle || !this.digits.count;
    el.removeAll.disabled = !idle || !this.digits.count || this.pending;
    el.importInput.disabled = !idle || this.pending;
    el.importLabel.dataset.disabled = String(el.importInput.disabled);
    el.join.disabled = !this.digits.count || this.state.phase === "training";
    if (!this.digits.count) el.join.checked = false;
    el.joinLabel.querySelector(".join-count").textContent = this.digits.count ? ` (${fmtInt(this.digits.count)})` : "";
  }

  /** One "It's a ..." button per class of what is open (the digits, or the project's names). */
  #renderTeachButtons() {
    const names = this.state.classNames;
    const container = this.el.teachButtons;
    const shown = [...container.children].map((button) => button.textContent);
    if (shown.length === names.length && shown.every((text, i) => text === names[i])) return;
    container.replaceChildren(...names.map((name, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.label = String(i);
      button.setAttribute("data-testid", `teach-${i}`);
      button.textContent = name;
      return button;
    }));
  }

  #renderProgress() {
    const run = this.run;
    const el = this.el.progress;
    el.hidden = !run;
    if (!run) return;
    Object.assign(el.dataset, { step: run.step, totalSteps: run.total_steps, phase: run.phase });
    this.el.progressBar.max = Math.max(1, run.total_steps);
    this.el.progressBar.value = run.step;
    if (run.result) {
      this.el.progressText.textContent = { finished: `Done in ${(run.ms / 1000).toFixed(1)} s.`, stopped: "Stopped: the model is as it was.",
        diverged: "Stopped: the loss diverged.", failed: "Failed." }[run.result] ?? run.result;
      return;
    }
    const what = run.phase === "preparing" ? "Reading your digits and the MNIST digits mixed in through the filters"
      : run.phase === "fine-tuning" || run.epochs === 1 ? "Fine-tuning on all your digits"
      : `Measuring: fine-tune ${run.epoch} of ${run.epochs - 1} on part of your digits, read the rest`;
    this.el.progressText.textContent = run.step ? `${what} · step ${fmtInt(run.step)} of ${fmtInt(run.total_steps)}` : "Starting…";
  }

  /** Your digits, or the open project's drawings, by class. */
  #renderGallery() {
    const project = this.state.project;
    const { count, counts, labels, images } = project ?? this.digits;
    const names = this.state.classNames;
    const gallery = this.el.gallery;
    gallery.dataset.count = String(count);
    gallery.dataset.project = project ? String(project.id) : "";
    gallery.replaceChildren();
    if (!count) {
      const p = document.createElement("p");
      p.className = "hint";
      p.textContent = project ? `No drawings yet: draw a ${names[0]} above and press It's a ${names[0]}; then one of each other class.` : EMPTY_TEXT;
      gallery.append(p);
      return;
    }
    const byClass = names.map(() => []);
    labels.forEach((label, index) => byClass[label].push(index));
    const size = 28 * 28;
    names.forEach((name, label) => {
      if (!counts[label]) return;
      const group = document.createElement("div");
      group.className = "my-digit-group";
      group.dataset.digit = String(label);
      group.dataset.count = String(counts[label]);
      const title = document.createElement("h4");
      title.textContent = `${name} `;
      const n = document.createElement("span");
      n.className = "hint";
      n.textContent = `× ${fmtInt(counts[label])}`;
      title.append(n);
      const items = document.createElement("div");
      items.className = "my-digit-items";
      byClass[label].forEach((index, k) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "my-digit";
        button.dataset.index = String(index);
        button.setAttribute("data-testid", "my-digit");
        button.setAttribute("aria-label", `Remove drawing ${k + 1} of ${counts[label]} of ${project ? name : `the digit ${name}`}`);
        button.title = "Remove this drawing";
        const canvas = document.createElement("canvas");
        drawGrey(canvas, [28, 28], images.data.subarray(index * size, (index + 1) * size), 1);
        const cross = document.createElement("span");
        cross.className = "my-digit-remove";
        cross.setAttribute("aria-hidden", "true");
        cross.textContent = "×";
        button.append(canvas, cross);
        items.append(button);
      });
      group.append(title, items);
      gallery.append(group);
    });
  }
}
