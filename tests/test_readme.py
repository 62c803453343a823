"""The README's code: its snippets are the tested files under examples/, and they work."""

from __future__ import annotations

import ast
import importlib
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from examples.background import in_background
from fapilog import FapilogHandler, bind_context
from tests.support.http import http_client, preflight

ROOT = Path(__file__).resolve().parent.parent
SNIPPET = re.compile(r"<!-- (examples/\w+\.py) -->\n```python\n(.*?)```", re.DOTALL)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_every_marked_readme_snippet_is_its_example_file_verbatim() -> None:
    snippets = SNIPPET.findall((ROOT / "README.md").read_text())
    assert {path for path, _ in snippets} == {"examples/quickstart.py", "examples/background.py"}
    for path, code in snippets:
        assert code == (ROOT / path).read_text(), path


def test_every_readme_snippet_compiles_and_imports_only_what_fapilog_has() -> None:
    """The short snippets are fragments (a producer, a consumer): they must still parse and name real APIs."""
    blocks = PYTHON_BLOCK.findall((ROOT / "README.md").read_text())
    assert len(blocks) >= 9
    for code in blocks:
        tree = ast.parse(code)  # top-level await parses; it only fails to compile
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fapilog"):
                module = importlib.import_module(node.module)
                assert all(hasattr(module, alias.name) for alias in node.names), ast.unparse(node)


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
