// Draws the first layer's filters as enlarged heatmaps on a diverging colour scale
// (blue negative, white zero, red positive), symmetric around 0 and shared by all filters
// so their strengths compare. Drawing happens in render(), at most once per animation frame.

const CANVAS_SIZE = 72; // px per filter
// RdBu-like stops from -1 to +1
const STOPS = [
  [-1.0, [33, 102, 172]],
  [-0.5, [103, 169, 207]],
  [0.0, [247, 247, 247]],
  [0.5, [239, 138, 98]],
  [1.0, [178, 24, 43]],
];

/** t in [-1, 1] -> "rgb(...)" on the diverging scale. */
export function divergingColor(t) {
  const x = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  for (let i = 1; i < STOPS.length; i++) {
    const [x1, c1] = STOPS[i];
    if (x <= x1) {
      const [x0, c0] = STOPS[i - 1];
      const f = (x - x0) / (x1 - x0);
      const c = c0.map((v, k) => Math.round(v + f * (c1[k] - v)));
      return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
    }
  }
  return "rgb(178, 24, 43)";
}

export class FiltersView {
  /** container gets one canvas per filter; legend: {bar: canvas, min: el, max: el} (optional). */
  constructor(container, legend = null) {
    this.container = container;
    this.legend = legend;
    this.pending = null;
    this.version = 0;
    if (legend?.bar) this.#drawLegendBar(legend.bar);
  }

  /** shape: [filters, channels, kh, kw]; data: Float32Array in that order. Drawn on the next render(). */
  set(shape, data) {
    this.pending = { shape, data };
  }

  render() {
    if (!this.pending) return;
    const { shape, data } = this.pending;
    this.pending = null;
    const [count, channels, kh, kw] = shape;
    let maxAbs = 0;
    for (const v of data) if (Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
    const scale = maxAbs > 0 ? 1 / maxAbs : 1;
    const canvases = this.#canvases(count);
    const cell = CANVAS_SIZE / Math.max(kh, kw);
    for (let f = 0; f < count; f++) {
      const ctx = canvases[f].getContext("2d");
      const base = f * channels * kh * kw; // channel 0: the page's models read grey digits
      for (let r = 0; r < kh; r++) {
        for (let c = 0; c < kw; c++) {
          ctx.fillStyle = divergingColor(data[base + r * kw + c] * scale);
          ctx.fillRect(Math.round(c * cell), Math.round(r * cell), Math.ceil(cell), Math.ceil(cell));
        }
      }
    }
    this.version += 1;
    this.container.dataset.version = String(this.version);
    this.container.dataset.maxAbs = maxAbs.toPrecision(4);
    if (this.legend) {
      this.legend.min.textContent = `−${maxAbs.toFixed(2)}`;
      this.legend.max.textContent = `+${maxAbs.toFixed(2)}`;
    }
  }

  #canvases(count) {
    const existing = this.container.querySelectorAll("canvas");
    if (existing.length === count) return existing;
    this.container.replaceChildren();
    for (let f = 0; f < count; f++) {
      const canvas = document.createElement("canvas");
      canvas.width = CANVAS_SIZE;
      canvas.height = CANVAS_SIZE;
      canvas.dataset.filter = String(f);
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `filter ${f + 1}`);
      canvas.title = `filter ${f + 1}`;
      this.container.append(canvas);
    }
    return this.container.querySelectorAll("canvas");
  }

  #drawLegendBar(bar) {
    const ctx = bar.getContext("2d");
    for (let x = 0; x < bar.width; x++) {
      ctx.fillStyle = divergingColor((x / (bar.width - 1)) * 2 - 1);
      ctx.fillRect(x, 0, 1, bar.height);
    }
  }
}
