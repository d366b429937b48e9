"""Teach it your handwriting: fine-tune the page's network on a writer's own drawings, score the rest.

    python -m bench.teach --unipen FILE                          # the page's network and recipes, 1 and 3 per digit
    python -m bench.teach --unipen FILE --model model.npz        # a model file instead of training one
    python -m bench.teach --unipen FILE --group contributor      # each contributing lab as one "writer"
    python -m bench.teach --unipen FILE --steps 300 --lr 0.002   # change the fine-tune recipe
    python -m bench.teach --unipen FILE --join                   # also: a full training run with the drawings joined

--unipen is a pen-digits JSON in the UNIPEN digits' format ({"digits": [{"label", "writer",
"contributor", "strokes"}]}; not part of the project). Every digit is drawn on the page's canvas
as bench/handwriting.py draws it (placement seed --placement-seed, the page's brush, to_mnist).
The network is the page's: pycnn.presets.DEFAULT_PRESET trained with TrainingConfig's defaults on
the bundled subset's 8,500 training digits (or --model). For every writer with at least K
drawings of each digit and at least one more, and each K of --per-digit: K drawings of each digit,
chosen at random, are what the writer teaches; pycnn.yourdigits.FineTuneJob (the page's
"Fine-tune": the honest estimate, then the fine-tune on all K * 10) runs with the recipe
FineTuneConfig (defaults unless changed), and the writer's other drawings are scored before and
after. Printed: per writer and mean accuracy before -> after, the job's cross-validated estimate
next to the true after-accuracy, the held-out MNIST accuracy before -> after (1,500 digits never
trained on), and the CPython seconds of one fine-tune and of the whole job, with a page estimate
(CPython seconds / the page's measured speed ratio to CPython for the network, --page-ratio).
--lock FILE takes an exclusive flock on FILE for the measuring (not for drawing the digits).
"""
import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np

import pycnn
from bench import handwriting, heavy_lock
from pycnn import datasets, yourdigits
from pycnn.presets import DEFAULT_PRESET, PRESETS, preset
from pycnn.training import Trainer, TrainingConfig

# the page's training speed / CPython's for the same network (bench/browser/RESULTS.md, BENCHMARKS.md)
PAGE_RATIO = {"seed": 0.12, "two-conv": 0.18}
PAGE_BUDGET_S = 10


def page_data():
    """The subset split as the page splits it -> (x_train, y_train, x_heldout, y_heldout)."""
    x, y, split = datasets.load_subset()
    return datasets.train_test_split(x, y, split["heldout"], split["seed"])


def network_name(model):
    """The preset the model's network is, or "custom"."""
    names = [name for name, config in PRESETS.items() if config["layers"] == model.get_config()["layers"]]
    return names[0] if names else "custom"


def page_model(x_train, y_train, seed=0):
    """The page's default network trained with the page's recipe -> (model, CPython seconds)."""
    model = preset(DEFAULT_PRESET, seed=seed)
    start = time.perf_counter()
    Trainer(model, x_train, y_train, TrainingConfig(seed=seed)).run()
    return model, time.perf_counter() - start


def groups(labels, names, per_digit):
    """{name: indices} of the groups with >= per_digit drawings of every digit and at least one more."""
    members = collections.defaultdict(list)
    for i, name in enumerate(names):
        members[name].append(i)
    chosen = {}
    for name in sorted(members):
        idx = np.array(members[name])
        counts = np.bincount(labels[idx], minlength=10)
        if counts.min() >= per_digit and len(idx) > 10 * per_digit:
            chosen[name] = idx
    return chosen


def teach_split(indices, labels, per_digit, rng):
    """(taught, others): per_digit random drawings of each digit, and the rest."""
    taught = np.concatenate([rng.choice(indices[labels[indices] == d], per_digit, replace=False) for d in range(10)])
    return np.sort(taught), np.setdiff1d(indices, taught)


def teach_writer(model, x, labels, indices, per_digit, data, config, seed, index):
    """One writer, one per_digit: the FineTuneJob's result and the true before/after on the others."""
    x_train, y_train, x_heldout, y_heldout = data
    rng = np.random.default_rng([seed, index, per_digit])
    taught, others = teach_split(indices, labels, per_digit, rng)
    start = time.perf_counter()
    job = yourdigits.FineTuneJob(model, x[taught], labels[taught], x_train, y_train, x_heldout, y_heldout, config)
    job.run()
    seconds = time.perf_counter() - start
    result = job.result()
    return {"per_digit": per_digit, "taught": len(taught), "others": len(others),
            "before": float(np.mean(model.predict(x[others]) == labels[others])),
            "after": float(np.mean(job.model.predict(x[others]) == labels[others])),
            "estimate": result["digits"]["after"], "estimate_before": result["digits"]["before"],
            "method": result["digits"]["method"], "untaught": result["digits"]["untaught"],
            "mnist_before": result["mnist"]["before"], "mnist_after": result["mnist"]["after"],
            "job_s": seconds, "fine_tune_s": seconds / len(job.runs), "runs": len(job.runs)}


def join_writer(x, labels, indices, per_digit, data, seed, index, repeat):
    """A full page-recipe training run with the writer's taught drawings joined -> before-less scores."""
    x_train, y_train, x_heldout, y_heldout = data
    rng = np.random.default_rng([seed, index, per_digit])
    taught, others = teach_split(indices, labels, per_digit, rng)
    xj, yj = yourdigits.join(x_train, y_train, x[taught], labels[taught], repeat)
    model = preset(DEFAULT_PRESET, seed=0)
    Trainer(model, xj, yj, TrainingConfig()).run()
    return {"after": float(np.mean(model.predict(x[others]) == labels[others])),
            "mnist_after": model.evaluate(x_heldout, y_heldout)["accuracy"]}


def summary(rows, ratio):
    """Lines: the means over writers of one per_digit."""
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    pooled_others = sum(r["others"] for r in rows)
    pooled = lambda key: sum(r[key] * r["others"] for r in rows) / pooled_others  # noqa: E731
    drop = [100 * (r["mnist_before"] - r["mnist_after"]) for r in rows]
    estimated = [r for r in rows if r["estimate"] is not None]
    gap = [100 * (r["estimate"] - r["after"]) for r in estimated]
    k = rows[0]["per_digit"]
    lines = [
        f"{k} per digit, {len(rows)} writers ({pooled_others:,} other drawings scored): "
        f"before {mean('before'):.2%} -> after **{mean('after'):.2%}** (mean over writers; pooled "
        f"{pooled('before'):.2%} -> {pooled('after'):.2%}); writers at 100% after: "
        f"{sum(r['after'] == 1 for r in rows)}, below 90%: {sum(r['after'] < 0.9 for r in rows)}",
        f"  held-out MNIST: {mean('mnist_before'):.2%} -> {mean('mnist_after'):.2%}, drop mean {np.mean(drop):+.2f} "
        f"points, worst {max(drop):+.2f}, best {min(drop):+.2f}",
    ]
    if estimated:
        lines.append(f"  the job's estimate ({estimated[0]['method']}): mean {np.mean([r['estimate'] for r in estimated]):.2%} "
                     f"vs true after {np.mean([r['after'] for r in estimated]):.2%} (estimate - true: mean "
                     f"{np.mean(gap):+.2f} points, mean |difference| {np.mean(np.abs(gap)):.2f}); untaught scored digits "
                     f"{sum(r['untaught'] for r in estimated)} of {sum(r['taught'] for r in estimated)}")
    fine, job = mean("fine_tune_s"), mean("job_s")
    lines.append(f"  CPython: {fine:.2f} s per fine-tune, {job:.2f} s per job ({rows[0]['runs']} fine-tunes); page "
                 f"estimate (/ {ratio:g}): {fine / ratio:.1f} s per fine-tune, **{job / ratio:.1f} s** per job "
                 f"({'within' if job / ratio <= PAGE_BUDGET_S else 'over'} the {PAGE_BUDGET_S} s budget)")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unipen", required=True, metavar="FILE", help="pen digits JSON (UNIPEN digits' format)")
    parser.add_argument("--model", help="a model file; default: train the page's network with the page's recipe")
    parser.add_argument("--group", choices=["writer", "contributor"], default="writer",
                        help="who counts as one writer (contributor: every writer of one lab together)")
    parser.add_argument("--per-digit", type=int, nargs="+", default=[1, 3], help="drawings taught per digit")
    parser.add_argument("--seed", type=int, default=0, help="which drawings are taught (default 0)")
    parser.add_argument("--placement-seed", type=int, default=0, help="bench/handwriting.py's placement seed")
    parser.add_argument("--page-ratio", type=float, help="the page's speed / CPython's for the network "
                        f"(default: {', '.join(f'{k} {v}' for k, v in PAGE_RATIO.items())})")
    parser.add_argument("--join", action="store_true", help="also train the page recipe with the drawings joined")
    parser.add_argument("--join-share", type=float, default=0.05, help="the joined drawings' share (auto_repeat)")
    parser.add_argument("--per-writer", action="store_true", help="print every writer's line")
    parser.add_argument("--json", help="write every writer's numbers to this file")
    parser.add_argument("--lock", help="hold an exclusive flock on this file while measuring")
    for name, value in yourdigits.FineTuneConfig.defaults().items():
        # the recipe's seed is --fine-tune-seed: --seed already picks the taught drawings
        flag = "--fine-tune-seed" if name == "seed" else f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, dest=f"recipe_{name}", action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, dest=f"recipe_{name}", type=type(value), default=None, metavar=name.upper(),
                                help=f"fine-tune recipe (default {value})")
    args = parser.parse_args()
    overrides = {name: getattr(args, f"recipe_{name}") for name in yourdigits.FineTuneConfig.defaults()
                 if getattr(args, f"recipe_{name}") is not None}
    config = yourdigits.FineTuneConfig(**overrides)

    replay = handwriting.Replay(args.unipen, args.placement_seed)
    print(replay.describe())
    digits = handwriting.load_unipen(args.unipen)
    names = [d[args.group] for d in digits]
    data = page_data()
    with heavy_lock(args.lock):
        if args.model:
            model = pycnn.load(args.model)
            print(f"model: {args.model}")
        else:
            model, seconds = page_model(data[0], data[1])
            print(f"model: the page's network ({DEFAULT_PRESET}) trained with the page's recipe "
                  f"({TrainingConfig()}) in {seconds:.1f} s")
        net = network_name(model)
        ratio = args.page_ratio or PAGE_RATIO.get(net, 0.15)
        print(f"network {net}, {model.count_params():,} params; held-out MNIST {model.evaluate(*data[2:])['accuracy']:.2%}; "
              f"UNIPEN all {replay.accuracy(model):.2%}")
        print(f"fine-tune recipe: {config}")
        rows = []
        for per_digit in args.per_digit:
            chosen = groups(replay.labels, names, per_digit)
            if not chosen:
                print(f"{per_digit} per digit: no {args.group} has {per_digit} drawings of every digit and one more")
                continue
            these = []
            for index, (name, indices) in enumerate(chosen.items()):
                row = {"writer": name, **teach_writer(model, replay.x, replay.labels, indices, per_digit, data, config,
                                                      args.seed, index)}
                if args.join:
                    repeat = yourdigits.auto_repeat(len(data[1]), 10 * per_digit, args.join_share)
                    joined = join_writer(replay.x, replay.labels, indices, per_digit, data, args.seed, index, repeat)
                    row.update({"join_repeat": repeat, "join_after": joined["after"],
                                "join_mnist_after": joined["mnist_after"]})
                these.append(row)
                if args.per_writer:
                    print(f"  {name}: {row['taught']} taught, {row['others']} others: {row['before']:.1%} -> "
                          f"{row['after']:.1%} (estimate {'-' if row['estimate'] is None else format(row['estimate'], '.1%')}), "
                          f"MNIST {row['mnist_before']:.2%} -> {row['mnist_after']:.2%}, {row['job_s']:.2f} s"
                          + (f", joined: {row['join_after']:.1%}" if args.join else ""))
            for line in summary(these, ratio):
                print(line)
            if args.join:
                print(f"  joined to a full page-recipe run instead (drawings repeated {these[0]['join_repeat']}x, "
                      f"~{args.join_share:.0%} of the digits): after {np.mean([r['join_after'] for r in these]):.2%}, "
                      f"held-out MNIST {np.mean([r['join_mnist_after'] for r in these]):.2%}")
            rows += these
    if args.json:
        Path(args.json).write_text(json.dumps({"config": config.to_dict(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
