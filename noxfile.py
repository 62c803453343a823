"""Sessions: ``tests``, ``typecheck``, ``transparency``, ``arq`` and ``install`` (CI), ``build``, ``bench`` (and ``bench_upstream``), ``stress``, ``w3c`` and ``demo``.

Every session runs on the interpreter nox itself runs on, so CI never asks for
a Python that the machine does not have.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
ARQ_MODULE = "*/fapilog/arq.py"  # tested in its own session: see the arq dependency group

FASTAPI_SUITE = "0.141.1"
"""The FastAPI release whose own test suite ``transparency`` runs."""
FASTAPI_SUITE_DESELECTED = [
    # Fails plain too here, by pytest-timeout's 20 s, with the Starlette the suite gets: 40 s saved per run.
    "tests/test_frontend.py::test_frontend_dependency_restores_existing_dependency_stacks",
]


def _install(session: nox.Session, *groups: str) -> None:
    """Install fapilog (editable) and the named dependency groups."""
    requirements: list[str] = []
    for group in groups:
        requirements.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", ".", *requirements)


def _install_arq_without_dependencies(session: nox.Session) -> None:
    """Install arq beside Celery's Redis client: arq pins redis<6, yet what fapilog uses of it runs on redis 8."""
    arq = [requirement for requirement in nox.project.dependency_groups(PYPROJECT, "arq") if requirement.startswith("arq")]
    session.install("--no-deps", *arq)


def _coverage(session: nox.Session, *pytest_args: str, report: str) -> None:
    """Run pytest under coverage, then combine and report (*report*: coverage's ``--omit`` or ``--include``)."""
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *pytest_args, *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", report)


def _build(session: nox.Session) -> Path:
    """Build the sdist, and the wheel from it, into a fresh ``dist/``; return the wheel."""
    session.install("build[uv]")
    shutil.rmtree("dist", ignore_errors=True)
    session.run("python", "-m", "build", "--installer=uv", "--outdir", "dist")
    [wheel] = Path("dist").glob("*.whl")
    return wheel.resolve()


@nox.session
def build(session: nox.Session) -> None:
    """Build the wheel and the sdist into ``dist/``: ``pip install "dist/<wheel>[httpx]"`` installs them."""
    _build(session)


@nox.session
def install(session: nox.Session) -> None:
    """Install fapilog both ways the README gives, each into a fresh virtualenv, and run the quick start there.

    The wheel ``build`` makes, with every extra: they resolve together (arq's
    ``redis<6`` pin clashes only with Celery's own Redis transport, which no
    extra pulls in), and every public module imports. Then the sdist, unpacked
    as a fresh clone: the README's install block runs there line by line as
    written, its last line serving ``examples/quickstart.py``. Each server is
    asked for one order and must write the JSON lines with its trace id.
    """
    wheel = _build(session)
    work = Path(session.create_tmp()).resolve()
    check = Path("tests/install/check.py").resolve()
    extras = ",".join(PYPROJECT["project"]["optional-dependencies"])
    venv = work / "wheel-venv"
    session.run("python", "-m", "venv", "--clear", str(venv))
    session.run(f"{venv}/bin/pip", "install", "--quiet", f"{wheel}[{extras}]", "fastapi", external=True)
    session.run(f"{venv}/bin/python", str(check), "--all-modules", "--", f"{venv}/bin/uvicorn", "examples.quickstart:app", external=True)
    [sdist] = Path("dist").glob("*.tar.gz")
    clone = work / sdist.name.removesuffix(".tar.gz")
    shutil.rmtree(clone, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    *install, serve = _readme_block("nox -s install")
    with session.chdir(clone):
        for line in install:
            session.run("bash", "-c", line, external=True)
        session.run(".venv/bin/python", str(check), "--", "bash", "-c", serve, external=True)


def _readme_block(marker: str) -> list[str]:
    """Return the lines of the README's code block under ``<!-- marker -->``."""
    readme = Path("README.md").read_text(encoding="utf-8")
    block = readme.split(f"<!-- {marker} -->\n```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage and the fail-under gate (arq's tests: the ``arq`` session)."""
    _install(session, "tests")
    _coverage(session, report=f"--omit={ARQ_MODULE}")


@nox.session
def arq(session: nox.Session) -> None:
    """Run the arq tests with arq's own dependencies, and the fail-under gate on ``fapilog.arq``."""
    _install(session, "arq")
    _coverage(session, "tests/test_arq.py", report=f"--include={ARQ_MODULE}")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over src, tests, benchmarks and this file."""
    _install(session, "typecheck", "bench")
    _install_arq_without_dependencies(session)
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Compare fapilog with its peers, interleaved in one run, as ratios."""
    _install(session, "bench")
    _install_arq_without_dependencies(session)
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def bench_upstream(session: nox.Session) -> None:
    """Build upstream fapilog 0.18.1's own virtualenv (it shares our import name) and measure it; ``bench`` then compares."""
    session.install("fapilog==0.18.1")  # never in our dependency groups: it would shadow this package
    session.run("python", "benchmarks/upstream_fapilog.py", *session.posargs)


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


@nox.session
def transparency(session: nox.Session) -> None:
    """Run FastAPI's own test suite plain, then with every ``FastAPI()`` instrumented; print what differs.

    Fails when a test that passes plain does not pass instrumented. The
    suite comes from FastAPI's source distribution (its ``tests/`` and
    ``docs_src/``), its test dependencies from its ``tests`` group.
    """
    harness = Path("tests/transparency").resolve()
    work = Path(session.create_tmp()).resolve()
    suite = work / f"fastapi-{FASTAPI_SUITE}"
    if not (suite / "tests").is_dir():
        session.install("pip")
        source = ("--no-binary", ":all:", "--no-deps", f"fastapi=={FASTAPI_SUITE}", "-d", str(work))
        session.run("python", "-m", "pip", "download", "--quiet", *source)
        with tarfile.open(work / f"fastapi-{FASTAPI_SUITE}.tar.gz") as archive:
            archive.extractall(work, filter="data")
        shutil.rmtree(suite / "fastapi")  # the installed release is tested, not its source beside the tests
    groups = nox.project.dependency_groups(nox.project.load_toml(suite / "pyproject.toml"), "tests")
    session.install("-e", ".", f"fastapi[all]=={FASTAPI_SUITE}", "orjson", "ujson", *groups)  # + the optional response classes
    outcomes = {run: work / f"outcomes-{run}.json" for run in ("plain", "instrumented")}
    stats = work / "instrumented-stats.json"
    deselected = [f"--deselect={test}" for test in FASTAPI_SUITE_DESELECTED]
    for run, plugins in (("plain", []), ("instrumented", ["-p", "fapilog_everywhere"])):
        env = {"PYTHONPATH": str(harness), "OUTCOMES_JSON": str(outcomes[run]), "FAPILOG_STATS_JSON": str(stats)}
        with session.chdir(suite):
            session.run(
                *("python", "-m", "pytest", "tests", "-q", "-n", "2", "-p", "no:cacheprovider", "-p", "no:sugar"),
                *("-p", "fapilog_outcomes", *plugins, *deselected),
                env=env,
                success_codes=[0, 1],  # failing tests are compared, not fatal
            )
    session.run("python", "-m", "tests.transparency.compare", str(outcomes["plain"]), str(outcomes["instrumented"]), str(stats))
