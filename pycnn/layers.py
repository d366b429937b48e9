"""Layers: Conv2D, ReLU, MaxPool2D, Flatten, Dense, BatchNorm, Dropout, AvgPool2D, LeakyReLU, Tanh, Sigmoid.

Every layer follows one contract:
    params: dict[str, ndarray]   {"W", "b"}, or {} for layers without weights: what optimisers train
    grads:  dict[str, ndarray]   same keys and shapes, overwritten by backward
    state:  dict[str, ndarray]   arrays the model keeps that no optimiser trains (BatchNorm's running
                                 statistics, updated by training forward passes); {} for most layers
    forward(x, training=True) -> y      caches what backward needs only when training
    backward(dout, need_dx=True) -> dx  (None when need_dx is False)
    output_shape(input_shape) -> shape  shapes without the batch axis
    get_config() -> dict                JSON-able __init__ arguments
Tensors are NCHW: (batch, channels, height, width).

What a layer kind is lives on its class, so summary, model files and the page read it there:
    summary_name          Keras' name in the summary table ("conv2d")
    ARGS                  {argument: checks.Arg}: the config arguments and their bounds, used by
                          the constructor, by from_config (model files) and by spec() (the page)
    spec()                JSON-able {"summary_name", "args": {name: {"type", "min", ...}}}
    from_config(config)   the layer, arguments checked, no weights until init(rng)
    weight_shapes()       {"W": shape, ...} from the config alone (nothing allocated)
    state_shapes()        {"running_mean": shape, ...} likewise for the state
    uses_rng              True when training draws random numbers from self.rng (pycnn.parallel sets it
                          per seed, step and shard)
    trainable             an attribute, True: False when Sequential.freeze() froze the layer, so no
                          optimiser updates its weights
    frozen                an attribute, False: when True (Sequential.frozen()), forward(training=True)
                          computes what inference computes and still keeps what backward needs, and
                          changes no state: the gradients of what predict computes (saliency)
    statistics            what the last training forward pass measured to move the state by
                          ({"mean", "var"} for BatchNorm, else {}); update_statistics(statistics)
                          moves it, at once, or later when defer_statistics is True
                          (Sequential.deferred_statistics(): pycnn.parallel's shards)
    work(in_shape)        multiply-adds per image (values touched for layers without weights);
                          Conv2D counts at least its padded input. One number for the model
                          loader's size limit and for time estimates.
A new kind is one Layer subclass passed to register(cls); `del LAYERS[name]` removes it.
"""
import math
import sys
import typing

import numpy as np

from .checks import Arg, Float, Int, Padding, check_args
from .im2col import col2im, conv_output_size, im2col, pad_input, same_padding

MAX_SIZE = 4096      # largest kernel, stride, padding and pool (an input side is at most this too)
MAX_UNITS = 10 ** 7  # most channels or features a layer may have (the weight count is bounded separately)


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Layer:
    """Base class: a layer without weights or arguments."""

    summary_name = None
    ARGS = {}
    uses_rng = False
    frozen = False
    trainable = True
    defer_statistics = False

    def __init__(self):
        self.set_config({})

    def set_config(self, config):
        """Check config against ARGS and keep every argument as an attribute; no weights yet."""
        for name, value in check_args(self.ARGS, config).items():
            setattr(self, name, value)
        self.params = {}
        self.grads = {}
        self.state = {}
        self.statistics = {}  # what the last training forward pass measured for the state (BatchNorm)
        self._cache = None

    @classmethod
    def from_config(cls, config):
        """The layer get_config() described, arguments checked against ARGS; weights come with init(rng)."""
        if not isinstance(config, dict):
            raise ValueError(f"a layer config must be a dict, got {type(config).__name__}")
        layer = cls.__new__(cls)  # not __init__: it would draw the weights
        layer.set_config(config)
        return layer

    @classmethod
    def spec(cls):
        """What the page shows and validates: {"summary_name": ..., "args": {name: arg spec}}."""
        return {"summary_name": cls.summary_name, "args": {name: arg.spec() for name, arg in cls.ARGS.items()}}

    def get_config(self):
        return {name: getattr(self, name) for name in self.ARGS}

    def weight_shapes(self):
        """{param name: shape} of the weights init() draws, from the config alone."""
        return {}

    def state_shapes(self):
        """{name: shape} of the state init() sets, from the config alone."""
        return {}

    @classmethod
    def input_args(cls, in_shape):
        """The arguments that follow from the shape the layer gets (Conv2D's in_channels, Dense's in_features)."""
        return {}

    def init(self, rng=None):
        """Draw fresh weights (nothing to draw here)."""

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def work(self, in_shape):
        """Values touched per image (layers with weights count multiply-adds)."""
        return math.prod(in_shape)

    def set_params(self, params):
        """Make params {name: array} the weights, with zero grads (init uses it)."""
        # update the dicts in place: a fused block shares them (params/grads ARE its conv's)
        self.params.clear()
        self.params.update(params)
        self.grads.clear()
        self.grads.update({k: np.zeros_like(v) for k, v in params.items()})

    def set_state(self, state):
        """Make state {name: array} the layer's state (init uses it)."""
        self.state.clear()
        self.state.update(state)

    def check_array(self, name, array):
        """ValueError when array cannot be this layer's weight or state `name` (beyond shape and finiteness)."""

    def update_statistics(self, statistics):
        """Move the state toward statistics (what a training forward pass measured; see BatchNorm)."""

    def measured(self, statistics):
        """A training forward pass measured statistics: keep them, and move the state unless deferred."""
        self.statistics = statistics
        if not self.defer_statistics:
            self.update_statistics(statistics)

    def cast(self, dtype):
        """Convert weights and state to dtype in place (used by Sequential)."""
        self.set_params({k: v.astype(dtype) for k, v in self.params.items()})
        self.set_state({k: v.astype(dtype) for k, v in self.state.items()})

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called without forward(training=True)")
        return self._cache

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Conv2D(Layer):
    """2-D convolution. x: (N, C, H, W) -> (N, F, H', W'); W: (F, C, k, k), b: (F,)."""

    summary_name = "conv2d"
    ARGS = {"in_channels": Int(1, MAX_UNITS), "filters": Int(1, MAX_UNITS), "kernel_size": Int(1, MAX_SIZE),
            "stride": Int(1, MAX_SIZE, default=1), "padding": Padding(MAX_SIZE, default="valid")}

    def __init__(self, in_channels, filters, kernel_size, stride=1, padding="valid", rng=None):
        self.set_config({"in_channels": in_channels, "filters": filters, "kernel_size": kernel_size,
                         "stride": stride, "padding": padding})
        self.init(rng)

    def weight_shapes(self):
        k = self.kernel_size
        return {"W": (self.filters, self.in_channels, k, k), "b": (self.filters,)}

    @classmethod
    def input_args(cls, in_shape):
        return {"in_channels": in_shape[0]}

    def init(self, rng=None):
        """Draw fresh weights: He normal (keeps the activation variance steady through ReLU), zero bias."""
        shapes = self.weight_shapes()
        fan_in = self.in_channels * self.kernel_size ** 2
        self.set_params({"W": _rng(rng).normal(0.0, np.sqrt(2.0 / fan_in), shapes["W"]), "b": np.zeros(shapes["b"])})

    def pads(self, h, w):
        """((top, bottom), (left, right)) zero padding for an h x w input."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":
            return same_padding(h, self.kernel_size, self.stride), same_padding(w, self.kernel_size, self.stride)
        return (self.padding, self.padding), (self.padding, self.padding)

    def output_shape(self, input_shape):
        c, h, w = input_shape
        if c != self.in_channels:
            raise ValueError(f"Conv2D expects {self.in_channels} input channels, got {c}")
        (top, bottom), (left, right) = self.pads(h, w)
        out_h = conv_output_size(h, self.kernel_size, self.stride, top + bottom)
        out_w = conv_output_size(w, self.kernel_size, self.stride, left + right)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"Conv2D kernel_size {self.kernel_size} is larger than its {h}x{w} input")
        return self.filters, out_h, out_w

    def work(self, in_shape):
        """Multiply-adds per image, or the padded input's size if that is larger."""
        c, h, w = in_shape
        f, out_h, out_w = self.output_shape(in_shape)
        (top, bottom), (left, right) = self.pads(h, w)
        return max(f * out_h * out_w * c * self.kernel_size ** 2, c * (h + top + bottom) * (w + left + right))

    def forward(self, x, training=True):
        n, _, h, w = x.shape
        _, out_h, out_w = self.output_shape(x.shape[1:])
        xp = pad_input(x, self.pads(h, w))
        cols = im2col(xp, self.kernel_size, self.stride, out_h, out_w)
        out = cols @ self.params["W"].reshape(self.filters, -1).T + self.params["b"]
        self._cache = (cols, x.shape, xp.shape, out_h, out_w) if training else None
        return out.reshape(n, out_h, out_w, self.filters).transpose(0, 3, 1, 2)

    def backward(self, dout, need_dx=True):
        cols, x_shape, xp_shape, out_h, out_w = self._cached()
        dout_rows = dout.transpose(0, 2, 3, 1).reshape(-1, self.filters)
        self.grads["W"] = (dout_rows.T @ cols).reshape(self.params["W"].shape)
        self.grads["b"] = dout_rows.sum(axis=0)
        if not need_dx:
            return None
        dcols = dout_rows @ self.params["W"].reshape(self.filters, -1)
        dxp = col2im(dcols, xp_shape, self.kernel_size, self.stride, out_h, out_w)
        (top, _), (left, _) = self.pads(*x_shape[2:])
        return dxp[:, :, top:top + x_shape[2], left:left + x_shape[3]]


class ReLU(Layer):
    """max(0, x), elementwise; any shape."""

    summary_name = "re_lu"

    def forward(self, x, training=True):
        out = np.maximum(x, 0)
        # the mask comes from the input: the seed took it after the ReLU, where it is never negative
        self._cache = (x > 0) if training else None
        return out

    def backward(self, dout, need_dx=True):
        return dout * self._cached() if need_dx else None


class _Pool2D(Layer):
    """What max and average pooling share: the arguments, the output shape, the windows."""

    ARGS = {"pool_size": Int(1, MAX_SIZE, default=2), "stride": Int(1, MAX_SIZE, default=None, optional=True)}

    def __init__(self, pool_size=2, stride=None):
        self.set_config({"pool_size": pool_size, "stride": stride})

    def set_config(self, config):
        super().set_config(config)
        if self.stride is None:  # windows side by side
            self.stride = self.pool_size

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} expects (channels, height, width) maps, got {tuple(input_shape)}")
        c, h, w = input_shape
        if h < self.pool_size or w < self.pool_size:
            raise ValueError(f"{type(self).__name__} pool_size {self.pool_size} is larger than its {h}x{w} input")
        return (c, (h - self.pool_size) // self.stride + 1, (w - self.pool_size) // self.stride + 1)

    def work(self, in_shape):
        """Values the windows read (overlapping windows read some twice), at least the input's size."""
        return max(math.prod(in_shape), math.prod(self.output_shape(in_shape)) * self.pool_size ** 2)


class MaxPool2D(_Pool2D):
    """Max pooling. x: (N, C, H, W) -> (N, C, H', W') with H' = (H - pool) // stride + 1.

    Odd sizes are floored like Keras 'valid': with pool 2 a 27x27 input gives 13x13 and
    the last row and column are dropped (their gradient is zero).
    """

    summary_name = "max_pool2d"

    def _windows(self, x, out_h, out_w):
        """(N, C, out_h, out_w, p*p) view-or-copy of each pooling window."""
        p, s = self.pool_size, self.stride
        win = np.lib.stride_tricks.sliding_window_view(x, (p, p), axis=(2, 3))
        return win[:, :, :s * (out_h - 1) + 1:s, :s * (out_w - 1) + 1:s].reshape(*x.shape[:2], out_h, out_w, p * p)

    def forward(self, x, training=True):
        _, out_h, out_w = self.output_shape(x.shape[1:])
        windows = self._windows(x, out_h, out_w)
        if not training:
            self._cache = None
            return windows.max(axis=-1)
        argmax = windows.argmax(axis=-1)  # ties go to the first element, like PyTorch
        self._cache = (x.shape, argmax)
        return np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]

    def backward(self, dout, need_dx=True):
        x_shape, argmax = self._cached()
        if not need_dx:
            return None
        p, s = self.pool_size, self.stride
        out_h, out_w = argmax.shape[2:]
        dx = np.zeros(x_shape, dtype=dout.dtype)
        for a in range(p):
            for b in range(p):
                # route each window's gradient to its argmax; += sums overlapping windows
                dx[:, :, a:a + s * out_h:s, b:b + s * out_w:s] += np.where(argmax == a * p + b, dout, 0)
        return dx


class AvgPool2D(_Pool2D):
    """Average pooling. x: (N, C, H, W) -> (N, C, H', W') with H' = (H - pool) // stride + 1.

    The same windows as MaxPool2D (odd sizes floored, a last row or column that no window
    reaches gets zero gradient); each output is the mean of its pool x pool window.
    """

    summary_name = "average_pooling2d"

    def forward(self, x, training=True):
        _, out_h, out_w = self.output_shape(x.shape[1:])
        p, s = self.pool_size, self.stride
        # one strided slice per window offset: no copy of the windows, the same adds as backward's
        out = np.zeros((*x.shape[:2], out_h, out_w), dtype=x.dtype)
        for a in range(p):
            for b in range(p):
                out += x[:, :, a:a + s * (out_h - 1) + 1:s, b:b + s * (out_w - 1) + 1:s]
        out *= 1.0 / (p * p)
        self._cache = x.shape if training else None
        return out

    def backward(self, dout, need_dx=True):
        x_shape = self._cached()
        if not need_dx:
            return None
        p, s = self.pool_size, self.stride
        out_h, out_w = dout.shape[2:]
        share = dout * (1.0 / (p * p))
        dx = np.zeros(x_shape, dtype=dout.dtype)
        for a in range(p):
            for b in range(p):
                dx[:, :, a:a + s * out_h:s, b:b + s * out_w:s] += share  # += sums overlapping windows
        return dx


class Flatten(Layer):
    """(N, ...) -> (N, prod(...))."""

    summary_name = "flatten"

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=True):
        self._cache = x.shape if training else None
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_dx=True):
        return dout.reshape(self._cached()) if need_dx else None


# Pyodide's numpy has no BLAS: there np.einsum multiplies a batch by a Dense layer's weights in
# half np.matmul's time (batch 32, 800 -> 64: 0.75 vs 1.57 ms); natively BLAS matmul is faster.
# Read at each call, so tests can switch it.
DENSE_EINSUM = sys.platform == "emscripten"


class Dense(Layer):
    """Fully connected. x: (N, in_features) -> (N, out_features); W: (in, out), b: (out,)."""

    summary_name = "dense"
    ARGS = {"in_features": Int(1, MAX_UNITS), "out_features": Int(1, MAX_UNITS)}

    def __init__(self, in_features, out_features, rng=None):
        self.set_config({"in_features": in_features, "out_features": out_features})
        self.init(rng)

    def weight_shapes(self):
        return {"W": (self.in_features, self.out_features), "b": (self.out_features,)}

    @classmethod
    def input_args(cls, in_shape):
        return {"in_features": math.prod(in_shape)}

    def init(self, rng=None):
        """Draw fresh weights: Glorot uniform (balances forward and backward variance), zero bias."""
        limit = np.sqrt(6.0 / (self.in_features + self.out_features))
        shapes = self.weight_shapes()
        self.set_params({"W": _rng(rng).uniform(-limit, limit, shapes["W"]), "b": np.zeros(shapes["b"])})

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            raise ValueError(f"Dense expects input of shape ({self.in_features},), got {tuple(input_shape)}")
        return (self.out_features,)

    def work(self, in_shape):
        """Multiply-adds per image."""
        self.output_shape(in_shape)
        return self.in_features * self.out_features

    def forward(self, x, training=True):
        self._cache = x if training else None
        W = self.params["W"]
        return (np.einsum("ni,io->no", x, W) if DENSE_EINSUM else x @ W) + self.params["b"]

    def backward(self, dout, need_dx=True):
        x, W = self._cached(), self.params["W"]
        self.grads["W"] = np.einsum("ni,no->io", x, dout) if DENSE_EINSUM else x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        if not need_dx:
            return None
        return np.einsum("no,io->ni", dout, W) if DENSE_EINSUM else dout @ W.T


class LeakyReLU(Layer):
    """x where x > 0, negative_slope * x elsewhere, elementwise; any shape."""

    summary_name = "leaky_re_lu"
    ARGS = {"negative_slope": Float(0, 1, default=0.01)}

    def __init__(self, negative_slope=0.01):
        self.set_config({"negative_slope": negative_slope})

    def forward(self, x, training=True):
        positive = x > 0
        self._cache = positive if training else None
        return np.where(positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dout, need_dx=True):
        positive = self._cached()
        return np.where(positive, dout, dout * dout.dtype.type(self.negative_slope)) if need_dx else None


class Tanh(Layer):
    """tanh(x), elementwise; any shape."""

    summary_name = "tanh"

    def forward(self, x, training=True):
        out = np.tanh(x)
        self._cache = out if training else None
        return out

    def backward(self, dout, need_dx=True):
        out = self._cached()
        return dout * (1 - out * out) if need_dx else None


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), elementwise; any shape."""

    summary_name = "sigmoid"

    def forward(self, x, training=True):
        # exp of -|x| only: never overflows, and keeps the precision of values near 0 for negative x
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1, e) / (1 + e)
        self._cache = out if training else None
        return out

    def backward(self, dout, need_dx=True):
        out = self._cached()
        return dout * out * (1 - out) if need_dx else None


class Dropout(Layer):
    """Inverted dropout: in training each value is zeroed with probability rate and the others are
    divided by 1 - rate (so inference, the identity, sees the same expected values); any shape.

    The draws come from self.rng: the Trainer and pycnn.parallel give it the Generator of the
    run's seed, step and shard, so a run is reproducible; until then, a fresh unseeded one.
    """

    summary_name = "dropout"
    ARGS = {"rate": Float(0, 0.9, default=0.5)}
    uses_rng = True

    def __init__(self, rate=0.5):
        self.set_config({"rate": rate})

    def set_config(self, config):
        super().set_config(config)
        self.rng = None

    def forward(self, x, training=True):
        if not training or self.frozen or self.rate == 0:
            self._cache = 1 if training else None  # backward passes the gradient through
            return x
        if self.rng is None:
            self.rng = np.random.default_rng()
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        mask = (self.rng.random(x.shape, dtype=dtype) >= self.rate).astype(dtype)
        mask *= 1 / (1 - self.rate)
        self._cache = mask
        return x * mask

    def backward(self, dout, need_dx=True):
        mask = self._cached()
        return dout * mask if need_dx else None


class BatchNorm(Layer):
    """Batch normalisation, per channel of (N, C, H, W) maps or per feature of (N, F) vectors:
    y = gamma * (x - mean) / sqrt(var + eps) + beta; gamma, beta: (features,), trained.

    Training: mean and var are the batch's (over every axis but the channel; the variance
    biased), and the state moves toward them, running = (1 - momentum) * running + momentum *
    batch, with the variance unbiased (n / (n - 1)) as PyTorch does; a batch of one value per
    feature (one vector) leaves the state as it is (one value has no variance).
    Inference (training=False): the state's running_mean and running_var instead, so the
    layer is a fixed per-channel scale and shift (the fused conv block folds it into the conv).
    """

    summary_name = "batch_normalization"
    ARGS = {"features": Int(1, MAX_UNITS), "momentum": Float(0, 1, default=0.1),
            "eps": Float(1e-10, 1, default=1e-5)}

    def __init__(self, features, momentum=0.1, eps=1e-5):
        self.set_config({"features": features, "momentum": momentum, "eps": eps})
        self.init()

    def weight_shapes(self):
        return {"gamma": (self.features,), "beta": (self.features,)}

    def state_shapes(self):
        return {"running_mean": (self.features,), "running_var": (self.features,)}

    @classmethod
    def input_args(cls, in_shape):
        return {"features": in_shape[0]}

    def init(self, rng=None):
        """The identity on standardised input: gamma 1, beta 0, running mean 0, running variance 1."""
        self.set_params({"gamma": np.ones(self.features), "beta": np.zeros(self.features)})
        self.set_state({"running_mean": np.zeros(self.features), "running_var": np.ones(self.features)})

    def check_array(self, name, array):
        if name == "running_var" and np.any(array < 0):
            raise ValueError(f"BatchNorm.running_var must be non-negative, got {float(array.min()):g}")

    def output_shape(self, input_shape):
        if len(input_shape) not in (1, 3):
            raise ValueError(f"BatchNorm expects (channels, height, width) maps or (features,) vectors, "
                             f"got {tuple(input_shape)}")
        if input_shape[0] != self.features:
            what = "channels" if len(input_shape) == 3 else "features"
            raise ValueError(f"BatchNorm expects {self.features} {what}, got {input_shape[0]}")
        return tuple(input_shape)

    def scale_shift(self):
        """(scale, shift), each (features,): inference's y = x * scale + shift per channel."""
        scale = self.params["gamma"] / np.sqrt(self.state["running_var"] + self.eps)
        return scale, self.params["beta"] - self.state["running_mean"] * scale

    def update_statistics(self, statistics):
        """Move running_mean and running_var toward a training batch's {"mean", "var" (unbiased)}, in place."""
        if not statistics:
            return
        if sorted(statistics) != ["mean", "var"] or any(np.shape(v) != (self.features,) for v in statistics.values()):
            shapes = {name: np.shape(value) for name, value in statistics.items()}
            raise ValueError(f"BatchNorm statistics must be a mean and a var of shape ({self.features},), "
                             f"got {str(shapes)[:80]}")
        m = self.momentum
        for name, key in (("running_mean", "mean"), ("running_var", "var")):
            running = self.state[name]
            running *= 1 - m
            running += m * statistics[key]

    def forward(self, x, training=True):
        self.output_shape(x.shape[1:])
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training or self.frozen:
            scale, shift = self.scale_shift()
            self.statistics = {}
            self._cache = ("frozen", x, scale) if training else None
            return x * scale.reshape(shape) + shift.reshape(shape)
        count = x.size // x.shape[1]  # values per channel
        mean = x.mean(axis=axes)
        centred = x - mean.reshape(shape)
        var = np.mean(centred * centred, axis=axes)
        inv_std = 1 / np.sqrt(var + x.dtype.type(self.eps))
        xhat = centred * inv_std.reshape(shape)
        self.measured({"mean": mean, "var": var * (count / (count - 1))} if count > 1 else {})
        self._cache = ("batch", xhat, inv_std)
        return xhat * gamma.reshape(shape) + beta.reshape(shape)

    def backward(self, dout, need_dx=True):
        mode, a, b = self._cached()
        axes = (0, 2, 3) if dout.ndim == 4 else (0,)
        shape = (1, -1, 1, 1) if dout.ndim == 4 else (1, -1)
        gamma = self.params["gamma"]
        if mode == "frozen":  # y = x * scale + shift, the statistics fixed
            x, scale = a, b
            xhat = (x - self.state["running_mean"].reshape(shape)) / np.sqrt(self.state["running_var"] + self.eps
                                                                             ).reshape(shape)
            self.grads["gamma"] = (dout * xhat).sum(axis=axes)
            self.grads["beta"] = dout.sum(axis=axes)
            return dout * scale.reshape(shape) if need_dx else None
        xhat, inv_std = a, b
        dbeta = dout.sum(axis=axes)
        dgamma = (dout * xhat).sum(axis=axes)
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        if not need_dx:
            return None
        count = dout.size // dout.shape[1]
        # the batch's mean and variance depend on every x: dx = gamma / std * (dy - mean(dy) - xhat * mean(dy * xhat))
        dx = dout - (dbeta / count).reshape(shape) - xhat * (dgamma / count).reshape(shape)
        dx *= (gamma * inv_std).reshape(shape)
        return dx


LAYERS = {}
"""Every layer kind a model config or file may name: {class name: class}."""


def register(cls):
    """Add a Layer subclass to LAYERS (works as a class decorator) -> cls.

    Summary, Sequential.from_config, the model-file loader and layer_specs() then know it;
    `del LAYERS[cls.__name__]` removes it again.
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"register expects a Layer subclass, got {cls!r}")
    if not isinstance(cls.summary_name, str) or not cls.summary_name:
        raise ValueError(f"{cls.__name__}.summary_name must be a non-empty string, got {cls.summary_name!r}")
    if not isinstance(cls.ARGS, dict) or not all(isinstance(arg, Arg) for arg in cls.ARGS.values()):
        raise ValueError(f"{cls.__name__}.ARGS must be a dict of pycnn.checks.Arg")
    known = LAYERS.get(cls.__name__)
    if known is not None and known is not cls:
        raise ValueError(f"another layer class is already registered as {cls.__name__!r}")
    LAYERS[cls.__name__] = cls
    return cls


def layer_specs():
    """{class name: cls.spec()} of every registered layer kind (JSON-able; the page's network editor)."""
    return {name: cls.spec() for name, cls in LAYERS.items()}


for _cls in (Conv2D, ReLU, MaxPool2D, Flatten, Dense, BatchNorm, Dropout, AvgPool2D, LeakyReLU, Tanh, Sigmoid):
    register(_cls)


# elementwise and non-decreasing: the same after a max pool as before it
ACTIVATIONS = (ReLU, LeakyReLU, Tanh, Sigmoid)
POOLS = (MaxPool2D, AvgPool2D)
# layers whose output cell (c, i, j) depends on input cell (c, i, j) alone
ELEMENTWISE = ACTIVATIONS + (BatchNorm, Dropout)


class ConvBlock(typing.NamedTuple):
    """The layers after a Conv2D that the fused path runs with it and the page shows as one set of maps."""
    norm: int | None        # the BatchNorm right after the conv, or None
    activation: int | None  # the first activation (ReLU, LeakyReLU, Tanh, Sigmoid), or None
    pools: list             # the MaxPool2D and AvgPool2D indices
    end: int                # the index after the block: its pooled map is the output of layer end - 1


def conv_block(layers, layer):
    """The conv block of the Conv2D layers[layer] -> ConvBlock(norm, activation, pools, end).

    A block is the conv, a BatchNorm right after it if there is one, and up to two activation
    or pooling layers after that, in any order, except that an activation after an average pool
    is not part of it (the mean of activated values is not the activation of the mean).
    """
    norm = layer + 1 if layer + 1 < len(layers) and isinstance(layers[layer + 1], BatchNorm) else None
    start = layer + 1 if norm is None else norm + 1
    activation, pools, end = None, [], start
    while end < len(layers) and end - start < 2:
        item = layers[end]
        if isinstance(item, POOLS):
            pools.append(end)
        elif not (isinstance(item, ACTIVATIONS) and activation is None
                  and not any(isinstance(layers[i], AvgPool2D) for i in pools)):
            break
        else:
            activation = end
        end += 1
    return ConvBlock(norm, activation, pools, end)
