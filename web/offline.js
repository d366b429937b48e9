// Offline use: registers the service worker (sw.js) once the page is ready, says on <body
// data-offline> whether this version is kept for offline use, and offers a new version when one
// is ready (a notice with Reload; the page never reloads by itself, e.g. in the middle of a run).
//
// data-offline: "unsupported" (no service workers here: not https or localhost, or disabled),
// "pending" (the page is still loading), "installing" (the site is being saved),
// "ready" (every file of this version is cached: the next visit works without a network),
// "update" (a new version is cached and waits for Reload), "failed" (it could not be saved; the
// console says why; the page works as before, online).
// The probe's `offline` holds {version, files, missing, bytes} of the active service worker.

const SW_URL = new URL("./sw.js", import.meta.url);
const UPDATE_EVERY_MS = 60 * 60 * 1000; // a page left open still hears of a new version

export class Offline {
  /** state: AppState (registration waits for "ready"); probe; messages: the banner, placed before the notice. */
  constructor({ state, probe, messages }) {
    Object.assign(this, { state, probe, messages });
    this.registration = null;
    this.notice = null; // {box, text, button} once a new version is offered
    this.waiting = null; // that version's service worker
    this.reloading = false;
    if (!("serviceWorker" in navigator)) {
      this.#set("unsupported");
      return;
    }
    this.#set("pending");
    const start = () => {
      if (state.phase !== "ready" || this.registration) return;
      // after ready: the page's own downloads are done, so the install mostly revalidates them
      this.registration = this.#register();
    };
    state.on("phase", start);
    start();
  }

  #set(value) {
    document.body.dataset.offline = value;
  }

  async #register() {
    const sw = navigator.serviceWorker;
    sw.addEventListener("message", (event) => this.#message(event.data ?? {}));
    sw.addEventListener("controllerchange", () => {
      if (this.reloading) location.reload(); // the new version took over because Reload was pressed
    });
    let registration;
    try {
      // updateViaCache "none": an update check always asks the host for sw.js and precache.js
      registration = await sw.register(SW_URL, { updateViaCache: "none" });
      // a browser that blocks service workers may also resolve to nothing (Playwright's "block" does)
      if (!registration) throw new Error("the browser refused to register the service worker");
    } catch (error) {
      console.warn(`this page cannot be kept for offline use: ${error.message ?? error}`);
      this.#set("failed");
      return null;
    }
    registration.addEventListener("updatefound", () => this.#follow(registration, registration.installing));
    if (registration.installing) this.#follow(registration, registration.installing);
    if (registration.waiting && sw.controller) this.#offer(registration.waiting);
    if (registration.active) await this.#check(registration.active);
    // look for a new version on every visit (register() alone does not), then now and then
    const update = () => registration.update().catch(() => {}); // offline: nothing to hear of
    if (registration.active) update();
    setInterval(update, UPDATE_EVERY_MS);
    window.addEventListener("online", update);
    return registration;
  }

  /**
   * Follow a worker being installed. The first version becomes "ready" once active; a later one
   * is offered when this page runs a cached version (otherwise it took over at once: the page's
   * files came from the network, and the next visit gets the new version).
   */
  #follow(registration, worker) {
    const isUpdate = Boolean(registration.active);
    if (!isUpdate) this.#set("installing");
    worker.addEventListener("statechange", () => {
      const controlled = Boolean(navigator.serviceWorker.controller);
      if (worker.state === "installed" && isUpdate && controlled) this.#offer(worker);
      else if (worker.state === "activated" && (!isUpdate || !controlled)) this.#check(worker);
      else if (worker.state === "redundant" && !isUpdate && !registration.installing && !registration.waiting) {
        this.#set("failed"); // its install failed (the console says why)
      }
    });
  }

  /** Ask the active worker how much of its version is cached. */
  async #check(worker) {
    const reply = await new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.addEventListener("message", (event) => resolve(event.data), { once: true });
      channel.port1.start();
      worker.postMessage({ type: "status" }, [channel.port2]);
    });
    this.probe.set("offline", reply);
    if (!this.notice) this.#set(reply.missing === 0 ? "ready" : "failed");
  }

  #message(message) {
    if (message.type === "install-failed") {
      console.warn(`pycnn ${message.version}: ${message.message}`);
    } else if (message.type === "close-other-tabs" && this.notice) {
      const tabs = message.others === 1 ? "the other tab" : `the ${message.others} other tabs`;
      this.notice.text.textContent = `A new version is ready. Close ${tabs} of this page, then press Reload.`;
    }
  }

  /** The notice: a new version is ready; Reload lets it take over, then reloads the page. */
  #offer(worker) {
    this.#set("update");
    this.waiting = worker;
    if (!this.notice) {
      const box = document.createElement("div");
      box.className = "banner";
      box.dataset.kind = "info";
      box.dataset.testid = "update-notice";
      box.setAttribute("role", "status");
      const text = document.createElement("span");
      text.className = "banner-text";
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Reload";
      button.dataset.testid = "update-reload";
      box.append(text, button);
      button.addEventListener("click", () => {
        this.reloading = true;
        this.waiting.postMessage({ type: "take-over" });
      });
      this.messages.banner.after(box);
      this.notice = { box, text, button };
    }
    this.notice.text.textContent = "A new version is ready.";
  }
}
