"""Plugins found the real way: packages installed with pip into a fresh virtual
environment, discovered through their entry points, one failing without harm."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from conftest import subprocess_env
from kitaru_core import hookspecs

REPO = Path(__file__).parent.parent

GOOD = """
from kitaru.plugin import PLUGIN_API, Flavor, hookimpl

KITARU_PLUGIN_API = PLUGIN_API

@hookimpl
def kitaru_register_artifact_stores(register):
    register(Flavor("artifact_store", "mirror", implementation="kitaru_mirror.store:MirrorStore",
                    config="kitaru_mirror.store:MirrorConfig", description="two copies"))

@hookimpl
def kitaru_step_ended(event):
    _event(f"{event.kind} {event.name} {event.status}")

@hookimpl
def kitaru_execution_ended(event):
    _event(f"execution {event.flow_name} {event.status}")

@hookimpl
def kitaru_register_commands(app):
    @app.command("mirror-hello")
    def hello():
        print("hello from the mirror plugin")

def _event(line):
    import os
    with open(os.environ["MIRROR_EVENTS"], "a") as f:
        f.write(line + "\\n")
"""

GOOD_STORE = '''
from pathlib import Path
from kitaru.plugin import ArtifactStore, StrictConfig

class MirrorConfig(StrictConfig):
    first: str
    second: str

class MirrorStore(ArtifactStore):
    """Writes every blob to two directories; reads the first."""
    flavor = "mirror"
    def __init__(self, config):
        self.dirs = [Path(config.first), Path(config.second)]
    def put(self, key, source):
        data = source if isinstance(source, bytes) else source.read()
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)
            (d / key).write_bytes(data)
    def open(self, key):
        return open(self.dirs[0] / key, "rb")
    def exists(self, key):
        return (self.dirs[0] / key).exists()
    def delete(self, key):
        for d in self.dirs:
            (d / key).unlink(missing_ok=True)
    def list(self, prefix=""):
        return sorted(p.name for p in self.dirs[0].glob(prefix + "*"))
    def uri(self, key):
        return (self.dirs[0] / key).as_uri()
'''

PACKAGES = {
    "kitaru-mirror": ("mirror", "kitaru_mirror", {"__init__.py": GOOD, "store.py": GOOD_STORE}),
    "kitaru-broken": (
        "broken",
        "kitaru_broken",
        {"__init__.py": "KITARU_PLUGIN_API = 2\nimport a_module_that_is_not_installed\n"},
    ),
    "kitaru-typo": (
        "typo",
        "kitaru_typo",
        {
            "__init__.py": textwrap.dedent("""
        import kitaru
        KITARU_PLUGIN_API = 2

        @kitaru.hookimpl
        def kitaru_register_artifact_store(register):
            pass
        """)
        },
    ),
    "kitaru-future": ("future", "kitaru_future", {"__init__.py": "KITARU_PLUGIN_API = 4\n"}),
    "kitaru-oldorch": (
        "oldorch",
        "kitaru_oldorch",
        {
            "__init__.py": textwrap.dedent("""
        from kitaru.plugin import Flavor, hookimpl
        KITARU_PLUGIN_API = 2  # before orchestrators' start() took background=

        @hookimpl
        def kitaru_register_orchestrators(register):
            register(Flavor("orchestrator", "old", implementation="x:Y", config="x:Z"))
        """)
        },
    ),
}


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment that sees Kitaru, with the plugin packages above pip-installed."""
    root = tmp_path_factory.mktemp("plugins")
    venv = root / "venv"
    # No pip or setuptools of its own: it borrows the test environment's (see the .pth).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    outer = sysconfig.get_paths()["purelib"]
    (site / "kitaru_outer.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    paths = []
    for dist, (entry, module, files) in PACKAGES.items():
        package = root / dist
        (package / module).mkdir(parents=True)
        for name, text in files.items():
            (package / module / name).write_text(text)
        (package / "pyproject.toml").write_text(
            textwrap.dedent(f"""
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "{dist}"
            version = "1.2.3"
            [project.entry-points.kitaru]
            {entry} = "{module}"
            [tool.setuptools]
            packages = ["{module}"]
        """)
        )
        paths.append(str(package))
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--disable-pip-version-check",
            *paths,
        ],
        check=True,
        capture_output=True,
        # The build's tools look in HOME (rustup's settings): a home of its own.
        env={**os.environ, "HOME": str(root / "home")},
    )
    return venv


def venv_kitaru(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = subprocess_env(**env)
    environment.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "kitaru", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_installed_plugins_are_listed_and_a_broken_one_does_not_break_the_rest(
    plugin_venv: Path,
) -> None:
    out = venv_kitaru(plugin_venv, "plugins", "list", "-o", "json")
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    mirror = plugins["mirror"]
    assert (mirror["distribution"], mirror["version"], mirror["loaded"]) == (
        "kitaru-mirror",
        "1.2.3",
        True,
    )
    assert mirror["flavors"] == ["artifact_store:mirror"]
    assert plugins["builtin"]["loaded"]
    broken = plugins["broken"]
    assert not broken["loaded"]
    assert "No module named 'a_module_that_is_not_installed'" in broken["error"]
    assert not plugins["typo"]["loaded"]
    assert "kitaru_register_artifact_store" in plugins["typo"]["error"]
    assert not plugins["future"]["loaded"]
    assert "written for plugin API 4" in plugins["future"]["error"]
    # API 2 still loads, but not an orchestrator written for it.
    assert not plugins["oldorch"]["loaded"]
    assert "orchestrators need API 3" in plugins["oldorch"]["error"]
    table = venv_kitaru(plugin_venv, "plugins", "list", COLUMNS="250")
    assert "failed" in table.stdout and "mirror" in table.stdout


def test_a_plugin_flavor_works_in_a_registered_stack(plugin_venv: Path, tmp_path: Path) -> None:
    stack = tmp_path / "mirror.yaml"
    stack.write_text(
        f"name: mirrored\nartifact_store:\n  flavor: mirror\n"
        f"  first: {tmp_path / 'one'}\n  second: {tmp_path / 'two'}\n"
    )
    events = tmp_path / "events.txt"
    env = {"MIRROR_EVENTS": str(events), "KITARU_INLINE_ARTIFACT_BYTES": "0"}
    registered = venv_kitaru(plugin_venv, "stack", "register", str(stack), "--activate", **env)
    assert registered.returncode == 0, registered.stderr
    described = json.loads(
        venv_kitaru(plugin_venv, "stack", "describe", "-o", "json", **env).stdout
    )
    store = described["components"][0]
    assert (store["flavor"], store["plugin"], store["plugin_version"]) == (
        "mirror",
        "mirror",
        "1.2.3",
    )
    flows = tmp_path / "agent.py"
    flows.write_text(
        textwrap.dedent("""
        from kitaru import checkpoint, flow

        @checkpoint
        def shout(text: str) -> str:
            return text.upper()

        @flow
        def agent(text: str) -> str:
            return shout(text)
    """)
    )
    ran = venv_kitaru(
        plugin_venv, "run", f"{flows}:agent", "--arg", "text=mirrored", "-o", "json", **env
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"] == "MIRRORED"
    first, second = (
        sorted(p.name for p in (tmp_path / "one").iterdir()),
        sorted(p.name for p in (tmp_path / "two").iterdir()),
    )
    assert first == second and len(first) == 2  # the input; output and result share a hash
    assert events.read_text().split("\n")[:2] == [
        "checkpoint shout completed",
        "execution agent completed",
    ]
    hello = venv_kitaru(plugin_venv, "mirror-hello", **env)
    assert hello.stdout.strip() == "hello from the mirror plugin"


def test_load_and_disable_controls(plugin_venv: Path) -> None:
    def names(**env: str) -> set[str]:
        out = venv_kitaru(plugin_venv, "plugins", "list", "-o", "json", **env)
        return {p["name"] for p in json.loads(out.stdout)}

    assert names(KITARU_LOAD_PLUGINS="") == {"builtin"}
    assert names(KITARU_LOAD_PLUGINS="mirror") == {"builtin", "mirror"}
    assert "broken" not in names(KITARU_DISABLE_PLUGINS="broken,typo")


def test_strict_mode_turns_a_broken_plugin_into_an_error(plugin_venv: Path) -> None:
    out = venv_kitaru(plugin_venv, "plugins", "list", KITARU_PLUGINS_STRICT="1")
    assert out.returncode == 1
    assert "plugin 'broken' failed to load" in out.stderr
    assert "KITARU_PLUGINS_STRICT=1" in out.stderr


def test_a_stack_naming_a_flavor_whose_plugin_failed_says_so(
    plugin_venv: Path, tmp_path: Path
) -> None:
    stack = tmp_path / "aws.yaml"
    stack.write_text("name: aws\nartifact_store: {flavor: s3, path: 's3://b/k'}\n")
    out = venv_kitaru(plugin_venv, "stack", "validate", str(stack))
    assert out.returncode == 1
    assert "'s3' for artifact_store (not installed" in out.stderr
    # A command that works from this checkout, never the public index's unrelated kitaru.
    assert "pip install -e " in out.stderr and "plugins/kitaru-aws" in out.stderr
    assert 'pip install "kitaru[aws]"' not in out.stderr


HEAVY = ("boto3", "botocore", "google.cloud", "azure", "kubernetes", "litellm")


def test_plugins_list_and_stack_describe_import_no_sdk() -> None:
    probe = (
        "import sys\n"
        "from kitaru_core.cli.app import main\n"
        "for argv in (['kitaru', 'plugins', 'list'], ['kitaru', 'stack', 'describe']):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print('IMPORTED', sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m.startswith('google.cloud')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert "IMPORTED []" in out.stdout, out.stdout + out.stderr


def test_every_hook_is_documented_for_plugin_authors() -> None:
    docs = (REPO / "docs" / "plugins.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("kitaru_")]
    assert len(hooks) >= 10
    for name in hooks:
        assert re.search(rf"^### `{name}\(", docs, re.M), (
            f"{name} is not documented in docs/plugins.md"
        )


def test_the_template_plugin_is_installed_in_the_test_environment() -> None:
    if os.environ.get("KITARU_TEST_NO_TEMPLATE"):
        pytest.skip("template plugin not installed")
    from kitaru_core.plugins import get_plugins

    assert get_plugins().infos["template"].loaded


def test_the_public_names_are_all_exported_and_resolve() -> None:
    import kitaru

    assert sorted(kitaru.__all__) == sorted(["__version__", *kitaru._EXPORTS])
    for name in kitaru.__all__:
        assert getattr(kitaru, name) is not None
