// Draws the first layer's filters as enlarged heatmaps on a diverging colour scale
// (blue negative, white zero, red positive), symmetric around 0 and shared by all filters
// so their strengths compare, and each deeper conv layer's filters as one small grid.
// Drawing happens in render(), at most once per animation frame.

const CANVAS_SIZE = 72; // px per filter
// RdBu-like stops from -1 to +1
const STOPS = [
  [-1.0, [33, 102, 172]],
  [-0.5, [103, 169, 207]],
  [0.0, [247, 247, 247]],
  [0.5, [239, 138, 98]],
  [1.0, [178, 24, 43]],
];

/** t in [-1, 1] -> [r, g, b] on the diverging scale. */
export function divergingRgb(t) {
  const x = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  for (let i = 1; i < STOPS.length; i++) {
    const [x1, c1] = STOPS[i];
    if (x <= x1) {
      const [x0, c0] = STOPS[i - 1];
      const f = (x - x0) / (x1 - x0);
      return c0.map((v, k) => Math.round(v + f * (c1[k] - v)));
    }
  }
  return STOPS[STOPS.length - 1][1];
}

/** t in [-1, 1] -> "rgb(...)" on the diverging scale. */
export function divergingColor(t) {
  const [r, g, b] = divergingRgb(t);
  return `rgb(${r}, ${g}, ${b})`;
}

/** (F, C, k, k) weights into one canvas, a column per filter and a row per input map, ±scale at the ends. */
export function drawFilters(canvas, shape, data, scale) {
  const [count, channels, kh, kw] = shape;
  canvas.width = count * (kw + 1) - 1;
  canvas.height = channels * (kh + 1) - 1;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(canvas.width, canvas.height);
  image.data.fill(255);
  const s = scale > 0 ? 1 / scale : 0;
  for (let f = 0; f < count; f++) {
    for (let c = 0; c < channels; c++) {
      for (let r = 0; r < kh; r++) {
        for (let q = 0; q < kw; q++) {
          const rgb = divergingRgb(data[((f * channels + c) * kh + r) * kw + q] * s);
          image.data.set([...rgb, 255], ((c * (kh + 1) + r) * canvas.width + f * (kw + 1) + q) * 4);
        }
      }
    }
  }
  ctx.putImageData(image, 0, 0);
}

export class FiltersView {
  /**
   * container gets one canvas per filter of the first conv layer; deeper: an element that gets one
   * small grid per deeper conv layer (a column per filter, a row per input channel);
   * legend: {bar: canvas, min: el, max: el} (optional); caption: the figure's title element.
   */
  constructor(container, legend = null, deeper = null, caption = null) {
    this.container = container;
    this.legend = legend;
    this.deeper = deeper;
    this.caption = caption;
    this.pending = null;
    this.version = 0;
    if (legend?.bar) this.#drawLegendBar(legend.bar);
  }

  /** conv_layers: [{layer, weights: {shape [F, C, k, k], data}}] of every conv layer. Drawn on the next render(). */
  set(convLayers) {
    this.pending = convLayers;
  }

  render() {
    if (!this.pending) return;
    const [first, ...rest] = this.pending;
    this.pending = null;
    if (!first) return;
    const { shape, data } = first.weights;
    const [count, channels, kh, kw] = shape;
    const maxAbs = largest(data);
    const scale = maxAbs > 0 ? 1 / maxAbs : 1;
    const canvases = this.#canvases(count);
    const cell = CANVAS_SIZE / Math.max(kh, kw);
    for (let f = 0; f < count; f++) {
      const ctx = canvases[f].getContext("2d");
      const base = f * channels * kh * kw; // channel 0: the page's digits are grey
      for (let r = 0; r < kh; r++) {
        for (let c = 0; c < kw; c++) {
          ctx.fillStyle = divergingColor(data[base + r * kw + c] * scale);
          ctx.fillRect(Math.round(c * cell), Math.round(r * cell), Math.ceil(cell), Math.ceil(cell));
        }
      }
    }
    if (this.caption) {
      this.caption.textContent = `The ${count} learned filters of the first layer`;
    }
    if (this.deeper) this.#renderDeeper(rest);
    this.version += 1;
    this.container.dataset.version = String(this.version);
    this.container.dataset.maxAbs = maxAbs.toPrecision(4);
    if (this.legend) {
      this.legend.min.textContent = `−${maxAbs.toFixed(2)}`;
      this.legend.max.textContent = `+${maxAbs.toFixed(2)}`;
    }
  }

  /** Each deeper conv layer as one canvas: a column of kernels per filter, one kernel per input channel. */
  #renderDeeper(layers) {
    const figures = this.deeper.querySelectorAll("figure");
    if (figures.length !== layers.length || [...figures].some((f, i) => f.dataset.shape !== String(layers[i].weights.shape))) {
      this.deeper.replaceChildren(...layers.map(({ layer, weights }, i) => {
        const [count, channels, k] = weights.shape;
        const figure = document.createElement("figure");
        figure.className = "deeper-filters";
        figure.dataset.layer = String(layer);
        figure.dataset.shape = String(weights.shape);
        const caption = document.createElement("figcaption");
        caption.textContent = `Conv layer ${i + 2}: ${count} filters, each ${k}×${k} over the ${channels} maps of the layer before`;
        const hint = document.createElement("span");
        hint.className = "hint";
        hint.textContent = " a column per filter, a row per map it reads";
        caption.append(hint);
        const canvas = document.createElement("canvas");
        canvas.width = count * (k + 1) - 1;
        canvas.height = channels * (k + 1) - 1;
        canvas.style.width = `${3 * canvas.width}px`; // 3 px per weight, pixelated
        canvas.setAttribute("role", "img");
        canvas.setAttribute("aria-label", `the ${count} filters of conv layer ${i + 2}, each over ${channels} maps`);
        figure.append(caption, canvas);
        return figure;
      }));
    }
    this.deeper.querySelectorAll("canvas").forEach((canvas, i) => {
      const { shape, data } = layers[i].weights;
      drawFilters(canvas, shape, data, largest(data));
    });
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

/** The largest absolute finite value of data (0 for none). */
export function largest(data) {
  let maxAbs = 0;
  for (const v of data) if (Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
  return maxAbs;
}
