"""pycnn.datasets: IDX files (plain and gzipped, bytes and paths), MNIST folders, the bundled
subset, scaling, and the stratified seeded split."""
import gzip
import json

import numpy as np
import pytest

from pycnn import datasets


def idx_bytes(array):
    """Encode a uint8 array in the IDX format: 0, 0, 0x08, ndim, big-endian dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


@pytest.fixture
def digits(rng):
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    return images, labels


def write_mnist(folder, kind, images, labels, gz):
    prefix = "train" if kind == "train" else "t10k"
    for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


# ---- read_idx --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 28, 28), (7,), (2, 3, 4, 5), (0, 28, 28)])
def test_read_idx_reads_plain_and_gzipped_bytes(shape, rng):
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    for data in (idx_bytes(array), gzip.compress(idx_bytes(array))):
        out = datasets.read_idx(data)
        assert out.dtype == np.uint8 and out.shape == shape
        np.testing.assert_array_equal(out, array)


def test_read_idx_reads_plain_and_gzipped_paths(digits, tmp_path):
    images, _ = digits
    plain, packed = tmp_path / "images-idx3-ubyte", tmp_path / "images-idx3-ubyte.gz"
    plain.write_bytes(idx_bytes(images))
    packed.write_bytes(gzip.compress(idx_bytes(images)))
    for source in (plain, packed, str(plain), str(packed)):
        np.testing.assert_array_equal(datasets.read_idx(source), images)


def test_read_idx_accepts_bytearray_and_memoryview(digits):
    data = idx_bytes(digits[0])
    for source in (bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(datasets.read_idx(source), digits[0])


@pytest.mark.parametrize("data, shown", [
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00", "00000d01"),   # floats, not unsigned bytes
    (b"\x00\x00\x08\x00", "00000800"),                                    # zero dimensions
    (b"\x00\x00\x08\x05" + bytes(20), "00000805"),                        # five dimensions
    (b"\x01\x00\x08\x01\x00\x00\x00\x00", "01000801"),
    (b"hello world", "68656c6c"),
    (b"\x00\x00", "0000"),
    (b"", ""),
])
def test_bad_magic_number_is_refused_naming_the_file(data, shown, tmp_path):
    with pytest.raises(ValueError, match=rf"^IDX data: not an IDX file of unsigned bytes \(bad magic number {shown}\)"):
        datasets.read_idx(data)
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"^{path}: not an IDX file"):
        datasets.read_idx(path)


def test_truncated_header_is_refused(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00")
    with pytest.raises(ValueError, match=rf"^{path}: truncated IDX header"):
        datasets.read_idx(path)


@pytest.mark.parametrize("change, held", [
    (lambda data: data[:-100], "3,820"),       # truncated data
    (lambda data: data + b"\x00", "3,921"),    # trailing bytes
])
def test_header_and_data_size_mismatch_is_refused_naming_the_file(digits, tmp_path, change, held):
    data = change(idx_bytes(digits[0]))
    message = rf"header says \(5, 28, 28\) \(3,920 bytes\) but the file holds {held} bytes"
    for gz in (False, True):
        path = tmp_path / ("images.gz" if gz else "images")
        path.write_bytes(gzip.compress(data) if gz else data)
        with pytest.raises(ValueError, match=rf"^{path}: {message}"):
            datasets.read_idx(path)
    with pytest.raises(ValueError, match=rf"^IDX data: {message}"):
        datasets.read_idx(data)


def test_header_claiming_a_huge_array_is_refused_without_allocating():
    data = bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28000).to_bytes(4, "big") * 2 + bytes(100)
    with pytest.raises(ValueError, match=r"header says \(60000, 28000, 28000\)"):
        datasets.read_idx(data)


def test_truncated_and_corrupt_gzip_files_are_refused_naming_the_file(digits, tmp_path):
    packed = gzip.compress(idx_bytes(digits[0]))
    path = tmp_path / "images.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=rf"^{path}: "):
        datasets.read_idx(path)
    corrupt = packed[:10] + bytes(b ^ 0xFF for b in packed[10:40]) + packed[40:]
    path.write_bytes(corrupt)
    with pytest.raises(ValueError, match=rf"^{path}: corrupt gzip data"):
        datasets.read_idx(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match=rf"no such data file: {tmp_path / 'nope'}"):
        datasets.read_idx(tmp_path / "nope")
    with pytest.raises(ValueError, match="no such data file"):
        datasets.read_idx(tmp_path)  # a directory is not a data file


# ---- images, labels, MNIST folders -----------------------------------------------------------
def test_scale_gives_float32_channel_first_images_in_unit_range(digits):
    x = datasets.scale(digits[0])
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], digits[0] / 255.0, rtol=1e-6)
    assert datasets.scale(np.array([[[0, 255]]], np.uint8)).tolist() == [[[[0.0, 1.0]]]]


def test_read_idx_pixels_keeps_the_stored_bytes_and_images_scales_them(digits, tmp_path):
    images, labels = digits
    (tmp_path / "images").write_bytes(idx_bytes(images))
    pixels = datasets.read_idx_pixels(tmp_path / "images")
    assert pixels.dtype == np.uint8 and pixels.shape == (5, 28, 28)
    np.testing.assert_array_equal(pixels, images)
    np.testing.assert_array_equal(datasets.read_idx_images(tmp_path / "images"), datasets.scale(pixels))
    (tmp_path / "labels").write_bytes(idx_bytes(labels))
    with pytest.raises(ValueError, match=r"labels: expected an IDX file of images \(3 dimensions\)"):
        datasets.read_idx_pixels(tmp_path / "labels")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("kind", ["train", "test"])
def test_load_mnist_reads_the_standard_file_names(kind, gz, digits, tmp_path):
    images, labels = digits
    write_mnist(tmp_path, kind, images, labels, gz)
    x, y = datasets.load_mnist(tmp_path, kind)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    assert y.dtype == np.int64 and y.tolist() == [3, 1, 4, 1, 5]


def test_load_mnist_picks_train_or_test_files(digits, tmp_path):
    images, labels = digits
    write_mnist(tmp_path, "train", images, labels, gz=True)
    write_mnist(tmp_path, "test", images[:2], labels[:2], gz=False)
    assert len(datasets.load_mnist(tmp_path, "train")[0]) == 5
    assert len(datasets.load_mnist(tmp_path, "test")[0]) == 2
    assert len(datasets.load_mnist(str(tmp_path))[0]) == 5  # "train" is the default


def test_load_mnist_reports_missing_files_folders_and_kinds(digits, tmp_path):
    with pytest.raises(ValueError, match=f"no train-images-idx3-ubyte\\[.gz\\] in {tmp_path}"):
        datasets.load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="no such directory"):
        datasets.load_mnist(tmp_path / "missing", "train")
    with pytest.raises(ValueError, match="kind must be 'train' or 'test', got 'val'"):
        datasets.load_mnist(tmp_path, "val")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(digits[0]))
    with pytest.raises(ValueError, match="no train-labels-idx1-ubyte"):
        datasets.load_mnist(tmp_path, "train")


def test_load_mnist_refuses_mismatched_counts_bad_labels_and_swapped_files(digits, tmp_path):
    images, labels = digits
    write_mnist(tmp_path, "train", images, labels[:4], gz=False)
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        datasets.load_mnist(tmp_path, "train")
    write_mnist(tmp_path, "train", images, np.array([1, 2, 3, 10, 0]), gz=False)
    with pytest.raises(ValueError, match="labels must be digits 0..9, found 10"):
        datasets.load_mnist(tmp_path, "train")
    write_mnist(tmp_path, "train", labels, images, gz=False)  # labels where images belong
    with pytest.raises(ValueError, match=r"expected an IDX file of images \(3 dimensions\), got shape \(5,\)"):
        datasets.load_mnist(tmp_path, "train")


# ---- the bundled subset ----------------------------------------------------------------------
def test_load_subset_gives_the_10000_bundled_digits(subset_dir):
    x, y, split = datasets.load_subset(subset_dir)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert 0 <= x.min() and x.max() == 1.0
    assert np.bincount(y).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    manifest = json.loads((subset_dir / "manifest.json").read_text())
    assert split == manifest["split"]
    # a digit looks like a digit: ink in the middle, empty border
    assert x[:, 0, 10:18, 10:18].mean() > 5 * x[:, 0, :2, :].mean()


def test_missing_subset_says_how_to_get_it(tmp_path):
    with pytest.raises(ValueError, match=r"run `python build.py`"):
        datasets.load_subset(tmp_path)


# ---- train_test_split ------------------------------------------------------------------------
@pytest.mark.parametrize("test_size", [2000, 1500, 333, 7, 1])
def test_split_is_stratified_within_one_sample_per_class(subset, test_size):
    _, y = subset
    ids = np.arange(len(y))
    _, _, _, y_test = datasets.train_test_split(ids, y, test_size=test_size, seed=0)
    assert len(y_test) == test_size
    exact = np.bincount(y, minlength=10) * test_size / len(y)
    got = np.bincount(y_test, minlength=10)
    assert np.all(np.abs(got - exact) <= 1), (got, exact)


def test_split_is_disjoint_and_complete_and_keeps_pairs_together(subset):
    x, y = subset
    ids = np.arange(len(y))
    id_train, y_train, id_test, y_test = datasets.train_test_split(ids, y, test_size=2000, seed=0)
    assert len(id_train) == 8000 and len(id_test) == 2000
    assert not set(id_train) & set(id_test)
    np.testing.assert_array_equal(np.sort(np.concatenate([id_train, id_test])), ids)
    np.testing.assert_array_equal(y[id_train], y_train)
    np.testing.assert_array_equal(y[id_test], y_test)
    x_train, _, x_test, _ = datasets.train_test_split(x, y, test_size=2000, seed=0)
    np.testing.assert_array_equal(x_train, x[id_train])
    np.testing.assert_array_equal(x_test, x[id_test])


def test_split_training_part_is_shuffled(subset):
    _, y = subset  # the subset is sorted by class
    _, y_train, _, _ = datasets.train_test_split(np.arange(len(y)), y, test_size=2000, seed=0)
    assert np.mean(y_train[1:] != y_train[:-1]) > 0.8


def test_split_is_seeded(subset):
    _, y = subset
    ids = np.arange(len(y))
    a = datasets.train_test_split(ids, y, test_size=2000, seed=0)
    b = datasets.train_test_split(ids, y, test_size=2000, seed=0)
    c = datasets.train_test_split(ids, y, test_size=2000, seed=1)
    for part_a, part_b in zip(a, b):
        np.testing.assert_array_equal(part_a, part_b)
    assert set(a[2]) != set(c[2])
    assert len(set(a[2]) & set(c[2])) < 1000  # not merely a reordering: a different draw


@pytest.mark.parametrize("test_size", [0, -1, 10, 11, 2.5, True, "3"])
def test_split_refuses_bad_test_sizes(test_size):
    with pytest.raises(ValueError, match=r"test_size must be an int from 1 to 9, got"):
        datasets.train_test_split(np.arange(10), np.arange(10) % 2, test_size=test_size)


def test_split_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="10 samples but 9 labels"):
        datasets.train_test_split(np.arange(10), np.zeros(9, int), test_size=2)
