"""The training step loop the browser benchmark times, identical in CPython and Pyodide.

In Pyodide the bench worker installs the bench package and imports this module (the __main__
block does not run there). In CPython the browser benchmark starts it as a child process:

    OPENBLAS_NUM_THREADS=1 python -m bench.browser.steploop X.u8 Y.u8 [PRESET]

and sends one command per line on stdin, getting one JSON line back:
    run SECONDS   -> {"images_per_second", "steps", "seconds", "loss"}
    rss           -> {"peak_rss_bytes", "rss_bytes", "rss_before_training_bytes"}
    quit
X.u8 is N*784 raw uint8 pixels, Y.u8 N uint8 labels: the same digits, in the same order,
that the browser workers train on.
"""
import json
import os
import sys
import time

import numpy as np

import pycnn

BATCH = 32


def make_runner(x_bytes, y_bytes, batch=BATCH, seed=0, lr=1e-3, model="seed"):
    """A function run(seconds) -> stats, training a preset (pycnn.presets) with Adam on the
    digits, batch after batch in order, wrapping around. No augmentation."""
    x = (np.frombuffer(x_bytes, dtype=np.uint8).astype(np.float32) / np.float32(255)).reshape(-1, 1, 28, 28)
    y = np.frombuffer(y_bytes, dtype=np.uint8).astype(np.intp)
    if len(x) != len(y) or len(x) < batch:
        raise ValueError(f"{len(x)} images, {len(y)} labels")
    net = pycnn.preset(model, seed=seed)
    opt = pycnn.Adam(lr)
    batches = len(x) // batch
    state = {"step": 0, "loss": float("nan")}

    def steps(n):
        for _ in range(n):
            i = (state["step"] % batches) * batch
            state["loss"], _ = net.train_step(x[i:i + batch], y[i:i + batch], opt)
            state["step"] += 1

    def run(seconds):
        done, start = 0, time.perf_counter()
        while True:
            steps(5)
            done += 5
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        return {"images_per_second": done * batch / elapsed, "steps": done, "seconds": elapsed,
                "loss": float(state["loss"]), "total_steps": state["step"]}

    steps(3)  # warm-up: the fused block allocates its buffers on the first steps
    run.model = net
    run.optimizer = opt
    run.data = (x, y)
    return run


def _rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def main(argv):
    import resource
    with open(argv[1], "rb") as fx, open(argv[2], "rb") as fy:
        run = make_runner(fx.read(), fy.read(), model=argv[3] if len(argv) > 3 else "seed")
    rss_before = _rss_bytes()
    print(json.dumps({"ready": True, "numpy": np.__version__,
                      "blas": os.environ.get("OPENBLAS_NUM_THREADS")}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "run":
            out = run(float(cmd[1]))
        elif cmd[0] == "rss":
            out = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                   "rss_bytes": _rss_bytes(), "rss_before_training_bytes": rss_before}
        else:
            out = {"error": f"unknown command {cmd[0]!r}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv)
