// "See inside one step": the arithmetic of a feature-map cell the learner points at (and the
// input pixels it reads), the saliency map of the digit read ("why not a 7?"), one training step
// on the digit shown, with Keep and Undo, and the same network as Python code. The page only
// draws: every number comes from the worker (pycnn.explain and pycnn.codegen, through
// pycnn.page); see PROTOCOL.md for the requests.
import { download } from "./files.js";
import { divergingRgb, drawFilters, largest } from "./filters.js";
import { whileBusy } from "./state.js";

const CODE_REFRESH_MS = 300; // after the last edit of a setting
const ARROWS = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };

/** A number as the panels show it: 3 decimals, or 2 significant digits when tiny; "–" for none. */
function fmt(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (v === 0) return "0";
  if (Math.abs(v) >= 100) return v.toFixed(1);
  if (Math.abs(v) >= 0.001) return v.toFixed(3);
  return v.toExponential(1);
}

const pct = (p) => `${(p * 100).toFixed(p >= 0.995 || p < 0.001 ? 2 : 1)}%`;

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** An (h, w) array into a canvas of that size on the diverging scale, ±scale at the ends. */
function drawDiverging(canvas, h, w, data, scale) {
  if (canvas.width !== w || canvas.height !== h) Object.assign(canvas, { width: w, height: h });
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  const s = scale > 0 ? 1 / scale : 0;
  for (let i = 0; i < w * h; i++) image.data.set([...divergingRgb(data[i] * s), 255], i * 4);
  ctx.putImageData(image, 0, 0);
}

/** A rows x cols table of numbers (cols = rows: a k x k patch); cells where `inImage` is 0 read zero padding. */
function numberTable(values, rows, caption, inImage = null, mark = null, cols = rows) {
  const table = element("table", "numbers");
  table.append(element("caption", "", caption));
  const body = table.createTBody();
  for (let r = 0; r < rows; r++) {
    const tr = body.insertRow();
    for (let c = 0; c < cols; c++) {
      const td = tr.insertCell();
      td.textContent = fmt(values[r * cols + c]);
      if (inImage && !inImage[r * cols + c]) td.className = "pad";
      if (mark && mark[0] === r && mark[1] === c) td.className = "winner";
    }
  }
  return table;
}

// ---------------------------------------------------------------- one cell's arithmetic
const ACTIVATION_LABELS = { ReLU: "ReLU", LeakyReLU: "Leaky ReLU", Tanh: "tanh", Sigmoid: "sigmoid" };

class CellArithmetic {
  /** el: {maps: the feature maps, box: [data-testid=conv-arithmetic], field: the receptive field over the 28x28 input}. */
  constructor({ client, state, frame, probe, el }) {
    Object.assign(this, { client, state, frame, probe, el });
    this.summary = el.box.querySelector(".arith-summary");
    this.detail = el.box.querySelector(".arith-detail");
    this.marker = element("div", "cell-marker");
    this.marker.setAttribute("aria-hidden", "true");
    this.marker.hidden = true;
    el.maps.append(this.marker);
    this.pointed = null; // {layer, channel, row, col, grid, canvas, at}
    this.inFlight = false;
    this.pending = false;
    this.inputMap = 0; // the input map whose numbers are shown, for layers that read several
    this.shownLayer = null; // the layer inputMap was chosen for
    this.shown = null;

    const canvasOf = (event) => {
      const canvas = event.target.closest?.("canvas[data-kind]");
      return canvas && canvas.dataset.kind !== "filter" && el.maps.dataset.shown === "true" ? canvas : null;
    };
    const pointAt = (event) => {
      const canvas = canvasOf(event);
      if (!canvas) return;
      // in the canvas' content box: its border is no part of a cell
      const rect = canvas.getBoundingClientRect();
      const x = event.clientX - rect.left - canvas.clientLeft;
      const y = event.clientY - rect.top - canvas.clientTop;
      const col = Math.floor((x / canvas.clientWidth) * canvas.width);
      const row = Math.floor((y / canvas.clientHeight) * canvas.height);
      this.#point(canvas, row, col);
    };
    el.maps.addEventListener("pointermove", pointAt);
    el.maps.addEventListener("pointerdown", pointAt); // a tap
    el.maps.addEventListener("focusin", (event) => {
      const canvas = canvasOf(event);
      if (!canvas || this.moving) return; // the arrow keys moved the focus: they point at the cell themselves
      const same = this.pointed?.canvas === canvas;
      this.#point(canvas, same ? this.pointed.row : Math.floor(canvas.height / 2), same ? this.pointed.col : Math.floor(canvas.width / 2));
    });
    el.maps.addEventListener("keydown", (event) => this.#key(event, canvasOf(event)));
    state.on("inspected", (inspection) => {
      if (!inspection) this.#clear();
      else if (this.pointed?.canvas.isConnected) this.#ask(); // the same cell of the new reading
    });
  }

  /** Arrow keys move over the cells of the focused map, and on to the next or previous map at its edge. */
  #key(event, canvas) {
    const move = ARROWS[event.key];
    if (!move || !canvas) return;
    event.preventDefault();
    const here = this.pointed?.canvas === canvas ? this.pointed : { row: 0, col: 0 };
    let row = Math.min(canvas.height - 1, Math.max(0, here.row + move[0]));
    let col = here.col + move[1];
    let target = canvas;
    const maps = [...canvas.parentElement.querySelectorAll(`canvas[data-kind="${canvas.dataset.kind}"]`)];
    const at = maps.indexOf(canvas);
    if (col < 0 || col >= canvas.width) {
      const next = maps[at + (col < 0 ? -1 : 1)];
      if (!next) return;
      target = next;
      col = col < 0 ? next.width - 1 : 0;
      row = Math.min(row, next.height - 1);
    }
    if (target !== canvas) {
      // roving tab stop: the map last pointed at is the one Tab comes back to
      for (const c of maps) c.tabIndex = c === target ? 0 : -1;
      this.moving = true;
      target.focus();
      this.moving = false;
    }
    this.#point(target, row, col);
  }

  #point(canvas, row, col) {
    const layer = Number(canvas.closest("[data-layer]")?.dataset.layer);
    if (!Number.isInteger(layer)) return;
    row = Math.min(canvas.height - 1, Math.max(0, row));
    col = Math.min(canvas.width - 1, Math.max(0, col));
    const grid = canvas.dataset.kind === "pool" ? "pooled" : "activated";
    const channel = Number(canvas.dataset.filter);
    const p = this.pointed;
    if (p && p.canvas === canvas && p.row === row && p.col === col && p.layer === layer && this.shown) return;
    this.pointed = { layer, channel, row, col, grid, canvas, at: performance.now() };
    this.#placeMarker();
    this.#ask();
  }

  #placeMarker() {
    const { canvas, row, col } = this.pointed;
    const box = this.el.maps.getBoundingClientRect();
    const rect = canvas.getBoundingClientRect();
    const w = canvas.clientWidth / canvas.width;
    const h = canvas.clientHeight / canvas.height;
    const left = rect.left - box.left + canvas.clientLeft;
    const top = rect.top - box.top + canvas.clientTop;
    Object.assign(this.marker.style, {
      left: `${left + col * w}px`, top: `${top + row * h}px`,
      width: `${Math.max(w, 2)}px`, height: `${Math.max(h, 2)}px`,
    });
    this.marker.hidden = false;
  }

  #ask() {
    if (!this.state.inspection || !this.pointed) return;
    if (this.inFlight) {
      this.pending = true; // asked for the then-pointed cell when the answer in flight arrives
      return;
    }
    this.#send();
  }

  async #send() {
    const pointed = this.pointed;
    const { layer, channel, row, col, grid } = pointed;
    this.inFlight = true;
    this.pending = false;
    try {
      const { result: reply, ms } = await this.client.request("arithmetic", { layer, channel, row, col, grid });
      if (pointed === this.pointed) {
        this.frame.request("inside.arithmetic", () => {
          this.#render(reply);
          this.probe.set("arithmetic_latency_ms", Math.round(performance.now() - pointed.at));
          this.probe.set("arithmetic_worker_ms", ms);
        });
      }
    } catch (error) {
      this.summary.textContent = `Could not explain that cell: ${error.message}`;
    } finally {
      this.inFlight = false;
      if (this.pending) this.#send();
    }
  }

  #clear() {
    this.shown = null;
    this.marker.hidden = true;
    this.el.field.hidden = true;
    for (const key of ["layer", "channel", "row", "col", "grid", "sum", "bias", "conv", "normalised", "activated", "relu",
      "pooled"]) delete this.el.box.dataset[key];
    this.summary.textContent = "Draw a digit (or show a held-out one), then point at a cell of a feature map.";
    this.detail.replaceChildren();
  }

  /** Which conv layer `layer` is, counting from 1, in the reading shown. */
  #convNumber(layer) {
    const blocks = this.state.inspection?.result.blocks ?? [];
    const i = blocks.findIndex((block) => block.layer === layer);
    return i >= 0 ? i + 1 : layer;
  }

  #render(a) {
    this.shown = a;
    if (this.pointed?.canvas.isConnected) this.#placeMarker(); // the maps may have moved (a resize, a new reading)
    const box = this.el.box;
    Object.assign(box.dataset, {
      layer: String(a.layer), channel: String(a.channel), row: String(a.row), col: String(a.col),
      grid: this.pointed?.grid ?? "activated", sum: String(a.sum), bias: String(a.bias), conv: String(a.conv),
      normalised: a.batchnorm === null ? "" : String(a.batchnorm.value),
      activated: a.activation === null ? "" : String(a.activation.value),
      relu: a.relu === null ? "" : String(a.relu), pooled: a.pooled === null ? "" : String(a.pooled),
      receptiveField: a.receptive_field.join(","), version: String(Number(box.dataset.version) + 1),
    });
    const n = this.#convNumber(a.layer);
    const [channels, k] = a.weights.shape;
    const bn = a.batchnorm;
    const before = bn === null ? a.conv : bn.value; // what the activation reads
    const activation = a.activation === null ? "" : ACTIVATION_LABELS[a.activation.kind] ?? a.activation.kind;
    let text = `Conv layer ${n}, map ${a.channel + 1}, row ${a.row + 1}, column ${a.col + 1}: ` +
      `sum of products ${fmt(a.sum)} + bias ${fmt(a.bias)} = ${fmt(a.conv)}`;
    if (bn !== null) text += `; batch norm gives ${fmt(bn.value)}`;
    if (a.relu !== null) text += `; ReLU keeps ${before > 0 ? "it" : "0 (it is negative)"}: ${fmt(a.relu)}`;
    else if (a.activation !== null) text += `; ${activation} gives ${fmt(a.activation.value)}`;
    if (a.pooled !== null) text += `; ${a.pool} pooling gives ${fmt(a.pooled)}`;
    this.summary.textContent = `${text}.`;

    const parts = [];
    if (this.pointed?.grid === "pooled") {
      parts.push(element("p", "hint", a.pool === "average"
        ? "You pointed at a pooled cell: it is the average of a window of conv cells; this is the window's first " +
          `cell (row ${a.row + 1}, column ${a.col + 1}).`
        : "You pointed at a pooled cell: it is the largest of a window of conv cells, " +
          `and this is the one that won (row ${a.row + 1}, column ${a.col + 1}).`));
    }
    // the numbers of one input map (the only one for the first layer)
    const size = k * k;
    const sums = Array.from({ length: channels }, (_, c) => a.products.data.subarray(c * size, (c + 1) * size).reduce((s, v) => s + v, 0));
    if (this.shownLayer !== a.layer) {
      this.inputMap = sums.reduce((best, s, c) => (Math.abs(s) > Math.abs(sums[best]) ? c : best), 0);
      this.shownLayer = a.layer;
    }
    const c = Math.min(this.inputMap, channels - 1);
    const slice = (arr) => arr.data.subarray(c * size, (c + 1) * size);
    const tables = element("div", "arith-tables");
    const of = channels > 1 ? ` (input map ${c + 1})` : "";
    tables.append(
      numberTable(slice(a.patch), k, `input patch${of}`, a.in_image.data),
      element("span", "op", "×"),
      numberTable(slice(a.weights), k, `filter${of}`),
      element("span", "op", "="),
      numberTable(slice(a.products), k, "products"),
    );
    parts.push(tables);
    if (channels > 1) {
      const pick = element("label", "input-map", "Show input map ");
      const select = document.createElement("select");
      select.setAttribute("data-testid", "arithmetic-input-map");
      for (let i = 0; i < channels; i++) select.append(new Option(`${i + 1} (products add up to ${fmt(sums[i])})`, String(i)));
      select.value = String(c);
      select.addEventListener("change", () => {
        this.inputMap = Number(select.value);
        this.#render(this.shown);
        this.detail.querySelector("select")?.focus();
      });
      pick.append(select);
      parts.push(element("p", "hint", `This layer reads the ${channels} maps of the layer before: its filter has ` +
        `${channels}×${k}×${k} weights, and the sum runs over all ${channels * size} products.`), pick);
    }
    const steps = element("ol", "arith-steps");
    steps.append(element("li", "", `Sum of the ${channels * size} products: ${fmt(a.sum)}`));
    steps.append(element("li", "", `+ bias ${fmt(a.bias)} = ${fmt(a.conv)} (the conv's output)`));
    if (bn !== null) {
      steps.append(element("li", "", `Batch norm, with the running mean and variance of this map: ` +
        `(${fmt(a.conv)} − ${fmt(bn.mean)}) / √(${fmt(bn.var)} + ${fmt(bn.eps)}) × ${fmt(bn.gamma)} + ${fmt(bn.beta)} ` +
        `= ${fmt(bn.value)}`));
    }
    if (a.relu !== null) steps.append(element("li", "", `ReLU: max(0, ${fmt(before)}) = ${fmt(a.relu)}`));
    else if (a.activation !== null) steps.append(element("li", "", `${activation}(${fmt(before)}) = ${fmt(a.activation.value)}`));
    if (a.pooled !== null) {
      const [ph, pw] = a.pool_values.shape;
      const cells = `${a.pool_values.shape.join("×")} cells`;
      let li;
      if (a.pool === "average") {
        li = element("li", "", `Average pooling: the mean of these ${cells} is ${fmt(a.pooled)}`);
        li.append(numberTable(a.pool_values.data, ph, "pool window", null, null, pw));
      } else {
        li = element("li", "", `Max pooling: the largest of these ${cells} is ${fmt(a.pooled)}`);
        const win = [a.pool_argmax[0] - a.pool_window[0], a.pool_argmax[1] - a.pool_window[1]];
        li.append(numberTable(a.pool_values.data, ph, "pool window (the winner marked)", null, win, pw));
      }
      steps.append(li);
    }
    parts.push(steps);
    const [top, left, bottom, right] = a.receptive_field;
    parts.push(element("p", "hint", `It reads input pixels in rows ${top + 1}–${bottom} and columns ${left + 1}–${right} ` +
      `(${bottom - top}×${right - left}, outlined on the 28×28 input above).`));
    this.detail.replaceChildren(...parts);
    Object.assign(this.el.field.style, {
      left: `${(left / 28) * 100}%`, top: `${(top / 28) * 100}%`,
      width: `${((right - left) / 28) * 100}%`, height: `${((bottom - top) / 28) * 100}%`,
    });
    this.el.field.dataset.rect = a.receptive_field.join(",");
    this.el.field.hidden = false;
  }
}

// ---------------------------------------------------------------- saliency
class Saliency {
  /** el: {canvas: [data-testid=saliency], select: the "why not a …?" digit, note}. */
  constructor({ client, state, frame, probe, el }) {
    Object.assign(this, { client, state, frame, probe, el });
    this.seq = 0;
    el.select.addEventListener("change", () => this.#whyNot());
    state.on("project", () => this.#options());
    state.on("inspected", (inspection) => {
      this.seq += 1; // an answer on its way is for the reading before
      el.select.value = "";
      if (!inspection?.result.saliency) {
        this.#clear();
        return;
      }
      this.#draw(inspection.result.saliency, inspection.result.prediction);
      this.probe.set("saliency_latency_ms", Math.round(performance.now() - inspection.sentAt));
    });
    this.#clear();
  }

  async #whyNot() {
    const inspection = this.state.inspection;
    if (!inspection) return;
    if (this.el.select.value === "") {
      this.#draw(inspection.result.saliency, inspection.result.prediction);
      return;
    }
    const seq = ++this.seq;
    const asked = performance.now();
    try {
      const reply = await this.client.call("saliency", { digit: Number(this.el.select.value) });
      if (seq !== this.seq) return;
      this.frame.request("inside.saliency", () => {
        this.#draw(reply, inspection.result.prediction);
        this.probe.set("why_not_latency_ms", Math.round(performance.now() - asked));
      });
    } catch (error) {
      this.el.note.textContent = `Could not compute it: ${error.message}`;
    }
  }

  /** "Why not a …?" offers the classes of what is open: the digits, or a project's. */
  #options() {
    const names = this.state.classNames;
    const select = this.el.select;
    if (select.options.length === names.length + 1 && names.every((name, i) => select.options[i + 1].textContent === name)) return;
    select.replaceChildren(select.options[0], ...names.map((name, i) => {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = name;
      return option;
    }));
  }

  #draw(s, read) {
    const { canvas, note } = this.el;
    const names = this.state.classNames;
    const name = (d) => names[d] ?? String(d);
    const kind = this.state.project ? "class" : "digit";
    const [h, w] = s.gradient.shape;
    const max = largest(s.gradient.data);
    drawDiverging(canvas, h, w, s.gradient.data, max);
    Object.assign(canvas.dataset, { digit: String(s.digit), maxAbs: String(max), version: String(Number(canvas.dataset.version) + 1) });
    const which = s.digit === read ? `the ${kind} it reads, ${name(s.digit)}`
      : `${name(s.digit)} (it reads ${name(read)}; the probability of ${name(s.digit)} is ${pct(s.probability)})`;
    note.textContent = `The gradient of the score of ${which} with respect to each input pixel: red where more ink ` +
      `would raise that score, blue where it would lower it (strongest: ${fmt(max)} per unit of ink).`;
    canvas.setAttribute("aria-label", `Saliency map of ${name(s.digit)}: which pixels raise or lower its score`);
  }

  #clear() {
    const { canvas, note } = this.el;
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.digit = "";
    note.textContent = "The gradient of the digit's score with respect to each input pixel: red where more ink would raise the " +
      "score, blue where it would lower it. It appears with the network's reading of a digit.";
  }
}

// ---------------------------------------------------------------- one training step
class OneStep {
  /** el: {label, step, keep, undo, loss, grads}; settings() -> the form's valid settings or null. */
  constructor({ client, state, frame, probe, messages, announcer, settings, el }) {
    Object.assign(this, { client, state, frame, probe, messages, announcer, settings, el });
    this.steps = 0; // tried since the last Keep or Undo
    this.filters = null; // the current conv layers' weights, from `filters`
    this.last = null; // the latest step-tried reply
    this.digit = null; // the digit the label was chosen for
    this.labelChosen = false; // the learner chose the label for this digit
    this.forgotten = false; // the panel says why there is no step (kept, undone, undone by training)
    el.label.addEventListener("change", () => {
      this.labelChosen = true;
    });
    el.step.addEventListener("click", () => this.#step());
    el.keep.addEventListener("click", () => this.#keep());
    el.undo.addEventListener("click", () => this.#undo());
    client.on("filters", ({ conv_layers: convLayers }) => {
      this.filters = convLayers;
      // the step may be forgotten (Reset, a new model) before the frame: then there is nothing to redraw
      if (this.last) this.frame.request("inside.grads", () => this.last && this.#renderGrads(this.last));
    });
    state.on("inspected", (inspection) => {
      // a reading of another digit (not the same one read again after a step, nor the blank in between)
      const digit = inspection ? `${inspection.source}:${inspection.digit}` : this.digit;
      if (digit !== this.digit) {
        this.digit = digit;
        this.labelChosen = false;
      }
      if (inspection && !this.labelChosen) {
        const result = inspection.result;
        el.label.value = String(result.label ?? result.prediction); // a held-out digit's own label, else what it reads
      }
      this.#renderControls();
    });
    state.on("phase", () => {
      if (state.phase === "training" || state.phase === "error") this.#forget(state.phase === "training" && this.steps
        ? "Training started: it undid the steps you had not kept." : null);
      this.#renderControls();
    });
    state.on("busy", () => this.#renderControls());
    state.on("project", () => this.#renderControls());
    state.on("history", () => this.#forget(null)); // another model (loaded, reset, a new network): no steps to keep
    this.#renderControls();
  }

  #renderControls() {
    const { el, state } = this;
    const can = state.idle && state.canRead;
    el.step.disabled = !(can && state.inspection && !state.project); // a step trains the digit network
    el.keep.disabled = !(can && this.steps > 0);
    el.undo.disabled = !(can && this.steps > 0);
    el.label.disabled = state.phase !== "ready";
    el.step.textContent = this.steps > 0 ? "Step again" : "Step";
    if (!this.last && !this.forgotten) {
      el.loss.textContent = state.phase === "training" ? "Stop training first: a step changes the model."
        : state.project ? "A step trains the digit network: choose Digits 0–9 above the canvas to take one."
        : !state.canRead ? "Train the model (or load one) and show it a digit first."
          : !state.inspection ? "Draw a digit (or show a held-out one) to take a step on it." : "Choose what the digit is and press Step.";
    }
  }

  #forget(note) {
    this.steps = 0;
    this.el.loss.dataset.steps = "0";
    this.last = null;
    this.forgotten = Boolean(note);
    if (note) this.el.loss.textContent = note;
    this.el.grads.replaceChildren();
    this.el.grads.dataset.layers = "0";
    for (const key of ["loss", "lossAfter", "probabilityBefore", "probabilityAfter", "label"]) delete this.el.loss.dataset[key];
  }

  #step() {
    const clicked = performance.now();
    const config = this.settings() ?? {};
    return whileBusy(this.state, this.messages, async () => {
      const label = Number(this.el.label.value);
      const { result: reply, ms } = await this.client.request("try_step", { label, lr: config.lr ?? null, optimizer: config.optimizer ?? null });
      this.steps = reply.steps;
      this.last = reply;
      this.forgotten = false;
      this.frame.request("inside.step", () => {
        this.#renderLoss(reply);
        this.#renderGrads(reply);
        this.probe.set("step_latency_ms", Math.round(performance.now() - clicked));
        this.probe.set("step_worker_ms", ms);
      });
      this.announcer.announce(`Step ${reply.steps}: loss ${fmt(reply.loss)} to ${fmt(reply.loss_after)}; probability of ${reply.label} ` +
        `${pct(reply.probability_before)} to ${pct(reply.probability_after)}.`);
      this.state.weightsChanged("step"); // the reading, the feature maps and the held-out analysis of the stepped model
    });
  }

  #keep() {
    const stopped = Boolean(this.state.resumable); // a kept step moves the weights on from the stopped run's
    return whileBusy(this.state, this.messages, async () => {
      const reply = await this.client.call("keep_step");
      this.#forget(null);
      this.el.loss.textContent = `Kept ${reply.steps} step${reply.steps === 1 ? "" : "s"}: the model is saved with ${reply.steps === 1 ? "it" : "them"}. ` +
        `Held-out accuracy now ${pct(reply.evaluation.accuracy)}.` + (stopped ? " The stopped run cannot be continued now." : "");
      this.forgotten = true;
      this.state.describeModel({ stepsKept: (this.state.model.stepsKept ?? 0) + reply.steps }, reply.evaluation);
      this.announcer.announce(this.el.loss.textContent);
      this.state.weightsChanged();
    });
  }

  #undo() {
    return whileBusy(this.state, this.messages, async () => {
      const reply = await this.client.call("undo_step");
      this.#forget(null);
      this.el.loss.textContent = `Undone: the weights and the optimiser are exactly as before the ${reply.steps} step${reply.steps === 1 ? "" : "s"}.`;
      this.forgotten = true;
      this.announcer.announce(this.el.loss.textContent);
      this.state.weightsChanged();
    });
  }

  #renderLoss(r) {
    const el = this.el.loss;
    Object.assign(el.dataset, {
      loss: String(r.loss), lossAfter: String(r.loss_after), probabilityBefore: String(r.probability_before),
      probabilityAfter: String(r.probability_after), label: String(r.label), steps: String(r.steps),
      predictionAfter: String(r.prediction_after),
    });
    const reads = r.prediction_after !== r.prediction_before ? ` It now reads ${r.prediction_after} (it read ${r.prediction_before}).` : "";
    const how = `${r.optimizer}${r.optimizer_step ? ` update ${r.optimizer_step}` : ""}, learning rate ${r.lr}`;
    const first = r.first_step && r.optimizer === "Adam"
      ? " Adam's first step moves every weight with a gradient by the learning rate, whatever the gradient's size." : "";
    el.textContent = `Step ${r.steps} (${how}). Loss on this digit: ${fmt(r.loss)} → ${fmt(r.loss_after)}. ` +
      `Probability that it is a ${r.label}: ${pct(r.probability_before)} → ${pct(r.probability_after)}.${reads}${first}`;
  }

  /** For each conv layer: its filters, their gradient (one diverging scale for the layer) and the change the optimiser made. */
  #renderGrads(r) {
    const figures = [];
    let number = 0;
    const dense = [];
    for (const layer of r.layers) {
      if (!layer.gradient) {
        dense.push(`${layer.class} (layer ${layer.layer + 1}): gradient ${fmt(layer.gradient_norm)}, change ${fmt(layer.update_norm)}`);
        continue;
      }
      number += 1;
      const [count, channels, k] = layer.gradient.shape;
      const figure = element("figure", "step-layer");
      figure.dataset.layer = String(layer.layer);
      figure.dataset.filterGradientNorms = Array.from(layer.filter_gradient_norm.data).join(",");
      figure.dataset.filterUpdateNorms = Array.from(layer.filter_update_norm.data).join(",");
      const updates = Array.from(layer.filter_update_norm.data);
      const gradMax = largest(layer.gradient.data);
      figure.append(element("figcaption", "", `Conv layer ${number}: ${count} filters of ${channels}×${k}×${k}` +
        (channels > 1 ? " (a column per filter, a row per map it reads)" : "")));
      const weights = this.filters?.find((l) => l.layer === layer.layer)?.weights;
      const rows = [
        ["the filter now", weights, weights ? largest(weights.data) : 0, "weights"],
        [`its gradient (±${fmt(gradMax)})`, layer.gradient, gradMax, "gradient"],
        [`the change ${r.optimizer} made (±${fmt(largest(layer.update.data))})`, layer.update, largest(layer.update.data), "update"],
      ];
      const grid = element("div", "step-rows");
      const px = channels > 1 ? 2 : 6; // CSS pixels per weight: a deeper layer's grid is large
      for (const [label, tensor, scale, kind] of rows) {
        grid.append(element("span", "step-row-label", label));
        const canvas = document.createElement("canvas");
        canvas.dataset.kind = kind;
        canvas.setAttribute("role", "img");
        canvas.setAttribute("aria-label", `conv layer ${number}: ${label}`);
        if (tensor) drawFilters(canvas, tensor.shape, tensor.data, scale);
        canvas.style.width = `${px * (count * (k + 1) - 1)}px`;
        grid.append(canvas);
      }
      // how far each filter moved: a bar per filter column
      grid.append(element("span", "step-row-label", "how far each filter moved"));
      const bars = document.createElement("canvas");
      bars.dataset.kind = "update-norms";
      bars.width = count * (k + 1) - 1;
      bars.height = 8;
      bars.style.width = `${px * bars.width}px`;
      bars.setAttribute("role", "img");
      const top = Math.max(...updates) || 1;
      bars.setAttribute("aria-label", `conv layer ${number}: how far each filter moved, ${fmt(Math.min(...updates))} to ${fmt(top)}`);
      const ctx = bars.getContext("2d");
      ctx.fillStyle = "#1d4ed8";
      updates.forEach((u, f) => {
        const height = Math.max(1, Math.round((u / top) * bars.height));
        ctx.fillRect(f * (k + 1), bars.height - height, k, height);
      });
      grid.append(bars);
      figure.append(grid);
      const gradients = Array.from(layer.filter_gradient_norm.data);
      figure.append(element("p", "hint", `Each filter moved by ${fmt(Math.min(...updates))} to ${fmt(top)} (the length, L2, ` +
        `of its change); its gradient's length was ${fmt(Math.min(...gradients))} to ${fmt(Math.max(...gradients))}.`));
      figures.push(figure);
    }
    if (dense.length) figures.push(element("p", "hint", `The other layers with weights: ${dense.join("; ")}.`));
    this.el.grads.replaceChildren(...figures);
    this.el.grads.dataset.layers = String(number);
  }
}

// ---------------------------------------------------------------- the code
class PythonCode {
  /** el: {code: the <pre>, refresh, exportButton, form: the settings form (edits refresh the code)}. */
  constructor({ client, state, messages, settings, el }) {
    Object.assign(this, { client, state, messages, settings, el });
    this.timer = null;
    this.seq = 0;
    el.refresh.addEventListener("click", () => this.refresh());
    el.exportButton.addEventListener("click", () => this.#export());
    el.form.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(), CODE_REFRESH_MS);
    });
    el.form.addEventListener("change", () => this.refresh());
    const ready = () => state.phase === "ready" || state.phase === "training";
    state.on("phase", () => {
      el.exportButton.disabled = !ready();
      el.refresh.disabled = !ready();
      if (state.phase === "ready") this.refresh();
    });
    state.on("history", () => this.refresh()); // another model, maybe another network
    el.exportButton.disabled = true;
    el.refresh.disabled = true;
  }

  async refresh() {
    if (!(this.state.phase === "ready" || this.state.phase === "training")) return;
    const config = this.settings();
    if (!config) {
      this.el.code.textContent = "# Fix the training settings above to see their code.";
      return;
    }
    const seq = ++this.seq;
    try {
      const reply = await this.client.call("python_code", { config });
      if (seq !== this.seq) return;
      this.el.code.textContent = reply.code;
      this.el.code.dataset.seed = String(reply.seed);
      this.el.code.dataset.version = String(Number(this.el.code.dataset.version) + 1);
    } catch (error) {
      if (seq === this.seq) this.el.code.textContent = `# Could not write the code: ${error.message}`;
    }
  }

  async #export() {
    const config = this.settings();
    if (!config) {
      this.messages.show("Fix the training settings first: the script trains with them.", "error");
      return;
    }
    try {
      const { script, file_name: fileName } = await this.client.call("export_script", { config });
      download(fileName, script, "text/x-python");
    } catch (error) {
      this.messages.show(error.message, "error");
    }
  }
}

export class Inside {
  /**
   * el: {maps, arithmetic, field, saliency, whyNot, saliencyNote, stepLabel, step, keep, undo, stepLoss,
   * stepGrads, code, codeRefresh, exportPython, form}; settings() -> the form's valid settings or null;
   * the rest as for Predictor.
   */
  constructor({ client, state, frame, probe, messages, announcer, settings, el }) {
    const common = { client, state, frame, probe, messages, announcer, settings };
    this.arithmetic = new CellArithmetic({ ...common, el: { maps: el.maps, box: el.arithmetic, field: el.field } });
    this.saliency = new Saliency({ ...common, el: { canvas: el.saliency, select: el.whyNot, note: el.saliencyNote } });
    this.step = new OneStep({
      ...common,
      el: { label: el.stepLabel, step: el.step, keep: el.keep, undo: el.undo, loss: el.stepLoss, grads: el.stepGrads },
    });
    this.code = new PythonCode({ ...common, el: { code: el.code, refresh: el.codeRefresh, exportButton: el.exportPython, form: el.form } });
  }
}
