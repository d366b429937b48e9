"""See inside one step: the arithmetic behind one cell of a feature map, saliency maps, and one
training step on one digit that can be kept or undone exactly.

Pure functions on a Sequential and arrays. Replies are plain dicts of numbers, lists and numpy
arrays (the page's session sends the arrays as packed float32). An image x is one input of the
model's input_shape, (C, H, W), or (H, W) when the model reads one channel.

- conv_arithmetic(model, x, layer, channel, row, col): one cell of a conv layer's map as the
  sum of products it is, then its ReLU and the pooled value it feeds, and its receptive field.
- receptive_field(model, layer, rows, cols): the input pixels a window of a layer's output reads.
- saliency(model, x, digit): the gradient of digit's logit with respect to the input pixels.
- snapshot(model, optimizer), training_step(model, optimizer, x, label), restore(model,
  optimizer, snapshot): take a step on one digit; keep it by dropping the snapshot, or undo it
  (and any steps after the snapshot) bit for bit, optimiser state included.
"""
import copy
import math

import numpy as np

from .checks import number
from .layers import ELEMENTWISE, POOLS, AvgPool2D, Conv2D, ReLU, conv_block
from .losses import softmax, softmax_cross_entropy


# ---- checks ----------------------------------------------------------------------------------
def _index(name, value, size):
    """value as an int in 0..size-1, or a ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < size:
        raise ValueError(f"{name} must be an int from 0 to {size - 1}, got {value!r}")
    return int(value)


def _image(model, x):
    """One image, (C, H, W) or (H, W) for a one-channel model -> a batch of one (1, C, H, W) in the model's dtype."""
    x = np.asarray(x)
    if model.input_shape is not None and model.input_shape[0] == 1 and x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"x must be one image of shape {model.input_shape}, got shape {x.shape}")
    return model.as_input(x[None])


def _conv_layer(model, layer):
    layer = _index("layer", layer, len(model.layers))
    if not isinstance(model.layers[layer], Conv2D):
        convs = [i for i, item in enumerate(model.layers) if isinstance(item, Conv2D)]
        raise ValueError(f"layer must be the index of a Conv2D layer ({', '.join(map(str, convs)) or 'none'}), "
                         f"got {layer} ({type(model.layers[layer]).__name__})")
    return layer


# ---- receptive fields --------------------------------------------------------------------------
def receptive_field(model, layer, rows, cols):
    """The input pixels that rows x cols of layer's output read -> [top, left, bottom, right], half-open.

    rows, cols: (first, end) half-open ranges of model.layers[layer]'s output. Clipped to the
    image (zero padding reads no pixel): a pixel outside it cannot change those outputs.
    """
    layer = _index("layer", layer, len(model.layers))
    return _window(model, -1, layer, rows, cols)


def _window(model, first, last, rows, cols):
    """What rows x cols of layer last's output read of layer first's output (-1: the input) -> [t, l, b, r]."""
    shapes = [model.input_shape] + model.output_shapes()
    (top, bottom), (left, right) = rows, cols
    for i in range(last, first, -1):
        item = model.layers[i]
        if isinstance(item, ELEMENTWISE):
            continue  # the same cells (BatchNorm: per channel)
        if not isinstance(item, (Conv2D, *POOLS)):
            raise ValueError(f"layer {i} ({type(item).__name__}) has no receptive field: only Conv2D, pooling and "
                             f"elementwise layers ({', '.join(cls.__name__ for cls in ELEMENTWISE)}) may come "
                             f"before layer {last}")
        h, w = shapes[i][1:]  # layer i's input
        if isinstance(item, Conv2D):
            (pad_top, _), (pad_left, _) = item.pads(h, w)
            size, stride = item.kernel_size, item.stride
        else:
            (pad_top, pad_left), size, stride = (0, 0), item.pool_size, item.stride
        # output cells [a, b) read the padded input's [a * stride, (b - 1) * stride + size)
        top, bottom = max(top * stride - pad_top, 0), min((bottom - 1) * stride - pad_top + size, h)
        left, right = max(left * stride - pad_left, 0), min((right - 1) * stride - pad_left + size, w)
    return [int(top), int(left), int(bottom), int(right)]


def _pooled_cell(model, pools, row, col):
    """The pooled cell that conv cell (row, col) feeds through the block's pools -> [row, col], or None.

    None when a pool drops the cell (a last odd row or column); where windows overlap, the last
    window that holds it.
    """
    shapes = model.output_shapes()
    for i in pools:
        pool, (_, out_h, out_w) = model.layers[i], shapes[i]
        p, s = pool.pool_size, pool.stride
        r, c = min(row // s, out_h - 1), min(col // s, out_w - 1)
        if r * s + p <= row or c * s + p <= col:
            return None
        row, col = r, c
    return [row, col]


# ---- one cell's arithmetic ------------------------------------------------------------------------
def conv_arithmetic(model, x, layer, channel, row, col, grid="activated"):
    """One cell of conv layer `layer`'s map `channel` for image x, as the arithmetic that makes it.

    grid "activated": (row, col) is a cell of the conv's output; "pooled": a cell of the block's
    pooled map (conv_block), and the cell explained is the conv cell that won its pool window
    (the largest value the pool compares; ties go to the first, as in MaxPool2D), or for an
    average pool the window's first cell. -> {
      "layer", "channel", "row", "col": the conv cell explained,
      "patch": (C, k, k) the layer's input under the filter, 0 where it reads zero padding,
      "in_image": (k, k) 1 where a tap reads the input, 0 where it reads padding,
      "patch_origin": [row, col] of the patch's first tap in the layer's input (negative over padding),
      "weights": (C, k, k) the filter, "products": (C, k, k) patch * weights,
      "sum": the products' sum, "bias", "conv": sum + bias (in float64 from the float32 numbers:
        the layer's own output agrees to float32 rounding),
      "batchnorm": None, or when a BatchNorm follows the conv, its inference arithmetic {"mean",
        "var" (its running statistics for the channel), "eps", "gamma", "beta", "value": (conv - mean) /
        sqrt(var + eps) * gamma + beta},
      "activation": None, or {"kind": "ReLU", "LeakyReLU", "Tanh" or "Sigmoid", "value": it applied to
        the conv (or BatchNorm) value},
      "relu": max(conv, 0) (the activation's value when it is a ReLU), or None when the block has no ReLU,
      "pool": "max", "average", or None without a pool,
      "pooled": the value of the block's pooled map this cell feeds, or None (no pool, or a last
        odd row or column the pool drops),
      "pooled_cell": [row, col] of it, "pool_window": [top, left, bottom, right] (half-open) of the
        conv cells it pools, "pool_values": those cells as the "activated" map has them (after the
        BatchNorm and activation, if any), "pool_argmax": [row, col] of the winner of a max pool;
        None without a pool (pool_argmax: and for an average pool),
      "receptive_field": [top, left, bottom, right] (half-open) of the input pixels the cell reads,
      "pooled_receptive_field": the same for the pooled value, or None}
    """
    layer = _conv_layer(model, layer)
    conv = model.layers[layer]
    channel = _index("channel", channel, conv.filters)
    if grid not in ("activated", "pooled"):
        raise ValueError(f"grid must be 'activated' or 'pooled', got {grid!r}")
    batch = _image(model, x)
    outputs = model.activations(batch)
    inputs = batch if layer == 0 else outputs[layer - 1]
    block = conv_block(model.layers, layer)
    norm = model.layers[block.norm] if block.norm is not None else None
    activation = model.layers[block.activation] if block.activation is not None else None
    pools = block.pools
    average = bool(pools) and isinstance(model.layers[pools[-1]], AvgPool2D)
    # what the pool compares: the conv output after the BatchNorm (an activation keeps the order)
    compared = outputs[layer if norm is None else block.norm][0, channel]

    if grid == "pooled":
        if not pools:
            raise ValueError(f"layer {layer} has no pooled map: no pooling layer follows it")
        pooled_h, pooled_w = outputs[block.end - 1].shape[2:]
        pooled_cell = [_index("row", row, pooled_h), _index("col", col, pooled_w)]
    else:
        row, col = _index("row", row, compared.shape[0]), _index("col", col, compared.shape[1])
        pooled_cell = _pooled_cell(model, pools, row, col) if pools else None
    window = argmax = None
    if pooled_cell is not None:
        pr, pc = pooled_cell
        window = _window(model, layer, pools[-1], (pr, pr + 1), (pc, pc + 1))  # in the conv's output
        top, left, bottom, right = window
        if not average:
            r, c = np.unravel_index(int(np.argmax(compared[top:bottom, left:right])), (bottom - top, right - left))
            argmax = [top + int(r), left + int(c)]
        if grid == "pooled":
            row, col = argmax if argmax is not None else [top, left]

    # the patch: the padded input under the filter, with the layer's stride and padding
    k, stride = conv.kernel_size, conv.stride
    h, w = inputs.shape[2:]
    (pad_top, _), (pad_left, _) = conv.pads(h, w)
    r0, c0 = row * stride - pad_top, col * stride - pad_left
    rows, cols = slice(max(r0, 0), min(r0 + k, h)), slice(max(c0, 0), min(c0 + k, w))
    taps = (slice(rows.start - r0, rows.stop - r0), slice(cols.start - c0, cols.stop - c0))
    patch = np.zeros((conv.in_channels, k, k))
    patch[:, taps[0], taps[1]] = inputs[0, :, rows, cols]
    in_image = np.zeros((k, k))
    in_image[taps] = 1
    weights = conv.params["W"][channel].astype(np.float64)
    products = patch * weights
    total = float(products.sum())
    bias = float(conv.params["b"][channel])
    value = total + bias

    batchnorm = None
    if norm is not None:
        numbers = {"mean": float(norm.state["running_mean"][channel]), "var": float(norm.state["running_var"][channel]),
                   "eps": norm.eps, "gamma": float(norm.params["gamma"][channel]),
                   "beta": float(norm.params["beta"][channel])}
        normalised = (value - numbers["mean"]) / math.sqrt(numbers["var"] + numbers["eps"]) * numbers["gamma"] \
            + numbers["beta"]
        batchnorm = {**numbers, "value": normalised}
        value_in = normalised
    else:
        value_in = value
    activated = None
    if activation is not None:
        activated = {"kind": type(activation).__name__,
                     "value": float(activation.forward(np.array([value_in]), training=False)[0])}

    reply = {
        "layer": layer, "channel": channel, "row": row, "col": col,
        "patch": patch, "in_image": in_image, "patch_origin": [int(r0), int(c0)],
        "weights": weights, "products": products, "sum": total, "bias": bias, "conv": value,
        "batchnorm": batchnorm, "activation": activated,
        "relu": activated["value"] if isinstance(activation, ReLU) else None,
        "pool": None if not pools else "average" if average else "max",
        "pooled": None, "pooled_cell": pooled_cell, "pool_window": window, "pool_values": None,
        "pool_argmax": argmax,
        "receptive_field": receptive_field(model, layer, (row, row + 1), (col, col + 1)),
        "pooled_receptive_field": None,
    }
    if pooled_cell is not None:
        top, left, bottom, right = window
        values = compared[top:bottom, left:right]
        reply.update({
            "pooled": float(outputs[block.end - 1][0, channel, pooled_cell[0], pooled_cell[1]]),
            "pool_values": activation.forward(values, training=False) if activation is not None else values.copy(),
            "pooled_receptive_field": receptive_field(model, layer, (top, bottom), (left, right)),
        })
    return reply


# ---- saliency ------------------------------------------------------------------------------------
def saliency(model, x, digit):
    """How each input pixel moves digit's logit: d logit[digit] / d x for image x -> {
      "digit", "logit": the score, "probability": softmax's share of it,
      "gradient": (H, W) for a one-channel model, else (C, H, W)}

    The logit, not the log-probability: the gradient of log p = logit[d] - logsumexp(logits)
    is the logit's minus every digit's, weighted by its probability, so it fades to zero as p
    nears 1 (exactly 0 in float32 from p = 1 - 6e-8: a confident digit would get a blank map),
    and it mixes in the other digits' maps. The logit's gradient says what raises that digit's
    own score: positive where more ink raises it, negative where ink lowers it. It is exact
    (backpropagation through the model's own layers, as training does it).

    Runs the model's forward and backward on a batch of one (Sequential.frozen: what inference
    computes): it overwrites the layers' grads and caches (scratch; the next training step
    overwrites them again), never the weights or the state.
    """
    batch = _image(model, x)
    digit = _index("digit", digit, model.n_classes())
    with model.frozen():  # the function predict computes: BatchNorm's running statistics, no dropout
        logits = model.forward(batch, training=True)
        dlogits = np.zeros_like(logits)
        dlogits[0, digit] = 1
        gradient = model.backward(dlogits, input_gradient=True)[0]
    return {"digit": digit, "logit": float(logits[0, digit]), "probability": float(softmax(logits)[0, digit]),
            "gradient": gradient[0].copy() if gradient.shape[0] == 1 else gradient.copy()}


# ---- one training step on one digit ---------------------------------------------------------------
class Snapshot:
    """A model's weights and state (BatchNorm's running statistics) and an optimiser's whole state at
    one moment (restore puts them back)."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.weights = [(arrays, name, array.copy()) for layer in model.layers
                        for arrays in (layer.params, layer.state) for name, array in arrays.items()]
        # every attribute: Adam's moments and step count t, the learning rate, SGD's velocities
        self.state = copy.deepcopy(vars(optimizer))


def snapshot(model, optimizer):
    """The weights of model and the state of optimizer now -> Snapshot, for restore()."""
    return Snapshot(model, optimizer)


def restore(model, optimizer, saved):
    """Put back the weights, model state and optimiser state of snapshot `saved`, bit for bit (in place)."""
    if not isinstance(saved, Snapshot) or saved.model is not model or saved.optimizer is not optimizer:
        raise ValueError("restore needs a snapshot taken of this model and this optimizer")
    for arrays, name, array in saved.weights:
        np.copyto(arrays[name], array)
    state = vars(optimizer)
    state.clear()
    state.update(copy.deepcopy(saved.state))  # a copy: the snapshot can be restored again


def training_step(model, optimizer, x, label, lr=None):
    """One optimiser step on image x with its label: exactly model.train_step on a batch of one -> {
      "label", "loss": cross-entropy before the step, "loss_after": the same after it,
      "probabilities_before", "probabilities_after": (classes,), "probability_before",
      "probability_after": of the label, "prediction_before", "prediction_after",
      "lr": the learning rate used, "optimizer": "Adam" or "SGD", "optimizer_step": Adam's t
        after the step (None for SGD), "first_step": True when the optimiser had no state yet,
      "layers": one entry per layer with weights: {"layer", "class", "gradient_norm",
        "update_norm", "weight_norm" (L2 over W and b; the weights before the step)}; Conv2D
        entries also have "gradient" (F, C, k, k), "bias_gradient" (F,), "update" (F, C, k, k)
        and "bias_update" (F,) (weights after minus before), and per filter (F,) the L2 norms
        "filter_gradient_norm", "filter_update_norm" and "filter_weight_norm" of its W}

    The optimiser's own state carries on (Adam's moments and t), so the step is the one the
    next training step on this digit would be; an optimiser without state makes Adam's first
    step, which moves every weight with a non-zero gradient by lr (m / sqrt(v) is its sign).
    lr: this step's learning rate (None: the optimiser's); the optimiser keeps its own.
    The step changes model and optimizer: take a snapshot() before to be able to undo it.
    """
    batch = _image(model, x)
    label = _index("label", label, model.n_classes())
    labels = np.array([label])
    step_lr = optimizer.lr if lr is None else number("lr", lr, 0, low_open=True)
    first = not optimizer.state and getattr(optimizer, "t", 0) == 0
    before = {(i, name): array.copy() for i, layer in enumerate(model.layers) for name, array in layer.params.items()}
    probs_before = softmax(model.forward(batch))[0]
    own_lr, optimizer.lr = optimizer.lr, step_lr
    try:
        loss, _ = model.train_step(batch, labels, optimizer)
    finally:
        optimizer.lr = own_lr
    logits_after = model.forward(batch)
    loss_after, _ = softmax_cross_entropy(logits_after, labels)
    probs_after = softmax(logits_after)[0]

    layers = []
    for i, layer in enumerate(model.layers):
        if not layer.params:
            continue
        grads = {name: layer.grads[name] for name in layer.params}
        updates = {name: layer.params[name] - before[i, name] for name in layer.params}
        entry = {"layer": i, "class": type(layer).__name__, "gradient_norm": _norm(*grads.values()),
                 "update_norm": _norm(*updates.values()),
                 "weight_norm": _norm(*(before[i, name] for name in layer.params))}
        if isinstance(layer, Conv2D):
            entry.update({
                "gradient": grads["W"].copy(), "bias_gradient": grads["b"].copy(),
                "update": updates["W"], "bias_update": updates["b"],
                "filter_gradient_norm": _filter_norms(grads["W"]), "filter_update_norm": _filter_norms(updates["W"]),
                "filter_weight_norm": _filter_norms(before[i, "W"]),
            })
        layers.append(entry)
    return {
        "label": label, "loss": float(loss), "loss_after": float(loss_after),
        "probabilities_before": probs_before, "probabilities_after": probs_after,
        "probability_before": float(probs_before[label]), "probability_after": float(probs_after[label]),
        "prediction_before": int(probs_before.argmax()), "prediction_after": int(probs_after.argmax()),
        "lr": step_lr, "optimizer": type(optimizer).__name__, "optimizer_step": getattr(optimizer, "t", None),
        "first_step": first, "layers": layers,
    }


def _norm(*arrays):
    """L2 norm over all the arrays' entries, in float64."""
    return math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays))


def _filter_norms(w):
    """(F, C, k, k) -> (F,) L2 norm of each filter, in float64."""
    return np.sqrt(np.sum(np.square(w.reshape(len(w), -1), dtype=np.float64), axis=1))
