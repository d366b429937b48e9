// Helper workers: more cores for a training run. The Python worker (worker.js) keeps a pool of
// helpers: workers running worker.js in its helper mode, each booting Python from the memory
// snapshot, installing pycnn and computing shard tasks (pycnn.parallel.run_shards), nothing else.
// The page starts and ends them when the pool asks (events `helper_start` / `helper_end`, see
// client.js) and hands each one's MessagePort to the pool: `new Worker()` inside a worker hangs in
// Firefox ESR now and then (about one start in 20 here), a worker the page starts does not. A helper
// that crashes, ends or does not answer in time leaves the pool, and the worker computes the shards
// it held. No Pyodide and no Python here: tasks and results are bytes (see PROTOCOL.md).

export const HELPER_PREFIX = "pycnn-helper"; // a helper's name starts so (and names its lifeline lock)
const ANSWER_MIN_MS = 10_000; // a helper that has not answered a task by then (at the least) has left
const ANSWER_FACTOR = 25; // ... nor within this many times what its shards take this worker

export class HelperPool {
  /**
   * onChange({left?: {name, reason}}): a helper came up or left, or the count wanted changed;
   * ask({type, name}): tell the page to start ("helper_start") or end ("helper_end") a helper.
   */
  constructor(onChange, ask) {
    Object.assign(this, { onChange, ask });
    this.helpers = []; // {name, port, state: "starting" | "ready", bootMs, heapBytes, task, tasksDone, timings}
    this.wanted = 0; // helpers wanted (the workers wanted less this one)
    this.started = false; // helpers are started only once this worker is ready
    this.nextTask = 1;
  }

  /** Keep `count` helpers (starting or ending some); none start before start(). */
  want(count) {
    this.wanted = Math.max(0, count | 0);
    this.fill();
    while (this.helpers.length > this.wanted) this.#remove(this.helpers[this.helpers.length - 1], null);
    this.onChange({});
  }

  /** This worker is ready: start the helpers wanted. */
  start() {
    this.started = true;
    this.fill();
    this.onChange({});
  }

  /** Start helpers until `wanted` are starting or up (helpers that left come back this way). */
  fill() {
    if (!this.started) return;
    while (this.helpers.length < this.wanted) this.#spawn();
  }

  /** The page started helper `name`: `port` is its end of their channel. */
  connect(name, port) {
    const helper = this.helpers.find((h) => h.name === name);
    if (!helper) {
      port.close(); // no longer wanted
      return;
    }
    helper.port = port;
    port.addEventListener("message", (event) => this.#receive(helper, event.data ?? {}));
    port.addEventListener("messageerror", () => this.#leave(helper, "it sent a message that could not be read"));
    port.start();
  }

  /** The page saw helper `name` fail (its uncaught error, or it could not be started). */
  failed(name, message) {
    const helper = this.helpers.find((h) => h.name === name);
    if (helper) this.#leave(helper, `it crashed: ${message}`);
  }

  /** The helpers that are up. */
  ready() {
    return this.helpers.filter((helper) => helper.state === "ready");
  }

  /** Each helper, in start order: {state, boot_ms (to up), heap_bytes (its WebAssembly memory, as of its last
   * message), tasks (messages of tasks answered), timings (its boot stages, ms)}. */
  describe() {
    return this.helpers.map((helper) => ({ state: helper.state, boot_ms: helper.bootMs && Math.round(helper.bootMs),
      heap_bytes: helper.heapBytes, tasks: helper.tasksDone, timings: helper.timings }));
  }

  /**
   * Tasks (Uint8Arrays, transferred) for `helper` -> a promise of their results (Uint8Arrays: a result per
   * shard of each task, in their order). ms: what computing them would take here, for the time a helper is
   * given to answer. Rejects, with the helper out of the pool, when it crashes, ends, fails a task or does
   * not answer.
   */
  compute(helper, tasks, ms = 0) {
    if (helper.state !== "ready" || helper.task) return Promise.reject(new Error(`${helper.name} is not free`));
    const id = this.nextTask++;
    const waitMs = Math.max(ANSWER_MIN_MS, ANSWER_FACTOR * ms);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#leave(helper, `it did not answer within ${Math.round(waitMs / 1000)} s`), waitMs);
      helper.task = { id, resolve, reject, timer };
      helper.port.postMessage({ id, tasks }, tasks.map((task) => task.buffer));
    });
  }

  /** Take `helper` out of the pool and end it, for `reason`. */
  end(helper, reason) {
    this.#leave(helper, reason);
  }

  #spawn() {
    const name = `${HELPER_PREFIX}-${globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`}`;
    this.helpers.push({ name, port: null, state: "starting", startedAt: performance.now(), bootMs: null,
      heapBytes: null, task: null, tasksDone: 0, timings: null });
    this.ask({ type: "helper_start", name });
  }

  #receive(helper, message) {
    if (!this.helpers.includes(helper)) return;
    if (message.heap_bytes) helper.heapBytes = message.heap_bytes;
    if (message.helper === "ready") {
      helper.state = "ready";
      helper.bootMs = performance.now() - helper.startedAt;
      helper.timings = message.timings;
      if (message.lifeline) this.#watch(helper);
      this.onChange({});
    } else if (message.helper === "failed") {
      this.#leave(helper, `it could not start: ${message.message}`);
    } else if (message.id !== undefined && helper.task?.id === message.id) {
      const { resolve, timer } = helper.task;
      clearTimeout(timer);
      helper.task = null;
      if (message.error !== undefined) {
        this.#leave(helper, `it could not compute a shard: ${message.error}`);
      } else {
        helper.tasksDone += 1;
        resolve(message.results);
      }
    }
  }

  /** A helper that ends without an error event (self.close(), killed) is noticed through its lifeline: it
   * holds the Web Lock of its name while it lives, and this request for it is granted when it ends. */
  #watch(helper) {
    if (!globalThis.navigator?.locks) return;
    navigator.locks.request(helper.name, () => this.#leave(helper, "it stopped")).catch(() => {});
  }

  #leave(helper, reason) {
    if (!this.helpers.includes(helper)) return;
    this.#remove(helper, reason);
    console.warn(`a helper worker left: ${reason}`);
    this.onChange({ left: { name: helper.name, reason } });
  }

  #remove(helper, reason) {
    this.helpers = this.helpers.filter((h) => h !== helper);
    helper.port?.close();
    this.ask({ type: "helper_end", name: helper.name });
    if (helper.task) {
      clearTimeout(helper.task.timer);
      helper.task.reject(new Error(reason ?? "the helper was no longer wanted"));
      helper.task = null;
    }
  }
}
