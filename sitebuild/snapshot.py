"""What the page's worker imports into its Python snapshot (web/snapshot.js), written into the site's
manifest.json as python_snapshot_imports.

Pyodide's standard library is a zip of .py sources without bytecode: a module imported after the snapshot is
compiled from its source on every visit, one imported before it comes back with the snapshot, ready. These
are the standard-library modules that pyodide.loadPackage("numpy"), numpy and pycnn (pycnn.page, and
pycnn.parallel in a helper) import; tests/test_build.py boots the built site in Pyodide as the worker does
and names any that is missing. A change of the list is a new snapshot (its name has a hash of the list)."""

SNAPSHOT_IMPORTS = (
    # pyodide.loadPackage: unpacking a wheel, recording its installer
    "encodings.cp437", "csv", "email.message", "email.utils", "importlib.metadata", "tarfile",
    # numpy
    "__future__", "ctypes", "numbers", "pickle", "platform",
    # pycnn
    "base64", "dataclasses", "datetime", "hashlib", "json", "unicodedata",
)
