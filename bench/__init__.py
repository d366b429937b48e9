"""pycnn's benchmarks. Each runs from the checkout's root as a module; `--help` says what it measures.

CPython (results in BENCHMARKS.md):
    python -m bench.cpython           training vs PyTorch and the seed post's code, predict latency, memory
    python -m bench.layers            what each newer layer kind costs (BatchNorm, Dropout, ...), vs PyTorch
    python -m bench.explain           looking inside one step (pycnn.explain, codegen), CPython and Pyodide
    python -m bench.real_mnist        the page recipe on the real MNIST test set
    python -m bench.drawn_digits      held-out digits replayed as pen strokes
    python -m bench.handwriting       UNIPEN pen digits replayed on the page's canvas
    python -m bench.recipes           which network and recipe the page should train by default
    python -m bench.teach             fine-tuning on a writer's own drawings
    python -m bench.classes           your own classes: letters taught by some writers, read on others'
    python -m bench.shards            data-parallel steps: shards in one process and over helper processes
    python -m bench.export            ONNX and TensorFlow.js exports: time, size, agreement with pycnn
In the page, headless Chromium (bench.browser; results in bench/browser/RESULTS.md):
    python -m bench.browser.browser   training vs TensorFlow.js, page load, one click on Train, memory
    python -m bench.browser.editor    the network editor and the largest network it allows
    python -m bench.browser.handwriting, .inside, .offline, .teach, .classes
strokes (digits as pen strokes and back) and seed_code (the seed post's code) serve the others.

Importing any of them first asks for one BLAS thread, unless the environment already names a
number: on two shared cores more threads cost more than they give and make timings swing.
"""
import contextlib
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: the benchmarks import it after this package


@contextlib.contextmanager
def heavy_lock(path):
    """An exclusive flock on path for the duration (nothing when path is None): long grids on a
    shared machine take turns with other heavy jobs instead of disturbing their timings."""
    if path is None:
        yield
        return
    import fcntl  # only here: the package is also imported in Pyodide, which may lack it

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
