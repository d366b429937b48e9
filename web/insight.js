// Views that explain a prediction: probability bars, the 28x28 input the network saw, the
// feature maps of the first conv block, and the held-out confusion matrix and mistakes.
// DOM/canvas only; data comes from worker replies.
import { divergingColor } from "./filters.js";

const DIGITS = [...Array(10).keys()];

/** Grey image (values >= 0, scaled by `max`) into a canvas of the image's size: ink dark on white. */
export function drawGrey(canvas, shape, data, max = null) {
  const [h, w] = shape.slice(-2);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  let top = max;
  if (top === null) {
    top = 0;
    for (let i = 0; i < w * h; i++) top = Math.max(top, data[i]);
  }
  const scale = top > 0 ? 1 / top : 0;
  for (let i = 0; i < w * h; i++) {
    const v = 255 - Math.round(255 * Math.min(1, Math.max(0, data[i] * scale)));
    image.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
}

function clearCanvas(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

export class PredictionView {
  /** root: element holding [data-testid=prediction], [data-testid=probabilities], [data-testid=model-input], a note. */
  constructor({ prediction, note, probabilities, modelInput }) {
    this.prediction = prediction;
    this.note = note;
    this.probabilities = probabilities;
    this.modelInput = modelInput;
    this.names = null;
    this.setClasses(DIGITS.map(String));
    this.clear("Draw a digit in the box");
  }

  /** One bar per class, named (the ten digits, or a project's classes). */
  setClasses(names) {
    if (this.names && this.names.length === names.length && this.names.every((name, i) => name === names[i])) return;
    this.names = [...names];
    this.probabilities.classList.toggle("named", names.some((name) => name.length > 2));
    this.rows = names.map((name, d) => {
      const row = document.createElement("div");
      row.className = "prob";
      row.dataset.digit = String(d);
      row.dataset.name = name;
      row.dataset.probability = "";
      const label = document.createElement("span");
      label.className = "prob-digit";
      label.textContent = name;
      label.title = name;
      const bar = document.createElement("span");
      bar.className = "prob-bar";
      const fill = document.createElement("span");
      fill.className = "prob-fill";
      bar.append(fill);
      const pct = document.createElement("span");
      pct.className = "prob-pct";
      row.append(label, bar, pct);
      return { row, fill, pct };
    });
    this.probabilities.replaceChildren(...this.rows.map(({ row }) => row));
  }

  clear(note) {
    this.prediction.textContent = "";
    this.prediction.dataset.digit = "";
    this.prediction.dataset.name = "";
    this.note.textContent = note;
    for (const { row, fill, pct } of this.rows) {
      row.dataset.probability = "";
      row.classList.remove("top");
      fill.style.transform = "scaleX(0)"; // CSSOM, allowed by style-src 'self'
      pct.textContent = "";
    }
    this.probabilities.dataset.values = "";
    clearCanvas(this.modelInput);
  }

  /** result: {prediction, probabilities {shape [10], data}, input {shape [28, 28], data}}; note: text under the digit. */
  show(result, note) {
    if (result.names) this.setClasses(result.names);
    this.prediction.textContent = this.names[result.prediction] ?? String(result.prediction);
    this.prediction.dataset.digit = String(result.prediction);
    this.prediction.dataset.name = this.prediction.textContent;
    this.prediction.classList.toggle("named", this.prediction.textContent.length > 2);
    this.note.textContent = note;
    result.probabilities.data.forEach((p, d) => {
      const { row, fill, pct } = this.rows[d];
      row.dataset.probability = p.toFixed(4);
      row.classList.toggle("top", d === result.prediction);
      fill.style.transform = `scaleX(${Math.max(0, Math.min(1, p))})`;
      pct.textContent = p >= 0.0005 ? `${(p * 100).toFixed(p >= 0.1 ? 0 : 1)}%` : "";
    });
    this.probabilities.dataset.values = Array.from(result.probabilities.data).join(","); // every digit, exactly
    drawGrey(this.modelInput, result.input.shape, result.input.data, 1);
  }

  /** A drawing read by no network yet (a project not trained): the 28x28 input only. */
  showInput(input, note) {
    this.clear(note);
    drawGrey(this.modelInput, input.shape, input.data, 1);
  }
}

export class FeatureMapsView {
  /**
   * container: [data-testid=feature-maps]. The first conv block as a grid (its filters, the maps
   * after conv + ReLU, after pooling); each deeper block as a row of its maps after conv + ReLU,
   * so a learner sees edges (first layer) become parts (deeper layers).
   */
  constructor(container) {
    this.container = container;
    this.grid = document.createElement("div");
    this.grid.className = "fm-grid";
    this.deeper = document.createElement("div");
    this.deeper.className = "fm-deeper";
    container.replaceChildren(this.grid, this.deeper);
    this.cells = [];
    this.filters = null;
  }

  /** weights: the first conv layer's {shape [F, C, k, k], data}. */
  setFilters(weights) {
    this.filters = weights;
    this.#ensure(weights.shape[0]); // the grid shows before the first drawing
    this.#drawFilters();
  }

  clear() {
    for (const cell of this.cells) {
      clearCanvas(cell.relu);
      clearCanvas(cell.pool);
    }
    for (const canvas of this.deeper.querySelectorAll("canvas")) clearCanvas(canvas);
    this.container.dataset.shown = "false";
  }

  /** blocks: every conv block's maps, [{layer, activated: {shape [F, H, W], data}, pooled: {shape, data} or null}]. */
  show(blocks) {
    const [first, ...rest] = blocks;
    this.#ensure(first.activated.shape[0]);
    this.grid.dataset.layer = String(first.layer); // the conv layer of these maps, for pointing at a cell
    this.#name(first.what);
    const maps = { relu: first.activated, pool: first.pooled };
    for (const key of ["relu", "pool"]) {
      if (maps[key]) drawMaps(maps[key], this.cells.map((cell) => cell[key]));
    }
    this.#ensureDeeper(rest);
    rest.forEach((block, i) => drawMaps(block.activated, this.deeper.children[i].querySelectorAll("canvas")));
    this.container.dataset.shown = "true";
    this.container.dataset.blocks = String(blocks.length);
    this.container.dataset.version = String(Number(this.container.dataset.version ?? 0) + 1);
  }

  /** What the first block's maps are after ("conv + batch norm + ReLU"): in the grid's head and each map's name. */
  #name(what) {
    const head = this.grid.querySelectorAll(".fm-head")[1];
    if (!head || head.dataset.what === what) return;
    head.dataset.what = what;
    head.textContent = `after ${what}`;
    this.cells.forEach((cell, k) => cell.relu.setAttribute("aria-label", `map ${k + 1} of conv layer 1 after ${what}; arrow keys point at its cells`));
  }

  #ensure(count) {
    if (this.cells.length === count) return;
    const heads = ["filter", "after conv + ReLU", "after pooling"];
    this.cells = [];
    const items = [];
    for (const [row, head] of heads.entries()) {
      const label = document.createElement("span");
      label.className = "fm-head";
      label.textContent = head;
      items.push(label);
      for (let k = 0; k < count; k++) {
        const canvas = document.createElement("canvas");
        canvas.dataset.filter = String(k);
        canvas.dataset.kind = ["filter", "relu", "pool"][row];
        if (row > 0) pointable(canvas, k, `map ${k + 1} of conv layer 1 ${head}`);
        items.push(canvas);
        if (row === 0) this.cells.push({ filter: canvas });
        else this.cells[k][row === 1 ? "relu" : "pool"] = canvas;
      }
    }
    this.grid.style.setProperty("--fm-count", String(count));
    this.grid.replaceChildren(...items);
    this.#drawFilters();
  }

  /** One row of canvases per deeper block, labelled with what it is. */
  #ensureDeeper(blocks) {
    const rows = this.deeper.children;
    if (rows.length === blocks.length && blocks.every((b, i) => rows[i].dataset.shape === String(b.activated.shape)
      && rows[i].dataset.layer === String(b.layer) && rows[i].dataset.what === b.what)) return;
    this.deeper.replaceChildren(...blocks.map((block, i) => {
      const [count, h, w] = block.activated.shape;
      const row = document.createElement("div");
      row.className = "fm-block";
      row.dataset.layer = String(block.layer);
      row.dataset.shape = String(block.activated.shape);
      row.dataset.what = block.what;
      const label = document.createElement("span");
      label.className = "fm-head";
      label.textContent = `conv layer ${i + 2}, after ${block.what}: ${count} maps of ${h}×${w}`;
      const maps = document.createElement("div");
      maps.className = "fm-maps";
      for (let k = 0; k < count; k++) {
        const canvas = document.createElement("canvas");
        canvas.dataset.filter = String(k);
        canvas.dataset.kind = "deeper";
        pointable(canvas, k, `map ${k + 1} of conv layer ${i + 2} after ${block.what}`);
        maps.append(canvas);
      }
      row.append(label, maps);
      return row;
    }));
  }

  #drawFilters() {
    if (!this.filters || !this.cells.length) return;
    const [count, channels, kh, kw] = this.filters.shape;
    let maxAbs = 0;
    for (const v of this.filters.data) maxAbs = Math.max(maxAbs, Math.abs(v));
    for (let k = 0; k < Math.min(count, this.cells.length); k++) {
      const canvas = this.cells[k].filter;
      canvas.width = kw;
      canvas.height = kh;
      const ctx = canvas.getContext("2d");
      for (let r = 0; r < kh; r++) {
        for (let c = 0; c < kw; c++) {
          ctx.fillStyle = divergingColor(this.filters.data[k * channels * kh * kw + r * kw + c] / (maxAbs || 1));
          ctx.fillRect(c, r, 1, 1);
        }
      }
    }
  }
}

/** A map canvas one can point at with the keyboard: the first of its row is a tab stop, the arrow keys move on (inside.js). */
function pointable(canvas, k, name) {
  canvas.tabIndex = k === 0 ? 0 : -1;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `${name}; arrow keys point at its cells`);
}

/** maps {shape [F, H, W], data} into F canvases, on one scale for the layer: weak maps look weak. */
function drawMaps(maps, canvases) {
  const [f, h, w] = maps.shape;
  let max = 0;
  for (const v of maps.data) max = Math.max(max, v);
  for (let k = 0; k < Math.min(f, canvases.length); k++) {
    drawGrey(canvases[k], [h, w], maps.data.subarray(k * h * w, (k + 1) * h * w), max);
  }
}

export class EvaluationView {
  /**
   * confusion: [data-testid=confusion-matrix]; mistakes: [data-testid=mistakes] (the gallery);
   * title: the gallery's heading; back: shows the most confident mistakes again;
   * onPick(index) when a digit of the gallery is chosen; onCell(label, predicted) when a cell is.
   */
  constructor({ confusion, mistakes, summary, title, back }, onPick, onCell) {
    Object.assign(this, { confusion, mistakes, summary, title, back });
    this.analysis = null;
    this.mistakes.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-index]");
      if (!button) return;
      for (const b of this.mistakes.querySelectorAll("button[aria-pressed]")) b.removeAttribute("aria-pressed");
      button.setAttribute("aria-pressed", "true"); // the digit shown in the predictor
      onPick(Number(button.dataset.index));
    });
    this.confusion.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-predicted]");
      if (button) onCell(Number(button.dataset.true), Number(button.dataset.predicted));
    });
    this.back.addEventListener("click", () => this.#showMistakes());
  }

  clear(text) {
    this.analysis = null;
    this.summary.textContent = text;
    this.confusion.replaceChildren();
    this.confusion.dataset.total = "0";
    this.mistakes.replaceChildren();
    this.mistakes.dataset.count = "0";
    this.back.hidden = true;
  }

  /** analysis: {count, correct, wrong, confusion[10][10], mistakes[{index, label, predicted, confidence}],
   * mistake_images {shape [k, 28, 28], data}} */
  show(analysis) {
    const { confusion, count, correct, wrong } = analysis;
    this.analysis = analysis;
    this.summary.textContent =
      `${correct.toLocaleString("en")} of ${count.toLocaleString("en")} held-out digits right ` +
      `(${((100 * correct) / count).toFixed(1)}%), ${wrong.toLocaleString("en")} wrong.`;
    this.#confusion(confusion, count);
    this.#showMistakes();
  }

  /** cell: {label, predicted, count, digits [{index, confidence}], images {shape [k, 28, 28], data}}. */
  showCell({ label, predicted, count, digits, images }) {
    const what = label === predicted ? `${count} held-out ${label}s read right` : `${count} held-out ${label}s read as ${predicted}`;
    this.title.textContent = `${what}${digits.length < count ? `, the ${digits.length} most confident` : ""}`;
    this.#gallery(digits.map((d) => ({ ...d, label, predicted })), images);
    this.mistakes.dataset.cell = `${label},${predicted}`;
    this.back.hidden = false;
  }

  #showMistakes() {
    if (!this.analysis) return;
    this.title.textContent = "Mistakes, most confident first";
    this.#gallery(this.analysis.mistakes, this.analysis.mistake_images);
    this.mistakes.dataset.wrong = String(this.analysis.wrong);
    delete this.mistakes.dataset.cell;
    this.back.hidden = true;
  }

  #confusion(matrix, total) {
    const table = document.createElement("table");
    table.className = "cm";
    const caption = document.createElement("caption");
    caption.textContent = "rows: true digit · columns: predicted digit · choose a number to see those digits";
    const head = table.createTHead().insertRow();
    head.append(document.createElement("td")); // the corner: no header of its own
    for (const d of DIGITS) head.append(Object.assign(document.createElement("th"), { textContent: String(d), scope: "col" }));
    const body = table.createTBody();
    matrix.forEach((row, t) => {
      const tr = body.insertRow();
      tr.append(Object.assign(document.createElement("th"), { textContent: String(t), scope: "row" }));
      const rowTotal = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((n, p) => {
        const td = tr.insertCell();
        td.dataset.true = String(t);
        td.dataset.predicted = String(p);
        td.dataset.count = String(n);
        if (n) {
          const button = document.createElement("button");
          button.type = "button";
          button.textContent = String(n);
          button.dataset.true = String(t);
          button.dataset.predicted = String(p);
          button.setAttribute("aria-label", t === p ? `${n} held-out ${t}s read right` : `${n} held-out ${t}s read as ${p}`);
          td.append(button);
        }
        const share = n / rowTotal;
        if (t === p) td.className = "diag";
        else if (n) td.className = "off";
        // shade by the share of the true digit's row: correct green, confusions red (light enough for dark text)
        td.style.backgroundColor = t === p ? `rgba(5, 150, 105, ${0.15 + 0.6 * share})` : n ? `rgba(220, 38, 38, ${Math.min(0.6, 0.12 + 3 * share)})` : "";
        td.title = `${n} × true ${t} read as ${p}`;
      });
    });
    table.prepend(caption);
    this.confusion.replaceChildren(table);
    this.confusion.dataset.total = String(matrix.flat().reduce((a, b) => a + b, 0));
    this.confusion.dataset.expected = String(total);
  }

  /** digits: [{index, label, predicted, confidence}]; images: their 28x28 pictures. */
  #gallery(digits, images) {
    const items = digits.map((m, k) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "mistake";
      Object.assign(button.dataset, {
        index: String(m.index), true: String(m.label), predicted: String(m.predicted), confidence: m.confidence.toFixed(4),
      });
      const sure = `${(m.confidence * 100).toFixed(0)}%`;
      button.title = `Held-out digit #${m.index}: labelled ${m.label}, read as ${m.predicted} (${sure} sure). Click to inspect.`;
      const canvas = document.createElement("canvas");
      canvas.setAttribute("aria-hidden", "true");
      drawGrey(canvas, [28, 28], images.data.subarray(k * 784, (k + 1) * 784), 1);
      const caption = document.createElement("span");
      caption.textContent = `${m.label}→${m.predicted} ${sure}`;
      const spoken = document.createElement("span"); // the caption's arrow, in words
      spoken.className = "visually-hidden";
      spoken.textContent = `: held-out digit number ${m.index}, labelled ${m.label}, read as ${m.predicted}, ${sure} sure`;
      button.append(canvas, caption, spoken);
      return button;
    });
    this.mistakes.replaceChildren(...items);
    this.mistakes.dataset.count = String(items.length);
  }
}
