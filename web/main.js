// Wiring: DOM events -> worker messages, worker messages -> view state, one render per frame.
import { WorkerClient } from "./client.js";
import { ModelStore } from "./store.js";
import { LossChart, AccuracyChart } from "./chart.js";
import { FiltersView } from "./filters.js";
import { LIMITS, validateSettings } from "./validate.js";
import { Sketch } from "./sketch.js";
import { EvaluationView, FeatureMapsView, PredictionView } from "./insight.js";
import { dropSnapshots } from "./snapshot.js";

const MODEL_FILE_NAME = "pycnn-model.npz";
const MAX_MODEL_FILE_BYTES = 20 * 1024 * 1024; // the page's models are ~70 kB; refuse huge files before reading
const STAGE_ORDER = ["python", "numpy", "pycnn", "data", "ready"];
const PREDICT_THROTTLE_MS = 80; // while a stroke is being drawn
const MAX_MISTAKES = 40;

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const fmtInt = (n) => Math.round(n).toLocaleString("en");
const fmtPct = (v) => `${(v * 100).toFixed(1)}%`;
const fmtSeconds = (s) => (s < 1 ? `${s.toFixed(1)} s` : s < 90 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`);
const fmtMs = (ms) => `${(ms / 1000).toFixed(1)} s`;

const ui = {
  status: byTestId("status"),
  stages: byTestId("stages"),
  banner: byTestId("message"),
  bannerText: document.querySelector(".banner-text"),
  retry: byTestId("retry-button"),
  dismiss: document.querySelector(".banner .dismiss"),
  form: document.getElementById("train-form"),
  inputs: {
    epochs: byTestId("epochs-input"),
    batchSize: byTestId("batch-size-input"),
    lr: byTestId("learning-rate-input"),
    optimizer: byTestId("optimizer-select"),
    trainSize: byTestId("train-size-input"),
    seed: byTestId("seed-input"),
  },
  errors: {
    epochs: byTestId("epochs-error"),
    batchSize: byTestId("batch-size-error"),
    lr: byTestId("learning-rate-error"),
    trainSize: byTestId("train-size-error"),
    seed: byTestId("seed-error"),
  },
  train: byTestId("train-button"),
  stop: byTestId("stop-button"),
  reset: byTestId("reset-button"),
  estimate: byTestId("estimate"),
  modelState: byTestId("model-state"),
  download: byTestId("download-model"),
  load: byTestId("load-model"),
  loadLabel: document.querySelector(".file-button"),
  storageNote: byTestId("storage-note"),
  accuracy: byTestId("accuracy"),
  progress: byTestId("progress"),
  progressBar: document.querySelector('[data-testid="progress"] progress'),
  progressText: document.querySelector(".progress-text"),
};

const client = new WorkerClient();
const store = new ModelStore();
const lossChart = new LossChart(byTestId("loss-chart"));
const accuracyChart = new AccuracyChart(byTestId("accuracy-chart"));
const filters = new FiltersView(byTestId("filters"), {
  bar: document.querySelector(".legend-bar"),
  min: document.querySelector(".legend-min"),
  max: document.querySelector(".legend-max"),
});

const predictionView = new PredictionView({
  prediction: byTestId("prediction"),
  note: byTestId("prediction-note"),
  probabilities: byTestId("probabilities"),
  modelInput: byTestId("model-input"),
});
const featureMaps = new FeatureMapsView(byTestId("feature-maps"));
const evaluationView = new EvaluationView(
  { confusion: byTestId("confusion-matrix"), mistakes: byTestId("mistakes"), summary: byTestId("evaluation-summary") },
  (index, button) => inspectHeldout(index, button),
);

const app = {
  state: "loading",
  inspecting: null, // index of the held-out digit shown instead of the drawing
  prediction: null,
  info: null, // {train_count, heldout_count, defaults}
  limits: structuredClone(LIMITS),
  evaluation: null, // {loss, accuracy} on the held-out part, null while untrained
  model: { kind: "untrained", epochs: 0, digits: 0, savedAt: null, fileName: "" },
  history: { losses: [], epochs: [] }, // since the last reset / load
  epochsBeforeRun: 0,
  run: null, // {config, startedAt, step, totalSteps, ...} while training
  imagesPerSecond: null, // measured (estimate, then real training)
  evalImagesPerSecond: null, // held-out evaluation speed (estimate)
  loadStartedAt: 0, // performance.now() when the worker was (re)started
  storageOk: false,
  hasSavedModel: false, // a model is in IndexedDB (so a retry brings it back)
  busy: false, // a request (load/save/reset) is in flight
};

// ---------- rendering: everything visual goes through one rAF ----------
let frameRequested = false;
const dirty = new Set();
function invalidate(...parts) {
  for (const part of parts) dirty.add(part);
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(render);
  }
}

function render() {
  frameRequested = false;
  const parts = new Set(dirty);
  dirty.clear();
  if (parts.has("charts")) {
    lossChart.render();
    accuracyChart.render();
  }
  if (parts.has("filters")) filters.render();
  if (parts.has("progress")) renderProgress();
  if (parts.has("accuracy")) renderAccuracy();
  if (parts.has("controls")) renderControls();
  if (parts.has("model")) renderModelState();
  if (parts.has("estimate")) renderEstimate();
  if (parts.has("prediction")) renderPrediction();
}

function setState(state) {
  app.state = state;
  document.body.dataset.state = state;
  invalidate("controls", "estimate");
}

function showMessage(text, kind = "info", { retry = false, retryLabel = "Retry" } = {}) {
  // a dead worker's message (with its Retry/Restart button) stays until the worker runs again
  if (!retry && app.state === "error" && !ui.retry.hidden) return;
  ui.banner.hidden = false;
  ui.banner.dataset.kind = kind;
  ui.bannerText.textContent = text;
  ui.retry.hidden = !retry;
  ui.retry.textContent = retryLabel;
  ui.dismiss.hidden = retry;
}

function clearMessage() {
  ui.banner.hidden = true;
  ui.banner.dataset.kind = "";
  ui.bannerText.textContent = "";
  ui.retry.hidden = true;
}

function renderControls() {
  const { config } = readSettings();
  const idle = app.state === "ready" && !app.busy;
  ui.train.disabled = !(idle && config);
  ui.stop.disabled = app.state !== "training";
  ui.reset.disabled = !idle;
  ui.download.disabled = !idle;
  ui.load.disabled = !idle;
  ui.loadLabel.dataset.disabled = String(!idle);
  for (const input of Object.values(ui.inputs)) input.disabled = app.state === "training";
}

function renderProgress() {
  const run = app.run;
  const el = ui.progress;
  Object.assign(el.dataset, {
    step: run?.step ?? 0, totalSteps: run?.totalSteps ?? 0, epoch: run?.epoch ?? 0, epochs: run?.epochs ?? 0,
    batch: run?.batch ?? 0, batchesPerEpoch: run?.batchesPerEpoch ?? 0, imagesPerSecond: Math.round(run?.imagesPerSecond ?? 0),
  });
  if (!run || !run.step) {
    ui.progressBar.value = 0;
    ui.progressText.textContent = run ? "Starting…" : "Not started";
    return;
  }
  ui.progressBar.max = run.totalSteps;
  ui.progressBar.value = run.step;
  const parts = [`Epoch ${run.epoch} of ${run.epochs}`, `batch ${fmtInt(run.batch)} of ${fmtInt(run.batchesPerEpoch)}`];
  if (run.imagesPerSecond > 0) parts.push(`${fmtInt(run.imagesPerSecond)} images/s`);
  if (app.state === "training") {
    if (run.imagesPerSecond > 0) {
      const left = ((run.totalSteps - run.step) * run.config.batchSize) / run.imagesPerSecond;
      parts.push(`about ${fmtSeconds(left)} left`);
    }
  } else if (run.result) {
    parts.push(run.result);
  }
  ui.progressText.textContent = parts.join(" · ");
}

function renderAccuracy() {
  const acc = app.evaluation?.accuracy;
  const detail = byTestId("accuracy-detail");
  if (app.model.kind === "untrained" || !Number.isFinite(acc)) {
    ui.accuracy.textContent = "–";
    ui.accuracy.dataset.valAccuracy = "";
    detail.textContent = "not trained yet";
  } else {
    const total = app.info?.heldout_count ?? 0;
    ui.accuracy.textContent = fmtPct(acc);
    ui.accuracy.dataset.valAccuracy = String(acc);
    detail.textContent = total ? `${fmtInt(acc * total)} of ${fmtInt(total)} unseen digits right` : "";
  }
}

function renderModelState() {
  const m = app.model;
  document.body.dataset.model = m.kind;
  const epochs = `${m.epochs} epoch${m.epochs === 1 ? "" : "s"}`;
  let text;
  switch (m.kind) {
    case "untrained":
      text = "Untrained model: its weights are random, so it guesses (about 1 digit in 10 right).";
      break;
    case "trained":
      text = `Trained for ${epochs} on ${fmtInt(m.digits)} digits in this browser.`;
      break;
    case "restored":
      text = `Restored from this browser's storage (${m.epochs ? `trained ${epochs}, ` : ""}saved ${new Date(m.savedAt).toLocaleString()}).`;
      break;
    case "loaded":
      text = `Loaded from the file ${m.fileName}.`;
      break;
    default:
      text = "";
  }
  if (m.kind !== "untrained" && app.model.partial) text += " The last run was stopped part-way through an epoch.";
  ui.modelState.textContent = text;
}

function renderEstimate() {
  const { config } = readSettings();
  if (!app.imagesPerSecond || !config) {
    ui.estimate.textContent = app.state === "ready" && !app.imagesPerSecond ? "Measuring this computer's speed…" : "";
    delete ui.estimate.dataset.secondsPerEpoch;
    return;
  }
  const seconds = config.trainSize / app.imagesPerSecond + (app.info?.heldout_count ?? 0) / (app.evalImagesPerSecond || app.imagesPerSecond * 3);
  ui.estimate.dataset.secondsPerEpoch = seconds.toFixed(2);
  ui.estimate.textContent =
    `One epoch of ${fmtInt(config.trainSize)} digits takes about ${fmtSeconds(seconds)} on this computer ` +
    `(${fmtInt(app.imagesPerSecond)} images/s)` +
    (config.epochs > 1 ? `; ${config.epochs} epochs ≈ ${fmtSeconds(seconds * config.epochs)}.` : ".");
}

// ---------- settings ----------
function readSettings() {
  const raw = Object.fromEntries(Object.entries(ui.inputs).map(([k, el]) => [k, el.value]));
  return validateSettings(raw, app.limits);
}

function showValidation() {
  const { config, errors } = readSettings();
  for (const [name, el] of Object.entries(ui.errors)) {
    const message = errors[name] ?? "";
    el.textContent = message;
    el.hidden = !message;
    ui.inputs[name].setAttribute("aria-invalid", String(Boolean(message)));
  }
  ui.form.dataset.valid = String(Boolean(config));
  renderControls(); // at once: Train must never look enabled while a field is invalid
  invalidate("estimate");
  return config;
}

function applyDefaults(defaults, trainCount) {
  app.limits.trainSize.max = trainCount;
  ui.inputs.trainSize.max = String(trainCount);
  const set = (el, value) => {
    // a field the learner already edited while Python was loading keeps their value
    if (value !== undefined && value !== null && !el.dataset.edited) el.value = String(value);
  };
  set(ui.inputs.epochs, defaults.epochs);
  set(ui.inputs.batchSize, defaults.batch_size);
  set(ui.inputs.lr, defaults.lr);
  if (defaults.optimizer === "adam" || defaults.optimizer === "sgd") ui.inputs.optimizer.value = defaults.optimizer;
  set(ui.inputs.trainSize, Math.min(trainCount, defaults.train_size ?? trainCount));
  set(ui.inputs.seed, defaults.seed);
  for (const el of document.querySelectorAll('[data-field="train-count"]')) el.textContent = fmtInt(trainCount);
  showValidation();
}

// ---------- loading ----------
function markStage(stage, status, ms) {
  const li = ui.stages.querySelector(`[data-stage="${stage}"]`);
  if (!li) return;
  li.dataset.status = status;
  if (ms !== undefined) li.dataset.ms = String(Math.round(ms));
}

function startWorker() {
  setState("loading");
  clearMessage();
  delete document.body.dataset.workerLost;
  showIdlePrediction(); // "Python is still loading…"
  for (const stage of STAGE_ORDER) markStage(stage, "pending");
  ui.status.dataset.stage = "";
  ui.status.textContent = "Starting Python…";
  app.loadStartedAt = performance.now();
  client.start();
}

client.on("status", ({ stage, phase, text, ms }) => {
  markStage(stage, phase === "done" ? "done" : "active", ms);
  if (phase === "start") {
    ui.status.dataset.stage = stage;
    const elapsed = (performance.now() - app.loadStartedAt) / 1000;
    ui.status.textContent = `${text}… (${elapsed.toFixed(1)} s)`;
  }
});

function showHeap(bytes) {
  if (bytes) document.body.dataset.workerHeapBytes = String(bytes); // memory figures for benchmarks and the curious
}

client.on("ready", async ({ info, timings, heapBytes }) => {
  markStage("ready", "done");
  showHeap(heapBytes);
  app.info = info;
  for (const el of document.querySelectorAll('[data-field="heldout-count"]')) el.textContent = fmtInt(info.heldout_count);
  applyDefaults(info.defaults ?? {}, info.train_count);
  const total = (performance.now() - app.loadStartedAt) / 1000;
  ui.status.dataset.stage = "ready";
  ui.status.dataset.loadMs = String(Math.round(total * 1000));
  const stages = ["python", "numpy", "pycnn", "data"].map((s) => `${s} ${fmtMs(timings[s] ?? 0)}`).join(" · ");
  ui.status.textContent = `Ready in ${total.toFixed(1)} s (${stages})`;
  ui.status.dataset.pythonSnapshot = timings.snapshot ?? "none";
  ui.status.title = `numpy ${info.numpy}` + (timings.snapshot === "restored" ? "; Python restored from the snapshot saved on an earlier visit" : "");
  app.storageOk = await storeReady;
  await restoreSaved();
  setState("ready");
  invalidate("model", "accuracy", "charts", "progress");
  modelChanged();
  measureSpeed();
});

client.on("error", (message) => {
  if (message.fatal) {
    const wasLoading = app.state === "loading";
    const wasTraining = app.state === "training";
    const stage = message.stage ? ` while loading ${message.stage}` : "";
    if (wasLoading || message.stage) markStage(message.stage ?? "python", "failed");
    ui.status.textContent = wasLoading ? `Failed${stage}` : "The Python worker is not running";
    ui.status.dataset.stage = "error";
    document.body.dataset.workerLost = String(!wasLoading);
    if (wasTraining) document.body.dataset.runResult = "crashed";
    app.run = null;
    setState("error");
    const saved = app.hasSavedModel ? " Your last saved model will come back after a restart." : "";
    if (wasLoading) {
      showMessage(`Something went wrong${stage}: ${message.message}.${saved}`, "error", { retry: true });
    } else {
      const during = wasTraining ? " during training" : "";
      showMessage(`${message.message}${during}. Press Restart to start Python again.${saved}`, "error",
        { retry: true, retryLabel: "Restart" });
    }
    invalidate("progress");
    showIdlePrediction();
    return;
  }
  showMessage(message.message, "error");
});

ui.retry.addEventListener("click", () => startWorker());
ui.dismiss.addEventListener("click", () => clearMessage());

async function measureSpeed() {
  const { config } = readSettings();
  try {
    const reply = await client.request("estimate", { config: toWorkerConfig(config ?? {}), batches: 40 });
    if (!app.imagesPerSecond && reply.train_images_per_second) app.imagesPerSecond = reply.train_images_per_second;
    app.evalImagesPerSecond = reply.eval_images_per_second;
  } catch (error) {
    if (app.state !== "error") ui.estimate.textContent = "";
    return;
  }
  invalidate("estimate");
}

// ---------- persistence ----------
function historySnapshot() {
  return { losses: app.history.losses.slice(), epochs: app.history.epochs.map((e) => ({ ...e })) };
}

async function persist(bytes, evaluation) {
  if (!app.storageOk) return;
  const model = { ...app.model };
  const record = { format: 1, bytes, history: historySnapshot(), evaluation, model, savedAt: Date.now() };
  try {
    try {
      await store.save(record);
    } catch (error) {
      // the trained model matters more than a faster next load: make room by deleting the Python snapshot
      if (error?.name !== "QuotaExceededError" || !(await dropSnapshots())) throw error;
      await store.save(record);
    }
    app.hasSavedModel = true;
    // for tests and the curious: how many saves, and the epochs of the model saved last
    ui.storageNote.dataset.saves = String(Number(ui.storageNote.dataset.saves ?? 0) + 1);
    ui.storageNote.dataset.savedEpochs = String(model.epochs ?? 0);
  } catch (error) {
    app.storageOk = false;
    const why = error?.name === "QuotaExceededError" ? "the browser's storage for this page is full"
      : error?.message || error?.name || String(error);
    ui.storageNote.dataset.available = "false";
    ui.storageNote.textContent = `Could not save the model in this browser (${why}); it won't be kept across reloads. Use Download model.`;
  }
}

async function restoreSaved() {
  if (!app.storageOk) return;
  let record;
  try {
    record = await store.load();
  } catch (error) {
    return;
  }
  if (!record?.bytes) return;
  try {
    const bytes = new Uint8Array(record.bytes);
    const reply = await client.request("load", { bytes }, [bytes.buffer]);
    app.evaluation = reply.evaluation;
    setHistory(record.history ?? { losses: [], epochs: [] });
    app.model = {
      kind: "restored",
      epochs: record.model?.epochs ?? app.history.epochs.length,
      digits: record.model?.digits ?? 0,
      savedAt: record.savedAt,
      partial: Boolean(record.model?.partial),
    };
  } catch (error) {
    showMessage(`The model saved in this browser could not be restored (${error.message}); starting from an untrained model.`, "warning");
    await store.clear().catch(() => {});
  }
}

function setHistory(history) {
  app.history = { losses: [...(history.losses ?? [])], epochs: [...(history.epochs ?? [])] };
  lossChart.clear();
  lossChart.append(app.history.losses);
  accuracyChart.clear();
  for (const e of app.history.epochs) accuracyChart.append(e);
  invalidate("charts");
}

// ---------- training ----------
function toWorkerConfig(config) {
  const out = {};
  if (config.epochs !== undefined) out.epochs = config.epochs;
  if (config.batchSize !== undefined) out.batch_size = config.batchSize;
  if (config.lr !== undefined) out.lr = config.lr;
  if (config.optimizer !== undefined) out.optimizer = config.optimizer;
  if (config.trainSize !== undefined) out.train_size = config.trainSize;
  if (config.seed !== undefined) out.seed = config.seed;
  return out;
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const config = showValidation();
  if (!config || app.state !== "ready" || app.busy) return; // nothing is sent while a field is invalid
  clearMessage();
  app.run = {
    config, step: 0, totalSteps: 0, epoch: 0, epochs: config.epochs, batch: 0, batchesPerEpoch: 0,
    imagesPerSecond: 0, partialEpoch: false, result: "",
  };
  app.epochsBeforeRun = app.history.epochs.length;
  delete ui.progress.dataset.stopLatencyMs;
  delete ui.progress.dataset.batchesAfterStop;
  delete document.body.dataset.runResult;
  client.send("train", { config: toWorkerConfig(config) });
  setState("training");
  ui.status.textContent = "Training…";
  renderProgress(); // at once, so no stale step from the previous run is ever shown
});

ui.stop.addEventListener("click", () => {
  if (app.state !== "training") return;
  ui.stop.disabled = true;
  ui.status.textContent = "Stopping after the current batch…";
  if (app.run) app.run.stopClickedAt = performance.now();
  // sentAt on the clock the worker shares, so it can count the batches that ended after the click
  client.send("stop", { sentAt: performance.timeOrigin + performance.now() });
});

client.on("progress", (p) => {
  const run = app.run;
  if (!run) return;
  Object.assign(run, {
    step: p.step, totalSteps: p.totalSteps, epoch: p.epoch, epochs: p.epochs, batch: p.batch, batchesPerEpoch: p.batchesPerEpoch,
  });
  // images/s: smooth over progress messages so the ETA does not jump around
  if (p.imagesPerSecond > 0) {
    run.imagesPerSecond = run.imagesPerSecond ? 0.7 * run.imagesPerSecond + 0.3 * p.imagesPerSecond : p.imagesPerSecond;
    app.imagesPerSecond = run.imagesPerSecond;
  }
  app.history.losses.push(...p.losses);
  lossChart.append(p.losses);
  invalidate("charts", "progress");
});

client.on("epoch", (e) => {
  const result = { ...e, epoch: app.epochsBeforeRun + e.epoch };
  app.history.epochs.push(result);
  accuracyChart.append(result);
  app.evaluation = { loss: e.valLoss, accuracy: e.valAccuracy };
  app.model = {
    ...app.model,
    kind: app.model.kind === "untrained" ? "trained" : app.model.kind,
    epochs: (app.model.epochs ?? 0) + 1,
    digits: app.run?.config.trainSize ?? app.model.digits,
    partial: false,
  };
  invalidate("charts", "accuracy", "model");
});

client.on("filters", ({ shape, data }) => {
  filters.set(shape, data);
  featureMaps.setFilters(shape, data);
  invalidate("filters");
});

client.on("checkpoint", ({ bytes, evaluation, reason, partialEpoch }) => {
  if (reason === "stopped") app.model = { ...app.model, partial: partialEpoch !== false };
  persist(bytes, evaluation);
});

client.on("done", ({ reason, evaluation, message, heapBytes, batchesAfterStop }) => {
  const run = app.run;
  showHeap(heapBytes);
  if (evaluation) app.evaluation = evaluation;
  document.body.dataset.runResult = reason;
  if (run && run.stopClickedAt !== undefined) {
    ui.progress.dataset.stopLatencyMs = String(Math.round(performance.now() - run.stopClickedAt));
    if (batchesAfterStop !== undefined) ui.progress.dataset.batchesAfterStop = String(batchesAfterStop);
  }
  if (run) {
    run.result = { finished: "finished", stopped: "stopped", diverged: "stopped: the loss diverged", failed: "failed" }[reason] ?? reason;
  }
  if (reason === "finished") {
    ui.status.textContent = `Finished: held-out accuracy ${evaluation ? fmtPct(evaluation.accuracy) : "–"}`;
  } else if (reason === "stopped") {
    ui.status.textContent = "Stopped. The model keeps what it learned so far; Train continues from here.";
  } else if (reason === "diverged") {
    ui.status.textContent = "Training stopped: the loss diverged";
    showMessage(
      `Training stopped because the loss stopped being a finite number (${message}). ` +
        "The weights went back to their last good state. Try a smaller learning rate (for example 0.005).",
      "warning",
    );
  } else {
    ui.status.textContent = "Training failed";
  }
  setState("ready");
  invalidate("progress", "accuracy", "model", "charts");
  modelChanged();
});

ui.reset.addEventListener("click", async () => {
  if (app.state !== "ready" || app.busy) return;
  const seed = readSettings().config?.seed ?? 0;
  await busy(async () => {
    await client.request("reset", { seed });
    app.evaluation = null;
    app.model = { kind: "untrained", epochs: 0, digits: 0 };
    app.run = null;
    setHistory({ losses: [], epochs: [] });
    delete document.body.dataset.runResult;
    if (app.storageOk) await store.clear().catch(() => {});
    app.hasSavedModel = false;
    ui.status.textContent = "Fresh random weights: the model is untrained again.";
  });
  invalidate("progress", "accuracy", "model");
  modelChanged();
});

async function busy(work) {
  app.busy = true;
  invalidate("controls");
  try {
    await work();
  } catch (error) {
    showMessage(error.message, "error");
  } finally {
    app.busy = false;
    invalidate("controls");
  }
}

// ---------- model files ----------
ui.download.addEventListener("click", () =>
  busy(async () => {
    const { bytes } = await client.request("save");
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = MODEL_FILE_NAME;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }),
);

ui.load.addEventListener("change", () => {
  const file = ui.load.files?.[0];
  ui.load.value = ""; // so choosing the same file again fires change
  if (!file) return;
  const refuse = (why) =>
    showMessage(`Could not load ${file.name}: ${why}. Your current model is unchanged.`, "error");
  if (file.size === 0) return refuse("the file is empty");
  if (file.size > MAX_MODEL_FILE_BYTES) return refuse(`the file is ${fmtInt(file.size / 1e6)} MB; a pycnn model is well under 1 MB`);
  busy(async () => {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let reply;
    try {
      reply = await client.request("load", { bytes }, [bytes.buffer]);
    } catch (error) {
      refuse(error.message);
      return;
    }
    clearMessage();
    app.evaluation = reply.evaluation;
    app.model = { kind: "loaded", epochs: 0, digits: 0, fileName: file.name };
    app.run = null;
    setHistory({ losses: [], epochs: [] });
    ui.status.textContent = `Loaded ${file.name}: held-out accuracy ${fmtPct(reply.evaluation.accuracy)}`;
    invalidate("progress", "accuracy", "model");
    modelChanged();
    const saved = await client.request("save").catch(() => null);
    if (saved) await persist(saved.bytes, reply.evaluation);
  });
});

// ---------- draw a digit, and why (predictions are latest-only: stale drawings are dropped) ----------
const sketch = new Sketch(byTestId("draw-canvas"), ({ ended }) => {
  app.inspecting = null;
  drawing.version += 1;
  drawing.changedAt = performance.now();
  byTestId("draw-canvas").dataset.version = String(drawing.version);
  if (sketch.isEmpty) {
    predictor.seq += 1; // drop any answer still on its way
    showIdlePrediction();
    return;
  }
  if (ended) {
    clearTimeout(predictor.timer); // the stroke's end asks for itself; a throttled request would repeat it
    predictor.timer = null;
    requestPrediction();
  } else {
    throttledPrediction();
  }
});
// every change of the drawing gets a version; an answer says which version it read (data-answered-version)
const drawing = { version: 0, changedAt: 0 };
byTestId("clear-button").addEventListener("click", () => sketch.clear());
byTestId("undo-button").addEventListener("click", () => sketch.undo());

// requested: predictions the drawing asked for; sent: requests posted to the worker (at most one in
// flight; a newer drawing waits for it and replaces any older waiting one); answered: replies;
// stale: replies dropped because the drawing changed meanwhile. Shown as data-* on the prediction.
const predictor = {
  seq: 0, inFlight: false, pending: false, lastSentAt: -Infinity, timer: null,
  requested: 0, sent: 0, answered: 0, stale: 0, workerMs: 0,
};

function countPredictions() {
  Object.assign(byTestId("prediction").dataset, {
    requested: String(predictor.requested), requests: String(predictor.sent),
    answers: String(predictor.answered), stale: String(predictor.stale), workerMs: String(Math.round(predictor.workerMs)),
  });
}

/** A tap or a dot (all strokes within one brush width) is no digit; reading it would only guess. */
function tooLittleInk() {
  return sketch.extent < sketch.brushWidth;
}

function modelReady() {
  return (app.state === "ready" || app.state === "training") && app.model.kind !== "untrained";
}

function showIdlePrediction() {
  let note = "Draw a digit in the box.";
  if (!sketch.isEmpty && tooLittleInk()) note = "Too little ink to read: draw a digit (a dot is not enough).";
  if (app.state === "loading") note = "Python is still loading…";
  else if (app.state === "error") note = "The Python worker is not running.";
  else if (app.model.kind === "untrained") {
    note = sketch.isEmpty
      ? "The model is untrained: train it (or load a model) and then draw a digit."
      : "The model is untrained, so it would only guess. Train it (or load a model) first.";
  }
  app.prediction = { idle: note };
  invalidate("prediction");
}

function throttledPrediction() {
  if (tooLittleInk()) return; // a stroke that has only just begun: wait for more ink
  const wait = PREDICT_THROTTLE_MS - (performance.now() - predictor.lastSentAt);
  if (wait <= 0) requestPrediction();
  else if (!predictor.timer) {
    predictor.timer = setTimeout(() => {
      predictor.timer = null;
      if (!sketch.isEmpty && app.inspecting === null) requestPrediction();
    }, wait);
  }
}

function requestPrediction() {
  if (!modelReady() || sketch.isEmpty || tooLittleInk()) {
    predictor.seq += 1; // an answer still on its way is for an older drawing
    showIdlePrediction();
    return;
  }
  predictor.requested += 1;
  countPredictions();
  predictor.seq += 1;
  if (predictor.inFlight) {
    predictor.pending = true; // sent with the then-current drawing when the answer in flight arrives
    return;
  }
  sendPrediction();
}

async function sendPrediction() {
  const seq = predictor.seq;
  const { version, changedAt: drawnAt } = drawing;
  const ink = sketch.ink();
  predictor.inFlight = true;
  predictor.pending = false;
  predictor.sent += 1;
  countPredictions();
  predictor.lastSentAt = performance.now();
  const sentAt = performance.now();
  try {
    const reply = await client.request("predict", ink, [ink.pixels.buffer]);
    predictor.answered += 1;
    predictor.workerMs += reply.ms ?? 0; // the worker's time for this answer
    if (seq === predictor.seq && app.inspecting === null) {
      app.prediction = { result: reply, source: "drawing", sentAt, version, drawnAt };
      invalidate("prediction");
    } else {
      predictor.stale += 1;
    }
    countPredictions();
  } catch (error) {
    if (seq === predictor.seq) {
      app.prediction = { idle: `Could not read the drawing: ${error.message}` };
      invalidate("prediction");
    }
  } finally {
    predictor.inFlight = false;
    if (predictor.pending && modelReady() && !sketch.isEmpty && app.inspecting === null) sendPrediction();
  }
}

async function inspectHeldout(index, button) {
  if (app.state !== "ready" && app.state !== "training") return;
  sketch.clear();
  app.inspecting = index;
  const seq = ++predictor.seq;
  for (const b of byTestId("mistakes").querySelectorAll("button[aria-pressed]")) b.removeAttribute("aria-pressed");
  button?.setAttribute("aria-pressed", "true");
  const sentAt = performance.now();
  try {
    const reply = await client.request("inspect-heldout", { index });
    if (seq === predictor.seq) {
      app.prediction = { result: reply, source: "heldout", sentAt };
      invalidate("prediction");
    }
  } catch (error) {
    showMessage(error.message, "error");
  }
}

function describeConfidence(result) {
  const probs = result.probabilities;
  const best = probs[result.prediction];
  const ranked = probs.map((p, d) => [p, d]).sort((a, b) => b[0] - a[0]);
  if (best >= 0.9) return `${(best * 100).toFixed(0)}% sure.`;
  if (best >= 0.5) return `${(best * 100).toFixed(0)}% sure; next best ${ranked[1][1]} (${(ranked[1][0] * 100).toFixed(0)}%).`;
  return `Not sure: ${ranked[0][1]} or ${ranked[1][1]}?`;
}

function renderPrediction() {
  const p = app.prediction;
  const el = byTestId("prediction");
  if (!p || p.idle !== undefined) {
    predictionView.clear(p?.idle ?? "Draw a digit in the box.");
    featureMaps.clear();
    el.dataset.source = "";
    return;
  }
  const result = p.result;
  if (result.empty) {
    predictionView.clear("Nothing drawn yet (or too little ink): draw a digit.");
    featureMaps.clear();
    el.dataset.source = "";
    return;
  }
  let note = describeConfidence(result);
  if (p.source === "heldout") {
    note = `Held-out digit #${result.index}, labelled ${result.label}. ${note}`;
  }
  predictionView.show(result, note);
  featureMaps.show(result.maps);
  el.dataset.source = p.source;
  el.dataset.latencyMs = String(Math.round(performance.now() - p.sentAt));
  if (p.source === "drawing") {
    el.dataset.answeredVersion = String(p.version); // the drawing (data-version of the canvas) this answer read
    el.dataset.drawingLatencyMs = String(Math.round(performance.now() - p.drawnAt)); // that drawing's last change to bars
  }
}

async function refreshAnalysis() {
  if (app.model.kind === "untrained") {
    evaluationView.clear("Train the model (or load one) to see which held-out digits it gets right and which it confuses.");
    return;
  }
  try {
    const analysis = await client.request("analyse", { maxMistakes: MAX_MISTAKES });
    evaluationView.show(analysis);
  } catch (error) {
    evaluationView.clear(`Could not evaluate: ${error.message}`);
  }
}

/** The model's weights changed (run ended, loaded, restored, reset): refresh what depends on them. */
function modelChanged() {
  refreshAnalysis();
  if (app.inspecting !== null && app.inspecting !== undefined) inspectHeldout(app.inspecting);
  else if (!sketch.isEmpty) requestPrediction();
  else showIdlePrediction();
}

// ---------- start ----------
for (const input of Object.values(ui.inputs)) {
  input.addEventListener("input", () => {
    input.dataset.edited = "true";
    showValidation();
  });
  input.addEventListener("change", () => showValidation());
}

const storeReady = store.open();

async function init() {
  startWorker(); // Python boots while the rest of the page gets ready
  app.storageOk = await storeReady;
  app.hasSavedModel = app.storageOk && Boolean(await store.load().catch(() => null));
  ui.storageNote.dataset.available = String(app.storageOk);
  ui.storageNote.textContent = app.storageOk
    ? "Your model is saved in this browser after every epoch and when you stop."
    : `Models won't be kept across reloads here (${store.reason || "browser storage is unavailable"}). Use Download model to keep one.`;
  showValidation();
  showIdlePrediction();
  evaluationView.clear("Train the model (or load one) to see which held-out digits it gets right and which it confuses.");
  invalidate("model", "accuracy", "progress", "charts");
}

init();
