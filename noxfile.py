"""Sessions: ``tests`` and ``typecheck`` (CI), ``bench``, ``stress``, ``w3c`` and ``demo``.

Every session runs on the interpreter nox itself runs on, so CI never asks for
a Python that the machine does not have.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, *groups: str) -> None:
    """Install fapilog (editable) and the named dependency groups."""
    requirements: list[str] = []
    for group in groups:
        requirements.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", ".", *requirements)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage and the fail-under gate."""
    _install(session, "tests")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over src, tests, benchmarks and this file."""
    _install(session, "typecheck", "bench")
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Compare fapilog with its peers, interleaved in one run, as ratios."""
    _install(session, "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Start the example service under uvicorn, call it, print its JSON logs."""
    _install(session, "demo")
    session.run("python", "-m", "examples.demo", *session.posargs)


@nox.session
def stress(session: nox.Session) -> None:
    """Run the reliability suite with long runs: 30,000 requests, 100,000 for memory."""
    _install(session, "tests")
    session.run("pytest", "tests/test_reliability.py", *session.posargs, env={"FAPILOG_STRESS": "1"})


@nox.session
def w3c(session: nox.Session) -> None:
    """Run W3C's own Trace Context test suite, where it lies, under both uvicorn HTTP parsers."""
    suite = Path(os.environ.get("W3C_TRACE_CONTEXT", "../shared/w3c-trace-context"))
    if not (suite / "test.py").is_file():
        session.skip(f"no W3C Trace Context suite at {suite} (set W3C_TRACE_CONTEXT)")
    _install(session, "w3c")
    session.run("python", "-m", "tests.apps.w3c_service", str(suite))
