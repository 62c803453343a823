"""The README's code: its snippets are the tested files under examples/, and they work."""

from __future__ import annotations

import ast
import importlib
import logging
import re
from pathlib import Path

from examples.background import in_background
from examples.quickstart import app
from fapilog import bind_context
from tests.support.http import http_client, preflight
from tests.support.records import access_records

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


async def test_the_quickstart_app_logs_with_the_trace_and_answers_preflights(records: list[logging.LogRecord]) -> None:
    async with http_client(app) as client:
        response = await client.get("/orders/7", headers={"X-Request-ID": "readme-1"})
        answer = await client.options("/orders/7", headers=preflight())
    assert response.json() == {"order_id": 7, "trace_id": "readme-1"}
    [looked_up] = [record for record in records if record.name == "shop"]
    assert looked_up.__dict__["trace_id"] == "readme-1"
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-headers"].lower().count("traceparent") == 1
    assert [access["status_code"] for access in access_records(records)] == [200, 200]


async def test_every_background_idiom_of_the_readme_sees_the_requests_trace_id() -> None:
    bind_context(trace_id="readme-bg")
    assert list(await in_background()) == ["readme-bg"] * 4
