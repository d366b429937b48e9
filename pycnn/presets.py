"""Named architectures in Sequential.get_config()'s format; adding one is one entry of PRESETS."""
from .model import Sequential


def _conv(in_channels, filters, kernel_size, padding="valid"):
    return {"class": "Conv2D", "config": {"in_channels": in_channels, "filters": filters, "kernel_size": kernel_size,
                                          "stride": 1, "padding": padding}}


def _dense(in_features, out_features):
    return {"class": "Dense", "config": {"in_features": in_features, "out_features": out_features}}


RELU = {"class": "ReLU", "config": {}}
POOL = {"class": "MaxPool2D", "config": {"pool_size": 2, "stride": 2}}
FLATTEN = {"class": "Flatten", "config": {}}
MNIST = [1, 28, 28]

PRESETS = {
    # the seed post's network: 17,010 weights
    "seed": {"input_shape": MNIST, "dtype": "float32",
             "layers": [_conv(1, 10, 3), RELU, POOL, FLATTEN, _dense(13 * 13 * 10, 10)]},
    # two conv-pool blocks: 28 -> 26 -> 13 -> 11 -> 5
    "two-conv": {"input_shape": MNIST, "dtype": "float32",
                 "layers": [_conv(1, 16, 3), RELU, POOL, _conv(16, 32, 3), RELU, POOL, FLATTEN,
                            _dense(5 * 5 * 32, 10)]},
    # the page's default: two-conv with a hidden dense layer of 64 before the 10 outputs
    "two-conv-dense": {"input_shape": MNIST, "dtype": "float32",
                       "layers": [_conv(1, 16, 3), RELU, POOL, _conv(16, 32, 3), RELU, POOL, FLATTEN,
                                  _dense(5 * 5 * 32, 64), RELU, _dense(64, 10)]},
    # LeNet-5-like: 28 -> 28 (same) -> 14 -> 10 -> 5, then dense 120-84-10
    "lenet": {"input_shape": MNIST, "dtype": "float32",
              "layers": [_conv(1, 6, 5, "same"), RELU, POOL, _conv(6, 16, 5), RELU, POOL, FLATTEN,
                         _dense(5 * 5 * 16, 120), RELU, _dense(120, 84), RELU, _dense(84, 10)]},
}


# the network the page trains on a first visit, and `python -m pycnn train` without --preset or --arch
DEFAULT_PRESET = "two-conv-dense"


def seed_model(seed=None, dtype="float32"):
    """The seed post's model: Conv2D 10@3x3 valid -> ReLU -> MaxPool 2x2 -> Flatten -> Dense 10 (preset "seed")."""
    return preset("seed", seed=seed, dtype=dtype)


def preset(name, seed=None, dtype="float32"):
    """The named architecture of PRESETS with fresh weights from seed -> Sequential."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return Sequential.from_config({**PRESETS[name], "dtype": dtype}, seed=seed)
