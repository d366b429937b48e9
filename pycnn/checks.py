"""Argument checks shared by layers, optimisers and training settings.

Each raises ValueError naming the argument, the expectation and the value it got.
"""
import dataclasses
import math
import unicodedata

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
            expected = f"a{'n' if integer else ''} {kind} {'above' if low_open else 'of at least'} {show(low)}"
        else:
            expected = f"a{'n' if integer else ''} {kind} from {show(low)} to {show(high)}"
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"{name} must be {expected}, got {shown}")
    return int(value) if integer else float(value)


MAX_NAME_CHARS = 40  # characters (code points) in a class name: a word, a symbol or an emoji sequence
# control characters, surrogates (a lone one cannot be written as UTF-8) and line or paragraph separators
NOT_IN_NAMES = ("Cc", "Cs", "Zl", "Zp")


def class_names(names, count=None, min_count=1, max_count=math.inf, what="class names"):
    """names as a list of clean class names: each NFC-normalised and trimmed of surrounding spaces, non-empty,
    at most MAX_NAME_CHARS characters, no control characters or line breaks, all different ignoring case and
    those spaces; as many as count (when given), min_count to max_count of them. ValueError naming the name."""
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
        raise ValueError(f"{what} must be a list of strings, got {type(names).__name__}")
    if count is not None and len(names) != count:
        raise ValueError(f"{what} must name the {count} classes, got {len(names)} names")
    if not min_count <= len(names) <= max_count:
        expected = f"at least {min_count}" if max_count == math.inf else f"{min_count} to {max_count}"
        raise ValueError(f"{what}: there must be {expected} classes, got {len(names)}")
    clean, seen = [], {}
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ValueError(f"{what}: name {i + 1} must be a string, got {str(name)[:40]!r}")
        bad = next((c for c in name if unicodedata.category(c) in NOT_IN_NAMES), None)
        if bad:
            raise ValueError(f"{what}: name {i + 1} has a control character or line break (U+{ord(bad):04X})")
        name = unicodedata.normalize("NFC", name.strip())
        if not name:
            raise ValueError(f"{what}: name {i + 1} is empty")
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f"{what}: name {i + 1} is {len(name)} characters long; at most {MAX_NAME_CHARS}: "
                             f"{name[:MAX_NAME_CHARS]!r}...")
        key = name.casefold()
        if key in seen:
            raise ValueError(f"{what}: {seen[key]!r} and {name!r} are the same name (case and surrounding spaces "
                             f"do not count): give each class its own")
        seen[key] = name
        clean.append(name)
    return clean


# ---- argument specs: one description of an argument, used to check values and shown to the page --
REQUIRED = object()  # the default of an argument that has none


class Arg:
    """One argument's kind and bounds. check(name, value) -> the value or ValueError; spec() -> JSON-able."""

    kind = ""

    def __init__(self, default=REQUIRED, optional=False):
        self.default = default
        self.optional = optional  # None is allowed too

    def check(self, name, value):
        if value is None and self.optional:
            return None
        return self._check(name, value)

    def bounds(self):
        return {}

    def spec(self):
        """{"type": ..., bounds..., "optional": true (if so), "default": ... (if any)}."""
        out = {"type": self.kind, **self.bounds()}
        if self.optional:
            out["optional"] = True
        if self.default is not REQUIRED:
            out["default"] = self.default
        return out


class Int(Arg):
    """An int in [min, max]."""

    kind = "int"

    def __init__(self, min, max, default=REQUIRED, optional=False):
        super().__init__(default, optional)
        self.min, self.max = min, max

    def _check(self, name, value):
        return number(name, value, self.min, self.max, integer=True)

    def bounds(self):
        return {"min": self.min, "max": self.max}


class Float(Arg):
    """A finite number in [min, max]."""

    kind = "float"

    def __init__(self, min, max, default=REQUIRED, optional=False):
        super().__init__(default, optional)
        self.min, self.max = min, max

    def _check(self, name, value):
        return number(name, value, self.min, self.max)

    def bounds(self):
        return {"min": self.min, "max": self.max}


class Choice(Arg):
    """One of a few values (strings or ints), of the same type: 5 is not "5", True is not 1."""

    kind = "choice"

    def __init__(self, choices, default=REQUIRED, optional=False):
        super().__init__(default, optional)
        self.choices = tuple(choices)

    def _check(self, name, value):
        if not any(type(value) is type(choice) and value == choice for choice in self.choices):
            raise ValueError(f"{name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value

    def bounds(self):
        return {"choices": list(self.choices)}


class Bool(Arg):
    """True or False (not 0 or 1)."""

    kind = "bool"

    def _check(self, name, value):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value


class Padding(Arg):
    """Convolution padding: "valid", "same", or an int from 0 to max (zeros on every side)."""

    kind = "padding"

    def __init__(self, max, default=REQUIRED):
        super().__init__(default)
        self.max = max

    def _check(self, name, value):
        if isinstance(value, str) and value in ("valid", "same"):
            return value
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        try:
            ok = ok and 0 <= value <= self.max
        except (OverflowError, TypeError):
            ok = False
        if not ok:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise ValueError(f"{name} must be 'valid', 'same' or an int from 0 to {self.max}, got {shown}")
        return int(value)

    def bounds(self):
        return {"choices": ["valid", "same"], "min": 0, "max": self.max}


def check_args(args, values):
    """values: {name: value} checked against args: {name: Arg} -> every argument, defaults filled in."""
    unknown = [name for name in values if name not in args]
    if unknown:
        takes = ", ".join(args) if args else "no arguments"
        raise ValueError(f"unexpected argument {unknown[0]!r} (takes {takes})")
    out = {}
    for name, arg in args.items():
        if name in values:
            out[name] = arg.check(name, values[name])
        elif arg.default is REQUIRED:
            raise ValueError(f"missing argument {name!r}")
        else:
            out[name] = arg.default
    return out


class Settings:
    """Base of a dataclass of checked settings: ARGS gives every field's bounds, KIND names it in messages."""
    ARGS = {}
    KIND = "settings"

    def __post_init__(self):
        for name, arg in self.ARGS.items():
            setattr(self, name, arg.check(name, getattr(self, name)))

    @classmethod
    def limits(cls):
        """Every field's bounds as JSON-able data: {"epochs": {"type": "int", "min": 1, "max": 1000}, ...}."""
        return {name: arg.spec() for name, arg in cls.ARGS.items()}

    @classmethod
    def from_dict(cls, values):
        """Build from a JSON-like dict; missing keys take the defaults, unknown keys are refused."""
        if not isinstance(values, dict):
            raise ValueError(f"{cls.KIND} config must be a dict, got {type(values).__name__}")
        unknown = sorted(map(str, set(values) - {f.name for f in dataclasses.fields(cls)}))
        if unknown:
            raise ValueError(f"unknown {cls.KIND} setting(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def defaults(cls):
        return dataclasses.asdict(cls())

    def to_dict(self):
        return dataclasses.asdict(self)
