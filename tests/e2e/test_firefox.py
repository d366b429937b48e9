"""The journeys that matter to a learner, in Firefox ESR: tests/e2e/firefox/journeys.test.mjs
(node's test runner driving Firefox over WebDriver BiDi with puppeteer-core) against the site the
Chromium tests build and serve. One test here per journey; the journeys selected (`-k draw`)
run in one `node --test` process, each in its own browser context."""
import os
import re
import shutil
import subprocess

import pytest

from e2e_support import ROOT

JOURNEYS_FILE = ROOT / "tests" / "e2e" / "firefox" / "journeys.test.mjs"
# pytest id -> the start of the journey's test name in journeys.test.mjs
JOURNEYS = {
    "ready": "page reaches ready",
    "train": "train one short run",
    "stop": "stop during a run",
    "stop-in-first-epoch": "stop during the first run",
    "draw": "draw digits with the mouse",
    "download": "download the model",
    "reload": "reload keeps the trained model",
}
NODE_TIMEOUT_S = 900  # every journey together takes about a minute here
TAP_RESULT = re.compile(r"^(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$")


def firefox_path():
    """$PYCNN_FIREFOX, else Debian's firefox-esr, else a firefox on PATH, else None."""
    for candidate in (os.environ.get("PYCNN_FIREFOX"), "/usr/bin/firefox-esr", shutil.which("firefox-esr"),
                      shutil.which("firefox")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="session")
def firefox():
    """Firefox's path; skips (fails in CI) without one, before the site is built."""
    path = firefox_path()
    if path is None:
        why = "no Firefox installed (apt-get install firefox-esr, or set PYCNN_FIREFOX)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Firefox tests: {why}")
        pytest.skip(why)
    if not (ROOT / "node_modules" / "puppeteer-core" / "package.json").is_file():
        pytest.fail("node_modules has no puppeteer-core (a dev dependency): run npm ci")
    return path


def parse_tap(lines):
    """Top-level results of node's TAP report: {test name: (ok, SKIP/TODO/None, its lines)}."""
    results, current = {}, None
    for line in lines:
        match = TAP_RESULT.match(line)
        if match:
            not_ok, name, directive = match.groups()
            current = [line]
            results[name] = (not not_ok, directive, current)
        elif current is not None and line.startswith("  "):
            current.append(line)  # the result's YAML block: error, expected, actual, stack
        else:
            current = None
    return results


def run_journeys(names, url, firefox, cli_model):
    """Run the named journeys in one node process, printing its report as it comes; (returncode, lines)."""
    patterns = [f"--test-name-pattern=^{re.escape(name)}" for name in names]
    env = {**os.environ, "PYCNN_SITE_URL": url, "PYCNN_CLI_MODEL": str(cli_model), "PYCNN_FIREFOX": firefox}
    command = ["node", "--test", "--test-reporter=tap", *patterns, str(JOURNEYS_FILE)]
    print("$", " ".join(command), flush=True)
    # its own process group, so a timeout ends node and the Firefox it started
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    lines = []
    try:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
        return process.wait(timeout=NODE_TIMEOUT_S), lines
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.fixture(scope="module")
def journey_results(request, firefox, site_url, cli_model):
    """Runs every journey this pytest run selected, once; their TAP results by pytest id."""
    selected = [item.callspec.params["journey"] for item in request.session.items
                if item.module.__name__ == request.module.__name__ and hasattr(item, "callspec")]
    returncode, lines = run_journeys([JOURNEYS[j] for j in selected], site_url, firefox, cli_model)
    results = parse_tap(lines)
    by_id = {}
    for journey in selected:
        found = [r for name, r in results.items() if name.startswith(JOURNEYS[journey]) and r[1] != "SKIP"]
        by_id[journey] = found[0] if len(found) == 1 else None
    return {"returncode": returncode, "lines": lines, "by_id": by_id}


@pytest.mark.parametrize("journey", list(JOURNEYS))
def test_firefox_journey(journey, journey_results):
    result = journey_results["by_id"][journey]
    if result is None:
        tail = "\n".join(journey_results["lines"][-40:])
        pytest.fail(f"node ran no single test named {JOURNEYS[journey]!r} (exit code "
                    f"{journey_results['returncode']}):\n{tail}", pytrace=False)
    ok, _, block = result
    if not ok:
        report = "\n".join(block)
        pytest.fail(f"Firefox journey failed:\n{report}", pytrace=False)
