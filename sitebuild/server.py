"""Serve dist/ on 127.0.0.1 as a host should: exact MIME types, Cache-Control: no-cache and the
site's Content-Security-Policy on every response."""
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from .files import ROOT, BuildError

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
