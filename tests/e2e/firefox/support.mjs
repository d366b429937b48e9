// What the Firefox journeys share: launch Firefox ESR over WebDriver BiDi (puppeteer-core), open
// the site in a fresh browser context, read state through data-* attributes only, draw digits
// with real mouse strokes.
import { existsSync, readdirSync, statSync } from "node:fs";

import puppeteer from "puppeteer-core";

export const READY_TIMEOUT_MS = 120_000; // Pyodide boot: ~4 s cold here, far more on a loaded CI machine
export const TRAIN_TIMEOUT_MS = 180_000;
export const VIEWPORT = { width: 1280, height: 800 };

/** A setting from the environment, or an error that says how to provide it. */
export function required(name, how) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${how}`);
  return value;
}

export const siteUrl = () =>
  required("PYCNN_SITE_URL", "the served site's base URL, e.g. http://127.0.0.1:8000/ after `python build.py serve`");

/** $PYCNN_FIREFOX, else Debian's firefox-esr. */
export function firefoxPath() {
  return process.env.PYCNN_FIREFOX || "/usr/bin/firefox-esr";
}

export async function launchFirefox() {
  const executablePath = firefoxPath();
  if (!existsSync(executablePath)) {
    throw new Error(`no Firefox at ${executablePath}: apt-get install firefox-esr, or set PYCNN_FIREFOX`);
  }
  return puppeteer.launch({ browser: "firefox", executablePath, headless: true, defaultViewport: VIEWPORT });
}

/** Everything a page did that the journeys assert on: console errors, page errors, requests. */
class PageLog {
  constructor(page) {
    this.consoleErrors = [];
    this.pageErrors = [];
    this.requests = []; // the worker's fetches included: Firefox reports them to the page
    page.on("console", (m) => m.type() === "error" && this.consoleErrors.push(m.text()));
    page.on("pageerror", (e) => this.pageErrors.push(String(e)));
    page.on("request", (r) => this.requests.push(r.url()));
  }
}

/** A page of the site in its own browser context (own storage), its log, and the reads and waits the journeys use. */
export class App {
  constructor(context, page, url, downloadPath) {
    this.context = context;
    this.page = page;
    this.url = url;
    this.downloadPath = downloadPath;
    this.log = new PageLog(page);
  }

  static async open(browser, { downloadPath } = {}) {
    const options = downloadPath ? { downloadBehavior: { policy: "allow", downloadPath } } : {};
    const context = await browser.createBrowserContext(options);
    const page = await context.newPage();
    return new App(context, page, siteUrl(), downloadPath);
  }

  close() {
    return this.context.close();
  }

  sel(testid) {
    return `[data-testid="${testid}"]`;
  }

  attr(testid, name) {
    return this.page.$eval(this.sel(testid), (el, n) => el.getAttribute(n), name);
  }

  text(testid) {
    return this.page.$eval(this.sel(testid), (el) => el.textContent.trim());
  }

  body(name) {
    return this.page.evaluate((n) => document.body.dataset[n] ?? null, name);
  }

  /** Resolves once fn (run in the page with arg) returns something truthy. */
  waitFor(fn, arg, timeout = 30_000) {
    return this.page.waitForFunction(fn, { timeout }, arg);
  }

  waitSelector(selector, timeout = 30_000) {
    return this.page.waitForSelector(selector, { timeout });
  }

  waitState(state, timeout = READY_TIMEOUT_MS) {
    return this.waitSelector(`body[data-state="${state}"]`, timeout);
  }

  async gotoReady() {
    await this.page.goto(this.url);
    await this.waitState("ready");
  }

  /** Type each value into its field (testid -> value), replacing what was there. */
  async fill(values) {
    for (const [testid, value] of Object.entries(values)) await this.page.locator(this.sel(testid)).fill(value);
  }

  click(testid) {
    return this.page.locator(this.sel(testid)).click();
  }

  waitRunResult(result, timeout = TRAIN_TIMEOUT_MS) {
    return this.waitSelector(`body[data-state="ready"][data-run-result="${result}"]`, timeout);
  }

  /** Until the model of `epochs` epochs is kept in IndexedDB (a reload right after could lose the write). */
  waitSaved(epochs) {
    // the page's probe (web/probe.js) says so
    return this.waitFor((n) => window.pycnnProbe.read().saved_epochs === n, epochs);
  }

  filterImages() {
    return this.page.$$eval(`${this.sel("filters")} canvas`, (cs) => cs.map((c) => c.toDataURL()));
  }

  async loadModelFile(path) {
    const input = await this.page.$(this.sel("load-model"));
    await input.uploadFile(path);
    await this.waitSelector('body[data-model="loaded"]', 60_000);
  }

  /** The completed download named name in downloadPath (Firefox writes NAME.part, then renames it). */
  async downloaded(name, timeout = 30_000) {
    const until = Date.now() + timeout;
    for (;;) {
      const files = readdirSync(this.downloadPath);
      if (files.includes(name) && !files.some((f) => f.endsWith(".part"))) {
        return { path: `${this.downloadPath}/${name}`, size: statSync(`${this.downloadPath}/${name}`).size };
      }
      if (Date.now() > until) throw new Error(`no download ${name} within ${timeout} ms; folder has [${files}]`);
      await new Promise((resolve) => setTimeout(resolve, 100)); // polls the folder: the page has no signal for this
    }
  }
}

// ---- digits as pen strokes in unit coordinates (the Chromium tests' strokes, e2e_support.py) ----
const CANVAS = 280; // the drawing canvas' width and height in canvas pixels

export const STROKES = {
  0: [Array.from({ length: 29 }, (_, i) => [0.5 + 0.3 * Math.sin((2 * Math.PI * i) / 28), 0.5 - 0.42 * Math.cos((2 * Math.PI * i) / 28)])],
  1: [[[0.55, 0.08], [0.5, 0.5], [0.45, 0.92]]],
  4: [[[0.6, 0.08], [0.15, 0.62], [0.88, 0.62]], [[0.68, 0.3], [0.66, 0.95]]],
  7: [[[0.15, 0.12], [0.85, 0.12], [0.6, 0.5], [0.4, 0.92]]],
};

/** Draw digit inside box = [left, top, size] in canvas pixels with mouse down/move/up. */
export async function drawDigit(page, digit, [left, top, size], steps = 6) {
  const canvas = await page.$('[data-testid="draw-canvas"]');
  await canvas.scrollIntoView();
  const rect = await canvas.boundingBox();
  const sx = rect.width / CANVAS;
  const sy = rect.height / CANVAS;
  for (const stroke of STROKES[digit]) {
    const points = stroke.map(([u, v]) => [rect.x + (left + u * size) * sx, rect.y + (top + v * size) * sy]);
    await page.mouse.move(...points[0]);
    await page.mouse.down();
    for (const [x, y] of points.slice(1)) await page.mouse.move(x, y, { steps });
    await page.mouse.up();
  }
}
