// The only file that knows Python. Boots Pyodide, installs pycnn, loads the MNIST subset,
// then trains one batch per call, so `stop` and other messages are seen between batches.
// Message protocol: see PROTOCOL.md.
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
const READ_ONLY = new Set(["predict", "inspect-heldout", "analyse"]);
const STAGES = ["python", "numpy", "pycnn", "data"];

const PY_GLUE = String.raw`
import json, math, time
import numpy as np
import pycnn
from pycnn import datasets
from pycnn.training import TrainingConfig, Trainer, TrainingDiverged


def _clean(value):
    """Make a value JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json(value):
    return json.dumps(_clean(value), allow_nan=False)


class PageSession:
    """State the page needs: the data split, the current model and the current trainer."""

    def __init__(self, images_path, labels_path, heldout, seed):
        # split the uint8 digits, then scale the parts: the float32 copy of all 10,000 is never
        # made, which keeps ~31 MB out of the worker's memory (wasm memory never shrinks)
        images = datasets.read_idx_pixels(images_path)
        y = datasets.read_idx_labels(labels_path)
        x_tr, self.y_tr, x_ho, self.y_ho = datasets.train_test_split(images, y, test_size=heldout, seed=seed)
        self.x_tr, self.x_ho = datasets.scale(x_tr), datasets.scale(x_ho)
        self.model = pycnn.seed_model(seed=0)
        self.trainer = None
        self.floats = b""

    def info(self):
        return _json({
            "train_count": len(self.y_tr),
            "heldout_count": len(self.y_ho),
            "defaults": TrainingConfig.defaults(),
            "numpy": np.__version__,
            "pycnn": getattr(pycnn, "__version__", ""),
        })

    def start(self, config_json):
        try:
            cfg = TrainingConfig.from_dict(json.loads(config_json))
        except ValueError as e:
            return _json({"error": str(e)})
        self.trainer = Trainer(self.model, self.x_tr, self.y_tr, cfg, validation_data=(self.x_ho, self.y_ho))
        return _json({"ok": True})

    def step(self, max_batches):
        try:
            return _json(self.trainer.run(max_batches=int(max_batches)))
        except TrainingDiverged as e:
            return _json({"diverged": str(e)})

    def filters(self):
        W = np.asarray(self.model.layers[0].params["W"], dtype=np.float32)
        return _json({"shape": list(W.shape), "data": W.ravel().tolist()})

    def evaluate(self):
        return _json(self.model.evaluate(self.x_ho, self.y_ho))

    def to_bytes(self):
        return bytes(self.model.to_bytes())

    def load(self, buffer):
        try:
            model = pycnn.from_bytes(buffer.to_bytes())
        except ValueError as e:
            return _json({"error": str(e)})
        # the page draws layer 0 as 3x3 filters and feeds (N, 1, 28, 28) digits: refuse anything else
        try:
            W = model.layers[0].params["W"]
            probs = np.asarray(model.predict_proba(self.x_ho[:2]))
        except Exception as e:
            return _json({"error": f"this model does not fit the page: {type(e).__name__}: {e}"})
        if W.ndim != 4 or W.shape[1] != 1 or probs.shape != (2, 10):
            return _json({"error": f"this model does not fit the page: first layer weights {tuple(W.shape)}, output {tuple(probs.shape)}; expected (filters, 1, kh, kw) and 10 classes"})
        self.model = model
        self.trainer = None
        return self.evaluate()

    def reset(self, seed):
        self.model = pycnn.seed_model(seed=int(seed))
        self.trainer = None

    def estimate(self, config_json, batches):
        """Seconds-per-image figures from a short run on a copy of the model (the model itself is untouched)."""
        cfg = TrainingConfig.from_dict({**json.loads(config_json), "epochs": 1})
        copy = pycnn.from_bytes(self.model.to_bytes())
        trainer = Trainer(copy, self.x_tr, self.y_tr, cfg)
        trainer.run(max_batches=8)  # warm-up: buffers get allocated, hot wasm code tiers up
        t0 = time.perf_counter()
        r = trainer.run(max_batches=int(batches))
        train_s = time.perf_counter() - t0
        n_eval = min(600, len(self.y_ho))
        copy.evaluate(self.x_ho[:100], self.y_ho[:100])  # warm-up
        t0 = time.perf_counter()
        copy.evaluate(self.x_ho[:n_eval], self.y_ho[:n_eval])
        eval_s = time.perf_counter() - t0
        images = len(r["losses"]) * cfg.batch_size
        return _json({
            "train_images_per_second": images / train_s if train_s > 0 else None,
            "eval_images_per_second": n_eval / eval_s if eval_s > 0 else None,
        })


    # ---- drawing and held-out analysis (issue 4) ----
    def _inspect(self, x):
        """x: (1, 28, 28) -> probabilities, the input, and the first conv block's feature maps."""
        from pycnn.layers import Conv2D, MaxPool2D, ReLU
        batch = x[None].astype(np.float32)
        probs = np.asarray(self.model.predict_proba(batch))[0]
        maps = {}
        seen_conv = False
        for layer, out in zip(self.model.layers, self.model.activations(batch)):
            if isinstance(layer, Conv2D):
                if seen_conv:
                    break  # only the first block: its maps line up with the drawn filters
                seen_conv = True
            elif seen_conv and isinstance(layer, ReLU) and "relu" not in maps:
                maps["relu"] = out[0]
            elif seen_conv and isinstance(layer, MaxPool2D) and "pool" not in maps:
                maps["pool"] = out[0]
        arrays = []

        def pack(a):
            """The array goes to self.floats (sent as one Float32Array); JSON says where it is."""
            a = np.asarray(a, dtype=np.float32)
            entry = {"shape": list(a.shape), "offset": sum(b.size for b in arrays), "size": int(a.size)}
            arrays.append(a.ravel())
            return entry
        result = {
            "probabilities": probs.astype(float).tolist(),
            "prediction": int(probs.argmax()),
            "input": pack(x[0]),
            "maps": {k: pack(v) for k, v in maps.items()},
        }
        self.floats = np.concatenate(arrays).astype("<f4").tobytes()
        return result

    def predict(self, pixels, width, height):
        """pixels: width*height uint8 ink levels (0 = paper) -> JSON inspection, or {"empty": true}."""
        from pycnn import preprocess
        gray = np.frombuffer(pixels.to_bytes(), dtype=np.uint8).reshape(int(height), int(width))
        x = preprocess.to_mnist(gray)
        if x is None:
            return _json({"empty": True})
        return _json(self._inspect(np.asarray(x, dtype=np.float32).reshape(1, 28, 28)))

    def inspect_heldout(self, index):
        index = int(index)
        if not 0 <= index < len(self.y_ho):
            return _json({"error": f"held-out index must be in 0..{len(self.y_ho) - 1}, got {index}"})
        result = self._inspect(self.x_ho[index].reshape(1, 28, 28))
        result["label"] = int(self.y_ho[index])
        result["index"] = index
        return _json(result)

    def take_floats(self):
        """The arrays of the last _inspect, as little-endian float32 bytes."""
        floats, self.floats = self.floats, b""
        return floats

    def analyse(self, max_mistakes):
        """Confusion matrix (rows: true digit, columns: predicted) and the most confident mistakes."""
        probs = np.asarray(self.model.predict_proba(self.x_ho))
        pred = probs.argmax(axis=1)
        y = self.y_ho
        classes = probs.shape[1]
        confusion = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(confusion, (y, pred), 1)
        wrong = np.flatnonzero(pred != y)
        confidence = probs[wrong, pred[wrong]]
        order = wrong[np.argsort(-confidence, kind="stable")][: int(max_mistakes)]
        mistakes = [{
            "index": int(i), "label": int(y[i]), "predicted": int(pred[i]), "confidence": float(probs[i, pred[i]]),
            "pixels": np.round(self.x_ho[i].reshape(-1) * 255).astype(np.uint8).tolist(),
        } for i in order]
        return _json({
            "count": int(len(y)), "correct": int((pred == y).sum()), "confusion": confusion.tolist(),
            "wrong": int(len(wrong)), "mistakes": mistakes,
        })


page = None


def open_session(images_path, labels_path, heldout, seed):
    global page
    page = PageSession(images_path, labels_path, int(heldout), int(seed))
    return page.info()
`;

let py = null; // the Pyodide instance
let api = null; // Python callables
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
      await py.runPythonAsync(PY_GLUE);
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
      const open = py.globals.get("open_session");
      try {
        return JSON.parse(open("/data/images.gz", "/data/labels.gz", split.heldout ?? 1500, split.seed ?? 0));
      } finally {
        open.destroy();
      }
    });
    const page = py.globals.get("page"); // kept for the worker's lifetime
    api = {
      start: (config) => page.start(config),
      step: (n) => page.step(n),
      filters: () => page.filters(),
      evaluate: () => page.evaluate(),
      toBytes: () => page.to_bytes(),
      load: (bytes) => page.load(bytes),
      reset: (seed) => page.reset(seed),
      estimate: (config, batches) => page.estimate(config, batches),
      predict: (pixels, width, height) => page.predict(pixels, width, height),
      inspectHeldout: (index) => page.inspect_heldout(index),
      takeFloats: () => page.take_floats(),
      analyse: (maxMistakes) => page.analyse(maxMistakes),
    };
    ready = true;
    timings.total = Math.round(performance.now() - t0);
    post("ready", { info, timings, heapBytes: heapBytes() });
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
      const pyodide = await loadPyodide({ ...options, _loadSnapshot: saved });
      pyodide.runPython("import sys, os"); // a restored interpreter that cannot do this is not used
      return { pyodide, snapshot: "restored" };
    } catch (error) {
      console.warn(`the saved Python snapshot could not be used (${describe(error)}); starting Python afresh`);
      await dropSnapshots();
    }
  }
  const pyodide = await loadPyodide({ ...options, _makeSnapshot: true });
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

let lastFiltersAt = -Infinity;

function postFilters() {
  lastFiltersAt = performance.now();
  const { shape, data } = JSON.parse(api.filters());
  const array = Float32Array.from(data);
  post("filters", { shape, data: array }, [array.buffer]);
}

function modelBytes() {
  return bytesOf(api.toBytes());
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

/** An _inspect result (JSON) with its arrays attached as Float32Array views of one transferable buffer. */
function withArrays(json) {
  const result = JSON.parse(json);
  if (result.error || result.empty) return { result, transfer: [] };
  const floats = new Float32Array(bytesOf(api.takeFloats()).buffer);
  for (const entry of [result.input, ...Object.values(result.maps ?? {})]) {
    entry.data = floats.subarray(entry.offset, entry.offset + entry.size);
    delete entry.offset;
    delete entry.size;
  }
  return { result, transfer: [floats.buffer] };
}

function postCheckpoint(reason, evaluation, extra = {}) {
  const bytes = modelBytes();
  post("checkpoint", { reason, evaluation, bytes, ...extra }, [bytes.buffer]);
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

/** Milliseconds since the epoch, comparable between the page and this worker. */
const wallClock = () => performance.timeOrigin + performance.now();

async function train(message) {
  if (training) {
    post("error", { message: "Training is already running" });
    return;
  }
  const started = JSON.parse(api.start(JSON.stringify(message.config ?? {})));
  if (started.error) {
    post("error", { message: `Invalid settings: ${started.error}` });
    return;
  }
  training = true;
  stopRequested = null;
  post("started", { config: message.config });
  let pending = { losses: [], images: 0, evalMs: 0, from: performance.now() }; // batches not yet reported
  let batchMs = 0; // the latest batch's time without an epoch end
  const recent = []; // when the latest batches ended: how many ended after a `stop` was sent
  let last = null; // the latest report from Python
  const postProgress = () => {
    // training speed: wall time of the window without held-out evaluations; 0 (unknown) for a sliver
    const trainMs = performance.now() - pending.from - pending.evalMs;
    post("progress", {
      step: last.step, totalSteps: last.total_steps, epoch: last.epoch, epochs: last.epochs,
      batch: last.batch, batchesPerEpoch: last.batches_per_epoch, losses: pending.losses,
      accuracy: last.accuracy, imagesPerSecond: trainMs >= 20 ? (pending.images * 1000) / trainMs : 0,
    });
    pending = { losses: [], images: 0, evalMs: 0, from: performance.now() };
  };
  try {
    for (;;) {
      // one batch per call: a `stop` lands after the batch in flight
      const t0 = performance.now();
      const r = JSON.parse(api.step(1));
      const ms = performance.now() - t0;
      owedMs = Math.max(0, owedMs - ms);
      if (r.diverged) {
        const evaluation = JSON.parse(api.evaluate());
        postFilters();
        post("done", { reason: "diverged", message: r.diverged, evaluation, heapBytes: heapBytes() });
        return;
      }
      last = r;
      recent.push(wallClock());
      if (recent.length > 16) recent.shift();
      pending.losses.push(...r.losses);
      pending.images += r.images;
      const epochEnded = r.epoch_results?.length > 0;
      if (epochEnded) pending.evalMs += Math.max(0, ms - batchMs); // the epoch's held-out evaluation
      else batchMs = ms;
      if (epochEnded || r.done || performance.now() - pending.from >= PROGRESS_EVERY_MS) postProgress();
      for (const e of r.epoch_results ?? []) {
        post("epoch", {
          epoch: e.epoch, loss: e.loss, accuracy: e.accuracy, valLoss: e.val_loss, valAccuracy: e.val_accuracy,
        });
      }
      if (epochEnded) {
        const lastEpoch = r.epoch_results[r.epoch_results.length - 1];
        postFilters();
        postCheckpoint("epoch", { loss: lastEpoch.val_loss, accuracy: lastEpoch.val_accuracy });
      } else if (performance.now() - lastFiltersAt >= FILTERS_EVERY_MS) {
        postFilters(); // the learner sees them move
      }
      if (r.done) {
        const evaluation = JSON.parse(api.evaluate());
        post("done", { reason: "finished", evaluation, heapBytes: heapBytes() });
        return;
      }
      await yieldToEventLoop(); // a `stop` message is handled here
      if (stopRequested) {
        if (pending.losses.length) postProgress();
        // batches that ended after the page sent `stop`: the one in flight, normally
        const batchesAfterStop = recent.filter((end) => end > stopRequested.sentAt).length;
        const evaluation = JSON.parse(api.evaluate());
        postFilters();
        postCheckpoint("stopped", evaluation, { partialEpoch: r.step % r.batches_per_epoch !== 0 });
        post("done", { reason: "stopped", evaluation, step: r.step, batchesAfterStop, heapBytes: heapBytes() });
        return;
      }
      if (owedMs === 0) await answerDeferred();
    }
  } catch (error) {
    post("error", { message: `Training failed: ${describe(error)}` });
    post("done", { reason: "failed" });
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

async function handle(message) {
  const { type, id } = message;
  const reply = (replyType, payload = {}, transfer = []) => post(replyType, { id, ...payload }, transfer);
  try {
    if (!ready) {
      if (id !== undefined) reply("error", { message: "Python is still loading" });
      return;
    }
    if (training && owedMs > 0 && READ_ONLY.has(type)) {
      deferred.push(message); // answered once training has had its share (see TRAIN_PER_SERVED_MS)
      return;
    }
    const servedFrom = performance.now();
    switch (type) {
      case "train":
        await train(message);
        return;
      case "stop":
        stopRequested = { sentAt: Number(message.sentAt) || Infinity }; // Infinity: the page did not say
        return;
      // READ_ONLY requests: answered between training batches too (their time is paid back, see served)
      case "predict": {
        const pixels = message.pixels instanceof Uint8Array ? message.pixels : new Uint8Array(message.pixels ?? []);
        if (pixels.length !== message.width * message.height) {
          reply("error", { message: `predict needs width*height pixels, got ${pixels.length}` });
          return;
        }
        const { result, transfer } = withArrays(api.predict(pixels, message.width, message.height));
        reply("prediction", { ...result, ms: served(servedFrom) }, transfer);
        return;
      }
      case "inspect-heldout": {
        const { result, transfer } = withArrays(api.inspectHeldout(message.index));
        if (result.error) reply("error", { message: result.error });
        else reply("prediction", { ...result, ms: served(servedFrom) }, transfer);
        return;
      }
      case "analyse":
        reply("analysis", JSON.parse(api.analyse(message.maxMistakes ?? 40)));
        served(servedFrom);
        return;
      default:
        break;
    }
    if (training) {
      reply("error", { message: `Cannot ${type} while training; stop first` });
      return;
    }
    switch (type) {
      case "estimate": {
        reply("estimate", JSON.parse(api.estimate(JSON.stringify(message.config ?? {}), message.batches ?? 40)));
        return;
      }
      case "evaluate":
        reply("evaluation", { evaluation: JSON.parse(api.evaluate()) });
        return;
      case "save": {
        const bytes = modelBytes();
        reply("saved", { bytes }, [bytes.buffer]);
        return;
      }
      case "load": {
        const bytes = message.bytes instanceof Uint8Array ? message.bytes : new Uint8Array(message.bytes ?? []);
        const result = JSON.parse(api.load(bytes));
        if (result.error) {
          reply("error", { message: result.error });
          return;
        }
        reply("loaded", { evaluation: result });
        postFilters();
        return;
      }
      case "reset":
        api.reset(message.seed ?? 0);
        reply("reset-done", { evaluation: JSON.parse(api.evaluate()) });
        postFilters();
        return;
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
