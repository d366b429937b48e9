"""Reading the model file (Sequential.to_bytes writes it): a zip (numpy's .npz layout) holding
config.json and one .npy per weight.

    config.json   {"format": "pycnn", "version": 1, "dtype", "input_shape", "layers": [...], "metadata"}
    0.W.npy, 0.b.npy, 4.W.npy, ...   weights keyed "layer_index.param"
    1.gamma.npy, 1.beta.npy, 1.running_mean.npy, 1.running_var.npy   a BatchNorm's weights, then its
                  state (running statistics: saved and loaded like the weights, trained by no optimiser)

A file that carries the run its weights are from, so the run can continue (Trainer.run_state()),
is version 2: config.json has "run_state" (its JSON-able part) and the run's arrays are members
"run.NAME.npy" (the epoch's order, the batch losses, the optimiser's state, ...). Their names,
shapes and dtypes follow from the run state and the architecture, and are checked like the
weights; the whole run state is checked against the model (pycnn.training.check_run_state).
A version 1 file has neither, and loads as before.

config.json may name the classes, "class_names": ["A", "B", ...], one per output in order
(Sequential.class_names; checks.class_names says what a name may be). Without it the classes are
numbered "0", "1", ... (digits). An older pycnn reads such a file as numbered classes.

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
from .model import FILE_FORMAT, FILE_VERSION, RUN_FILE_VERSION, Sequential
from .training import check_run_state, run_state_arrays

FORMAT, VERSION = FILE_FORMAT, FILE_VERSION
VERSIONS = (FILE_VERSION, RUN_FILE_VERSION)
MAX_FILE_BYTES = 64 * 2 ** 20       # a model of this library is well under 1 MB; 64 MB is generous
MAX_CONFIG_BYTES = 2 ** 20
# the architecture's own limits (weights, work per image, layers, input size) are
# Sequential.from_config's: MAX_PARAMS, MAX_WORK, MAX_LAYERS and MAX_DIM in model.py


def model_from_bytes(data):
    """bytes of a model file -> Sequential; ValueError saying what is wrong otherwise (a run state too)."""
    return run_from_bytes(data)[0]


def run_from_bytes(data):
    """bytes of a model file -> (Sequential, its run state or None): Trainer.resume continues the run."""
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
        if "class_names" in config:
            model.class_names = config["class_names"]
        expected = {f"{i}.{name}.npy": (layer, arrays, name) for i, layer in enumerate(model.layers)
                    for arrays in (layer.params, layer.state) for name in arrays}
        run_state = config.get("run_state")
        # the run's arrays: which, of what shape and dtype, follows from its JSON part (checked first)
        run_members = {} if run_state is None else {f"run.{name}.npy": (name, spec)
                                                    for name, spec in run_state_arrays(model, run_state).items()}
        extra = sorted(set(infos) - set(expected) - set(run_members) - {"config.json"})
        if extra:
            raise ValueError(f"the model file has unexpected members: {', '.join(extra[:5])}")
        missing = sorted(set(expected) - set(infos))
        if missing:
            raise ValueError(f"the model file is missing weights: {', '.join(missing[:5])}")
        missing = sorted(set(run_members) - set(infos))
        if missing:
            raise ValueError(f"the model file's run state is missing arrays: {', '.join(missing[:5])}")
        weights = []
        for member, (layer, arrays, name) in expected.items():
            array = npzfile.read_npy(zf, infos[member], arrays[name].shape, model.dtype)
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{member}: weights contain NaN or infinity")
            weights.append(array)
        run_arrays = {name: npzfile.read_npy(zf, infos[member], shape, dtype)
                      for member, (name, (shape, dtype)) in run_members.items()}
    model.set_weights(weights)
    if run_state is not None:
        run_state = check_run_state(model, {**run_state, "arrays": run_arrays})
    return model, run_state


def _parse_config(raw):
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config.json is not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError("config.json is not a pycnn model config (format is not 'pycnn')")
    version = config.get("version")
    if version not in VERSIONS or isinstance(version, bool):
        raise ValueError(f"unsupported model format version {version!r}; this pycnn reads version {VERSION} "
                         f"(and {RUN_FILE_VERSION}: with a run state)")
    if ("run_state" in config) != (version == RUN_FILE_VERSION):
        raise ValueError(f"unsupported model format version {version!r} {'with' if 'run_state' in config else 'without'}"
                         f" a run state: a model file of version {RUN_FILE_VERSION} carries one, and only it does")
    if not isinstance(config.get("metadata", {}), dict):
        raise ValueError("metadata must be a JSON object")
    return config


def load_file(path):
    """Read and load a model file, refusing an oversized one before reading it."""
    return load_run(path)[0]


def load_run(path):
    """Read a model file -> (Sequential, its run state or None), as run_from_bytes."""
    return run_from_bytes(npzfile.read_file(path, "model", MAX_FILE_BYTES))
