"""mypy --strict guards user code: right uses pass, each misuse is reported, with or without pydantic's mypy plugin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api as mypy_api

SAMPLES = Path(__file__).parent / "typing_samples"
ROOT = SAMPLES.parent.parent


@pytest.fixture(scope="module", params=["repository", "no-plugin"])
def config(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's mypy.ini (with pydantic's plugin), or the same without the plugin, as user code may run."""
    repository = ROOT / "mypy.ini"
    if request.param == "repository":
        return repository
    text = repository.read_text().replace("$MYPY_CONFIG_FILE_DIR", str(ROOT))
    path = tmp_path_factory.mktemp("no-plugin") / "mypy.ini"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("plugins")))
    return path


def _mypy_error_lines(sample: Path, config: Path, cache_dir: Path) -> set[int]:
    """Return the line numbers mypy --strict reports errors on."""
    stdout, stderr, _ = mypy_api.run(
        ["--config-file", str(config), "--cache-dir", str(cache_dir), "--no-error-summary", str(sample)]
    )
    assert not stderr
    return {int(line) for line in re.findall(rf"^(?:.*/)?{re.escape(sample.name)}:(\d+): error:", stdout, flags=re.M)}


def test_documented_uses_pass_mypy_strict(config: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    sample = SAMPLES / "correct_use.py"
    assert _mypy_error_lines(sample, config, tmp_path_factory.getbasetemp() / f"mypy-{config.parent.name}") == set()


def test_mypy_strict_reports_exactly_the_lines_that_misuse_the_api(config: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    sample = SAMPLES / "misuse.py"
    marked = {number for number, line in enumerate(sample.read_text().splitlines(), 1) if "# expect-error" in line}
    assert len(marked) == 10
    assert _mypy_error_lines(sample, config, tmp_path_factory.getbasetemp() / f"mypy-{config.parent.name}") == marked
