"""``KitaruClient`` over HTTP: with ``KITARU_SERVER_URL`` (and ``KITARU_TOKEN``) set,
the client and the CLI talk to a ``kitaru serve`` instead of the database, and give
the same results. A laptop can then answer a wait on a team's server with a token,
without database or cloud credentials.

Values come back as JSON data: a result or memory value that the server will not
send (a pickle, binary content) reads as None here, with its artifact id to fetch.
"""

from __future__ import annotations

import builtins
import functools
from dataclasses import fields
from typing import Any
from urllib.parse import quote

from kitaru_core.client import ArtifactRef, CheckpointInfo, Execution, MemoriesClient
from kitaru_core.diff import CheckpointDiff, ExecutionDiff
from kitaru_core.errors import (
    KitaruBackendError,
    KitaruError,
    KitaruNotFoundError,
    KitaruStateError,
    KitaruUsageError,
    KitaruWaitValidationError,
)
from kitaru_core.runtime.flow import ended_without_result, poll_status, refuse_unfinished
from kitaru_core.runtime.memory import MemoryEntry
from kitaru_core.store.records import TERMINAL_STATUSES, LLMCallRecord, Status, WaitRecord

_TIMEOUT = 30.0


class ServerConnection:
    """One HTTP client (connections are kept) for a server and a token."""

    def __init__(self, url: str, token: str | None) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=_TIMEOUT)

    def send(self, method: str, path: str, **kwargs: Any) -> Any:
        """The response to a request under ``/api/v1``; an error status raises the
        Kitaru error the server's status code stands for."""
        import httpx

        try:
            response = self._http.request(method, "/api/v1" + path, **kwargs)
        except httpx.HTTPError as exc:
            raise KitaruBackendError(
                f"cannot reach the Kitaru server at {self.url} ({type(exc).__name__}: {exc}); "
                "check KITARU_SERVER_URL and that `kitaru serve` runs there"
            ) from None
        if response.status_code >= 400:
            raise _error(response, path)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The response's body: JSON data, text, or bytes."""
        response = self.send(method, path, **kwargs)
        kind = response.headers.get("content-type", "")
        if kind.startswith("application/json"):
            return response.json()
        if kind.startswith("text/"):
            return response.text
        return response.content


def _error(response: Any, path: str) -> KitaruError:
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text or response.reason_phrase
    status = response.status_code
    if status in (401, 403):
        return KitaruUsageError(f"the server refused the request ({status}): {detail}")
    if status == 404:
        return KitaruNotFoundError(detail)
    if status == 409:
        return KitaruStateError(detail)
    if status == 422 and path.endswith("/input"):
        return KitaruWaitValidationError(detail)
    if status in (400, 422):
        return KitaruUsageError(detail)
    return KitaruBackendError(f"the Kitaru server failed ({status}): {detail}")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def execution_from_json(data: dict[str, Any]) -> Any:
    checkpoints = [CheckpointInfo(**_known(CheckpointInfo, c)) for c in data.get("checkpoints", [])]
    wait = data.get("pending_wait")
    execution = Execution(
        **_known(
            Execution,
            {
                k: v
                for k, v in data.items()
                if k not in ("checkpoints", "pending_wait", "llm_calls")
            },
        ),
        checkpoints=checkpoints,
        pending_wait=WaitRecord(**_known(WaitRecord, wait)) if wait else None,
        llm_calls=[LLMCallRecord(**_known(LLMCallRecord, c)) for c in data.get("llm_calls", [])],
    )
    if "result" in data:
        execution._result = data["result"]
    return execution


class RemoteHandle:
    """What ``resume``, ``retry`` and ``replay`` return over HTTP (as ``FlowHandle``)."""

    def __init__(self, executions: RemoteExecutions, exec_id: str) -> None:
        self._executions = executions
        self.exec_id = exec_id

    @property
    def status(self) -> str:
        return str(self._executions.get(self.exec_id).status)

    def wait(self, timeout: float | None = None) -> Any:
        """As ``FlowHandle.wait``: the result once the execution ends, or the error of
        one that failed or was cancelled."""
        return self._result(self._until(TERMINAL_STATUSES, timeout))

    def ran(self) -> None:
        """Return once the run the server started stopped (ended, or waits or sleeps),
        as the local client's ``resume``, ``retry`` and ``replay`` do."""
        self._until(TERMINAL_STATUSES | {Status.WAITING, Status.SLEEPING}, None)

    def _until(self, statuses: frozenset[str], timeout: float | None) -> Any:
        # Each read is a request to the server: start slower than the local handle.
        read = functools.partial(self._executions.get, self.exec_id)
        return poll_status(self.exec_id, read, statuses, timeout, first_delay=0.05, ceiling=1.0)

    def get(self) -> Any:
        """As ``FlowHandle.get``: the result now, if the execution has ended."""
        execution = self._executions.get(self.exec_id)
        refuse_unfinished(self.exec_id, execution.status)
        return self._result(execution)

    def _result(self, execution: Any) -> Any:
        if execution.status == Status.COMPLETED:
            return execution.result
        raise ended_without_result(
            execution.exec_id, execution.flow_name, execution.status, execution.error
        )


class RemoteExecutions:
    def __init__(self, connection: ServerConnection) -> None:
        self._c = connection

    def get(self, exec_id: str) -> Any:
        return execution_from_json(self._c.request("GET", f"/executions/{quote(exec_id)}"))

    def list(
        self,
        *,
        flow: str | None = None,
        status: str | None = None,
        limit: int | None = 50,
        parent: str | None = None,
        code_version: str | None = None,
    ) -> builtins.list[Any]:
        chosen = (("flow", flow), ("status", status), ("parent", parent))
        params = {k: v for k, v in (*chosen, ("code_version", code_version)) if v}
        found: builtins.list[Any] = []
        cursor = None
        while limit is None or len(found) < limit:
            page_size = 500 if limit is None else min(500, limit - len(found))
            query: dict[str, Any] = {**params, "limit": page_size}
            if cursor:
                query["cursor"] = cursor
            response = self._c.send("GET", "/executions", params=query)
            found += [execution_from_json(e) for e in response.json()]
            cursor = response.headers.get("X-Next-Cursor")
            if not cursor:
                break
        return found

    def latest(self, *, flow: str | None = None, status: str | None = None) -> Any:
        found = self.list(flow=flow, status=status, limit=1)
        return found[0] if found else None

    def pending_waits(self, exec_id: str | None = None) -> builtins.list[WaitRecord]:
        params = {"exec_id": exec_id} if exec_id else {}
        return [
            WaitRecord(**_known(WaitRecord, w))
            for w in self._c.request("GET", "/waits", params=params)
        ]

    def input(
        self, exec_id: str, *, wait: str | None = None, value: Any, resume: bool = True
    ) -> Any:
        if not resume:
            raise KitaruUsageError(
                "--no-resume is not available through a server: it resumes what it answers"
            )
        body = {"wait": wait, "value": value}
        return execution_from_json(
            self._c.request("POST", f"/executions/{quote(exec_id)}/input", json=body)
        )

    def abort_wait(self, exec_id: str, *, wait: str | None = None) -> Any:
        body = {"wait": wait, "abort": True}
        return execution_from_json(
            self._c.request("POST", f"/executions/{quote(exec_id)}/input", json=body)
        )

    def _act(self, exec_id: str, action: str) -> Any:
        return execution_from_json(
            self._c.request("POST", f"/executions/{quote(exec_id)}/{action}")
        )

    def cancel(self, exec_id: str) -> Any:
        return self._act(exec_id, "cancel")

    def resume(self, exec_id: str, *, code: str = "recorded") -> RemoteHandle:
        _recorded_code_only(code)
        handle = RemoteHandle(self, self._act(exec_id, "resume").exec_id)
        handle.ran()  # as the local client, return once it ran
        return handle

    def retry(self, exec_id: str, *, code: str = "recorded") -> RemoteHandle:
        _recorded_code_only(code)
        handle = RemoteHandle(self, self._act(exec_id, "retry").exec_id)
        handle.ran()
        return handle

    def replay(
        self,
        exec_id: str,
        *,
        from_: str | int,
        overrides: dict[str, Any] | None = None,
        **flow_inputs: Any,
    ) -> RemoteHandle:
        body = {"from": from_, "overrides": overrides or {}, "args": flow_inputs}
        created = self._c.request("POST", f"/executions/{quote(exec_id)}/replay", json=body)
        handle = RemoteHandle(self, created["exec_id"])
        handle.ran()
        return handle

    def logs(self, exec_id: str, *, tail: int | None = None) -> str:
        query = "" if tail is None else f"?tail={int(tail)}"
        return str(self._c.request("GET", f"/executions/{quote(exec_id)}/logs{query}"))

    def _not_remote(self, *_: Any, **__: Any) -> Any:
        raise KitaruUsageError(
            "deleting executions is not available through a server; run it where the "
            "database is (unset KITARU_SERVER_URL)"
        )

    delete = prunable = prune = _not_remote


class RemoteArtifacts:
    def __init__(self, connection: ServerConnection) -> None:
        self._c = connection

    def _ref(self, data: dict[str, Any]) -> Any:
        ref = ArtifactRef(**_known(ArtifactRef, data))
        connection = self._c

        def load() -> Any:  # the JSON value or the bytes the server sends
            return connection.request("GET", f"/artifacts/{quote(ref.id)}")

        ref.load = load  # type: ignore[method-assign]
        return ref

    def list(self, exec_id: str, *, name: str | None = None) -> builtins.list[Any]:
        found = self._c.request("GET", f"/executions/{quote(exec_id)}/artifacts")
        return [self._ref(a) for a in found if name is None or a["name"] == name]

    def get(self, artifact_id: str) -> Any:
        return self._ref(self._c.request("GET", f"/artifacts/{quote(artifact_id)}/metadata"))


class RemoteMemoryScope:
    """``MemoryScope``'s reads and writes, over HTTP."""

    def __init__(self, connection: ServerConnection, scope_type: str, scope: str) -> None:
        self._c = connection
        self.scope_type, self.scope = scope_type, scope
        self._path = f"/memory/{quote(scope_type, safe='')}/{quote(scope, safe='')}"

    def get_entry(self, key: str, *, version: int | None = None) -> Any:
        params = {"version": version} if version is not None else {}
        try:
            data = self._c.request("GET", f"{self._path}/{quote(key)}", params=params)
        except KitaruNotFoundError:
            return None
        return _entry(data)

    def get(self, key: str, *, version: int | None = None, default: Any = None) -> Any:
        entry = self.get_entry(key, version=version)
        return default if entry is None or entry.deleted else entry.value

    def set(
        self,
        key: str,
        value: Any,
        *,
        expected_version: int | None = None,
        data_only: bool = True,
    ) -> int:
        body = {"value": value, "expected_version": expected_version}
        return int(self._c.request("PUT", f"{self._path}/{quote(key)}", json=body)["version"])

    def delete(self, key: str) -> int:
        return int(self._c.request("DELETE", f"{self._path}/{quote(key)}")["version"])

    def list(self, prefix: str | None = None) -> builtins.list[Any]:
        params = {"prefix": prefix} if prefix else {}
        return [_entry(e) for e in self._c.request("GET", self._path, params=params)]

    def history(self, key: str) -> builtins.list[Any]:
        found = self._c.request("GET", f"{self._path}/{quote(key)}", params={"history": True})
        return [_entry(e) for e in found]


def _entry(data: dict[str, Any]) -> Any:
    return MemoryEntry(**_known(MemoryEntry, data))


class RemoteMemories(MemoriesClient):
    """``MemoriesClient`` whose scopes read and write through the server."""

    def __init__(self, connection: ServerConnection) -> None:
        self._c = connection

    def scope(self, scope: str = "default", scope_type: str = "namespace") -> Any:
        return RemoteMemoryScope(self._c, scope_type, scope)


def _recorded_code_only(code: str) -> None:
    if code != "recorded":
        raise KitaruUsageError(
            "moving an execution to today's code (--code current) signs it with this "
            "deployment's key: run it where the database is (unset KITARU_SERVER_URL)"
        )


def diff_from_json(data: dict[str, Any]) -> Any:
    def row(c: dict[str, Any]) -> CheckpointDiff:
        return CheckpointDiff(**_known(CheckpointDiff, c))

    return ExecutionDiff(
        data["exec_a"],
        data["exec_b"],
        [row(c) for c in data["checkpoints"]],
        row(data["result"]) if data.get("result") else None,
        code_versions=tuple(data.get("code_versions") or (None, None)),
    )


class NotOverHTTP:
    """A part of the client the server does not offer (yet): any use says so."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise KitaruUsageError(
            f"{self._what} are not available through a server; run this where the "
            "database is (unset KITARU_SERVER_URL)"
        )
