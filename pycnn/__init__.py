"""pycnn: a small, fast, pure-numpy convolutional network library (CPython and Pyodide)."""
from . import classes, datasets, export, parallel, preprocess, project
from .compat import cnn
from .layers import (LAYERS, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, LeakyReLU, MaxPool2D, ReLU,
                     Sigmoid, Tanh, layer_specs, register)
from .losses import softmax, softmax_cross_entropy
from .model import Sequential
from .optimizers import SGD, Adam, Optimizer
from .presets import PRESETS, preset, seed_model
from .serialize import load_file as load
from .serialize import model_from_bytes as from_bytes
from .training import Trainer, TrainingConfig, TrainingDiverged

__version__ = "0.1.0"


__all__ = [
    "Adam", "AvgPool2D", "BatchNorm", "Conv2D", "Dense", "Dropout", "Flatten", "LAYERS", "Layer", "LeakyReLU",
    "MaxPool2D", "Optimizer", "PRESETS", "ReLU", "SGD", "Sequential", "Sigmoid", "Tanh", "Trainer", "TrainingConfig", "TrainingDiverged", "classes", "cnn", "datasets", "export", "from_bytes",
    "layer_specs", "load", "parallel", "preprocess", "preset", "project", "register", "seed_model", "softmax",
    "softmax_cross_entropy",
]
