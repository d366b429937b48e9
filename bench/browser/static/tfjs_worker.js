// TensorFlow.js 4.22 training pycnn's preset networks (their get_config() architectures,
// passed in by bench/browser/browser.py: Conv2D, ReLU, MaxPool2D, Flatten, Dense; softmax
// cross-entropy, Adam 1e-3, batch 32, float32) on the same digits as the pycnn worker, in
// the same order. Benchmark only: TF.js is a dev dependency, served from node_modules by
// bench/browser/browser.py, never part of dist/.
//
// The wasm backend of TF.js 4.22 has no Conv2DBackpropFilter kernel (tfjs issue #8474):
// the first training step throws. registerBackpropFilter() adds one that delegates to the
// backend's own kernels (Transpose, PadV2, Conv2D, Slice): dW[a, b, c, f] =
// sum over n, i, j of x[n, a + s*i, b + s*j, c] * dy[n, i, j, f], which is a Conv2D of x
// (transposed to [c, H, W, n]) with dy (transposed to [oh, ow, n, f]) as the filter,
// dilated by the stride. checkBackpropFilter() compares it with the 'cpu' backend.
importScripts("/tfjs/tfjs/tf.min.js", "/tfjs/tfjs-backend-wasm/tf-backend-wasm.min.js", "/bench/serve_commands.js");

const BATCH = 32;
let state = null;

function registerBackpropFilter() {
  if (tf.getKernel("Conv2DBackpropFilter", "wasm")) return "built in";
  const call = (name, backend, inputs, attrs) => tf.getKernel(name, "wasm").kernelFunc({ inputs, backend, attrs });
  tf.registerKernel({
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, dy } = inputs;
      const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs;
      if (dataFormat && dataFormat !== "NHWC") throw new Error(`Conv2DBackpropFilter (bench kernel): dataFormat ${dataFormat} not supported`);
      const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode, false, "channelsLast");
      const [kh, kw, cin, cout] = filterShape;
      const temps = [];
      const keep = (t) => (temps.push(t), t);
      try {
        let xin = x;
        const { top, bottom, left, right } = info.padInfo;
        if (top || bottom || left || right) {
          xin = keep(call("PadV2", backend, { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }));
        }
        const xT = keep(call("Transpose", backend, { x: xin }, { perm: [3, 1, 2, 0] })); // [c, H, W, n]
        const dyT = keep(call("Transpose", backend, { x: dy }, { perm: [1, 2, 0, 3] })); // [oh, ow, n, f]
        let r = keep(call("Conv2D", backend, { x: xT, filter: dyT }, {
          strides: [1, 1], pad: "valid", dataFormat: "NHWC", dilations: [info.strideHeight, info.strideWidth], dimRoundingMode: undefined,
        })); // [c, kh', kw', f]; kh' > kh when the stride does not divide the input evenly
        if (r.shape[1] !== kh || r.shape[2] !== kw) {
          r = keep(call("Slice", backend, { x: r }, { begin: [0, 0, 0, 0], size: [cin, kh, kw, cout] }));
        }
        return call("Transpose", backend, { x: r }, { perm: [1, 2, 0, 3] }); // [kh, kw, c, f]
      } finally {
        for (const t of temps) backend.disposeData(t.dataId);
      }
    },
  });
  return "registered by the benchmark";
}

function glorot(shape, fanIn, fanOut, rand) {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * limit;
  return data;
}

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A network from a pycnn architecture config: {names, shapes, init(seed), logits(v, x, fused)}.
 * Tensors are NHWC; conv filters [k, k, in, out], as TF.js has them. fused: a Conv2D followed
 * by a ReLU becomes one FusedConv2D with bias and ReLU. */
function network(config) {
  const [channels, height, width] = config.input_shape;
  const shapes = {};
  const fans = {};
  const steps = [];
  config.layers.forEach((layer, i) => {
    const c = layer.config;
    if (layer.class === "Conv2D") {
      const k = c.kernel_size;
      shapes[`${i}.W`] = [k, k, c.in_channels, c.filters];
      shapes[`${i}.b`] = [c.filters];
      fans[`${i}.W`] = [c.in_channels * k * k, c.filters * k * k];
      const pad = typeof c.padding === "number" ? [[0, 0], [c.padding, c.padding], [c.padding, c.padding], [0, 0]] : c.padding;
      steps.push({ kind: "conv", w: `${i}.W`, b: `${i}.b`, stride: c.stride, pad });
    } else if (layer.class === "Dense") {
      shapes[`${i}.W`] = [c.in_features, c.out_features];
      shapes[`${i}.b`] = [c.out_features];
      fans[`${i}.W`] = [c.in_features, c.out_features];
      steps.push({ kind: "dense", w: `${i}.W`, b: `${i}.b` });
    } else if (layer.class === "ReLU") {
      steps.push({ kind: "relu" });
    } else if (layer.class === "MaxPool2D") {
      steps.push({ kind: "pool", size: c.pool_size, stride: c.stride ?? c.pool_size });
    } else if (layer.class === "Flatten") {
      steps.push({ kind: "flatten" });
    } else {
      throw new Error(`the TF.js benchmark has no ${layer.class} layer`);
    }
  });
  const names = Object.keys(shapes);
  return {
    names, shapes, inputShape: [height, width, channels], classes: shapes[names[names.length - 1]][0],
    init(seed = 0) {
      const rand = mulberry32(seed + 1);
      return Object.fromEntries(names.map((k) => [k, k.endsWith(".b")
        ? new Float32Array(shapes[k][0]) : glorot(shapes[k], fans[k][0], fans[k][1], rand)]));
    },
    logits(v, x, fused) {
      let h = x;
      for (let s = 0; s < steps.length; s++) {
        const step = steps[s];
        if (step.kind === "conv") {
          const withRelu = fused && steps[s + 1]?.kind === "relu";
          h = withRelu
            ? tf.fused.conv2d({ x: h, filter: v[step.w], strides: step.stride, pad: step.pad, bias: v[step.b], activation: "relu" })
            : tf.add(tf.conv2d(h, v[step.w], step.stride, step.pad), v[step.b]);
          if (withRelu) s++;
        } else if (step.kind === "dense") {
          h = tf.add(tf.matMul(h, v[step.w]), v[step.b]);
        } else if (step.kind === "relu") {
          h = tf.relu(h);
        } else if (step.kind === "pool") {
          h = tf.maxPool(h, step.size, step.stride, "valid");
        } else {
          h = tf.reshape(h, [h.shape[0], -1]);
        }
      }
      return h;
    },
  };
}

const lossFn = (net, v, x, y, fused) => tf.losses.softmaxCrossEntropy(y, net.logits(v, x, fused));

/** Gradients of every weight for one batch on the current backend, as plain arrays. */
function gradients(net, weights, xData, labels, fused) {
  return tf.tidy(() => {
    const v = Object.fromEntries(Object.entries(weights).map(([k, d]) => [k, tf.tensor(d, net.shapes[k])]));
    const x = tf.tensor4d(xData, [labels.length, ...net.inputShape]);
    const y = tf.oneHot(tf.tensor1d(labels, "int32"), net.classes);
    const names = net.names;
    const { value, grads } = tf.valueAndGrads((...ws) => lossFn(net, Object.fromEntries(names.map((k, i) => [k, ws[i]])), x, y, fused))(names.map((k) => v[k]));
    return { loss: value.dataSync()[0], ...Object.fromEntries(names.map((k, i) => [k, grads[i].dataSync().slice()])) };
  });
}

function maxRelDiff(a, b) {
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / (scale || 1);
}

/** The bench kernel against the 'cpu' backend: several conv shapes, then every network's gradients. */
async function checkBackpropFilter(xAll, yAll, nets) {
  const configs = [
    { x: [2, 9, 9, 3], f: [3, 3, 3, 4], s: 1, pad: "valid" },
    { x: [2, 9, 9, 3], f: [3, 3, 3, 4], s: 1, pad: "same" },
    { x: [2, 10, 10, 2], f: [3, 3, 2, 5], s: 2, pad: "valid" },
    { x: [3, 11, 12, 2], f: [2, 3, 2, 3], s: 2, pad: "same" },
    { x: [32, 28, 28, 1], f: [3, 3, 1, 10], s: 1, pad: "valid" },
  ];
  const rand = mulberry32(7);
  const result = { kernels: [], model: {} };
  for (const c of configs) {
    const size = (s) => s.reduce((a, b) => a * b, 1);
    const xd = Float32Array.from({ length: size(c.x) }, () => rand() - 0.5);
    const fd = Float32Array.from({ length: size(c.f) }, () => rand() - 0.5);
    const dW = {};
    for (const backend of ["cpu", "wasm"]) {
      await tf.setBackend(backend);
      dW[backend] = tf.tidy(() => {
        const x = tf.tensor4d(xd, c.x);
        const f = tf.tensor4d(fd, c.f);
        const outShape = tf.conv2d(x, f, c.s, c.pad).shape;
        // random weights on the outputs, so the gradient is not just a box sum of x
        const r = tf.tensor(Float32Array.from({ length: size(outShape) }, mulberry32(11)), outShape);
        const g = tf.grad((ff) => tf.sum(tf.mul(tf.conv2d(x, ff, c.s, c.pad), r)))(f);
        return g.dataSync().slice();
      });
    }
    result.kernels.push({ ...c, max_rel_diff: maxRelDiff(dW.wasm, dW.cpu) });
  }
  // each network on 32 real digits, same weights: every gradient, both backends
  const xb = xAll.subarray(0, BATCH * 784);
  const yb = yAll.subarray(0, BATCH);
  for (const [name, net] of Object.entries(nets)) {
    const weights = net.init(3);
    const g = {};
    for (const backend of ["cpu", "wasm"]) {
      await tf.setBackend(backend);
      g[backend] = gradients(net, weights, xb, yb, state.fused);
    }
    const model = { loss: { cpu: g.cpu.loss, wasm: g.wasm.loss } };
    for (const k of net.names) model[k] = maxRelDiff(g.wasm[k], g.cpu[k]);
    result.model[name] = model;
  }
  await tf.setBackend("wasm");
  return result;
}

function makeTrainer(net, name, xAll, yAll, backend, fused) {
  const n = yAll.length;
  const batches = Math.floor(n / BATCH);
  const w = net.init(0);
  const v = Object.fromEntries(Object.entries(w).map(([k, d]) => [k, tf.variable(tf.tensor(d, net.shapes[k]), true, `${backend}_${name}_${k}`)]));
  const oneHot = new Float32Array(n * 10);
  for (let i = 0; i < n; i++) oneHot[i * 10 + yAll[i]] = 1;
  const opt = tf.train.adam(1e-3);
  let step = 0;
  let lastLoss = NaN;
  // Each batch becomes a tensor from a subarray of the JS arrays (a 100 kB copy). Slicing one
  // big tensor of all the digits instead costs ~19 ms a step on wasm: its Slice kernel
  // reads the whole input out of the wasm heap (readSync) for every slice.
  const steps = (count) => {
    for (let s = 0; s < count; s++) {
      const i = (step % batches) * BATCH;
      const loss = opt.minimize(() => {
        const xb = tf.tensor4d(xAll.subarray(i * 784, (i + BATCH) * 784), [BATCH, ...net.inputShape]);
        const yb = tf.tensor2d(oneHot.subarray(i * 10, (i + BATCH) * 10), [BATCH, 10]);
        return lossFn(net, v, xb, yb, fused);
      }, true);
      lastLoss = loss.dataSync()[0]; // wait for the step (and read the loss, as pycnn's step returns it)
      loss.dispose();
      step++;
    }
  };
  steps(3); // warm-up
  return {
    steps,
    run(seconds) {
      let done = 0;
      const start = performance.now();
      let elapsed;
      for (;;) {
        steps(backend === "cpu" ? 1 : 5);
        done += backend === "cpu" ? 1 : 5;
        elapsed = (performance.now() - start) / 1000;
        if (elapsed >= seconds) break;
      }
      return { images_per_second: (done * BATCH) / elapsed, steps: done, seconds: elapsed, loss: lastLoss, total_steps: step };
    },
  };
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

const commands = {
  /** models: {name: pycnn architecture config}; one trainer each, run({seconds, model}) picks one. */
  async init({ backend = "wasm", fused = false, check = false, models }) {
    const t0 = performance.now();
    tf.wasm.setWasmPaths(new URL("/tfjs/tfjs-backend-wasm/", location.href).href);
    const kernel = registerBackpropFilter();
    if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} failed to start`);
    await tf.ready();
    const env = {
      backend: tf.getBackend(), version: tf.version.tfjs, fused, kernel,
      simd: backend === "wasm" ? await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT") : null,
      threads: backend === "wasm" ? await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT") : null,
      cross_origin_isolated: self.crossOriginIsolated,
    };
    const xu8 = await fetchBytes("/bench-data/train-x.u8");
    const yAll = Int32Array.from(await fetchBytes("/bench-data/train-y.u8"));
    const xAll = new Float32Array(xu8.length);
    for (let i = 0; i < xu8.length; i++) xAll[i] = xu8[i] / 255;
    state = { fused };
    const nets = Object.fromEntries(Object.entries(models).map(([name, config]) => [name, network(config)]));
    const checks = check ? await checkBackpropFilter(xAll, yAll, nets) : null;
    await tf.setBackend(backend);
    state.trainers = Object.fromEntries(Object.entries(nets).map(([name, net]) => [name, makeTrainer(net, name, xAll, yAll, backend, fused)]));
    return { ...env, checks, images: yAll.length, setup_ms: performance.now() - t0 };
  },
  run({ seconds, model }) {
    return state.trainers[model].run(seconds);
  },
  async profile({ steps = 20, model }) {
    // per-kernel time of training steps (tf.profile), summed by kernel name
    const totals = {};
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      const info = await tf.profile(() => state.trainers[model].steps(1));
      for (const k of info.kernels) {
        const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
        totals[k.name] = totals[k.name] ?? { ms: 0, calls: 0 };
        totals[k.name].ms += ms / steps;
        totals[k.name].calls += 1 / steps;
      }
    }
    const wall = (performance.now() - t0) / steps;
    return { wall_ms_per_step: wall, kernels: Object.entries(totals).sort((a, b) => b[1].ms - a[1].ms) };
  },
  memory() {
    const m = tf.memory();
    const be = tf.backend();
    return { tf_num_bytes: m.numBytes, tf_num_tensors: m.numTensors, wasm_heap_bytes: be.wasm ? be.wasm.HEAP8.length : null };
  },
};

self.serveCommands(commands);
