// The network editor: presets, the list of layers with their arguments (add, remove, move),
// a live Keras-style summary with the time an epoch would take here, and a message that names
// the layer when the network does not fit together. What the editor offers, and every check,
// come from Python (the session's info.editor and its check_network); nothing is copied here.
//
// Changing the network starts from fresh weights. With an untrained model the change applies
// at once; a trained model is only replaced after the learner says so (it can be downloaded first).
import { download } from "./files.js";
import { epochSeconds, fmtInt, fmtSeconds } from "./format.js";
import { UNTRAINED, whileBusy } from "./state.js";

const CUSTOM = "custom";
const APPLIED_SETTLE_MS = 2000; // a new network's epoch is timed once it has stayed this long
const NETWORK_FILE_NAME = "pycnn-network.json";
const NEW_LAYER = { // what "Add layer" inserts (before the output layer)
  Conv2D: { filters: 8, kernel_size: 3, padding: "same" },
  Dense: { out_features: 64 },
};
const ARG_LABELS = {
  filters: "filters", kernel_size: "kernel", padding: "padding", stride: "stride", out_features: "units",
  rate: "rate", negative_slope: "slope",
};
const KIND_LABELS = {
  Conv2D: "Conv", ReLU: "ReLU", MaxPool2D: "Max pool 2×2", Flatten: "Flatten", Dense: "Dense",
  BatchNorm: "Batch norm", Dropout: "Dropout", AvgPool2D: "Average pool 2×2", LeakyReLU: "Leaky ReLU",
  Tanh: "Tanh", Sigmoid: "Sigmoid",
};
const NUMBER = /^(\d+\.?\d*|\.\d+)$/; // what a float field reads as a number
const copy = (layers) => layers.map((layer) => ({ class: layer.class, config: { ...layer.config } }));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export class NetworkEditor {
  /**
   * el: {root, preset, layers, addKind, add, summary, error, confirm, confirmText, apply, revert, json, export};
   * persistence: forgets the kept model when a new network replaces it; onApplied(): after a
   * new network became the model (the training panel measures its speed). The rest as for TrainingPanel.
   */
  constructor({ client, state, frame, messages, status, persistence, el, onApplied }) {
    Object.assign(this, { client, state, frame, messages, status, persistence, el, onApplied });
    this.appliedTimer = null;
    this.spec = null; // info.editor: kinds and their arguments, limits, presets
    this.applied = null; // the current model's network: {layers, editable, preset, rows, ...}
    this.draft = []; // the layers being edited
    this.summary = null; // check_network's reply for the draft, or {error}
    this.seq = 0; // counts edits: a reply to an older draft is not shown
    this.syncing = false;
    el.preset.addEventListener("change", () => this.#choosePreset(el.preset.value));
    el.add.addEventListener("click", () => this.#add(el.addKind.value));
    el.apply.addEventListener("click", () => this.#apply());
    el.revert.addEventListener("click", () => this.#revert());
    el.export.addEventListener("click", () => this.#export());
    // "input" only: a field's "change" comes on blur, after the list may have been replaced (a preset chosen)
    el.layers.addEventListener("input", (event) => this.#edited(event.target));
    el.layers.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) this.#move(Number(button.dataset.index), button.dataset.action);
    });
    state.on("info", () => this.#start());
    state.on("phase", () => this.#render());
    state.on("busy", () => this.#render());
    state.on("weights", (reason) => {
      // a model from a file or from storage may be another network; training, Reset and a step keep it
      if (reason !== "step" && (state.model.kind === "loaded" || state.model.kind === "restored")) this.#loadCurrent();
    });
  }

  /** True when the drawn network is the model's and it fits: Train may start. */
  get ready() {
    return Boolean(this.applied && this.summary && !this.summary.error && same(this.draft, this.applied.layers));
  }

  #start() {
    this.spec = this.state.info.editor;
    this.el.preset.replaceChildren(
      ...Object.entries(this.spec.presets).map(([name, preset]) => new Option(preset.label, name)),
      new Option("Your own (edit the layers below)", CUSTOM),
    );
    this.el.addKind.replaceChildren(...Object.keys(this.spec.kinds).map((kind) => new Option(KIND_LABELS[kind] ?? kind, kind)));
    this.#setApplied(this.state.info.network);
  }

  /** Another model came (loaded or restored): show its network, unless the learner edited meanwhile. */
  async #loadCurrent() {
    if (!this.spec) return;
    const seq = ++this.seq;
    try {
      const network = await this.client.call("network");
      if (seq === this.seq) this.#setApplied(network);
    } catch (error) {
      // the worker is gone: the page says so, and a restart asks again
    }
  }

  #setApplied(network) {
    const changed = this.applied !== null && !same(this.applied.layers, network.layers);
    this.applied = network;
    this.el.json.textContent = JSON.stringify(network.config, null, 1);
    this.draft = copy(network.layers);
    this.summary = network;
    this.#publish();
    this.#render();
    if (changed) this.#appliedLater(); // another network: its speed is another
  }

  /** onApplied() once the network has stayed the same for a while: timing an epoch takes the worker
   * a second or more, and the summary of the next edit would wait for it. */
  #appliedLater() {
    clearTimeout(this.appliedTimer);
    this.appliedTimer = setTimeout(() => this.onApplied(), APPLIED_SETTLE_MS);
  }

  #choosePreset(name) {
    if (name === CUSTOM) return;
    this.draft = copy(this.spec.presets[name].layers);
    this.#changed();
  }

  #add(kind) {
    const at = Math.max(0, this.draft.length - 1); // before the output layer
    this.draft.splice(at, 0, { class: kind, config: { ...(NEW_LAYER[kind] ?? {}) } });
    this.#changed();
    this.el.layers.querySelector(`li[data-index="${at}"] :is(input, select, button)`)?.focus();
  }

  #move(index, action) {
    const layers = this.draft;
    if (action === "remove") layers.splice(index, 1);
    else {
      const to = action === "up" ? index - 1 : index + 1;
      if (to < 0 || to >= layers.length) return;
      [layers[index], layers[to]] = [layers[to], layers[index]];
    }
    this.#changed();
  }

  #edited(target) {
    const index = Number(target.dataset.index);
    const name = target.dataset.arg;
    if (!name || !this.draft[index]) return;
    const arg = this.spec.kinds[this.draft[index].class].args[name];
    const text = target.value.trim();
    // a number field keeps what was typed when it is not a number of its kind: Python says what is wrong with it
    const value = arg.type === "int" ? (/^\d+$/.test(text) ? Number(text) : text)
      : arg.type === "float" ? (NUMBER.test(text) ? Number(text) : text)
        : arg.choices.find((choice) => String(choice) === text) ?? text;
    // an argument at its default is left out, as Python's description of the network leaves it out
    if ("default" in arg && value === arg.default) delete this.draft[index].config[name];
    else this.draft[index].config[name] = value;
    this.#changed({ rerender: false });
  }

  /** The draft changed: check it in Python (one check at a time, always of the latest draft). */
  #changed({ rerender = true } = {}) {
    this.seq += 1;
    this.summary = null;
    this.#publish();
    if (rerender) this.#render();
    else this.#renderStatus();
    if (!this.syncing) this.#sync();
  }

  /**
   * Check the latest draft; with an untrained model make it the model at once (fresh weights
   * replace fresh weights: nothing to ask). Edits made meanwhile are checked next, so the
   * summary and the model always end up with the last draft.
   */
  async #sync() {
    this.syncing = true;
    try {
      for (;;) {
        const seq = this.seq;
        const layers = copy(this.draft);
        const reply = await this.#call("check_network", { layers });
        if (seq !== this.seq) continue;
        this.#showSummary(reply); // at once, before the model is built
        if (!reply.error && !same(layers, this.applied.layers) && this.state.model.kind === "untrained" && this.state.idle) {
          const applied = await this.#setNetwork(layers); // busy from its first line: Train waits for it
          if (seq !== this.seq) continue;
          if (applied.error) this.#showSummary(applied);
        }
        return;
      }
    } finally {
      this.syncing = false;
    }
  }

  #showSummary(reply) {
    this.summary = reply;
    this.#publish();
    this.#renderStatus();
  }

  /** A request's result, or {error} with its message. */
  async #call(method, args) {
    try {
      return await this.client.call(method, args);
    } catch (error) {
      return { error: error.message };
    }
  }

  /** Make `layers` the model (fresh weights) -> the new network, or {error}. */
  async #setNetwork(layers) {
    const discarded = this.state.model.kind !== "untrained";
    const seed = Number(this.state.info?.defaults?.seed ?? 0);
    const reply = await whileBusy(this.state, this.messages, async () => {
      const network = await this.#call("set_network", { layers, seed });
      if (network.error) return network;
      await this.persistence.forget();
      delete document.body.dataset.runResult;
      const edited = !same(layers, this.draft); // the learner went on editing meanwhile: keep that draft
      const draft = this.draft;
      this.#setApplied(network);
      if (edited) this.draft = draft;
      this.state.replaceModel(UNTRAINED, null);
      if (discarded) this.status.say("A new network with fresh weights: the trained model was replaced.");
      return network;
    });
    this.#render();
    return reply ?? { error: "the network could not be set" };
  }

  /** "Use this network": replace the trained model. */
  async #apply() {
    if (!this.state.idle) return;
    this.seq += 1;
    this.summary = await this.#setNetwork(copy(this.draft));
    this.#publish();
    this.#render();
  }

  /** The model's network as a JSON file (Sequential.get_config()). */
  #export() {
    download(NETWORK_FILE_NAME, this.el.json.textContent, "application/json");
  }

  #revert() {
    this.draft = copy(this.applied.layers);
    this.summary = this.applied;
    this.#publish();
    this.#render();
  }

  /** Tell the training panel whether Train may start. */
  #publish() {
    this.state.setNetworkReady(this.ready);
  }

  // ---------- rendering ----------
  #render() {
    this.frame.request("network", () => {
      this.#renderLayers();
      this.#renderStatus();
    });
  }

  #renderLayers() {
    if (!this.spec) return;
    const shown = [...this.el.layers.children].map((li) => li.dataset.kind);
    if (same(shown, this.draft.map((layer) => layer.class))) {
      this.#renderValues();
      return;
    }
    const items = this.draft.map((layer, index) => {
      const kind = this.spec.kinds[layer.class];
      const li = document.createElement("li");
      li.dataset.kind = layer.class;
      li.dataset.index = String(index);
      const title = document.createElement("span");
      title.className = "layer-kind";
      title.textContent = `${index + 1} · ${KIND_LABELS[layer.class] ?? layer.class}`;
      li.append(title);
      for (const [name, arg] of Object.entries(kind?.args ?? {})) li.append(this.#field(index, name, arg, layer.config[name]));
      const buttons = document.createElement("span");
      buttons.className = "layer-buttons";
      for (const [action, text, label] of [["up", "↑", "up"], ["down", "↓", "down"], ["remove", "✕", "remove"]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = text;
        button.dataset.action = action;
        button.dataset.index = String(index);
        button.dataset.testid = `arch-layer-${index}-${action}`;
        button.setAttribute("aria-label", `${label === "remove" ? "Remove" : `Move ${label}`} layer ${index + 1} (${layer.class})`);
        buttons.append(button);
      }
      li.append(buttons);
      return li;
    });
    this.el.layers.replaceChildren(...items);
  }

  /** The same layers as drawn: each field shows the draft's value, except the one being typed in (replacing the
   * fields, or that one's value, would lose what the learner types while an earlier edit is being applied). */
  #renderValues() {
    for (const input of this.el.layers.querySelectorAll("[data-arg]")) {
      if (input === document.activeElement) continue;
      const layer = this.draft[Number(input.dataset.index)];
      const arg = this.spec.kinds[layer.class].args[input.dataset.arg];
      const value = String(layer.config[input.dataset.arg] ?? arg.default ?? "");
      if (input.value !== value) input.value = value;
    }
  }

  #field(index, name, arg, value) {
    const label = document.createElement("label");
    label.className = "layer-arg";
    label.append(`${ARG_LABELS[name] ?? name} `);
    let input;
    if (arg.type === "choice") {
      input = document.createElement("select");
      input.append(...arg.choices.map((choice) => new Option(String(choice), String(choice))));
    } else {
      input = document.createElement("input");
      input.type = "number";
      input.inputMode = arg.type === "float" ? "decimal" : "numeric";
      input.min = String(arg.min);
      input.max = String(arg.max);
      input.step = arg.type === "float" ? "any" : "1";
    }
    input.value = String(value ?? arg.default ?? "");
    input.dataset.index = String(index);
    input.dataset.arg = name;
    input.dataset.testid = `arch-layer-${index}-${name}`;
    label.append(input);
    return label;
  }

  #renderStatus() {
    const el = this.el;
    const training = this.state.phase === "training";
    const locked = !this.state.idle || !this.spec;
    el.root.disabled = training || !this.spec;
    el.root.dataset.editable = String(Boolean(this.applied?.editable));
    const presetName = Object.entries(this.spec?.presets ?? {}).find(([, preset]) => same(preset.layers, this.draft))?.[0];
    el.preset.value = presetName ?? CUSTOM;
    const summary = this.summary;
    const error = summary?.error ?? "";
    el.error.textContent = error;
    el.error.hidden = !error;
    if (summary && !error) this.#renderSummary(summary);
    el.summary.dataset.state = error ? "error" : summary ? "ok" : "checking";
    const pending = Boolean(summary && !error && this.applied && !same(this.draft, this.applied.layers));
    el.confirm.hidden = !pending;
    if (pending) {
      el.confirmText.textContent = this.state.model.kind === "untrained" ? "This network starts from fresh weights."
        : "This network starts from fresh weights and replaces your trained model" +
          (this.state.resumable ? " and the stopped run Continue would finish" : "") + ". Download model first if you want to keep it.";
    }
    el.apply.disabled = locked;
    el.revert.disabled = locked;
  }

  #renderSummary({ rows, total_params: total, work, images_per_second: speed }) {
    const info = this.state.info;
    const seconds = speed ? epochSeconds(info.train_count, info.heldout_count, speed.train, speed.eval) : null;
    const table = document.createElement("table");
    table.className = "summary-table";
    const head = table.createTHead().insertRow();
    for (const text of ["Layer (type)", "Output shape", "Params"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      head.append(th);
    }
    const body = table.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      tr.insertCell().textContent = `${row.name} (${row.class})`;
      tr.insertCell().textContent = `(${row.output_shape.join(", ")})`;
      tr.insertCell().textContent = fmtInt(row.params);
    }
    const foot = table.createTFoot().insertRow();
    const cell = foot.insertCell();
    cell.colSpan = 3;
    cell.textContent = `Total params: ${fmtInt(total)} · ${(work / 1e6).toFixed(2)} M multiply-adds per digit` +
      (seconds ? ` · about ${fmtSeconds(seconds)} per epoch here` : "");
    this.el.summary.replaceChildren(table);
    this.el.summary.dataset.totalParams = String(total);
    this.el.summary.dataset.work = String(work);
    if (seconds) this.el.summary.dataset.secondsPerEpoch = seconds.toFixed(2);
    else delete this.el.summary.dataset.secondsPerEpoch;
  }
}
