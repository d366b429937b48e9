// Boot and wiring: makes the shared pieces (the worker client, the app state, the frame, the
// probe) and hands them to each part of the page. Each part lives in its own module and
// gets what it needs here, explicitly.
import { Analysis } from "./analysis.js";
import { WorkerClient } from "./client.js";
import { Cores } from "./cores.js";
import { Frame } from "./frame.js";
import { GuidedTeach } from "./guide.js";
import { Inside } from "./inside.js";
import { Loading } from "./loading.js";
import { Announcer, Messages, StatusLine } from "./messages.js";
import { NetworkEditor } from "./network.js";
import { Offline } from "./offline.js";
import { Persistence } from "./persistence.js";
import { Predictor } from "./predictor.js";
import { Probe } from "./probe.js";
import { Projects } from "./projects.js";
import { RunControl } from "./runs.js";
import { AppState } from "./state.js";
import { ModelStore } from "./store.js";
import { TrainingPanel } from "./training.js";
import { YourDigits } from "./yourdigits.js";

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

const client = new WorkerClient();
const state = new AppState();
const frame = new Frame();
const probe = new Probe();
// the page's measurements for tests and benchmarks (see probe.js)
Object.defineProperty(window, "pycnnProbe", { value: probe });
client.on("done", () => client.heapBytes && probe.set("worker_heap_bytes", client.heapBytes)); // after each run
client.on("pending", (requests) => probe.set("requests_in_flight", requests));

const status = new StatusLine(byTestId("status"));
const messages = new Messages(byTestId("message"), () => loading.start());
const announcer = new Announcer(byTestId("announcer"));
const common = { client, state, frame, probe, messages, status, announcer };

const store = new ModelStore();
const persistence = new Persistence({
  ...common,
  store,
  el: { download: byTestId("download-model"), load: byTestId("load-model"), loadLabel: document.querySelector(".file-button"),
    exportOnnx: byTestId("export-onnx-button"), exportTfjs: byTestId("export-tfjs-button"), storageNote: byTestId("storage-note") },
});

const inputs = Object.fromEntries([...document.querySelectorAll("#train-form [name]")].map((input) => [input.name, input]));
const runs = new RunControl({ client, state });
const projects = new Projects({
  ...common,
  runs,
  store,
  persistence,
  el: {
    select: byTestId("project-select"), names: byTestId("class-names-input"), create: byTestId("create-project-button"),
    error: byTestId("class-names-error"), remove: byTestId("remove-project-button"), results: byTestId("project-results"),
    exportButton: byTestId("export-project-button"), importInput: byTestId("import-project"),
    importLabel: byTestId("import-project-label"),
    progress: byTestId("project-progress"), progressBar: document.querySelector('[data-testid="project-progress"] progress'),
    progressText: document.querySelector('[data-testid="project-progress"] .progress-text'), stop: byTestId("project-stop"),
    tryTitle: document.getElementById("try-title"), tryIntro: document.querySelector(".try .section-intro"),
  },
});
const training = new TrainingPanel({
  ...common,
  runs,
  persistence,
  projects,
  el: {
    form: document.getElementById("train-form"),
    inputs,
    errors: Object.fromEntries(Object.keys(inputs).map((name) => [name, document.getElementById(`${inputs[name].id}-error`)])),
    train: byTestId("train-button"),
    continue: byTestId("continue-button"),
    continueNote: byTestId("continue-note"),
    stop: byTestId("stop-button"),
    reset: byTestId("reset-button"),
    estimate: byTestId("estimate"),
    progress: byTestId("progress"),
    progressBar: document.querySelector('[data-testid="progress"] progress'),
    progressText: document.querySelector(".progress-text"),
    lossChart: byTestId("loss-chart"),
    accuracyChart: byTestId("accuracy-chart"),
    filters: byTestId("filters"),
    legend: { bar: document.querySelector(".legend-bar"), min: document.querySelector(".legend-min"), max: document.querySelector(".legend-max") },
    deeperFilters: byTestId("deeper-filters"),
    filtersTitle: document.querySelector(".filters-title"),
    accuracy: byTestId("accuracy"),
    accuracyDetail: byTestId("accuracy-detail"),
    modelState: byTestId("model-state"),
    joinDigits: byTestId("join-my-digits"),
  },
});

new Cores({ ...common, el: { select: byTestId("cores-select"), note: byTestId("workers-note") } });

new NetworkEditor({
  ...common,
  persistence,
  onApplied: () => training.measureSpeed({ network: true }),
  el: {
    root: byTestId("arch-editor"), preset: byTestId("arch-preset-select"), layers: byTestId("arch-layers"),
    addKind: byTestId("add-layer-kind"), add: byTestId("add-layer-button"), summary: byTestId("arch-summary"),
    error: byTestId("arch-error"), confirm: byTestId("arch-confirm"), confirmText: document.querySelector(".arch-confirm-text"),
    apply: byTestId("arch-apply"), revert: byTestId("arch-revert"), json: byTestId("arch-json"), export: byTestId("arch-export"),
  },
});

const predictor = new Predictor({
  ...common,
  el: {
    canvas: byTestId("draw-canvas"), undo: byTestId("undo-button"), clear: byTestId("clear-button"),
    prediction: byTestId("prediction"), note: byTestId("prediction-note"), probabilities: byTestId("probabilities"),
    modelInput: byTestId("model-input"), featureMaps: byTestId("feature-maps"),
    heldoutLabel: byTestId("heldout-digit-select"), heldoutNext: byTestId("heldout-next-button"),
  },
});

new Inside({
  ...common,
  settings: () => training.readSettings().config,
  el: {
    maps: byTestId("feature-maps"), arithmetic: byTestId("conv-arithmetic"), field: byTestId("receptive-field"),
    saliency: byTestId("saliency"), whyNot: byTestId("why-not-select"), saliencyNote: byTestId("saliency-note"),
    stepLabel: byTestId("step-label"), step: byTestId("step-button"), keep: byTestId("step-keep"), undo: byTestId("step-undo"),
    stepLoss: byTestId("step-loss"), stepGrads: byTestId("step-filter-grads"),
    code: byTestId("python-code"), codeRefresh: byTestId("python-code-refresh"), exportPython: byTestId("export-python"),
    form: document.getElementById("train-form"),
  },
});

const yourDigits = new YourDigits({
  ...common,
  runs,
  store,
  persistence,
  predictor,
  projects,
  el: {
    title: document.getElementById("my-digits-title"), intro: document.querySelector(".digits-intro"),
    projectIntro: document.querySelector(".project-intro"), collectionTitle: document.querySelector(".collection-title"),
    teach: byTestId("teach"), teachButtons: document.querySelector(".teach-buttons"), teachHint: document.querySelector(".teach-hint"),
    gallery: byTestId("my-digits"), exportButton: byTestId("export-my-digits"), importInput: byTestId("import-my-digits"),
    removeAll: byTestId("remove-all-my-digits"),
    importLabel: byTestId("import-my-digits-label"), fineTune: byTestId("fine-tune-button"), note: byTestId("fine-tune-note"),
    stop: byTestId("fine-tune-stop"), progress: byTestId("fine-tune-progress"),
    progressBar: document.querySelector('[data-testid="fine-tune-progress"] progress'),
    progressText: document.querySelector('[data-testid="fine-tune-progress"] .progress-text'),
    accuracy: byTestId("my-digits-accuracy"), undo: byTestId("undo-fine-tune"), join: byTestId("join-my-digits"),
    joinLabel: byTestId("join-my-digits-label"), storageNote: byTestId("my-digits-storage"),
  },
});

new GuidedTeach({
  ...common,
  yourDigits,
  runs,
  el: {
    box: byTestId("guide"), start: byTestId("guided-teach-button"), invite: document.querySelector(".guide-invite"),
    inviteText: document.querySelector(".guide-invite-text"),
    round: document.querySelector(".guide-round"), prompt: byTestId("guided-prompt"), ask: document.querySelector(".guide-ask"),
    digit: document.querySelector(".guide-digit"), count: document.querySelector(".guide-count"),
    tuning: document.querySelector(".guide-tuning"), marks: [...document.querySelectorAll(".guide-marks li")],
    progress: document.querySelector(".guide-progress"), add: byTestId("guided-add-button"),
    skip: byTestId("guided-skip-button"), stop: byTestId("guided-stop-button"), note: byTestId("guided-note"),
    result: byTestId("guided-result"),
  },
});

new Analysis({
  ...common,
  predictor,
  el: { confusion: byTestId("confusion-matrix"), mistakes: byTestId("mistakes"), summary: byTestId("evaluation-summary"),
    title: byTestId("gallery-title"), back: byTestId("gallery-back") },
});

const loading = new Loading({
  ...common,
  persistence,
  stages: byTestId("stages"),
  onReady: async () => {
    await persistence.restore();
    await yourDigits.restore();
    await projects.restore();
    state.setPhase("ready");
    state.weightsChanged(); // predictions and the analysis of the (restored) model
    training.measureSpeed();
  },
});

state.on("phase", () => {
  document.body.dataset.state = state.phase;
});
state.on("model", () => {
  document.body.dataset.model = state.model.kind;
});
document.body.dataset.model = state.model.kind;

new Offline({ state, probe, messages }); // keeps the site for offline use once ready
loading.start();
