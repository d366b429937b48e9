"""Optimisers. State is keyed "layer_index.param_name" (e.g. "0.W") and persists across steps."""
import math

import numpy as np

from .checks import number


def _fraction(name, value):
    """A momentum-like coefficient in [0, 1)."""
    value = number(name, value, 0, 1)
    if value == 1:
        raise ValueError(f"{name} must be below 1, got {value!r}")
    return value


def trainable(layers):
    """Yield (key, layer, name) for every weight array of the layers, in order; a frozen layer's are left out
    (Sequential.freeze)."""
    for i, layer in enumerate(layers):
        if not layer.trainable:
            continue
        for name in layer.params:
            yield f"{i}.{name}", layer, name


class Optimizer:
    """Base class: `step(layers)` updates every layer's params from its grads, in place."""

    def __init__(self, lr):
        self.lr = number("lr", lr, 0, low_open=True)
        self.state = {}

    def step(self, layers):
        for key, layer, name in trainable(layers):
            self._update(key, layer.params[name], layer.grads[name])

    def reset(self):
        self.state = {}


class SGD(Optimizer):
    """p -= lr * v with v = momentum * v + g (plain SGD when momentum is 0)."""

    def __init__(self, lr=0.01, momentum=0.0):
        super().__init__(lr)
        self.momentum = _fraction("momentum", momentum)

    def _update(self, key, p, g):
        if self.momentum == 0:
            p -= self.lr * g
            return
        v = self.state.get(key)
        if v is None:
            v = self.state[key] = np.zeros_like(p)
        v *= self.momentum
        v += g
        p -= self.lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; t counts updates, starting at 1."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = _fraction("beta1", beta1)
        self.beta2 = _fraction("beta2", beta2)
        self.eps = number("eps", eps, 0, low_open=True)
        self.t = 0

    def step(self, layers):
        self.t += 1
        # fold both bias corrections into one step size: lr * sqrt(1 - b2^t) / (1 - b1^t)
        self._step_size = self.lr * math.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        self._eps_hat = self.eps * math.sqrt(1 - self.beta2 ** self.t)
        super().step(layers)

    def _update(self, key, p, g):
        state = self.state.get(key)
        if state is None:
            state = self.state[key] = (np.zeros_like(p), np.zeros_like(p), np.empty_like(p))
        m, v, tmp = state
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self._eps_hat
        np.divide(m, tmp, out=tmp)
        tmp *= self._step_size
        p -= tmp

    def reset(self):
        super().reset()
        self.t = 0


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def make_optimizer(kind, lr):
    """The optimiser a run of kind "adam" or "sgd" trains with (SGD with momentum 0.9)."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")
    return Adam(lr) if kind == "adam" else SGD(lr, momentum=0.9)
