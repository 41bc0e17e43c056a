"""The import rules of docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parent.parent
CORE = ROOT / "kitaru_core"
DEFERRED_ON_PURPOSE = {"kitaru_core.loaded_plugins", "kitaru_core.client"}
"""Modules allowed to import a module of the core inside a function (the client: the
HTTP client and the diff only when they are used)."""
LAZY_LAYERS = ("kitaru_core.cli", "kitaru_core.testing")
"""The CLI imports the engine per command so `kitaru --help` stays fast; the testing
helpers import what each suite needs."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules() -> dict[str, Path]:
    return {module_name(p): p for p in CORE.rglob("*.py") if "migrations" not in p.parts}


def imports(path: Path) -> Iterator[tuple[str, bool, bool]]:
    """(imported module, at module level, under TYPE_CHECKING) for each import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node: ast.AST, top: bool, typing_only: bool) -> Iterator[tuple[str, bool, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from walk(child, top, True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, False, typing_only)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, top, typing_only
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                yield child.module, top, typing_only
                for alias in child.names:  # `from kitaru_core.builtin import plugin`
                    yield f"{child.module}.{alias.name}", top, typing_only
            else:
                yield from walk(child, top, typing_only)

    yield from walk(tree, True, False)


def under(name: str, *packages: str) -> bool:
    """Whether module ``name`` is one of ``packages`` or inside one (whole names:
    ``kitaru_core.client`` is not under ``kitaru_core.cli``)."""
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_under_matches_whole_names() -> None:
    assert under("kitaru_core.cli.app", "kitaru_core.cli")
    assert under("kitaru_core.cli", "kitaru_core.cli")
    assert not under("kitaru_core.client", "kitaru_core.cli")


def test_the_runtime_never_imports_the_client_or_the_cli() -> None:
    offenders = [
        f"{name} imports {target}"
        for name, path in core_modules().items()
        if under(name, "kitaru_core.runtime")
        for target, _top, _typing in imports(path)
        if under(target, "kitaru_core.client", "kitaru_core.cli")
    ]
    assert offenders == []


STORE_HOLDERS = {"store", "service", "checker"}
"""Names through which server code reaches the database."""


def _calls_outside_nested_functions(node: ast.AST) -> Iterator[ast.Call]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue  # a function handed to a thread runs there, not on the loop
        if isinstance(child, ast.Call):
            yield child
        yield from _calls_outside_nested_functions(child)


def test_no_async_code_of_the_server_calls_the_store_on_the_event_loop() -> None:
    """A slow or restarting database must not stop the event loop: async code reaches
    the store through ``anyio.to_thread``. (``hub`` methods that are themselves async
    are awaited, and use threads themselves.)"""
    offenders = []
    for name, path in core_modules().items():
        if not under(name, "kitaru_core.server"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.AsyncFunctionDef):
                continue
            awaited = {id(a.value) for a in ast.walk(node) if isinstance(a, ast.Await)}
            for call in _calls_outside_nested_functions(node):
                chain = ast.unparse(call.func).split(".")
                if id(call) not in awaited and STORE_HOLDERS & set(chain[:-1]):
                    offenders.append(f"{name}:{call.lineno} {node.name}: {ast.unparse(call)}")
    assert offenders == []


def test_the_core_imports_its_own_modules_at_the_top() -> None:
    modules = core_modules()
    offenders = [
        f"{name} imports {target} inside a function"
        for name, path in modules.items()
        if name not in DEFERRED_ON_PURPOSE and not under(name, *LAZY_LAYERS)
        for target, top, typing_only in imports(path)
        if not top and not typing_only and target in modules
    ]
    assert offenders == []


def test_module_level_imports_of_the_core_have_no_cycle() -> None:
    modules = core_modules()
    graph = {
        name: {
            t for t, top, typing_only in imports(path) if top and not typing_only and t in modules
        }
        for name, path in modules.items()
    }
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_plugins_import_only_the_public_plugin_api() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {target}"
        for path in (ROOT / "plugins").rglob("*.py")
        if "build" not in path.parts
        for target, _top, _typing in imports(path)
        if target.startswith("kitaru_core")
    ]
    assert offenders == []


OPTIONAL = ("fastapi", "uvicorn", "starlette", "mcp", "pydantic_ai", "httpx")
"""What the server, MCP and the PydanticAI adapter need: never loaded by a flow or the CLI's
help, which must work (and stay fast) without them."""


def test_running_a_flow_and_the_cli_help_import_no_optional_package(tmp_path: Path) -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import kitaru\n"
        "from kitaru import checkpoint, flow\n"
        "@checkpoint\n"
        "def step(x: int) -> int:\n"
        "    return x + 1\n"
        "@flow\n"
        "def one(x: int) -> int:\n"
        "    return step(x)\n"
        "assert one.run(1).wait() == 2\n"
        "from kitaru_core.cli.app import app\n"
        "from typer.main import get_command\n"
        "get_command(app).get_help(__import__('click').Context(get_command(app)))\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL!r}))\n"
    )
    env = {**__import__("os").environ, "KITARU_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
