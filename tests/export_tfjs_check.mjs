// Load models exported by pycnn.export.to_tfjs with TensorFlow.js (pure JavaScript, cpu backend)
// and print their predictions as JSON, for tests/test_export.py and bench/export.py.
//
//   node tests/export_tfjs_check.mjs INPUTS.f32 DIR [DIR ...]
//
// INPUTS.f32: the images as little-endian float32, NHWC (N, H, W, C) as the models read them;
// each DIR holds model.json and the weights file it names. Prints one JSON line on stdout:
// {"backend", "tfjs", "models": [{"dir", "shape", "probabilities" (flat, row by row), "class_names",
// "load_ms", "predict_ms"}]}.
import { readFile } from "node:fs/promises";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";

/** A TensorFlow.js IOHandler reading model.json and the weight files it names from a folder. */
function folderHandler(dir) {
  return {
    async load() {
      const json = JSON.parse(await readFile(path.join(dir, "model.json"), "utf8"));
      const weightSpecs = [];
      const parts = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const file of group.paths) parts.push(await readFile(path.join(dir, file)));
      }
      const all = Buffer.concat(parts);
      return {
        modelTopology: json.modelTopology,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        userDefinedMetadata: json.userDefinedMetadata,
      };
    },
  };
}

async function main() {
  const [inputsPath, ...dirs] = process.argv.slice(2);
  if (!inputsPath || dirs.length === 0) {
    console.error("usage: node export_tfjs_check.mjs INPUTS.f32 DIR [DIR ...]");
    process.exit(2);
  }
  await tf.setBackend("cpu");
  await tf.ready();
  const raw = await readFile(inputsPath);
  const pixels = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const models = [];
  for (const dir of dirs) {
    let started = performance.now();
    const model = await tf.loadLayersModel(folderHandler(dir));
    const loadMs = performance.now() - started;
    const [, h, w, c] = model.inputs[0].shape;
    const n = pixels.length / (h * w * c);
    if (!Number.isInteger(n)) throw new Error(`${inputsPath} does not hold whole ${h}x${w}x${c} images`);
    tf.tidy(() => model.predict(tf.tensor4d(pixels.subarray(0, h * w * c), [1, h, w, c]))); // warm-up
    started = performance.now();
    const probabilities = tf.tidy(() => model.predict(tf.tensor4d(pixels, [n, h, w, c]), { batchSize: 256 }));
    const values = await probabilities.data();
    const predictMs = performance.now() - started;
    models.push({
      dir,
      shape: probabilities.shape,
      probabilities: Array.from(values),
      class_names: model.getUserDefinedMetadata()?.class_names ?? null,
      load_ms: loadMs,
      predict_ms: predictMs,
    });
    probabilities.dispose();
    model.dispose();
  }
  process.stdout.write(JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version.tfjs, models }) + "\n");
}

main().catch((error) => {
  console.error(error?.stack || String(error));
  process.exit(1);
});
