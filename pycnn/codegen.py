"""The pycnn Python of a network and its training settings, written from the same data the page
runs: a model config (Sequential.get_config()) and a TrainingConfig.

- network_code(model_config, seed): `model = Sequential([...])`, the same layers and weights.
- training_code(training_config): `config = TrainingConfig(...)`, every setting spelled out.
- python_code(...): what the page shows: the digits and their split, the network, the settings,
  the Trainer run with the held-out digits as validation (what pycnn.session's start/step run).
- export_script(...): the same as a script that runs in CPython after installing pycnn, prints
  each epoch and the held-out accuracy, and saves model.npz (which the page can load).
"""
import json

from . import __version__
from .layers import LAYERS
from .training import TrainingConfig

PAGE_IMPORTS = ("Sequential", "Trainer", "TrainingConfig", "datasets")
SCRIPT_NAME = "train_pycnn.py"  # the exported script's file name


def _literal(value):
    """A JSON-like value as Python source: double-quoted strings, True/False/None, ints, shortest floats."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        items = ", ".join(_literal(v) for v in value)
        return f"({items}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{items}]"
    raise ValueError(f"cannot write {type(value).__name__} {value!r} as Python")


def _layer_call(spec):
    """{"class", "config"} -> "Conv2D(in_channels=1, filters=16, kernel_size=3)", leaving out what the defaults give."""
    import pycnn  # the package: the names the generated code imports

    kind = spec["class"]
    cls = LAYERS.get(kind)
    if cls is None or getattr(pycnn, kind, None) is not cls:
        raise ValueError(f"layer kind {kind!r} is not one pycnn exports, so generated code cannot import it")
    full = cls.from_config(spec["config"]).get_config()
    args = dict(full)
    for name in list(args):
        fewer = {k: v for k, v in args.items() if k != name}
        try:
            if cls.from_config(fewer).get_config() == full:
                args = fewer
        except ValueError:  # a required argument
            pass
    return f"{kind}({', '.join(f'{name}={_literal(value)}' for name, value in args.items())})"


def network_code(model_config, seed=0):
    """A model config (Sequential.get_config()) -> Python that builds it as `model`, weights drawn from seed.

    Sequential(layers, seed=seed) draws the same weights as Sequential.from_config(config, seed).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int (the weights are drawn from it), got {seed!r}")
    layers = "".join(f"    {_layer_call(spec)},\n" for spec in model_config["layers"])
    dtype = "" if model_config["dtype"] == "float32" else f", dtype={_literal(model_config['dtype'])}"
    return (f"model = Sequential([\n{layers}], seed={seed}, input_shape={_literal(tuple(model_config['input_shape']))}"
            f"{dtype})\n")


def training_code(training_config):
    """A TrainingConfig (or its dict) -> Python that makes it as `config`, every setting spelled out."""
    config = training_config
    if not isinstance(config, TrainingConfig):
        config = TrainingConfig.from_dict(config)
    fields = "".join(f"    {name}={_literal(value)},\n" for name, value in config.to_dict().items())
    return f"config = TrainingConfig(\n{fields})\n"


def _imports(model_config, extra=PAGE_IMPORTS):
    names = sorted({spec["class"] for spec in model_config["layers"]} | set(extra), key=lambda n: (n[0].islower(), n))
    return f"from pycnn import {', '.join(names)}\n"


def _body(model_config, training_config, seed, heldout, split_seed, data="", run="trainer.run()\n"):
    split = (f"# the page's digits, split as the page splits them: {heldout} held out (each digit its share,\n"
             f"# seed {split_seed}), the rest shuffled for training\n"
             f"x, y, _ = datasets.load_subset({data})\n"
             f"x_train, y_train, x_heldout, y_heldout = datasets.train_test_split(x, y, test_size={heldout}, "
             f"seed={split_seed})\n")
    return (f"{split}\n{network_code(model_config, seed)}\n{training_code(training_config)}\n"
            f"# the run the page makes: batch after batch, the held-out digits scored after every epoch\n"
            f"trainer = Trainer(model, x_train, y_train, config, validation_data=(x_heldout, y_heldout))\n{run}")


def python_code(model_config, training_config, seed=0, heldout=1500, split_seed=0):
    """The pycnn Python of the page's current network and settings (what the page shows) -> str.

    model_config: Sequential.get_config(); training_config: TrainingConfig or its dict; seed:
    the seed the network's weights were drawn from; heldout, split_seed: the page's split.
    """
    return (_imports(model_config) + "\n" + _body(model_config, training_config, seed, heldout, split_seed)
            + "print(model.evaluate(x_heldout, y_heldout))\n")


SCRIPT_HEADER = '''"""Train a pycnn network as the page trains it (made by pycnn {version}).

    python -m pip install pycnn-{version}-py3-none-any.whl   # the page's wheel, or `pip install .` in a pycnn checkout
    python {script} [DIGITS_FOLDER]

DIGITS_FOLDER holds the page's digits, subset-images-idx3-ubyte.gz and subset-labels-idx1-ubyte.gz
(the site's data/ folder; dist/data/ of a pycnn checkout after `python build.py`). Without it,
pycnn looks in $PYCNN_DATA and dist/data/. Writes model.npz, which the page's Load model reads.

The page runs this same code (pycnn in Pyodide). The digits, the split, the weights, the batches
and their augmentation are the same; only float rounding differs (the browser's numpy has no
BLAS and sums in another order, and it computes 3x3 convolutions of 4 or more channels by
Winograd's transform), so the held-out accuracy agrees to a few tenths of a point.
"""
import sys

'''

SCRIPT_RUN = '''

def report(progress):
    """Print each epoch's result as it ends."""
    for result in progress["epoch_results"]:
        print(f"epoch {result['epoch']}/{progress['epochs']}: loss {result['loss']:.4f}, "
              f"train accuracy {result['accuracy']:.2%}, held-out accuracy {result['val_accuracy']:.2%}")


print(f"training on {len(trainer.x)} digits, {len(y_heldout)} held out")
trainer.run(callback=report)
scores = model.evaluate(x_heldout, y_heldout)
print(f"held-out accuracy {scores['accuracy']:.2%}, loss {scores['loss']:.4f}")
model.save("model.npz")
print("saved model.npz")
'''


def export_script(model_config, training_config, seed=0, heldout=1500, split_seed=0):
    """python_code as a script that reproduces the page's run in CPython -> str (see SCRIPT_HEADER)."""
    body = _body(model_config, training_config, seed, heldout, split_seed,
                 data="sys.argv[1] if len(sys.argv) > 1 else None", run="")
    header = SCRIPT_HEADER.format(version=__version__, script=SCRIPT_NAME)
    return header + _imports(model_config) + "\n" + body + SCRIPT_RUN
