"""Safe reading and reproducible writing of the project's files: zips in numpy's .npz layout.

A model file (serialize.py), a digits file (yourdigits.py) and a project file (project.py) are
each a zip of a JSON header and .npy arrays. Reading never unpickles and never trusts a size it
has not checked: the archive's member list and unpacked size first, then each .npy header
(numpy's own parser: literals only, never eval) against the dtype and shape the caller expects,
before any data is read. Every problem is a ValueError that says what is wrong.
"""
import contextlib
import io
import json
import math
import os
import zipfile

import numpy as np

SIDE = 28  # the drawings' and digits' width and height
NPY_HEADER_BYTES = 4096  # numpy writes ~128 bytes of header
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp so the same content always gives the same bytes
# what a damaged or hostile archive can make the standard library raise while it is read
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError, IndexError,
               UnicodeDecodeError, NotImplementedError, RuntimeError, TypeError, OverflowError, SyntaxError,
               MemoryError, RecursionError)


def npy_bytes(array):
    """An array -> its .npy file's bytes (never pickled)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def check_members(infos, kind, required, optional=()):
    """The archive's members (open_archive's infos) are `required`, and maybe some of `optional`, nothing else:
    else ValueError naming the unexpected or missing ones (kind: "digits", "project")."""
    unknown = sorted(set(infos) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"the {kind} file has unexpected members: {', '.join(unknown[:5])}")
    missing = [name for name in required if name not in infos]
    if missing:
        raise ValueError(f"the {kind} file is missing {', '.join(missing)}")


def read_header(raw, member, kind, fmt, version, keys):
    """A file's JSON header (`member`, e.g. "digits.json", of a pycnn `kind` file, e.g. "digits") -> the dict,
    once it is JSON, its "format" is `fmt`, its "version" is `version` (a newer one is named as such), and it
    has no key outside `keys` (which hold "format" and "version")."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{member} is not valid JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise ValueError(f"not a pycnn {kind} file ({member}'s format is not {fmt!r})")
    found = header.get("version")
    if isinstance(found, int) and not isinstance(found, bool) and found > version:
        raise ValueError(f"this {kind} file is from a newer pycnn (version {found}); this pycnn reads "
                         f"version {version}")
    if found != version or isinstance(found, bool):
        raise ValueError(f"unsupported {kind} file version {found!r}; this pycnn reads version {version}")
    unknown = sorted(map(str, set(header) - set(keys)))
    if unknown:
        raise ValueError(f"{member} has unknown keys: {', '.join(unknown[:5])}")
    return header


def as_pixels(images, max_count, what):
    """Images as the file holds them: uint8 (N, 28, 28) from (N, 28, 28) or (N, 1, 28, 28), floats in [0, 1]
    (round(255 * ink)) or uint8; at most max_count of them. what: what a message calls them ("drawings")."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{what} must have shape (N, 28, 28) or (N, 1, 28, 28), got {images.shape}")
    if len(images) > max_count:
        raise ValueError(f"at most {max_count:,} {what}, got {len(images):,}")
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{what} must be floats in [0, 1] or uint8, got dtype {images.dtype}")
    if not np.isfinite(images).all():
        raise ValueError(f"{what} contain NaN or infinity")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"{what} must be in [0, 1], got values from {images.min():g} to {images.max():g}")
    return np.rint(images * 255).astype(np.uint8)


def archive(members):
    """{name: bytes} -> the bytes of a deflated zip of them, in that order, with fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def check_size(data, what, max_bytes):
    """data as bytes, after checking it is bytes of 1 to max_bytes; what: "model", "digits"."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"{what} data must be bytes, got {type(data).__name__}")
    size = memoryview(data).nbytes
    if not size:
        raise ValueError(f"the {what} file is empty")
    if size > max_bytes:
        raise ValueError(f"the {what} file is {size:,} bytes; a pycnn {what} file is at most {max_bytes:,}")
    return bytes(data)


@contextlib.contextmanager
def reading(what):
    """Turn anything a damaged file makes the reader raise into one ValueError naming the kind of file."""
    try:
        yield
    except ValueError:
        raise
    except READ_ERRORS as err:
        raise ValueError(f"not a valid pycnn {what} file ({type(err).__name__}: {err})") from None
    except Exception as err:  # the reader's promise is ValueError only; name anything unforeseen
        raise ValueError(f"not a valid pycnn {what} file (unexpected {type(err).__name__}: {err})") from None


@contextlib.contextmanager
def open_archive(data, what, max_unpacked):
    """The zip in data, its members checked: no duplicates, at most max_unpacked bytes unpacked ->
    (the ZipFile, {name: ZipInfo})."""
    if not data.startswith(b"PK"):
        raise ValueError(f"not a pycnn {what} file (it is not a zip/.npz archive)")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        if len(infos) != len(zf.infolist()):
            raise ValueError(f"the {what} file has duplicate members")
        total = sum(info.file_size for info in infos.values())
        if total > max_unpacked:
            raise ValueError(f"the {what} file would unpack to {total:,} bytes; at most {max_unpacked:,} allowed")
        yield zf, infos


def read_npy(zf, info, shape, dtype, shape_note=""):
    """One .npy member holding exactly `shape` values of `dtype` (little-endian), its header checked
    before its data is read -> the array (a copy). shape_note: said after the expected shape."""
    name, dtype = info.filename, np.dtype(dtype).newbyteorder("<")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{name}: unsupported .npy version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        try:
            stored, fortran, stored_dtype = read_header(f, max_header_size=NPY_HEADER_BYTES)
        except ValueError as err:
            raise ValueError(f"{name}: unreadable .npy header ({err})") from None
        if stored_dtype.str != dtype.str:
            order = " (little-endian)" if dtype.itemsize > 1 else ""
            raise ValueError(f"{name}: dtype must be {dtype.name}{order}, got {stored_dtype.str!r}")
        if fortran:
            raise ValueError(f"{name}: Fortran-ordered arrays are not accepted")
        if stored != tuple(shape):
            raise ValueError(f"{name}: shape must be {tuple(shape)}{shape_note}, got {stored}")
        nbytes = math.prod(shape) * dtype.itemsize
        raw = f.read(nbytes + 1)
    if len(raw) != nbytes:
        raise ValueError(f"{name}: expected {nbytes:,} bytes of data, found {len(raw):,} (truncated or padded)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def read_file(path, what, max_bytes):
    """A file's bytes, refusing one over max_bytes before reading it (a pipe has no size: read at most that)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise ValueError(f"{path}: the {what} file is {size:,} bytes; a pycnn {what} file is at most {max_bytes:,}")
        return f.read(max_bytes + 1)
