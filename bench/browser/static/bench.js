// Main thread of the benchmark page: starts the workers and relays commands to them.
// Only one worker computes at a time (the driver alternates rounds), so they never
// compete for the two cores.

class Rpc {
  constructor(url, options) {
    this.worker = new Worker(url, options);
    this.pending = new Map();
    this.nextId = 1;
    this.worker.onmessage = (event) => {
      const { id, ok, result, error } = event.data;
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      ok ? p.resolve(result) : p.reject(new Error(error));
    };
    this.worker.onerror = (event) => {
      const message = `worker ${url} crashed: ${event.message}`;
      for (const p of this.pending.values()) p.reject(new Error(message));
      this.pending.clear();
    };
  }
  call(cmd, args = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, cmd, args });
    });
  }
  terminate() {
    this.worker.terminate();
  }
}

const workers = {};

window.bench = {
  /** Start a worker: kind "pycnn" (Pyodide) or "tfjs" with args.backend "wasm" | "cpu". */
  async start(name, kind, args = {}) {
    const url = kind === "pycnn" ? "./pycnn_worker.mjs" : "./tfjs_worker.js";
    workers[name] = new Rpc(new URL(url, import.meta.url), kind === "pycnn" ? { type: "module", name } : { name });
    const t0 = performance.now();
    const info = await workers[name].call("init", args);
    return { ...info, init_ms: performance.now() - t0 };
  },
  call(name, cmd, args = {}) {
    return workers[name].call(cmd, args);
  },
  stop(name) {
    workers[name]?.terminate();
    delete workers[name];
  },
};
document.body.dataset.state = "ready";
