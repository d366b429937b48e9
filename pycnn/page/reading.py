"""What the network reads: a drawing or a held-out digit with the maps of every conv block, the
held-out digits it gets wrong, one cell's arithmetic, the saliency, and the network as code.

Reading a digit makes it the digit inspected last (CurrentModel.inspected): what the arithmetic,
the saliency, a tried step and "It's a ..." are about.
"""
import numpy as np

from .. import codegen, explain, preprocess
from ..checks import number
from ..layers import Conv2D, conv_block
from ..losses import softmax
from .current import CLASSES
from .protocol import request


class Reader:
    """Answers about the current model's reading of digits (none of them changes the model)."""

    def __init__(self, session):
        self.session = session

    @request(during_run="answer")
    def predict(self, data, width, height):
        """data: width*height uint8 ink levels (0 = paper), row by row -> the inspection (inspect), or
        {"empty": True} when nothing is drawn."""
        x = drawing_image(data, width, height, "predict")
        if x is None:
            return {"empty": True}
        return self.inspect(x)

    @request(during_run="answer")
    def inspect_heldout(self, index):
        """Held-out digit `index` -> its inspection plus its "label" and "index"."""
        y = self.session.data.y_heldout
        index = number("index", index, 0, len(y) - 1, integer=True)
        return {**self.inspect(self.session.data.x_heldout[index]), "label": int(y[index]), "index": index}

    @request(during_run="answer")
    def next_heldout(self, label=None, after=-1):
        """The first held-out digit after index `after` (of digit `label`, when given; wrapping round) -> its
        inspection: a way to ask the network about a digit without drawing it."""
        after = number("after", after, -1, integer=True)
        y = self.session.data.y_heldout
        if label is not None:
            label = number("label", label, 0, CLASSES - 1, integer=True)
        candidates = np.flatnonzero(y == label) if label is not None else np.arange(len(y))
        later = candidates[candidates > after]
        return self.inspect_heldout(int(later[0] if len(later) else candidates[0]))

    def inspect(self, x):
        """x: (1, 28, 28) -> {"probabilities", "prediction", "names" (of the classes), "input" (28, 28), "blocks":
        the maps of every conv block (conv_blocks), "saliency": of the class read}, read by the model that reads
        drawings now (the digits', or the open project's); x becomes the digit inspected last. A project not
        trained yet reads nothing: {"untrained": True, "names", "input"}."""
        model = self.session.projects.reading_model()
        if model is None:
            self.session.current.inspected = None
            return {"untrained": True, "names": self.session.projects.opened().names,
                    "input": np.asarray(x, np.float32)[0]}
        batch = np.asarray(x, dtype=model.dtype)[None]
        outputs = model.activations(batch)
        probs = softmax(outputs[-1])[0]
        self.session.current.inspected = batch[0]
        return {
            "probabilities": probs,
            "prediction": int(probs.argmax()),
            "names": model.names(),
            "input": batch[0, 0],
            "blocks": conv_blocks(model.layers, [out[0] for out in outputs]),
            "saliency": explain.saliency(model, batch[0], int(probs.argmax())),
        }

    @request(during_run="answer")
    def heldout_cell(self, label, predicted, max_digits=40):
        """The held-out digits of one cell of the confusion matrix, true `label` read as `predicted`, most
        confident first -> {"label", "predicted", "count", "digits": [{index, confidence}], "images" (k, 28, 28)}."""
        label = number("label", label, 0, CLASSES - 1, integer=True)
        predicted = number("predicted", predicted, 0, CLASSES - 1, integer=True)
        max_digits = number("max_digits", max_digits, 0, integer=True)
        data = self.session.data
        probs = self.session.current.model.predict_proba(data.x_heldout)
        members = np.flatnonzero((data.y_heldout == label) & (probs.argmax(axis=1) == predicted))
        members = members[np.argsort(-probs[members, predicted], kind="stable")]
        shown = members[:max_digits]
        return {"label": label, "predicted": predicted, "count": len(members),
                "digits": [{"index": int(i), "confidence": float(probs[i, predicted])} for i in shown],
                "images": data.x_heldout[shown, 0]}

    @request(during_run="answer")
    def analyse(self, max_mistakes=40):
        """The confusion matrix on the held-out digits (rows: true digit, columns: read as) and the most
        confident mistakes -> {"count", "correct", "wrong", "confusion", "mistakes", "mistake_images"}."""
        max_mistakes = number("max_mistakes", max_mistakes, 0, integer=True)
        data = self.session.data
        probs = self.session.current.model.predict_proba(data.x_heldout)
        pred, y = probs.argmax(axis=1), data.y_heldout
        confusion = np.zeros((CLASSES, CLASSES), dtype=np.int64)
        np.add.at(confusion, (y, pred), 1)
        wrong = np.flatnonzero(pred != y)
        order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:max_mistakes]
        return {
            "count": len(y), "correct": int(np.count_nonzero(pred == y)), "wrong": len(wrong),
            "confusion": confusion.tolist(),
            "mistakes": [{"index": int(i), "label": int(y[i]), "predicted": int(pred[i]),
                          "confidence": float(probs[i, pred[i]])} for i in order],
            "mistake_images": data.x_heldout[order, 0],
        }

    @request(during_run="answer")
    def arithmetic(self, layer, channel, row, col, grid="activated"):
        """One cell of conv layer `layer`'s map `channel` (grid "activated" or "pooled") for the digit inspected
        last -> explain.conv_arithmetic's reply (patch, weights, products, sum, bias, conv, relu, pooled...)."""
        model = self.session.projects.reading_model()
        return explain.conv_arithmetic(model, self.session.current.digit(), layer, channel, row, col, grid)

    @request(during_run="answer")
    def saliency(self, digit):
        """d logit[digit] / d pixel for the digit inspected last -> {"digit", "logit", "probability", "gradient" (28, 28)}."""
        model = self.session.projects.reading_model()
        return explain.saliency(model, self.session.current.digit(), digit)

    @request(during_run="answer")
    def python_code(self, config):
        """The pycnn Python of the current network and the training settings `config` -> {"code", "seed": the
        seed its weights were drawn from, or None (a loaded model: the code uses seed 0)}."""
        current = self.session.current
        return {"code": codegen.python_code(current.model.get_config(), config, **self._code_args()),
                "seed": current.seed}

    @request(during_run="answer")
    def export_script(self, config):
        """python_code as a script that trains the same way in CPython -> {"script", "file_name", "seed"}."""
        current = self.session.current
        return {"script": codegen.export_script(current.model.get_config(), config, **self._code_args()),
                "file_name": codegen.SCRIPT_NAME, "seed": current.seed}

    def _code_args(self):
        split = self.session.data.split
        seed = self.session.current.seed
        return {"seed": 0 if seed is None else seed, "heldout": split["heldout"], "split_seed": split["seed"]}


def drawing_image(data, width, height, request="predict"):
    """A drawing as the page sends it (width*height uint8 ink levels, 0 = paper, row by row) -> the (1, 28, 28)
    image the network reads (preprocess.to_mnist), or None when nothing is drawn."""
    width, height = number("width", width, 1, 4096, integer=True), number("height", height, 1, 4096, integer=True)
    if len(data) != width * height:
        raise ValueError(f"{request} needs width*height = {width * height} pixels, got {len(data)}")
    return preprocess.to_mnist(np.frombuffer(data, dtype=np.uint8).reshape(height, width))


BLOCK_NAMES = {"Conv2D": "conv", "BatchNorm": "batch norm", "ReLU": "ReLU", "LeakyReLU": "leaky ReLU", "Tanh": "tanh",
               "Sigmoid": "sigmoid"}


def conv_blocks(layers, outputs):
    """Feature maps of each conv block: [{"layer": i, "activated": (F, H, W), "pooled": (F, h, w) or None,
    "what": what "activated" is after, "conv + batch norm + ReLU"}].

    A block is a Conv2D, the BatchNorm right after it if any, and the activation and pooling layers
    after that (layers.conv_block); "activated" is the conv output after the BatchNorm and the
    activation (the conv output itself without them) and "pooled" the block's output after its
    pool. outputs: each layer's output for one image.
    """
    blocks = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, Conv2D):
            continue
        block = conv_block(layers, i)
        activated = outputs[i if block.norm is None else block.norm]
        if block.activation is not None:
            activated = layers[block.activation].forward(activated, training=False)
        parts = [i, block.norm, block.activation]
        blocks.append({
            "layer": i,
            "activated": activated,
            "pooled": outputs[block.end - 1] if block.pools else None,
            "what": " + ".join(BLOCK_NAMES[type(layers[j]).__name__] for j in parts if j is not None),
        })
    return blocks
