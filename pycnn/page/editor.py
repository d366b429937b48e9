"""The page's network editor: what it offers, the networks it can build, and their summaries.

The editor describes a network as a list of layers [{"class", "config"}] with only the
arguments a learner chooses; network_config fills in the rest from the layer before and
refuses, naming the layer and why, a network that does not fit or that the page cannot hold.
"""
import math

from ..checks import REQUIRED, Choice, Float, Int, check_args, number
from ..layers import LAYERS
from ..model import Sequential
from ..presets import DEFAULT_PRESET, PRESETS
from .current import CLASSES, INPUT_SHAPE
from .protocol import request

PRESET_LABELS = {
    "two-conv-dense": "Two conv layers (16, 32 filters) and a dense layer of 64",
    "two-conv": "Two conv layers (16, 32 filters)",
    "seed": "The seed post's network (one conv layer)",
    "lenet": "LeNet-5-like (5x5 filters, dense 120-84)",
}
# What the editor offers of each layer kind: narrower than the library's bounds, so that whatever
# can be built fits the page and trains in reasonable time. Arguments not listed are fixed
# (2x2 pooling, BatchNorm's momentum and eps) or follow from the layer before (in_channels,
# in_features, features). An argument with a default is left out of the editor's layers while it
# has that value (the presets are written without a conv stride).
EDITOR_ARGS = {
    "Conv2D": {"filters": Int(1, 64), "kernel_size": Choice((3, 5)), "padding": Choice(("valid", "same")),
               "stride": Choice((1, 2), default=1)},
    "ReLU": {},
    "MaxPool2D": {},
    "Flatten": {},
    "Dense": {"out_features": Int(1, 512)},
    "BatchNorm": {},
    "Dropout": {"rate": Float(0, 0.9, default=0.5)},
    "AvgPool2D": {},
    "LeakyReLU": {"negative_slope": Float(0, 1, default=0.01)},
    "Tanh": {},
    "Sigmoid": {},
}
FIXED_ARGS = {"MaxPool2D": {"pool_size": 2, "stride": 2}, "AvgPool2D": {"pool_size": 2, "stride": 2},
              "BatchNorm": {"momentum": 0.1, "eps": 1e-5}}
POOLING = ("MaxPool2D", "AvgPool2D")
MAX_LAYERS = 16
MAX_PARAMS = 1_000_000
# forward multiply-adds per digit: the two-conv preset needs 0.7 M; 5 M trains at about a minute per
# epoch of 8,500 digits in the page on a 2-core laptop
MAX_WORK = 5_000_000


class Editor:
    """The editor's requests: the current network, a network checked, a network made current."""

    def __init__(self, session):
        self.session = session

    @request(during_run="answer")
    def network(self):
        """The current model's network for the editor -> {"layers", "editable", "preset" (its name, or None),
        "config" (Sequential.get_config(): what `python -m pycnn train --arch` reads), and its summary}."""
        config = self.session.current.model.get_config()
        layers, editable = editor_layers(config)
        names = [name for name in PRESET_LABELS if PRESETS[name]["layers"] == config["layers"]]
        return {"layers": layers, "editable": editable, "preset": names[0] if names else None, "config": config,
                **self.summary(self.session.current.model)}

    @request(during_run="answer")
    def check_network(self, layers):
        """The summary of the network the editor describes, or a ValueError saying which layer does not fit."""
        return self.summary(Sequential.from_config(network_config(layers)))

    @request(then=("filters",))
    def set_network(self, layers, seed=0):
        """Make the editor's network the current model, with fresh weights -> network(). Not evaluated: the
        page shows no accuracy for fresh weights, and the held-out digits take a second in Pyodide."""
        seed = number("seed", seed, 0, 2 ** 32 - 1, integer=True)
        self.session.current.replace(Sequential.from_config(network_config(layers), seed=seed), seed)
        return self.network()

    def summary(self, model):
        """{"rows" (the Keras-style summary), "total_params", "work" (multiply-adds per digit), "images_per_second":
        this machine's estimate {"train", "eval"} once measured, else None}."""
        return {"rows": model.summary_rows(), "total_params": model.count_params(), "work": model.work(),
                "images_per_second": self.session.runs.images_per_second(model)}


def editor_spec():
    """What the page's network editor offers: the layer kinds and their arguments, the limits, the presets."""
    return {
        "kinds": {kind: {"summary_name": LAYERS[kind].summary_name, "args": {name: arg.spec() for name, arg in args.items()}}
                  for kind, args in EDITOR_ARGS.items()},
        "max_layers": MAX_LAYERS, "max_params": MAX_PARAMS, "max_work": MAX_WORK,
        "classes": CLASSES,
        "presets": {name: {"label": label, "layers": editor_layers(PRESETS[name])[0]} for name, label in PRESET_LABELS.items()},
        "default_preset": DEFAULT_PRESET,
    }


def editor_layers(config):
    """A model config -> (the editor's layers [{"class", "config"}], whether the editor can change them all)."""
    layers, editable = [], True
    for spec in config["layers"]:
        kind, full = spec["class"], spec["config"]
        args = EDITOR_ARGS.get(kind, {})
        layers.append({"class": kind, "config": {name: full[name] for name, arg in args.items()
                                                 if name in full and not _is_default(arg, full[name])}})
        try:
            check_args(args, layers[-1]["config"])
            fixed = FIXED_ARGS.get(kind, {})
            editable &= kind in EDITOR_ARGS and all(full.get(name) == value for name, value in fixed.items())
        except ValueError:
            editable = False
    return layers, editable


def network_config(layers):
    """The editor's layers [{"class", "config"}] -> a full model config (the arguments that follow from
    the layer before filled in), or a ValueError that names the layer (counted from 1) and says why:
    it does not fit the layer before, the last layer is not the 10 digits, or the network is more
    than the page can hold or train in reasonable time. Nothing is allocated."""
    if not isinstance(layers, list) or not layers:
        raise ValueError("the network needs at least one layer")
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"the page holds networks of at most {MAX_LAYERS} layers; this one has {len(layers)}")
    shape, full, sizes = INPUT_SHAPE, [], []  # sizes: (weights, multiply-adds per digit) of each layer
    for position, spec in enumerate(layers, 1):
        kind = spec.get("class") if isinstance(spec, dict) else None
        if kind not in EDITOR_ARGS:
            raise ValueError(f"layer {position}: the editor has no layer kind {kind!r} (it has {', '.join(EDITOR_ARGS)})")
        where = f"layer {position} ({kind})"
        if kind == "Dense" and len(shape) != 1:
            raise ValueError(f"{where} needs a flat input but gets {_shape(shape)}: add a Flatten layer before it")
        if kind in ("Conv2D", *POOLING) and len(shape) != 3:
            raise ValueError(f"{where} works on images (channels, height, width) but gets the flat {_shape(shape)}: "
                             f"move it before the Flatten layer")
        try:
            config = {**check_args(EDITOR_ARGS[kind], spec.get("config") or {}), **FIXED_ARGS.get(kind, {}),
                      **LAYERS[kind].input_args(shape)}
            layer = LAYERS[kind].from_config(config)
            sizes.append((sum(math.prod(s) for s in layer.weight_shapes().values()), layer.work(shape)))
            shape = layer.output_shape(shape)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        full.append({"class": kind, "config": config})
    last = full[-1]
    if last["class"] != "Dense" or last["config"]["out_features"] != CLASSES:
        raise ValueError(f"layer {len(full)} ({last['class']}): the last layer must be a Dense layer with {CLASSES} "
                         f"units, one per digit")
    weights, work = (sum(column) for column in zip(*sizes))
    if weights > MAX_PARAMS:
        position = max(range(len(sizes)), key=lambda i: sizes[i][0]) + 1
        raise ValueError(f"layer {position} ({full[position - 1]['class']}) has {sizes[position - 1][0]:,} of the network's "
                         f"{weights:,} weights; the page holds at most {MAX_PARAMS:,}: give it fewer filters or "
                         f"units, or pool before it")
    if work > MAX_WORK:
        position = max(range(len(sizes)), key=lambda i: sizes[i][1]) + 1
        raise ValueError(f"the network needs {work / 1e6:.1f} M multiply-adds per digit, more than the "
                         f"{MAX_WORK / 1e6:.0f} M the page trains in reasonable time; layer {position} "
                         f"({full[position - 1]['class']}) alone needs {sizes[position - 1][1] / 1e6:.1f} M: give it "
                         f"fewer filters, or pool before it")
    return {"input_shape": list(INPUT_SHAPE), "dtype": "float32", "layers": full}


def _is_default(arg, value):
    """True when value is arg's default (of the same type: a stride of 1.0 is not the default 1)."""
    return arg.default is not REQUIRED and type(value) is type(arg.default) and value == arg.default


def _shape(shape):
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
