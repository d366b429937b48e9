"""Layers: Conv2D, ReLU, MaxPool2D, Flatten, Dense.

Every layer follows one contract:
    params: dict[str, ndarray]   {"W", "b"}, or {} for layers without weights
    grads:  dict[str, ndarray]   same keys and shapes, overwritten by backward
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
    work(in_shape)        multiply-adds per image (values touched for layers without weights);
                          Conv2D counts at least its padded input. One number for the model
                          loader's size limit and for time estimates.
A new kind is one Layer subclass passed to register(cls); `del LAYERS[name]` removes it.
"""
import math
import sys

import numpy as np

from .checks import Arg, Int, Padding, check_args
from .im2col import col2im, conv_output_size, im2col, pad_input, same_padding

MAX_SIZE = 4096      # largest kernel, stride, padding and pool (an input side is at most this too)
MAX_UNITS = 10 ** 7  # most channels or features a layer may have (the weight count is bounded separately)


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Layer:
    """Base class: a layer without weights or arguments."""

    summary_name = None
    ARGS = {}

    def __init__(self):
        self.set_config({})

    def set_config(self, config):
        """Check config against ARGS and keep every argument as an attribute; no weights yet."""
        for name, value in check_args(self.ARGS, config).items():
            setattr(self, name, value)
        self.params = {}
        self.grads = {}
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

    def cast(self, dtype):
        """Convert weights to dtype in place (used by Sequential)."""
        self.set_params({k: v.astype(dtype) for k, v in self.params.items()})

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


class MaxPool2D(Layer):
    """Max pooling. x: (N, C, H, W) -> (N, C, H', W') with H' = (H - pool) // stride + 1.

    Odd sizes are floored like Keras 'valid': with pool 2 a 27x27 input gives 13x13 and
    the last row and column are dropped (their gradient is zero).
    """

    summary_name = "max_pool2d"
    ARGS = {"pool_size": Int(1, MAX_SIZE, default=2), "stride": Int(1, MAX_SIZE, default=None, optional=True)}

    def __init__(self, pool_size=2, stride=None):
        self.set_config({"pool_size": pool_size, "stride": stride})

    def set_config(self, config):
        super().set_config(config)
        if self.stride is None:  # windows side by side
            self.stride = self.pool_size

    def output_shape(self, input_shape):
        c, h, w = input_shape
        if h < self.pool_size or w < self.pool_size:
            raise ValueError(f"MaxPool2D pool_size {self.pool_size} is larger than its {h}x{w} input")
        return (c, (h - self.pool_size) // self.stride + 1, (w - self.pool_size) // self.stride + 1)

    def work(self, in_shape):
        """Values the windows read (overlapping windows read some twice), at least the input's size."""
        return max(math.prod(in_shape), math.prod(self.output_shape(in_shape)) * self.pool_size ** 2)

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


for _cls in (Conv2D, ReLU, MaxPool2D, Flatten, Dense):
    register(_cls)


def conv_block(layers, layer):
    """The conv block of the Conv2D layers[layer] -> (relu, pools, end): what the fused path runs as one
    layer and the page shows as one set of feature maps.

    A block is the conv and up to two ReLU or MaxPool2D layers right after it, in any order:
    relu is the first ReLU's index or None, pools the MaxPool2D indices, end the index after
    the block (its pooled map is the output of layer end - 1).
    """
    relu, pools, end = None, [], layer + 1
    while end < len(layers) and end - layer <= 2 and isinstance(layers[end], (ReLU, MaxPool2D)):
        if isinstance(layers[end], MaxPool2D):
            pools.append(end)
        elif relu is None:
            relu = end
        end += 1
    return relu, pools, end
