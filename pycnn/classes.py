"""Teach it anything you draw: a network for your own classes, by transfer from a trained network or from scratch.

    transfer(model, x, y, class_names, config)            -> a new Sequential
    from_scratch(layers_or_preset, x, y, class_names, config) -> a new Sequential
    evaluate(model, x, y)                                  -> accuracy, confusion matrix, mistakes

x: drawings (N, 1, 28, 28) in [0, 1] (pycnn.project keeps them), y: their class indices (N,),
class_names: a name per class, at least 2 (pycnn.checks.class_names; a project has at most 20, training
takes more). Every class needs a drawing.

Transfer keeps a trained network's feature layers (everything before its first Flatten: the
convolutions, which learnt strokes, corners and curves from thousands of digits) frozen and puts a
new head on them: Flatten, Dense(features, hidden), ReLU, Dense(hidden, classes). As the frozen
layers never change, each drawing's features are computed once ("preparing"): the drawings and
`copies` augmented copies of each (random shifts, rotations, zooms, shears, stretches and a smooth
elastic bend; see TransferConfig). The head then learns from those features alone, a batch of
class-balanced picks per step, which costs a small fraction of a step of the whole network. The
head starts fresh: the digit network's own hidden layer, and cutting after it (64 digit-shaped
features instead of 800), both read letters worse (bench/classes.py).

From scratch trains a whole network (a preset's layers or your own, its last Dense layer sized for
the classes) on the drawings, each batch freshly augmented the same way.

Transfer and FromScratch are the same as jobs that run a batch per call, like Trainer: run(max_batches)
-> a progress report in Trainer's fields plus "phase", progress(), done, and result() once done.
Unless told otherwise they first measure how well their recipe reads drawings it was not trained on:
k-fold cross-validation (stratified, `folds` of them) below `holdback_from` drawings, one held-back
fold from there on, a model trained on the rest for each fold scored; then they train the model
kept on every drawing. The score, its confusion matrix and its mistakes are in result()["evaluation"].
Everything follows from the config's seed.

Freezing in general: Sequential.freeze(count) keeps the first layers out of the optimiser's reach
and out of backward; DrawingTrainer on such a model computes the frozen layers' forward pass every
batch instead of once (bench/classes.py measures both).
"""
import dataclasses

import numpy as np

from .augment import random_affine, random_elastic
from .checks import Choice, Float, Int, Settings, class_names as clean_names
from .jobs import FoldedJob
from .layers import Dense, Flatten, ReLU
from .model import PREDICT_CHUNK, Sequential
from .optimizers import OPTIMIZERS
from .presets import PRESETS
from .project import MAX_DRAWINGS, MIN_CLASSES
from .training import SCHEDULES, Trainer, TrainingConfig, TrainingDiverged
from .yourdigits import folds_of, split_head

MAX_MISTAKES = 100  # mistakes listed in an evaluation (the most confident first); all are counted
# A run that diverges begins again at half the learning rate, this many times at most: few drawings
# from scratch can blow up at a rate that suits most (the page offers no learning rate to lower).
MAX_RESTARTS = 3

# the bounds of the augmentation settings both recipes share
AUGMENT_ARGS = {"shift": Float(0.0, 8.0), "rotation": Float(0.0, 45.0), "zoom": Float(0.0, 0.5),
                "shear": Float(0.0, 1.0), "stretch": Float(0.0, 1.0), "elastic": Float(0.0, 4.0)}
RUN_ARGS = {"batch_size": Int(1, 1024), "lr": Float(1e-7, 1.0), "optimizer": Choice(OPTIMIZERS),
            "schedule": Choice(SCHEDULES), "folds": Int(2, 10), "holdback_from": Int(2, MAX_DRAWINGS + 1),
            "seed": Int(0, 2 ** 32 - 1)}


@dataclasses.dataclass
class TransferConfig(Settings):
    """The transfer recipe: a new head trained on the frozen features of the drawings and of augmented copies.
    The defaults are what bench/classes.py measured best on letters from other writers."""
    steps: int = 300              # batches the head trains for
    batch_size: int = 32
    lr: float = 0.003
    optimizer: str = "adam"
    schedule: str = "cosine"
    hidden: int = 64              # units of the head's hidden layer; 0: the head is one Dense layer
    copies: int = 40              # augmented copies of each drawing to learn from,
    max_copies: int = 4000        # at most this many in all (fewer of each drawing when there are many)
    shift: float = 2.0            # augmentation: pixels,
    rotation: float = 15.0        # degrees,
    zoom: float = 0.15            # scale 1 +- zoom,
    shear: float = 0.5            # horizontal shear,
    stretch: float = 0.3          # log aspect change,
    elastic: float = 2.0          # elastic bend, pixels (pycnn.augment.random_elastic)
    folds: int = 3                # cross-validation folds for the honest score
    holdback_from: int = 100      # from this many drawings on, score a held-back fold instead (1 / folds)
    seed: int = 0

    KIND = "transfer"
    ARGS = {"steps": Int(1, 10_000), **RUN_ARGS, "hidden": Int(0, 1024), "copies": Int(0, 1000),
            "max_copies": Int(0, 100_000), **AUGMENT_ARGS}


@dataclasses.dataclass
class ScratchConfig(Settings):
    """The from-scratch recipe: the whole network trained on the drawings, each batch freshly augmented."""
    steps: int = 600
    batch_size: int = 32
    lr: float = 0.005
    optimizer: str = "adam"
    schedule: str = "cosine"
    shift: float = 2.0            # augmentation of every batch, as TransferConfig's
    rotation: float = 15.0
    zoom: float = 0.15
    shear: float = 0.5
    stretch: float = 0.3
    elastic: float = 2.0
    folds: int = 3
    holdback_from: int = 100
    seed: int = 0

    KIND = "from-scratch"
    ARGS = {"steps": Int(1, 100_000), **RUN_ARGS, **AUGMENT_ARGS}


def augment(x, rng, config):
    """x (N, C, H, W) -> each image moved by its own random affine map and elastic bend, as config says."""
    x = random_affine(x, rng, config.shift, config.rotation, (1 - config.zoom, 1 + config.zoom),
                      shear=config.shear, stretch=config.stretch)
    return random_elastic(x, rng, config.elastic) if config.elastic else x


# ---- the data ------------------------------------------------------------------------------------
def _labels(y, n, classes):
    y = np.asarray(y)
    if y.shape != (n,) or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(f"y must be {n} class indices (ints), got shape {y.shape} dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"y must be class indices 0-{classes - 1} (the {classes} classes), got {y.min()}..{y.max()}")
    return y.astype(np.intp)


def check_names(names):
    """The classes' names, cleaned (checks.class_names), at least MIN_CLASSES of them: a project holds at most
    pycnn.project.MAX_CLASSES; training takes more."""
    return clean_names(names, min_count=MIN_CLASSES)


def _checked(x, y, class_names, model):
    """(names, x as model reads it, y) after checking there are 2 or more classes and a drawing of each."""
    names = check_names(class_names)
    x = model.as_input(x)
    y = _labels(y, len(x), len(names))
    if len(x) > MAX_DRAWINGS:
        raise ValueError(f"at most {MAX_DRAWINGS:,} drawings, got {len(x):,}")
    counts = np.bincount(y, minlength=len(names))
    empty = [names[c] for c in np.flatnonzero(counts == 0)]
    if empty:
        raise ValueError(f"every class needs a drawing to learn from; none yet of {', '.join(map(repr, empty))}")
    return names, x, y


def _by_class(y, classes):
    """labels (N,) -> (the indices that sort them by class, count of each class, where each class starts)."""
    order = np.argsort(y, kind="stable")
    count = np.bincount(y, minlength=classes)[:classes]
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.intp)
    return order, count, start


def network(layers_or_preset, classes, seed=None):
    """A fresh network for `classes` classes -> Sequential: a preset's name (pycnn.presets), a model config
    (Sequential.get_config()), a list of its layers (for (1, 28, 28) input) or a Sequential (its architecture);
    the last Dense layer is given one output per class."""
    source = layers_or_preset
    if isinstance(source, str):
        if source not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {source!r}")
        config = PRESETS[source]
    elif isinstance(source, Sequential):
        config = source.get_config()
    elif isinstance(source, list):
        config = {"input_shape": [1, 28, 28], "dtype": "float32", "layers": source}
    elif isinstance(source, dict):
        config = source
    else:
        raise ValueError(f"layers_or_preset must be a preset name, a model config, a list of layers or a Sequential, "
                         f"got {type(source).__name__}")
    if not isinstance(config.get("layers"), list):
        raise ValueError("the network config needs a list of layers")
    layers = [dict(spec) if isinstance(spec, dict) else spec for spec in config["layers"]]
    last = next((i for i in range(len(layers) - 1, -1, -1)
                 if isinstance(layers[i], dict) and layers[i].get("class") == "Dense"), None)
    if last is None or not isinstance(layers[last].get("config"), dict):
        raise ValueError("the network needs a Dense layer to give one score per class")
    layers[last] = {**layers[last], "config": {**layers[last]["config"], "out_features": int(classes)}}
    return Sequential.from_config({**config, "layers": layers}, seed=seed)


# ---- training on few drawings --------------------------------------------------------------------
class DrawingTrainer(Trainer):
    """Trains a model on few drawings for recipe.steps batches, in place, a chunk of batches per run() call
    like Trainer (its schedule, divergence check and progress).

    Each batch slot draws a class uniformly (of those with drawings in y), then one of that class's drawings,
    so classes drawn more often weigh no more; with augment, each picked drawing is augmented afresh
    (augment(), the recipe's settings). recipe: TransferConfig or ScratchConfig (steps, batch_size, lr,
    optimizer, schedule, seed and the augmentation). classes: the model's class count.
    """

    def __init__(self, model, x, y, recipe, classes, augment=True):
        self.recipe, self.augment = recipe, augment
        training = TrainingConfig(epochs=1, batch_size=recipe.batch_size, lr=recipe.lr, optimizer=recipe.optimizer,
                                  schedule=recipe.schedule, augment=False, seed=recipe.seed)
        x, y = model.as_input(x), _labels(y, len(np.asarray(y)), classes)
        # Trainer wants at least a batch of samples; batches here are drawn with replacement anyway
        fill = np.arange(max(len(y), recipe.batch_size)) % len(y)
        super().__init__(model, x[fill], y[fill], training)
        self.classes = classes
        self.order, self.count, self.start = _by_class(self.y, classes)
        self.present = np.flatnonzero(self.count)  # a cross-validation fold may leave a class without drawings
        self.batches_per_epoch = self.total_steps = recipe.steps

    def _batch(self):
        """(x, y) of the next batch: classes drawn uniformly, then one of each class's drawings."""
        n, rng = self.config.batch_size, self.rng
        labels = self.present[rng.integers(0, len(self.present), n)]
        pick = (rng.random(n) * self.count[labels]).astype(np.intp)
        xb = self.x[self.order[self.start[labels] + pick]]
        if self.augment:
            xb = augment(xb, rng, self.recipe)
        return xb, labels.astype(np.intp)


# ---- jobs: measure honestly, then train the model kept -------------------------------------------
def plan(n, folds=3, holdback_from=100):
    """How a job scores n drawings -> (method text, fold count, folds scored): k-fold cross-validation
    (k = min(folds, n)) below holdback_from drawings, one held-back fold of k from there on."""
    k = min(folds, n)
    if n < holdback_from:
        return f"{k}-fold cross-validation", k, k
    return f"held back 1/{k} of the drawings", k, 1


class _Job(FoldedJob):
    """What Transfer and FromScratch share: the runs (each scored fold, then the final one), a batch per step."""

    method = ""

    def __init__(self, x, y, names, config, evaluate):
        self.config, self.names, self.x, self.y = config, names, x, y
        self.classes = len(names)
        if evaluate:
            self.scoring, k, scored = plan(len(y), config.folds, config.holdback_from)
            self.fold = folds_of(y, k, config.seed)
        else:
            self.scoring, scored, self.fold = None, 0, np.zeros(len(y), np.intp)
        self.runs = list(range(scored)) + [None]  # the folds to score, then the final run (None)
        self.predicted = np.full(len(y), -1, np.intp)  # each scored drawing's class, read by its fold's model
        self.confidence = np.zeros(len(y))
        self.untaught = 0
        self.prepare_steps = 0
        self.step = 0
        self.restarts = 0  # runs that diverged and were begun again
        self.lr = config.lr  # the learning rate of the runs; halved when one diverges (MAX_RESTARTS times at most)
        self.model = None  # the model kept, once done
        self.seconds = 0.0
        self._trainer = None

    def _diverged(self, index, error):
        """A run that blows up begins again at half the learning rate (all later runs keep it), MAX_RESTARTS
        times at most; then TrainingDiverged (nothing kept; the model given is never changed)."""
        if self.restarts == MAX_RESTARTS:
            raise TrainingDiverged(f"{self.method} training diverged, at learning rates from {self.config.lr:g} down "
                                   f"to {self.lr:g}; nothing was kept") from None
        self.restarts += 1
        self.step = self.prepare_steps + index * self.config.steps  # the run begins again
        self.lr /= 2

    def _start(self, run):
        """The trainer of run `run`: on the drawings outside fold run, or on all of them (None)."""
        use = np.ones(len(self.y), bool) if run is None else self.fold != run
        seed = self.config.seed if run is None else (self.config.seed + 1 + run) % 2 ** 32
        return self._trainer_for(use, dataclasses.replace(self.config, seed=seed, lr=self.lr))

    def _finish(self, run, trainer):
        if run is None:
            self.model = self._kept_model(trainer.model)
            self.model.class_names = self.names
            self.model.metadata = {"classes": self._summary()}
            return
        test = np.flatnonzero(self.fold == run)
        proba = self._proba(trainer.model, test)
        self.predicted[test] = proba.argmax(axis=1)
        self.confidence[test] = proba.max(axis=1)
        taught = np.bincount(self.y[self.fold != run], minlength=self.classes)
        self.untaught += int(np.count_nonzero(taught[self.y[test]] == 0))

    def evaluation(self):
        """The honest score -> scores() of the scored drawings plus "method" (how they were held back) and
        "untaught" (scored drawings of a class their fold's model had no drawing of); None when not measured."""
        if self.scoring is None:
            return None
        scored = np.flatnonzero(self.predicted >= 0)
        return {"method": self.scoring, **scores(self.y[scored], self.predicted[scored], self.confidence[scored],
                                                  self.names, scored), "untaught": self.untaught}

    def result(self):
        """{"method": "transfer" | "from scratch", "evaluation": evaluation(), "steps", "seconds", "names",
        "counts" (drawings of each class), "lr" (the runs' learning rate: the recipe's, or less after
        "restarts" runs diverged and began again)}; ValueError before the job is done."""
        if not self.done:
            raise ValueError(f"the {self.method} training has not finished")
        return {"method": self.method, "evaluation": self.evaluation(), "steps": self.total_steps,
                "seconds": self.seconds, "names": list(self.names),
                "counts": np.bincount(self.y, minlength=self.classes).tolist(), "lr": self.lr,
                "restarts": self.restarts}

    def _summary(self):
        """What the kept model's metadata says of its training: JSON-able, no drawings."""
        evaluation = self.evaluation()
        if evaluation is not None:
            evaluation = {key: evaluation[key] for key in ("method", "accuracy", "scored", "untaught")}
        return {"method": self.method, "recipe": {**self.config.to_dict(), "lr": self.lr},
                "counts": np.bincount(self.y, minlength=self.classes).tolist(), "evaluation": evaluation}


class Transfer(_Job):
    """transfer() as a job (see the module's docstring): "preparing" (the frozen layers' features of the drawings
    and their augmented copies, PREDICT_CHUNK images a step), then a head trained per scored fold ("measuring")
    and the head kept ("training"). model, the network transferred from, is never changed."""

    method = "transfer"

    def __init__(self, model, x, y, class_names, config=None, evaluate=True):
        config = config if config is not None else TransferConfig()
        if not isinstance(model, Sequential) or model.input_shape is None:
            raise ValueError("transfer needs a trained model (a Sequential that knows its input shape)")
        if not any(isinstance(layer, Flatten) for layer in model.layers):
            raise ValueError("transfer needs a network whose feature layers end in a Flatten (conv layers, then "
                             "dense ones)")
        names, x, y = _checked(x, y, class_names, model)
        super().__init__(x, y, names, config, evaluate)
        self.body, _ = split_head(model)
        self.start_model = model
        copies = min(config.copies, config.max_copies // len(y))
        # the pool the heads learn from: every drawing once as drawn, then `copies` augmented copies of each
        self.source = np.concatenate([np.arange(len(y)), np.repeat(np.arange(len(y)), copies)])
        self._rng = np.random.default_rng(config.seed)
        self._features = []
        self.features = None  # (pool size, *feature shape) once prepared
        self.prepare_steps = -(-len(self.source) // PREDICT_CHUNK)

    def _preparing(self):
        return self.features is None

    def _prepare_step(self):
        """The frozen layers' features of the next PREDICT_CHUNK images of the pool (copies augmented here)."""
        at = len(self._features) * PREDICT_CHUNK
        chunk = self.source[at:at + PREDICT_CHUNK]
        images = self.x[chunk]
        copies = chunk >= 0
        copies[:max(0, len(self.y) - at)] = False  # the drawings themselves come first, as drawn
        if copies.any():
            images[copies] = augment(images[copies], self._rng, self.config)
        self._features.append(images if self.body is None else self.body.forward(images))
        if at + PREDICT_CHUNK >= len(self.source):
            self.features, self._features = np.concatenate(self._features), None

    def _trainer_for(self, use, config):
        keep = use[self.source]
        shape = self.features.shape[1:]
        flat = int(np.prod(shape))
        rng = np.random.default_rng(config.seed)
        width = config.hidden or self.classes
        layers = [Flatten(), Dense(flat, width, rng=rng)]
        if config.hidden:
            layers += [ReLU(), Dense(config.hidden, self.classes, rng=rng)]
        head = Sequential(layers, dtype=self.start_model.dtype, input_shape=shape)
        return DrawingTrainer(head, self.features[keep], self.y[self.source[keep]], config, self.classes, augment=False)

    def _proba(self, head, indices):
        return head.predict_proba(self.features[indices])  # the drawings as drawn are the pool's first len(y)

    def _kept_model(self, head):
        """The frozen layers (copies of the model's) with the trained head, as one network."""
        if self.body is None:
            return head
        body_config, head_config = self.body.get_config(), head.get_config()
        model = Sequential.from_config({**body_config, "layers": body_config["layers"] + head_config["layers"]})
        model.set_weights(self.body.get_weights() + head.get_weights())
        return model


class FromScratch(_Job):
    """from_scratch() as a job (see the module's docstring): a network trained per scored fold ("measuring"),
    then the one kept ("training"), each from fresh weights drawn from the config's seed."""

    method = "from scratch"

    def __init__(self, layers_or_preset, x, y, class_names, config=None, evaluate=True):
        config = config if config is not None else ScratchConfig()
        names = check_names(class_names)
        net = network(layers_or_preset, len(names))
        self.architecture = net.get_config()  # checked once, here; each run draws fresh weights
        names, x, y = _checked(x, y, names, net)
        super().__init__(x, y, names, config, evaluate)

    def _trainer_for(self, use, config):
        model = Sequential.from_config(self.architecture, seed=config.seed)
        return DrawingTrainer(model, self.x[use], self.y[use], config, self.classes, augment=True)

    def _proba(self, model, indices):
        return model.predict_proba(self.x[indices])

    def _kept_model(self, model):
        return model


def transfer(model, x, y, class_names, config=None, evaluate=False):
    """A new network for the classes: model's feature layers (before its first Flatten), unchanged, and a new head
    trained on the drawings (see the module's docstring) -> Sequential naming its classes; with evaluate,
    (Sequential, the job's result(): the cross-validated score first measured). model is left as it was."""
    job = Transfer(model, x, y, class_names, config, evaluate)
    job.run()
    return (job.model, job.result()) if evaluate else job.model


def from_scratch(layers_or_preset, x, y, class_names, config=None, evaluate=False):
    """A network (a preset's name, a model config, a list of layer configs or a Sequential's architecture, its last
    Dense sized for the classes) trained from fresh weights on the drawings, augmented -> Sequential naming its
    classes; with evaluate, (Sequential, the job's result())."""
    job = FromScratch(layers_or_preset, x, y, class_names, config, evaluate)
    job.run()
    return (job.model, job.result()) if evaluate else job.model


# ---- scores --------------------------------------------------------------------------------------------
def scores(y, predicted, confidence, names, indices=None):
    """labels, predicted classes and their probabilities (N,) -> {"accuracy" (None for no drawings), "scored",
    "correct", "confusion" (classes x classes counts: rows the class drawn, columns the class read),
    "per_class" (accuracy of each class, None without drawings), "mistakes" (the MAX_MISTAKES most confident:
    {"index" (into indices, or the position), "label", "predicted", "label_name", "predicted_name",
    "confidence"}), "mistake_count", "names"}."""
    y, predicted = np.asarray(y, np.intp), np.asarray(predicted, np.intp)
    confidence = np.asarray(confidence, np.float64)
    indices = np.arange(len(y)) if indices is None else np.asarray(indices)
    classes = len(names)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (y, predicted), 1)
    wrong = np.flatnonzero(predicted != y)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    drawn = confusion.sum(axis=1)
    return {
        "accuracy": float(np.mean(predicted == y)) if len(y) else None, "scored": int(len(y)),
        "correct": int(np.count_nonzero(predicted == y)), "confusion": confusion.tolist(),
        "per_class": [float(confusion[c, c] / drawn[c]) if drawn[c] else None for c in range(classes)],
        "mistakes": [{"index": int(indices[i]), "label": int(y[i]), "predicted": int(predicted[i]),
                      "label_name": names[y[i]], "predicted_name": names[predicted[i]],
                      "confidence": float(confidence[i])} for i in wrong[:MAX_MISTAKES]],
        "mistake_count": int(len(wrong)), "names": list(names),
    }


def evaluate(model, x, y):
    """How well model reads the drawings x of classes y -> scores() (the names are the model's names())."""
    x = model.as_input(x)
    y = model.as_labels(y, len(x))
    proba = model.predict_proba(x)
    return scores(y, proba.argmax(axis=1), proba.max(axis=1), model.names())

