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

from .layers import LAYERS, Conv2D, Dense

WEIGHTLESS = tuple(kind for kind in LAYERS.values() if kind not in (Conv2D, Dense))
from .model import DTYPES, Sequential

FORMAT = "pycnn"
VERSION = 1
MAX_FILE_BYTES = 64 * 2 ** 20       # a model of this library is well under 1 MB; 64 MB is generous
MAX_CONFIG_BYTES = 2 ** 20
MAX_PARAMS = 10 ** 7
MAX_LAYERS = 256
MAX_DIM = 4096
GEOMETRY = ("kernel_size", "stride", "padding", "pool_size")  # bounded by MAX_DIM, like the input
MAX_WORK = 5 * 10 ** 7  # values one image may need in a layer (activations, im2col columns)


def model_to_bytes(model):
    """Sequential -> bytes of the model file."""
    if model.input_shape is None:
        raise ValueError("the model has no input_shape: pass input_shape=(C, H, W) to Sequential (fit sets it) "
                         "before saving")
    config = {
        "format": FORMAT, "version": VERSION, "dtype": model.dtype.name,
        "input_shape": list(model.input_shape),
        "layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in model.layers],
        "metadata": model.metadata,
    }
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
        model = _build(config)
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
    if config.get("dtype") not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {config.get('dtype')!r}")
    layers = config.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"layers must be a list of 1 to {MAX_LAYERS} layers")
    shape = config.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(d) is int and 1 <= d <= MAX_DIM for d in shape)):
        raise ValueError(f"input_shape must be 3 ints from 1 to {MAX_DIM}, got {shape!r}")
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


def _planned_params(kind, args):
    """Weights a layer would allocate, computed before it is built (no absurd allocation)."""
    def get(key):
        value = args.get(key, 1)
        return value if type(value) is int else 1

    if kind == "Conv2D":
        return get("filters") * (get("in_channels") * get("kernel_size") ** 2 + 1)
    if kind == "Dense":
        return get("out_features") * (get("in_features") + 1)
    return 0


def _build(config):
    specs = config["layers"]
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or spec.get("class") not in LAYERS or not isinstance(spec.get("config"), dict):
            raise ValueError(f"layer {i} is not a known pycnn layer: {str(spec)[:80]}")
        for key, value in spec["config"].items():
            # plain JSON scalars only, and geometry no larger than an input may be
            if type(value) not in (int, str):
                raise ValueError(f"layer {i} ({spec['class']}): {key} must be an int or a string, got {value!r}")
            if type(value) is int and not 0 <= value <= (MAX_DIM if key in GEOMETRY else MAX_PARAMS):
                raise ValueError(f"layer {i} ({spec['class']}): {key}={value} is out of range")
    # count every layer's weights before building any, so no absurd array is ever allocated
    planned = sum(_planned_params(spec["class"], spec["config"]) for spec in specs)
    if planned > MAX_PARAMS:
        raise ValueError(f"the model would have {planned:,} parameters; at most {MAX_PARAMS:,} are allowed")
    layers = []
    for i, spec in enumerate(specs):
        kind, args = LAYERS[spec["class"]], dict(spec["config"])
        if "weights" in args or "rng" in args:
            raise ValueError(f"layer {i} ({spec['class']}): unexpected argument in the config")
        try:
            layers.append(kind(**args) if kind in WEIGHTLESS else kind(**args, weights=False))
        except TypeError as err:
            raise ValueError(f"layer {i} ({spec['class']}): bad arguments ({err})") from None
        except ValueError as err:
            raise ValueError(f"layer {i} ({spec['class']}): {err}") from None
    model = Sequential(layers, dtype=config["dtype"], input_shape=tuple(config["input_shape"]))  # checks the shapes
    _check_work(model)
    for layer in layers:  # only now allocate the weights the file will fill
        layer.init()
        layer.cast(model.dtype)
    model.metadata = config.get("metadata", {})
    return model


def _check_work(model):
    """Refuse a model whose forward pass on one image would need absurd memory or time."""
    shape = model.input_shape
    for i, (layer, out) in enumerate(zip(model.layers, model.output_shapes())):
        work = math.prod(out) * (layer.in_channels * layer.kernel_size ** 2 if isinstance(layer, Conv2D) else 1)
        if isinstance(layer, Conv2D):  # its input is padded before the columns are built
            (top, bottom), (left, right) = layer.pads(*shape[1:])
            work = max(work, shape[0] * (shape[1] + top + bottom) * (shape[2] + left + right))
        if work > MAX_WORK:
            raise ValueError(f"layer {i} ({type(layer).__name__}) would need {work:,} values for one image; "
                             f"at most {MAX_WORK:,} are allowed")
        shape = out


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
