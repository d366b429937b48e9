"""Take the README's screenshot: the page after one click on Train (the defaults) and a drawn 3.

    python -m docs.make_screenshot [--out docs/screenshot.png]

Builds the site when needed, serves it on a free local port, and drives Debian's Chromium with
Playwright (the helpers the end-to-end tests use).
"""
import argparse
import threading

from playwright.sync_api import sync_playwright

import sitebuild
from tests.e2e.e2e_support import LAUNCH_FLAGS, ROOT, TRAIN_TIMEOUT_MS, chromium_path, draw_digit, open_app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    args = parser.parse_args()
    sitebuild.build(ROOT / "dist", quiet=True)
    server = sitebuild.make_server(ROOT / "dist")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_FLAGS)
            app = open_app(browser, url)
            app.goto_ready()
            app.by_id("train-button").click()
            app.page.wait_for_selector('body[data-state="ready"][data-run-result="finished"]', state="attached",
                                       timeout=TRAIN_TIMEOUT_MS)
            draw_digit(app.page, 3, (60, 40, 200))
            app.page.wait_for_function("() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion"
                                       " === document.querySelector('[data-testid=draw-canvas]').dataset.version")
            app.page.wait_for_selector('[data-testid="confusion-matrix"][data-total="1500"]', state="attached")
            app.page.wait_for_timeout(500)  # the last frame's redraws
            app.page.evaluate("window.scrollTo(0, 0)")
            app.page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.shutdown()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
