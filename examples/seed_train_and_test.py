"""The seed post's "Train and Test" snippet, run on pycnn's seed-compatible API.

Only the data import changed: Keras' downloader is replaced by pycnn's loader of the
bundled 10,000-digit subset (run `python build.py` once), or of the standard MNIST IDX
files when you pass their folder:

    python examples/seed_train_and_test.py [MNIST_DIR]
"""
import sys

import numpy as np

import pycnn
from pycnn import datasets

if len(sys.argv) > 1:  # a folder with train-images-idx3-ubyte.gz, ..., t10k-labels-idx1-ubyte.gz
    x_train, y_train = datasets.load_mnist(sys.argv[1], "train")
    x_test, y_test = datasets.load_mnist(sys.argv[1], "test")
else:
    x, y, split = datasets.load_subset()
    x_train, y_train, x_test, y_test = datasets.train_test_split(x, y, split["heldout"], split["seed"])
# the seed passed raw 0-255 bytes, as Keras' loader returns them; so do we
x_train = np.round(x_train * 255).astype(np.uint8)
x_test = np.round(x_test * 255).astype(np.uint8)

model = pycnn.cnn(input_size=(1, 28, 28), kernel_size=3, n_filters=10, output_size=10)
print(model.summary())
model.train(x_train.reshape(-1, 1, 28, 28), np.array(y_train), beta1=0.95, beta2=0.99, batch_size=32,
            num_epochs=2, save_path=False)

y_test_predict = model.predict(x_test.reshape(-1, 1, 28, 28))
print('test data prediction accuracy is %f %%' % (np.mean(y_test_predict == y_test) * 100))
