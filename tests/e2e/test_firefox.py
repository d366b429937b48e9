"""A learner's journey in Firefox ESR: tests/e2e/firefox/journeys.test.mjs (node's test runner
driving Firefox over WebDriver BiDi with puppeteer-core) against the site the Chromium tests build
and serve: one page from the first visit to a reload, its steps reported as node subtests."""
import os
import re
import shutil
import subprocess

import pytest

from e2e_support import ROOT

JOURNEY_FILE = ROOT / "tests" / "e2e" / "firefox" / "journeys.test.mjs"
NODE_TIMEOUT_S = 900  # the journey takes about a minute here
JOURNEY = "a learner's journey in Firefox"
TAP_RESULT = re.compile(r"^(\s*)(not )?ok \d+ - (.*)$")  # a test or (indented) a subtest


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


def run_journey(url, firefox, cli_model):
    """Run the journey in one node process, printing its report as it comes; (returncode, lines)."""
    env = {**os.environ, "PYCNN_SITE_URL": url, "PYCNN_CLI_MODEL": str(cli_model), "PYCNN_FIREFOX": firefox}
    command = ["node", "--test", "--test-reporter=tap", str(JOURNEY_FILE)]
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


def test_a_learners_journey_in_firefox(firefox, site_url, cli_model):
    returncode, lines = run_journey(site_url, firefox, cli_model)
    results = [TAP_RESULT.match(line).groups() for line in lines if TAP_RESULT.match(line)]
    steps = [(name, not failed) for indent, failed, name in results if indent]
    journey = [not failed for indent, failed, name in results if not indent and name == JOURNEY]
    failed_steps = [name for name, ok in steps if not ok]
    report = "\n".join(lines[-80:])
    assert journey == [True] and returncode == 0 and not failed_steps and len(steps) >= 7, (
        f"Firefox: failed steps {failed_steps} of {len(steps)} (node exit code {returncode}):\n{report}")
