// Loss and accuracy charts (uPlot). Callers append data; render() redraws and is meant to be
// called at most once per animation frame.
import uPlot from "./vendor/uPlot.esm.js";

const SMOOTHING = 0.9; // exponential moving average weight, debiased like TensorBoard's
const HEIGHT = 190;

function widthOf(el) {
  return Math.max(240, Math.floor(el.clientWidth || 400));
}

function formatLoss(u, v) {
  return v == null ? "–" : v.toFixed(3);
}

/** Keep a uPlot chart as wide as its container. */
function followWidth(el, plot) {
  const observer = new ResizeObserver(() => {
    const width = widthOf(el);
    if (width !== plot.width) plot.setSize({ width, height: HEIGHT });
  });
  observer.observe(el);
}

export class LossChart {
  constructor(el) {
    this.el = el;
    this.x = [];
    this.raw = [];
    this.smooth = [];
    this.ema = 0;
    this.dirty = true;
    this.plot = new uPlot(
      {
        width: widthOf(el),
        height: HEIGHT,
        cursor: { drag: { x: false, y: false } },
        legend: { live: false }, // labels only; values would read "--" until hovered
        scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(0.5, Number.isFinite(max) ? max * 1.05 : 2.5)] } },
        axes: [
          { label: "batch", labelSize: 18, size: 34 },
          { label: "loss", labelSize: 18, size: 44, values: (u, splits) => splits.map((v) => v.toFixed(1)) },
        ],
        series: [
          { label: "batch" },
          { label: "each batch", stroke: "rgba(37, 99, 235, 0.28)", width: 1, value: formatLoss, points: { show: false } },
          { label: "smoothed", stroke: "#1d4ed8", width: 2.5, value: formatLoss, points: { show: false } },
        ],
      },
      [[], [], []],
      el,
    );
    followWidth(el, this.plot);
  }

  clear() {
    this.x = [];
    this.raw = [];
    this.smooth = [];
    this.ema = 0;
    this.dirty = true;
  }

  append(losses) {
    for (const value of losses) {
      const loss = Number.isFinite(value) ? value : null;
      this.raw.push(loss);
      this.x.push(this.x.length + 1);
      if (loss !== null) this.ema = SMOOTHING * this.ema + (1 - SMOOTHING) * loss;
      this.smooth.push(this.ema / (1 - SMOOTHING ** this.raw.length));
    }
    this.dirty = true;
  }

  /** Mean of the first / last n finite raw losses (used by data-* hooks). */
  meanOf(which, n = 10) {
    const finite = this.raw.filter((v) => v !== null);
    const part = which === "first" ? finite.slice(0, n) : finite.slice(-n);
    return part.length ? part.reduce((a, b) => a + b, 0) / part.length : null;
  }

  render() {
    if (!this.dirty) return;
    this.dirty = false;
    this.plot.setData([this.x, this.raw, this.smooth]);
    const first = this.meanOf("first");
    const last = this.meanOf("last");
    this.el.dataset.points = String(this.x.length);
    this.el.dataset.firstLoss = first === null ? "" : first.toFixed(5);
    this.el.dataset.lastLoss = last === null ? "" : last.toFixed(5);
  }
}

export class AccuracyChart {
  constructor(el) {
    this.el = el;
    this.epochs = [];
    this.train = [];
    this.heldout = [];
    this.dirty = true;
    const percent = (u, v) => (v == null ? "–" : `${v.toFixed(1)}%`);
    this.plot = new uPlot(
      {
        width: widthOf(el),
        height: HEIGHT,
        cursor: { drag: { x: false, y: false } },
        legend: { live: false },
        scales: {
          x: { time: false, range: (u, min, max) => [0.5, Math.max(2, Number.isFinite(max) ? max : 1) + 0.5] },
          y: {
            range: (u, min) => {
              const low = Number.isFinite(min) ? Math.min(90, Math.floor(min / 10) * 10) : 80;
              return [Math.max(0, low), 100];
            },
          },
        },
        axes: [
          { label: "epoch", labelSize: 18, size: 34, incrs: [1, 2, 5, 10, 20, 50], values: (u, s) => s.map((v) => String(v)) },
          { label: "accuracy", labelSize: 18, size: 44, values: (u, splits) => splits.map((v) => `${v}%`) },
        ],
        series: [
          { label: "epoch" },
          { label: "training", stroke: "#d97706", width: 2, value: percent, points: { show: true, size: 7, fill: "#d97706" } },
          { label: "held-out", stroke: "#059669", width: 2.5, value: percent, points: { show: true, size: 7, fill: "#059669" } },
        ],
      },
      [[], [], []],
      el,
    );
    followWidth(el, this.plot);
  }

  clear() {
    this.epochs = [];
    this.train = [];
    this.heldout = [];
    this.dirty = true;
  }

  /** result: {epoch, accuracy, val_accuracy} with accuracies in [0, 1]. */
  append(result) {
    const pct = (v) => (Number.isFinite(v) ? v * 100 : null);
    this.epochs.push(this.epochs.length + 1);
    this.train.push(pct(result.accuracy));
    this.heldout.push(pct(result.val_accuracy));
    this.dirty = true;
  }

  render() {
    if (!this.dirty) return;
    this.dirty = false;
    this.plot.setData([this.epochs, this.train, this.heldout]);
    this.el.dataset.points = String(this.epochs.length);
    const last = this.heldout[this.heldout.length - 1];
    this.el.dataset.lastValAccuracy = last == null ? "" : String(last / 100);
  }
}
