"""Your digits: the learner's own drawings, their file, and fine-tuning a model on them.

The file ("Your digits" exported from the page, read by `python -m pycnn ... --extra FILE`) is a
zip in numpy's .npz layout, so `np.load(path)` reads it too:

    digits.json   {"format": "pycnn-digits", "version": 1, "count": N}
    images.npy    uint8 (N, 28, 28): the 28x28 images the network saw, round(255 * ink), paper 0
    labels.npy    uint8 (N,): the digit each image is, 0-9

Reading it never unpickles and checks every header before reading any data: the members
(exactly these three), their sizes, the format name and version, the dtypes and shapes,
the labels. Any problem is one ValueError saying what is wrong, and nothing partial is
returned. At most MAX_DIGITS digits and MAX_FILE_BYTES bytes (10,000 digits take ~2 MB
compressed).

Fine-tuning changes the network's head only (split_head: the layers from its Flatten on), so
the features of every drawing, the output of the convolutions before it, are computed once.
FineTuner (one run, a batch per call) mixes the learner's digits into every batch with bundled
digits, so the network learns the learner's hand without forgetting the others. FineTuneJob
runs the whole "Fine-tune" button: it measures honestly how well the fine-tuned network reads
the learner's digits (on drawings it was not trained on: k-fold cross-validation, or a
held-back part when there are many), then fine-tunes a copy on all of them. join() adds the
learner's digits to a full training run instead.
"""
import dataclasses
import json

import numpy as np

from . import npzfile
from .augment import random_affine
from .checks import Bool, Choice, Float, Int, Settings
from .jobs import FoldedJob
from .layers import Dense, Flatten
from .model import PREDICT_CHUNK, Sequential
from .optimizers import OPTIMIZERS
from .training import SCHEDULES, Trainer, TrainingConfig, TrainingDiverged

FORMAT = "pycnn-digits"
VERSION = 1
SIDE = npzfile.SIDE
MAX_DIGITS = 10_000
MEMBERS = ("digits.json", "images.npy", "labels.npy")
MAX_JSON_BYTES = 4096
MAX_FILE_BYTES = 8 * 2 ** 20                 # 10,000 digits stored uncompressed are 7.9 MB
MAX_UNPACKED_BYTES = MAX_DIGITS * (SIDE * SIDE + 1) + 3 * npzfile.NPY_HEADER_BYTES + MAX_JSON_BYTES


# ---- the file ----------------------------------------------------------------------------------
def to_bytes(images, labels):
    """images (N, 28, 28) or (N, 1, 28, 28), floats in [0, 1] or uint8; labels (N,) digits -> the file's bytes."""
    pixels, digits = _as_pixels(images), _as_digits(labels)
    if len(pixels) != len(digits):
        raise ValueError(f"images and labels must be as many, got {len(pixels)} images and {len(digits)} labels")
    header = {"format": FORMAT, "version": VERSION, "count": len(digits)}
    contents = (json.dumps(header).encode(), npzfile.npy_bytes(pixels), npzfile.npy_bytes(digits))
    return npzfile.archive(dict(zip(MEMBERS, contents)))


def from_bytes(data):
    """The file's bytes -> (images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64); ValueError if bad."""
    data = npzfile.check_size(data, "digits", MAX_FILE_BYTES)
    with npzfile.reading("digits"):
        pixels, labels = _read(data)
    return np.divide(pixels, np.float32(255), dtype=np.float32)[:, None], labels.astype(np.int64)


def save(path, images, labels):
    """Write the digits file to path (conventionally *.npz)."""
    data = to_bytes(images, labels)
    with open(path, "wb") as f:
        f.write(data)


def load(path):
    """Read a digits file -> (images (N, 1, 28, 28) float32, labels (N,) int64), refusing an oversized one unread."""
    data = npzfile.read_file(path, "digits", MAX_FILE_BYTES)
    try:
        return from_bytes(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _as_pixels(images):
    """Images as the file holds them: uint8 (N, 28, 28) (npzfile.as_pixels)."""
    return npzfile.as_pixels(images, MAX_DIGITS, "images")


def _as_digits(labels):
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise ValueError(f"labels must be a 1-D array of ints, got shape {labels.shape} dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"labels must be digits 0-9, got {labels.min()}..{labels.max()}")
    return labels.astype(np.uint8)


def _read(data):
    with npzfile.open_archive(data, "digits", MAX_UNPACKED_BYTES) as (zf, infos):
        if "config.json" in infos:
            raise ValueError("this is a pycnn model file, not a digits file")
        npzfile.check_members(infos, "digits", MEMBERS)
        if infos["digits.json"].file_size > MAX_JSON_BYTES:
            raise ValueError(f"digits.json is {infos['digits.json'].file_size:,} bytes; at most {MAX_JSON_BYTES:,}")
        count = _parse_header(zf.read("digits.json"))
        note = " (count in digits.json)"
        pixels = npzfile.read_npy(zf, infos["images.npy"], (count, SIDE, SIDE), np.uint8, note)
        labels = npzfile.read_npy(zf, infos["labels.npy"], (count,), np.uint8, note)
    if count and labels.max() > 9:
        raise ValueError(f"labels.npy: labels must be digits 0-9, found {labels.max()}")
    return pixels, labels


def _parse_header(raw):
    """digits.json -> the digit count, after checking the format and version."""
    header = npzfile.read_header(raw, "digits.json", "digits", FORMAT, VERSION, ("format", "version", "count"))
    count = header.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_DIGITS:
        raise ValueError(f"digits.json: count must be an int from 0 to {MAX_DIGITS:,}, got {count!r}")
    return count


# ---- fine-tuning ---------------------------------------------------------------------------------
@dataclasses.dataclass
class FineTuneConfig(Settings):
    """The fine-tuning recipe. The defaults are the page's "Fine-tune" (bench/teach.py measured them)."""
    steps: int = 200
    batch_size: int = 32
    lr: float = 0.002
    optimizer: str = "adam"
    schedule: str = "cosine"
    mix: float = 0.5              # share of each batch's slots of a taught digit filled with the learner's drawings
    shift: float = 2.0            # augmentation of the learner's drawings: pixels,
    rotation: float = 10.0        # degrees,
    zoom: float = 0.1             # and scale 1 +- zoom
    augment_bundled: bool = True  # the page's mild augmentation of the bundled digits
    own_pool: int = 1024          # augmented copies of the learner's drawings to learn from (at least one of each)
    bundled_pool: int = 2048      # bundled digits (each augmented once) mixed in
    folds: int = 3                # cross-validation folds for the honest after-score
    holdback_from: int = 100      # from this many digits on, score a held-back part instead (1 / folds of them)
    seed: int = 0

    KIND = "fine-tune"  # in its messages
    ARGS = {
        "steps": Int(1, 10_000), "batch_size": Int(1, 1024), "lr": Float(1e-7, 1.0),
        "optimizer": Choice(OPTIMIZERS), "schedule": Choice(SCHEDULES),
        "mix": Float(0.0, 1.0), "shift": Float(0.0, 8.0), "rotation": Float(0.0, 45.0), "zoom": Float(0.0, 0.5),
        "augment_bundled": Bool(), "own_pool": Int(1, MAX_DIGITS), "bundled_pool": Int(10, MAX_DIGITS),
        "folds": Int(2, 10), "holdback_from": Int(2, MAX_DIGITS + 1), "seed": Int(0, 2 ** 32 - 1),
    }


def split_head(model):
    """(body, head): copies of a model's layers up to its first Flatten (or Dense), and from there on.

    Fine-tuning changes the head only. The body (the convolutions: the filters learnt from
    thousands of MNIST digits) stays as it is, so a drawing's features, the body's output, never
    change during a fine-tune and are computed once. body is None when the head is everything.
    """
    at = next((i for i, layer in enumerate(model.layers) if isinstance(layer, Flatten)), None)
    if at is None:
        at = next((i for i, layer in enumerate(model.layers) if isinstance(layer, Dense)), None)
    if at is None:
        raise ValueError("fine-tuning needs a network that ends in Dense layers")
    if model.input_shape is None:
        raise ValueError("fine-tuning needs a model that knows its input shape (a trained or loaded one)")
    config, weights = model.get_config(), model.get_weights()
    n_body = sum(len(layer.params) + len(layer.state) for layer in model.layers[:at])  # get_weights() order
    body = None
    if at:
        body = Sequential.from_config({**config, "layers": config["layers"][:at]})
        body.set_weights(weights[:n_body])
    head_input = body.output_shapes()[-1] if body is not None else model.input_shape
    head = Sequential.from_config({**config, "layers": config["layers"][at:], "input_shape": list(head_input)})
    head.set_weights(weights[n_body:])
    return body, head


def _copy(model):
    """A model with the same architecture, a copy of the weights, of the metadata and of the class names."""
    copy = Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.metadata = dict(model.metadata)
    copy.class_names = model.class_names
    return copy


class FineTuner(Trainer):
    """One fine-tune of a head (see split_head), in place, a chunk of batches per run() call, like Trainer.

    own, own_y: features of the learner's drawings (augmented copies, N >= 1); bundled, bundled_y:
    features of bundled digits to keep reading well. Each batch slot gets a digit class drawn
    uniformly; for a class the learner has drawn, the slot holds a copy of one of their drawings
    with probability config.mix, else a bundled digit of that class. So the classes stay balanced
    however many of each the learner drew. The schedule runs over config.steps batches (one
    "epoch"); divergence restores the weights from before the fine-tune and raises
    TrainingDiverged, as Trainer does.
    """

    def __init__(self, head, own, own_y, bundled, bundled_y, config=None):
        self.recipe = config if config is not None else FineTuneConfig()
        training = TrainingConfig(epochs=1, batch_size=self.recipe.batch_size, lr=self.recipe.lr,
                                  optimizer=self.recipe.optimizer, schedule=self.recipe.schedule, augment=False,
                                  seed=self.recipe.seed)
        if training.batch_size > len(np.asarray(bundled_y)):
            training = dataclasses.replace(training, batch_size=len(np.asarray(bundled_y)))
        super().__init__(head, bundled, bundled_y, training)
        if not len(np.asarray(own_y)):
            raise ValueError("no digits of yours to fine-tune on: add some first")
        own = head.as_input(own)
        own_labels = head.as_labels(own_y, len(own))
        classes = head.n_classes()
        # each class's digits as one run of an ordering, so a slot picks start[c] + a random offset below count[c]
        order, self.own_count, self.own_start = _by_class(own_labels, classes)
        self.own = own[order]
        _check_every_class(self.y, classes)
        self.bundled_order, self.bundled_count, self.bundled_start = _by_class(self.y, classes)
        self.classes = classes
        self.batches_per_epoch = self.total_steps = self.recipe.steps

    def _batch(self):
        """(x, y) of the next batch: classes drawn uniformly, the learner's drawings of them with probability mix."""
        n, rng = self.config.batch_size, self.rng
        labels = rng.integers(0, self.classes, n)
        own = (self.own_count[labels] > 0) & (rng.random(n) < self.recipe.mix)
        xb = np.empty((n, *self.x.shape[1:]), self.x.dtype)
        pick = rng.random(n)
        mine, theirs = labels[own], labels[~own]
        xb[own] = self.own[self.own_start[mine] + (pick[own] * self.own_count[mine]).astype(np.intp)]
        slot = self.bundled_start[theirs] + (pick[~own] * self.bundled_count[theirs]).astype(np.intp)
        xb[~own] = self.x[self.bundled_order[slot]]
        return xb, labels.astype(np.intp)

    def run(self, max_batches=None, callback=None):
        """Train up to max_batches batches; the report is Trainer's. Raises TrainingDiverged with the
        weights from before the fine-tune restored."""
        try:
            return super().run(max_batches, callback)
        except TrainingDiverged:
            raise TrainingDiverged(f"fine-tuning diverged; the model is as it was before - try a smaller "
                                   f"learning rate than {self.base_lr:g}") from None


def _check_every_class(y, classes):
    """ValueError unless the bundled labels y hold every class 0..classes-1."""
    missing = np.flatnonzero(np.bincount(y, minlength=classes)[:classes] == 0)
    if len(missing):
        raise ValueError(f"the bundled digits have no digit {missing[0]}: fine-tuning needs every class")


def _by_class(y, classes):
    """labels (N,) -> (the indices that sort them by class, count of each class, where each class starts)."""
    order = np.argsort(y, kind="stable")
    count = np.bincount(y, minlength=classes)[:classes]
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.intp)
    return order, count, start


def _balanced_pick(y, n, rng):
    """Indices of n of the labels y, at random, taking each class in turn (so even a small pick has every class)."""
    shuffled = rng.permutation(len(y))
    order, count, start = _by_class(y[shuffled], int(y.max()) + 1)
    rank = np.empty(len(y), np.intp)
    rank[order] = np.arange(len(y)) - np.repeat(start, count)  # its place among its class's digits
    return shuffled[np.argsort(rank, kind="stable")[:n]]


def folds_of(y, folds, seed=0):
    """Stratified fold index of each digit (N,) in 0..folds-1: each digit's drawings are spread over the folds."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(y))
    order = shuffled[np.argsort(y[shuffled], kind="stable")]  # by class, random within a class
    fold = np.empty(len(y), np.intp)
    fold[order] = np.arange(len(y)) % folds
    return fold


def plan(n, config=None):
    """How FineTuneJob scores n digits honestly -> (method text, fold count, folds scored).

    n == 1: nothing to score on (0 folds). n < holdback_from: k-fold cross-validation with
    k = min(folds, n), every fold scored. Otherwise one held-back fold of the k (1/k of the digits).
    """
    config = config if config is not None else FineTuneConfig()
    if n < 2:
        return "not measured: one drawing is not enough to score on a drawing it was not trained on", 0, 0
    k = min(config.folds, n)
    if n < config.holdback_from:
        return f"{k}-fold cross-validation", k, k
    return f"held back 1/{k} of the digits", k, 1


class FineTuneJob(FoldedJob):
    """The "Fine-tune" button: an honest before/after on the learner's digits, then a fine-tuned copy.

    Runs a step per batch, in three phases:
      1. "preparing": the body's features (split_head) of the learner's drawings, of the held-out
         digits, of config.own_pool augmented copies of the drawings and of config.bundled_pool
         bundled digits, PREDICT_CHUNK images a step;
      2. "measuring": for each scored fold, a fine-tune of a copy of the head on the copies of the
         drawings outside the fold (FineTuner), reading the fold's drawings;
      3. "fine-tuning": the fine-tune of a copy of the head on all of them; self.model, once done,
         is a copy of the starting model with that head.
    The model passed in is left as it was (the page's Undo). A head step costs far less than a
    step of the whole network, so (k + 1) fine-tunes with k = 3 take a few seconds in the page.
    The score is slightly pessimistic: each fold learns from (k-1)/k of the drawings, and a digit
    drawn only once is scored by a model that never saw that digit drawn by the learner
    ("untaught" in the result counts those).
    """

    def __init__(self, model, x, y, x_bundled, y_bundled, x_heldout, y_heldout, config=None):
        self.config = config if config is not None else FineTuneConfig()
        if not len(np.asarray(y)):
            raise ValueError("no digits of yours to fine-tune on: add some first")
        self.start_model = model
        self.body, self.head = split_head(model)
        x = model.as_input(x)
        self.y = model.as_labels(y, len(x))
        x_bundled = model.as_input(x_bundled)
        y_bundled = model.as_labels(y_bundled, len(x_bundled))
        x_heldout = model.as_input(x_heldout)
        self.heldout_y = model.as_labels(y_heldout, len(x_heldout))
        _check_every_class(y_bundled, model.n_classes())
        self.method, k, scored = plan(len(self.y), self.config)
        self.fold = folds_of(self.y, k, self.config.seed) if k else np.zeros(len(self.y), np.intp)
        self.runs = list(range(scored)) + [None]  # the folds to score, then the final fine-tune (None)

        rng = np.random.default_rng(self.config.seed)
        copies = max(1, self.config.own_pool // len(self.y))
        self.own_source = np.repeat(np.arange(len(self.y)), copies)  # the drawing each copy is of
        pick = _balanced_pick(y_bundled, self.config.bundled_pool, rng)
        self.bundled_y = y_bundled[pick]
        c = self.config
        own_augment = {"max_shift": c.shift, "max_rotation": c.rotation, "scale": (1 - c.zoom, 1 + c.zoom)}
        bundled_augment = {} if c.augment_bundled else None  # {}: random_affine's defaults, the page's mild one
        # what phase 1 reads through the body: (name, images, augmentation: random_affine's arguments or None)
        self._todo = [("drawings", x, None), ("heldout", x_heldout, None),
                      ("own", x[self.own_source], own_augment), ("bundled", x_bundled[pick], bundled_augment)]
        self._rng = rng
        self.features = {}
        self.prepare_steps = sum(-(-len(images) // PREDICT_CHUNK) for _, images, _ in self._todo)
        self.step = 0
        self.correct = self.scored = self.untaught = 0
        self.before = self.after_mnist = None
        self.model = None  # the fine-tuned copy, once done
        self.seconds = 0.0
        self._trainer = None
        self._part = self._offset = 0  # where phase 1 is: the part of _todo and the image in it

    final_phase = "fine-tuning"

    def _preparing(self):
        return self._todo is not None

    def _prepare_step(self):
        """Phase 1, one step: the body's features of the next PREDICT_CHUNK images of the parts to read."""
        name, images, augment = self._todo[self._part]
        chunk = images[self._offset:self._offset + PREDICT_CHUNK]
        if augment is not None:
            chunk = random_affine(chunk, self._rng, **augment)
        features = chunk if self.body is None else self.body.forward(chunk)
        self.features.setdefault(name, []).append(features)
        self._offset += len(chunk)
        if self._offset >= len(images):
            self.features[name] = np.concatenate(self.features[name])
            self._part, self._offset = self._part + 1, 0
        if self._part == len(self._todo):
            self._todo = None  # the images are no longer needed
            self.before = {"digits": self.head.evaluate(self.features["drawings"], self.y)["accuracy"],
                           "mnist": self.head.evaluate(self.features["heldout"], self.heldout_y)["accuracy"]}

    def _start(self, run):
        """A FineTuner on a copy of the head: without fold `run`, or on all the drawings (None)."""
        if run is None:  # the head the learner keeps
            use, config = np.ones(len(self.own_source), bool), self.config
        else:  # each fold its own batches
            use = self.fold[self.own_source] != run
            config = dataclasses.replace(self.config, seed=(self.config.seed + 1 + run) % 2 ** 32)
        return FineTuner(_copy(self.head), self.features["own"][use], self.y[self.own_source[use]],
                         self.features["bundled"], self.bundled_y, config)

    def _finish(self, run, trainer):
        tuned = trainer.model
        if run is None:
            self.after_mnist = tuned.evaluate(self.features["heldout"], self.heldout_y)["accuracy"]
            model = _copy(self.start_model)  # its body is the starting model's, unchanged
            weights = model.get_weights()
            model.set_weights(weights[:len(weights) - len(tuned.get_weights())] + tuned.get_weights())
            self.model = model
        else:
            test = self.fold == run
            self.correct += int(np.count_nonzero(tuned.predict(self.features["drawings"][test]) == self.y[test]))
            self.scored += int(np.count_nonzero(test))
            taught = np.bincount(self.y[self.fold != run], minlength=tuned.n_classes())
            self.untaught += int(np.count_nonzero(taught[self.y[test]] == 0))

    def result(self):
        """{"digits": {"method", "before", "after" (None when not measured), "n", "scored", "untaught"},
        "mnist": {"before", "after", "n"}, "steps", "seconds"}; ValueError before the job is done."""
        if not self.done:
            raise ValueError("the fine-tune has not finished")
        return {
            "digits": {"method": self.method, "before": self.before["digits"],
                       "after": self.correct / self.scored if self.scored else None,
                       "n": len(self.y), "scored": self.scored, "untaught": self.untaught},
            "mnist": {"before": self.before["mnist"], "after": self.after_mnist, "n": len(self.heldout_y)},
            "steps": self.total_steps, "seconds": self.seconds,
        }


def fine_tune(model, x, y, x_bundled, y_bundled, x_heldout, y_heldout, config=None):
    """Run a whole FineTuneJob -> (the fine-tuned copy, job.result()); model itself is left unchanged."""
    job = FineTuneJob(model, x, y, x_bundled, y_bundled, x_heldout, y_heldout, config)
    job.run()
    return job.model, job.result()


# ---- joining a full training run -----------------------------------------------------------------
def join(x_train, y_train, x_extra, y_extra, repeat=1):
    """The training digits with the learner's appended `repeat` times -> (x (N + repeat*M, ...), y).

    Trainer shuffles and augments every epoch, so each repeat is seen differently; repeating keeps
    30 drawings from being lost among 8,500 digits (auto_repeat picks a count).
    """
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or not 1 <= repeat <= 10_000:
        raise ValueError(f"repeat must be an int from 1 to 10000, got {repeat!r}")
    x_train, x_extra = np.asarray(x_train), np.asarray(x_extra, dtype=np.asarray(x_train).dtype)
    if x_extra.ndim == 3 and x_train.ndim == 4:
        x_extra = x_extra[:, None]
    if x_extra.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"the extra digits must have shape (N, {', '.join(map(str, x_train.shape[1:]))}), "
                         f"got {x_extra.shape}")
    y_extra = np.asarray(y_extra)
    if len(y_extra) != len(x_extra):
        raise ValueError(f"{len(x_extra)} extra digits but {len(y_extra)} labels")
    x = np.concatenate([x_train] + [x_extra] * int(repeat))
    y = np.concatenate([np.asarray(y_train)] + [y_extra.astype(np.asarray(y_train).dtype)] * int(repeat))
    return x, y


def auto_repeat(n_train, n_extra, share=0.05):
    """How many times to repeat n_extra digits so they are about `share` of the joined set (at least once)."""
    if n_extra <= 0:
        return 1
    return max(1, min(10_000, round(share * n_train / ((1 - share) * n_extra))))
