// How the model does on the held-out digits: the confusion matrix and the most confident
// mistakes, refreshed whenever the weights change; a mistake opens in the predictor.
import { EvaluationView } from "./insight.js";

const MAX_MISTAKES = 40;
const STEP_PAUSE_MS = 400; // after a tried step, the analysis waits this long for the next one
const UNTRAINED_TEXT = "Train the model (or load one) to see which held-out digits it gets right and which it confuses.";

export class Analysis {
  /** el: {confusion, mistakes, summary, title, back}; predictor: shows a picked digit. */
  constructor({ client, state, messages, probe, predictor, el }) {
    Object.assign(this, { client, state, messages, probe, predictor });
    this.refreshing = false; // an analysis is in flight
    this.again = false; // the weights changed meanwhile: analyse once more when it is back
    this.timer = null;
    this.view = new EvaluationView(el, (index) => predictor.inspectHeldout(index),
      (label, predicted) => this.#showCell(label, predicted));
    this.view.clear(UNTRAINED_TEXT);
    state.on("weights", (reason) => {
      clearTimeout(this.timer);
      // a tried step: analyse once the learner pauses, so "Step again" does not wait behind an analysis
      if (reason === "step") this.timer = setTimeout(() => this.refresh(), STEP_PAUSE_MS);
      else this.refresh();
    });
  }

  /** The held-out digits of one cell of the confusion matrix, the first one inspected above. */
  async #showCell(label, predicted) {
    try {
      const cell = await this.client.call("heldout_cell", { label, predicted, max_digits: MAX_MISTAKES });
      this.view.showCell(cell);
      if (cell.digits.length) this.predictor.inspectHeldout(cell.digits[0].index);
    } catch (error) {
      this.messages.show(error.message, "error");
    }
  }

  /** Analyse the current weights; changes while one is in flight (Step, Step again…) get one more, not one each. */
  async refresh() {
    if (this.refreshing) {
      this.again = true;
      return;
    }
    if (this.state.model.kind === "untrained") {
      this.view.clear(UNTRAINED_TEXT);
      return;
    }
    this.refreshing = true;
    try {
      this.view.show(await this.client.call("analyse", { max_mistakes: MAX_MISTAKES }));
      this.probe.count("analyses");
    } catch (error) {
      this.view.clear(`Could not evaluate: ${error.message}`);
    } finally {
      this.refreshing = false;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    }
  }
}
