#!/usr/bin/env python3
"""Build the static pycnn site into dist/ and serve it (standard library only).

    python build.py                      # build dist/
    python build.py serve [--port N]     # build if needed, then serve dist/ on 127.0.0.1

Every outside part comes from a package registry and is checked against a pinned
sha256 before it is used. The work is done by the sitebuild package next to this file.
"""

import argparse
import sys
from pathlib import Path

from sitebuild import ROOT, BuildError, build, serve


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
