"""Argument checks shared by layers, optimisers and training settings.

Each raises ValueError naming the argument, the expectation and the value it got.
"""
import math

import numpy as np


def number(name, value, low=-math.inf, high=math.inf, integer=False, low_open=False):
    """value as an int (integer=True) or float within [low, high] ((low, high] when low_open)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, (bool, np.bool_))
    if ok:
        try:
            # compare as Python numbers: a 400-digit int is simply too large, not an OverflowError
            ok = (low < value if low_open else low <= value) and value <= high and (integer or math.isfinite(value))
        except (OverflowError, TypeError):
            ok = False
    if not ok:
        kind = "int" if integer else "number"
        show = str if integer else (lambda v: f"{v:g}")  # noqa: E731 - ints print exactly
        if high == math.inf and ((integer and low == 1) or (low_open and low == 0)):
            expected = f"a positive {kind}"
        elif high == math.inf:
            expected = f"a {kind} {'above' if low_open else 'of at least'} {show(low)}"
        else:
            expected = f"a{'n' if integer else ''} {kind} from {show(low)} to {show(high)}"
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"{name} must be {expected}, got {shown}")
    return int(value) if integer else float(value)


def positive_int(name, value):
    return number(name, value, 1, integer=True)
