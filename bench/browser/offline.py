#!/usr/bin/env python3
"""What offline use costs and gives (the service worker, web/sw.js), in headless Chromium:

    python -m bench.browser.offline               # about 2 minutes
    python -m bench.browser.offline --reloads 9 --json out.json

1. The first visit: bytes the host sends until the page is ready, and then until the service
   worker has the whole site in its cache; in a browser profile on disk (as a real browser
   has) and in an ordinary Playwright context, which is incognito-like (its HTTP cache lives in
   memory and keeps no large file, so the install downloads those again).
2. Reload to ready, warm, alternating: without a network, served by the service worker (and
   Python restored from its snapshot), against a reload online without a service worker (the
   HTTP cache and the snapshot, as before there was one), each in its own on-disk profile;
   medians of the time from navigation to body[data-state=ready].
3. A visit after a new build: bytes the host sends until the new version is cached, when one
   web file changed and when the library changed (a new pycnn wheel); only changed files should
   come from the host, the rest is copied from the previous version's cache.
4. A host that sends .wasm as application/octet-stream: the page compiles the downloaded bytes
   instead of compiling while downloading; its python stage on cold loads (fresh contexts),
   alternating with the same host sending application/wasm.

The site is built from a copy of the project into a temporary folder (the checkout's dist/ is
left alone) and served with the site's own handler (sitebuild.Handler), counting the body bytes it sends.
"""
import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import sync_playwright

import sitebuild
from bench.browser import harness
from bench.browser.harness import LAUNCH_FLAGS, READY_TIMEOUT_MS, ROOT, TIMING_SCRIPT


class CountingHandler(sitebuild.Handler):
    """The site's handler that adds each response's body size to its server's log."""

    wasm_type = "application/wasm"

    def guess_type(self, path):
        return self.wasm_type if str(path).endswith(".wasm") else super().guess_type(path)

    def send_header(self, keyword, value):
        if keyword.lower() == "content-length" and self.command == "GET":
            self.server.log.append((self.path, int(value)))
        super().send_header(keyword, value)


@contextlib.contextmanager
def serve(out, wasm_type="application/wasm"):
    """Serve out, counting what is sent, for the duration -> (server, its base URL); server.log lists (path, bytes)."""
    handler = type("Handler", (CountingHandler,), {"wasm_type": wasm_type})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(out)))
    server.log = []
    with harness.serving(server) as url:
        yield server, url


def copy_project(dest):
    """The build inputs, so the benchmark can change them and rebuild."""
    for name in ("web", "pycnn"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "package.json", "package-lock.json"):
        shutil.copy2(ROOT / name, dest / name)
    (dest / "node_modules").symlink_to(ROOT / "node_modules")
    return dest


def sent_since(server, mark):
    """(bytes, {path: bytes}) the host sent since log position mark."""
    files = {}
    for path, size in server.log[mark:]:
        files[path] = files.get(path, 0) + size
    return sum(files.values()), files


def open_profile(playwright, chromium, tmp, name, service_workers):
    context = playwright.chromium.launch_persistent_context(
        str(tmp / name), executable_path=chromium, args=LAUNCH_FLAGS, headless=True, service_workers=service_workers)
    context.add_init_script(TIMING_SCRIPT)
    return context, context.pages[0] if context.pages else context.new_page()


def wait_ready(page):
    """Wait for the page to be ready -> seconds since the navigation."""
    return harness.wait_ready(page) / 1000


def median_stages(runs):
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def wait_offline(page, value):
    page.wait_for_selector(f'body[data-offline="{value}"]', state="attached", timeout=READY_TIMEOUT_MS)


def first_visit(page, server, url, service_worker=True):
    """Bytes until ready and until the site is cached, and the time to ready."""
    mark = len(server.log)
    page.goto(url)
    seconds = wait_ready(page)
    to_ready, _ = sent_since(server, mark)
    if not service_worker:
        return {"ready_s": seconds, "bytes_to_ready": to_ready}
    wait_offline(page, "ready")
    total, _ = sent_since(server, mark)
    usage = page.evaluate("navigator.storage.estimate().then((e) => e.usage)")
    return {"ready_s": seconds, "bytes_to_ready": to_ready, "bytes_to_cached": total, "storage_bytes": usage}


def new_version_visit(page, server, url, project, out, change):
    """Change the project, rebuild into the served folder, visit: what the host sent until the new
    version was cached; then Reload to it."""
    change(project)
    sitebuild.build(str(out), root=project, quiet=True)
    mark = len(server.log)
    page.goto(url)
    wait_ready(page)
    wait_offline(page, "update")
    total, files = sent_since(server, mark)
    page.get_by_test_id("update-reload").click()
    wait_ready(page)
    wait_offline(page, "ready")
    return {"bytes": total, "files": files}


def append(path, text):
    path.write_text(path.read_text() + text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reloads", type=int, default=7, help="warm reloads of each kind (alternating)")
    parser.add_argument("--warm-wait", type=float, default=5.0,
                        help="seconds on the page before the warm reloads (V8 writes its wasm code cache)")
    parser.add_argument("--cold", type=int, default=3, help="cold loads per .wasm type (step 4)")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--chromium", default=harness.CHROMIUM, help=f"the browser to drive (default {harness.CHROMIUM})")
    args = parser.parse_args(argv)
    chromium = harness.chromium_path(args.chromium)
    results = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="pycnn-bench-offline-") as tmp_name:
        tmp = Path(tmp_name)
        project = copy_project(tmp / "project")
        out = tmp / "dist"
        summary = sitebuild.build(str(out), root=project, quiet=True)
        results["site_bytes"] = summary["bytes"]
        with serve(out) as (server, url), sync_playwright() as playwright:
            # 1. first visits
            browser = harness.launch(playwright, args.chromium)
            context = browser.new_context(service_workers="allow")
            context.add_init_script(TIMING_SCRIPT)
            results["first_visit_incognito"] = first_visit(context.new_page(), server, url)
            context.close()
            browser.close()
            sw_context, sw_page = open_profile(playwright, chromium, tmp, "with-sw", "allow")
            plain_context, plain_page = open_profile(playwright, chromium, tmp, "without-sw", "block")
            results["first_visit"] = first_visit(sw_page, server, url)
            results["first_visit_without_sw"] = first_visit(plain_page, server, url, service_worker=False)
            for key in ("first_visit", "first_visit_incognito", "first_visit_without_sw"):
                r = results[key]
                cached = f", {r['bytes_to_cached'] / 1e6:.2f} MB until cached" if "bytes_to_cached" in r else ""
                print(f"{key}: ready in {r['ready_s']:.2f} s, {r['bytes_to_ready'] / 1e6:.2f} MB until ready{cached}",
                      flush=True)

            # 2. warm reloads, alternating
            sw_page.wait_for_timeout(args.warm_wait * 1000)
            plain_page.wait_for_timeout(args.warm_wait * 1000)
            sw_context.set_offline(True)
            offline, online, offline_stages, online_stages = [], [], [], []
            for _ in range(args.reloads):
                sw_page.reload()
                offline.append(wait_ready(sw_page))
                offline_stages.append(harness.page_stages(sw_page))
                plain_page.reload()
                online.append(wait_ready(plain_page))
                online_stages.append(harness.page_stages(plain_page))
            snapshot = sw_page.get_attribute('[data-testid="status"]', "data-python-snapshot")
            controlled = sw_page.evaluate("navigator.serviceWorker.controller !== null")
            sw_context.set_offline(False)
            results["reload_offline_s"], results["reload_online_without_sw_s"] = offline, online
            results["reload_offline_stages_ms"] = median_stages(offline_stages)
            results["reload_online_without_sw_stages_ms"] = median_stages(online_stages)
            ratio = statistics.median(offline) / statistics.median(online)
            print(f"reload to ready, offline with the service worker: median {statistics.median(offline):.2f} s "
                  f"({', '.join(f'{s:.2f}' for s in offline)}; Python snapshot {snapshot}, controlled {controlled})")
            print(f"reload to ready, online without a service worker: median {statistics.median(online):.2f} s "
                  f"({', '.join(f'{s:.2f}' for s in online)}); offline/online {ratio:.2f}")
            for key in ("reload_offline_stages_ms", "reload_online_without_sw_stages_ms"):
                print(f"  {key}: " + ", ".join(f"{k} {v:.0f}" for k, v in results[key].items()))

            # 3. visits after a new build
            results["update_web_file"] = new_version_visit(
                sw_page, server, url, project, out, lambda p: append(p / "web/style.css", "\n/* a new build */\n"))
            results["update_library"] = new_version_visit(
                sw_page, server, url, project, out, lambda p: append(p / "pycnn/__init__.py", "\n# a new build\n"))
            for key in ("update_web_file", "update_library"):
                r = results[key]
                files = ", ".join(f"{path.lstrip('/')} {size:,}" for path, size in sorted(r["files"].items()))
                print(f"{key}: {r['bytes']:,} bytes from the host ({files}) of {results['site_bytes']:,}")
            sw_context.close()
            plain_context.close()

            # 4. a wrong type for .wasm, cold loads
            browser = harness.launch(playwright, args.chromium)
            python_ms = {"application/wasm": [], "application/octet-stream": []}
            with serve(out, "application/octet-stream") as (_, wrong_url):
                for _ in range(args.cold):
                    for wasm_type, base in (("application/wasm", url), ("application/octet-stream", wrong_url)):
                        context = browser.new_context(service_workers="block")
                        context.add_init_script(TIMING_SCRIPT)
                        page = context.new_page()
                        page.goto(base)
                        wait_ready(page)
                        python_ms[wasm_type].append(harness.page_stages(page)["python"])
                        context.close()
            browser.close()
            results["cold_python_stage_ms"] = python_ms
            print("cold loads, python stage: " + "; ".join(
                f".wasm as {t}: median {statistics.median(v):.0f} ms ({', '.join(str(x) for x in v)})"
                for t, v in python_ms.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
