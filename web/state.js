// What several parts of the page need to know: its phase, the session's info, the current
// model (what it is, how it came to be, its held-out evaluation and training history) and
// whether a request is in flight. main.js makes one AppState and hands it to each part; the
// parts listen for the changes they care about. No DOM here.
//
// Events: "phase", "busy", "info", "network" (networkReady changed), "model" (its description or evaluation changed),
// "history" (replaced), "losses" (new per-batch losses), "epoch" (an epoch result was added),
// "weights" (the weights changed: predictions and the analysis are out of date; detail "step" for a tried step),
// "inspected" (the digit the page shows the network's reading of, in full: what "See inside one step" explains),
// "reading" (the predictor shows another answer: what "It's a ..." adds), "my-digits" (your digits changed),
// "taught" ({digit, added: a promise of whether it was added}: "It's a ..." took a drawing off the canvas),
// "resumable" (the current model's stopped run that Continue finishes appeared or ended), "project" (the project
// open, or its drawings, model or scores, or the list of projects changed).

export const UNTRAINED = Object.freeze({ kind: "untrained", epochs: 0, digits: 0, partial: false });
const DIGIT_NAMES = Object.freeze(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);

export class AppState {
  constructor() {
    this.phase = "loading"; // loading | ready | training | error
    this.job = null; // while training: the run's name, "train" (a run) or "fine_tune" (fine-tuning on your digits)
    this.info = null; // the session's info: counts, training defaults and limits
    this.model = { ...UNTRAINED }; // kind: untrained | trained | restored | loaded; epochs, digits, partial, savedAt, fileName
    this.evaluation = null; // {loss, accuracy} on the held-out digits; null while untrained
    this.history = { losses: [], epochs: [] }; // of the current model, since its last reset or load
    this.busy = false;
    this.networkReady = false; // the network editor shows the model's network, and it fits: Train may start
    // the reading shown: {result (the prediction reply), source: "drawing" | "heldout", digit: what it is (a
    // held-out index or "drawing"), sentAt}; null when none is shown
    this.inspection = null;
    this.reading = null; // the answer the predictor shows: {source: "drawing" | "heldout", prediction}, or null
    this.myDigits = { count: 0, counts: new Array(10).fill(0) }; // your digits: how many, of each digit
    // the run the current model's weights are from, when it stopped before its end (Python's `resumable` event):
    // {step, total_steps, epoch, epochs, batch, batches_per_epoch, config, joined}; null when there is none
    this.resumable = null;
    // the project of your own classes that is open (Python's project(): {id, names, count, counts, labels, images,
    // model, results, model_from, file}), or null: the digits; and every project [{id, names, count, model}]
    this.project = null;
    this.projects = [];
    this.listeners = new Map();
  }

  on(event, listener) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    this.listeners.get(event).push(listener);
  }

  emit(event, detail) {
    for (const listener of this.listeners.get(event) ?? []) listener(detail);
  }

  /** The worker can answer and there is a network to read drawings (a project's drawings are read before it is
   * trained too: the answer then says so). */
  get canRead() {
    return (this.phase === "ready" || this.phase === "training") && (this.project !== null || this.model.kind !== "untrained");
  }

  /** The names of the classes drawings are read as: the open project's, or the ten digits. */
  get classNames() {
    return this.project ? this.project.names : DIGIT_NAMES;
  }

  /** Python's project() reply: the project open (or null) and the list of projects. */
  setProject({ project, projects }) {
    this.project = project ?? null;
    this.projects = projects ?? [];
    this.emit("project");
  }

  /** Ready and no request in flight: the controls that change the model can be used. */
  get idle() {
    return this.phase === "ready" && !this.busy;
  }

  /** job: what the "training" phase runs, "train" or "fine_tune". */
  setPhase(phase, job = "train") {
    this.phase = phase;
    this.job = phase === "training" ? job : null;
    this.emit("phase");
  }

  setReading(reading) {
    this.reading = reading;
    this.emit("reading");
  }

  setMyDigits(myDigits) {
    this.myDigits = myDigits;
    this.emit("my-digits");
  }

  setResumable(run) {
    this.resumable = run ?? null;
    this.emit("resumable");
  }

  setBusy(busy) {
    this.busy = busy;
    this.emit("busy");
  }

  setNetworkReady(ready) {
    if (ready === this.networkReady) return;
    this.networkReady = ready;
    this.emit("network");
  }

  setInfo(info) {
    this.info = info;
    this.emit("info");
  }

  /** Update what is said about the model (and its evaluation, when given). */
  describeModel(changes, evaluation = this.evaluation) {
    this.model = { ...this.model, ...changes };
    this.evaluation = evaluation;
    this.emit("model");
  }

  /** A different model: its description, evaluation and history replace the current ones. */
  replaceModel(model, evaluation, history = { losses: [], epochs: [] }) {
    this.model = { ...UNTRAINED, ...model };
    this.evaluation = evaluation;
    this.history = { losses: [...(history.losses ?? [])], epochs: [...(history.epochs ?? [])] };
    this.emit("model");
    this.emit("history");
    this.emit("weights");
  }

  addLosses(losses) {
    this.history.losses.push(...losses);
    this.emit("losses", losses);
  }

  addEpoch(result) {
    this.history.epochs.push(result);
    this.emit("epoch", result);
  }

  setInspected(inspection) {
    this.inspection = inspection;
    this.emit("inspected", inspection);
  }

  /** reason: "step" for a step tried in "See inside one step" (the learner may take more at once). */
  weightsChanged(reason = null) {
    this.emit("weights", reason);
  }
}

/**
 * Run work() with the page busy (Train and the other requests wait) -> what it returns; an error it
 * throws is shown by messages (then undefined).
 */
export async function whileBusy(state, messages, work) {
  state.setBusy(true);
  try {
    return await work();
  } catch (error) {
    messages.show(error.message, "error");
    return undefined;
  } finally {
    state.setBusy(false);
  }
}
