// Starting the worker and reporting it: the loading stages, "Ready in ...", a loading stage
// that fails (Retry), a worker that dies later (Restart), and the worker's other errors.

const STAGE_ORDER = ["python", "numpy", "pycnn", "data", "ready"];
const fmtMs = (ms) => `${(ms / 1000).toFixed(1)} s`;

export class Loading {
  /**
   * stages: the [data-testid=stages] list; persistence: says whether a saved model will come back;
   * onReady(): what the page does once the worker is ready (restore, then start). The rest as
   * for TrainingPanel.
   */
  constructor({ client, state, probe, messages, status, announcer, persistence, stages, onReady }) {
    Object.assign(this, { client, state, probe, messages, status, announcer, persistence, stages, onReady });
    this.startedAt = 0;
    client.on("status", (m) => this.#stage(m));
    client.on("ready", (m) => this.#ready(m));
    client.on("error", (m) => this.#error(m));
    client.on("warning", (m) => this.messages.show(m.message, "warning")); // e.g. a host's wrong type for .wasm
  }

  /** Start (or restart) the worker. */
  start() {
    this.state.setPhase("loading");
    this.messages.clear();
    delete document.body.dataset.workerLost;
    for (const stage of STAGE_ORDER) this.#mark(stage, "pending");
    this.status.say("Starting Python…", "");
    this.startedAt = performance.now();
    this.client.start();
  }

  #mark(stage, status, ms) {
    const li = this.stages.querySelector(`[data-stage="${stage}"]`);
    if (!li) return;
    li.dataset.status = status;
    if (ms !== undefined) li.dataset.ms = String(Math.round(ms));
  }

  #stage({ stage, phase, text, ms }) {
    this.#mark(stage, phase === "done" ? "done" : "active", ms);
    if (phase === "start") {
      const elapsed = (performance.now() - this.startedAt) / 1000;
      this.status.say(`${text}… (${elapsed.toFixed(1)} s)`, stage);
    }
  }

  async #ready({ info, timings, heap_bytes: heapBytes }) {
    this.#mark("ready", "done");
    if (heapBytes) this.probe.set("worker_heap_bytes", heapBytes);
    for (const el of document.querySelectorAll('[data-field="heldout-count"]')) el.textContent = info.heldout_count.toLocaleString("en");
    for (const el of document.querySelectorAll('[data-field="train-count"]')) el.textContent = info.train_count.toLocaleString("en");
    this.state.setInfo(info);
    const total = performance.now() - this.startedAt;
    this.probe.set("load_ms", Math.round(total));
    const stages = ["python", "numpy", "pycnn", "data"].map((s) => `${s} ${fmtMs(timings[s] ?? 0)}`).join(" · ");
    const line = this.status.element;
    this.status.say(`Ready in ${fmtMs(total)} (${stages})`, "ready");
    line.dataset.pythonSnapshot = timings.snapshot ?? "none";
    line.title = `numpy ${info.numpy}` + (timings.snapshot === "restored" ? "; Python restored from the snapshot saved on an earlier visit" : "");
    await this.onReady();
    this.announcer.announce(this.state.model.kind === "untrained" ? "Ready: press Train to train the network."
      : "Ready, with the model kept from your last visit.");
  }

  /** The worker could not start, or ended: loading failed at message.stage, or the worker is gone. */
  #error(message) {
    const wasLoading = this.state.phase === "loading";
    const wasTraining = this.state.phase === "training";
    const stage = message.stage ? ` while loading ${message.stage}` : "";
    if (wasLoading || message.stage) this.#mark(message.stage ?? "python", "failed");
    this.status.say(wasLoading ? `Failed${stage}` : "The Python worker is not running", "error");
    document.body.dataset.workerLost = String(!wasLoading);
    if (wasTraining) document.body.dataset.runResult = "crashed";
    this.state.setPhase("error");
    const saved = this.persistence.hasSavedModel ? " Your last saved model will come back after a restart." : "";
    if (wasLoading) {
      this.messages.show(`Something went wrong${stage}: ${message.message}.${saved}`, "error", { retry: true });
    } else {
      const during = wasTraining ? " during training" : "";
      this.messages.show(`${message.message}${during}. Press Restart to start Python again.${saved}`, "error",
        { retry: true, retryLabel: "Restart" });
    }
  }
}
