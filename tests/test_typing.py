"""mypy --strict guards user code: right uses pass, each misuse is reported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api as mypy_api

SAMPLES = Path(__file__).parent / "typing_samples"
ROOT = SAMPLES.parent.parent


def _mypy_error_lines(sample: Path, cache_dir: Path) -> set[int]:
    """Return the line numbers mypy --strict reports errors on."""
    stdout, stderr, _ = mypy_api.run(
        ["--config-file", str(ROOT / "mypy.ini"), "--cache-dir", str(cache_dir), "--no-error-summary", str(sample)]
    )
    assert not stderr
    return {int(line) for line in re.findall(rf"^(?:.*/)?{re.escape(sample.name)}:(\d+): error:", stdout, flags=re.M)}


def test_documented_uses_pass_mypy_strict(tmp_path_factory: pytest.TempPathFactory) -> None:
    sample = SAMPLES / "correct_use.py"
    assert _mypy_error_lines(sample, tmp_path_factory.getbasetemp() / "mypy") == set()


def test_mypy_strict_reports_exactly_the_lines_that_misuse_the_api(tmp_path_factory: pytest.TempPathFactory) -> None:
    sample = SAMPLES / "misuse.py"
    marked = {number for number, line in enumerate(sample.read_text().splitlines(), 1) if "# expect-error" in line}
    assert len(marked) == 6
    assert _mypy_error_lines(sample, tmp_path_factory.getbasetemp() / "mypy") == marked
