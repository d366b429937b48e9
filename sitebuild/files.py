"""What every build step needs: the repository root, the build's error, sha256 checks, atomic
writes and the cache folder of downloaded and converted parts."""
import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def write_atomic(path, data):
    """Write bytes so a crash never leaves a half-written file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


def json_bytes(obj):
    """Stable pretty JSON bytes with a trailing newline."""
    return (json.dumps(obj, indent=2) + "\n").encode()


def read_json(path):
    """Parsed JSON at path, or None when missing or invalid."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def warn(msg):
    """Print a non-fatal problem to stderr."""
    print(f"build.py: warning: {msg}", file=sys.stderr)
