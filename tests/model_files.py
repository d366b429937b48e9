"""Crafting model files for the loader's tests (unit, CLI and page): edit a valid file's
members, config or .npy headers the way a corrupt or hostile file would."""
import io
import json
import zipfile

import numpy as np


def members(data):
    """The model file's members, in order: {name: bytes}."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def rezip(files, compression=zipfile.ZIP_DEFLATED):
    """A zip (the .npz layout) holding files {name: bytes}, with valid CRCs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def npy(array, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_with_header(header, data=b""):
    """A version 1.0 .npy member with a hand-written header dict text."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def with_config(data, change):
    """The file with config.json edited by change(config) (which edits in place)."""
    files = members(data)
    config = json.loads(files["config.json"])
    change(config)
    files["config.json"] = json.dumps(config).encode()
    return rezip(files)


def with_member(data, name, content):
    """The file with member name replaced (or added)."""
    files = members(data)
    files[name] = content
    return rezip(files)
