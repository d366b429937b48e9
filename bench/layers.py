"""What each layer kind beyond conv, ReLU, max-pool and dense costs, in CPython, against PyTorch.

    python -m bench.layers                 # every variant (about 6 minutes)
    python -m bench.layers --quick         # fewer, shorter rounds
    python -m bench.layers --only BatchNorm --only Dropout

The base network is the page's default (preset two-conv-dense: conv 16, ReLU, pool, conv 32,
ReLU, pool, dense 64, ReLU, dense 10). Each variant changes it in one way (a BatchNorm after
each conv; Dropout after the hidden dense layer; average instead of max pooling; a stride-2
conv instead of the first conv + pool; LeakyReLU, Tanh or Sigmoid instead of every ReLU) and is
measured alternately with the base network, in pycnn and in PyTorch (the same layers, 1
thread), in the same rounds: training images/s (float32, Adam, batch 64, real digits) and
inference images/s (predict_proba / eval() in chunks of 256). Prints a markdown table: the
median of the rounds, and the medians of the per-round ratios with/without (pycnn and
PyTorch) and pycnn/PyTorch (the variant). Needs `python build.py` first (the bundled subset).
"""
import argparse
import statistics
import time

import numpy as np

import pycnn
from pycnn import datasets

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None

BATCH = 64
BASE = pycnn.PRESETS["two-conv-dense"]["layers"]


def _swap(kind, new):
    """Every layer of class `kind` replaced by the layer new() describes."""
    return [new() if spec["class"] == kind else spec for spec in BASE]


def _after(kind, nth, new):
    """new() inserted after the nth (0-based; None: every) layer of class kind."""
    out, seen = [], 0
    for spec in BASE:
        out.append(spec)
        if spec["class"] == kind:
            if nth is None or seen == nth:
                out.append(new())
            seen += 1
    return out


def _layer(kind, **config):
    return {"class": kind, "config": config}


def _stride():
    """The first conv with stride 2 instead of stride 1 and the pool after it: the same shapes after."""
    conv = {**BASE[0], "config": {**BASE[0]["config"], "stride": 2}}
    return [conv, BASE[1], *BASE[3:]]


VARIANTS = {  # name: (what changes, the editor-free description of the network's layers)
    "BatchNorm": ("a BatchNorm after each conv (fused conv+BN+ReLU+pool)",
                  lambda: _after("Conv2D", None, lambda: _layer("BatchNorm"))),
    "BatchNorm (dense)": ("a BatchNorm after the hidden dense layer",
                          lambda: _after("Dense", 0, lambda: _layer("BatchNorm"))),
    "Dropout": ("Dropout(0.5) after the hidden dense layer's ReLU",
                lambda: _after("ReLU", 2, lambda: _layer("Dropout", rate=0.5))),
    "AvgPool2D": ("average instead of max pooling (the conv blocks not fused)", lambda: _swap("MaxPool2D", lambda: _layer("AvgPool2D"))),
    "Conv2D stride 2": ("a stride-2 first conv instead of conv + pool (not fused)", _stride),
    "LeakyReLU": ("LeakyReLU(0.01) instead of every ReLU (the conv blocks fused)",
                  lambda: _swap("ReLU", lambda: _layer("LeakyReLU", negative_slope=0.01))),
    "Tanh": ("Tanh instead of every ReLU (the conv blocks fused)", lambda: _swap("ReLU", lambda: _layer("Tanh"))),
    "Sigmoid": ("Sigmoid instead of every ReLU (the conv blocks fused)", lambda: _swap("ReLU", lambda: _layer("Sigmoid"))),
}


def pycnn_model(layers, seed=0):
    """The network of the editor-style layer list, every argument filled in from the layer before."""
    from pycnn.page.editor import network_config

    return pycnn.Sequential.from_config(network_config(_editor_layers(layers)), seed=seed)


def _editor_layers(layers):
    """Full layer configs -> the editor's layers (what network_config fills in left out)."""
    from pycnn.page.editor import EDITOR_ARGS

    return [{"class": spec["class"], "config": {k: v for k, v in spec["config"].items()
                                               if k in EDITOR_ARGS[spec["class"]]}} for spec in layers]


def torch_model(model, seed=0):
    """The same network in PyTorch, built from the pycnn model's config (PyTorch's own initialisation)."""
    torch.manual_seed(seed)
    shapes = [model.input_shape] + model.output_shapes()
    layers = []
    for layer, shape in zip(model.layers, shapes):
        c, kind = layer.get_config(), type(layer).__name__
        if kind == "Conv2D":
            (top, bottom), (left, right) = layer.pads(*shape[1:])
            if top != bottom or left != right:
                raise ValueError("uneven padding is not built for PyTorch here")
            layers.append(torch.nn.Conv2d(c["in_channels"], c["filters"], c["kernel_size"], c["stride"], (top, left)))
        elif kind == "BatchNorm":
            norm = torch.nn.BatchNorm2d if len(shape) == 3 else torch.nn.BatchNorm1d
            layers.append(norm(c["features"], eps=c["eps"], momentum=c["momentum"]))
        else:
            layers.append({
                "ReLU": lambda: torch.nn.ReLU(), "Flatten": lambda: torch.nn.Flatten(),
                "MaxPool2D": lambda: torch.nn.MaxPool2d(c["pool_size"], c["stride"]),
                "AvgPool2D": lambda: torch.nn.AvgPool2d(c["pool_size"], c["stride"]),
                "Dense": lambda: torch.nn.Linear(c["in_features"], c["out_features"]),
                "Dropout": lambda: torch.nn.Dropout(c["rate"]),
                "LeakyReLU": lambda: torch.nn.LeakyReLU(c["negative_slope"]),
                "Tanh": lambda: torch.nn.Tanh(), "Sigmoid": lambda: torch.nn.Sigmoid(),
            }[kind]())
    return torch.nn.Sequential(*layers)


def pycnn_runners(model, x, y):
    """(train(steps), predict(images)) closures of a pycnn model on the digits."""
    opt = pycnn.Adam(1e-3)
    state = {"i": 0}

    def train(steps):
        for _ in range(steps):
            i = state["i"] % (len(x) - BATCH)
            model.train_step(x[i:i + BATCH], y[i:i + BATCH], opt)
            state["i"] += BATCH

    def predict(images):
        model.predict_proba(x[:images])
    return train, predict


def torch_runners(net, x, y):
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()
    state = {"i": 0}

    def train(steps):
        net.train()
        for _ in range(steps):
            i = state["i"] % (len(x) - BATCH)
            opt.zero_grad()
            loss_fn(net(xt[i:i + BATCH]), yt[i:i + BATCH]).backward()
            opt.step()
            state["i"] += BATCH

    def predict(images):
        net.eval()
        with torch.no_grad():
            for i in range(0, images, 256):
                torch.softmax(net(xt[i:min(i + 256, images)]), dim=1)
    return train, predict


def rate(run, unit, per_call, seconds):
    """Images per second of run(per_call) repeated for about `seconds` (after a warm-up call)."""
    run(per_call)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(per_call)
        calls += 1
    return calls * per_call * unit / (time.perf_counter() - start)


def measure(variant, x, y, rounds, seconds):
    """{(library, network, task): [images/s per round]} for the base network and the variant."""
    networks = {"without": pycnn_model(BASE), "with": pycnn_model(VARIANTS[variant][1]())}
    runners = {}
    for name, model in networks.items():
        runners["pycnn", name] = pycnn_runners(model, x, y)
        if torch is not None:
            runners["torch", name] = torch_runners(torch_model(model), x, y)
    samples = {(lib, net, task): [] for lib, net in runners for task in ("train", "predict")}
    keys = list(runners)
    for r in range(rounds):
        for key in keys if r % 2 == 0 else reversed(keys):
            train, predict = runners[key]
            samples[(*key, "train")].append(rate(train, BATCH, 5, seconds))
            samples[(*key, "predict")].append(rate(predict, 1, 1024, seconds / 2))
    return samples, networks


def ratio(a, b):
    return statistics.median(p / q for p, q in zip(a, b))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.5 s instead of 5 of 1.5 s")
    parser.add_argument("--only", action="append", choices=list(VARIANTS), help="a variant to measure (repeatable)")
    args = parser.parse_args()
    rounds, seconds = (3, 0.5) if args.quick else (5, 1.5)
    x, y, split = datasets.load_subset()
    x_train, y_train, _, _ = datasets.train_test_split(x, y, split["heldout"], split["seed"])
    x_train = np.ascontiguousarray(x_train, dtype=np.float32)
    print(f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}, 1 thread each; "
          f"base network two-conv-dense, float32, Adam, batch {BATCH}; {rounds} alternate rounds of {seconds} s "
          f"(inference {seconds / 2} s)\n")
    head = ("| variant (changed from the base network) | train images/s pycnn: without -> with (ratio) | "
            "PyTorch: without -> with (ratio) | with: pycnn / PyTorch | inference images/s pycnn: without -> with "
            "(ratio) | PyTorch inference: without -> with | with: pycnn / PyTorch |")
    print(head)
    print("|---" * 7 + "|")
    for variant in args.only or VARIANTS:
        samples, networks = measure(variant, x_train, y_train, rounds, seconds)
        med = {key: statistics.median(values) for key, values in samples.items()}
        cells = [f"{variant}: {VARIANTS[variant][0]}"]
        for task in ("train", "predict"):
            p0, p1 = samples["pycnn", "without", task], samples["pycnn", "with", task]
            cells.append(f"{med['pycnn', 'without', task]:,.0f} -> {med['pycnn', 'with', task]:,.0f} "
                         f"({ratio(p1, p0):.2f}x)")
            if torch is not None:
                t0, t1 = samples["torch", "without", task], samples["torch", "with", task]
                cells.append(f"{med['torch', 'without', task]:,.0f} -> {med['torch', 'with', task]:,.0f} "
                             f"({ratio(t1, t0):.2f}x)")
                cells.append(f"**{ratio(p1, t1):.2f}x**")
            else:
                cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |", flush=True)
    print()
    for variant in args.only or VARIANTS:
        plan = [type(step).__name__ for step in pycnn_model(VARIANTS[variant][1]())._plan]
        print(f"{variant} runs as {', '.join(plan)}")


if __name__ == "__main__":
    main()
