"""The model file: a zip (numpy's .npz layout) holding config.json and one .npy per weight.

    config.json   {"format": "pycnn", "version": 1, "dtype", "input_shape", "layers": [...], "metadata"}
    0.W.npy, 0.b.npy, 4.W.npy, ...   weights keyed "layer_index.param"

Loading never unpickles and never trusts a size it has not checked: every header is read
and validated before any array data is, and every problem becomes a ValueError that says
what is wrong.
"""
import ast
import io
import json
import math
import os
import zipfile

import numpy as np

from .model import Sequential

FORMAT = "pycnn"
VERSION = 1
MAX_FILE_BYTES = 64 * 2 ** 20       # a model of this library is well under 1 MB; 64 MB is generous
MAX_CONFIG_BYTES = 2 ** 20
# the architecture's own limits (weights, work per image, layers, input size) are
# Sequential.from_config's: MAX_PARAMS, MAX_WORK, MAX_LAYERS and MAX_DIM in model.py


def model_to_bytes(model):
    """Sequential -> bytes of the model file."""
    config = {"format": FORMAT, "version": VERSION, **model.get_config(), "metadata": model.metadata}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_fixed_info("config.json"), json.dumps(config, indent=1, allow_nan=False))
        for i, layer in enumerate(model.layers):
            for name, value in layer.params.items():
                member = io.BytesIO()
                np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)
                zf.writestr(_fixed_info(f"{i}.{name}.npy"), member.getvalue())
    return buf.getvalue()


def _fixed_info(name):
    # a fixed timestamp so the same model always gives the same bytes
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def model_from_bytes(data):
    """bytes of a model file -> Sequential; ValueError saying what is wrong otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"model data must be bytes, got {type(data).__name__}")
    size = memoryview(data).nbytes
    if not size:
        raise ValueError("the model file is empty")
    if size > MAX_FILE_BYTES:
        raise ValueError(f"the model file is {size:,} bytes; a pycnn model is at most {MAX_FILE_BYTES:,}")
    data = bytes(data)
    try:
        return _load(data)
    except ValueError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError, IndexError,
            UnicodeDecodeError, NotImplementedError, RuntimeError, TypeError, OverflowError, SyntaxError,
            MemoryError, RecursionError) as err:
        raise ValueError(f"not a valid pycnn model file ({type(err).__name__}: {err})") from None
    except Exception as err:  # the loader's promise is ValueError only; name anything unforeseen
        raise ValueError(f"not a valid pycnn model file (unexpected {type(err).__name__}: {err})") from None


def _load(data):
    if not data.startswith(b"PK"):
        raise ValueError("not a pycnn model file (it is not a zip/.npz archive)")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        if len(infos) != len(zf.infolist()):
            raise ValueError("the model file has duplicate members")
        if "config.json" not in infos:
            raise ValueError("the model file has no config.json (not a pycnn model)")
        total = sum(info.file_size for info in infos.values())
        if total > MAX_FILE_BYTES:
            raise ValueError(f"the model file would unpack to {total:,} bytes; at most {MAX_FILE_BYTES:,} allowed")
        if infos["config.json"].file_size > MAX_CONFIG_BYTES:
            raise ValueError("config.json is absurdly large")
        config = _parse_config(zf.read("config.json"))
        # checks the architecture before allocating its weights
        model = Sequential.from_config({key: config.get(key) for key in ("input_shape", "dtype", "layers")})
        model.metadata = config.get("metadata", {})
        expected = {f"{i}.{name}.npy": (layer, name) for i, layer in enumerate(model.layers)
                    for name in layer.params}
        extra = sorted(set(infos) - set(expected) - {"config.json"})
        if extra:
            raise ValueError(f"the model file has unexpected members: {', '.join(extra[:5])}")
        missing = sorted(set(expected) - set(infos))
        if missing:
            raise ValueError(f"the model file is missing weights: {', '.join(missing[:5])}")
        weights = []
        for member, (layer, name) in expected.items():
            weights.append(_read_array(zf, infos[member], layer.params[name].shape, model.dtype))
    model.set_weights(weights)
    return model


def _parse_config(raw):
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config.json is not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError("config.json is not a pycnn model config (format is not 'pycnn')")
    version = config.get("version")
    if version != VERSION:
        raise ValueError(f"unsupported model format version {version!r}; this pycnn reads version {VERSION}")
    if not isinstance(config.get("metadata", {}), dict):
        raise ValueError("metadata must be a JSON object")
    return config


def load_file(path):
    """Read and load a model file, refusing an oversized one before reading it."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{path}: the model file is {size:,} bytes; a pycnn model is at most {MAX_FILE_BYTES:,}")
        data = f.read(MAX_FILE_BYTES + 1)  # at most: a pipe or special file has no size
    return model_from_bytes(data)


def _read_array(zf, info, shape, dtype):
    """Read one .npy member after checking its header against what the architecture expects."""
    name = info.filename
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{name}: unsupported .npy version {version}")
        header = f.read(2 if version == (1, 0) else 4)
        length = int.from_bytes(header, "little")
        if length > 4096:
            raise ValueError(f"{name}: .npy header is absurdly long")
        text = f.read(length).decode("latin1")
        try:
            meta = ast.literal_eval(text)  # literals only: the same parser numpy uses, never eval
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"{name}: unreadable .npy header") from None
        if not isinstance(meta, dict) or set(meta) != {"descr", "fortran_order", "shape"}:
            raise ValueError(f"{name}: malformed .npy header")
        descr = meta["descr"]
        if not isinstance(descr, str) or descr not in (f"<f{dtype.itemsize}", f"|f{dtype.itemsize}"):
            raise ValueError(f"{name}: dtype must be {dtype.name} (little-endian), got {descr!r}")
        if meta["fortran_order"] is not False:
            raise ValueError(f"{name}: Fortran-ordered arrays are not accepted")
        if not isinstance(meta["shape"], tuple) or meta["shape"] != tuple(shape):
            raise ValueError(f"{name}: shape must be {tuple(shape)}, got {meta['shape']!r}")
        nbytes = math.prod(shape) * dtype.itemsize
        raw = f.read(nbytes + 1)
    if len(raw) != nbytes:
        raise ValueError(f"{name}: expected {nbytes} bytes of data, found {len(raw)} (truncated or padded)")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: weights contain NaN or infinity")
    return array
