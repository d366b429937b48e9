"""The seed post's public shape, `cnn(...).train(...)` / `.predict(...)`, over Sequential."""
import numpy as np

from .layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from .model import Sequential
from .optimizers import Adam


class cnn:  # noqa: N801 - the seed's name
    """One conv layer ('valid'), ReLU, 2x2 max-pool, flatten, dense: the seed's model, done right.

    input_size is (channels, height, width). Images may be raw uint8 0-255, as the seed
    passes them, or floats in [0, 1]; anything integer or above 1 is divided by 255.
    """

    def __init__(self, input_size=(1, 28, 28), kernel_size=3, n_filters=10, output_size=10, stride=1, seed=None):
        c, h, w = input_size
        conv = Conv2D(c, n_filters, kernel_size, stride=stride)
        _, out_h, out_w = conv.output_shape((c, h, w))
        layers = [conv, ReLU(), MaxPool2D(2), Flatten(), Dense(n_filters * (out_h // 2) * (out_w // 2), output_size)]
        self.model = Sequential(layers, seed=seed, input_shape=(c, h, w))
        self.input_size = tuple(input_size)

    def _images(self, x):
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.integer) or (x.size and x.max() > 1):
            x = x / 255.0
        return x.reshape(len(x), *self.input_size)

    def train(self, x, y, lr=0.005, beta1=0.95, beta2=0.99, batch_size=32, num_epochs=2, save_path=None,
              verbose=True):
        """Adam training as in the seed (its defaults) -> the per-batch costs."""
        def report(progress):
            for result in progress["epoch_results"]:
                print(f"epoch {result['epoch']}/{num_epochs}: cost {result['loss']:.4f}, "
                      f"train accuracy {result['accuracy']:.2%}")

        history = self.model.fit(self._images(x), np.asarray(y).astype(np.int64), epochs=num_epochs,
                                 batch_size=batch_size, optimizer=Adam(lr, beta1, beta2),
                                 callback=report if verbose else None)
        if save_path:
            self.model.save(save_path)
        return history["batch_loss"]

    def predict(self, x):
        """Images -> predicted labels (N,)."""
        return self.model.predict(self._images(x))

    def summary(self):
        return self.model.summary()
