// Firefox ESR next to Chromium on the page, in the same run: time to ready on a cold load (a fresh
// profile) and a warm one (reload in that profile), and the training speed of a one-epoch run.
//
//   node bench/browser/firefox.mjs                 # builds and serves dist/, 3 rounds
//   node bench/browser/firefox.mjs --rounds 5 --url http://127.0.0.1:8000/
//
// Both browsers are driven by puppeteer-core (Firefox over WebDriver BiDi, Chromium over CDP),
// one after the other in each round, the order alternating between rounds; medians at the end.
// A round per browser: launch with a new temporary profile, load (cold), wait, reload (warm),
// wait until the page's speed estimate is done, train one epoch with the page's other defaults
// (8,500 digits, batch 32, augmented, one-cycle), close.
import { spawn } from "node:child_process";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import puppeteer from "puppeteer-core";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const READY_TIMEOUT_MS = 120_000;
const TRAIN_TIMEOUT_MS = 300_000;
const BROWSERS = {
  firefox: () => ({ browser: "firefox", executablePath: process.env.PYCNN_FIREFOX || "/usr/bin/firefox-esr" }),
  chromium: () => ({
    browser: "chrome",
    executablePath: process.env.PYCNN_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  }),
};

// Installed before any page script: when body[data-state] first becomes "ready", when Train is
// clicked and when a run's result appears (performance.now(): ms since this document's navigation).
function timingScript() {
  const marks = { readyAt: null, trainClickAt: null, runResultAt: null };
  Object.defineProperty(window, "__bench", { value: marks });
  new MutationObserver(() => {
    const body = document.body;
    if (body?.dataset.state === "ready" && marks.readyAt === null) marks.readyAt = performance.now();
    if (body?.dataset.runResult && marks.trainClickAt !== null && marks.runResultAt === null) marks.runResultAt = performance.now();
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-state", "data-run-result"] });
  document.addEventListener("click", (e) => {
    if (e.target.closest?.('[data-testid="train-button"]')) marks.trainClickAt = performance.now();
  }, true);
}

/** `python build.py serve --port 0` (builds dist/ first); resolves to its URL and the child process. */
function serveSite() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.PYTHON || "python3", ["build.py", "serve", "--port", "0"], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/at (http:\/\/\S+)/);
      if (match) resolve({ url: match[1], child });
    });
    child.on("exit", (code) => reject(new Error(`build.py serve exited with code ${code}:\n${out}`)));
  });
}

async function readyAfter(page, navigate) {
  await navigate();
  await page.waitForFunction(() => window.__bench?.readyAt !== null, { timeout: READY_TIMEOUT_MS });
  return page.evaluate(() => ({
    s: window.__bench.readyAt / 1000,
    snapshot: document.querySelector('[data-testid="status"]').dataset.pythonSnapshot,
  }));
}

async function round(name, url, warmWaitMs) {
  const browser = await puppeteer.launch({ ...BROWSERS[name](), headless: true, defaultViewport: { width: 1280, height: 800 } });
  try {
    const page = await browser.newPage();
    await page.evaluateOnNewDocument(timingScript);
    const cold = await readyAfter(page, () => page.goto(url));
    await new Promise((resolve) => setTimeout(resolve, warmWaitMs)); // a returning visitor's last visit lasted a while
    const warm = await readyAfter(page, () => page.reload());
    await page.waitForSelector('[data-testid="estimate"][data-seconds-per-epoch]', { timeout: 60_000 });
    await page.locator('[data-testid="epochs-input"]').fill("1");
    const digits = Number(await page.$eval('[data-testid="train-size-input"]', (el) => el.value));
    await page.locator('[data-testid="train-button"]').click();
    await page.waitForFunction(() => window.__bench.runResultAt !== null, { timeout: TRAIN_TIMEOUT_MS });
    const run = await page.evaluate(() => ({
      result: document.body.dataset.runResult,
      ms: window.__bench.runResultAt - window.__bench.trainClickAt,
      pageImagesPerSecond: Number(document.querySelector('[data-testid="progress"]').dataset.imagesPerSecond),
      accuracy: Number(document.querySelector('[data-testid="accuracy"]').dataset.valAccuracy),
    }));
    if (run.result !== "finished") throw new Error(`${name}: the run ended ${run.result}`);
    return {
      version: await browser.version(),
      cold: cold.s, coldSnapshot: cold.snapshot, warm: warm.s, warmSnapshot: warm.snapshot,
      imagesPerSecond: digits / (run.ms / 1000), pageImagesPerSecond: run.pageImagesPerSecond, accuracy: run.accuracy,
    };
  } finally {
    await browser.close();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const { values } = parseArgs({
    options: { rounds: { type: "string", default: "3" }, url: { type: "string" }, "warm-wait": { type: "string", default: "5" } },
  });
  const server = values.url ? null : await serveSite();
  const url = values.url ?? server.url;
  const results = { firefox: [], chromium: [] };
  try {
    for (let r = 0; r < Number(values.rounds); r++) {
      for (const name of r % 2 ? ["chromium", "firefox"] : ["firefox", "chromium"]) {
        const x = await round(name, url, Number(values["warm-wait"]) * 1000);
        results[name].push(x);
        console.log(`round ${r + 1} ${name.padEnd(8)}: ready cold ${x.cold.toFixed(2)} s (snapshot ${x.coldSnapshot}), ` +
          `warm ${x.warm.toFixed(2)} s (snapshot ${x.warmSnapshot}); one epoch ${Math.round(x.imagesPerSecond)} images/s ` +
          `(page's figure ${x.pageImagesPerSecond}), held-out ${(x.accuracy * 100).toFixed(1)}%`);
      }
    }
  } finally {
    server?.child.kill();
  }
  console.log(`\nmedians of ${values.rounds} rounds (${url}; load average ${loadavg()[0].toFixed(2)}):`);
  console.log("browser                    ready cold   ready warm   one epoch, images/s (click to result; page's figure)");
  for (const name of ["firefox", "chromium"]) {
    const m = (k) => median(results[name].map((x) => x[k]));
    console.log(`${results[name][0].version.padEnd(26)} ${m("cold").toFixed(2).padStart(8)} s ${m("warm").toFixed(2).padStart(10)} s ` +
      `${String(Math.round(m("imagesPerSecond"))).padStart(10)} ; ${Math.round(m("pageImagesPerSecond"))}`);
  }
  const ratio = (k) => (median(results.firefox.map((x) => x[k])) / median(results.chromium.map((x) => x[k]))).toFixed(2);
  console.log(`Firefox / Chromium: cold ${ratio("cold")}x, warm ${ratio("warm")}x, training ${ratio("imagesPerSecond")}x`);
}

await main();
