"""Command line: python -m pycnn train | evaluate | finetune | summary | export.

train --classes PROJECT.npz trains a network for a project's own classes (pycnn.project, pycnn.classes):
--transfer MODEL.npz puts a new head on that model's feature layers, --preset/--arch trains one from
scratch; evaluate MODEL --classes PROJECT.npz reads the project's drawings with a model of its classes."""
import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import classes, datasets, export, yourdigits
from .model import Sequential
from .project import Project
from .presets import DEFAULT_PRESET, PRESETS, preset
from .checks import number
from .serialize import load_file, load_run
from .training import Trainer, TrainingConfig, TrainingDiverged

DEFAULTS = TrainingConfig.defaults()
FINE_TUNE = yourdigits.FineTuneConfig.defaults()


def _limit_threads(threads):
    """One BLAS thread by default: on 2 shared cores, more threads cost more than they give."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it numpy keeps its own default
        print("pycnn: install threadpoolctl to pin BLAS threads (2 threads on 2 cores are often slower)",
              file=sys.stderr)
        return None
    return threadpool_limits(limits=threads, user_api="blas")


def _load_data(source, part):
    """(x, y) of part "train" or "test" from "subset" or an MNIST IDX folder."""
    if source == "subset":
        x, y, split = datasets.load_subset()
        x_train, y_train, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
        return (x_train, y_train) if part == "train" else (x_test, y_test)
    return datasets.load_mnist(source, part)


def _has_mnist_test(source):
    try:
        datasets._find(source, datasets.MNIST_FILES["test"][0])
        return True
    except ValueError:
        return False


class Progress:
    """A progress bar on a terminal; one plain line per epoch otherwise."""

    def __init__(self, batch_size, stream=sys.stderr):
        self.batch_size = batch_size
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.perf_counter()
        self.last = 0.0

    def __call__(self, p):
        now = time.perf_counter()
        for result in p["epoch_results"]:
            val = f", held-out accuracy {result['val_accuracy']:.2%}" if "val_accuracy" in result else ""
            line = (f"epoch {result['epoch']}/{p['epochs']}: loss {result['loss']:.4f}, "
                    f"train accuracy {result['accuracy']:.2%}{val}")
            self.stream.write(("\r\x1b[K" if self.tty else "") + line + "\n")
        if self.tty and (now - self.last > 0.1 or p["done"]):
            self.last = now
            elapsed = now - self.start
            rate = p["step"] / elapsed if elapsed else 0.0  # batches per second
            eta = (p["total_steps"] - p["step"]) / rate if rate else 0.0
            done = int(30 * p["batch"] / p["batches_per_epoch"])
            images = rate * self.batch_size
            self.stream.write(f"\r\x1b[Kepoch {p['epoch']}/{p['epochs']} [{'#' * done}{'.' * (30 - done)}] "
                              f"{p['batch']}/{p['batches_per_epoch']} loss {p['losses'][-1]:.4f} "
                              f"{images:,.0f} img/s ETA {eta:.0f}s")
        self.stream.flush()


# the options that fix what a run computes: --resume takes them from the file and refuses others
RUN_OPTIONS = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
               "schedule": "--schedule", "augment": "--augment", "train_size": "--train-size", "seed": "--seed",
               "shards": "--shards"}


def _check_output(output):
    folder = Path(output).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write the model to {output}: {folder} is not a writable folder")


def _training_data(data, extra, extra_repeat, config):
    """(x, y, validation or None, {"file", "digits", "repeat"} of the joined digits or None) of a run."""
    x, y = _load_data(data, "train")
    validation = None
    if data == "subset" or _has_mnist_test(data):
        validation = _load_data(data, "test")
    joined = None
    if extra:
        x_extra, y_extra = _extra_digits(extra)
        if config.train_size is not None:  # --train-size counts the training digits: all of the learner's join them
            if config.train_size > len(y):
                raise ValueError(f"train_size must be at most the {len(y)} training samples, got {config.train_size}")
            keep = np.sort(np.random.default_rng(config.seed).permutation(len(y))[:config.train_size])
            x, y = x[keep], y[keep]
        repeat = yourdigits.auto_repeat(len(y), len(y_extra)) if extra_repeat is None else extra_repeat
        x, y = yourdigits.join(x, y, x_extra, y_extra, repeat)
        joined = {"file": Path(extra).name, "digits": len(y_extra), "repeat": repeat}
    return x, y, validation, joined


def cmd_train(args):
    if args.classes:
        return _train_classes(args)
    if args.transfer or args.steps is not None or args.evaluate is not None:
        given = [flag for flag, value in (("--transfer", args.transfer), ("--steps", args.steps),
                                          ("--evaluate/--no-evaluate", args.evaluate)) if value is not None]
        raise ValueError(f"{', '.join(given)}: only with --classes PROJECT.npz (a project of your own classes)")
    if args.resume:
        return _resume(args)
    config = TrainingConfig(**{name: DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
                               for name in RUN_OPTIONS})
    output = args.output or "model.npz"
    _check_output(output)
    data = args.data or "subset"
    x, y, validation, joined = _training_data(data, args.extra, args.extra_repeat, config)
    model, network = _network(args, seed=config.seed)
    trainer = Trainer(model, x, y, dataclasses.replace(config, train_size=None) if joined else config,
                      validation_data=validation)
    with_extra = f" (with the {joined['digits']} digits of {args.extra}, {joined['repeat']}x)" if joined else ""
    announce = (f"training {network} ({model.count_params():,} params) on {len(trainer.x):,} digits{with_extra}: "
                f"{config.epochs} epochs, batch {config.batch_size}, {config.optimizer} lr {config.lr:g} "
                f"({config.schedule}){', augmented' if config.augment else ''}"
                f"{f', {config.shards} shards' if config.shards > 1 else ''}")
    return _train(args, trainer, output, {"trained_with": config.to_dict(), "data": data}, joined, 0.0, announce)


def _resume(args):
    """train --resume MODEL: the rest of the run the file's run state describes, with its settings."""
    model, state = load_run(args.resume)
    if state is None:
        raise ValueError(f"{args.resume} holds no run state to continue: train saves one only when a run stops "
                         f"before its end (Ctrl-C, --max-steps); a finished run has nothing left")
    meta = model.metadata
    try:
        config = TrainingConfig.from_dict(meta["trained_with"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{args.resume}: its metadata has no valid trained_with settings ({err})") from None
    stored = meta.get("extra")
    changed = [f"{flag} {getattr(args, name)!r} (the run's: {getattr(config, name)!r})"
               for name, flag in RUN_OPTIONS.items()
               if getattr(args, name) is not None and getattr(args, name) != getattr(config, name)]
    changed += [f"--{option} (the network is the file's)" for option in ("preset", "arch") if getattr(args, option)]
    if stored and args.extra_repeat is not None and args.extra_repeat != stored.get("repeat"):
        changed.append(f"--extra-repeat {args.extra_repeat} (the run's: {stored.get('repeat')})")
    if changed:
        raise ValueError(f"--resume continues the run with the settings stored in {args.resume}; these would "
                         f"change it: {', '.join(changed)}")
    if stored and not args.extra:
        raise ValueError(f"the run joined the digits of {stored.get('file')}: pass --extra FILE to continue it")
    if args.extra and not stored:
        raise ValueError("the run joined no digits file: leave out --extra to continue it")
    data = args.data or meta.get("data", "subset")
    x, y, validation, joined = _training_data(data, args.extra, stored and stored.get("repeat"), config)
    try:
        trainer = Trainer.resume(model, x, y, state, validation_data=validation)
    except ValueError as err:
        raise ValueError(f"cannot continue the run of {args.resume}: {err}") from None
    output = args.output or args.resume
    _check_output(output)
    announce = (f"continuing the run of {args.resume} at step {trainer.step} of {trainer.total_steps} (epoch "
                f"{trainer.step // trainer.batches_per_epoch + 1} of {config.epochs})")
    return _train(args, trainer, output, {"trained_with": config.to_dict(), "data": data}, joined,
                  float(meta.get("seconds", 0.0)), announce)


def _train(args, trainer, output, metadata, joined, seconds_before, announce):
    """Say announce, run the trainer (at most --max-steps steps; the first Ctrl-C stops after the batch in
    flight) and save the model: with its run state when the run stopped before its end."""
    max_steps = None if args.max_steps is None else number("--max-steps", args.max_steps, 1, integer=True)
    progress = Progress(trainer.config.batch_size)
    interrupted = []

    def on_interrupt(signum, frame):
        if interrupted:  # a second Ctrl-C: stop at once, nothing saved
            raise KeyboardInterrupt
        interrupted.append(signum)
        print("\npycnn: stopping after this batch to save the run (Ctrl-C again quits without saving)",
              file=sys.stderr)

    def callback(p):
        progress(p)
        return not interrupted

    first = trainer.step
    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread: Ctrl-C stays a KeyboardInterrupt
        previous = None
    print(announce, file=sys.stderr, flush=True)  # after the handler: from now on Ctrl-C saves the run
    start = time.perf_counter()
    try:
        with _limit_threads(args.threads) or contextlib.nullcontext():
            trainer.run(max_batches=max_steps, callback=callback)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    elapsed = time.perf_counter() - start
    model = trainer.model
    model.metadata = {**metadata, "history": trainer.history["epochs"], "seconds": round(seconds_before + elapsed, 2)}
    if joined:
        model.metadata["extra"] = joined
    model.save(output, run_state=None if trainer.done else trainer.run_state())
    rate = (trainer.step - first) * trainer.config.batch_size / elapsed if elapsed else 0.0
    if not trainer.done:
        batch = trainer.step % trainer.batches_per_epoch or trainer.batches_per_epoch
        print(f"stopped at step {trainer.step} of {trainer.total_steps} (epoch {trainer.epoch}, batch {batch} of "
              f"{trainer.batches_per_epoch}) after {elapsed:.1f} s; saved {output} with its run state: continue "
              f"with python -m pycnn train --resume {output}")
        return 0
    last = trainer.history["epochs"][-1]
    summary = f"held-out accuracy {last['val_accuracy']:.2%}" if "val_accuracy" in last else \
        f"train accuracy {last['accuracy']:.2%}"
    print(f"done in {elapsed:.1f} s ({rate:,.0f} images/s), {summary}; saved {output}")
    return 0


# the options of a digits run that a run on a project's drawings does not take
NOT_FOR_CLASSES = {"epochs": "--epochs", "augment": "--augment", "train_size": "--train-size", "shards": "--shards",
                   "data": "--data", "extra": "--extra", "extra_repeat": "--extra-repeat", "resume": "--resume",
                   "max_steps": "--max-steps"}
CLASS_RECIPE_OPTIONS = ("steps", "batch_size", "lr", "optimizer", "schedule", "seed")


def _train_classes(args):
    """train --classes PROJECT: transfer from --transfer MODEL, or from scratch (--preset/--arch; default the
    page's network)."""
    given = [flag for name, flag in NOT_FOR_CLASSES.items() if getattr(args, name) is not None]
    if given:
        raise ValueError(f"--classes trains on the project's drawings: {', '.join(given)} does not apply to it "
                         f"(--steps sets how long it trains)")
    if args.transfer and (args.preset or args.arch):
        raise ValueError("--transfer starts from a trained model's features; --preset and --arch train a network "
                         "from scratch: give one of them")
    output = args.output or "model.npz"
    _check_output(output)
    for option, path in (("--classes", args.classes), ("--transfer", args.transfer)):
        if path and Path(path).resolve() == Path(output).resolve():
            raise ValueError(f"-o {output} would overwrite the {option} file: write the model elsewhere")
    project = Project.load(args.classes)
    counts = ", ".join(f"{name} {n}" for name, n in zip(project.names, project.counts()))
    recipe = {name: getattr(args, name) for name in CLASS_RECIPE_OPTIONS if getattr(args, name) is not None}
    evaluate = args.evaluate is not False
    if args.transfer:
        base = load_file(args.transfer)
        config = classes.TransferConfig(**recipe)
        job = classes.Transfer(base, project.x, project.y, project.names, config, evaluate=evaluate)
        what = (f"transfer from {args.transfer}: its layers before the Flatten frozen, a new head (hidden "
                f"{config.hidden}) trained on the drawings and {config.copies} augmented copies of each")
    else:
        network, described = _network(args)
        config = classes.ScratchConfig(**recipe)
        job = classes.FromScratch(network, project.x, project.y, project.names, config, evaluate=evaluate)
        what = f"{described} from scratch on the drawings, augmented"
    scoring = f"{job.scoring}, then " if job.scoring else ""
    print(f"{what}; {len(project.names)} classes of {args.classes} ({counts}): {scoring}{config.steps} batches of "
          f"{config.batch_size}", file=sys.stderr, flush=True)
    with _limit_threads(args.threads) or contextlib.nullcontext():
        try:
            _run_job(job)
        except TrainingDiverged as err:
            raise ValueError(f"{err}; nothing was saved") from None
    model = job.model
    model.metadata = {**model.metadata, "project": Path(args.classes).name,
                      **({"transfer_from": Path(args.transfer).name} if args.transfer else {})}
    model.save(output)
    evaluation = job.result()["evaluation"]
    if evaluation is not None:
        untaught = (f"; {evaluation['untaught']} of them of a class drawn once, which their fold's model never saw"
                    if evaluation["untaught"] else "")
        print(f"on drawings held back from training ({evaluation['method']}{untaught}):")
        print("\n".join(_score_lines(evaluation)))
    print(f"done in {job.seconds:.1f} s; saved {output} (classes: {', '.join(project.names)})")
    return 0


def _run_job(job, chunk=25):
    """Run a classes job to its end, showing its phase and steps on a terminal."""
    tty = sys.stderr.isatty()
    while not job.done:
        report = job.run(max_batches=chunk)
        if tty:
            sys.stderr.write(f"\r\x1b[K{report['phase']}: step {report['step']} of {report['total_steps']}")
            sys.stderr.flush()
    if tty:
        sys.stderr.write("\r\x1b[K")


def _score_lines(scores, width=8):
    """Lines: the accuracy, each class's, the confusion matrix and the most confident mistakes (classes.scores)."""
    names = scores["names"]
    short = [name if len(name) <= width else name[:width - 1] + "~" for name in names]
    lines = [f"accuracy {scores['accuracy']:.2%} ({scores['correct']}/{scores['scored']})",
             "per class: " + ", ".join(f"{name} {'-' if a is None else format(a, '.0%')}"
                                       for name, a in zip(names, scores["per_class"])),
             "confusion (rows: the class drawn, columns: the class read):",
             " " * (width + 2) + "".join(f"{name:>{width + 1}}" for name in short)]
    lines += [f"  {name:<{width}}" + "".join(f"{n:>{width + 1}}" for n in row)
              for name, row in zip(short, scores["confusion"])]
    if scores["mistakes"]:
        shown = scores["mistakes"][:5]
        lines.append("most confident mistakes: " + ", ".join(
            f"drawing {m['index']} ({m['label_name']}) read as {m['predicted_name']} ({m['confidence']:.0%})"
            for m in shown) + (f" (and {scores['mistake_count'] - len(shown)} more)" if scores['mistake_count'] > 5
                               else ""))
    return lines


def cmd_evaluate(args):
    if args.classes:
        return _evaluate_classes(args)
    model = load_file(args.model)
    if args.extra:  # read before anything is printed: a bad file is one line on stderr
        x_extra, y_extra = _extra_digits(args.extra)
    x, y = _load_data(args.data, "test")
    scores = model.evaluate(x, y)
    print(f"{args.model}: accuracy {scores['accuracy']:.2%} ({round(scores['accuracy'] * len(y))}/{len(y)}), "
          f"loss {scores['loss']:.4f} on {'the held-out subset' if args.data == 'subset' else args.data}")
    if args.extra:
        scores = model.evaluate(x_extra, y_extra)
        print(f"{args.model}: accuracy {scores['accuracy']:.2%} ({round(scores['accuracy'] * len(y_extra))}/"
              f"{len(y_extra)}), loss {scores['loss']:.4f} on the digits of {args.extra}")
    return 0


def _evaluate_classes(args):
    """evaluate MODEL --classes PROJECT: the model reads the project's drawings; it must name the same classes."""
    if args.extra:
        raise ValueError("--extra reads a digits file; with --classes the project's drawings are read")
    model = load_file(args.model)
    project = Project.load(args.classes)
    if model.names() != project.names:
        raise ValueError(f"{args.model} reads the classes {', '.join(model.names())}; {args.classes} has "
                         f"{', '.join(project.names)}: a model of a project's classes reads its drawings")
    if not len(project):
        raise ValueError(f"{args.classes} has no drawings to read")
    print(f"{args.model} on the {len(project)} drawings of {args.classes}:")
    print("\n".join(_score_lines(classes.evaluate(model, project.x, project.y))))
    return 0


def _extra_digits(path):
    """(images, labels) of a digits file that holds at least one digit."""
    x, y = yourdigits.load(path)
    if not len(y):
        raise ValueError(f"{path}: the digits file holds no digits")
    return x, y


def cmd_finetune(args):
    config = yourdigits.FineTuneConfig(steps=args.steps, lr=args.lr, seed=args.seed)
    folder = Path(args.output).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write the model to {args.output}: {folder} is not a writable folder")
    model = load_file(args.model)
    x_extra, y_extra = yourdigits.load(args.extra)
    x, y = _load_data(args.data, "train")
    x_test, y_test = _load_data(args.data, "test")
    job = yourdigits.FineTuneJob(model, x_extra, y_extra, x, y, x_test, y_test, config)
    print(f"fine-tuning {args.model} on the {len(y_extra)} digits of {args.extra} ({job.method}: {len(job.runs)} "
          f"fine-tunes of {config.steps} batches of {config.batch_size}, half {args.data} digits)", file=sys.stderr)
    with _limit_threads(args.threads) or contextlib.nullcontext():
        try:
            job.run()
        except TrainingDiverged as err:
            raise ValueError(f"{err}; nothing was saved") from None
    result = job.result()
    mine, mnist = result["digits"], result["mnist"]
    after = "not measured" if mine["after"] is None else f"{mine['after']:.2%}"
    tuned = job.model
    tuned.metadata = {**model.metadata, "fine_tuned": {"file": Path(args.extra).name, "digits": mine["n"],
                                                       "recipe": config.to_dict(), "result": result}}
    tuned.save(args.output)
    print(f"your digits: {mine['before']:.2%} -> {after} ({mine['method']}; on drawings each model did not train on)")
    print(f"held-out digits: {mnist['before']:.2%} -> {mnist['after']:.2%} ({mnist['n']:,} digits)")
    print(f"done in {result['seconds']:.1f} s; saved {args.output}")
    return 0


def _network(args, seed=0):
    """(a fresh model, its description) from --arch FILE.json (a model config, as the page exports it)
    or --preset NAME."""
    if args.arch:
        path = Path(args.arch)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read the network {path}: {err}") from None
        return Sequential.from_config(config, seed=seed), f"the network of {path.name}"
    name = args.preset or DEFAULT_PRESET
    return preset(name, seed=seed), f"the {name} network"


def cmd_summary(args):
    model = load_file(args.model) if args.model else _network(args)[0]
    print(model.summary())
    if model.class_names is not None:
        print(f"Classes: {', '.join(model.class_names)}")
    return 0


def cmd_export(args):
    model = load_file(args.model)
    written = export.save(model, args.format, args.output)
    c, h, w = model.input_shape
    shape = f"(N, {c}, {h}, {w}) NCHW" if args.format == "onnx" else f"(N, {h}, {w}, {c}) NHWC"
    print(f"wrote {', '.join(str(path) for path in written)} ({export.FORMATS[args.format]}): input float32 {shape} "
          f"in [0, 1] (grey level / 255, as predict_proba takes it), output the {model.n_classes()} class probabilities"
          + (f" ({', '.join(model.class_names)})" if model.class_names is not None else ""))
    return 0


def _add_network_options(parser):
    group = parser.add_mutually_exclusive_group()
    # no default here: argparse would not see "--preset X --arch F" as a conflict when X is the default
    group.add_argument("--preset", choices=list(PRESETS), help=f"a named network (default {DEFAULT_PRESET}, as the page)")
    group.add_argument("--arch", metavar="FILE.json",
                       help="a network as JSON: the page's Network as JSON, or Sequential.get_config()")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m pycnn",
                                     description="Train and evaluate pycnn models on MNIST or your own classes.")
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = ("'subset' (the bundled 10,000 digits; build.py writes them) or a folder with MNIST IDX files "
                 "(train-images-idx3-ubyte[.gz], ..., t10k-labels-idx1-ubyte[.gz])")

    train = sub.add_parser("train", help="train a network (the page's by default) and save it")
    train.add_argument("--data", default=None, help=data_help + " (default subset; with --resume, the run's)")
    # the run's settings default to None, so --resume can tell which were given
    train.add_argument("--epochs", type=int, help=f"default {DEFAULTS['epochs']}")
    train.add_argument("--batch-size", type=int, help=f"default {DEFAULTS['batch_size']}")
    train.add_argument("--lr", type=float, help=f"peak learning rate (default {DEFAULTS['lr']:g})")
    train.add_argument("--optimizer", choices=["adam", "sgd"], help=f"default {DEFAULTS['optimizer']}")
    train.add_argument("--schedule", choices=["onecycle", "cosine", "constant"], help=f"default {DEFAULTS['schedule']}")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="random small shifts/rotations/scalings of each batch (default on)")
    train.add_argument("--train-size", type=int, default=None, help="use only this many training digits")
    train.add_argument("--seed", type=int, help=f"default {DEFAULTS['seed']}")
    train.add_argument("--shards", type=int,
                       help="each batch's gradient as the sum of N shards' (what helper workers compute); "
                            f"the same run whoever computes them (default {DEFAULTS['shards']})")
    train.add_argument("--max-steps", type=int, metavar="N",
                       help="stop after N steps (batches) and save the run state, to continue with --resume")
    train.add_argument("--resume", metavar="MODEL.npz",
                       help="continue the run saved in MODEL.npz (stopped by Ctrl-C or --max-steps) with its "
                            "settings; -o defaults to MODEL.npz")
    train.add_argument("--threads", type=int, default=1, help="BLAS threads (needs threadpoolctl; default 1)")
    train.add_argument("--output", "-o", default=None, help="the model file (default model.npz)")
    train.add_argument("--extra", metavar="FILE",
                       help="a digits file (the page's Your digits) to join to the training digits")
    train.add_argument("--extra-repeat", type=int, default=None,
                       help="times to repeat the --extra digits (default: so they are ~5%% of the digits)")
    train.add_argument("--classes", metavar="PROJECT.npz",
                       help="train for a project's own classes on its drawings (pycnn.project): with --transfer "
                            "MODEL.npz, a new head on that model's features; else --preset/--arch from scratch")
    train.add_argument("--transfer", metavar="MODEL.npz",
                       help="with --classes: the trained model whose feature layers (before its Flatten) are kept")
    train.add_argument("--steps", type=int, help="with --classes: batches to train (default: the recipe's, "
                       f"{classes.TransferConfig().steps} for transfer, {classes.ScratchConfig().steps} from scratch)")
    train.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=None,
                       help="with --classes: first measure on drawings held back from training (default on)")
    _add_network_options(train)
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="accuracy of a saved model")
    evaluate.add_argument("model", help="a model file (.npz) from train or the web page")
    evaluate.add_argument("--data", default="subset", help=data_help + "; the held-out or t10k digits are used")
    evaluate.add_argument("--extra", metavar="FILE", help="also the accuracy on the digits of this digits file")
    evaluate.add_argument("--classes", metavar="PROJECT.npz",
                          help="instead: read a project's drawings with a model of its classes")
    evaluate.set_defaults(func=cmd_evaluate)

    finetune = sub.add_parser("finetune", help="fine-tune a saved model on your digits (the page's Fine-tune)")
    finetune.add_argument("model", help="a model file (.npz) from train or the web page")
    finetune.add_argument("--extra", metavar="FILE", required=True, help="a digits file (the page's Your digits)")
    finetune.add_argument("--data", default="subset", help=data_help + "; mixed in so the model keeps reading them")
    finetune.add_argument("--steps", type=int, default=FINE_TUNE["steps"], help="batches per fine-tune")
    finetune.add_argument("--lr", type=float, default=FINE_TUNE["lr"], help="peak learning rate")
    finetune.add_argument("--seed", type=int, default=FINE_TUNE["seed"])
    finetune.add_argument("--threads", type=int, default=1, help="BLAS threads (needs threadpoolctl; default 1)")
    finetune.add_argument("--output", "-o", required=True)
    finetune.set_defaults(func=cmd_finetune)

    summary = sub.add_parser("summary", help="print the Keras-style layer table")
    summary.add_argument("model", nargs="?", help="a model file; when omitted, the network of --preset or --arch")
    _add_network_options(summary)
    summary.set_defaults(func=cmd_summary)

    export_ = sub.add_parser("export", help="write a saved model for ONNX runtimes or TensorFlow.js")
    export_.add_argument("model", help="a model file (.npz) from train or the web page")
    export_.add_argument("--format", choices=list(export.FORMATS), required=True,
                         help="onnx: one .onnx file (input NCHW); tfjs: a folder of model.json and "
                              f"{export.TFJS_WEIGHTS} (input NHWC)")
    export_.add_argument("--output", "-o", required=True, help="the .onnx file, or the folder for tfjs")
    export_.set_defaults(func=cmd_export)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        parser.exit(2, f"pycnn: error: {err}\n")
    except KeyboardInterrupt:
        parser.exit(130, "\npycnn: interrupted\n")
