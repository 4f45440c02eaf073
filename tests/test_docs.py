"""The ```python blocks of docs/*.md run as tests: each file's blocks in order, in one namespace, so a page that
stops matching the code fails here instead of misleading a reader.

A block fenced as ```python runs; any other fence (```text, ```bash, a bare ```) is for reading only. Blocks run
in a temporary working folder, so a page may write files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every ```python block of a Markdown text."""
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _PYTHON_BLOCK.finditer(text)]


PAGES = sorted(path for path in DOCS.glob("*.md") if python_blocks(path.read_text(encoding="utf-8")))


def test_the_learner_pages_exist_and_have_code_to_run():
    names = {path.name for path in PAGES}
    assert {"backprop.md", "custom_layer.md"} <= names


def test_block_extraction():
    text = "intro\n```python\na = 1\n```\n```text\nnot code\n```\n```python\nb = a + 1\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n"), (9, "b = a + 1\n")]


@pytest.mark.parametrize("page", PAGES, ids=[path.name for path in PAGES])
def test_doc_code_runs(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for line, code in python_blocks(page.read_text(encoding="utf-8")):
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)  # noqa: S102 - running our own docs
        except Exception as error:
            raise AssertionError(f"{page.name}: the ```python block at line {line} failed: "
                                 f"{type(error).__name__}: {error}") from error
