"""How long looking inside one step takes (pycnn.explain, pycnn.codegen), in CPython and in Pyodide.

    python -m bench.explain              # CPython, one BLAS thread
    python -m bench.explain --pyodide    # and the same measure() in Pyodide under Node.js
    python -m bench.explain --rounds 15 --models seed two-conv
    python -m bench.explain --compare    # the page's run in Pyodide vs the exported script in CPython

For every preset, on a held-out digit, with an Adam that has taken a few steps: the arithmetic
of one cell (the middle of each conv layer's map; and from its pooled map), a saliency map
(one digit, and all ten), the learner's Step (snapshot + training_step), Step again
(training_step), each with its reply packed for the page (pycnn.page.encode), Undo (restore),
and the generated script. Next to them, as references measured
in the same rounds: what the page already runs for each drawing (model.activations of one
image, as Session._inspect) and one training batch of 32 (model.train_step). Each round times
every item once, in turn; the table shows medians over the rounds.

The page's budget is 100 ms from pointing (or a prediction, or Step) to the answer. The page's
Pyodide runs this code 5-8x slower than CPython, so about 10-15 ms here.

--pyodide runs measure() in Pyodide 0.27.7 with its numpy 2.0.2 (dist/pyodide/, from
`python build.py`) under Node.js, with this checkout's pycnn sources: the page's Python and
numpy without a browser. Node is V8 like Chromium; the train_step reference shows how far
it is from the page's worker (bench/browser/RESULTS.md: two-conv train_step 15.3 ms there).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import pycnn
from pycnn import codegen, datasets, explain
from pycnn.page import encode

MODELS = ("seed", "two-conv", "lenet")
REFERENCES = ("reference: activations of one image", "reference: train_step, batch 32")


def measure(x, y, models=MODELS, rounds=30):
    """-> {model: {item: [seconds per round]}}; x (N, 1, 28, 28) float32 held-out digits, y (N,) labels.

    Runs the same in CPython and Pyodide (fused.KERNELS picks the platform's ops).
    """
    out = {}
    digit, label = x[0], int(y[0])
    batch, labels = x[:32], y[:32].astype(np.intp)
    for name in models:
        model = pycnn.preset(name, seed=0)
        optimizer = pycnn.Adam(1e-3)
        for _ in range(3):  # an optimiser with state, as after some training; buffers allocated
            model.train_step(batch, labels, optimizer)
        convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, pycnn.Conv2D)]
        shapes = model.output_shapes()
        items = {"reference: activations of one image": lambda: model.activations(digit[None])}
        for i in convs:
            f, h, w = shapes[i]
            items[f"arithmetic of a cell, layer {i}"] = (
                lambda i=i, f=f, h=h, w=w: encode(explain.conv_arithmetic(model, digit, i, f // 2, h // 2, w // 2)))
            if explain.conv_block(model.layers, i)[1]:
                items[f"arithmetic from the pooled map, layer {i}"] = lambda i=i, f=f, h=h, w=w: encode(
                    explain.conv_arithmetic(model, digit, i, f // 2, h // 4, w // 4, grid="pooled"))
        items["saliency of one digit"] = lambda: encode(explain.saliency(model, digit, 7))
        items["saliency of all ten digits"] = lambda: encode([explain.saliency(model, digit, d) for d in range(10)])
        state = {}

        def first_step():
            state["saved"] = explain.snapshot(model, optimizer)
            return encode(explain.training_step(model, optimizer, digit, label, lr=0.01))

        items["Step (snapshot + training_step)"] = first_step
        items["Step again (training_step)"] = lambda: encode(
            explain.training_step(model, optimizer, digit, label, lr=0.01))
        items["Undo (restore)"] = lambda: explain.restore(model, optimizer, state["saved"])
        items["export_script"] = lambda: codegen.export_script(model.get_config(), pycnn.TrainingConfig())
        # a batch of training, undone after, so every round trains from the same weights
        saved_run = explain.snapshot(model, optimizer)

        def train_step():
            model.train_step(batch, labels, optimizer)

        items["reference: train_step, batch 32"] = train_step
        times = {item: [] for item in items}
        for _ in range(rounds):
            for item, call in items.items():
                start = time.perf_counter()
                call()
                times[item].append(time.perf_counter() - start)
            explain.restore(model, optimizer, saved_run)
        out[name] = times
    return out


def heldout_digits(data=None, count=32):
    """The first `count` held-out digits of the page's split (float32) and their labels."""
    x, y, split = datasets.load_subset(data)
    _, _, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    return x_test[:count], y_test[:count]


def page_run(data_dir, preset, settings):
    """The page's run, as its worker makes it: Session.from_files, the preset's network with weights
    from seed 0, train(settings), step until it ends -> the last epoch's results."""
    from pycnn.page import Client, Session
    from pycnn.page.editor import editor_spec

    folder = Path(data_dir)
    client = Client(Session.from_files(folder / datasets.SUBSET_FILES[0], folder / datasets.SUBSET_FILES[1], 1500, 0))
    client("set_network", layers=editor_spec()["presets"][preset]["layers"], seed=0)
    client("train", config=settings)
    trainer = client.session.runs.active.job
    while not client("step")["ended"]:
        pass
    return trainer.history["epochs"][-1]


def script_run(data_dir, preset, settings):
    """The exported script of the same run, in CPython -> (held-out accuracy, seconds)."""
    config = pycnn.preset(preset).get_config()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / codegen.SCRIPT_NAME
        script.write_text(codegen.export_script(config, settings, seed=0, heldout=1500, split_seed=0))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(script), str(data_dir)], cwd=tmp, capture_output=True, text=True,
                              timeout=3600, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the exported script failed:\n{done.stderr[-3000:]}")
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("held-out accuracy")][-1]
    return float(line.split()[2].rstrip("%,")) / 100, seconds


NODE_RUNNER = r"""
import fs from "node:fs";
import path from "node:path";
const [pyodideDir, root, dataDir, code] = process.argv.slice(2);
const { loadPyodide } = await import(path.join(pyodideDir, "pyodide.mjs"));
const py = await loadPyodide({ indexURL: pyodideDir + "/", stdout: (l) => console.error(l) });
await py.loadPackage(["numpy"], { messageCallback: () => {} });
// this checkout's pycnn, and bench with this module, installed into site-packages as a wheel would be
const site = py.runPython("import sysconfig; sysconfig.get_path('purelib')");
const sources = [
  ...fs.readdirSync(path.join(root, "pycnn"), { recursive: true }).map((rel) => path.join("pycnn", rel)),
  path.join("bench", "__init__.py"), path.join("bench", "explain.py"),
].filter((rel) => rel.endsWith(".py") && !rel.includes("__pycache__"));
for (const rel of sources) {
  const dest = `${site}/${rel.split(path.sep).join("/")}`;
  py.FS.mkdirTree(dest.slice(0, dest.lastIndexOf("/")));
  py.FS.writeFile(dest, fs.readFileSync(path.join(root, rel)));
}
py.FS.mkdirTree("/data");
for (const name of fs.readdirSync(dataDir)) {
  py.FS.writeFile(`/data/${name}`, fs.readFileSync(path.join(dataDir, name)));
}
py.runPython("import importlib; importlib.invalidate_caches()");
process.stdout.write(py.runPython(code));
"""


def in_pyodide(code, data_dir):
    """Run Python `code` (its last line an expression giving JSON text) in Pyodide under Node.js -> the parsed JSON.

    The code can import this checkout's pycnn and this module (`from bench import explain`); the digits are in /data.
    """
    root = Path(__file__).resolve().parents[1]
    pyodide_dir = root / "dist" / "pyodide"
    if not (pyodide_dir / "pyodide.mjs").is_file():
        raise SystemExit("no dist/pyodide/: run `python build.py` first")
    with tempfile.TemporaryDirectory() as tmp:
        runner = Path(tmp) / "runner.mjs"
        runner.write_text(NODE_RUNNER)
        command = ["node", str(runner), str(pyodide_dir), str(root), str(data_dir), code]
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"the Pyodide run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def run_pyodide(models, rounds, data_dir):
    """measure() in Pyodide under Node.js -> {"numpy", "platform", "kernels", "times"}."""
    return in_pyodide(f"""
import json, sys, numpy, pycnn
from bench import explain
x, y = explain.heldout_digits("/data")
json.dumps({{"numpy": numpy.__version__, "platform": sys.platform, "kernels": str(pycnn.fused.KERNELS),
            "times": explain.measure(x, y, {list(models)!r}, {int(rounds)})}})""", data_dir)


def compare(runs, data_dir):
    """Lines: the page's run in Pyodide (Session start/step) next to the exported script in CPython."""
    lines = ["\nheld-out accuracy: the page's Session run in Pyodide under Node.js vs the exported script in CPython"]
    for preset, settings in runs:
        start = time.perf_counter()
        page = in_pyodide(f"import json\nfrom bench import explain\n"
                          f"json.dumps(explain.page_run('/data', {preset!r}, {settings!r}))", data_dir)
        page_s = time.perf_counter() - start
        accuracy, script_s = script_run(data_dir, preset, settings)
        lines.append(f"  {preset:<9} {json.dumps(settings):<40} Pyodide {page['val_accuracy']:.2%} ({page_s:.0f} s)  "
                     f"CPython {accuracy:.2%} ({script_s:.0f} s)  difference "
                     f"{100 * (accuracy - page['val_accuracy']):+.2f} points")
    return lines


def table(cpython, pyodide=None):
    """Lines of the results: median ms per item, and in Pyodide, with the ratio Pyodide / CPython."""
    lines = []
    for name, times in cpython.items():
        lines.append(f"\n{name}" + ("" if pyodide is None else "  (ms, median; Pyodide under Node.js / CPython)"))
        lines.append(f"  {'':<44}{'CPython':>10}" + ("" if pyodide is None else f"{'Pyodide':>10}{'ratio':>8}"))
        for item, seconds in times.items():
            ms = 1000 * statistics.median(seconds)
            row = f"  {item:<44}{ms:>10.2f}"
            if pyodide is not None:
                pms = 1000 * statistics.median(pyodide[name][item])
                row += f"{pms:>10.2f}{pms / ms:>8.1f}"
            lines.append(row)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyodide", action="store_true", help="also run in Pyodide under Node.js (needs dist/)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--compare", nargs="*", metavar="PRESET:EPOCHS:TRAIN_SIZE",
                        help="instead of timings: the page's run in Pyodide vs the exported script in CPython, for "
                             "each run (TRAIN_SIZE 0: all digits); without runs: 1 epoch of 2,000 digits of each "
                             "preset, and the page's defaults for the seed network")
    parser.add_argument("--json", metavar="FILE", help="also write the raw seconds")
    args = parser.parse_args(argv)
    if args.compare is not None:
        runs = [(name, {"epochs": 1, "train_size": 2000}) for name in MODELS] + [("seed", {})]
        if args.compare:
            runs = []
            for text in args.compare:
                name, epochs, size = text.split(":")
                runs.append((name, {"epochs": int(epochs), "train_size": int(size) or None}))
        print("\n".join(compare(runs, datasets.subset_dir())))
        return
    x, y = heldout_digits()
    print(f"CPython {sys.version.split()[0]}, numpy {np.__version__}, kernels {pycnn.fused.KERNELS}; "
          f"{args.rounds} rounds; budget 100 ms in the page (~10-15 ms in CPython)")
    cpython = measure(x, y, args.models, args.rounds)
    pyodide = None
    if args.pyodide:
        ran = run_pyodide(args.models, args.rounds, datasets.subset_dir())
        pyodide = ran["times"]
        print(f"Pyodide: numpy {ran['numpy']} on {ran['platform']}, kernels {ran['kernels']}")
    print("\n".join(table(cpython, pyodide)))
    if args.json:
        Path(args.json).write_text(json.dumps({"cpython": cpython, "pyodide": pyodide}, indent=1))


if __name__ == "__main__":
    main()
