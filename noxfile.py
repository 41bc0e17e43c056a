"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``, ``demo``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]
# A missing interpreter is a failure, never a skipped session that "passes".
nox.options.error_on_missing_interpreters = True

SUPPORTED = ("3.11", "3.12", "3.13", "3.14")


def _python() -> str:
    """The Python the sessions run on: the one running nox when Kitaru supports it, else
    the first supported one on PATH (3.11 when none is: the session then fails)."""
    if sys.version_info >= (3, 11):  # noqa: UP036 (nox itself may run on an older Python)
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    return next((v for v in SUPPORTED if shutil.which(f"python{v}")), SUPPORTED[0])


PYTHON = _python()
# The README's line that puts `kitaru` on PATH (its test checks the two agree).
SETUP_LINE = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]"'


def postgres_url(session: nox.Session) -> str | None:
    """Start the machine's PostgreSQL if needed and return the test database's URL."""
    if os.environ.get("KITARU_TEST_BACKENDS", "sqlite,postgres") == "sqlite":
        session.warn("KITARU_TEST_BACKENDS=sqlite: skipping the PostgreSQL run")
        return None
    if os.environ.get("KITARU_TEST_DATABASE_URL"):
        return os.environ["KITARU_TEST_DATABASE_URL"]
    out = subprocess.run(["bash", ".ci/postgres.sh"], capture_output=True, text=True)
    if out.returncode != 0:
        session.error(
            "PostgreSQL is needed for the second half of the suite and could not be "
            f"started:\n{out.stderr}\nSet KITARU_TEST_BACKENDS=sqlite to run SQLite only."
        )
    return out.stdout.strip().splitlines()[-1]


# Plugin packages in this repository, each tested by its own suite against local servers.
PLUGINS = ["kitaru-aws", "kitaru-gcp", "kitaru-azure", "kitaru-kubernetes"]
# What a plugin's end-to-end tests also need: the Kubernetes stack keeps artifacts in S3.
ALSO_NEEDS = {"kitaru-kubernetes": ["plugins/kitaru-aws"]}
AZURITE = "plugins/kitaru-azure/tests/.azurite"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The core suite against SQLite, then against PostgreSQL; then every plugin's suite.
    Every suite runs, whatever the others did; the session then fails naming those that
    failed."""
    session.install("-e", ".[postgres,test]", "-e", "plugins/_template")
    # The core suite is about Kitaru without the cloud plugins; a venv reused from an
    # earlier run has them installed by the plugin suites below.
    session.run("pip", "uninstall", "--quiet", "--yes", *PLUGINS, silent=True)
    _ensure_chromium(session)
    # Two test processes: most tests wait on subprocesses and servers, not the CPU.
    # A file stays in one process, so its module-wide server starts once.
    # A test process that crashes is not replaced: under `--dist loadfile`, pytest-xdist
    # 3.8 hands its replacement work that never ends, and the run hangs until killed
    # (pytest-dev/pytest-xdist#1378). The crash fails the suite, naming the test.
    # The test that restarts PostgreSQL runs alone, after the suite that shares it.
    args = session.posargs or [
        *("-q", "-ra", "-n", "2", "--dist", "loadfile", "--max-worker-restart", "0"),
        *("-m", "not restarts_postgres"),
    ]
    url = postgres_url(session)
    failed: list[str] = []
    _suite(session, failed, "core suite, SQLite", args, {"KITARU_TEST_DATABASE_URL": ""})
    if url:
        pg = {"KITARU_TEST_DATABASE_URL": url}
        _suite(session, failed, "core suite, PostgreSQL", args, pg)
        if not session.posargs:
            restart = ["-q", "-ra", "-m", "restarts_postgres", "-p", "no:cacheprovider"]
            _suite(session, failed, "PostgreSQL restart", restart, pg)
    for plugin in PLUGINS:
        _plugin_suite(session, failed, plugin, url)
    if failed:
        session.error("failed: " + "; ".join(failed))
    session.log("every suite passed")


def _suite(
    session: nox.Session, failed: list[str], name: str, args: list[str], env: dict[str, str]
) -> None:
    """Run pytest as one suite, recording a failure instead of stopping. The suite runs
    with HOME pointed at an empty folder, which must still be empty afterwards: no test
    may write into a user's real home."""
    session.log(name)
    home = Path(tempfile.mkdtemp(prefix="kitaru-test-home-"))
    clean = {"HOME": str(home), "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": "", "XDG_CACHE_HOME": ""}
    try:
        session.run("pytest", *args, env={**env, **clean})
    except nox.command.CommandFailed:
        failed.append(name)
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    shutil.rmtree(home, ignore_errors=True)
    if written:
        session.warn(f"{name} wrote into the user's home: {', '.join(written[:10])}")
        failed.append(f"{name} (wrote into HOME)")


CHROMIUM = "/usr/bin/chromium"


def _ensure_chromium(session: nox.Session) -> None:
    """The web UI's tests drive Debian's chromium with Playwright (no browser is
    downloaded): install it with apt when it is missing."""
    if os.path.exists(CHROMIUM):
        return
    if not shutil.which("apt-get"):
        session.error(f"the web UI's tests need Debian's chromium at {CHROMIUM}; install it")
    apt = [] if os.geteuid() == 0 else ["sudo"]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(
        [*apt, "apt-get", "install", "-y", "-q", "chromium"], env={**os.environ, **env}
    ).returncode:
        session.run(*apt, "apt-get", "update", "-q", external=True, env=env)
        session.run(*apt, "apt-get", "install", "-y", "-q", "chromium", external=True, env=env)


def _plugin_suite(
    session: nox.Session, failed: list[str], plugin: str, database_url: str | None = None
) -> None:
    extra = [arg for path in ALSO_NEEDS.get(plugin, []) for arg in ("-e", path)]
    session.install("-e", f"plugins/{plugin}[test]", *extra)
    if plugin == "kitaru-azure":
        _install_azurite(session)
    env = {"KITARU_TEST_DATABASE_URL": database_url} if database_url else {}
    args = ["-q", "-ra", f"plugins/{plugin}/tests", "-p", "no:cacheprovider"]
    _suite(session, failed, f"plugin {plugin}", args, env)


def _install_azurite(session: nox.Session) -> None:
    """Azurite, the Blob Storage emulator, comes from npm."""
    session.run(
        "npm",
        "install",
        "--no-audit",
        "--no-fund",
        "--prefix",
        AZURITE,
        "azurite@3",
        external=True,
        silent=True,
    )


@nox.session(python=PYTHON)
@nox.parametrize("plugin", PLUGINS)
def plugin(session: nox.Session, plugin: str) -> None:
    """One plugin's suite: ``nox -s "plugin(plugin='kitaru-aws')"``."""
    session.install("-e", ".[postgres,test]")
    failed: list[str] = []
    _plugin_suite(session, failed, plugin, postgres_url(session))
    if failed:
        session.error("failed: " + "; ".join(failed))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[postgres,server,pydantic-ai,openai-agents]", "mypy>=1.10", "pytest")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Print the performance figures; ``nox -s bench -- --peers`` adds DBOS and LangGraph."""
    session.install(
        "-e", ".[postgres,server,pydantic-ai,openai-agents]", "-e", "plugins/kitaru-kubernetes"
    )
    args = [a for a in session.posargs if a != "--stores"]
    url = postgres_url(session)
    if url:  # memory contention on PostgreSQL, beside SQLite
        args += ["--database-url", url]
    if "--peers" in args:
        session.install("dbos", "langgraph", "langgraph-checkpoint-sqlite")
    session.run("python", "benchmarks/run.py", *args)
    # The worker: recovery, timers, an idle worker, queues on PostgreSQL (beside DBOS's).
    worker_args = [a for a in args if a in ("--peers", "--database-url") or a == url]
    session.run("python", "benchmarks/worker.py", *worker_args)
    # PostgreSQL restarted under a server and a worker: seconds to the first result.
    if url:
        session.install("pytest")  # its servers are the tests' own harness
        session.run("python", "benchmarks/postgres_restart.py", "--database-url", url)
    # The server: POST /input to result (beside DBOS and LangGraph), GET throughput, memory.
    session.run("python", "benchmarks/server.py", *[a for a in args if a == "--peers"])
    # A checkpoint through `kitaru serve` on loopback (the HTTP metadata store).
    session.run("python", "benchmarks/http_store.py", *([f"--database-url={url}"] if url else []))
    # Retention at scale: prune and gc, their time and peak memory.
    session.run("python", "benchmarks/retention.py")
    # The PydanticAI adapter's cost per model request.
    session.run("python", "benchmarks/agents.py")
    # What `code: archive` adds to a start when the source tree did not change.
    session.run("python", "benchmarks/code_archive.py")
    # A deploy amid a thousand waiting executions: the dry-run check, then all resumed.
    session.run("python", "benchmarks/deploy.py")
    # The web UI in Debian's chromium (`apt install chromium`; no browser is downloaded).
    session.install("playwright>=1.45")
    session.run("python", "benchmarks/ui.py")
    if "--stores" in session.posargs:  # a 200 MB artifact through every store
        session.install("pytest")  # the plugins' test servers are pytest fixtures too
        for plugin in PLUGINS:
            session.install("-e", f"plugins/{plugin}[test]")
        _install_azurite(session)
        session.run("python", "benchmarks/stores.py")


@nox.session(python=PYTHON)
def dist(session: nox.Session) -> None:
    """Wheels of the core, every plugin and all they need, into dist/; then a check that
    `pip install --no-index --find-links dist "kitaru[aws]"` works in a fresh venv."""
    shutil.rmtree("dist", ignore_errors=True)
    session.install("pip>=24", "pytest>=8", "pytest-timeout>=2.3")
    session.run(
        "pip",
        "wheel",
        "--quiet",
        "--wheel-dir",
        "dist",
        ".[postgres]",
        *(f"plugins/{plugin}" for plugin in PLUGINS),
    )
    # The check runs without the suite's conftest: this venv has only pytest, and
    # what it tests is a fresh venv that gets Kitaru from the wheels alone.
    session.run(
        "pytest",
        "-q",
        "-ra",
        "tests/packaging",
        "-p",
        "no:cacheprovider",
        "--confcutdir=tests/packaging",
        env={"KITARU_DIST_DIR": os.path.abspath("dist")},
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """A durable flow that crashes and is resumed, on the local stack."""
    session.install("-e", ".")
    session.run("python", "examples/crash_demo.py")
    session.log(f"To use the kitaru command from here on: {SETUP_LINE}")
