// Draw a digit and see what the network reads: the canvas, the prediction requests (latest
// drawing only, at most one in flight), the probabilities, the 28x28 input and the feature maps.
import { FeatureMapsView, PredictionView } from "./insight.js";
import { Sketch } from "./sketch.js";

const PREDICT_THROTTLE_MS = 80; // while a stroke is being drawn

export class Predictor {
  /**
   * el: {canvas, undo, clear, prediction, note, probabilities, modelInput, featureMaps, heldoutLabel, heldoutNext};
   * the rest as for TrainingPanel.
   */
  constructor({ client, state, frame, probe, messages, announcer, el }) {
    Object.assign(this, { client, state, frame, probe, messages, announcer, el });
    this.view = new PredictionView({ prediction: el.prediction, note: el.note, probabilities: el.probabilities, modelInput: el.modelInput });
    this.featureMaps = new FeatureMapsView(el.featureMaps);
    this.shown = null; // {idle: note} or {result, source, sentAt, version, drawnAt}
    this.inspecting = null; // index of the held-out digit shown instead of the drawing
    // every change of the drawing gets a version; an answer says which version it read (data-answered-version)
    this.drawing = { version: 0, changedAt: 0, ended: true }; // ended: the last change ended a stroke
    this.announced = null; // the answer last told to screen readers
    this.heldoutAfter = -1; // the held-out digit shown last by "Show a held-out digit"
    // at most one request in flight; a newer drawing waits for it and replaces any older waiting one
    this.seq = 0;
    this.inFlight = false;
    this.pending = false;
    this.lastSentAt = -Infinity;
    this.timer = null;
    this.sketch = new Sketch(el.canvas, ({ ended }) => this.#drawn(ended));
    el.clear.addEventListener("click", () => this.sketch.clear());
    el.undo.addEventListener("click", () => this.sketch.undo());
    el.heldoutNext.addEventListener("click", () => this.#nextHeldout());
    el.heldoutLabel.addEventListener("change", () => {
      this.heldoutAfter = -1;
    });
    client.on("filters", ({ conv_layers }) => {
      if (conv_layers.length) this.featureMaps.setFilters(conv_layers[0].weights);
    });
    state.on("phase", () => {
      if (state.phase === "loading" || state.phase === "error") this.#showIdle();
    });
    state.on("weights", () => this.refresh());
    state.on("project", () => { // another project open (or the digits): its classes, its network reads the drawing
      if (this.shownProject !== (state.project?.id ?? null)) {
        this.view.setClasses(state.classNames);
        this.shownProject = state.project?.id ?? null;
        this.refresh();
      }
    });
    this.shownProject = null; // the project whose classes the bars show (null: the digits)
    this.#showIdle();
  }

  /** Clear the drawing (as the Clear button does). */
  clearDrawing() {
    this.sketch.clear();
  }

  /**
   * Take the drawing off the canvas, so the next one can begin at once -> {pixels, width, height (as predict
   * sends them), strokes (for putBack)}, or null when nothing readable is drawn.
   */
  takeDrawing() {
    if (this.sketch.isEmpty || this.#tooLittleInk()) return null;
    const taken = { ...this.sketch.ink(), strokes: this.sketch.snapshot() };
    this.sketch.clear();
    return taken;
  }

  /** Put a drawing taken by takeDrawing back on the canvas, if nothing has been drawn since -> whether it was. */
  putBack(taken) {
    if (!this.sketch.isEmpty || this.inspecting !== null) return false;
    this.sketch.restore(taken.strokes);
    return true;
  }

  /** The weights changed (a run ended, a model was loaded, restored or reset): read again what is shown. */
  refresh() {
    if (this.inspecting !== null) this.inspectHeldout(this.inspecting);
    else if (!this.sketch.isEmpty) this.#request();
    else this.#showIdle();
  }

  /** Show held-out digit `index` instead of the drawing (from the mistakes gallery or the confusion matrix). */
  async inspectHeldout(index) {
    await this.#askHeldout("inspect_heldout", { index });
  }

  /** "Show a held-out digit": the next one of the chosen digit, read without drawing anything. */
  async #nextHeldout() {
    const label = this.el.heldoutLabel.value === "" ? null : Number(this.el.heldoutLabel.value);
    const reply = await this.#askHeldout("next_heldout", { label, after: this.heldoutAfter });
    if (reply) this.heldoutAfter = reply.index;
  }

  async #askHeldout(method, args) {
    if (!this.state.canRead) return null;
    this.sketch.clear();
    const seq = ++this.seq;
    const sentAt = performance.now();
    try {
      const reply = await this.client.call(method, args);
      this.inspecting = reply.index;
      if (seq === this.seq) this.#show({ result: reply, source: "heldout", sentAt });
      return reply;
    } catch (error) {
      this.messages.show(error.message, "error");
      return null;
    }
  }

  #drawn(ended) {
    this.inspecting = null;
    this.drawing.version += 1;
    this.drawing.changedAt = performance.now();
    this.drawing.ended = ended;
    this.el.canvas.dataset.version = String(this.drawing.version);
    if (this.sketch.isEmpty) {
      this.seq += 1; // drop any answer still on its way
      this.#showIdle();
      return;
    }
    if (ended) {
      clearTimeout(this.timer); // the stroke's end asks for itself; a throttled request would repeat it
      this.timer = null;
      this.#request();
    } else {
      this.#throttled();
    }
  }

  /** A tap or a dot (all strokes within one brush width) is no digit; reading it would only guess. */
  #tooLittleInk() {
    return this.sketch.extent < this.sketch.brushWidth;
  }

  #showIdle() {
    const project = this.state.project;
    let note = project ? `Draw a ${project.names.slice(0, -1).join(", ")} or a ${project.names.at(-1)} in the box.` : "Draw a digit in the box.";
    if (!this.sketch.isEmpty && this.#tooLittleInk()) note = "Too little ink to read: draw a digit (a dot is not enough).";
    if (this.state.phase === "loading") note = "Python is still loading…";
    else if (this.state.phase === "error") note = "The Python worker is not running.";
    else if (!project && this.state.model.kind === "untrained") {
      note = this.sketch.isEmpty
        ? "The model is untrained: train it (or load a model) and then draw a digit."
        : "The model is untrained, so it would only guess. Train it (or load a model) first.";
    }
    this.#show({ idle: note });
  }

  #throttled() {
    if (this.#tooLittleInk()) return; // a stroke that has only just begun: wait for more ink
    const wait = PREDICT_THROTTLE_MS - (performance.now() - this.lastSentAt);
    if (wait <= 0) this.#request();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.sketch.isEmpty && this.inspecting === null) this.#request();
      }, wait);
    }
  }

  #request() {
    if (!this.state.canRead || this.sketch.isEmpty || this.#tooLittleInk()) {
      this.seq += 1; // an answer still on its way is for an older drawing
      this.#showIdle();
      return;
    }
    this.probe.count("predictions.requested");
    this.seq += 1;
    if (this.inFlight) {
      this.pending = true; // sent with the then-current drawing when the answer in flight arrives
      return;
    }
    this.#send();
  }

  async #send() {
    const seq = this.seq;
    const { version, changedAt: drawnAt } = this.drawing;
    const { pixels, width, height } = this.sketch.ink();
    this.inFlight = true;
    this.pending = false;
    this.probe.count("predictions.sent");
    this.lastSentAt = performance.now();
    const sentAt = performance.now();
    try {
      const { result: reply, ms } = await this.client.request("predict", { data: pixels, width, height });
      this.probe.count("predictions.answered");
      this.probe.count("predictions.worker_ms", ms ?? 0); // the worker's time for this answer
      if (seq === this.seq && this.inspecting === null) this.#show({ result: reply, source: "drawing", sentAt, version, drawnAt });
      else this.probe.count("predictions.stale");
    } catch (error) {
      if (seq === this.seq) this.#show({ idle: `Could not read the drawing: ${error.message}` });
    } finally {
      this.inFlight = false;
      if (this.pending && this.state.canRead && !this.sketch.isEmpty && this.inspecting === null) this.#send();
    }
  }

  #show(shown) {
    this.shown = shown;
    this.frame.request("prediction", () => this.#render());
  }

  #render() {
    const shown = this.shown;
    const el = this.el.prediction;
    if (shown.result?.untrained) { // a project not trained yet: its drawings are added, not read
      this.view.showInput(shown.result.input, "Not trained yet: add drawings of each class with It's a …, then train.");
      this.featureMaps.clear();
      el.dataset.source = shown.source;
      el.dataset.index = "";
      if (this.state.inspection) this.state.setInspected(null);
      this.state.setReading({ source: shown.source, prediction: null });
      if (shown.source === "drawing") el.dataset.answeredVersion = String(shown.version);
      return;
    }
    if (shown.idle !== undefined || shown.result.empty) {
      this.view.clear(shown.idle ?? "Nothing drawn yet (or too little ink): draw a digit.");
      this.featureMaps.clear();
      el.dataset.source = "";
      el.dataset.index = "";
      if (this.state.inspection) this.state.setInspected(null);
      if (this.state.reading) this.state.setReading(null);
      return;
    }
    const result = shown.result;
    this.state.setReading({ source: shown.source, prediction: result.prediction });
    let note = describeConfidence(result);
    if (shown.source === "heldout") note = `Held-out digit #${result.index}, labelled ${result.label}. ${note}`;
    this.view.show(result, note);
    if (result.blocks.length) this.featureMaps.show(result.blocks);
    else this.featureMaps.clear();
    el.dataset.source = shown.source;
    el.dataset.index = shown.source === "heldout" ? String(result.index) : "";
    this.probe.set("prediction_latency_ms", Math.round(performance.now() - shown.sentAt));
    const digit = shown.source === "heldout" ? result.index : "drawing";
    this.state.setInspected({ result, source: shown.source, digit, sentAt: shown.sentAt });
    if (shown.source === "drawing") {
      el.dataset.answeredVersion = String(shown.version); // the drawing (data-version of the canvas) this answer read
      this.probe.set("drawing_latency_ms", Math.round(performance.now() - shown.drawnAt)); // its last change to bars
    }
    // screen readers hear the answer to a finished drawing or a chosen digit, not every answer while drawing
    const final = shown.source === "heldout" || (this.drawing.ended && shown.version === this.drawing.version);
    if (final && this.announced !== shown) {
      this.announced = shown;
      const digit = shown.source === "heldout" ? `Held-out digit number ${result.index}, labelled ${result.label}: ` : "";
      this.announcer.announce(`${digit}The network reads ${result.names?.[result.prediction] ?? result.prediction}. ${describeConfidence(result)}`);
    }
  }
}

function describeConfidence(result) {
  const probs = Array.from(result.probabilities.data);
  const name = (d) => result.names?.[d] ?? String(d);
  const best = probs[result.prediction];
  const ranked = probs.map((p, d) => [p, d]).sort((a, b) => b[0] - a[0]);
  if (best >= 0.9) return `${(best * 100).toFixed(0)}% sure.`;
  if (best >= 0.5) return `${(best * 100).toFixed(0)}% sure; next best ${name(ranked[1][1])} (${(ranked[1][0] * 100).toFixed(0)}%).`;
  return `Not sure: ${name(ranked[0][1])} or ${name(ranked[1][1])}?`;
}
