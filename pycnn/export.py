"""Export a model to ONNX and to TensorFlow.js, with numpy alone (it runs in Pyodide too).

    to_onnx(model, class_names=None) -> bytes        one .onnx file (opset 13)
    to_tfjs(model, class_names=None) -> {"model.json": bytes, "model.weights.bin": bytes}

Both compute what `model.predict_proba` computes: the class probabilities (a softmax over the
last layer's scores) of images scaled as predict_proba takes them, float32 in [0, 1] for the
MNIST models (ink 1, paper 0: the grey levels / 255, as pycnn.datasets.scale gives them).

Every layer kind of pycnn.layers is exported as inference computes it: BatchNorm with its running
statistics (ONNX BatchNormalization, Keras BatchNormalization), Dropout as the identity (no ONNX
node; a Keras Dropout layer, inactive in predict), AvgPool2D, LeakyReLU, Tanh and Sigmoid as the
runtimes' own ops.

ONNX: input "input" float32 (N, C, H, W), NCHW like pycnn, the batch size free ("N"); output
"probabilities" (N, classes). The class names are the model's metadata_props "class_names"
(a JSON list). Written by hand in protobuf's wire format (a varint and length-delimited
encoder, the few ONNX messages a sequential network needs): no onnx package is needed.

TensorFlow.js: the layers format, read by `tf.loadLayersModel`: model.json (a Keras-style
Sequential in "modelTopology", "weightsManifest" naming the weights file) and the weights as
little-endian float32. TensorFlow.js layers are NHWC, so the input is (N, H, W, C), (N, 28, 28, 1)
for MNIST, same scaling; conv kernels are stored as (kh, kw, C, F) and the rows of the first
Dense layer after a Flatten are reordered, so flattening an NHWC map feeds each weight the value
pycnn's NCHW flatten fed it. The class names are in model.json's "userDefinedMetadata"
(`model.getUserDefinedMetadata()`).
"""
import json
import struct

import numpy as np

from . import npzfile
from .layers import AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Tanh

ONNX_OPSET = 13
ONNX_IR_VERSION = 7      # the IR version of opset 13 (ONNX 1.8): every runtime of the last years reads it
INPUT_NAME, OUTPUT_NAME = "input", "probabilities"
TFJS_WEIGHTS = "model.weights.bin"
EXPORTABLE = (Conv2D, ReLU, MaxPool2D, Flatten, Dense, BatchNorm, Dropout, AvgPool2D, LeakyReLU, Tanh, Sigmoid)
ONNX_ACTIVATIONS = {ReLU: "Relu", Tanh: "Tanh", Sigmoid: "Sigmoid"}  # ops without attributes
INPUT_NOTE = ("float32 images scaled as pycnn's predict_proba takes them: grey levels / 255 in [0, 1], "
              "ink 1, paper 0 (MNIST's convention)")


def _checked(model, class_names):
    """(class names as a list of str, each layer's input shape) after checking the model can be exported."""
    if model.input_shape is None:
        raise ValueError("the model has no input_shape: pass input_shape=(C, H, W) to Sequential")
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, EXPORTABLE):
            raise ValueError(f"layer {i} ({type(layer).__name__}) cannot be exported: export knows "
                             f"{', '.join(cls.__name__ for cls in EXPORTABLE)}")
    shapes = [model.input_shape] + model.output_shapes()
    classes = model.n_classes()
    if shapes[-1] != (classes,):
        raise ValueError(f"the model must end in one score per class, shape ({classes},), got {shapes[-1]}")
    if class_names is None:
        class_names = model.names()
    if isinstance(class_names, str) or not all(isinstance(name, str) for name in class_names):
        raise ValueError(f"class_names must be a list of strings, got {class_names!r}"[:200])
    class_names = list(class_names)
    if len(class_names) != classes:
        raise ValueError(f"class_names must name the model's {classes} classes, got {len(class_names)} names")
    return class_names, shapes[:-1]


def _version():
    from . import __version__  # here: pycnn/__init__ imports this module before it sets __version__
    return __version__


# ---- protobuf's wire format ------------------------------------------------------------------
def _varint(value):
    """An unsigned varint; negative int64 values are their 64-bit two's complement (10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field, value):
    """An int field (wire type 0)."""
    return _varint(field << 3) + _varint(value)


def _float(field, value):
    """A float field (wire type 5: little-endian float32)."""
    return _varint(field << 3 | 5) + struct.pack("<f", value)


def _bytes(field, data):
    """A length-delimited field (wire type 2): bytes, a string or an embedded message."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _varint(field << 3 | 2) + _varint(len(data)) + data


# ---- the ONNX messages (field numbers from onnx.proto) -------------------------------------
FLOAT, ATTR_FLOAT, ATTR_INT, ATTR_INTS = 1, 1, 2, 7   # TensorProto.FLOAT; AttributeProto.FLOAT, .INT, .INTS


def _attribute(name, value):
    """AttributeProto: a float, an int or a list of ints."""
    if isinstance(value, float):
        return _bytes(1, name) + _int(20, ATTR_FLOAT) + _float(2, value)
    if isinstance(value, int):
        return _bytes(1, name) + _int(20, ATTR_INT) + _int(3, value)
    return _bytes(1, name) + _int(20, ATTR_INTS) + b"".join(_int(8, v) for v in value)


def _node(op_type, inputs, output, name, **attributes):
    """NodeProto."""
    return (b"".join(_bytes(1, x) for x in inputs) + _bytes(2, output) + _bytes(3, name) + _bytes(4, op_type)
            + b"".join(_bytes(5, _attribute(key, value)) for key, value in attributes.items()))


def _tensor(name, array):
    """TensorProto: a float32 initializer, its values as raw little-endian bytes."""
    array = np.ascontiguousarray(array, dtype="<f4")
    return (b"".join(_int(1, d) for d in array.shape) + _int(2, FLOAT) + _bytes(8, name)
            + _bytes(9, array.tobytes()))


def _value_info(name, shape):
    """ValueInfoProto of a float32 tensor; a str in shape is a named free dimension."""
    dims = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in shape)
    tensor_type = _int(1, FLOAT) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _entry(key, value):
    """StringStringEntryProto."""
    return _bytes(1, key) + _bytes(2, value)


def to_onnx(model, class_names=None):
    """model -> the bytes of an ONNX model (opset 13) computing model.predict_proba.

    Input "input": float32 (N, C, H, W) scaled as predict_proba takes it (MNIST: [0, 1], ink 1);
    output "probabilities": (N, classes). class_names (default the model's names(): its class_names, or
    "0", "1", ...) go to the metadata_props entry "class_names" as a JSON list. ValueError for a layer ONNX export does not know.
    """
    class_names, in_shapes = _checked(model, class_names)
    nodes, weights = [], []
    x = INPUT_NAME
    for i, (layer, shape) in enumerate(zip(model.layers, in_shapes)):
        out = f"{i}.{type(layer).__name__}"
        if isinstance(layer, Conv2D):
            (top, bottom), (left, right) = layer.pads(*shape[1:])
            weights += [_tensor(f"{i}.W", layer.params["W"]), _tensor(f"{i}.b", layer.params["b"])]
            nodes.append(_node("Conv", [x, f"{i}.W", f"{i}.b"], out, f"layer{i}",
                               kernel_shape=[layer.kernel_size] * 2, strides=[layer.stride] * 2,
                               pads=[top, left, bottom, right]))
        elif type(layer) in ONNX_ACTIVATIONS:
            nodes.append(_node(ONNX_ACTIVATIONS[type(layer)], [x], out, f"layer{i}"))
        elif isinstance(layer, LeakyReLU):
            nodes.append(_node("LeakyRelu", [x], out, f"layer{i}", alpha=float(layer.negative_slope)))
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            op = "MaxPool" if isinstance(layer, MaxPool2D) else "AveragePool"  # no padding: every window is full
            nodes.append(_node(op, [x], out, f"layer{i}", kernel_shape=[layer.pool_size] * 2,
                               strides=[layer.stride] * 2))
        elif isinstance(layer, BatchNorm):  # inference: the running statistics; (N, C, H, W) or (N, C)
            arrays = [layer.params["gamma"], layer.params["beta"], layer.state["running_mean"],
                      layer.state["running_var"]]
            names = [f"{i}.{name}" for name in ("gamma", "beta", "running_mean", "running_var")]
            weights += [_tensor(name, array) for name, array in zip(names, arrays)]
            nodes.append(_node("BatchNormalization", [x, *names], out, f"layer{i}", epsilon=float(layer.eps)))
        elif isinstance(layer, Dropout):
            continue  # the identity in inference: no node, the next layer reads x
        elif isinstance(layer, Flatten):
            # NCHW -> (N, C*H*W) in C order: the same order as pycnn's reshape
            nodes.append(_node("Flatten", [x], out, f"layer{i}", axis=1))
        else:  # Dense: x @ W + b, W (in, out) as Gemm's B
            weights += [_tensor(f"{i}.W", layer.params["W"]), _tensor(f"{i}.b", layer.params["b"])]
            nodes.append(_node("Gemm", [x, f"{i}.W", f"{i}.b"], out, f"layer{i}"))
        x = out
    nodes.append(_node("Softmax", [x], OUTPUT_NAME, "softmax", axis=1))
    graph = (b"".join(_bytes(1, node) for node in nodes) + _bytes(2, "pycnn")
             + b"".join(_bytes(5, w) for w in weights)
             + _bytes(10, f"pycnn Sequential; input: {INPUT_NOTE}")
             + _bytes(11, _value_info(INPUT_NAME, ["N", *model.input_shape]))
             + _bytes(12, _value_info(OUTPUT_NAME, ["N", len(class_names)])))
    metadata = {"class_names": json.dumps(class_names), "input": f"(N, {', '.join(map(str, model.input_shape))}) "
                f"NCHW {INPUT_NOTE}", "pycnn_config": json.dumps(model.get_config())}
    return (_int(1, ONNX_IR_VERSION) + _bytes(2, "pycnn") + _bytes(3, _version())
            + _bytes(6, "class probabilities of a pycnn model") + _bytes(7, graph)
            + _bytes(8, _bytes(1, "") + _int(2, ONNX_OPSET))
            + b"".join(_bytes(14, _entry(key, value)) for key, value in metadata.items()))


# ---- TensorFlow.js ---------------------------------------------------------------------------
def _keras(class_name, name, **config):
    return {"class_name": class_name, "config": {"name": name, "trainable": True, "dtype": "float32", **config}}


def _weighted(**config):
    return {"activation": "linear", "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform",
            "config": {"seed": None}}, "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None, **config}


def to_tfjs(model, class_names=None, weights_name=TFJS_WEIGHTS):
    """model -> {"model.json": bytes, weights_name: bytes}: TensorFlow.js' layers format, computing
    model.predict_proba on NHWC input (N, H, W, C) float32, scaled as predict_proba takes it.

    Write both files into one folder and load model.json with tf.loadLayersModel. class_names
    (default the model's names()) are model.json's userDefinedMetadata {"class_names"}.
    """
    class_names, in_shapes = _checked(model, class_names)
    if not isinstance(weights_name, str) or not weights_name or "/" in weights_name:
        raise ValueError(f"weights_name must be a file name, got {weights_name!r}")
    layers, specs, data = [], [], []
    counts = {}
    order = None  # after a Flatten of a (C, H, W) map: the pycnn flat index of each NHWC flat index

    def name(base):
        counts[base] = counts.get(base, 0) + 1
        return base if counts[base] == 1 else f"{base}_{counts[base] - 1}"

    def weight(layer_name, kind, array):
        array = np.ascontiguousarray(array, dtype="<f4")
        specs.append({"name": f"{layer_name}/{kind}", "shape": list(array.shape), "dtype": "float32"})
        data.append(array.tobytes())

    for layer, shape in zip(model.layers, in_shapes):
        if isinstance(layer, Conv2D):
            (top, bottom), (left, right) = layer.pads(*shape[1:])
            padding = "valid"
            if layer.padding == "same":
                padding = "same"  # TensorFlow's "same" pads as pycnn's: the odd pixel after
            elif top or bottom or left or right:
                layers.append(_keras("ZeroPadding2D", name("zero_padding2d"), padding=[[top, bottom], [left, right]],
                                     data_format="channels_last"))
            conv = name("conv2d")
            layers.append(_keras("Conv2D", conv, **_weighted(
                filters=layer.filters, kernel_size=[layer.kernel_size] * 2, strides=[layer.stride] * 2,
                padding=padding, data_format="channels_last", dilation_rate=[1, 1])))
            weight(conv, "kernel", layer.params["W"].transpose(2, 3, 1, 0))  # (F, C, kh, kw) -> (kh, kw, C, F)
            weight(conv, "bias", layer.params["b"])
        elif isinstance(layer, (ReLU, Tanh, Sigmoid)):
            layers.append(_keras("Activation", name("activation"), activation=type(layer).__name__.lower()))
        elif isinstance(layer, LeakyReLU):
            layers.append(_keras("LeakyReLU", name("leaky_re_lu"), alpha=layer.negative_slope))
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            kind, base = ("MaxPooling2D", "max_pooling2d") if isinstance(layer, MaxPool2D) else \
                ("AveragePooling2D", "average_pooling2d")
            layers.append(_keras(kind, name(base), pool_size=[layer.pool_size] * 2, strides=[layer.stride] * 2,
                                 padding="valid", data_format="channels_last"))
        elif isinstance(layer, BatchNorm):
            norm = name("batch_normalization")
            # Keras' momentum is the share the running statistics keep (training only: it does not change predictions)
            layers.append(_keras("BatchNormalization", norm, axis=-1, momentum=1 - layer.momentum, epsilon=layer.eps,
                                 center=True, scale=True))
            for kind, array in (("gamma", layer.params["gamma"]), ("beta", layer.params["beta"]),
                                ("moving_mean", layer.state["running_mean"]),
                                ("moving_variance", layer.state["running_var"])):
                # after a Flatten the features are in NHWC order: each takes its pycnn feature's numbers
                weight(norm, kind, array if order is None or len(shape) != 1 else array[order])
        elif isinstance(layer, Dropout):
            layers.append(_keras("Dropout", name("dropout"), rate=layer.rate))
        elif isinstance(layer, Flatten):
            if len(shape) == 3:
                order = np.arange(int(np.prod(shape))).reshape(shape).transpose(1, 2, 0).ravel()
            layers.append(_keras("Flatten", name("flatten"), data_format="channels_last"))
        else:
            dense = name("dense")
            layers.append(_keras("Dense", dense, **_weighted(units=layer.out_features)))
            W = layer.params["W"]
            weight(dense, "kernel", W if order is None else W[order])
            weight(dense, "bias", layer.params["b"])
            order = None
    layers.append(_keras("Activation", name("softmax"), activation="softmax"))
    c, h, w = model.input_shape
    layers[0]["config"]["batch_input_shape"] = [None, h, w, c]
    manifest = {
        "format": "layers-model",
        "generatedBy": f"pycnn {_version()}",
        "convertedBy": None,
        "modelTopology": {"class_name": "Sequential", "config": {"name": "pycnn", "layers": layers}},
        "weightsManifest": [{"paths": [weights_name], "weights": specs}],
        "userDefinedMetadata": {"class_names": class_names, "input": f"(N, {h}, {w}, {c}) NHWC {INPUT_NOTE}",
                                "pycnn_config": model.get_config()},
    }
    return {"model.json": json.dumps(manifest, indent=1).encode(), weights_name: b"".join(data)}


def tfjs_zip(model, class_names=None):
    """to_tfjs's two files in one zip (what the page downloads) -> bytes."""
    return npzfile.archive(to_tfjs(model, class_names))


FORMATS = {"onnx": "ONNX", "tfjs": "TensorFlow.js"}


def save(model, format, path, class_names=None):
    """Write model for another runtime -> the paths written.

    format "onnx": the file `path`; "tfjs": model.json and model.weights.bin in the folder `path`
    (made if missing; its parent must exist). ValueError naming what does not fit.
    """
    from pathlib import Path

    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    path = Path(path)
    folder = path if format == "tfjs" else path.parent
    if format == "tfjs" and path.exists() and not path.is_dir():
        raise ValueError(f"the TensorFlow.js export is a folder (model.json and {TFJS_WEIGHTS}); {path} is a file")
    if format == "onnx" and path.is_dir():
        raise ValueError(f"the ONNX export is one file; {path} is a folder")
    parent = folder.parent if format == "tfjs" and not folder.is_dir() else folder  # tfjs makes its folder
    if not parent.is_dir():
        raise ValueError(f"cannot write the {FORMATS[format]} export to {path}: {parent} is not a folder")
    files = {path.name: to_onnx(model, class_names)} if format == "onnx" else to_tfjs(model, class_names)
    folder.mkdir(exist_ok=True)
    written = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        written.append(folder / name)
    return written
