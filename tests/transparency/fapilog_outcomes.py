"""pytest plugin: write ``{nodeid: outcome}`` of the run to ``$OUTCOMES_JSON``.

Outcomes are ``passed``, ``failed``, ``skipped``, ``xfailed``, ``xpassed``,
``error`` (setup or teardown failed) and ``collection-error``. Under
pytest-xdist the controller, which gets every worker's reports, writes the file.
"""

from __future__ import annotations

import json
import os

import pytest

_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record the outcome of each test from its reports: the call's, unless setup or teardown failed."""
    nodeid = report.nodeid
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
        if _outcomes.get(nodeid) != "error":
            _outcomes[nodeid] = outcome
    elif report.failed:
        _outcomes[nodeid] = "error"
    elif report.when == "setup" and report.skipped:
        _outcomes[nodeid] = "xfailed" if hasattr(report, "wasxfail") else "skipped"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Record a module that failed to import or collect."""
    if report.failed:
        _outcomes[report.nodeid or "<collection>"] = "collection-error"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the outcomes, from the controller (or a run without xdist) only."""
    path = os.environ.get("OUTCOMES_JSON")
    if path and not hasattr(session.config, "workerinput"):
        with open(path, "w", encoding="utf-8") as file:
            json.dump(dict(sorted(_outcomes.items())), file, indent=0)
