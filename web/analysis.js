// How the model does on the held-out digits: the confusion matrix and the most confident
// mistakes, refreshed whenever the weights change; a mistake opens in the predictor.
import { EvaluationView } from "./insight.js";

const MAX_MISTAKES = 40;
const UNTRAINED_TEXT = "Train the model (or load one) to see which held-out digits it gets right and which it confuses.";

export class Analysis {
  /** el: {confusion, mistakes, summary, title, back}; predictor: shows a picked digit. */
  constructor({ client, state, messages, probe, predictor, el }) {
    Object.assign(this, { client, state, messages, probe, predictor });
    this.view = new EvaluationView(el, (index, button) => predictor.inspectHeldout(index, button),
      (label, predicted) => this.#showCell(label, predicted));
    this.view.clear(UNTRAINED_TEXT);
    state.on("weights", () => this.refresh());
  }

  /** The held-out digits of one cell of the confusion matrix, the first one inspected above. */
  async #showCell(label, predicted) {
    try {
      const cell = await this.client.request("heldout-cell", { label, predicted, max_digits: MAX_MISTAKES });
      this.view.showCell(cell);
      if (cell.digits.length) this.predictor.inspectHeldout(cell.digits[0].index);
    } catch (error) {
      this.messages.show(error.message, "error");
    }
  }

  async refresh() {
    if (this.state.model.kind === "untrained") {
      this.view.clear(UNTRAINED_TEXT);
      return;
    }
    try {
      this.view.show(await this.client.request("analyse", { max_mistakes: MAX_MISTAKES }));
      this.probe.count("analyses");
    } catch (error) {
      this.view.clear(`Could not evaluate: ${error.message}`);
    }
  }
}
