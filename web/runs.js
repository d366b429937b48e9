// A run in the worker, seen from the page: Python's `train`, `resume` or `fine_tune`, one at a time.
// The page is in its "training" phase from the start until the run's `done`; `progress` and `done`
// go to the view that watches runs of that kind (the training panel, your digits).

// a run is named by the request that started it; a stopped run continued (`resume`) is a training run
const KIND = { resume: "train" };
const kind = (name) => KIND[name] ?? name;

export class RunControl {
  /** client: the WorkerClient; state: the AppState. */
  constructor({ client, state }) {
    Object.assign(this, { client, state });
    this.views = new Map(); // run name -> {progress(p), done(d)}
    client.on("progress", (p) => this.views.get(kind(p.run))?.progress(p));
    client.on("done", (d) => this.views.get(kind(d.run))?.done(d));
  }

  /** view: {progress(progress), done(done)} for the runs that Python's request `name` starts (and, for
   * "train", `resume`). */
  watch(name, view) {
    this.views.set(name, view);
  }

  /** Start a run -> the start's result ({total_steps, ...}); refused (bad settings, no digits): the
   * phase goes back to ready and the promise rejects with Python's message. */
  async start(name, args) {
    this.state.setPhase("training", kind(name));
    try {
      return await this.client.call(name, args);
    } catch (error) {
      this.state.setPhase("ready");
      throw error;
    }
  }

  /** Ask the run to stop after the batch in flight. */
  stop() {
    if (this.state.phase !== "training") return;
    // when, on the clock Python reads too (ms since the epoch): it counts the batches that ended after it
    this.client.call("stop", { sent_at: Date.now() }).catch(() => {}); // a run that ended meanwhile: nothing to stop
  }
}
