// One render per animation frame: views ask for a redraw by name, and each named redraw runs
// at most once in the next frame however often it was asked for.

export class Frame {
  constructor() {
    this.pending = new Map(); // name -> redraw
    this.requested = false;
  }

  /** Run redraw() in the next animation frame (once, under this name). */
  request(name, redraw) {
    this.pending.set(name, redraw);
    if (this.requested) return;
    this.requested = true;
    requestAnimationFrame(() => this.#run());
  }

  #run() {
    this.requested = false;
    const redraws = [...this.pending.values()];
    this.pending.clear();
    for (const redraw of redraws) {
      try {
        redraw();
      } catch (error) {
        reportError(error); // one view's failure is reported and leaves the others drawn (a button left disabled ...)
      }
    }
  }
}
