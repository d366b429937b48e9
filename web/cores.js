// How many workers train: the Workers setting (auto, 1, 2, 4) is told to the Python worker, which
// keeps that many, itself included (helper workers, helpers.js); a run's batches are split into
// the same shards however many there are, so the run is the same. How many work now is on
// <body data-workers>; a helper that leaves during a run is said under the progress bar.

const MAX_WORKERS = 4; // the page's runs have at most 4 shards per batch (pycnn/page/runs.py PAGE_SHARDS)

/** Workers for "auto": the device's cores, at most MAX_WORKERS; fewer with little memory (deviceMemory, GB). */
export function autoWorkers(nav = globalThis.navigator) {
  let count = Math.min(MAX_WORKERS, Math.max(1, nav?.hardwareConcurrency || 1));
  const memory = nav?.deviceMemory;
  if (memory !== undefined && memory <= 1) count = 1;
  else if (memory !== undefined && memory <= 2) count = Math.min(count, 2);
  return count;
}

export class Cores {
  /** client: the WorkerClient; state: the AppState; el: {select: the cores-select, note: the workers-note}. */
  constructor({ client, state, probe, announcer, el }) {
    Object.assign(this, { client, state, probe, announcer, el });
    const auto = el.select.querySelector('option[value="auto"]');
    if (auto) auto.textContent = `Auto (${autoWorkers()})`;
    el.select.addEventListener("change", () => this.#tell());
    client.on("ready", () => this.#tell()); // each worker start; the worker starts its helpers after ready
    client.on("workers", (workers) => this.#show(workers));
    client.on("error", () => delete document.body.dataset.workers);
    state.on("phase", () => {
      if (state.phase !== "training") return;
      el.note.hidden = true; // a new run: the note was about an earlier one
      delete el.note.dataset.left;
    });
  }

  /** The workers the setting asks for, this device's count for auto. */
  get wanted() {
    const value = this.el.select.value;
    return value === "auto" ? autoWorkers() : Number(value);
  }

  #tell() {
    this.client.setWorkers(this.wanted);
  }

  #show({ count, wanted, helpers, left }) {
    document.body.dataset.workers = String(count);
    this.probe.set("workers", { count, wanted, helpers });
    if (left?.during_run) {
      const note = this.el.note;
      note.textContent = `A helper worker stopped during the run (${left.reason}). The other workers computed its ` +
        "share of each batch, so the run is the same as it would have been.";
      note.hidden = false;
      note.dataset.left = String(Number(note.dataset.left ?? 0) + 1);
      this.announcer.announce("A helper worker stopped; training goes on with the others.");
    }
  }
}
