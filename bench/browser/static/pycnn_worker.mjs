// pycnn in Pyodide, booted the way the page's worker boots it (dist/pyodide/pyodide.mjs,
// numpy + micropip, micropip.install of the pycnn wheel named in dist/manifest.json), then
// timing bench/browser/steploop.py's loop of model.train_step(xb, yb, opt), one runner per
// preset named in init's models.
import { loadPyodide } from "/pyodide/pyodide.mjs";
import "/bench/serve_commands.js";

let py = null;

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

const commands = {
  async init({ installer = "micropip", bootOnly = false, models = ["seed"] } = {}) {
    // installer "micropip": as the page does (loadPackage numpy + micropip, micropip.install);
    // "unpack": loadPackage numpy only, and pyodide.unpackArchive(wheel bytes, "wheel")
    const t = {};
    let t0 = performance.now();
    const wheelBytes = fetchOk("/manifest.json").then((r) => r.json()).then(async (manifest) => ({
      name: manifest.pycnn_wheel,
      bytes: new Uint8Array(await (await fetchOk("/" + manifest.pycnn_wheel)).arrayBuffer()),
    }));
    py = await loadPyodide({ indexURL: new URL("/pyodide/", location.href).href, stdout: () => {}, stderr: (l) => console.warn(l) });
    t.python_ms = performance.now() - t0;
    t0 = performance.now();
    await py.loadPackage(installer === "micropip" ? ["numpy", "micropip"] : ["numpy"], { messageCallback: () => {} });
    t.numpy_load_ms = performance.now() - t0;
    t0 = performance.now();
    py.runPython("import numpy");
    t.numpy_import_ms = performance.now() - t0;
    t0 = performance.now();
    const wheel = await wheelBytes;
    if (installer === "micropip") {
      const micropip = py.pyimport("micropip");
      await micropip.install(new URL("/" + wheel.name, location.href).href);
      micropip.destroy();
    } else {
      py.unpackArchive(wheel.bytes, "wheel");
    }
    t.pycnn_install_ms = performance.now() - t0;
    t0 = performance.now();
    py.runPython("import pycnn");
    t.pycnn_import_ms = performance.now() - t0;
    if (bootOnly) return { ...t, wasm_heap_bytes: py._module.HEAP8.length };
    // the bench package's step loop and profiler, installed into site-packages as a wheel would be
    const site = py.runPython("import sysconfig; sysconfig.get_path('purelib')");
    for (const rel of ["__init__.py", "browser/__init__.py", "browser/steploop.py", "browser/profile_step.py", "browser/shardrate.py", "layers.py"]) {
      const dest = `${site}/bench/${rel}`;
      py.FS.mkdirTree(dest.slice(0, dest.lastIndexOf("/")));
      py.FS.writeFile(dest, new Uint8Array(await (await fetchOk(`/bench-py/${rel}`)).arrayBuffer()));
    }
    py.runPython("import importlib; importlib.invalidate_caches()");
    const x = new Uint8Array(await (await fetchOk("/bench-data/train-x.u8")).arrayBuffer());
    const y = new Uint8Array(await (await fetchOk("/bench-data/train-y.u8")).arrayBuffer());
    py.globals.set("x_js", x);
    py.globals.set("y_js", y);
    py.globals.set("models_json", JSON.stringify(models));
    t0 = performance.now();
    py.runPython(`
import json
import numpy as np, pycnn
from bench.browser import steploop
x_bytes, y_bytes = x_js.to_bytes(), y_js.to_bytes()
runners = {name: steploop.make_runner(x_bytes, y_bytes, model=name) for name in json.loads(models_json)}
runner = next(iter(runners.values()))
runner.data_bytes = (x_bytes, y_bytes)
del x_js, y_js, x_bytes, y_bytes
`);
    t.setup_ms = performance.now() - t0;
    return {
      ...t,
      numpy: py.runPython("np.__version__"),
      pycnn: py.runPython("pycnn.__version__"),
      pyodide: py.version,
      kernels: py.runPython("str(pycnn.fused.KERNELS)"),
      images: y.length,
    };
  },
  run({ seconds, model = "seed" }) {
    py.globals.set("model_name", model);
    return JSON.parse(py.runPython(`json.dumps(runners[model_name](${Number(seconds)}))`));
  },
  memory() {
    // the whole wasm linear memory (it only grows), plus what Python's allocator holds
    return {
      wasm_heap_bytes: py._module.HEAP8.length,
      python_tracemalloc: null,
    };
  },
  shards({ shardCounts = [1, 2, 4], rounds = 5, seconds = 3, preset = null, batchSize = 64 }) {
    // the page's recipe with TrainingConfig(shards=k) in this one worker, alternate rounds (bench/browser/shardrate.py)
    py.globals.set("shard_args", JSON.stringify({ shard_counts: shardCounts, rounds, seconds, batch_size: batchSize,
      ...(preset ? { preset } : {}) }));
    return JSON.parse(py.runPython(`
from bench.browser import shardrate
json.dumps(shardrate.rates(runner.data_bytes[0], runner.data_bytes[1], **json.loads(shard_args)))
`));
  },
  layers({ variants, rounds = 5, seconds = 1.5 }) {
    // each layer variant against the network without it, alternate rounds (bench/layers.py's measure, pycnn only)
    py.globals.set("layer_args", JSON.stringify({ variants, rounds, seconds }));
    return JSON.parse(py.runPython(`
from bench import layers as layer_bench
a = json.loads(layer_args)
x, y = runner.data
out = {}
for variant in a["variants"]:
    samples, _ = layer_bench.measure(variant, x, y, a["rounds"], a["seconds"])
    out[variant] = {" ".join(key): values for key, values in samples.items()}
json.dumps(out)
`));
  },
  alternatives({ rounds }) {
    return JSON.parse(py.runPython(`
from bench.browser import profile_step
json.dumps(profile_step.alternatives(runner.data[0], runner.data[1], rounds=${rounds | 0}))
`));
  },
  profile({ steps, augment, model = "seed" }) {
    py.globals.set("model_name", model);
    return JSON.parse(py.runPython(`
from bench.browser import profile_step
json.dumps(profile_step.profile(runner.data[0], runner.data[1], steps=${steps | 0}, augment=${augment ? "True" : "False"}, model=model_name))
`));
  },
};

self.serveCommands(commands);
