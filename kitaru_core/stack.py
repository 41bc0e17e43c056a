"""Stacks: which flavor of each component an execution uses, and how it is configured.

A stack file names a flavor for each of the four components, with that flavor's own
fields. Values may hold ``${ENV_VAR}`` (read from the environment) and
``{{ secret.NAME }}`` (read through the stack's own secret provider when the component
is built); neither is ever stored resolved. A component left out is the local default.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitaru_core.artifacts import Artifacts
from kitaru_core.builtin.server_artifact_store import ServerArtifactStore
from kitaru_core.components.artifact_store import ArtifactStore
from kitaru_core.components.orchestrator import Orchestrator
from kitaru_core.components.secret_provider import SecretNotFoundError, SecretProvider
from kitaru_core.errors import KitaruBackendError, KitaruStackError, KitaruUsageError
from kitaru_core.flavors import COMPONENT_TYPES, FIRST_PARTY_EXTRAS, Flavor, install_command
from kitaru_core.loaded_plugins import get_plugins
from kitaru_core.settings import Settings, load_settings
from kitaru_core.signing import SHARED_KEY_SECRET, Signer
from kitaru_core.store.metadata_store import get_store
from kitaru_core.untrusted import validate_name

LOCAL_STACK = "local"
DEFAULT_FLAVORS = {
    "artifact_store": "local",
    "secret_provider": "local",
    "orchestrator": "local",
    "llm_gateway": "litellm",
}
SECRET_REF = re.compile(r"\{\{\s*secret\.([A-Za-z0-9_.:@/-]+)\s*\}\}")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Both kinds of reference in one pattern, so a value is substituted in a single pass:
# text that came from the environment is never searched for secret references, nor a
# secret's value for ``${...}``.
REFERENCE = re.compile(f"{ENV_REF.pattern}|{SECRET_REF.pattern}")
MAX_STACK_FILE_BYTES = 1024 * 1024
MAX_STACK_DEPTH = 50
"""How deep a stack file's values may nest (a stack needs a handful of levels)."""
MAX_STACK_NODES = 10_000
"""YAML nodes a stack file may hold once its aliases are expanded (a stack file has a
few dozen; a "billion laughs" file has billions)."""
_SECRET_FIELD = re.compile(r"(key|secret|password|token|credential|connection_string)", re.I)
MASK = "********"


@dataclass(frozen=True)
class ComponentSpec:
    component_type: str
    flavor: str
    config: dict[str, Any]
    """The flavor's fields as written: references unresolved."""
    explicit: bool = True
    """False when the stack left the component out and it fell back to the default."""


@dataclass(frozen=True)
class StackSettings:
    """The stack's own settings for the service that runs it (``settings:`` in the file)."""

    max_recoveries: int = 3
    """Times the worker resumes an execution whose process died, before failing it."""
    retention_days: float | None = None
    """When set, the worker deletes executions that ended this many days ago."""
    code: str | None = None
    """``archive``: each execution's source tree goes to the artifact store and its runs
    import exactly that (``runtime/code_archive.py``); ``path``: runs import the code
    where they run. Unset: ``archive`` for orchestrators that run elsewhere, ``path``
    for the local one."""

    @classmethod
    def from_mapping(cls, data: Any, where: str) -> StackSettings:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise KitaruStackError(f"{where}: 'settings' must be a mapping")
        unknown = sorted(set(data) - {"max_recoveries", "retention_days", "code"})
        if unknown:
            raise KitaruStackError(
                f"{where}: unknown setting(s) {', '.join(map(repr, unknown))}; a stack's "
                "settings are 'max_recoveries', 'retention_days' and 'code'"
            )
        code = data.get("code")
        if code not in (None, "archive", "path"):
            raise KitaruStackError(
                f"{where}: settings.code must be 'archive' (ship each execution's source "
                f"with it) or 'path' (import the code where it runs), not {code!r}"
            )
        recoveries = data.get("max_recoveries", 3)
        if isinstance(recoveries, bool) or not isinstance(recoveries, int) or recoveries < 0:
            raise KitaruStackError(
                f"{where}: settings.max_recoveries must be a whole number of 0 or more "
                f"(got {recoveries!r})"
            )
        days = data.get("retention_days")
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days < 1e6
        ):
            raise KitaruStackError(
                f"{where}: settings.retention_days must be a number of days above 0 (got {days!r})"
            )
        return cls(max_recoveries=recoveries, retention_days=days, code=code)

    def to_mapping(self) -> dict[str, Any]:
        defaults = StackSettings()
        return {
            k: v
            for k, v in (
                ("max_recoveries", self.max_recoveries),
                ("retention_days", self.retention_days),
                ("code", self.code),
            )
            if v != getattr(defaults, k)
        }


@dataclass(frozen=True)
class StackDefinition:
    name: str
    components: dict[str, ComponentSpec]
    source: str
    """Where it came from: a file path, or ``built-in``."""
    settings: StackSettings = StackSettings()

    @classmethod
    def from_mapping(cls, data: Any, source: str) -> StackDefinition:
        where = f"stack file {source}"
        if not isinstance(data, dict):
            raise KitaruStackError(f"{where}: expected a mapping with 'name' and components")
        unknown = sorted(set(data) - {"name", "settings", *COMPONENT_TYPES})
        if unknown:
            raise KitaruStackError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a stack has 'name', "
                f"the components {', '.join(COMPONENT_TYPES)}, and 'settings'"
            )
        try:
            name = validate_name("stack name", data.get("name"))
        except KitaruUsageError as exc:
            raise KitaruStackError(f"{where}: 'name' must be a short name; {exc}") from None
        components = {}
        for component_type in COMPONENT_TYPES:
            raw = data.get(component_type)
            if raw is None:
                components[component_type] = ComponentSpec(
                    component_type, DEFAULT_FLAVORS[component_type], {}, explicit=False
                )
                continue
            if not isinstance(raw, dict) or not isinstance(raw.get("flavor"), str):
                raise KitaruStackError(
                    f"{where}: component {component_type!r} must be a mapping with a "
                    "'flavor' field and that flavor's own fields"
                )
            config = {k: v for k, v in raw.items() if k != "flavor"}
            components[component_type] = ComponentSpec(component_type, raw["flavor"], config)
        settings = StackSettings.from_mapping(data.get("settings"), where)
        return cls(name=name, components=components, source=source, settings=settings)

    @classmethod
    def from_file(cls, path: str | Path) -> StackDefinition:
        return cls.from_mapping(load_stack_yaml(path), str(path))

    def secrets_runs_read(self) -> set[str]:
        """The secrets a run on this stack reads through its secret provider: those its
        components name (``{{ secret.NAME }}``), and the team's signing key."""
        named = SECRET_REF.findall(json.dumps([spec.config for spec in self.components.values()]))
        return {SHARED_KEY_SECRET, *named}

    def to_mapping(self, *, masked: bool = False) -> dict[str, Any]:
        """The stack as a stack file holds it (only the components it names)."""
        data: dict[str, Any] = {"name": self.name}
        for spec in self.components.values():
            if spec.explicit:
                config = mask_config(spec.config) if masked else spec.config
                data[spec.component_type] = {"flavor": spec.flavor, **config}
        if settings := self.settings.to_mapping():
            data["settings"] = settings
        return data


def load_stack_yaml(path: str | Path) -> Any:
    """A stack file's data, refusing files over 1 MiB and alias trees that expand past
    :data:`MAX_STACK_NODES` before anything is built from them."""
    import yaml

    try:
        size = Path(path).stat().st_size
        if size > MAX_STACK_FILE_BYTES:
            raise KitaruStackError(
                f"stack file {path} is {size:,} bytes; a stack file may be at most "
                f"{MAX_STACK_FILE_BYTES:,} bytes"
            )
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KitaruStackError(f"cannot read stack file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise KitaruStackError(f"stack file {path} is not UTF-8 text") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None
        expanded = _expanded_size(node)
        if expanded > MAX_STACK_NODES:
            raise KitaruStackError(
                f"stack file {path} expands to more than {MAX_STACK_NODES:,} values through "
                "its anchors and aliases (&name / *name); write the values out instead of "
                "nesting aliases"
            )
        data = yaml.SafeLoader(text).get_single_data()
    except RecursionError:
        raise KitaruStackError(
            f"stack file {path} nests its values too deeply to read; a stack file needs at "
            f"most {MAX_STACK_DEPTH} levels"
        ) from None
    except ValueError:  # an integer of thousands of digits: Python refuses to parse it
        raise KitaruStackError(
            f"stack file {path} holds a number of thousands of digits; write a number of at "
            "most 18 digits"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise KitaruStackError(f"stack file {path} is not valid YAML{at}: {problem}") from None
    _check_values(data, str(path), "", 0)
    return data


def _check_values(value: Any, path: str, where: str, depth: int) -> None:
    """Finite numbers of a sensible size only, nested no deeper than a stack needs."""
    at = f" at {where.lstrip('.')}" if where else ""
    if depth > MAX_STACK_DEPTH:
        raise KitaruStackError(
            f"stack file {path} nests its values more than {MAX_STACK_DEPTH} levels deep{at}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise KitaruStackError(
            f"stack file {path}: the value{at} is {value!r}, not a finite number; write a "
            "number such as 30 or 2.5"
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        raise KitaruStackError(
            f"stack file {path}: the number{at} has {len(str(abs(value)))} digits; write a "
            "number of at most 18 digits"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, path, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_values(item, path, f"{where}[{i}]", depth + 1)


def _expanded_size(root: Any) -> int:
    """How many nodes the YAML tree holds once every alias is expanded, computed on
    the composed graph (where an alias is a shared node) without expanding it."""
    import yaml

    sizes: dict[int, int] = {}
    entered: set[int] = set()
    # Children before parents: an explicit stack, so deep nesting cannot overflow.
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done:
            if id(node) in entered:  # an alias inside itself: endless once expanded
                return MAX_STACK_NODES + 1
            entered.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            total = 1 + sum(sizes.get(id(child), 0) for child in children)
            sizes[id(node)] = min(total, MAX_STACK_NODES + 1)
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def mask_config(config: Any, field: str = "") -> Any:
    """Config for display: literal values of secret-looking fields hidden; references
    (``{{ secret.X }}``, ``${X}``) shown as written, since they hold no secret."""
    if isinstance(config, dict):
        return {k: mask_config(v, str(k)) for k, v in config.items()}
    if isinstance(config, list):
        return [mask_config(v, field) for v in config]
    if isinstance(config, str) and _SECRET_FIELD.search(field):
        if SECRET_REF.fullmatch(config.strip()) or ENV_REF.fullmatch(config.strip()):
            return config
        return MASK
    return config


LOCAL_DEFINITION = StackDefinition.from_mapping({"name": LOCAL_STACK}, "built-in")


class Stack:
    """A stack whose components are built on first use."""

    def __init__(self, definition: StackDefinition, settings: Settings) -> None:
        self.definition = definition
        self.name = definition.name
        self.settings = settings
        self._secret_cache: dict[str, str] = {}

    def flavor(self, component_type: str) -> Flavor:
        spec = self.definition.components[component_type]
        flavor = get_plugins().registry.get(component_type, spec.flavor)
        if flavor is None:
            raise missing_flavors_error(self.definition, [spec])
        return flavor

    def _build(self, component_type: str) -> Any:
        flavor = self.flavor(component_type)
        spec = self.definition.components[component_type]
        if self._on_server_disk(component_type):
            store: Any = get_store(self.settings)
            return ServerArtifactStore(store.transport, self.name)
        resolved = {
            key: value
            if key in flavor.resolve_when_used
            else self.resolve(value, component_type, key)
            for key, value in spec.config.items()
        }
        config = validate_config(self.definition, spec, flavor, resolved)
        try:
            return flavor.implementation_class()(config)
        except (KitaruStackError, KitaruBackendError):
            raise
        except Exception as exc:
            raise KitaruBackendError(
                f"stack {self.name!r}: the {flavor.name} {component_type.replace('_', ' ')} "
                f"could not be set up: {type(exc).__name__}: {exc}"
            ) from exc

    def _on_server_disk(self, component_type: str) -> bool:
        """Whether this is the artifact store of a process logged in to a server, and
        the stack keeps artifacts on a local disk: the server's, not this machine's."""
        spec = self.definition.components[component_type]
        local = component_type == "artifact_store" and spec.flavor == "local"
        return local and self.settings.server_url is not None

    @functools.cached_property
    def secret_provider(self) -> SecretProvider:
        return self._build("secret_provider")

    @functools.cached_property
    def artifact_store(self) -> ArtifactStore:
        return self._build("artifact_store")

    @functools.cached_property
    def orchestrator(self) -> Orchestrator:
        return self._build("orchestrator")

    @property
    def ships_code(self) -> bool:
        """Whether executions carry their source tree (``settings.code``)."""
        code = self.definition.settings.code
        return code == "archive" if code else not self.orchestrator.runs_in_worker

    @functools.cached_property
    def llm_gateway(self) -> Any:
        return self._build("llm_gateway")

    @functools.cached_property
    def artifacts(self) -> Artifacts:
        return Artifacts(
            self.artifact_store,
            inline_limit=self.settings.inline_artifact_bytes,
            signer=Signer(self.settings.home, self._shared_signing_key),
            # The server notes the blobs it keeps for a process itself.
            note_blob_write=None
            if self._on_server_disk("artifact_store")
            else self._note_blob_write,
        )

    def _note_blob_write(self, key: str) -> None:
        get_store(self.settings).retention.note_blob_write(key)

    def _shared_signing_key(self) -> str | None:
        """The team's signing key from this stack's secret provider, if it holds one.

        A stack whose executions run on other machines (a pod each) gets one on first
        use: each machine has a disk of its own, so a key kept there could never verify
        what another signed (a flow reference, a pickle)."""
        try:
            return self.secret_provider.get(SHARED_KEY_SECRET)
        except SecretNotFoundError:
            if not self.flavor("orchestrator").runs_elsewhere:
                return None
        self.secret_provider.set(SHARED_KEY_SECRET, os.urandom(32).hex())
        # Read back: of two processes that made one at once, both use the one kept.
        return self.secret_provider.get(SHARED_KEY_SECRET)

    def secret(self, name: str, *, used_by: str = "") -> str:
        """A secret's value through this stack's provider (kept in memory, never stored)."""
        if name not in self._secret_cache:
            try:
                self._secret_cache[name] = self.secret_provider.get(name)
            except SecretNotFoundError as exc:
                raise KitaruStackError(
                    f"stack {self.name!r} ({self.definition.source}){used_by}: secret {name!r} "
                    f"cannot be resolved: {exc}"
                ) from exc
        return self._secret_cache[name]

    def resolve(self, value: Any, component_type: str = "", field: str = "") -> Any:
        """``value`` with ``${ENV}`` and ``{{ secret.NAME }}`` references filled in."""
        if isinstance(value, dict):
            return {
                k: self.resolve(v, component_type, f"{field}.{k}".lstrip("."))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.resolve(v, component_type, field) for v in value]
        if not isinstance(value, str):
            return value
        used_by = f", {component_type} field {field!r}" if component_type else ""

        def substitute(match: re.Match[str]) -> str:
            variable, secret = match.groups()
            if variable is not None:
                if variable not in os.environ:
                    raise KitaruStackError(
                        f"stack {self.name!r} ({self.definition.source}){used_by}: "
                        f"environment variable {variable} is not set"
                    )
                return os.environ[variable]
            if component_type == "secret_provider":
                raise KitaruStackError(
                    f"stack {self.name!r}{used_by}: the secret provider's own settings "
                    "cannot come from a secret; use ${ENV_VAR} instead"
                )
            return self.secret(secret, used_by=used_by)

        # One pass: what a substitution inserts is never searched again.
        return REFERENCE.sub(substitute, value)


def validate_config(
    definition: StackDefinition, spec: ComponentSpec, flavor: Flavor, config: dict[str, Any]
) -> Any:
    from pydantic import ValidationError

    try:
        return flavor.config_model().model_validate(config)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(map(str, error["loc"])) or "(root)"
            shown = error["input"]
            got = ""
            if error["type"] != "missing" and isinstance(shown, (str, int, float, bool)):
                got = f" (got {mask_config(shown, field)!r})"
            problems.append(f"field {field!r}: {error['msg']}{got}")
        raise KitaruStackError(
            f"stack file {definition.source}: {spec.component_type} ({spec.flavor}): "
            + "; ".join(problems)
        ) from None


def missing_flavors_error(
    definition: StackDefinition, specs: list[ComponentSpec]
) -> KitaruStackError:
    """One message for every flavor no plugin provides, each flavor once: a likely typo
    gets the closest installed flavor, a missing plugin the one install command."""
    import difflib

    plugins = get_plugins()
    failed = {i.name: i for i in plugins.failed()} | {i.distribution: i for i in plugins.failed()}
    by_flavor: dict[str, list[str]] = {}
    for spec in specs:
        by_flavor.setdefault(spec.flavor, []).append(spec.component_type)
    problems, typos = [], []
    for flavor, components in by_flavor.items():
        extra = FIRST_PARTY_EXTRAS.get(flavor, "")
        broken = failed.get(extra) or failed.get(f"kitaru-{extra}")
        installed = sorted({n for c in components for n in plugins.registry.names(c)})
        close = difflib.get_close_matches(flavor, installed, n=1, cutoff=0.6)
        if broken is not None:
            why = f"plugin {broken.name!r} is installed but failed to import: {broken.error}"
        elif close and not extra:
            why = f"no such flavor; did you mean {close[0]!r}?"
            typos.append(flavor)
        else:
            why = f"not installed; installed flavors for it: {', '.join(installed)}"
        problems.append(f"{flavor!r} for {', '.join(components)} ({why})")
    extras = sorted({FIRST_PARTY_EXTRAS[f] for f in by_flavor if f in FIRST_PARTY_EXTRAS})
    others = [f for f in by_flavor if f not in FIRST_PARTY_EXTRAS and f not in typos]
    fixes = [install_command(extras)] if extras else []
    if others:
        fixes.append(
            f"a plugin that provides {', '.join(map(repr, others))} (none of Kitaru's own "
            "plugins does yet)"
        )
    fix = (
        f"install them with: {' and '.join(fixes)} (`kitaru plugins list` shows what is installed)"
        if fixes
        else f"correct the flavor name in {definition.source}"
    )
    head = f"stack {definition.name!r} ({definition.source}) names "
    if len(problems) == 1:
        return KitaruStackError(f"{head}flavor {problems[0]}; {fix}")
    listed = "".join(f"\n  - {p}" for p in problems)
    return KitaruStackError(f"{head}flavors that no installed plugin provides:{listed}\n{fix}")


def _check_reachable_from_elsewhere(definition: StackDefinition, settings: Settings) -> None:
    """An orchestrator that runs executions on other machines needs everything they use
    to be reachable from there: not this machine's disk, nor its SQLite file."""
    registry = get_plugins().registry
    spec = definition.components["orchestrator"]
    orchestrator = registry.get("orchestrator", spec.flavor)
    if orchestrator is None or not orchestrator.runs_elsewhere:
        return
    problems = []
    for component_type in ("artifact_store", "secret_provider"):
        used = definition.components[component_type]
        flavor = registry.get(component_type, used.flavor)
        if flavor is not None and flavor.machine_local:
            where = "left out, so the local default" if not used.explicit else f"{used.flavor!r}"
            problems.append(
                f"its {component_type.replace('_', ' ')} is {where} ({flavor.description}); "
                "use one the pods can reach (s3, gcs, azure-blob; a cloud or "
                "kubernetes-secrets secret provider)"
            )
    if settings.database_url is None:
        problems.append(
            "the metadata store is SQLite on this machine; set KITARU_DATABASE_URL to a "
            "PostgreSQL server the pods can reach, then register the stack again"
        )
    if problems:
        raise KitaruStackError(
            f"stack {definition.name!r} ({definition.source}) runs executions on the "
            f"{spec.flavor} orchestrator, on other machines that cannot see this machine's "
            "disk: " + "; ".join(problems)
        )


def check_definition(definition: StackDefinition, *, resolve_references: bool = False) -> Stack:
    """Check that every flavor exists and every config validates; returns the stack.

    References stay as written (the environment and secrets of the process that runs
    the stack count, not those of whoever registers it), unless ``resolve_references``:
    then every ``${ENV}`` and ``{{ secret.NAME }}`` must resolve here and now.
    """
    registry = get_plugins().registry
    missing = [
        spec
        for spec in definition.components.values()
        if registry.get(spec.component_type, spec.flavor) is None
        and (spec.explicit or spec.component_type != "llm_gateway")
    ]
    if missing:
        raise missing_flavors_error(definition, missing)
    stack = Stack(definition, load_settings())
    _check_reachable_from_elsewhere(definition, stack.settings)
    for spec in definition.components.values():
        flavor = registry.get(spec.component_type, spec.flavor)
        if flavor is not None:
            config = (
                stack.resolve(spec.config, spec.component_type)
                if resolve_references
                else spec.config
            )
            validate_config(definition, spec, flavor, config)
    return stack
