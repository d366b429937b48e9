// Transport between the page and Python: boots Pyodide, installs pycnn, opens a
// pycnn.session.Session on the bundled digits, and relays messages to it. All the page's
// Python lives in that module (tested in CPython); this file only moves messages and
// schedules the work: training runs one batch per call, so `stop` and other messages are
// seen between batches. Message protocol: see PROTOCOL.md.
import { loadPyodide, version as pyodideVersion } from "./pyodide/pyodide.mjs";
import { dropSnapshots, readSnapshot, saveSnapshot, sha256Hex } from "./snapshot.js";

const BASE_URL = new URL("./", import.meta.url);
const PROGRESS_EVERY_MS = 50; // progress messages while training (plus every epoch end and the end)
const FILTERS_EVERY_MS = 250; // filter updates while training (plus every epoch end and stop)
// Requests answered while training (predictions while the learner draws) may take at most
// 1 / (1 + TRAIN_PER_SERVED_MS) of the worker's time: after answering for p ms, training runs for
// TRAIN_PER_SERVED_MS * p ms before the next request is answered (it waits in `deferred`), so a
// burst of drawing cannot starve training, and `stop` still lands after the batch in flight.
const TRAIN_PER_SERVED_MS = 2;
const READ_ONLY = new Set(["predict", "inspect-heldout", "next-heldout", "heldout-cell", "analyse", "network", "check-network",
  "arithmetic", "saliency", "python-code", "export-script"]);
// Your digits change only the session's list of them, never the model or a run (a run or a fine-tune
// copied them when it started): they are answered between batches too, like READ_ONLY requests.
const YOUR_DIGITS = new Set(["add-digit", "remove-digit", "my-digits", "export-digits", "import-digits"]);

let py = null; // the Pyodide instance
let sessionModule = null; // pycnn.session (a Python proxy)
let dispatch = null; // pycnn.session.dispatch
let session = null; // a pycnn.session.Session on the bundled digits, once they are loaded
let ready = false;
let training = false;
let stopRequested = null; // {sentAt} once the page asked to stop
let owedMs = 0; // training time owed for requests answered during this run
let deferred = []; // read-only requests waiting until that time is trained

function post(type, payload = {}, transfer = []) {
  self.postMessage({ type, ...payload }, transfer);
}

// Lifeline: hold a Web Lock named after this worker until it ends, so the page learns of an
// end that raises no error event (self.close(), killed by the browser). See client.js #watch.
if (self.name && self.navigator?.locks) {
  navigator.locks
    .request(self.name, () => {
      post("lifeline");
      return new Promise(() => {}); // held for the worker's lifetime
    })
    .catch(() => {});
}

// Pyodide 0.27 compiles its WebAssembly with WebAssembly.instantiateStreaming, which refuses a
// response whose Content-Type is not application/wasm; Pyodide then only logs a warning and never
// settles, and the page would wait forever. So the worker looks at the type first: from a host that
// sends another one, the module is compiled from the downloaded bytes (not while downloading, and
// browsers keep compiled code only for streamed modules, so it can be slower), with a warning that
// names the file and what the host must send; and a module that
// cannot be instantiated at all ends the python stage with the reason instead of a hang.
let wasmError = null;
let wasmFailed;
const wasmFailure = new Promise((_, reject) => {
  wasmFailed = reject;
});
wasmFailure.catch(() => {}); // awaited by startPython's race; never an unhandled rejection
const instantiateStreaming = WebAssembly.instantiateStreaming;
WebAssembly.instantiateStreaming = async (source, imports) => {
  let name = "pyodide/pyodide.asm.wasm";
  try {
    const response = await source;
    if (response.url.startsWith(BASE_URL.href)) name = response.url.slice(BASE_URL.href.length);
    const type = response.headers.get("content-type") ?? "";
    if (type.split(";")[0].trim().toLowerCase() === "application/wasm") return await instantiateStreaming(response, imports);
    post("warning", {
      message: `The web server sent ${name} as ${type ? `"${type}"` : "a file without a type"}; it must send .wasm files as ` +
        `"application/wasm". Python was started from the downloaded bytes instead, which can take longer.`,
    });
    return await WebAssembly.instantiate(await response.arrayBuffer(), imports);
  } catch (error) {
    wasmError = new Error(`could not start Python's WebAssembly (${name}): ${describe(error)}`);
    wasmFailed(wasmError);
    throw error;
  }
};

/** loadPyodide(options), or the reason its WebAssembly could not be instantiated. */
const startPyodide = (options) => Promise.race([loadPyodide(options), wasmFailure]);

/** Last line of a Python traceback (the exception itself), or the JS message. */
function describe(error) {
  const text = String(error?.message ?? error);
  const lines = text.trim().split("\n").map((l) => l.trim()).filter(Boolean);
  // Pyodide appends a hint about setDebug after the traceback: report the exception line
  const exception = lines.filter((l) => /^[\w.]+(Error|Exception|Diverged|Exit|Interrupt)\b/.test(l)).pop();
  return exception ?? lines.filter((l) => !l.startsWith("For more information")).pop() ?? text;
}

async function fetchBytes(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`could not download ${what} (${url.pathname}): ${describe(error)}`);
  }
  if (!response.ok) throw new Error(`could not download ${what} (${url.pathname}): HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function fetchJson(url, what) {
  const bytes = await fetchBytes(url, what);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new Error(`${what} (${url.pathname}) is not valid JSON`);
  }
}

/** The data manifest's file (name and sha256) for "images" or "labels", as build.py writes it. */
function dataFile(manifest, kind) {
  const name = Object.keys(manifest.files ?? {}).find((file) => file.includes(`-${kind}-`));
  if (!name) throw new Error(`the data manifest lists no ${kind} file`);
  return { name, sha256: manifest.files[name].sha256 };
}

async function runStage(stage, text, work) {
  post("status", { stage, phase: "start", text });
  const t0 = performance.now();
  try {
    const result = await work();
    const ms = performance.now() - t0;
    post("status", { stage, phase: "done", text, ms });
    return result;
  } catch (error) {
    const err = new Error(describe(error));
    err.stage = stage;
    throw err;
  }
}

/** Fetch the site manifest, the data manifest and the digits while Python boots. */
function prefetchData() {
  const site = fetchJson(new URL("manifest.json", BASE_URL), "the site manifest");
  const data = site.then(async (manifest) => {
    const manifestUrl = new URL(manifest.data ?? "data/manifest.json", BASE_URL);
    const dataManifest = await fetchJson(manifestUrl, "the data manifest");
    const files = {};
    for (const kind of ["images", "labels"]) {
      const { name, sha256 } = dataFile(dataManifest, kind);
      files[kind] = { name, sha256, bytes: fetchBytes(new URL(name, manifestUrl), `the ${kind}`) };
      files[kind].bytes.catch(() => {}); // reported by the data stage, which awaits it
    }
    return { manifest: dataManifest, files };
  });
  const wheel = site.then(async (manifest) => {
    if (!manifest.pycnn_wheel) throw new Error("manifest.json names no pycnn_wheel");
    const url = new URL(manifest.pycnn_wheel, BASE_URL);
    return { name: url.pathname.split("/").pop(), bytes: await fetchBytes(url, "the pycnn wheel") };
  });
  site.catch(() => {});
  data.catch(() => {});
  wheel.catch(() => {});
  return { site, data, wheel };
}

async function boot() {
  const t0 = performance.now();
  const prefetched = prefetchData();
  const timings = {};
  const timed = async (stage, text, work) => {
    const s = performance.now();
    const result = await runStage(stage, text, work);
    timings[stage] = Math.round(performance.now() - s);
    return result;
  };
  try {
    py = await timed("python", "Starting Python (Pyodide)", async () => {
      const { pyodide, snapshot } = await startPython();
      timings.snapshot = snapshot;
      return pyodide;
    });
    await timed("numpy", "Loading numpy", async () => {
      // micropip (and packaging) are small; fetching them with numpy overlaps the downloads
      await py.loadPackage(["numpy", "micropip"], { messageCallback: () => {}, errorCallback: (m) => console.warn(m) });
      py.runPython("import numpy");
    });
    await timed("pycnn", "Installing pycnn", async () => {
      // the wheel was downloaded by us while Python booted (a clear message for an HTTP error);
      // micropip installs it from the in-memory file system and checks its numpy requirement
      const wheel = await prefetched.wheel;
      py.FS.mkdirTree("/tmp/wheels");
      py.FS.writeFile(`/tmp/wheels/${wheel.name}`, wheel.bytes);
      const micropip = py.pyimport("micropip");
      try {
        await micropip.install(`emfs:/tmp/wheels/${wheel.name}`);
      } catch (error) {
        throw new Error(`could not install ${wheel.name}: ${describe(error)}`);
      } finally {
        micropip.destroy();
      }
      sessionModule = py.pyimport("pycnn.session"); // kept for the worker's lifetime, like dispatch
      dispatch = sessionModule.dispatch;
    });
    const info = await timed("data", "Loading the digits", async () => {
      const { manifest, files } = await prefetched.data;
      py.FS.mkdirTree("/data");
      for (const [kind, { name, sha256: want, bytes: pending }] of Object.entries(files)) {
        const bytes = await pending;
        const got = await sha256Hex(bytes);
        if (got && want !== got) {
          throw new Error(`${name} is corrupt: sha256 ${got.slice(0, 12)}…, expected ${want.slice(0, 12)}…; rebuild the site`);
        }
        py.FS.writeFile(`/data/${kind}.gz`, bytes);
      }
      const split = manifest.split ?? {};
      const Session = sessionModule.Session;
      try {
        session = Session.from_files("/data/images.gz", "/data/labels.gz", split.heldout ?? 1500, split.seed ?? 0);
      } finally {
        Session.destroy();
      }
      return request("info").reply;
    });
    ready = true;
    timings.total = Math.round(performance.now() - t0);
    post("ready", { info, timings, heap_bytes: heapBytes() });
    postFilters();
  } catch (error) {
    console.error(error);
    if (timings.snapshot === "restored") await dropSnapshots(); // Retry then starts Python afresh
    post("error", { fatal: true, stage: error.stage ?? "python", message: describe(error) });
  }
}

/**
 * Pyodide, restored from the memory snapshot a previous visit saved (see snapshot.js) or
 * started afresh, in which case a snapshot is taken for the next visit before anything else
 * runs. snapshot: "restored", "saved" or "none" (no Cache Storage here, or it could not be taken or
 * stored: the console says why).
 */
async function startPython() {
  const options = {
    indexURL: new URL("pyodide/", BASE_URL).href,
    stdout: () => {},
    stderr: (line) => console.warn(line),
  };
  const saved = await readSnapshot(pyodideVersion);
  if (saved) {
    try {
      const pyodide = await startPyodide({ ...options, _loadSnapshot: saved });
      pyodide.runPython("import sys, os"); // a restored interpreter that cannot do this is not used
      return { pyodide, snapshot: "restored" };
    } catch (error) {
      if (wasmError) throw wasmError; // not the snapshot's fault: keep it
      console.warn(`the saved Python snapshot could not be used (${describe(error)}); starting Python afresh`);
      await dropSnapshots();
    }
  }
  const pyodide = await startPyodide({ ...options, _makeSnapshot: true });
  let bytes = null;
  try {
    bytes = pyodide.makeMemorySnapshot();
  } catch (error) {
    console.warn(`could not take a Python snapshot (${describe(error)}); the next load starts Python afresh`);
  }
  const stored = bytes !== null && (await saveSnapshot(pyodideVersion, bytes));
  return { pyodide, snapshot: stored ? "saved" : "none" };
}

/** Size of Python's WebAssembly memory in bytes (it only grows), for the memory figures. */
function heapBytes() {
  return py?._module?.HEAP8?.length ?? null;
}

/**
 * session.<method>(args[, data]) in Python, through pycnn.session.dispatch -> {reply, transfer}.
 * The reply is the method's result as pycnn.session.encode sends it, with every array revived as
 * {shape, data: Float32Array} and every bytes value as a Uint8Array; transfer lists their
 * buffers. A ValueError in Python comes back as reply.error.
 */
function call(method, args = {}, data = null) {
  const out = dispatch(session, method, JSON.stringify(args), data);
  let text;
  let buffer;
  try {
    text = out.get(0);
    buffer = bytesOf(out.get(1)).buffer;
  } finally {
    out.destroy();
  }
  const transfer = buffer.byteLength ? [buffer] : [];
  const reply = JSON.parse(text, (key, value) => {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
    if ("f32" in value) {
      const size = value.shape.reduce((a, b) => a * b, 1);
      return { shape: value.shape, data: new Float32Array(buffer, value.f32, size) };
    }
    if ("u8" in value) {
      const bytes = new Uint8Array(buffer.slice(value.u8, value.u8 + value.size)); // its own buffer: it is stored
      transfer.push(bytes.buffer);
      return bytes;
    }
    return value;
  });
  return { reply, transfer };
}

/** Copy a Python bytes object out of the WebAssembly heap (and free the proxy). */
function bytesOf(proxy) {
  try {
    const buffer = proxy.getBuffer("u8");
    try {
      return buffer.data.slice();
    } finally {
      buffer.release();
    }
  } finally {
    proxy.destroy();
  }
}

/** A request's reply from Python, or an Error with Python's message. */
function request(method, args = {}, data = null) {
  const result = call(method, args, data);
  if (result.reply?.error) throw new Error(result.reply.error);
  return result;
}

let lastFiltersAt = -Infinity;

function postFilters() {
  lastFiltersAt = performance.now();
  const { reply, transfer } = request("filters");
  post("filters", reply, transfer);
}

function postCheckpoint(reason, evaluation, extra = {}) {
  const { reply, transfer } = request("model_bytes");
  post("checkpoint", { reason, evaluation, bytes: reply.bytes, undo_bytes: reply.undo, ...extra }, transfer);
}

const evaluate = () => request("evaluate").reply;

// Yield so queued messages (stop) run. A MessageChannel round trip is not clamped to 4 ms the
// way nested setTimeout(0) is; both are ordinary tasks, so a `stop` already queued runs first.
const yieldChannel = new MessageChannel();
let yieldResolvers = [];
yieldChannel.port1.addEventListener("message", () => {
  const resolvers = yieldResolvers;
  yieldResolvers = [];
  for (const resolve of resolvers) resolve();
});
yieldChannel.port1.start();
const yieldToEventLoop = () =>
  new Promise((resolve) => {
    yieldResolvers.push(resolve);
    yieldChannel.port2.postMessage(null);
  });

/** Milliseconds since the epoch, comparable between the page and this worker. */
const wallClock = () => performance.timeOrigin + performance.now();

/**
 * A run, one batch per call of session.step(): kind "train" (message: `train`) or "fine-tune"
 * (message: `fine-tune`, a FineTuneJob that trains copies: the model changes only when it
 * finishes). Every message of the run carries its kind.
 */
async function train(kind, message) {
  if (training) {
    post("error", { message: "Training is already running" });
    return;
  }
  const fineTune = kind === "fine-tune";
  const started = fineTune
    ? call("start_fine_tune", { config: message.config ?? {} }).reply
    : call("start", { config: message.config ?? {}, join_digits: Boolean(message.join_digits) }).reply;
  if (started.error) {
    post("error", { message: fineTune ? `Cannot fine-tune: ${started.error}` : `Invalid settings: ${started.error}` });
    if (fineTune) post("done", { kind, reason: "failed" });
    return;
  }
  training = true;
  stopRequested = null;
  post("started", { kind, config: message.config, ...started });
  let pending = { losses: [], images: 0, evalMs: 0, from: performance.now() }; // batches not yet reported
  let batchMs = 0; // the latest batch's time without an epoch end
  const recent = []; // when the latest batches ended: how many ended after a `stop` was sent
  let last = null; // the latest report from Python
  const postProgress = () => {
    // training speed: wall time of the window without held-out evaluations; 0 (unknown) for a sliver
    const trainMs = performance.now() - pending.from - pending.evalMs;
    const { step, total_steps, epoch, epochs, batch, batches_per_epoch, accuracy, phase } = last;
    post("progress", {
      kind, step, total_steps, epoch, epochs, batch, batches_per_epoch, accuracy, phase, losses: pending.losses,
      images_per_second: trainMs >= 20 ? (pending.images * 1000) / trainMs : 0,
    });
    pending = { losses: [], images: 0, evalMs: 0, from: performance.now() };
  };
  try {
    for (;;) {
      // one batch per call: a `stop` lands after the batch in flight
      const t0 = performance.now();
      const r = request("step").reply;
      const ms = performance.now() - t0;
      owedMs = Math.max(0, owedMs - ms);
      if (r.diverged) {
        postFilters();
        post("done", { kind, reason: "diverged", message: r.diverged, evaluation: evaluate(), heap_bytes: heapBytes() });
        return;
      }
      last = r;
      recent.push(wallClock());
      if (recent.length > 16) recent.shift();
      pending.losses.push(...r.losses);
      pending.images += r.images;
      const epochEnded = r.epoch_results.length > 0;
      if (epochEnded) pending.evalMs += Math.max(0, ms - batchMs); // the epoch's held-out evaluation
      else batchMs = ms;
      if (epochEnded || r.done || performance.now() - pending.from >= PROGRESS_EVERY_MS) postProgress();
      for (const result of r.epoch_results) post("epoch", result);
      if (epochEnded) {
        const lastEpoch = r.epoch_results[r.epoch_results.length - 1];
        postFilters();
        postCheckpoint("epoch", { loss: lastEpoch.val_loss, accuracy: lastEpoch.val_accuracy });
      } else if (!fineTune && performance.now() - lastFiltersAt >= FILTERS_EVERY_MS) {
        postFilters(); // the learner sees them move (a fine-tune trains copies: the model's stay)
      }
      if (r.done && fineTune) {
        // the fine-tuned model is the current one now: kept like any trained model
        const evaluation = evaluate();
        post("done", { kind, reason: "finished", evaluation, fine_tune: r.fine_tune, heap_bytes: heapBytes() });
        postCheckpoint("fine-tuned", evaluation); // no `filters`: a fine-tune changes the dense layers only
        return;
      }
      if (r.done) {
        post("done", { kind, reason: "finished", evaluation: evaluate(), heap_bytes: heapBytes() });
        return;
      }
      await yieldToEventLoop(); // a `stop` message is handled here
      if (stopRequested) {
        if (pending.losses.length) postProgress();
        // batches that ended after the page sent `stop`: the one in flight, normally
        const batchesAfterStop = recent.filter((end) => end > stopRequested.sentAt).length;
        const evaluation = evaluate();
        if (!fineTune) { // a stopped fine-tune leaves the model as it was: nothing new to show or keep
          postFilters();
          postCheckpoint("stopped", evaluation, { partial_epoch: r.step % r.batches_per_epoch !== 0 });
        }
        post("done", {
          kind, reason: "stopped", evaluation, step: r.step, batches_after_stop: batchesAfterStop, heap_bytes: heapBytes(),
        });
        return;
      }
      if (owedMs === 0) await answerDeferred();
    }
  } catch (error) {
    post("error", { message: `${fineTune ? "Fine-tuning" : "Training"} failed: ${describe(error)}` });
    post("done", { kind, reason: "failed" });
  } finally {
    training = false;
    stopRequested = null;
    owedMs = 0;
    await answerDeferred();
  }
}

/** Answer the requests that waited while training was owed time (one may wait again). */
async function answerDeferred() {
  const waiting = deferred;
  deferred = [];
  for (const request of waiting) await handle(request);
}

/** Milliseconds since `from`; during a run, training owes TRAIN_PER_SERVED_MS times as long. */
function served(from) {
  const ms = performance.now() - from;
  if (training) owedMs += ms * TRAIN_PER_SERVED_MS;
  return Math.round(ms * 10) / 10;
}

/** The bytes a message carries (transferred Uint8Array), or an empty array. */
const bytesIn = (message, key) => (message[key] instanceof Uint8Array ? message[key] : new Uint8Array(message[key] ?? []));

async function handle(message) {
  const { type, id } = message;
  const reply = (replyType, payload = {}, transfer = []) => post(replyType, { id, ...payload }, transfer);
  try {
    if (!ready) {
      if (id !== undefined) reply("error", { message: "Python is still loading" });
      return;
    }
    if (training && owedMs > 0 && (READ_ONLY.has(type) || YOUR_DIGITS.has(type))) {
      deferred.push(message); // answered once training has had its share (see TRAIN_PER_SERVED_MS)
      return;
    }
    const servedFrom = performance.now();
    switch (type) {
      case "train":
        await train("train", message);
        return;
      case "fine-tune":
        await train("fine-tune", message);
        return;
      case "stop":
        stopRequested = { sentAt: Number(message.sent_at) || Infinity }; // Infinity: the page did not say
        return;
      // READ_ONLY requests: answered between training batches too (their time is paid back, see served)
      case "predict": {
        const { width, height } = message;
        const { reply: result, transfer } = request("predict", { width, height }, bytesIn(message, "pixels"));
        reply("prediction", { ...result, ms: served(servedFrom) }, transfer);
        return;
      }
      case "inspect-heldout": {
        const { reply: result, transfer } = request("inspect_heldout", { index: message.index });
        reply("prediction", { ...result, ms: served(servedFrom) }, transfer);
        return;
      }
      case "next-heldout": {
        const { reply: result, transfer } = request("next_heldout", { label: message.label ?? null, after: message.after ?? -1 });
        reply("prediction", { ...result, ms: served(servedFrom) }, transfer);
        return;
      }
      case "heldout-cell": {
        const { label, predicted, max_digits: maxDigits } = message;
        const { reply: result, transfer } = request("heldout_cell", { label, predicted, max_digits: maxDigits ?? 40 });
        reply("cell", result, transfer);
        served(servedFrom);
        return;
      }
      case "analyse": {
        const { reply: result, transfer } = request("analyse", { max_mistakes: message.max_mistakes ?? 40 });
        reply("analysis", result, transfer);
        served(servedFrom);
        return;
      }
      case "network":
        reply("network", request("network").reply);
        served(servedFrom);
        return;
      case "check-network":
        reply("network-check", request("check_network", { layers: message.layers }).reply);
        served(servedFrom);
        return;
      case "arithmetic": {
        const { layer, channel, row, col, grid } = message;
        const { reply: result, transfer } = request("arithmetic", { layer, channel, row, col, grid: grid ?? "activated" });
        reply("arithmetic", { ...result, ms: served(servedFrom) }, transfer);
        return;
      }
      case "saliency": {
        const { reply: result, transfer } = request("saliency", { digit: message.digit });
        reply("saliency", { ...result, ms: served(servedFrom) }, transfer);
        return;
      }
      case "python-code":
        reply("python-code", request("python_code", { config: message.config ?? {} }).reply);
        served(servedFrom);
        return;
      case "export-script":
        reply("script", request("export_script", { config: message.config ?? {} }).reply);
        served(servedFrom);
        return;
      // YOUR_DIGITS requests: answered between batches too
      case "add-digit":
      case "remove-digit":
      case "my-digits":
      case "import-digits": {
        const { reply: result, transfer } = {
          "add-digit": () => request("add_digit", { label: message.label }),
          "remove-digit": () => request("remove_digit", { index: message.index }),
          "my-digits": () => request("my_digits"),
          "import-digits": () => request("import_digits", { replace: Boolean(message.replace) }, bytesIn(message, "bytes")),
        }[type]();
        reply("my-digits", result, transfer);
        served(servedFrom);
        return;
      }
      case "export-digits": {
        const { reply: result, transfer } = request("export_digits");
        reply("digits-exported", result, transfer);
        served(servedFrom);
        return;
      }
      default:
        break;
    }
    if (training) {
      reply("error", { message: `Cannot ${type} while training; stop first` });
      return;
    }
    switch (type) {
      case "estimate": {
        const { reply: result } = request("estimate", { config: message.config ?? {}, ...(message.batches ? { batches: message.batches } : {}) });
        reply("estimate", result);
        return;
      }
      case "evaluate":
        reply("evaluation", { evaluation: evaluate() });
        return;
      case "save": {
        const { reply: result, transfer } = request("model_bytes");
        reply("saved", { bytes: result.bytes, undo_bytes: result.undo }, transfer);
        return;
      }
      case "load": {
        const { reply: evaluation } = request("load", {}, bytesIn(message, "bytes"));
        reply("loaded", { evaluation });
        postFilters();
        return;
      }
      case "set-network": {
        const { reply: network } = request("set_network", { layers: message.layers, seed: message.seed ?? 0 });
        reply("network-set", network);
        postFilters();
        return;
      }
      case "try-step": {
        const { label, lr, optimizer } = message;
        const { reply: result, transfer } = request("try_step", { label, lr: lr ?? null, optimizer: optimizer ?? null });
        reply("step-tried", { ...result, ms: Math.round((performance.now() - servedFrom) * 10) / 10 }, transfer);
        postFilters(); // the step moved them
        return;
      }
      case "keep-step": {
        const { reply: result } = request("keep_step");
        reply("step-kept", result);
        postFilters();
        postCheckpoint("step", result.evaluation); // kept in IndexedDB like an epoch's model
        return;
      }
      case "undo-step":
        reply("step-undone", request("undo_step").reply);
        postFilters();
        return;
      case "reset": {
        const { reply: evaluation } = request("reset", { seed: message.seed ?? 0 });
        reply("reset-done", { evaluation });
        postFilters();
        return;
      }
      case "keep-undo": {
        request("keep_undo", {}, bytesIn(message, "bytes"));
        reply("undo-kept", {});
        return;
      }
      case "undo-fine-tune": {
        const { reply: evaluation } = request("undo_fine_tune");
        reply("fine-tune-undone", { evaluation });
        postFilters();
        postCheckpoint("fine-tune-undone", evaluation); // the model from before is kept again
        return;
      }
      default:
        reply("error", { message: `Unknown message type ${JSON.stringify(type)}` });
    }
  } catch (error) {
    reply("error", { message: describe(error) });
  }
}

self.addEventListener("message", (event) => {
  handle(event.data ?? {});
});

boot();
