"""Data-parallel training steps: a batch split into shards whose gradients are computed apart.

One sharded step (TrainingConfig(shards=k)):
1. the batch is chosen, shuffled and augmented once, from the run's seed (Trainer._batch);
2. it is split into k contiguous shards, sizes as even as possible, the larger ones first
   (shard_bounds: numpy's array_split rule); a batch of fewer than k images (the last one of
   an epoch) leaves the last shards empty: they are skipped, nobody computes them;
3. each shard's gradient is computed alone (shard_gradients) with the loss scaled by
   shard size / batch size, so that the SUM of the shards' gradients is the gradient of the
   batch's mean loss;
4. the gradients are summed in shard order 0, 1, 2, ... (sum_gradients) and one optimiser
   step is applied (apply_gradients).
The split and the order of the sum are fixed by the run, so the weights after a step do not
depend on who computed which shard, or when: in this process (sharded_step), in other
processes or in the page's helper workers (encode_task -> run_task -> decode_result; a task of
several shards: encode_shards -> run_shards -> a result per shard).

A step can also be taken in two phases (ShardedStep; Trainer.begin_step / finish_step), for a
caller that hands shards out and gathers them itself (the page's worker, between messages):
begin with the batch -> task bytes for the shards others compute: one task per shard (tasks), or
one task per helper carrying the weights once and all the shards it is given (task; which shards
each helper gets: assign_shards); then, in any order, compute some shards here (compute) and add
the others' result bytes, one result per shard (add); finish -> the same optimiser step as
sharded_step's, bit for bit.

A layer that draws random numbers in training (dropout) declares `uses_rng = True`; before
each shard's forward pass its `rng` attribute is set to shard_rng(seed, step, shard), so its
draws too are the same whoever computes the shard. A layer with state that training moves
(BatchNorm's running statistics) only measures in a shard's forward pass; the measurements
travel with the result and move the state after the update, shard after shard in shard order.

Tasks and results cross process and worker boundaries as bytes (encode_task, encode_result):
    MAGIC (8 bytes) | header length (uint32, little-endian) | header (UTF-8 JSON) | arrays
The header holds the scalars and, under "arrays", [name, dtype, shape] of each array; the
arrays' bytes follow one after another in that order, little-endian, C order. Weights and
gradients keep the model's dtype (float32 or float64), so nothing is rounded on the way.
A task (encode_shards; encode_task is its one-shard case):
    header {"kind": "task", "model": the architecture, "batch_size", "seed", "step",
            "shards": [shard, ...] (distinct, in the order their images follow),
            "counts": [images of each shard, ...]}
    arrays: the weights ("0.W", ...), "x" (every shard's images, shard after shard), "y" (int32)
A result (encode_result), one per shard:
    header {"kind": "result", "step", "shard", "loss", "correct", "count", "keys": the gradients'
            names, "statistics": the names of the state measurements}
    arrays: the gradients ("0.W", ...), then "statistics NAME" of each measurement
Decoded arrays are read-only views of the bytes (no copy) on little-endian machines.
"""
import json
import math

import numpy as np

from .losses import softmax_cross_entropy
from .optimizers import trainable

MAGIC = b"PYCNNSH1"
MAX_SHARDS = 64          # TrainingConfig's bound: more than any browser has cores
MAX_HEADER_BYTES = 1 << 20
DTYPES = ("<f4", "<f8", "<i4")  # weights/gradients/images of either model dtype, labels


# ---- the split, the per-shard randomness --------------------------------------------------------
def shard_bounds(n, shards):
    """(start, stop) of each non-empty shard of a batch of n images split into `shards`, in shard order.

    Shard i holds n // shards images, one more for the first n % shards; when n < shards the
    last shards would be empty and are left out (shard i is still the i-th pair).
    """
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
        raise ValueError(f"shards must be a positive int, got {shards!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    size, extra = divmod(int(n), int(shards))
    bounds, start = [], 0
    for i in range(int(shards)):
        stop = start + size + (i < extra)
        if stop > start:
            bounds.append((start, stop))
        start = stop
    return bounds


def shard_rng(seed, step, shard):
    """The Generator of shard `shard` at step `step` (0-based) of a run seeded `seed`."""
    return np.random.default_rng([int(seed), int(step), int(shard)])


def _random_layers(model):
    return [layer for layer in model.layers if getattr(layer, "uses_rng", False)]


def assign_shards(count, helpers):
    """Which of a step's `count` non-empty shards go to each of `helpers` helpers and which stay here ->
    (given: [[shard, ...] of each helper given any], mine: [shard, ...]).

    Dealt one at a time starting with the first helper, this process last (it also chose the batch
    and sums the results): 4 shards and 1 helper -> 2 and 2; 2 helpers -> 2, 1 and 1 here. Each one's
    shards are contiguous (the helpers' first), so a task's images are one slice of the batch.
    """
    for name, value in (("count", count), ("helpers", helpers)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_SHARDS:
            raise ValueError(f"{name} must be an int from 0 to {MAX_SHARDS}, got {value!r}")
    workers = int(helpers) + 1
    sizes = [0] * workers  # [here, helper 1, helper 2, ...]
    for i in range(int(count)):
        sizes[(i + 1) % workers] += 1
    given, start = [], 0
    for size in sizes[1:]:
        if size:
            given.append(list(range(start, start + size)))
            start += size
    return given, list(range(start, int(count)))


def seed_layers(model, seed, step, shard):
    """Give every layer that draws random numbers in training (uses_rng) shard_rng(seed, step, shard)."""
    layers = _random_layers(model)
    if layers:  # no Generator is made for models without such layers (all of today's)
        rng = shard_rng(seed, step, shard)
        for layer in layers:
            layer.rng = rng


# ---- one shard, the sum, the update ------------------------------------------------------------
class ShardResult:
    """What one shard contributes to a step: grads {"0.W": array, ...} (the sum over the shards is the
    batch-mean gradient), loss (its share of the batch-mean loss: its images' summed loss / batch
    size), correct (its images predicted right), count (its images) and statistics (what its
    forward pass measured for the model's state: Sequential.batch_statistics(), {} for most models)."""

    __slots__ = ("grads", "loss", "correct", "count", "statistics")

    def __init__(self, grads, loss, correct, count, statistics=None):
        self.grads, self.loss, self.correct, self.count = grads, loss, correct, count
        self.statistics = {} if statistics is None else statistics


def shard_gradients(model, x, y, batch_size, rng=None):
    """Forward and backward of one shard of a batch of batch_size images -> ShardResult.

    x: (n, C, H, W), y: (n,) with 1 <= n <= batch_size. The loss is scaled by n / batch_size,
    so the shards' gradients add up to the gradient of the whole batch's mean loss. rng: given
    to the layers that draw random numbers in training (see shard_rng). The model's weights
    are not changed.
    """
    x = model.as_input(x)
    y = model.as_labels(y, len(x))
    n = len(x)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= n <= batch_size:
        raise ValueError(f"batch_size must be an int of at least the shard's {n} images (and a shard at least "
                         f"one image), got {batch_size!r}")
    if rng is not None:
        for layer in _random_layers(model):
            layer.rng = rng
    with model.deferred_statistics():  # the state moves when the step is finished, in shard order
        logits = model.forward(x, training=True)
    loss, dlogits = softmax_cross_entropy(logits, y)  # dlogits of the shard's mean loss
    if n != batch_size:
        dlogits *= n / batch_size  # of the shard's share of the batch's mean loss
    model.backward(dlogits)
    grads = {key: layer.grads[name].copy() for key, layer, name in trainable(model.layers)}
    correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
    share = loss if n == batch_size else loss * n / batch_size  # x * n / n is not always x
    return ShardResult(grads, share, correct, n, model.batch_statistics())


def sum_gradients(grads):
    """Shards' gradient dicts, in shard order -> their sum, added in that order (a new dict)."""
    grads = list(grads)
    if not grads:
        raise ValueError("sum_gradients needs the gradients of at least one shard, got none")
    first = grads[0]
    total = {key: np.array(value, copy=True) for key, value in first.items()}
    for i, shard in enumerate(grads[1:], 1):
        if shard.keys() != first.keys():
            raise ValueError(f"shard {i}'s gradients must have the keys {', '.join(first)}, got {', '.join(shard)}")
        for key, value in shard.items():
            if np.shape(value) != total[key].shape:
                raise ValueError(f"shard {i}'s gradient {key} must have shape {total[key].shape}, "
                                 f"got {np.shape(value)}")
            total[key] += value
    return total


def apply_gradients(model, optimizer, grads):
    """One optimiser step of the model with grads {"0.W": array, ...}, one per weight array."""
    slots = list(trainable(model.layers))
    keys = [key for key, _, _ in slots]
    if sorted(grads) != sorted(keys):
        raise ValueError(f"grads must have the keys {', '.join(keys)}, got {', '.join(map(str, grads))}")
    for key, layer, name in slots:
        value = np.asarray(grads[key])
        if value.shape != layer.params[name].shape:
            raise ValueError(f"gradient {key} must have shape {layer.params[name].shape}, got {value.shape}")
        layer.grads[name] = value.astype(layer.params[name].dtype, copy=False)
    optimizer.step(model.layers)


def combine(results):
    """Shards' results, in shard order -> (summed gradients, batch loss, correct predictions, images)."""
    results = list(results)
    grads = sum_gradients(result.grads for result in results)
    loss = 0.0
    for result in results:  # in shard order, like the gradients
        loss += result.loss
    return grads, loss, sum(result.correct for result in results), sum(result.count for result in results)


class ShardedStep:
    """One sharded step in progress: the batch (x, y) split into shards, whose results are gathered
    one by one, from anywhere and in any order, then summed in shard order (finish).

    expect: how a wrong or missing result is reported ("expected one result for each of shards 0
    to 3 of step 5, got shard 2 of step 4").
    """

    def __init__(self, model, x, y, shards, seed=0, step=0, expect="expected"):
        self.model, self.x, self.y = model, x, y
        self.seed, self.step, self.expect = int(seed), int(step), expect
        self.bounds = shard_bounds(len(x), shards)
        self.shards = int(shards)
        self.results = {}  # shard -> ShardResult

    def _wanted(self):
        return (f"{self.expect} one result for each of shards 0 to {len(self.bounds) - 1} of step {self.step}")

    def tasks(self):
        """The task bytes of every non-empty shard, in shard order (encode_tasks)."""
        return encode_tasks(self.model, self.x, self.y, self.shards, self.seed, self.step)

    def task(self, shards):
        """One task for the shards `shards` (distinct shard indices): the weights once and the shards'
        images, shard after shard (encode_shards). Its runner sends back one result per shard."""
        shards = list(shards)
        if not shards or len(set(shards)) != len(shards) or not all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < len(self.bounds)
                for i in shards):
            raise ValueError(f"shards must be distinct ints from 0 to {len(self.bounds) - 1}, got {shards!r}")
        parts = [self.bounds[i] for i in shards]
        if all(parts[k][1] == parts[k + 1][0] for k in range(len(parts) - 1)):  # one slice of the batch
            x, y = self.x[parts[0][0]:parts[-1][1]], self.y[parts[0][0]:parts[-1][1]]
        else:
            x = np.concatenate([self.x[a:b] for a, b in parts])
            y = np.concatenate([self.y[a:b] for a, b in parts])
        return encode_shards(self.model, x, y, len(self.x), self.seed, self.step, shards, [b - a for a, b in parts])

    def compute(self, shard):
        """Compute shard `shard` here, with the model itself (not yet changed by this step)."""
        if isinstance(shard, bool) or not isinstance(shard, (int, np.integer)) or not 0 <= shard < len(self.bounds):
            raise ValueError(f"shard must be an int from 0 to {len(self.bounds) - 1}, got {shard!r}")
        if shard in self.results:
            raise ValueError(f"shard {shard} of step {self.step} is computed already")
        a, b = self.bounds[shard]
        self.results[int(shard)] = shard_gradients(self.model, self.x[a:b], self.y[a:b], len(self.x),
                                                   rng=_rng_for(self.model, self.seed, self.step, shard))

    def add(self, data):
        """A shard's result bytes (run_task's), computed elsewhere -> the shard it is of."""
        header, result = decode_result(data)
        shard = header["shard"]
        if header["step"] != self.step or shard >= len(self.bounds) or shard in self.results:
            twice = " twice" if header["step"] == self.step and shard in self.results else ""
            raise ValueError(f"{self._wanted()}, got shard {shard} of step {header['step']}{twice}")
        self.results[shard] = result
        return shard

    def missing(self):
        """The shards without a result yet, in shard order."""
        return [i for i in range(len(self.bounds)) if i not in self.results]

    def finish(self, optimizer):
        """Sum the results in shard order and take one optimiser step -> (batch loss, correct predictions).
        ValueError, and the model left as it was, when a shard has no result."""
        missing = self.missing()
        if missing:
            raise ValueError(f"{self._wanted()}; shard(s) {', '.join(map(str, missing))} missing")
        grads, loss, correct, _ = combine(self.results[i] for i in range(len(self.bounds)))
        apply_gradients(self.model, optimizer, grads)
        for i in range(len(self.bounds)):  # BatchNorm's running statistics, as unsharded training moves them
            self.model.update_statistics(self.results[i].statistics)
        return loss, correct


def sharded_step(model, optimizer, x, y, shards, seed=0, step=0, compute=None):
    """One optimiser step on the batch (x, y) split into shards -> (batch loss, correct predictions).

    compute: None computes the shards here, one after another, with the model itself;
    otherwise compute(tasks) gets each non-empty shard's task bytes (encode_tasks) and returns
    their results' bytes (run_task's) in any order: other processes or workers compute them.
    Either way the results are summed in shard order.
    """
    work = ShardedStep(model, x, y, shards, seed, step, expect="compute must return")
    if compute is None:
        for i in range(len(work.bounds)):
            work.compute(i)
    else:
        for data in compute(work.tasks()):
            work.add(data)
    return work.finish(optimizer)


def _rng_for(model, seed, step, shard):
    return shard_rng(seed, step, shard) if _random_layers(model) else None


# ---- bytes: tasks and results ------------------------------------------------------------------
def _pack(header, arrays):
    """header (JSON-able dict) and [(name, array)] -> bytes; arrays kept in their dtype, little-endian."""
    parts, specs = [], []
    for name, array in arrays:
        array = np.asarray(array)
        dtype = array.dtype.newbyteorder("<")
        if dtype.str not in DTYPES:
            raise ValueError(f"array {name} must be float32, float64 or int32, got {array.dtype}")
        specs.append([name, dtype.str, list(array.shape)])
        parts.append(np.ascontiguousarray(array, dtype=dtype))  # joined below: copied once, straight from here
    text = json.dumps({**header, "arrays": specs}, separators=(",", ":"), allow_nan=False).encode()
    return b"".join([MAGIC, len(text).to_bytes(4, "little"), text, *parts])


def _unpack(data, kind):
    """bytes from _pack -> (header, {name: array}), everything checked; ValueError saying what is wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"a {kind} must be bytes, got {type(data).__name__}")
    data = memoryview(data).cast("B")
    if len(data) < 12 or bytes(data[:8]) != MAGIC:
        raise ValueError(f"not a pycnn {kind} (it does not start with {MAGIC!r})")
    size = int.from_bytes(data[8:12], "little")
    if size > min(MAX_HEADER_BYTES, len(data) - 12):
        raise ValueError(f"the {kind}'s header says {size:,} bytes; {len(data) - 12:,} follow")
    try:
        header = json.loads(bytes(data[12:12 + size]))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the {kind}'s header is not JSON ({err})") from None
    if not isinstance(header, dict) or header.get("kind") != kind:
        said = header.get("kind") if isinstance(header, dict) else header
        raise ValueError(f"not a pycnn {kind} (its header's kind is {said!r:.40})")
    if not isinstance(header.get("arrays"), list):
        raise ValueError(f"the {kind}'s header has no list of arrays")
    arrays, offset = {}, 12 + size
    for spec in header.pop("arrays"):
        if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str) and spec[1] in DTYPES
                and isinstance(spec[2], list)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec[2])):
            raise ValueError(f"the {kind} has a bad array entry: {str(spec)[:80]}")
        if spec[0] in arrays:
            raise ValueError(f"the {kind} has two arrays named {spec[0]!r}")
        name, dtype, shape = spec[0], np.dtype(spec[1]), tuple(spec[2])
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes > len(data):
            raise ValueError(f"the {kind} is truncated: array {name} needs {nbytes:,} bytes, "
                             f"{len(data) - offset:,} are left")
        array = np.frombuffer(data, dtype, math.prod(shape), offset).reshape(shape)
        if array.dtype.isnative:  # a read-only view of the bytes: nothing copied (a task's weights and a
            array.flags.writeable = False  # result's gradients are read once, into the model or the sum)
        else:
            array = array.astype(dtype.newbyteorder("="))
        arrays[name] = array
        offset += nbytes
    if offset != len(data):
        raise ValueError(f"the {kind} has {len(data) - offset:,} byte(s) after its last array")
    return header, arrays


def _weight_arrays(model):
    return [(key, layer.params[name]) for key, layer, name in trainable(model.layers)]


def encode_task(model, x, y, batch_size, seed=0, step=0, shard=0):
    """One shard's task as bytes: the model's architecture and weights, the shard's images and
    labels, the batch size it is a part of, and (seed, step, shard) for its randomness."""
    return encode_shards(model, x, y, batch_size, seed, step, [shard], [len(x)])


def encode_shards(model, x, y, batch_size, seed, step, shards, counts):
    """One task of several shards of a batch as bytes: the architecture and the weights once, then x, y:
    the images and labels of the shards `shards`, counts[i] of shard shards[i], one shard after another."""
    header = {"kind": "task", "model": model.get_config(), "batch_size": int(batch_size),
              "seed": int(seed), "step": int(step), "shards": [int(i) for i in shards],
              "counts": [int(n) for n in counts]}
    x = model.as_input(x)
    y = model.as_labels(y, len(x)).astype("<i4")
    if sum(header["counts"]) != len(x) or len(header["counts"]) != len(header["shards"]):
        raise ValueError(f"counts must give the images of each of the shards {header['shards']}, {len(x)} in all, "
                         f"got {header['counts']}")
    return _pack(header, _weight_arrays(model) + [("x", x), ("y", y)])


def encode_tasks(model, x, y, shards, seed=0, step=0):
    """The tasks of every non-empty shard of the batch (x, y), one each, in shard order (see shard_bounds)."""
    return [encode_task(model, x[a:b], y[a:b], len(x), seed, step, i)
            for i, (a, b) in enumerate(shard_bounds(len(x), shards))]


def _ints(value, low, high):
    return (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
                                            for v in value))


def decode_task(data):
    """Task bytes -> (header: {"model", "batch_size", "seed", "step", "shards", "counts"}, weights {"0.W": ...},
    x, y): x and y hold the images and labels of the shards, shard after shard (counts[i] of shards[i])."""
    header, arrays = _unpack(data, "task")
    for name in ("batch_size", "seed", "step"):
        if isinstance(header.get(name), bool) or not isinstance(header.get(name), int) or header[name] < 0:
            raise ValueError(f"the task's {name} must be a non-negative int, got {header.get(name)!r}")
    if "x" not in arrays or "y" not in arrays:
        raise ValueError("the task has no images (x) or labels (y)")
    x, y = arrays.pop("x"), arrays.pop("y")
    shards, counts = header.get("shards"), header.get("counts")
    if not (_ints(shards, 0, MAX_SHARDS - 1) and 1 <= len(shards) <= MAX_SHARDS and len(set(shards)) == len(shards)):
        raise ValueError(f"the task's shards must be a list of 1 to {MAX_SHARDS} distinct shard indices, "
                         f"got {str(shards)[:80]}")
    if not (_ints(counts, 1, header["batch_size"]) and len(counts) == len(shards)
            and sum(counts) == len(x) == len(y) <= header["batch_size"]):
        raise ValueError(f"the task's counts must give the images of each of its {len(shards)} shard(s), "
                         f"{len(x)} images and {len(y)} labels in all, of a batch of {header['batch_size']}, "
                         f"got {str(counts)[:80]}")
    return header, arrays, x, y


def encode_result(result, step=0, shard=0):
    """A ShardResult as bytes, with the step and shard it is of."""
    header = {"kind": "result", "step": int(step), "shard": int(shard), "loss": float(result.loss),
              "correct": int(result.correct), "count": int(result.count), "keys": list(result.grads),
              "statistics": list(result.statistics)}
    return _pack(header, [*result.grads.items(), *((f"statistics {key}", value)
                                                   for key, value in result.statistics.items())])


def decode_result(data):
    """Result bytes -> (header: {"step", "shard", ...}, ShardResult)."""
    header, arrays = _unpack(data, "result")
    names = header.get("statistics", [])
    if not isinstance(names, list) or not all(isinstance(name, str) and f"statistics {name}" in arrays
                                              for name in names):
        raise ValueError(f"the result's statistics must name its statistics arrays, got {str(names)[:80]}")
    statistics = {name: arrays.pop(f"statistics {name}") for name in names}
    keys = header.get("keys")
    if not isinstance(keys, list) or keys != list(arrays):
        raise ValueError(f"the result's keys must name its arrays ({', '.join(arrays)}), got {keys!r}")
    for name in ("step", "shard", "correct", "count"):
        if isinstance(header.get(name), bool) or not isinstance(header.get(name), int) or header[name] < 0:
            raise ValueError(f"the result's {name} must be a non-negative int, got {header.get(name)!r}")
    if not isinstance(header.get("loss"), (int, float)) or isinstance(header["loss"], bool):
        raise ValueError(f"the result's loss must be a number, got {header.get('loss')!r}")
    return header, ShardResult(arrays, float(header["loss"]), header["correct"], header["count"], statistics)


class TaskRunner:
    """Computes tasks into results, keeping the model of the last architecture it saw (building a
    model is the slow part of a small task). The results depend on the task's bytes alone."""

    def __init__(self):
        self._config = None
        self._model = None

    def results(self, data):
        """Task bytes -> the result bytes of each of its shards, in the task's order: the weights are set
        once, then each shard is computed as shard_gradients computes it alone."""
        from .model import Sequential  # here: pycnn.model imports the training code that imports this module

        header, weights, x, y = decode_task(data)
        config = json.dumps(header["model"], sort_keys=True)
        if config != self._config:
            self._model, self._config = Sequential.from_config(header["model"], seed=0), config
        model = self._model
        keys = [key for key, _, _ in trainable(model.layers)]
        if list(weights) != keys:
            raise ValueError(f"the task's weights must be {', '.join(keys)}, got {', '.join(weights)}")
        model.set_weights(weights[key] for key in keys)
        results, start = [], 0
        for shard, count in zip(header["shards"], header["counts"]):
            rng = _rng_for(model, header["seed"], header["step"], shard)
            result = shard_gradients(model, x[start:start + count], y[start:start + count], header["batch_size"],
                                     rng=rng)
            results.append(encode_result(result, header["step"], shard))
            start += count
        return results

    def __call__(self, data):
        """The bytes of a task of one shard -> its result bytes."""
        results = self.results(data)
        if len(results) != 1:
            raise ValueError(f"the task holds {len(results)} shards; run_shards computes a task of several")
        return results[0]


_RUNNER = TaskRunner()


def run_task(data):
    """The bytes of a task of one shard -> its result bytes: what a helper process runs (one model kept per
    process)."""
    return _RUNNER(data)


def run_shards(data):
    """Task bytes (of one shard or several) -> the result bytes of each of its shards, in the task's order:
    what the page's helper workers run."""
    return _RUNNER.results(data)
