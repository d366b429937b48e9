"""The page's Python side: the data split and the parts that answer the page's requests.

The web worker (web/worker.js) makes one Session and relays every request to `dispatch`
(pycnn.page.protocol). Each part answers the requests of one job:
- CurrentModel: the model and what is only valid with it (keep, load, reset, tried steps);
- Runs: training and fine-tuning, a batch per step, and this machine's speed;
- Reader: what the network reads of a drawing or a held-out digit, and the code view;
- YourDigits: the learner's drawings; Editor: the network editor;
- Projects: projects of the learner's own classes (the digits or one of them is open).
The session assumes nothing about the network beyond its input (1, 28, 28) and 10 classes.
"""
import dataclasses

import numpy as np

from .. import __version__, datasets, serialize
from ..presets import DEFAULT_PRESET, preset
from ..training import TrainingConfig
from . import protocol
from .current import CurrentModel
from .editor import Editor, editor_spec
from .mydigits import YourDigits
from .projects import Projects
from .protocol import request
from .reading import Reader
from .runs import PAGE_SHARDS, Runs


@dataclasses.dataclass
class Data:
    """The bundled digits, split: float32 (N, 1, 28, 28) images in [0, 1] and their labels."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_heldout: np.ndarray
    y_heldout: np.ndarray
    split: dict  # {"heldout", "seed"}: how they were split (the generated code splits the same way)


class Session:
    """What the page needs: the data split, the current model, the run in flight, your digits."""

    def __init__(self, images, labels, heldout=1500, seed=0, model=None):
        """images: uint8 (N, 28, 28) or floats (N, 1, 28, 28); labels: (N,) digits; heldout: digits kept out."""
        # split the uint8 digits, then scale the parts: the float32 copy of all of them is never
        # made, which keeps ~31 MB out of the worker's memory (wasm memory never shrinks)
        x_train, y_train, x_heldout, y_heldout = datasets.train_test_split(
            images, np.asarray(labels), test_size=heldout, seed=seed)
        self.data = Data(_as_floats(x_train), y_train, _as_floats(x_heldout), y_heldout,
                         {"heldout": int(heldout), "seed": int(seed)})
        self.current = CurrentModel(self, model if model is not None else preset(DEFAULT_PRESET, seed=0),
                                    0 if model is None else None)
        self.runs = Runs(self)
        self.reader = Reader(self)
        self.digits = YourDigits(self)
        self.editor = Editor(self)
        self.projects = Projects(self)
        self._parts = {type(part).__name__: part
                       for part in (self, self.current, self.runs, self.reader, self.digits, self.editor, self.projects)}
        self._events = []  # what the page is told after the reply being made

    @classmethod
    def from_files(cls, images_path, labels_path, heldout=1500, seed=0):
        """The bundled subset's IDX files (plain or .gz) -> Session."""
        images = datasets.read_idx_pixels(images_path)
        labels = datasets.read_idx_labels(labels_path)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        return cls(images, labels, int(heldout), int(seed))

    @request(then=("filters",))
    def info(self):
        """Counts, the training defaults and the limits the page validates its form against, how it splits a
        run's batches into shards, the editor, your digits' limits, the largest model file, the requests (this
        registry) and the versions."""
        return {
            "train_count": len(self.data.y_train),
            "heldout_count": len(self.data.y_heldout),
            "defaults": TrainingConfig.defaults(),
            "limits": TrainingConfig.limits(),
            "shards": PAGE_SHARDS,
            "editor": editor_spec(),
            "network": self.editor.network(),
            "my_digits": self.digits.limits(),
            "projects": self.projects.limits(),
            "max_model_bytes": serialize.MAX_FILE_BYTES,
            "requests": protocol.published(),
            "numpy": np.__version__,
            "pycnn": __version__,
        }

    # ---- what dispatch needs ---------------------------------------------------------------
    def part(self, name):
        """The part (an object of class `name`) that answers a request."""
        return self._parts[name]

    def running(self):
        """Whether a run (training or fine-tuning) is in flight."""
        return self.runs.active is not None

    def tell(self, event, **payload):
        """Tell the page `event` after the reply being made (in the order told)."""
        self._events.append({"type": event, **payload})

    def checkpoint(self, reason, evaluation, run=None, **details):
        """Tell the page the model to keep (and the one Undo fine-tune brings back), and why; run: the run in
        flight's {"state", "recipe"}, for the model file to carry (else the stopped run's, if any)."""
        files = self.current.save() if run is None else self.current.files(run)
        self.tell("checkpoint", reason=reason, evaluation=evaluation, **files, **details)

    def events_after(self, spec, result):
        """The events told while answering `spec`, then those it declares -> the list, emptied for the next."""
        for event in spec.then:
            if event == "filters":
                self.tell("filters", **self.current.filters())
            else:  # "checkpoint": the reply carries the evaluation of the model kept
                self.checkpoint(spec.name, result["evaluation"])
        return self.drop_events()

    def drop_events(self):
        """Forget the events told so far (a request that failed tells nothing) -> what they were."""
        events, self._events = self._events, []
        return events


def _as_floats(images):
    images = np.asarray(images)
    return datasets.scale(images) if images.dtype == np.uint8 else images.astype(np.float32)
