"""What a flow is, and where it can be imported from again, so any process can run an
execution by id.

``FlowDefinition`` is all the engine needs to run an execution (how user code starts
one, ``run`` and ``replay``, is ``flow.py``, a layer up). Defining a flow registers it
by reference, so a process that defined it runs its executions without importing.

A flow in an importable module is recorded as ``module:qualname``. A flow in a script
run as ``__main__`` is recorded by the script's path and re-imported under another
module name, so the script's ``if __name__ == "__main__":`` block does not run again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Generic, ParamSpec, TypeVar

from kitaru_core import serialization
from kitaru_core.errors import KitaruUsageError
from kitaru_core.untrusted import plain_data, validate_name

# modules imported from a script path -> that path
_script_paths: dict[str, str] = {}


def flow_ref_for(func: Any) -> str:
    module = func.__module__
    qualname = func.__qualname__
    if module == "__main__":
        path = getattr(sys.modules["__main__"], "__file__", None)
        if path:
            return f"{os.path.abspath(path)}:{qualname}"
    elif module in _script_paths:
        return f"{_script_paths[module]}:{qualname}"
    return f"{module}:{qualname}"


def is_script(module_name: str) -> bool:
    """Whether the module is a script Kitaru imported by its path (``kitaru run x.py:f``)."""
    return module_name == "__main__" or module_name in _script_paths


def source_root_for(func: Any) -> str | None:
    """The ``sys.path`` entry the flow's module was imported from, so another process
    started elsewhere can import it too."""
    module = sys.modules.get(func.__module__)
    path = getattr(module, "__file__", None)
    if not path or func.__module__ in ("__main__", *_script_paths):
        return None
    root = os.path.dirname(os.path.abspath(path))
    depth = func.__module__.count(".") + (os.path.basename(path) == "__init__.py")
    for _ in range(depth):
        root = os.path.dirname(root)
    return root


def import_reference(ref: str, source_root: str | None = None) -> Any:
    """The object a reference names, importing its module or script as needed."""
    source, _, qualname = ref.rpartition(":")
    if "<locals>" in qualname:
        raise KitaruUsageError(
            f"flow {ref!r} was defined inside a function, so no other process can import "
            "it; define flows at module level to resume them elsewhere"
        )
    if _is_path(source):
        module = import_script(os.path.abspath(source))
    else:
        module = _import_module(source, ref, source_root)
    found = _attribute(module, qualname)
    if found is _MISSING and _changed_since_import(module):
        # A long-running process (a server, a worker) imported the file before a deploy
        # added this flow: import it again rather than fail the execution for it.
        found = _attribute(_reimport(module, source, ref, source_root), qualname)
    if found is _MISSING:
        raise KitaruUsageError(
            f"{source} has no flow named {qualname!r} (recorded as {ref!r}); was it "
            "renamed or removed since the execution started?"
        )
    return found


_MISSING = object()
_imported_at: dict[str, float] = {}
"""When each module this process imported to find a flow was imported (its file's
modification time then), to notice a file changed since."""


def note_imported(module: Any) -> None:
    """Remember when ``module`` (imported to find flows) was imported."""
    _imported_at.setdefault(module.__name__, _mtime(module) or 0.0)


def _attribute(module: Any, qualname: str) -> Any:
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _mtime(module: Any) -> float | None:
    path = getattr(module, "__file__", None)
    try:
        return os.stat(path).st_mtime if path else None
    except OSError:
        return None


def _changed_since_import(module: Any) -> bool:
    now = _mtime(module)
    return now is not None and now != _imported_at.get(module.__name__, now)


def _reimport(module: Any, source: str, ref: str, source_root: str | None) -> Any:
    _imported_at[module.__name__] = _mtime(module) or 0.0
    if _is_path(source):
        path = os.path.abspath(source)
        for name, known in list(_script_paths.items()):
            if known == path:
                del _script_paths[name]
                sys.modules.pop(name, None)
        return import_script(path)
    return importlib.reload(module)


def _is_path(source: str) -> bool:
    return source.endswith(".py") or os.sep in source


def _import_module(name: str, ref: str, source_root: str | None) -> Any:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if source_root and source_root not in sys.path and os.path.isdir(source_root):
        sys.path.append(source_root)  # where the module was found when the execution started
    try:
        module = importlib.import_module(name)
        note_imported(module)
        return module
    except ImportError as exc:
        raise KitaruUsageError(
            f"cannot import module {name!r} for flow {ref!r}: {exc}; run from the project "
            "directory or put it on PYTHONPATH"
        ) from exc


_script_lock = threading.RLock()
"""One script import at a time: a script is in ``sys.modules`` before its body has run,
so another thread (a worker's run beside its pass) must not find it half made."""


def import_script(path: str) -> Any:
    """A script's module, imported under a name of its own (its main block does not run)."""
    with _script_lock:
        return _import_script(path)


def _import_script(path: str) -> Any:
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main_file and os.path.abspath(main_file) == path:
        return main
    for name, known in _script_paths.items():
        if known == path:
            return sys.modules[name]
    if not os.path.exists(path):
        raise KitaruUsageError(
            f"the script {path} that defines this flow no longer exists; restore it to "
            "resume the execution"
        )
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha1(path.encode()).hexdigest()[:8]
    name = f"kitaru_script_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise KitaruUsageError(f"cannot import the script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _imported_at[name] = _mtime(module) or 0.0
    _script_paths[name] = path
    serialization.script_modules.append(name)
    script_dir = os.path.dirname(path)
    if script_dir not in sys.path:
        sys.path.insert(0, script_dir)  # as if the script were run: its siblings import
    token = _importing_script.set(path)
    try:
        spec.loader.exec_module(module)
    except TopLevelRun as stopped:
        # The script starts a flow at its top level (no `if __name__ == "__main__":`).
        # Everything above that line is defined; nothing is started a second time.
        print(f"kitaru: {stopped}", file=sys.stderr)
    finally:
        _importing_script.reset(token)
    return module


_importing_script: ContextVar[str | None] = ContextVar("kitaru_importing_script", default=None)


class TopLevelRun(BaseException):
    """Unwinds a script being imported to find its flow at a top-level ``.run()``: a
    resume must not start a second execution. (Not an ``Exception``, so the script's
    own ``except Exception`` cannot swallow it.)"""


def refuse_start_while_importing(flow_name: str) -> None:
    """Called by ``run``/``start``/``replay``: stop a script's import at the call."""
    path = _importing_script.get()
    if path is None:
        return
    lines = [f.lineno for f in traceback.extract_stack() if f.filename == path]
    where = f"{path}, line {lines[-1]}" if lines else path
    raise TopLevelRun(
        f"{where} starts flow {flow_name!r} at the top level of the script; Kitaru imported "
        "the script to find a flow and skipped the rest of it, so nothing was started twice. "
        'Put the call under `if __name__ == "__main__":`'
    )


P = ParamSpec("P")
R = TypeVar("R")

registry: dict[str, FlowDefinition[Any, Any]] = {}
"""Flows by reference, filled as they are defined."""


class FlowDefinition(Generic[P, R]):
    def __init__(
        self,
        func: Callable[P, R],
        *,
        retries: int = 0,
        cache: bool = True,
        stack: str | None = None,
        name: str | None = None,
        concurrency: int | None = None,
        key: str | None = None,
        settings: dict[str, Any] | None = None,
        max_cost_usd: float | None = None,
        max_llm_calls: int | None = None,
        version: str | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.func = func
        self.name = validate_name("flow name", name or func.__name__)
        self.retries = retries
        self.cache = cache
        self.stack = stack
        if concurrency is not None and (isinstance(concurrency, bool) or concurrency < 1):
            raise KitaruUsageError(
                f"flow {self.name!r}: concurrency must be a whole number of 1 or more, "
                f"not {concurrency!r}"
            )
        self.concurrency = concurrency
        """At most this many executions of the flow run at once (per metadata store)."""
        if key is not None and key not in self.signature.parameters:
            raise KitaruUsageError(
                f"flow {self.name!r}: key={key!r} names no parameter of the flow; its "
                f"parameters: {', '.join(self.signature.parameters) or 'none'}"
            )
        self.key = key
        """The parameter whose value runs one execution at a time, in start order."""
        self.settings = plain_data(settings or {}, what=f"the settings of flow {self.name!r}")
        """Per-orchestrator settings of this flow's executions, e.g. ``{"kubernetes":
        {"resources": {"limits": {"nvidia.com/gpu": 1}}}}``."""
        self.budget = _budget(self.name, max_cost_usd, max_llm_calls)
        """``max_cost_usd`` and ``max_llm_calls`` (those set), checked before each LLM call."""
        if version is not None and (not isinstance(version, str) or not version.strip()):
            raise KitaruUsageError(
                f"flow {self.name!r}: version must be a non-empty string, not {version!r}"
            )
        self.version = version
        """The code version its executions record, when the flow names one."""
        self.ref = flow_ref_for(func)
        functools.update_wrapper(self, func)
        registry[self.ref] = self

    def queue_of(self, bound: inspect.BoundArguments) -> tuple[str | None, str | None]:
        """(queue, key) of an execution with these arguments: the flow's name when it
        has a concurrency limit or a key, and the key argument's value as text."""
        if self.concurrency is None and self.key is None:
            return None, None
        if self.key is None:
            return self.name, None
        arguments = inspect.BoundArguments(self.signature, bound.arguments.copy())
        arguments.apply_defaults()
        value = arguments.arguments[self.key]
        return self.name, value if isinstance(value, str) else json.dumps(
            value, sort_keys=True, default=str
        )

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    def __repr__(self) -> str:
        return f"<flow {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        raise KitaruUsageError(
            f"flow {self.name!r} was called directly; start an execution with "
            f"{self.name}.run(...), which returns a handle (.wait() gives the result)"
        )


def _budget(flow: str, max_cost_usd: float | None, max_llm_calls: int | None) -> dict[str, Any]:
    budget: dict[str, Any] = {}
    if max_cost_usd is not None:
        if isinstance(max_cost_usd, bool) or not max_cost_usd >= 0:
            raise KitaruUsageError(
                f"flow {flow!r}: max_cost_usd must be a number of dollars, 0 or more, not "
                f"{max_cost_usd!r}"
            )
        budget["max_cost_usd"] = float(max_cost_usd)
    if max_llm_calls is not None:
        if (
            isinstance(max_llm_calls, bool)
            or not isinstance(max_llm_calls, int)
            or max_llm_calls < 0
        ):
            raise KitaruUsageError(
                f"flow {flow!r}: max_llm_calls must be a whole number, 0 or more, not "
                f"{max_llm_calls!r}"
            )
        budget["max_llm_calls"] = max_llm_calls
    return budget


def resolve_flow(ref: str, source_root: str | None = None) -> FlowDefinition[Any, Any]:
    """The flow recorded as ``ref``: already defined in this process, or imported."""
    if ref in registry:
        return registry[ref]
    found = import_reference(ref, source_root)
    if not isinstance(found, FlowDefinition):
        raise KitaruUsageError(f"{ref!r} is not a @flow (it is {type(found).__name__})")
    return found


def resolve_new_flow(target: str) -> FlowDefinition[Any, Any]:
    """The flow a person names to start (``kitaru run``, a schedule): errors speak of
    what they typed, not of an execution recorded earlier."""
    source, _, qualname = target.rpartition(":")
    if not source or not qualname:
        raise KitaruUsageError(
            f"{target!r} names no flow: write FILE.py:FLOW or MODULE:FLOW, "
            "e.g. examples/review_flow.py:review or myapp.flows:research"
        )
    if _is_path(source) and not os.path.isfile(source):
        raise KitaruUsageError(
            f"there is no file {source} (from {os.getcwd()}); check the path, or name a "
            "module instead (myapp.flows:research)"
        )
    module = import_script(os.path.abspath(source)) if _is_path(source) else None
    if module is None:
        module = _import_module(source, target, None)
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, FlowDefinition):
        flows = sorted(
            name for name, value in vars(module).items() if isinstance(value, FlowDefinition)
        )
        defined = (
            f"it defines these flows: {', '.join(flows)}"
            if flows
            else "it defines no @flow at its top level"
        )
        if found is None:
            raise KitaruUsageError(f"{source} has no flow named {qualname!r}; {defined}")
        kind = type(found).__name__
        raise KitaruUsageError(f"{target} is a {kind}, not a @flow; {defined}")
    return found
