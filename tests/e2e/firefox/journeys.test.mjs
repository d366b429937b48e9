// A learner's journey in Firefox ESR (WebDriver BiDi through puppeteer-core): one page of one
// browser context, from the first visit to a reload, each step a subtest that starts where the
// one before left the page (a failed step fails the ones after it too):
//   PYCNN_SITE_URL=http://127.0.0.1:8000/ PYCNN_CLI_MODEL=model.npz node --test tests/e2e/firefox/
// tests/e2e/test_firefox.py builds and serves the site, trains the model file and runs it.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { App, READY_TIMEOUT_MS, drawDigit, launchFirefox, required } from "./support.mjs";

// 1 epoch on 2,000 digits, as in the Chromium tests: ~88-90% held-out in CPython over seeds
const QUICK_RUN = { "epochs-input": "1", "train-size-input": "2000", "batch-size-input": "16", "learning-rate-input": "0.01" };
// 2 epochs of 266 batches: long enough to be stopped part-way through the first
const LONG_RUN = { "epochs-input": "2", "train-size-input": "8500", "batch-size-input": "32", "learning-rate-input": "0.002" };
// 32 batches of 64: the page splits each into 4 shards, which a helper worker shares
const SHARED_RUN = { "epochs-input": "1", "train-size-input": "2000", "batch-size-input": "64", "learning-rate-input": "0.005" };
const STAGES = ["python", "numpy", "pycnn", "data", "ready"];

function assertNoErrors(app) {
  assert.deepEqual(app.log.consoleErrors, [], "console errors");
  assert.deepEqual(app.log.pageErrors, [], "page errors");
}

/** Start LONG_RUN, press Stop after batch 50 (held-out accuracy ~0.78 there in CPython, 0.33 at batch 20), wait
 * until the page shows the stopped run; the batch it stopped at. */
async function stopPartWay(app) {
  await app.fill(LONG_RUN);
  await app.click("train-button");
  await app.waitState("training", 10_000);
  await app.waitFor(() => Number(document.querySelector('[data-testid="progress"]').dataset.step) >= 50, undefined, 60_000);
  await app.click("stop-button");
  await app.waitRunResult("stopped", 30_000);
  const step = Number(await app.attr("progress", "data-step"));
  const perEpoch = Number(await app.attr("progress", "data-batches-per-epoch"));
  assert.ok(step >= 50 && step < perEpoch, `stopped inside the first epoch: batch ${step} of ${perEpoch}`);
  // counted by the worker: batches that ended after the page sent `stop`
  assert.ok(Number(await app.attr("progress", "data-batches-after-stop")) <= 1);
  return step;
}

test("a learner's journey in Firefox", { timeout: 600_000 }, async (t) => {
  const modelFile = required("PYCNN_CLI_MODEL", "a model file from `python -m pycnn train --data subset --epochs 3 -o FILE`");
  const downloadPath = mkdtempSync(join(tmpdir(), "pycnn-firefox-download-"));
  const browser = await launchFirefox();
  const app = await App.open(browser, { downloadPath });
  let accuracy = null; // of the model trained by QUICK_RUN
  try {
    await t.test("the page reaches ready with every stage done, no errors, only its own origin", async () => {
      await app.gotoReady();
      const stages = await app.page.$$eval('[data-testid="stages"] li', (ls) => ls.map((l) => [l.dataset.stage, l.dataset.status]));
      assert.deepEqual(stages, STAGES.map((s) => [s, "done"]));
      // a first visit starts Python the slow way and keeps a memory snapshot for the next one
      assert.equal(await app.attr("status", "data-python-snapshot"), "saved");
      assert.equal(await app.body("model"), "untrained");
      assertNoErrors(app);
      const { requests } = app.log;
      assert.ok(requests.some((u) => u.endsWith("/pyodide/pyodide.asm.wasm")), "the worker's requests are seen");
      assert.ok(requests.some((u) => u.includes("/wheels/pycnn-")));
      const foreign = requests.filter((u) => !u.startsWith(app.url) && !/^(data|blob):/.test(u));
      assert.deepEqual(foreign, []);
    });

    await t.test("stop during the first run keeps what it learned", async () => {
      await stopPartWay(app);
      assert.equal(await app.body("model"), "trained", "the stopped run's weights are the model now");
      assert.ok(Number(await app.attr("accuracy", "data-val-accuracy")) > 0.5, "its held-out accuracy is shown");
      await app.click("reset-button");
      await app.waitSelector('body[data-model="untrained"]');
    });

    await t.test("train one short run: the loss falls, held-out accuracy >= 85%, filters change", async () => {
      const before = await app.filterImages();
      await app.fill(QUICK_RUN);
      await app.click("train-button");
      await app.waitRunResult("finished");
      // the chart draws once per animation frame: wait until it shows every batch
      await app.waitFor(() => {
        const chart = document.querySelector('[data-testid="loss-chart"]');
        return chart.dataset.points === document.querySelector('[data-testid="progress"]').dataset.step;
      });
      assert.equal(await app.attr("progress", "data-step"), "125");
      const first = Number(await app.attr("loss-chart", "data-first-loss"));
      const last = Number(await app.attr("loss-chart", "data-last-loss"));
      assert.ok(last < first, `loss fell: first ${first}, last ${last}`);
      accuracy = await app.attr("accuracy", "data-val-accuracy");
      assert.ok(Number(accuracy) >= 0.85, `held-out accuracy ${accuracy}`);
      assert.equal(await app.text("accuracy"), `${(Number(accuracy) * 100).toFixed(1)}%`);
      assert.equal(await app.body("model"), "trained");
      await app.waitFor(() => document.querySelector('[data-testid="filters"]').dataset.version !== "0");
      const after = await app.filterImages();
      assert.ok(after.length >= 8 && after.length === before.length, `${after.length} filters of the first conv layer`);
      assert.ok(after.filter((a, i) => a !== before[i]).length >= after.length - 2, "filters changed");
      await app.waitSaved(1);
      assertNoErrors(app);
    });

    await t.test("reload keeps the trained model", async () => {
      await app.page.reload();
      await app.waitState("ready");
      assert.equal(await app.body("model"), "restored");
      assert.equal(await app.attr("accuracy", "data-val-accuracy"), accuracy);
      assert.equal(await app.attr("status", "data-python-snapshot"), "restored");
      assertNoErrors(app);
    });

    await t.test("download the model, Reset, load it back: the same held-out accuracy", async () => {
      await app.click("download-model");
      const file = await app.downloaded("pycnn-model.npz");
      assert.ok(file.size > 1000, `downloaded ${file.size} bytes`);
      assert.equal(readFileSync(file.path).subarray(0, 2).toString(), "PK", "a zip (npz) file");
      await app.click("reset-button");
      await app.waitSelector('body[data-model="untrained"]');
      // the held-out accuracy is redrawn in the next animation frame: wait for it, not for the model's state
      await app.waitFor(() => document.querySelector('[data-testid="accuracy"]').dataset.valAccuracy === "");
      await app.loadModelFile(file.path);
      assert.equal(await app.attr("accuracy", "data-val-accuracy"), accuracy);
      assert.match(await app.text("model-state"), /pycnn-model\.npz/);
      assertNoErrors(app);
    });

    await t.test("stop during a run lands after at most one batch and keeps the model", async () => {
      await stopPartWay(app);
      assert.equal(await app.body("model"), "loaded", "still the loaded model, trained further");
      assert.ok(Number(await app.attr("accuracy", "data-val-accuracy")) >= Number(accuracy) - 0.05, "the model kept what it learned");
      assert.equal(await app.page.$eval('[data-testid="train-button"]', (b) => b.disabled), false);
      assertNoErrors(app);
    });

    await t.test("two workers: a helper worker (a nested worker) computes shards of each batch", async () => {
      await app.page.select(app.sel("cores-select"), "2");
      await app.waitSelector('body[data-workers="2"]', READY_TIMEOUT_MS);
      await app.fill(SHARED_RUN);
      await app.click("train-button");
      await app.waitRunResult("finished");
      assert.match(await app.text("progress"), /2 workers/);
      const { helpers } = await app.page.evaluate(() => window.pycnnProbe.read().workers);
      assert.equal(helpers.length, 1);
      assert.ok(helpers[0].tasks >= 25, `the helper answered ${helpers[0].tasks} of the 32 batches' tasks`);
      assertNoErrors(app);
    });

    await t.test("draw digits with the mouse and a model trained in CPython reads them", async () => {
      await app.loadModelFile(modelFile);
      // (digit, [left, top, size]) on the 280x280 canvas: full size, small, off-centre, two strokes
      for (const [digit, box] of [[0, [20, 20, 240]], [1, [30, 30, 100]], [4, [120, 110, 150]], [7, [70, 40, 200]]]) {
        await app.click("clear-button");
        await app.waitFor(() => document.querySelector('[data-testid="prediction"]').textContent === "");
        await drawDigit(app.page, digit, box);
        const version = await app.attr("draw-canvas", "data-version");
        // the answer to the finished drawing, not to a throttled mid-stroke one
        await app.waitFor((v) => document.querySelector('[data-testid="prediction"]').dataset.answeredVersion === v, version, 10_000);
        assert.equal(await app.text("prediction"), String(digit), `drew a ${digit}`);
        assert.equal(await app.attr("prediction", "data-digit"), String(digit));
      }
      assertNoErrors(app);
    });
  } finally {
    await app.close();
    await browser.close();
    rmSync(downloadPath, { recursive: true, force: true });
  }
});
