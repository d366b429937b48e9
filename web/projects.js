// Projects of your own classes: name 2 to 20 classes, draw examples of each (the gallery and "It's a ..." are
// yourdigits.js's, for the digits and for the project open alike), and train a network to tell them apart: by
// transfer (a new head on the digit network's filters, which stay as they are) or from scratch (the network in
// the editor, from fresh weights). Each way is scored on drawings the network was not trained on, and the two
// scores stand side by side. The project bar chooses what the page is about, the digits or a project; switching
// loses nothing. Each project is kept in IndexedDB (its file: names, drawings, model; and its scores) and comes
// back after a reload, the one open too.
import { download, readChosenFile } from "./files.js";
import { fmtInt, fmtPct } from "./format.js";

const HOW = { transfer: "By transfer", scratch: "From scratch" };
const HOW_TEXT = {
  transfer: "a new head on the digit network's filters, which stay as they are",
  scratch: "the network in the editor, every weight learnt from your drawings",
};

export class Projects {
  /**
   * store: the ModelStore (opened by persistence); el: {select, names, create, error, remove, exportButton,
   * importInput, importLabel, results, progress, progressBar, progressText, stop, tryTitle, tryIntro}; the rest as
   * for TrainingPanel.
   */
  constructor({ client, runs, state, frame, probe, messages, status, announcer, store, persistence, el }) {
    Object.assign(this, { client, runs, state, frame, probe, messages, status, announcer, store, persistence, el });
    this.keeping = false; // projects are kept in this browser (IndexedDB opened)
    this.run = null; // {how, project, step, total_steps, phase, result} while a project trains, and after

    el.create.addEventListener("click", () => this.#create());
    el.names.addEventListener("keydown", (event) => {
      if (event.key === "Enter") this.#create();
    });
    el.names.addEventListener("input", () => this.#error(""));
    el.select.addEventListener("change", () => this.#open(el.select.value === "" ? null : Number(el.select.value)));
    el.remove.addEventListener("click", () => this.#remove());
    el.exportButton.addEventListener("click", () => this.#export());
    el.importInput.addEventListener("change", () => this.#import());
    el.stop.addEventListener("click", () => {
      if (this.state.job === "train_project") this.runs.stop();
    });
    runs.watch("train_project", { progress: (p) => this.#progress(p), done: (d) => this.#done(d) });
    state.on("project", () => this.frame.request("projects", () => this.#render()));
    for (const event of ["phase", "busy", "model"]) state.on(event, () => this.frame.request("projects", () => this.#render()));
    this.#render();
  }

  /** Bring back the projects kept in this browser, and open the one that was open (at ready). */
  async restore() {
    this.keeping = await this.persistence.opened;
    if (!this.keeping) return;
    let records = [];
    let open = null;
    try {
      records = await this.store.loadProjects();
      open = await this.store.loadOpenProject();
    } catch (error) {
      records = [];
    }
    let reply = null;
    for (const record of records) {
      try {
        reply = await this.client.call("load_project", { data: new Uint8Array(record.bytes), project: record.id, results: record.results ?? null });
      } catch (error) { // left in storage as it is: a later version of the page may read it
        this.messages.show(`A project kept in this browser could not be read (${error.message}).`, "warning");
      }
    }
    if (open !== null && reply?.projects.some((p) => p.id === open)) reply = await this.client.call("open_project", { project: open });
    if (reply) this.state.setProject(reply);
  }

  /** A reply of Python's project() after a change of the project open (its drawings): show it and keep it. */
  show(reply) {
    this.state.setProject(reply);
    if (reply.project) this.#keep(reply.project);
  }

  /** Why the open project cannot train `how` ("transfer", "scratch") now, or "" when it can. */
  blocker(how) {
    const project = this.state.project;
    if (!project) return "Open a project first.";
    if (this.state.phase === "training") return this.state.job === "train_project" ? "Training…" : "Wait for the run to end.";
    if (this.state.phase !== "ready") return "Python is still loading.";
    const empty = project.names.filter((_, i) => !project.counts[i]);
    if (empty.length) return `Draw at least one of each class first; none yet of ${empty.join(", ")}.`;
    if (how === "transfer" && this.state.model.kind === "untrained") {
      return "Train the digit network (or load one) first: transfer reuses its filters. From scratch needs none.";
    }
    if (this.state.busy) return "Wait a moment…";
    return "";
  }

  /** Train the open project by transfer or from scratch (Fine-tune and Train, while a project is open). */
  async train(how) {
    const blocked = this.blocker(how);
    if (blocked) {
      this.status.say(blocked);
      return;
    }
    const project = this.state.project;
    this.messages.clear();
    this.run = { how, project: project.id, names: project.names, step: 0, total_steps: 0, phase: "preparing", result: null, startedAt: performance.now() };
    delete this.el.progress.dataset.result; // the last run's
    const started = this.runs.start("train_project", { how });
    this.status.say(`Training ${project.names.join(", ")} ${how === "transfer" ? "by transfer" : "from scratch"}…`);
    this.#renderProgress();
    try {
      const { total_steps: totalSteps } = await started;
      if (this.run) this.run.total_steps = totalSteps;
    } catch (error) { // refused: nothing started
      this.run = null;
      this.messages.show(error.message, "error");
      this.#renderProgress();
      return;
    }
    this.#renderProgress();
  }

  // ---------- choosing, making, removing ----------
  async #create() {
    const text = this.el.names.value;
    if (!text.trim()) {
      this.#error("Name your classes, separated by commas: for example cat, dog, fish.");
      return;
    }
    try {
      const reply = await this.client.call("create_project", { names: text });
      this.el.names.value = "";
      this.#error("");
      this.show(reply);
      this.#keepOpen(reply.project.id);
      const names = reply.project.names;
      this.status.say(`Made the project ${names.join(", ")}: draw a ${names[0]} and press It's a ${names[0]}.`);
      this.announcer.announce(`Project ${names.join(", ")} made and opened.`);
    } catch (error) {
      this.#error(`Could not make the project: ${error.message}`); // the names stay in the box to correct
    }
  }

  async #open(id) {
    try {
      const reply = await this.client.call("open_project", { project: id });
      this.state.setProject(reply);
      this.#keepOpen(id);
      this.status.say(reply.project ? `Opened ${reply.project.names.join(", ")}.` : "Back to the digits.");
    } catch (error) {
      this.messages.show(`Could not open the project: ${error.message}`, "error");
      this.#render(); // the select shows what is open
    }
  }

  async #remove() {
    const project = this.state.project;
    if (!project) return;
    const what = `the project ${project.names.join(", ")}${project.count ? ` and its ${fmtInt(project.count)} drawings` : ""}`;
    if (!window.confirm(`Remove ${what}? This cannot be undone.`)) return;
    try {
      const reply = await this.client.call("remove_project", { project: project.id });
      this.state.setProject(reply);
      if (this.keeping) await this.store.deleteProject(project.id).catch(() => {});
      this.#keepOpen(null);
      this.status.say(`Removed ${what}; the digits are open.`);
    } catch (error) {
      this.messages.show(`Could not remove the project: ${error.message}`, "error");
    }
  }

  /** Download the open project's file: what `python -m pycnn train --classes FILE` reads. */
  async #export() {
    try {
      const reply = await this.client.call("export_project");
      download(reply.file_name, reply.bytes);
      this.status.say(`Exported ${fmtInt(reply.count)} drawings${this.state.project?.model ? " and the network" : ""} as ${reply.file_name}.`);
    } catch (error) {
      this.messages.show(`Could not export the project: ${error.message}`, "error");
    }
  }

  /** A project file as a new project, opened; a file that is not one says why and changes nothing. */
  async #import() {
    const refuse = (name, why) => this.messages.show(`Could not import ${name}: ${why}. Your projects are unchanged.`, "error");
    const chosen = await readChosenFile(this.el.importInput, this.state.info?.projects?.max_file_bytes, "a project file", refuse);
    if (!chosen) return;
    const { file, bytes } = chosen;
    try {
      const reply = await this.client.call("import_project", { data: bytes });
      this.messages.clear();
      this.show(reply);
      this.#keepOpen(reply.project.id);
      this.status.say(`Imported ${file.name}: ${reply.project.names.join(", ")}, ${fmtInt(reply.project.count)} drawings${reply.project.model ? " and a trained network" : ""}.`);
    } catch (error) {
      refuse(file.name, error.message);
    }
  }

  #error(text) {
    this.el.error.textContent = text;
    this.el.error.hidden = !text;
    this.el.names.setAttribute("aria-invalid", String(Boolean(text)));
  }

  // ---------- keeping ----------
  async #keep(project) {
    if (!this.keeping) return;
    try {
      await this.store.saveProject(project.id, { format: 1, bytes: project.file, results: project.results, savedAt: Date.now() });
      this.probe.count("projects_kept");
    } catch (error) {
      const why = error?.name === "QuotaExceededError" ? "the browser's storage for this page is full" : error?.message || String(error);
      this.messages.show(`Could not keep the project in this browser (${why}); it won't be kept across reloads.`, "warning");
    }
  }

  #keepOpen(id) {
    if (this.keeping) this.store.saveOpenProject(id).catch(() => {});
  }

  // ---------- a training run ----------
  #progress(p) {
    if (!this.run) return;
    Object.assign(this.run, { step: p.step, total_steps: p.total_steps, phase: p.phase, epoch: p.epoch, epochs: p.epochs });
    this.frame.request("projects.progress", () => this.#renderProgress());
  }

  #done(d) {
    const run = this.run;
    this.state.setPhase("ready");
    if (run) {
      run.result = d.reason;
      run.ms = performance.now() - run.startedAt;
      run.restarts = d.result?.restarts ?? 0;
      run.lr = d.result?.lr;
    }
    this.el.progress.dataset.result = d.reason;
    if (d.reason === "finished") {
      if (d.project) this.#keep(d.project);
      if (this.state.project?.id === d.project_id) this.state.setProject(d);
      else this.state.setProject({ project: this.state.project, projects: d.projects });
      const accuracy = d.result.evaluation?.accuracy;
      const text = `Trained ${d.result.names.join(", ")} ${run?.how === "scratch" ? "from scratch" : "by transfer"}` +
        (accuracy === undefined || accuracy === null ? "." : `: ${fmtPct(accuracy)} of the drawings it was not trained on read right.`);
      this.status.say(text);
      this.announcer.announce(text);
      this.state.weightsChanged(); // the drawing shown is read again, by the new network
    } else if (d.reason === "stopped") {
      this.status.say("Stopped: nothing was kept, the project's network is as it was.");
    } else {
      this.messages.show(`The project's training stopped: ${d.message}`, d.reason === "diverged" ? "warning" : "error");
    }
    this.#renderProgress();
  }

  // ---------- rendering ----------
  #render() {
    const el = this.el;
    const { project, projects } = this.state;
    const options = [["", "Digits 0–9"], ...projects.map((p) => [String(p.id), `${p.names.join(", ")} (${fmtInt(p.count)})`])];
    const same = el.select.options.length === options.length
      && options.every(([value, text], i) => el.select.options[i].value === value && el.select.options[i].textContent === text);
    if (!same) {
      el.select.replaceChildren(...options.map(([value, text]) => {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = text;
        return option;
      }));
    }
    el.select.value = project ? String(project.id) : "";
    el.select.dataset.projects = String(projects.length);
    const ready = this.state.phase === "ready" || this.state.phase === "training";
    el.select.disabled = !ready;
    el.create.disabled = !ready;
    el.names.disabled = !ready;
    el.remove.hidden = !project;
    el.remove.disabled = !this.state.idle;
    el.exportButton.hidden = !project;
    el.exportButton.disabled = !ready;
    el.importInput.disabled = !ready;
    el.importLabel.dataset.disabled = String(!ready);
    const names = project?.names ?? [];
    el.tryTitle.textContent = project ? `Try it: draw a ${names.slice(0, -1).join(", ")} or a ${names.at(-1)}` : "Try it: draw a digit";
    this.digitsIntro ??= el.tryIntro.textContent;
    el.tryIntro.textContent = project
      ? "Draw one of your classes with the mouse, a finger or a pen. It is cropped, scaled and centred in 28×28 pixels as the digits are."
      : this.digitsIntro;
    this.#renderResults();
    this.#renderProgress();
  }

  /** The two ways of training, side by side: each one's score on drawings it was not trained on. */
  #renderResults() {
    const project = this.state.project;
    const el = this.el.results;
    el.hidden = !project;
    if (!project) return;
    el.replaceChildren();
    const intro = document.createElement("p");
    intro.className = "hint";
    intro.textContent = (project.model
      ? `Drawings are read by the network trained last (${HOW[project.model_from]?.toLowerCase() ?? "kept"}). Each score is measured on drawings that network was not trained on.`
      : "Train it by transfer (the button above) or from scratch (Train, in Training settings) to read drawings as your classes.")
      + (this.keeping ? " This project is kept in this browser." : " This browser cannot keep it across reloads.");
    const table = document.createElement("div");
    table.className = "project-scores";
    for (const how of ["transfer", "scratch"]) {
      const result = project.results?.[how];
      const evaluation = result?.evaluation;
      const box = document.createElement("div");
      box.className = "project-score";
      box.dataset.how = how;
      box.dataset.accuracy = evaluation?.accuracy ?? "";
      if (project.model_from === how) box.dataset.reads = "true";
      const title = document.createElement("h3");
      title.textContent = HOW[how];
      const value = document.createElement("p");
      value.className = "project-score-value";
      value.textContent = evaluation?.accuracy === undefined || evaluation?.accuracy === null ? "–" : fmtPct(evaluation.accuracy);
      const note = document.createElement("p");
      note.className = "hint";
      note.textContent = evaluation
        ? `${evaluation.scored === undefined ? "" : `${fmtInt(evaluation.scored)} drawings, `}${evaluation.method}: ${HOW_TEXT[how]}.`
        : `Not trained yet: ${HOW_TEXT[how]}.`;
      box.append(title, value, note);
      table.append(box);
    }
    el.append(intro, table);
  }

  #renderProgress() {
    const run = this.run;
    const el = this.el.progress;
    el.hidden = !run;
    this.el.stop.hidden = !run || run.result !== null;
    this.el.stop.disabled = this.state.job !== "train_project";
    if (!run) return;
    Object.assign(el.dataset, { step: run.step, totalSteps: run.total_steps, phase: run.phase });
    this.el.progressBar.max = Math.max(1, run.total_steps);
    this.el.progressBar.value = run.step;
    const how = run.how === "transfer" ? "By transfer" : "From scratch";
    if (run.result) {
      const restarted = run.restarts ? ` The loss diverged ${run.restarts === 1 ? "once" : `${run.restarts} times`}; ` +
        `each time that network began again at half the learning rate (${run.lr}).` : "";
      this.el.progressText.textContent = { finished: `${how}: done in ${(run.ms / 1000).toFixed(1)} s.${restarted}`,
        stopped: `${how}: stopped, nothing kept.`, diverged: `${how}: the loss diverged, nothing kept.` }[run.result] ?? `${how}: failed.`;
      return;
    }
    const what = run.phase === "preparing" ? "reading your drawings through the digit network's filters"
      : run.phase === "measuring" ? `measuring: network ${run.epoch} of ${run.epochs - 1} trained on part of your drawings reads the rest`
      : "training the network kept on all your drawings";
    this.el.progressText.textContent = run.step ? `${how}: ${what} · step ${fmtInt(run.step)} of ${fmtInt(run.total_steps)}` : `${how}: starting…`;
  }
}
