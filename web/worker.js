// Transport between the page and Python: boots Pyodide, installs pycnn, opens a
// pycnn.page.Session on the bundled digits, relays each request {id, method, args} to
// pycnn.page.dispatch and posts back {id, result | error, events}, and runs the training loop
// (one batch per call of Python's `step`, so `stop` and other requests are seen between
// batches). Which requests there are, what they do during a run and what the page is told
// after them is Python's (the registry in pycnn/page/protocol.py): no request has code here.
// With more cores, it keeps helper workers (helpers.js; the page starts them for it): this same file
// in its helper mode, which boots Python and pycnn only and computes the shards of a batch
// (pycnn.parallel.run_shards), talking to this worker over a MessagePort.
// Message protocol: see PROTOCOL.md.
import { HELPER_PREFIX, HelperPool } from "./helpers.js";
import { loadPyodide, version as pyodideVersion } from "./pyodide/pyodide.mjs";
import { dropSnapshots, readSnapshot, saveSnapshot, sha256Hex, snapshotName } from "./snapshot.js";

const BASE_URL = new URL("./", import.meta.url);
const HELPER = self.name?.startsWith(HELPER_PREFIX) ?? false; // this worker is a helper (see helpers.js)
const PROGRESS_EVERY_MS = 50; // progress messages while training (plus with every event and at the end)
// Requests answered while a run trains (predictions while the learner draws) may take at most
// 1 / (1 + TRAIN_PER_SERVED_MS) of the worker's time: after answering for p ms, training runs for
// TRAIN_PER_SERVED_MS * p ms before the next request is answered (it waits in `deferred`), so a
// burst of drawing cannot starve training, and `stop` still lands after the batch in flight.
const TRAIN_PER_SERVED_MS = 2;

let py = null; // the Pyodide instance
let page = null; // pycnn.page (a Python proxy): Session and dispatch
let session = null; // a pycnn.page.Session on the bundled digits, once they are loaded
let requests = null; // the registry of requests, from the session's info: name -> {during_run, then, starts_run}
let running = null; // the name of the request whose run is in flight, or null
let owedMs = 0; // training time owed for requests answered during this run
let deferred = []; // requests waiting until that time is trained
let helpers = null; // the helper workers (a HelperPool), in the worker that holds the session
let shardMs = 0; // what one shard of a batch takes this worker (smoothed), for how long a helper may take
let stepWorkers = 1; // the workers that computed the latest step (this one included)
let runTakesShards = false; // the run in flight is split into shards that helpers can compute

/** Tell the page events [{type, ...}] (with the size of Python's memory, for the memory figures). */
function postEvents(events, transfer = []) {
  self.postMessage({ events, heap_bytes: heapBytes() }, transfer);
}

const post = (type, payload = {}) => postEvents([{ type, ...payload }]);

// Lifeline: hold a Web Lock named after this worker until it ends, so the page (or, for a helper,
// the worker it helps) learns of an end that raises no error event (self.close(), killed by the
// browser). See client.js #watch and helpers.js.
let lifeline = false; // the lock is held
if (self.name && self.navigator?.locks) {
  navigator.locks
    .request(self.name, () => {
      lifeline = true;
      if (!HELPER) post("lifeline");
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
      const { pyodide, snapshot } = await startPython(snapshotImports(prefetched.site));
      timings.snapshot = snapshot;
      return pyodide;
    });
    await timed("numpy", "Loading numpy", () => loadNumpy());
    await timed("pycnn", "Installing pycnn", async () => {
      // the wheel was downloaded by us while Python booted (a clear message for an HTTP error)
      installWheel(await prefetched.wheel);
      page = py.pyimport("pycnn.page"); // kept for the worker's lifetime
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
      const Session = page.Session;
      try {
        session = Session.from_files("/data/images.gz", "/data/labels.gz", split.heldout ?? 1500, split.seed ?? 0);
      } finally {
        Session.destroy();
      }
      const reply = call("info");
      if (reply.error) throw new Error(reply.error);
      return reply;
    });
    requests = info.result.requests;
    timings.total = Math.round(performance.now() - t0);
    postEvents([{ type: "ready", info: info.result, timings }], info.transfer);
    postEvents(info.events, info.eventsTransfer);
    helpers.start(); // after ready: helpers never delay it
  } catch (error) {
    console.error(error);
    if (timings.snapshot === "restored") await dropSnapshots(); // Retry then starts Python afresh
    post("error", { fatal: true, stage: error.stage ?? "python", message: describe(error) });
  }
}

/** The standard-library modules the site's manifest (a promise) says to import into the snapshot; none
 * when it cannot be had (the stage that needs the manifest then says why). */
async function snapshotImports(manifest) {
  try {
    const imports = (await manifest).python_snapshot_imports;
    return Array.isArray(imports) ? imports.map(String) : [];
  } catch {
    return [];
  }
}

/**
 * Pyodide, restored from the memory snapshot a previous visit saved (see snapshot.js) or
 * started afresh, in which case the modules `imports` (a promise of their names) are imported and
 * a snapshot is taken for the next visit before anything else runs. snapshot: "restored", "saved"
 * or "none" (no Cache Storage here, or it could not be taken or stored: the console says why).
 */
async function startPython(imports, { helper = false } = {}) {
  const options = {
    indexURL: new URL("pyodide/", BASE_URL).href,
    stdout: () => {},
    stderr: (line) => console.warn(line),
  };
  const modules = await imports;
  const name = await snapshotName(pyodideVersion, modules);
  const saved = await readSnapshot(name);
  if (saved) {
    try {
      const pyodide = await startPyodide({ ...options, _loadSnapshot: saved });
      pyodide.runPython("import sys, os"); // a restored interpreter that cannot do this is not used
      return { pyodide, snapshot: "restored" };
    } catch (error) {
      if (wasmError) throw wasmError; // not the snapshot's fault: keep it
      console.warn(`the saved Python snapshot could not be used (${describe(error)}); starting Python afresh`);
      if (!helper) await dropSnapshots(); // the main worker decides about the snapshot
    }
  }
  if (helper) return { pyodide: await startPyodide(options), snapshot: "none" };
  const pyodide = await startPyodide({ ...options, _makeSnapshot: true });
  for (const module of modules) {
    try {
      pyodide.pyimport(module).destroy();
    } catch (error) {
      console.warn(`could not import ${module} into the Python snapshot (${describe(error)})`);
    }
  }
  let bytes = null;
  try {
    bytes = pyodide.makeMemorySnapshot();
  } catch (error) {
    console.warn(`could not take a Python snapshot (${describe(error)}); the next load starts Python afresh`);
  }
  const stored = bytes !== null && (await saveSnapshot(name, bytes));
  return { pyodide, snapshot: stored ? "saved" : "none" };
}

/** numpy from the site's own pyodide/ folder (checked against pyodide-lock.json), imported. */
async function loadNumpy() {
  await py.loadPackage(["numpy"], { messageCallback: () => {}, errorCallback: (m) => console.warn(m) });
  py.runPython("import numpy");
}

/**
 * Unpack the pycnn wheel {name, bytes} into site-packages. Its only requirement, numpy, is loaded by then; a
 * pure-Python wheel needs no more than its files (micropip, which would also check the requirement,
 * takes longer to import than the unpacking itself).
 */
function installWheel({ name, bytes }) {
  const [site, sys] = [py.pyimport("site"), py.pyimport("sys")];
  try {
    const folder = withProxy(site.getsitepackages(), (folders) => folders.get(0));
    try {
      py.unpackArchive(bytes, "wheel", { extractDir: folder });
    } catch (error) {
      throw new Error(`could not install ${name}: ${describe(error)}`);
    }
    // the import system's listing of site-packages may predate the files (importlib.invalidate_caches() would
    // do, but it also reads the standard library's zip index again, which takes longer than the unpacking)
    withProxy(sys.path_importer_cache, (cache) => withProxy(cache.get(folder), (finder) => finder?.invalidate_caches()));
  } finally {
    site.destroy();
    sys.destroy();
  }
}

/** f(proxy), then the Python proxy is released (null and undefined pass through). */
function withProxy(proxy, f) {
  try {
    return f(proxy);
  } finally {
    proxy?.destroy?.();
  }
}

/** Size of Python's WebAssembly memory in bytes (it only grows), for the memory figures. */
function heapBytes() {
  return py?._module?.HEAP8?.length ?? null;
}

/**
 * The request `method` in Python (pycnn.page.dispatch) -> {result, ms, transfer} or {error}, and
 * {events, eventsTransfer}: every array revived as {shape, data: Float32Array} and every bytes
 * value as a Uint8Array of its own (it may be stored); the reply and its events each own their
 * buffers, so they can be posted as two messages (the page handles the reply first).
 */
function call(method, args = {}, data = null) {
  const out = page.dispatch(session, method, JSON.stringify(args), data);
  let text;
  let buffer;
  try {
    text = out.get(0);
    buffer = bytesOf(out.get(1)).buffer;
  } finally {
    out.destroy();
  }
  const { result, events = [], ...rest } = JSON.parse(text);
  const [revivedResult, transfer] = revive(result, buffer);
  const [revivedEvents, eventsTransfer] = events.length ? revive(events, buffer.slice(0)) : [[], []];
  return { ...rest, result: revivedResult, transfer, events: revivedEvents, eventsTransfer };
}

/** A decoded reply part with its arrays and bytes put back from `buffer` -> [value, buffers to transfer]. */
function revive(value, buffer) {
  const transfer = [buffer];
  const walk = (v) => {
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) return v.map(walk);
    if ("f32" in v) return { shape: v.shape, data: new Float32Array(buffer, v.f32, v.shape.reduce((a, b) => a * b, 1)) };
    if ("u8" in v) {
      const bytes = new Uint8Array(buffer.slice(v.u8, v.u8 + v.size));
      transfer.push(bytes.buffer);
      return bytes;
    }
    return Object.fromEntries(Object.entries(v).map(([key, item]) => [key, walk(item)]));
  };
  return [walk(value), transfer];
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

/**
 * The run started by request `name` (its start's reply: `started`): Python's `step` until a step
 * says the run ended, or, for a run split into shards while helpers are up, the step in phases
 * (shardedStep). Python decides what the page is told (epochs, filters, checkpoints, done); this
 * loop adds `progress`, the batches' losses, the training speed by the wall clock and how many
 * workers computed the latest batch, at most every PROGRESS_EVERY_MS.
 */
async function runLoop(name, started) {
  running = name;
  runTakesShards = (started?.shards ?? 1) > 1;
  helpers.fill(); // helpers that left an earlier run come back for this one
  stepWorkers = 1;
  tellWorkers();
  let pending = { losses: [], images: 0, from: performance.now() }; // batches not yet reported
  let batchMs = 0; // the latest batch's time without an epoch's held-out evaluation
  let last = null; // the latest step's report
  const postProgress = (events = [], transfer = []) => {
    // training speed: wall time of the window without held-out evaluations; 0 (unknown) for a sliver
    const trainMs = performance.now() - pending.from;
    const { losses, images, ended, ...where } = last;
    const progress = { type: "progress", ...where, losses: pending.losses, workers: stepWorkers,
      images_per_second: trainMs >= 20 && pending.images ? (pending.images * 1000) / trainMs : 0 };
    postEvents([progress, ...events], transfer);
    pending = { losses: [], images: 0, from: performance.now() };
  };
  try {
    for (;;) {
      const t0 = performance.now();
      const free = runTakesShards ? helpers.ready() : [];
      // one batch: a `stop` lands after the batch in flight
      const reply = free.length ? await shardedStep(free) : call("step");
      if (!free.length) stepWorkers = 1;
      const ms = performance.now() - t0;
      if (reply.error) throw new Error(reply.error);
      owedMs = Math.max(0, owedMs - ms);
      last = reply.result;
      pending.losses.push(...last.losses);
      pending.images += last.images;
      // a step that told something (an epoch ended) took longer by its held-out evaluation: not training speed
      if (reply.events.length && last.images) pending.from += Math.max(0, ms - batchMs);
      else if (last.images) batchMs = ms;
      if (reply.events.length || last.ended || performance.now() - pending.from >= PROGRESS_EVERY_MS) {
        if (pending.losses.length) postProgress(reply.events, reply.eventsTransfer);
        else if (reply.events.length) postEvents(reply.events, reply.eventsTransfer);
      }
      if (last.ended) return;
      await yieldToEventLoop(); // a `stop` (and other requests) are handled here
      if (owedMs === 0) await answerDeferred();
    }
  } catch (error) {
    postEvents([{ type: "done", run: name, reason: "failed", message: describe(error) }]);
  } finally {
    running = null;
    runTakesShards = false;
    owedMs = 0;
    tellWorkers();
    await answerDeferred();
  }
}

/**
 * One batch of the run taken in shards (Python's begin_step, compute_shard, prepare_step, shard_result,
 * finish_step): each helper in `free` that Python gives shards gets one task (the weights once, its
 * shards) posted first, this worker computes its own shards meanwhile, then draws the next batch
 * (prepare_step: off the critical path while the helpers finish), then each helper's results (one per
 * shard) are handed to Python as they come. A helper that fails leaves the pool, and this worker
 * computes the shards it held: the batch is neither lost nor repeated, and the sum in shard order
 * makes its weights the same whoever computed what.
 * -> finish_step's reply (step's), or begin_step's when the run ended there (stopped).
 */
async function shardedStep(free) {
  const begun = call("begin_step", { helpers: free.length });
  if (begun.error || begun.result.ended) return begun;
  const { tasks, given, mine } = begun.result; // tasks[j]: the shards given[j], for free[j]
  const answers = tasks.map((task, j) => {
    const [helper, shards] = [free[j], given[j]];
    return helpers.compute(helper, [task], shardMs * shards.length)
      .then((results) => ({ helper, shards, results }), (error) => ({ helper, shards, error }));
  });
  const t0 = performance.now();
  for (const shard of mine) check(call("compute_shard", { shard }));
  if (mine.length) {
    const ms = (performance.now() - t0) / mine.length;
    shardMs = shardMs ? 0.8 * shardMs + 0.2 * ms : ms;
  }
  check(call("prepare_step"));
  let computed = 1;
  for (const answer of answers) {
    const { helper, shards, results, error } = await answer;
    let failure = error;
    const handed = new Set();
    if (!failure && results.length !== shards.length) {
      failure = new Error(`it sent ${results.length} results for ${shards.length} shards`);
      helpers.end(helper, failure.message);
    }
    for (const result of failure ? [] : results) {
      const reply = call("shard_result", {}, result);
      if (reply.error) {
        failure = new Error(`its result was refused: ${reply.error}`);
        helpers.end(helper, failure.message);
        break;
      }
      handed.add(reply.result.shard);
    }
    if (!failure) computed += 1;
    for (const shard of shards) if (!handed.has(shard)) check(call("compute_shard", { shard }));
  }
  stepWorkers = computed;
  return call("finish_step");
}

/** A reply of Python that must not fail (the run is broken otherwise): its error thrown. */
function check(reply) {
  if (reply.error) throw new Error(reply.error);
  return reply;
}

/**
 * Tell the page how many workers work on the next batch (this one included), how many are wanted, the
 * helpers (HelperPool.describe) and, when one just left, why and whether a run was going.
 */
function tellWorkers(left = null) {
  if (!helpers || !requests) return;
  const count = running && !runTakesShards ? 1 : 1 + helpers.ready().length;
  post("workers", { count, wanted: 1 + helpers.wanted, helpers: helpers.describe(),
    ...(left ? { left: { reason: left.reason, during_run: Boolean(running) } } : {}) });
}

/** Answer the requests that waited while training was owed time (one may wait again). */
async function answerDeferred() {
  const waiting = deferred;
  deferred = [];
  for (const message of waiting) await handle(message);
}

/** A request from the page, {id, method, args}: relayed to Python, its reply and events posted back. */
async function handle(message) {
  const { id, method, args = {} } = message;
  if (method === undefined) { // not a request: the workers setting, or a helper the page started or saw fail
    if (message.workers !== undefined) helpers.want(Number(message.workers) - 1);
    else if (message.port) helpers.connect(message.helper, message.port);
    else if (message.error !== undefined) helpers.failed(message.helper, String(message.error));
    return;
  }
  if (!requests) {
    self.postMessage({ id, error: "Python is still loading" });
    return;
  }
  const spec = requests[method];
  if (running && spec?.during_run === "answer" && owedMs > 0) {
    deferred.push(message); // answered once training has had its share (see TRAIN_PER_SERVED_MS)
    return;
  }
  const { data = null, ...rest } = args;
  const t0 = performance.now();
  let reply;
  try {
    reply = call(method, rest, data);
  } catch (error) {
    reply = { error: describe(error), events: [] };
  }
  if (running && spec?.during_run === "answer") owedMs += (performance.now() - t0) * TRAIN_PER_SERVED_MS;
  const { result, error, ms, transfer = [], events, eventsTransfer } = reply;
  self.postMessage(error === undefined ? { id, result, ms, heap_bytes: heapBytes() } : { id, error }, transfer);
  if (events.length) postEvents(events, eventsTransfer);
  if (spec?.starts_run && error === undefined) await runLoop(method, result);
}

// ---- helper mode: Python and pycnn only, computing the shard tasks the main worker sends ----------
let runShards = null; // pycnn.parallel.run_shards, once loaded
let taskPort = null; // the channel to the worker this one helps

/** Boot as a helper: Python (from the snapshot when there is one), numpy and the pycnn wheel; no digits, no
 * session. Then say so over the channel the page hands over (`{port}`): {helper: "ready", timings, lifeline}. */
async function bootHelper(port) {
  const t0 = performance.now();
  const timings = {};
  const timed = async (stage, work) => {
    const s = performance.now();
    const result = await work();
    timings[stage] = Math.round(performance.now() - s);
    return result;
  };
  let reply;
  try {
    const site = fetchJson(new URL("manifest.json", BASE_URL), "the site manifest");
    const wheel = site.then(async (manifest) => {
      if (!manifest.pycnn_wheel) throw new Error("manifest.json names no pycnn_wheel");
      const url = new URL(manifest.pycnn_wheel, BASE_URL);
      return { name: url.pathname.split("/").pop(), bytes: await fetchBytes(url, "the pycnn wheel") };
    });
    wheel.catch(() => {});
    py = await timed("python", async () => {
      const { pyodide, snapshot } = await startPython(snapshotImports(site), { helper: true });
      timings.snapshot = snapshot;
      return pyodide;
    });
    await timed("numpy", () => loadNumpy());
    await timed("pycnn", async () => {
      installWheel(await wheel); // the main worker installed and checked this very wheel
      runShards = py.pyimport("pycnn.parallel").run_shards;
    });
    timings.total = Math.round(performance.now() - t0);
    reply = { helper: "ready", timings, lifeline, heap_bytes: heapBytes() };
  } catch (error) {
    reply = { helper: "failed", message: describe(error) };
  }
  taskPort = await port;
  taskPort.addEventListener("message", (event) => computeTasks(event.data ?? {}));
  taskPort.start();
  taskPort.postMessage(reply);
}

/** A task message {id, tasks: [Uint8Array]} -> {id, results: [Uint8Array]: of each task, a result per shard it
 * holds, in its order; ms} (transferred) or {id, error}. */
function computeTasks({ id, tasks }) {
  if (!runShards) {
    taskPort.postMessage({ id, error: "the helper could not start" });
    return;
  }
  const t0 = performance.now();
  try {
    const results = [];
    for (const task of tasks) {
      const data = py.toPy(task); // a memoryview of a copy in Python's memory
      try {
        withProxy(runShards(data), (list) => {
          for (let i = 0; i < list.length; i++) results.push(bytesOf(list.get(i)));
        });
      } finally {
        data.destroy();
      }
    }
    taskPort.postMessage({ id, results, ms: performance.now() - t0, heap_bytes: heapBytes() }, results.map((r) => r.buffer));
  } catch (error) {
    taskPort.postMessage({ id, error: describe(error) });
  }
}

if (HELPER) {
  // the page hands over this helper's end of its channel to the worker it helps
  const port = new Promise((resolve) => {
    self.addEventListener("message", (event) => event.data?.port && resolve(event.data.port));
  });
  bootHelper(port);
} else {
  helpers = new HelperPool(({ left }) => tellWorkers(left), ({ type, name }) => post(type, { name }));
  self.addEventListener("message", (event) => {
    handle(event.data ?? {});
  });
  boot();
}
