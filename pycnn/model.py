"""Sequential: a stack of layers with training, evaluation, prediction and a summary."""
import contextlib
import json
import math

import numpy as np

from . import npzfile
from .checks import class_names, number
from .fused import fuse
from .layers import LAYERS, MAX_SIZE, Dense, Layer
from .losses import softmax, softmax_cross_entropy
from .optimizers import Adam
from .training import Trainer, TrainingConfig, check_run_state

DTYPES = ("float32", "float64")
# of the model file (to_bytes writes it, pycnn.serialize reads it): version 1 without a run state,
# RUN_FILE_VERSION with one (so a pycnn that cannot continue a run says so instead of misreading it)
FILE_FORMAT, FILE_VERSION, RUN_FILE_VERSION = "pycnn", 1, 2
PREDICT_CHUNK = 256  # rows per forward pass in predict/evaluate: bounds memory (~13 MB for the seed model)
# what from_config (and so the model-file loader) accepts
MAX_LAYERS = 256
MAX_DIM = MAX_SIZE         # largest input side
MAX_PARAMS = 10 ** 7       # a model of this library has well under 1M weights
MAX_WORK = 5 * 10 ** 7     # multiply-adds (or values) one image may need in one layer: memory and time


class Sequential:
    """A stack of layers. x: (N, C, H, W) floats -> logits (N, classes)."""

    def __init__(self, layers, seed=None, dtype="float32", input_shape=None):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise ValueError("layers must be a non-empty list of pycnn layers")
        try:
            dtype_name = np.dtype(dtype).name
        except TypeError:
            dtype_name = None
        if dtype_name not in DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.layers = layers
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.input_shape = None
        self.metadata = {}
        self._class_names = None  # the classes' names (names() gives "0", "1", ... when None)
        self.frozen_count = 0    # leading layers no optimiser updates (freeze)
        if input_shape is not None:
            shape = tuple(input_shape)
            if len(shape) != 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
                raise ValueError(f"input_shape must be (channels, height, width) positive ints, got {input_shape!r}")
            self.input_shape = tuple(int(d) for d in shape)
            self.output_shapes()  # fail now, with a clear message, if the layers do not fit together
        if seed is not None:
            self.reset(seed)
        else:
            for layer in layers:
                layer.cast(self.dtype)
        self._plan = self._make_plan()

    def _make_plan(self):
        """The steps forward/backward run: single layers, or fused conv-pool-ReLU blocks."""
        plan, self._plan_ends, i = [], [], 0
        while i < len(self.layers):
            block, size = fuse(self.layers, i)
            if block is not None:
                plan.append(block)
                i += size
            else:
                plan.append(self.layers[i])
                i += 1
            self._plan_ends.append(i)  # the layer after the step
        return plan

    def freeze(self, count):
        """Freeze the first `count` layers (0: none) -> self. No optimiser updates a frozen layer's weights;
        training runs the whole steps among them as inference runs them (no batch statistics, no dropout, no
        state change) and computes no gradient for them. Transfer learning keeps a trained network's
        features this way. Freezing is a property of a run: the model file does not keep it."""
        count = number("count", count, 0, len(self.layers), integer=True)
        for i, layer in enumerate(self.layers):
            layer.trainable = i >= count
        self.frozen_count = count
        return self

    def _frozen_steps(self):
        """How many leading steps of the plan lie wholly among the frozen layers."""
        return sum(end <= self.frozen_count for end in self._plan_ends)

    def reset(self, seed=None):
        """Fresh random weights, deterministic for a given seed."""
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.init(rng)
            layer.cast(self.dtype)

    # ---- shapes and summary -------------------------------------------------------------
    def output_shapes(self):
        """Each layer's output shape (without the batch axis), given input_shape."""
        if self.input_shape is None:
            raise ValueError("this model has no input_shape; pass input_shape=(C, H, W) to Sequential")
        shapes, shape = [], self.input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ValueError as err:
                raise ValueError(f"layer {i} ({type(layer).__name__}): {err}") from None
            shapes.append(tuple(shape))
        return shapes

    def count_params(self, trainable=None):
        """How many numbers the model holds (Keras' Total params): True counts the trained weights only,
        False only the state (BatchNorm's running statistics), None both."""
        return sum(int(p.size) for layer in self.layers
                   for p in (*(layer.params.values() if trainable is not False else ()),
                             *(layer.state.values() if trainable is not True else ())))

    def work(self):
        """Multiply-adds per image of a forward pass (layers without weights: values touched), for estimates."""
        shapes = [self.input_shape] + self.output_shapes()[:-1]
        return sum(layer.work(shape) for layer, shape in zip(self.layers, shapes))

    def get_config(self):
        """The architecture: {"input_shape": [C, H, W], "dtype": ..., "layers": [{"class", "config"}, ...]}."""
        if self.input_shape is None:
            raise ValueError("the model has no input_shape: pass input_shape=(C, H, W) to Sequential (fit sets it)")
        return {"input_shape": list(self.input_shape), "dtype": self.dtype.name,
                "layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}

    @classmethod
    def from_config(cls, config, seed=None):
        """The model get_config() described, with fresh weights drawn from seed.

        Everything is checked before any weight is allocated: the keys, every layer's kind
        and arguments, the total weight count (MAX_PARAMS), that the shapes fit together and
        each layer's work per image (MAX_WORK). ValueErrors name the layer:
        "layer 3 (Dense): Dense expects input of shape (1000,), got (1690,)".
        """
        if not isinstance(config, dict):
            raise ValueError(f"a model config must be a dict, got {type(config).__name__}")
        keys = ("input_shape", "dtype", "layers")
        unknown = sorted(map(str, set(config) - set(keys)))
        if unknown:
            raise ValueError(f"unknown model config key(s): {', '.join(unknown)} (expected {', '.join(keys)})")
        if config.get("dtype") not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {config.get('dtype')!r}")
        specs = config.get("layers")
        if not isinstance(specs, list) or not 1 <= len(specs) <= MAX_LAYERS:
            raise ValueError(f"layers must be a list of 1 to {MAX_LAYERS} layers")
        shape = config.get("input_shape")
        if not (isinstance(shape, (list, tuple)) and len(shape) == 3
                and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 1 <= d <= MAX_DIM
                        for d in shape)):
            raise ValueError(f"input_shape must be 3 ints from 1 to {MAX_DIM}, got {shape!r}")
        shape = tuple(int(d) for d in shape)
        layers = []
        for i, spec in enumerate(specs):
            if not (isinstance(spec, dict) and isinstance(spec.get("class"), str) and spec["class"] in LAYERS
                    and isinstance(spec.get("config"), dict)):
                raise ValueError(f"layer {i} is not a known pycnn layer: {str(spec)[:80]}")
            try:
                layers.append(LAYERS[spec["class"]].from_config(spec["config"]))
            except ValueError as err:
                raise ValueError(f"layer {i} ({spec['class']}): {err}") from None
        # count every layer's weights before building any, so no absurd array is ever allocated
        planned = sum(math.prod(s) for layer in layers
                      for s in (*layer.weight_shapes().values(), *layer.state_shapes().values()))
        if planned > MAX_PARAMS:
            raise ValueError(f"the model would have {planned:,} parameters; at most {MAX_PARAMS:,} are allowed")
        shapes = [shape]  # each layer's input shape, checked for all layers before their work
        for i, layer in enumerate(layers):
            try:
                shapes.append(layer.output_shape(shapes[-1]))
            except ValueError as err:
                raise ValueError(f"layer {i} ({type(layer).__name__}): {err}") from None
        for i, layer in enumerate(layers):
            work = layer.work(shapes[i])
            if work > MAX_WORK:
                raise ValueError(f"layer {i} ({type(layer).__name__}) would need {work:,} multiply-adds or values "
                                 f"for one image; at most {MAX_WORK:,} are allowed")
        model = cls(layers, dtype=config["dtype"], input_shape=tuple(config["input_shape"]))
        model.seed = seed
        model.reset(seed)  # only now are the weights allocated
        return model

    def summary_rows(self):
        """One row per layer: {"name" (Keras': conv2d, conv2d_1, ...), "class", "output_shape", "params", "work"}."""
        rows, seen = [], {}
        shapes = self.output_shapes()
        for layer, in_shape, shape in zip(self.layers, [self.input_shape] + shapes[:-1], shapes):
            base = layer.summary_name
            rows.append({"name": base if base not in seen else f"{base}_{seen[base]}", "class": type(layer).__name__,
                         "output_shape": list(shape),
                         "params": sum(int(p.size) for p in (*layer.params.values(), *layer.state.values())),
                         "work": layer.work(in_shape)})
            seen[base] = seen.get(base, 0) + 1
        return rows

    def summary(self):
        """The Keras-style table: Layer (type), Output Shape, Param #, and totals."""
        layer_rows = self.summary_rows()
        names = [f"{row['name']} ({row['class']})" for row in layer_rows]
        width = max([29] + [len(name) + 1 for name in names])  # a long name widens its column
        line = "_" * (width + 36)
        rows = [line, f"{'Layer (type)':<{width}}{'Output Shape':<26}{'Param #':<10}", "=" * len(line)]
        for i, (name, row) in enumerate(zip(names, layer_rows)):
            shape_text = "(None, " + ", ".join(str(d) for d in row["output_shape"]) + ")"
            rows.append(f"{name:<{width}}{shape_text:<26}{row['params']:<10}".rstrip())
            rows.append("=" * len(line) if i == len(layer_rows) - 1 else line)
        total = self.count_params()
        trained = sum(int(p.size) for layer in self.layers if layer.trainable for p in layer.params.values())
        rows += [f"Total params: {total:,}", f"Trainable params: {trained:,}",
                 f"Non-trainable params: {total - trained:,}", line]
        return "\n".join(rows)

    # ---- weights ------------------------------------------------------------------------
    def _slots(self, trainable=False):
        """(layer, dict, name) of every array: each layer's weights (W, then b), then its state."""
        return [(layer, arrays, name) for layer in self.layers
                for arrays in ((layer.params,) if trainable else (layer.params, layer.state)) for name in arrays]

    def get_weights(self):
        """Copies of every array of the model, in layer order: each layer's weights (W, then b), then its
        state (BatchNorm's gamma, beta, then running_mean, running_var), as Keras orders them."""
        return [arrays[name].copy() for _, arrays, name in self._slots()]

    def set_weights(self, weights):
        """Replace the arrays get_weights() lists, entry for entry, shapes matching; or, given one array per
        trained weight only (get_weights() without the state), those, the state kept."""
        weights = list(weights)
        slots = self._slots()
        if len(weights) != len(slots):
            trained = self._slots(trainable=True)
            if len(weights) != len(trained):
                other = f" (or {len(trained)}, the trained ones only)" if len(trained) != len(slots) else ""
                raise ValueError(f"set_weights expects {len(slots)} arrays{other}, got {len(weights)}")
            slots = trained
        new = []
        for (layer, arrays, name), w in zip(slots, weights):
            w = np.asarray(w)
            if w.shape != arrays[name].shape:
                raise ValueError(f"{type(layer).__name__}.{name} must have shape {arrays[name].shape}, got {w.shape}")
            if not np.issubdtype(w.dtype, np.number) or not np.all(np.isfinite(w)):
                raise ValueError(f"{type(layer).__name__}.{name} must hold finite numbers")
            layer.check_array(name, w)
            new.append(w.astype(self.dtype))  # a copy: the caller's array stays theirs
        for (layer, arrays, name), w in zip(slots, new):
            arrays[name] = w

    # ---- forward and backward -----------------------------------------------------------
    def as_input(self, x):
        """x as this model reads it: (N, C, H, W) of its dtype, C-contiguous, finite (grey (N, H, W) get a channel
        axis); ValueError saying what does not fit."""
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"x must hold numbers, got dtype {x.dtype}")
        if self.input_shape is not None and x.ndim == 3 and self.input_shape[0] == 1:
            x = x[:, None]  # (N, H, W) grey images: add the channel axis
        if x.ndim != 4:
            raise ValueError(f"x must have shape (N, C, H, W), got {x.shape}")
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if not np.isfinite(x).all():
            raise ValueError("x contains NaN or infinity")
        return x

    def forward(self, x, training=False):
        """x: (N, C, H, W) -> logits (N, classes). The frozen layers (freeze) run as at inference."""
        frozen = self._frozen_steps() if training else 0
        for i, step in enumerate(self._plan):
            x = step.forward(x, training and i >= frozen)
        return x

    def backward(self, dlogits, input_gradient=False):
        """Backpropagate dL/dlogits; fills every layer's grads -> dL/dx (N, C, H, W) if input_gradient, else None.

        Training never uses the input gradient, so it is computed only when asked (saliency maps).
        """
        dout = dlogits
        # the frozen leading steps (freeze) need no gradient: their forward kept nothing for one
        first = 0 if input_gradient else self._frozen_steps()
        if input_gradient and first != self._frozen_steps():
            raise ValueError("an input gradient needs the whole network's backward pass: unfreeze the model first")
        for i in range(len(self._plan) - 1, first - 1, -1):
            dout = self._plan[i].backward(dout, need_dx=i > first or input_gradient)
        return dout if input_gradient else None

    def compute_gradients(self, x, y):
        """(mean cross-entropy over the batch, grads of the trained weights: get_weights() without the state)."""
        x, y = self.as_input(x), self.as_labels(y, len(x))
        loss, dlogits = softmax_cross_entropy(self.forward(x, training=True), y)
        self.backward(dlogits)
        return loss, [layer.grads[name].copy() for layer in self.layers if layer.trainable for name in layer.params]

    def train_step(self, x, y, optimizer):
        """One optimiser step on a batch -> (loss, number of correct predictions)."""
        logits = self.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, y)
        self.backward(dlogits)
        optimizer.step(self.layers)
        return loss, int(np.count_nonzero(logits.argmax(axis=1) == y))

    @contextlib.contextmanager
    def frozen(self):
        """Within it, forward(training=True) computes what inference computes (BatchNorm's running
        statistics, no dropout) and backward its gradients; no state changes (saliency maps)."""
        for layer in self.layers:
            layer.frozen = True
        frozen_count, self.frozen_count = self.frozen_count, 0  # the whole forward pass keeps what backward needs
        try:
            yield self
        finally:
            self.frozen_count = frozen_count
            for layer in self.layers:
                layer.frozen = False

    @contextlib.contextmanager
    def deferred_statistics(self):
        """Within it, training forward passes measure their statistics (batch_statistics()) but leave the state
        as it is: update_statistics applies them later (pycnn.parallel: each shard's, in shard order, whoever
        computed it and when)."""
        for layer in self.layers:
            layer.defer_statistics = True
        try:
            yield self
        finally:
            for layer in self.layers:
                layer.defer_statistics = False

    def batch_statistics(self):
        """{"3.mean": array, ...}: what each layer with state (BatchNorm) measured in the last training forward
        pass; update_statistics(that) on another model of the same network moves its state the same way."""
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers) for name, value in layer.statistics.items()}

    def update_statistics(self, statistics):
        """Move each layer's state toward batch_statistics() of a training forward pass (made elsewhere)."""
        per_layer = {}
        for key, value in statistics.items():
            index, _, name = str(key).partition(".")
            if not (index.isdigit() and int(index) < len(self.layers) and name):
                raise ValueError(f"statistics are keyed 'layer index.name' of this model's layers, got {key!r}")
            per_layer.setdefault(int(index), {})[name] = value
        for index, values in sorted(per_layer.items()):
            self.layers[index].update_statistics(values)

    def activations(self, x):
        """Each layer's output for x, layer by layer (for feature-map views)."""
        out, x = [], self.as_input(x)
        for layer in self.layers:
            x = layer.forward(x, training=False)
            out.append(x)
        return out

    def as_labels(self, y, n):
        """y as n class labels of this model (intp); ValueError saying what does not fit."""
        y = np.asarray(y)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must be {n} integer class labels, got shape {y.shape} dtype {y.dtype}")
        classes = self.n_classes()
        if n and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"labels must be in 0..{classes - 1}, got {y.min()}..{y.max()}")
        return y.astype(np.intp)

    @property
    def class_names(self):
        """The names of the classes, in output order, or None: numbered ("0", "1", ..., as digits are)."""
        return None if self._class_names is None else list(self._class_names)

    @class_names.setter
    def class_names(self, names):
        """One name per class (checks.class_names: distinct, trimmed, non-empty), or None."""
        self._class_names = None if names is None else class_names(names, count=self.n_classes(),
                                                                   what="the model's class names")

    def names(self):
        """The name of each class: class_names, or "0", "1", ... when it has none -> list of str."""
        return self.class_names if self._class_names is not None else [str(i) for i in range(self.n_classes())]

    def n_classes(self):
        """Number of outputs of the last layer with weights."""
        for layer in reversed(self.layers):
            if isinstance(layer, Dense):
                return layer.out_features
        raise ValueError("the model has no Dense layer to produce class scores")

    # ---- inference ----------------------------------------------------------------------
    def predict_proba(self, x):
        """x: (N, C, H, W) -> class probabilities (N, classes)."""
        x = self.as_input(x)
        chunks = [softmax(self.forward(x[i:i + PREDICT_CHUNK])) for i in range(0, len(x), PREDICT_CHUNK)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.n_classes()), self.dtype)

    def predict(self, x):
        """x: (N, C, H, W) -> predicted labels (N,)."""
        return self.predict_proba(x).argmax(axis=1)

    def predict_names(self, x):
        """x: (N, C, H, W) -> the name of each predicted class (names()), a list of N str."""
        names = self.names()
        return [names[i] for i in self.predict(x)]

    def evaluate(self, x, y):
        """Mean cross-entropy and accuracy on (x, y) -> {"loss": float, "accuracy": float}."""
        x = self.as_input(x)
        y = self.as_labels(y, len(x))
        if len(x) == 0:
            raise ValueError("evaluate needs at least one sample")
        loss_sum, correct = 0.0, 0
        for i in range(0, len(x), PREDICT_CHUNK):
            logits = self.forward(x[i:i + PREDICT_CHUNK])
            loss, _ = softmax_cross_entropy(logits, y[i:i + PREDICT_CHUNK])
            loss_sum += loss * len(logits)
            correct += int(np.count_nonzero(logits.argmax(axis=1) == y[i:i + PREDICT_CHUNK]))
        return {"loss": loss_sum / len(x), "accuracy": correct / len(x)}

    def fit(self, x, y, epochs=1, batch_size=32, optimizer=None, validation_data=None,
            shuffle=True, callback=None):
        """Train (Adam(1e-3) unless an optimizer is given); returns the history.

        callback(progress) runs after every batch; returning False stops training at once,
        leaving the model consistent and usable.
        """
        config = TrainingConfig(epochs=epochs, batch_size=batch_size, shuffle=shuffle, augment=False,
                                schedule="constant", train_size=None,
                                seed=self.seed if isinstance(self.seed, int) else 0)
        optimizer = optimizer if optimizer is not None else Adam()
        trainer = Trainer(self, x, y, config, validation_data=validation_data, optimizer=optimizer)
        trainer.run(callback=callback)
        return trainer.history

    # ---- persistence --------------------------------------------------------------------
    def to_bytes(self, run_state=None):
        """The model file (format version, architecture, weights) as bytes; pycnn.serialize reads it.

        run_state: Trainer.run_state() of the run these weights are from, kept in the file so the run can
        continue (pycnn.serialize.load_run): its JSON-able part as config.json's "run_state", its arrays as
        members "run.NAME.npy"; checked against this model first. Such a file is format version 2."""
        version = FILE_VERSION if run_state is None else RUN_FILE_VERSION
        config = {"format": FILE_FORMAT, "version": version, **self.get_config(), "metadata": self.metadata}
        if self._class_names is not None:
            config["class_names"] = self.class_names
        if run_state is not None:
            check_run_state(self, run_state)
            config["run_state"] = {k: v for k, v in run_state.items() if k != "arrays"}
        members = {"config.json": json.dumps(config, indent=1, allow_nan=False).encode()}
        for i, layer in enumerate(self.layers):
            for name, value in (*layer.params.items(), *layer.state.items()):
                members[f"{i}.{name}.npy"] = npzfile.npy_bytes(value)
        for name, value in ({} if run_state is None else run_state["arrays"]).items():
            members[f"run.{name}.npy"] = npzfile.npy_bytes(value)
        return npzfile.archive(members)

    def save(self, path, run_state=None):
        """Write the model file to path (conventionally *.npz); with run_state, see to_bytes."""
        data = self.to_bytes(run_state)
        with open(path, "wb") as f:
            f.write(data)

    def __repr__(self):
        return f"Sequential([{', '.join(map(repr, self.layers))}], dtype='{self.dtype}')"

