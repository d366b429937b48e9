// How the model does on the held-out digits: the confusion matrix and the most confident
// mistakes, refreshed whenever the weights change; a mistake opens in the predictor.
import { EvaluationView } from "./insight.js";

const MAX_MISTAKES = 40;
const UNTRAINED_TEXT = "Train the model (or load one) to see which held-out digits it gets right and which it confuses.";

export class Analysis {
  /** el: {confusion, mistakes, summary}; predictor: shows a picked mistake. */
  constructor({ client, state, predictor, el }) {
    Object.assign(this, { client, state });
    this.view = new EvaluationView(el, (index, button) => predictor.inspectHeldout(index, button));
    this.view.clear(UNTRAINED_TEXT);
    state.on("weights", () => this.refresh());
  }

  async refresh() {
    if (this.state.model.kind === "untrained") {
      this.view.clear(UNTRAINED_TEXT);
      return;
    }
    try {
      this.view.show(await this.client.request("analyse", { max_mistakes: MAX_MISTAKES }));
    } catch (error) {
      this.view.clear(`Could not evaluate: ${error.message}`);
    }
  }
}
