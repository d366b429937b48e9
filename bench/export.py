"""Exporting to ONNX and TensorFlow.js (pycnn.export): how long it takes, how large the files are and
how far the runtimes' probabilities are from pycnn's.

    python -m bench.export                      # every preset, trained for one epoch
    python -m bench.export --model m.npz ...    # model files (the CLI's or the page's downloads)
    python -m bench.export --epochs 0           # random weights

For each model: the median time of to_onnx and to_tfjs (of --rounds), the files' sizes (the .onnx
file; model.json plus model.weights.bin), and on --digits held-out digits of the bundled subset the
largest |p_pycnn - p_runtime| over every digit and class for onnxruntime (CPU) and for TensorFlow.js
4.22 in Node.js (pure JavaScript, cpu backend, tests/export_tfjs_check.mjs), with each runtime's
time for those digits next to pycnn's predict_proba, one thread each (TensorFlow.js' cpu backend is
single-threaded JavaScript, after one warm-up prediction), for scale.
"""
import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import pycnn
from pycnn import datasets, export

ROOT = Path(__file__).resolve().parents[1]
CHECK_SCRIPT = ROOT / "tests" / "export_tfjs_check.mjs"


def timed(function, rounds):
    """(the median seconds of `rounds` calls, the last result)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def tfjs_run(inputs, folders):
    """TensorFlow.js' reply for each folder (tests/export_tfjs_check.mjs)."""
    done = subprocess.run(["node", str(CHECK_SCRIPT), str(inputs), *map(str, folders)], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"TensorFlow.js check failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])["models"]


def measure(models, x, rounds=5):
    """models: {name: Sequential}; x: (N, 1, 28, 28) float32 digits -> one row per model."""
    import onnxruntime as ort

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = tmp / "digits.f32"
        np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype="<f4").tofile(inputs)
        for name, model in models.items():
            pycnn_s, want = timed(lambda: model.predict_proba(x), rounds)
            onnx_s, onnx_bytes = timed(lambda: export.to_onnx(model), rounds)
            tfjs_s, tfjs_files = timed(lambda: export.to_tfjs(model), rounds)
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1  # as pycnn's one BLAS thread
            session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
            session.run(None, {"input": x[:1]})  # warm up
            ort_s, got = timed(lambda: session.run(None, {"input": x})[0], rounds)
            folder = tmp / name
            folder.mkdir()
            for file_name, data in tfjs_files.items():
                (folder / file_name).write_bytes(data)
            (reply,) = tfjs_run(inputs, [folder])
            tfjs_p = np.array(reply["probabilities"], np.float32).reshape(reply["shape"])
            rows.append({
                "model": name, "params": model.count_params(), "accuracy": None,
                "onnx_ms": onnx_s * 1e3, "tfjs_ms": tfjs_s * 1e3,
                "onnx_bytes": len(onnx_bytes), "tfjs_bytes": sum(map(len, tfjs_files.values())),
                "onnx_diff": float(np.abs(got - want).max()), "tfjs_diff": float(np.abs(tfjs_p - want).max()),
                "pycnn_predict_ms": pycnn_s * 1e3, "ort_predict_ms": ort_s * 1e3, "tfjs_predict_ms": reply["predict_ms"],
            })
    return rows


def table(rows, digits):
    head = ("| model | weights | held-out accuracy | export ONNX / TF.js | size .onnx / TF.js files | "
            f"max abs diff on {digits:,} digits: onnxruntime / TF.js | predict {digits:,} digits: "
            "pycnn / onnxruntime / TF.js cpu |")
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.2%}"
        lines.append(f"| {r['model']} | {r['params']:,} | {accuracy} | {r['onnx_ms']:.1f} / {r['tfjs_ms']:.1f} ms | "
                     f"{r['onnx_bytes'] / 1e3:,.1f} / {r['tfjs_bytes'] / 1e3:,.1f} kB | "
                     f"{r['onnx_diff']:.1e} / {r['tfjs_diff']:.1e} | "
                     f"{r['pycnn_predict_ms']:.0f} / {r['ort_predict_ms']:.0f} / {r['tfjs_predict_ms']:.0f} ms |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", metavar="FILE", help="model files to export (default: every preset)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of training for each preset (0: random weights)")
    parser.add_argument("--digits", type=int, default=1000, help="held-out digits the runtimes read")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (the median is shown)")
    args = parser.parse_args()
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass
    x, y, split = datasets.load_subset()
    x_train, y_train, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    x, y = x_test[:args.digits], y_test[:args.digits]
    if args.model:
        models = {Path(path).name: pycnn.load(path) for path in args.model}
    else:
        models = {}
        for name in pycnn.PRESETS:
            model = pycnn.preset(name, seed=0)
            if args.epochs:
                model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, optimizer=pycnn.Adam(1e-3))
            models[name] = model
    rows = measure(models, x, args.rounds)
    for row in rows:
        row["accuracy"] = models[row["model"]].evaluate(x_test, y_test)["accuracy"]
    import onnxruntime

    trained = f"{args.epochs} epoch(s), batch 32, Adam 1e-3" if not args.model else "model files"
    print(f"numpy {np.__version__}, onnxruntime {onnxruntime.__version__}, pycnn {pycnn.__version__}; {trained}; "
          f"held-out accuracy on {len(y_test):,} digits; medians of {args.rounds} rounds")
    print(table(rows, len(x)))


if __name__ == "__main__":
    main()
