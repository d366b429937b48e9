"""Your own classes: a project of named classes, drawings of each, and optionally a model trained on them.

A learner names 2 to 20 classes (letters, shapes, symbols; a word or an emoji is a name too), draws
examples of each, and trains a network to tell them apart (pycnn.classes). The project file keeps
all of it. Like the digits file (pycnn.yourdigits) it is a zip in numpy's .npz layout, so
`np.load(path)` reads its arrays too:

    classes.json  {"format": "pycnn-classes", "version": 1, "names": ["circle", "star", ...],
                   "count": N, "model": true | false}
    images.npy    uint8 (N, 28, 28): each drawing as the network sees it, round(255 * ink), paper 0
    labels.npy    uint8 (N,): the class of each drawing, an index into names
    model.npz     only when "model" is true: a pycnn model file (pycnn.serialize) with one output
                  per class, input (1, 28, 28), naming the classes as "names" does

Names (pycnn.checks.class_names): at most MAX_NAME_CHARS characters each, trimmed of surrounding
spaces, none empty, no control characters or line breaks, no two the same ignoring case. A class
may have no drawings yet. At most MAX_DRAWINGS drawings and MAX_FILE_BYTES bytes; the model at
most MAX_MODEL_BYTES.

Reading never unpickles and checks every header before reading any data: the members, their
sizes, the format name and version (a newer version is refused, saying so), the names, the
dtypes and shapes, the labels, and the model file as pycnn.serialize checks any model file. Any
problem is one ValueError saying what is wrong, and nothing partial is returned.
"""
import json

import numpy as np

from . import npzfile
from .checks import MAX_NAME_CHARS, class_names, number  # noqa: F401 - MAX_NAME_CHARS: the limit the page shows

FORMAT = "pycnn-classes"
VERSION = 1
SIDE = npzfile.SIDE
MIN_CLASSES, MAX_CLASSES = 2, 20
MAX_DRAWINGS = 10_000
MEMBERS = ("classes.json", "images.npy", "labels.npy")
MODEL_MEMBER = "model.npz"
# names: 20 of 40 characters, each written as up to 12 bytes of JSON escapes ("\\ud83d\\ude00")
MAX_JSON_BYTES = 16 * 1024
MAX_MODEL_BYTES = 16 * 2 ** 20       # the page's largest network (824,458 weights) is a 3.3 MB model file
MAX_DRAWING_BYTES = MAX_DRAWINGS * (SIDE * SIDE + 1) + 2 * npzfile.NPY_HEADER_BYTES
MAX_UNPACKED_BYTES = MAX_DRAWING_BYTES + MAX_JSON_BYTES + MAX_MODEL_BYTES
MAX_FILE_BYTES = MAX_UNPACKED_BYTES + 2 ** 16   # stored uncompressed, plus the zip's own headers


def check_names(names):
    """The names of a project's classes, cleaned (checks.class_names), MIN_CLASSES to MAX_CLASSES of them."""
    return class_names(names, min_count=MIN_CLASSES, max_count=MAX_CLASSES)


class Project:
    """Named classes, the drawings of each and optionally a model trained on them.

    names: 2 to 20 class names; images (N, 28, 28) or (N, 1, 28, 28), floats in [0, 1] or uint8;
    labels (N,) class indices; model: a Sequential with one output per class, or None. Drawings are
    kept as the file keeps them (uint8 levels), so a saved and reloaded project trains the same.
    The model is given the project's names; changing the classes (add_class, remove_class) drops it.
    """

    def __init__(self, names, images=None, labels=None, model=None):
        self.names = check_names(names)
        images = np.zeros((0, SIDE, SIDE), np.uint8) if images is None else images
        labels = np.zeros(0, np.uint8) if labels is None else labels
        self.pixels = as_pixels(images)
        self.labels = self._as_labels(labels, len(self.pixels))
        self.model = None
        self.set_model(model)

    # ---- what it holds ---------------------------------------------------------------------------
    @property
    def x(self):
        """The drawings as a model reads them: (N, 1, 28, 28) float32 in [0, 1]."""
        return np.divide(self.pixels, np.float32(255), dtype=np.float32)[:, None]

    @property
    def y(self):
        """The class of each drawing: (N,) int64."""
        return self.labels.astype(np.int64)

    def counts(self):
        """Drawings of each class -> list of len(names) ints."""
        return np.bincount(self.labels.astype(np.intp), minlength=len(self.names)).tolist()

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        model = ", with a model" if self.model is not None else ""
        return f"Project({len(self.names)} classes: {', '.join(self.names)}; {len(self)} drawings{model})"

    # ---- changing it --------------------------------------------------------------------------------
    def set_model(self, model):
        """Keep model (one output per class, input (1, 28, 28); it takes the project's names), or None."""
        if model is not None:
            from .model import Sequential  # here: the model module is not needed to read the drawings
            if not isinstance(model, Sequential):
                raise ValueError(f"model must be a pycnn Sequential or None, got {type(model).__name__}")
            if model.input_shape != (1, SIDE, SIDE):
                raise ValueError(f"the model must read (1, 28, 28) drawings, got input shape {model.input_shape}")
            if model.n_classes() != len(self.names):
                raise ValueError(f"the model has {model.n_classes()} classes; the project has {len(self.names)} "
                                 f"({', '.join(self.names)})")
            model.class_names = self.names
        self.model = model

    def add(self, images, labels):
        """Add drawings (images as Project takes them) of the classes `labels` (ints, or one int for all)."""
        pixels = as_pixels(images)
        labels = np.broadcast_to(np.asarray(labels), (len(pixels),)) if np.ndim(labels) == 0 else labels
        labels = self._as_labels(labels, len(pixels))
        if len(self.labels) + len(labels) > MAX_DRAWINGS:
            raise ValueError(f"a project holds at most {MAX_DRAWINGS:,} drawings; it has {len(self.labels):,}, "
                             f"{len(labels):,} more would be too many")
        self.pixels = np.concatenate([self.pixels, pixels])
        self.labels = np.concatenate([self.labels, labels])

    def remove(self, index):
        """Remove drawing `index`."""
        if not len(self.labels):
            raise ValueError("there is no drawing to remove: the project has none")
        index = number("index", index, 0, len(self.labels) - 1, integer=True)
        self.pixels, self.labels = np.delete(self.pixels, index, axis=0), np.delete(self.labels, index)

    def rename(self, index, name):
        """Give class `index` the name `name` (the model keeps reading it: only its name changes)."""
        index = number("class index", index, 0, len(self.names) - 1, integer=True)
        names = check_names(self.names[:index] + [name] + self.names[index + 1:])
        self.names = names
        if self.model is not None:
            self.model.class_names = names

    def add_class(self, name):
        """A new class `name`, with no drawings yet, after the others -> its index. The model is dropped."""
        self.names = check_names(self.names + [name])
        self.model = None
        return len(self.names) - 1

    def remove_class(self, index):
        """Remove class `index` and its drawings; the later classes move up one. The model is dropped."""
        index = number("class index", index, 0, len(self.names) - 1, integer=True)
        if len(self.names) <= MIN_CLASSES:
            raise ValueError(f"a project has at least {MIN_CLASSES} classes: add another before removing "
                             f"{self.names[index]!r}")
        keep = self.labels != index
        self.pixels, self.labels = self.pixels[keep], self.labels[keep]
        self.labels = self.labels - (self.labels > index).astype(np.uint8)
        self.names = self.names[:index] + self.names[index + 1:]
        self.model = None

    def _as_labels(self, labels, n):
        labels = np.asarray(labels)
        if labels.shape != (n,) or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
            raise ValueError(f"labels must be {n} class indices (ints), got shape {labels.shape} dtype {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.names)):
            raise ValueError(f"labels must be class indices 0-{len(self.names) - 1} (the {len(self.names)} "
                             f"classes), got {labels.min()}..{labels.max()}")
        return labels.astype(np.uint8)

    # ---- the file -----------------------------------------------------------------------------------
    def to_bytes(self):
        """The project file's bytes."""
        header = {"format": FORMAT, "version": VERSION, "names": self.names, "count": len(self.labels),
                  "model": self.model is not None}
        members = {"classes.json": json.dumps(header).encode(), "images.npy": npzfile.npy_bytes(self.pixels),
                   "labels.npy": npzfile.npy_bytes(self.labels)}
        if self.model is not None:
            model = self.model.to_bytes()
            if len(model) > MAX_MODEL_BYTES:
                raise ValueError(f"the model file is {len(model):,} bytes; a project keeps a model of at most "
                                 f"{MAX_MODEL_BYTES:,}")
            members[MODEL_MEMBER] = model
        return npzfile.archive(members)

    @classmethod
    def from_bytes(cls, data):
        """The project file's bytes -> Project; ValueError saying what is wrong."""
        data = npzfile.check_size(data, "project", MAX_FILE_BYTES)
        with npzfile.reading("project"):
            names, pixels, labels, model = _read(data)
        project = cls(names)
        project.pixels, project.labels = pixels, labels  # checked by _read
        project.model = model
        return project

    def save(self, path):
        """Write the project file to path (conventionally *.npz)."""
        data = self.to_bytes()
        with open(path, "wb") as f:
            f.write(data)

    @classmethod
    def load(cls, path):
        """Read a project file, refusing an oversized one unread -> Project; ValueError naming the file."""
        data = npzfile.read_file(path, "project", MAX_FILE_BYTES)
        try:
            return cls.from_bytes(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def as_pixels(images):
    """Drawings as the file holds them (npzfile.as_pixels)."""
    return npzfile.as_pixels(images, MAX_DRAWINGS, "drawings")


def _read(data):
    """The file's bytes -> (names, pixels, labels, model or None), everything checked."""
    with npzfile.open_archive(data, "project", MAX_UNPACKED_BYTES) as (zf, infos):
        if "config.json" in infos:
            raise ValueError("this is a pycnn model file, not a project file")
        if "digits.json" in infos:
            raise ValueError("this is a digits file (Your digits), not a project file")
        npzfile.check_members(infos, "project", MEMBERS, optional=[MODEL_MEMBER])
        if infos["classes.json"].file_size > MAX_JSON_BYTES:
            raise ValueError(f"classes.json is {infos['classes.json'].file_size:,} bytes; at most {MAX_JSON_BYTES:,}")
        names, count, has_model = _parse_header(zf.read("classes.json"))
        if has_model != (MODEL_MEMBER in infos):
            raise ValueError(f"classes.json says the project has {'a' if has_model else 'no'} model, but "
                             f"{MODEL_MEMBER} is {'missing' if has_model else 'there'}")
        note = " (count in classes.json)"
        pixels = npzfile.read_npy(zf, infos["images.npy"], (count, SIDE, SIDE), np.uint8, note)
        labels = npzfile.read_npy(zf, infos["labels.npy"], (count,), np.uint8, note)
        if count and labels.max() >= len(names):
            raise ValueError(f"labels.npy: labels must be class indices 0-{len(names) - 1} (the {len(names)} names), "
                             f"found {labels.max()}")
        model = None
        if has_model:
            if infos[MODEL_MEMBER].file_size > MAX_MODEL_BYTES:
                raise ValueError(f"{MODEL_MEMBER} is {infos[MODEL_MEMBER].file_size:,} bytes; a project keeps a "
                                 f"model of at most {MAX_MODEL_BYTES:,}")
            model = _read_model(zf.read(MODEL_MEMBER), names)
    return names, pixels, labels, model


def _read_model(data, names):
    from .serialize import model_from_bytes  # here: serialize imports the model, which reading drawings needs not
    try:
        model = model_from_bytes(data)
    except ValueError as err:
        raise ValueError(f"{MODEL_MEMBER}: {err}") from None
    if model.input_shape != (1, SIDE, SIDE):
        raise ValueError(f"{MODEL_MEMBER}: the model must read (1, 28, 28) drawings, got {model.input_shape}")
    if model.n_classes() != len(names):
        raise ValueError(f"{MODEL_MEMBER}: the model has {model.n_classes()} classes; the project names {len(names)}")
    if model.class_names != names:
        raise ValueError(f"{MODEL_MEMBER}: the model names its classes {model.class_names}, the project {names}")
    return model


def _parse_header(raw):
    """classes.json -> (names, drawing count, has a model), after checking the format and version."""
    header = npzfile.read_header(raw, "classes.json", "project", FORMAT, VERSION,
                                 ("format", "version", "names", "count", "model"))
    try:
        names = check_names(header.get("names"))
    except ValueError as err:
        raise ValueError(f"classes.json: {err}") from None
    count = header.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_DRAWINGS:
        raise ValueError(f"classes.json: count must be an int from 0 to {MAX_DRAWINGS:,}, got {count!r}")
    model = header.get("model")
    if not isinstance(model, bool):
        raise ValueError(f"classes.json: model must be true or false, got {model!r}")
    return names, count, model

