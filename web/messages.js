// The status line under the title, the message banner (errors, warnings, Retry/Restart) and the
// announcer: a live region that tells screen readers the milestones, a few words at a time.

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

export class Announcer {
  /** region: a visually hidden element with role="status" (aria-live polite). */
  constructor(region) {
    this.region = region;
    this.count = 0;
  }

  /** Say text once (the same words again are said again: the region is emptied first). */
  announce(text) {
    this.region.textContent = "";
    this.count += 1;
    this.region.dataset.count = String(this.count);
    requestAnimationFrame(() => {
      this.region.textContent = text;
    });
  }
}
