// The status line under the title and the message banner (errors, warnings, Retry/Restart).

export class StatusLine {
  constructor(element) {
    this.element = element;
  }

  say(text, stage) {
    this.element.textContent = text;
    if (stage !== undefined) this.element.dataset.stage = stage;
  }
}

export class Messages {
  /** banner: the [data-testid=message] element, holding .banner-text, the retry button and .dismiss. */
  constructor(banner, onRetry) {
    this.banner = banner;
    this.text = banner.querySelector(".banner-text");
    this.retry = banner.querySelector('[data-testid="retry-button"]');
    this.dismiss = banner.querySelector(".dismiss");
    this.retry.addEventListener("click", () => onRetry());
    this.dismiss.addEventListener("click", () => this.clear());
  }

  /** kind: info | warning | error; retry: offer the Retry (or Restart) button instead of dismiss. */
  show(text, kind = "info", { retry = false, retryLabel = "Retry" } = {}) {
    // a dead worker's message (with its Retry/Restart button) stays until the worker runs again
    if (!retry && !this.retry.hidden) return;
    this.banner.hidden = false;
    this.banner.dataset.kind = kind;
    this.text.textContent = text;
    this.retry.hidden = !retry;
    this.retry.textContent = retryLabel;
    this.dismiss.hidden = retry;
  }

  clear() {
    this.banner.hidden = true;
    this.banner.dataset.kind = "";
    this.text.textContent = "";
    this.retry.hidden = true;
  }
}
