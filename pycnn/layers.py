"""Layers: Conv2D, ReLU, MaxPool2D, Flatten, Dense.

Every layer follows one contract:
    params: dict[str, ndarray]   {"W", "b"}, or {} for layers without weights
    grads:  dict[str, ndarray]   same keys and shapes, overwritten by backward
    forward(x, training=True) -> y      caches what backward needs only when training
    backward(dout, need_dx=True) -> dx  (None when need_dx is False)
    output_shape(input_shape) -> shape  shapes without the batch axis
    get_config() -> dict                JSON-able __init__ arguments
Tensors are NCHW: (batch, channels, height, width).
"""
import numpy as np

from .checks import positive_int as _positive_int
from .im2col import col2im, conv_output_size, im2col, pad_input, same_padding


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Layer:
    """Base class: a layer without weights."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self._cache = None

    def get_config(self):
        return {}

    def init(self, rng=None):
        """Draw fresh weights (nothing to draw here)."""

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def cast(self, dtype):
        """Convert weights to dtype in place (used by Sequential)."""
        for key in self.params:
            self.params[key] = self.params[key].astype(dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called without forward(training=True)")
        return self._cache

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Conv2D(Layer):
    """2-D convolution. x: (N, C, H, W) -> (N, F, H', W'); W: (F, C, k, k), b: (F,)."""

    def __init__(self, in_channels, filters, kernel_size, stride=1, padding="valid", rng=None, weights=True):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.filters = _positive_int("filters", filters)
        self.kernel_size = _positive_int("kernel_size", kernel_size)
        self.stride = _positive_int("stride", stride)
        if padding in ("valid", "same"):
            self.padding = padding
        elif isinstance(padding, (int, np.integer)) and not isinstance(padding, bool) and padding >= 0:
            self.padding = int(padding)
        else:
            raise ValueError(f"padding must be 'valid', 'same' or an int >= 0, got {padding!r}")
        if weights:  # False: no arrays until init() (the model loader checks shapes first)
            self.init(rng)

    def init(self, rng=None):
        """Draw fresh weights: He normal (keeps the activation variance steady through ReLU), zero bias."""
        fan_in = self.in_channels * self.kernel_size ** 2
        shape = (self.filters, self.in_channels, self.kernel_size, self.kernel_size)
        self.params = {"W": _rng(rng).normal(0.0, np.sqrt(2.0 / fan_in), shape),
                       "b": np.zeros(self.filters)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def get_config(self):
        return {"in_channels": self.in_channels, "filters": self.filters,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

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

    def __init__(self, pool_size=2, stride=None):
        super().__init__()
        self.pool_size = _positive_int("pool_size", pool_size)
        self.stride = self.pool_size if stride is None else _positive_int("stride", stride)

    def get_config(self):
        return {"pool_size": self.pool_size, "stride": self.stride}

    def output_shape(self, input_shape):
        c, h, w = input_shape
        if h < self.pool_size or w < self.pool_size:
            raise ValueError(f"MaxPool2D pool_size {self.pool_size} is larger than its {h}x{w} input")
        return (c, (h - self.pool_size) // self.stride + 1, (w - self.pool_size) // self.stride + 1)

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

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=True):
        self._cache = x.shape if training else None
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_dx=True):
        return dout.reshape(self._cached()) if need_dx else None


class Dense(Layer):
    """Fully connected. x: (N, in_features) -> (N, out_features); W: (in, out), b: (out,)."""

    def __init__(self, in_features, out_features, rng=None, weights=True):
        super().__init__()
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        if weights:  # False: no arrays until init() (the model loader checks shapes first)
            self.init(rng)

    def init(self, rng=None):
        """Draw fresh weights: Glorot uniform (balances forward and backward variance), zero bias."""
        limit = np.sqrt(6.0 / (self.in_features + self.out_features))
        self.params = {"W": _rng(rng).uniform(-limit, limit, (self.in_features, self.out_features)),
                       "b": np.zeros(self.out_features)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            raise ValueError(f"Dense expects input of shape ({self.in_features},), got {tuple(input_shape)}")
        return (self.out_features,)

    def forward(self, x, training=True):
        self._cache = x if training else None
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout, need_dx=True):
        x = self._cached()
        self.grads["W"] = x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T if need_dx else None


LAYERS = {cls.__name__: cls for cls in (Conv2D, ReLU, MaxPool2D, Flatten, Dense)}
