"""The code blocks of the README (and of any page under docs/): each runs, is a tested file, or says it is a fragment.

A block is marked by an HTML comment on the line before it:
``<!-- examples/quickstart.py -->`` (the block is that file, verbatim, tested
here), ``<!-- fragment -->`` (an excerpt on purpose: it must parse and name
real fapilog APIs) or ``<!-- nox -s install -->`` (the commands that session
runs as written). Every other Python block runs, each in a fresh interpreter;
every JSON block holds JSON objects, one a line.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import logging
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from examples.background import in_background
from fapilog import FapilogHandler, bind_context
from tests.support.http import http_client, preflight

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"(?:<!-- (?P<mark>[^\n]*?) -->\n)?```(?P<language>\w*)\n(?P<code>.*?)```", re.DOTALL)
EXAMPLE = re.compile(r"examples/\w+\.py")


@dataclass(frozen=True)
class Block:
    place: str  # page:line
    mark: str | None
    language: str
    code: str


def _blocks(language: str) -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            if match["language"] == language:
                place = f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, match.start('code'))}"
                found.append(Block(place, match["mark"], language, match["code"]))
    return found


PYTHON = _blocks("python")
RUNNABLE = [block for block in PYTHON if block.mark is None]


def test_every_python_block_is_marked_for_what_it_is_or_runs() -> None:
    assert {block.mark for block in PYTHON} <= {None, "fragment", "examples/quickstart.py", "examples/background.py", "examples/fields.py"}
    assert len(RUNNABLE) >= 10


def test_every_example_block_is_its_example_file_verbatim() -> None:
    examples = [block for block in PYTHON if block.mark is not None and EXAMPLE.fullmatch(block.mark)]
    assert {block.mark for block in examples} == {"examples/quickstart.py", "examples/background.py", "examples/fields.py"}
    for block in examples:
        assert block.code == (ROOT / str(block.mark)).read_text(), block.place


def test_every_fragment_parses_and_imports_only_what_fapilog_has() -> None:
    """A fragment is an excerpt (a producer and a consumer, a job queued from an app): it still names real APIs."""
    fragments = [block for block in PYTHON if block.mark == "fragment"]
    assert fragments
    for block in fragments:
        tree = ast.parse(block.code)  # top-level await parses; it only fails to compile
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fapilog"):
                module = importlib.import_module(node.module)
                assert all(hasattr(module, alias.name) for alias in node.names), f"{block.place}: {ast.unparse(node)}"


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.place for block in RUNNABLE])
def test_every_python_block_that_is_no_fragment_runs_as_shown(block: Block, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", block.code], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, f"{block.place}:\n{result.stderr}"


LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _anchors(page: Path) -> set[str]:
    """Return the anchors GitHub gives the headings of *page*: lower case, punctuation dropped, spaces as hyphens."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text(encoding="utf-8")), re.MULTILINE):
        slug = unique = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        repeats = 0
        while unique in anchors:  # a repeated heading: -1, -2...
            repeats += 1
            unique = f"{slug}-{repeats}"
        anchors.add(unique)
    return anchors


def test_every_link_between_the_pages_reaches_a_file_and_heading_that_exist() -> None:
    """The README and docs/ link to each other's sections: a heading renamed or moved must not leave a dead link."""
    broken = []
    for page in PAGES:
        for match in LINK.finditer(FENCE.sub("", page.read_text(encoding="utf-8"))):
            target = match["target"]
            if re.match(r"[a-z]+:", target):
                continue  # another site's page
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [page for page in PAGES[1:] if f"({page.relative_to(ROOT)})" not in readme] == []


def test_every_json_block_holds_json_objects_one_a_line() -> None:
    blocks = _blocks("json")
    assert blocks
    for block in blocks:
        assert all(isinstance(json.loads(line), dict) for line in block.code.splitlines()), block.place


@dataclass(frozen=True)
class Quickstart:
    app: ASGIApp
    stream: io.StringIO  # what its configure_logging() writes


@pytest.fixture
def quickstart() -> Quickstart:
    """The quick start, imported in a test (its ``configure_logging()`` is put back afterwards), its lines in a buffer."""
    from examples import quickstart

    [handler] = [handler for handler in logging.root.handlers if isinstance(handler, FapilogHandler)]
    stream = io.StringIO()
    handler.setStream(stream)
    return Quickstart(quickstart.app, stream)


async def test_the_quickstart_app_writes_json_lines_with_the_trace_and_answers_preflights(quickstart: Quickstart) -> None:
    async with http_client(quickstart.app) as client:
        response = await client.get("/orders/7", headers={"X-Request-ID": "readme-1"})
        answer = await client.options("/orders/7", headers=preflight())
    assert response.json() == {"order_id": 7, "trace_id": "readme-1"}
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-headers"].lower().count("traceparent") == 1
    written = [json.loads(line) for line in quickstart.stream.getvalue().splitlines()]
    assert [(line["logger"], line["message"], line["trace_id"]) for line in written if line["logger"] in {"shop", "fapilog.access"}] == [
        ("shop", "order 7 looked up", "readme-1"),
        ("fapilog.access", "GET /orders/7 200", "readme-1"),
        ("fapilog.access", "OPTIONS /orders/7 200", answer.headers["X-Request-ID"]),
    ]


async def test_every_background_idiom_of_the_readme_sees_the_requests_trace_id() -> None:
    bind_context(trace_id="readme-bg")
    assert list(await in_background()) == ["readme-bg"] * 4
