"""The documents point at things that exist: every test they name as evidence is a test of the suite."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), ROOT / "web" / "PROTOCOL.md"])
TEST_FILES = sorted((ROOT / "tests").rglob("test_*.py"))


def defined_tests(path):
    return set(re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE))


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_test_a_document_names_exists(document):
    text = document.read_text()
    everywhere = set().union(*(defined_tests(path) for path in TEST_FILES))
    missing = []
    for path, name in re.findall(r"(tests/[\w/]+\.py)(?:::(test_\w+))?", text):
        if not (ROOT / path).is_file():
            missing.append(path)
        elif name and name not in defined_tests(ROOT / path):
            missing.append(f"{path}::{name}")
    # `::name` after a file in the same cell: a test of some file of the suite
    missing += [name for name in re.findall(r"`::(test_\w+)", text) if name not in everywhere]
    assert missing == []
