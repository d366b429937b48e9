// The page's side of the worker protocol (see PROTOCOL.md): one worker, one listener,
// replies matched to requests by id, events emitted to subscribers; and the worker's helper
// workers, which it starts and ends when the worker asks (see helpers.js). Knows nothing about
// Python's requests or the DOM.

const WORKER_URL = new URL("./worker.js", import.meta.url);

export class WorkerClient {
  constructor(url = WORKER_URL) {
    this.url = url;
    this.worker = null;
    this.handlers = new Map(); // type -> Set of callbacks
    this.pending = new Map(); // id -> {resolve, reject, method}
    this.nextId = 1;
    this.heapBytes = null; // the size of Python's WebAssembly memory, as of the worker's last message
    this.helpers = new Map(); // name -> the Worker of a helper the worker asked for
  }

  /** Start (or restart) the worker. Pending requests of an old worker are rejected. */
  start() {
    this.terminate("the worker was restarted");
    // The worker holds a Web Lock of this name for its whole life (see #watch).
    const lock = `pycnn-worker-${globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`}`;
    const worker = new Worker(this.url, { type: "module", name: lock });
    worker.addEventListener("message", (event) => this.#receive(worker, lock, event.data));
    worker.addEventListener("error", (event) => {
      event.preventDefault();
      const where = event.filename ? ` (${event.filename.split("/").pop()}:${event.lineno})` : "";
      this.#fail(worker, `The Python worker crashed: ${event.message || "unknown error"}${where}`);
    });
    worker.addEventListener("messageerror", () => this.#fail(worker, "The Python worker sent a message that could not be read"));
    this.worker = worker;
  }

  terminate(reason = "the worker was stopped") {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    for (const helper of this.helpers.values()) helper.terminate();
    this.helpers.clear();
    for (const { reject } of this.pending.values()) reject(new Error(reason));
    this.pending.clear();
    this.#pendingChanged();
  }

  /** Subscribe to a worker message type; returns an unsubscribe function. */
  on(type, callback) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(callback);
    return () => this.handlers.get(type).delete(callback);
  }

  /**
   * The request `method` of pycnn.page (its name as in Python) with `args`; a Uint8Array in
   * args.data is transferred and reaches Python as its `data` argument -> {result, ms (the
   * worker's time)}, or a rejection with Python's message. The events the request causes
   * (filters, checkpoint ...) are emitted after the reply.
   */
  request(method, args = {}) {
    if (!this.worker) return Promise.reject(new Error("worker is not running"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method, sentAt: performance.now() });
      this.#pendingChanged();
      this.worker.postMessage({ id, method, args }, args.data instanceof Uint8Array ? [args.data.buffer] : []);
    });
  }

  /** How many workers may train, the worker itself included: it keeps that many less one helper workers. */
  setWorkers(count) {
    this.worker?.postMessage({ workers: count });
  }

  /** request(method, args) -> just the result. */
  async call(method, args = {}) {
    return (await this.request(method, args)).result;
  }

  #receive(worker, lock, message) {
    if (worker !== this.worker || !message) return;
    if (message.heap_bytes) this.heapBytes = message.heap_bytes;
    if (message.id !== undefined && this.pending.has(message.id)) {
      const { resolve, reject } = this.pending.get(message.id);
      this.pending.delete(message.id);
      this.#pendingChanged();
      if (message.error !== undefined) reject(new Error(message.error));
      else resolve({ result: message.result, ms: message.ms });
    }
    for (const event of message.events ?? []) {
      if (event.type === "lifeline") this.#watch(worker, lock);
      else if (event.type === "helper_start") this.#startHelper(worker, event.name);
      else if (event.type === "helper_end") this.#endHelper(event.name);
      else this.#emit(event.type, event);
    }
  }

  /**
   * A helper worker for `worker`: worker.js in its helper mode (its name says so), joined to the worker by
   * a MessageChannel whose ends both are handed over; its uncaught errors go to the worker, which ends it.
   */
  #startHelper(worker, name) {
    const helper = new Worker(this.url, { type: "module", name });
    this.helpers.set(name, helper);
    const channel = new MessageChannel();
    const failed = (message) => {
      if (this.helpers.get(name) === helper) worker.postMessage({ helper: name, error: message });
    };
    helper.addEventListener("error", (event) => {
      event.preventDefault(); // a helper's crash is the helper's end, not the page's error
      failed(event.message || "unknown error");
    });
    helper.addEventListener("messageerror", () => failed("it sent a message that could not be read"));
    helper.postMessage({ port: channel.port2 }, [channel.port2]);
    worker.postMessage({ helper: name, port: channel.port1 }, [channel.port1]);
  }

  #endHelper(name) {
    this.helpers.get(name)?.terminate();
    this.helpers.delete(name);
  }

  /**
   * A worker that ends without an error event (self.close(), killed by the browser) is noticed
   * through its lifeline: it holds the Web Lock `lock` until it ends, and this request for the
   * same lock is granted only then. (Web Locks need a secure context: https or localhost.)
   */
  #watch(worker, lock) {
    if (!globalThis.navigator?.locks) return;
    navigator.locks
      .request(lock, () => this.#fail(worker, "The Python worker stopped unexpectedly (it may have run out of memory)"))
      .catch(() => {});
  }

  #fail(worker, text) {
    if (worker !== this.worker) return;
    this.terminate(text);
    this.#emit("error", { type: "error", fatal: true, message: text });
  }

  /** Tell "pending" subscribers the requests not answered yet, oldest first: {method, sent_at (performance.now())}. */
  #pendingChanged() {
    this.#emit("pending", [...this.pending.values()].map(({ method, sentAt }) => ({ method, sent_at: sentAt })));
  }

  #emit(type, message) {
    for (const callback of this.handlers.get(type) ?? []) callback(message);
  }
}
