// Teach it your hand: a guided round once a trained model exists. The page asks for each digit once
// ("Draw a 3"); each drawing joins your digits as "It's a ..." adds it (yourdigits.js), and after the
// tenth the network is fine-tuned on your digits as Fine-tune does. The round ends with how well the
// network read your drawings before and after, measured as Fine-tune measures it: after, each drawing is
// read by a network that was not trained on it. A thin flow over YourDigits: it adds and fine-tunes
// nothing of its own.
import { fmtInt, fmtPct } from "./format.js";

const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

export class GuidedTeach {
  /**
   * yourDigits: the YourDigits part (teach, settled, fineTune, blocker); runs: the RunControl (Stop);
   * el: {box, start, invite, inviteText, round, prompt, ask, digit, count, tuning, marks, progress, add, skip, stop, note,
   * result};
   * the rest as for TrainingPanel.
   */
  constructor({ client, state, frame, status, announcer, yourDigits, runs, el }) {
    Object.assign(this, { client, state, frame, status, announcer, yourDigits, runs, el });
    this.step = ""; // "" (no round), "drawing", "fine-tuning", "done", "stopped"
    this.index = 0; // the digit asked for, while drawing
    this.marks = []; // per digit: "" (to come), "taken", "added", "failed", "skipped"
    this.added = []; // the promises of the round's adds
    this.result = null; // the fine-tune's result, once done

    el.start.addEventListener("click", () => this.start());
    el.add.addEventListener("click", () => this.yourDigits.teach(DIGITS[this.index]));
    el.skip.addEventListener("click", () => this.#next("skipped"));
    el.stop.addEventListener("click", () => this.#stop());
    state.on("taught", ({ digit, added, project }) => {
      if (project === null) this.#taught(digit, added);
    });
    client.on("progress", (p) => {
      if (p.run === "fine_tune" && this.step === "fine-tuning") {
        this.el.progress.max = Math.max(1, p.total_steps);
        this.el.progress.value = p.step;
      }
    });
    client.on("done", (d) => {
      if (d.run === "fine_tune" && this.step === "fine-tuning") this.#fineTuned(d);
    });
    state.on("model", () => {
      // a round needs a trained network to fine-tune: an untrained one (Reset, a new network) ends it
      if (this.state.model.kind === "untrained" && this.step !== "fine-tuning") this.#end("");
      this.#render();
    });
    state.on("project", () => { // the round is the digits': a project open ends it
      if (this.state.project && this.step === "drawing") this.#end("stopped", "Stopped: a project of your own classes is open. Your digits drawn so far are kept.");
      this.#render();
    });
    for (const event of ["phase", "busy", "reading"]) state.on(event, () => this.#render());
    this.#render();
  }

  /** Start a round: ask for a 0 first. */
  start() {
    if (this.#startBlocker()) return;
    Object.assign(this, { step: "drawing", index: 0, marks: DIGITS.map(() => ""), added: [], result: null });
    this.#render();
    this.el.box.scrollIntoView({ block: "start", behavior: "smooth" });
    this.#ask();
  }

  #startBlocker() {
    if (this.state.phase !== "ready") return this.state.phase === "training" ? "Wait for the run to end." : "Python is still loading.";
    if (this.state.model.kind === "untrained") return "Train the model (or load one) first.";
    if (this.state.project) return "Choose Digits 0–9 above first.";
    return "";
  }

  #ask() {
    const digit = DIGITS[this.index];
    const text = `Draw a ${digit} (${this.index + 1} of ${DIGITS.length}), then press Add.`;
    this.status.say(text);
    this.announcer.announce(text);
  }

  /** A drawing was taken by "It's a ..." or Add: the one asked for moves the round on. */
  #taught(digit, added) {
    if (this.step !== "drawing" || digit !== DIGITS[this.index]) return;
    const at = this.index;
    this.added.push(added);
    added.then((ok) => {
      if (this.marks[at] === "taken") this.marks[at] = ok ? "added" : "failed";
      this.#render();
    });
    this.#next("taken");
  }

  #next(mark) {
    if (this.step !== "drawing") return;
    this.marks[this.index] = mark;
    this.index += 1;
    if (this.index < DIGITS.length) {
      this.#render();
      this.#ask();
      return;
    }
    this.#fineTune();
  }

  async #fineTune() {
    this.step = "fine-tuning";
    this.el.progress.value = 0;
    this.#render();
    const outcomes = await Promise.all(this.added);
    await this.yourDigits.settled();
    if (this.step !== "fine-tuning") return; // stopped meanwhile
    if (!outcomes.some(Boolean)) {
      this.#end("stopped", "None of the round's drawings was added, so there is nothing new to fine-tune on.");
      return;
    }
    const blocker = this.yourDigits.blocker();
    if (blocker || !(await this.yourDigits.fineTune())) {
      this.#end("stopped", `The fine-tune did not start${blocker ? `: ${blocker}` : ""}. Your drawings are kept: press Fine-tune below when it can.`);
    }
  }

  #fineTuned({ reason, fine_tune: result }) {
    if (reason !== "finished" || !result) {
      this.#end("stopped", reason === "stopped" ? "The fine-tune was stopped: the model is as it was. Your drawings are kept."
        : "The fine-tune did not finish: the model is as it was. Your drawings are kept.");
      return;
    }
    this.result = result;
    this.#end("done");
    const { before, after, n } = result.digits;
    this.announcer.announce(`Fine-tuned on your hand. It read ${fmtPct(before)} of your ${fmtInt(n)} drawings before, ${after === null ? "after: not measured" : `${fmtPct(after)} after`}.`);
  }

  #stop() {
    if (this.step === "fine-tuning" && this.state.job === "fine_tune") {
      this.runs.stop(); // its done ends the round
      return;
    }
    const kept = this.marks.filter((mark) => mark === "taken" || mark === "added").length;
    this.#end("stopped", kept === 1 ? "Stopped. The drawing you added stays in your digits."
      : kept ? `Stopped. The ${fmtInt(kept)} drawings you added stay in your digits.` : "Stopped.");
  }

  #end(step, note = "") {
    this.step = step;
    this.el.note.textContent = note;
    if (note) this.status.say(note);
    this.#render();
  }

  #render() {
    const el = this.el;
    const trained = this.state.model.kind !== "untrained" && this.state.phase !== "loading" && this.state.phase !== "error";
    const inRound = this.step === "drawing" || this.step === "fine-tuning";
    el.box.hidden = (!trained && !inRound) || Boolean(this.state.project);
    el.box.dataset.step = this.step;
    el.invite.hidden = inRound;
    el.inviteText.hidden = this.step === "done" || this.step === "stopped"; // said once is enough
    el.round.hidden = !inRound;
    const blocker = this.#startBlocker();
    el.start.disabled = Boolean(blocker);
    el.start.title = blocker;
    el.start.textContent = this.step === "done" || this.step === "stopped" ? "Teach it your hand again" : "Teach it your hand";
    const drawing = this.step === "drawing";
    const digit = drawing ? DIGITS[this.index] : null;
    el.prompt.dataset.digit = drawing ? String(digit) : "";
    el.digit.textContent = drawing ? String(digit) : "";
    el.ask.hidden = !drawing;
    el.count.textContent = drawing ? `${this.index + 1} of ${DIGITS.length}` : "";
    el.tuning.hidden = this.step !== "fine-tuning";
    el.progress.hidden = this.step !== "fine-tuning";
    el.add.hidden = el.skip.hidden = !drawing;
    el.add.textContent = drawing ? `Add this ${digit}` : "Add";
    el.add.disabled = !drawing || this.state.reading?.source !== "drawing";
    el.add.title = el.add.disabled && drawing ? `Draw a ${digit} in the box first` : "";
    el.marks.forEach((mark, i) => {
      mark.dataset.mark = this.marks[i] ?? "";
      mark.classList.toggle("current", drawing && i === this.index);
    });
    this.#renderResult();
  }

  #renderResult() {
    const el = this.el.result;
    const result = this.step === "done" ? this.result : null;
    el.hidden = !result;
    if (!result) return;
    const { before, after, n, method } = result.digits;
    Object.assign(el.dataset, { before: String(before), after: after === null ? "" : String(after) });
    el.querySelector(".guide-result-numbers").textContent =
      `Your ${fmtInt(n)} drawings, read right: ${fmtPct(before)} before → ${after === null ? "not measured" : fmtPct(after)} after`;
    const { untaught } = result.digits;
    const hardest = !untaught ? "" : untaught === n
      ? " As you drew each digit once, none of those networks had seen you draw the digit it read: the hardest test."
      : ` ${fmtInt(untaught)} of them were of a digit that network had not seen you draw: the hardest test.`;
    el.querySelector(".guide-result-how").textContent = after === null
      ? "After: not measured, because one drawing is not enough to check it on a drawing it was not trained on."
      : `Before: the network as it was. After: each drawing read by a network fine-tuned on your other drawings only (${method}).${hardest} The fine-tuned network is now the page's model; Undo fine-tune, below, brings back the one before.`;
  }
}
