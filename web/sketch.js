// The drawing canvas: Pointer Events (mouse, touch, pen), a round soft brush, Undo and Clear.
// It only records strokes and reports changes; what the drawing means is the worker's business.

const BRUSH_FRACTION = 0.065; // brush diameter as a fraction of the canvas width (18 px on 280)
const SOFTNESS = 0.1; // blur as a fraction of the brush width: soft edges like a pen on paper
const INK = "#111827";

export class Sketch {
  /** canvas: the drawing surface; onChange({ended}) after every change (ended: a stroke finished or Undo/Clear). */
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.onChange = onChange;
    this.strokes = []; // each an array of [x, y] in canvas pixels
    this.current = null;
    this.pointerId = null;
    this.box = [Infinity, Infinity, -Infinity, -Infinity]; // x0, y0, x1, y1 of every stroke point
    canvas.addEventListener("pointerdown", (e) => this.#down(e));
    canvas.addEventListener("pointermove", (e) => this.#move(e));
    canvas.addEventListener("pointerup", (e) => this.#up(e));
    canvas.addEventListener("pointercancel", (e) => this.#up(e));
    canvas.addEventListener("lostpointercapture", (e) => this.#up(e));
    // no page scroll or zoom while drawing on touch screens (touch-action: none in CSS too)
    canvas.addEventListener("touchstart", (e) => e.preventDefault(), { passive: false });
    this.#redraw();
  }

  get isEmpty() {
    return this.strokes.length === 0 && !this.current;
  }

  get strokeCount() {
    return this.strokes.length;
  }

  /** Brush diameter in canvas pixels. */
  get brushWidth() {
    return this.canvas.width * BRUSH_FRACTION;
  }

  /** Larger side of the box around every stroke point (the pen's centre line): 0 for a single dot. */
  get extent() {
    const [x0, y0, x1, y1] = this.box;
    return x1 < x0 ? 0 : Math.max(x1 - x0, y1 - y0);
  }

  #grow([x, y]) {
    const box = this.box;
    box[0] = Math.min(box[0], x);
    box[1] = Math.min(box[1], y);
    box[2] = Math.max(box[2], x);
    box[3] = Math.max(box[3], y);
  }

  #measure() {
    this.box = [Infinity, Infinity, -Infinity, -Infinity];
    for (const stroke of this.strokes) for (const point of stroke) this.#grow(point);
  }

  clear() {
    this.strokes = [];
    this.current = null;
    this.#measure();
    this.#redraw();
    this.onChange({ ended: true });
  }

  /** The finished strokes, to put back later with restore(). */
  snapshot() {
    return this.strokes.map((stroke) => stroke.map(([x, y]) => [x, y]));
  }

  /** Replace the drawing by strokes from snapshot(). */
  restore(strokes) {
    this.strokes = strokes.map((stroke) => stroke.map(([x, y]) => [x, y]));
    this.current = null;
    this.#measure();
    this.#redraw();
    this.onChange({ ended: true });
  }

  undo() {
    if (!this.strokes.length) return;
    this.strokes.pop();
    this.#measure();
    this.#redraw();
    this.onChange({ ended: true });
  }

  /** Ink levels (0 = paper, 255 = full ink) of every canvas pixel, row by row. */
  ink() {
    const { width, height } = this.canvas;
    const rgba = this.ctx.getImageData(0, 0, width, height).data;
    const pixels = new Uint8Array(width * height);
    for (let i = 0, j = 3; i < pixels.length; i++, j += 4) pixels[i] = rgba[j];
    return { pixels, width, height };
  }

  #point(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) / rect.width) * this.canvas.width,
      ((event.clientY - rect.top) / rect.height) * this.canvas.height,
    ];
  }

  #down(event) {
    if (this.pointerId !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    this.pointerId = event.pointerId;
    this.canvas.setPointerCapture(event.pointerId);
    this.current = [this.#point(event)];
    this.#grow(this.current[0]);
    this.#drawSegment(this.current, 0);
    this.onChange({ ended: false });
  }

  #move(event) {
    if (event.pointerId !== this.pointerId || !this.current) return;
    event.preventDefault();
    const events = event.getCoalescedEvents?.() ?? [event];
    for (const e of events.length ? events : [event]) {
      this.current.push(this.#point(e));
      this.#grow(this.current[this.current.length - 1]);
      this.#drawSegment(this.current, this.current.length - 2);
    }
    this.onChange({ ended: false });
  }

  #up(event) {
    if (event.pointerId !== this.pointerId) return;
    this.pointerId = null;
    if (this.current) {
      this.strokes.push(this.current);
      this.current = null;
      this.onChange({ ended: true });
    }
  }

  #brush() {
    const width = this.canvas.width * BRUSH_FRACTION;
    const ctx = this.ctx;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = width;
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
    ctx.shadowColor = INK;
    ctx.shadowBlur = width * SOFTNESS;
    return width;
  }

  /** Draw the segment from points[i] to points[i + 1] (a dot when there is only points[i]). */
  #drawSegment(points, i) {
    const width = this.#brush();
    const ctx = this.ctx;
    const [x0, y0] = points[Math.max(0, i)];
    if (points.length === 1) {
      ctx.beginPath();
      ctx.arc(x0, y0, width / 2, 0, Math.PI * 2);
      ctx.fill();
      return;
    }
    const [x1, y1] = points[i + 1];
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }

  #redraw() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    for (const stroke of this.strokes) {
      if (stroke.length === 1) this.#drawSegment(stroke, 0);
      else {
        // one path per stroke so the soft edge is even along it
        this.#brush();
        this.ctx.beginPath();
        this.ctx.moveTo(stroke[0][0], stroke[0][1]);
        for (const [x, y] of stroke.slice(1)) this.ctx.lineTo(x, y);
        this.ctx.stroke();
      }
    }
  }
}
