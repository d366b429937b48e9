"""Your digits: the learner's own drawings, each the 28x28 image the network saw, with the digit it is.

They belong to the learner, not to a model: a new model, a run or a fine-tune keeps them (a run
or a fine-tune copies them when it starts, so they can change while it trains). The page keeps
them across visits as the digits file (pycnn.yourdigits) and imports it back.
"""
import numpy as np

from .. import yourdigits
from ..checks import number
from .current import CLASSES, INPUT_SHAPE
from .protocol import request
from .reading import drawing_image

FILE_NAME = "my-digits.npz"


class YourDigits:
    """The learner's drawings x (N, 1, 28, 28) float32 and their digits y (N,)."""

    def __init__(self, session):
        self.session = session
        self.x = np.zeros((0, *INPUT_SHAPE), np.float32)
        self.y = np.zeros(0, np.int64)

    @request(during_run="answer")
    def add_digit(self, label, data=None, width=None, height=None):
        """Add a drawing of `label` -> my_digits(): `data`, the drawing as predict takes it (width*height uint8 ink
        levels; the page sends the canvas as it was when "It's a ..." was pressed), or without it the digit
        inspected last. Nothing drawn, or as many digits as the page keeps: ValueError, nothing added."""
        label = number("label", label, 0, CLASSES - 1, integer=True)
        if data is None:
            x = self.session.current.digit()
        else:
            x = drawing_image(data, width, height, "add_digit")
            if x is None:
                raise ValueError("there is nothing to add: the drawing is empty (or a dot); draw a digit first")
        if len(self.y) >= yourdigits.MAX_DIGITS:
            raise ValueError(f"you have {len(self.y):,} digits, the most the page keeps: remove some first")
        self.x = np.concatenate([self.x, np.asarray(x, np.float32)[None]])
        self.y = np.append(self.y, np.int64(label))
        return self.my_digits()

    @request(during_run="answer")
    def remove_digit(self, index):
        """Remove drawing `index` (its place in my_digits' lists) -> my_digits()."""
        if not len(self.y):
            raise ValueError("there is no drawing to remove: you have none")
        index = number("index", index, 0, len(self.y) - 1, integer=True)
        self.x, self.y = np.delete(self.x, index, axis=0), np.delete(self.y, index)
        return self.my_digits()

    @request(during_run="answer")
    def remove_all_digits(self):
        """Remove every drawing (the learner confirmed it) -> my_digits()."""
        self.x, self.y = self.x[:0], self.y[:0]
        return self.my_digits()

    def my_digits(self):
        """{"count", "counts" (10: drawings of each digit), "labels" (N), "images" (N, 28, 28), "file": the
        digits file's bytes (what the page keeps)}."""
        # bincount takes intp only (int32 in Pyodide's 32-bit WebAssembly)
        counts = np.bincount(self.y.astype(np.intp), minlength=CLASSES)
        return {"count": len(self.y), "counts": counts.tolist(), "labels": self.y.tolist(), "images": self.x[:, 0],
                "file": yourdigits.to_bytes(self.x, self.y)}

    @request(during_run="answer")
    def export_digits(self):
        """The digits file (what `python -m pycnn train --extra FILE` reads) -> {"bytes", "file_name", "count"}."""
        return {"bytes": yourdigits.to_bytes(self.x, self.y), "file_name": FILE_NAME, "count": len(self.y)}

    @request(during_run="answer")
    def import_digits(self, data, replace=False):
        """Add the digits of a digits file (replace: instead of the kept ones) -> my_digits() plus "added".
        Not a valid digits file, or more digits than the page keeps: ValueError, the kept digits unchanged."""
        x, y = yourdigits.from_bytes(data)
        kept = 0 if replace else len(self.y)
        if kept + len(y) > yourdigits.MAX_DIGITS:
            raise ValueError(f"the file has {len(y):,} digits; with the {kept:,} you have that is more than the "
                             f"{yourdigits.MAX_DIGITS:,} the page keeps")
        if replace:
            self.x, self.y = x, y
        else:
            self.x, self.y = np.concatenate([self.x, x]), np.concatenate([self.y, y])
        return {**self.my_digits(), "added": len(y)}

    def limits(self):
        """What the page needs to know before it sends a digits file or starts a fine-tune."""
        return {"max_digits": yourdigits.MAX_DIGITS, "max_file_bytes": yourdigits.MAX_FILE_BYTES,
                "file_name": FILE_NAME, "fine_tune": yourdigits.FineTuneConfig.defaults()}
