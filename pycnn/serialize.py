"""Reading the model file (Sequential.to_bytes writes it): a zip (numpy's .npz layout) holding
config.json and one .npy per weight.

    config.json   {"format": "pycnn", "version": 1, "dtype", "input_shape", "layers": [...], "metadata"}
    0.W.npy, 0.b.npy, 4.W.npy, ...   weights keyed "layer_index.param"
    1.gamma.npy, 1.beta.npy, 1.running_mean.npy, 1.running_var.npy   a BatchNorm's weights, then its
                  state (running statistics: saved and loaded like the weights, trained by no optimiser)

Every layer kind says which arrays it has (weight_shapes, state_shapes), so a file holds exactly
those of its layers: a file of a network without state is the same as before layers had any, and
version 1 reads both.

Loading never unpickles and never trusts a size it has not checked: every header is read
and validated before any array data is, and every problem becomes a ValueError that says
what is wrong.
"""
import json

import numpy as np

from . import npzfile
from .model import FILE_FORMAT, FILE_VERSION, Sequential

FORMAT, VERSION = FILE_FORMAT, FILE_VERSION
MAX_FILE_BYTES = 64 * 2 ** 20       # a model of this library is well under 1 MB; 64 MB is generous
MAX_CONFIG_BYTES = 2 ** 20
# the architecture's own limits (weights, work per image, layers, input size) are
# Sequential.from_config's: MAX_PARAMS, MAX_WORK, MAX_LAYERS and MAX_DIM in model.py


def model_from_bytes(data):
    """bytes of a model file -> Sequential; ValueError saying what is wrong otherwise."""
    data = npzfile.check_size(data, "model", MAX_FILE_BYTES)
    with npzfile.reading("model"):
        return _load(data)


def _load(data):
    with npzfile.open_archive(data, "model", MAX_FILE_BYTES) as (zf, infos):
        if "config.json" not in infos:
            raise ValueError("the model file has no config.json (not a pycnn model)")
        if infos["config.json"].file_size > MAX_CONFIG_BYTES:
            raise ValueError("config.json is absurdly large")
        config = _parse_config(zf.read("config.json"))
        # checks the architecture before allocating its weights
        model = Sequential.from_config({key: config.get(key) for key in ("input_shape", "dtype", "layers")})
        model.metadata = config.get("metadata", {})
        expected = {f"{i}.{name}.npy": (layer, arrays, name) for i, layer in enumerate(model.layers)
                    for arrays in (layer.params, layer.state) for name in arrays}
        extra = sorted(set(infos) - set(expected) - {"config.json"})
        if extra:
            raise ValueError(f"the model file has unexpected members: {', '.join(extra[:5])}")
        missing = sorted(set(expected) - set(infos))
        if missing:
            raise ValueError(f"the model file is missing weights: {', '.join(missing[:5])}")
        weights = []
        for member, (layer, arrays, name) in expected.items():
            array = npzfile.read_npy(zf, infos[member], arrays[name].shape, model.dtype)
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{member}: weights contain NaN or infinity")
            weights.append(array)
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
    return model_from_bytes(npzfile.read_file(path, "model", MAX_FILE_BYTES))
