"""``KitaruClient`` for a process logged in to ``kitaru serve`` (``kitaru login``, or
``KITARU_SERVER_URL`` with ``KITARU_TOKEN``).

Everything reads and writes through the HTTP metadata store
(``kitaru_core/store/http_store.py``), as it would through a database. What runs an
execution's code goes where that code is trusted: an execution this machine started
(its flow reference is signed with this machine's key) is answered, resumed, retried
and replayed here, as with a database; any other is asked of the server's API, which
runs the flows it serves. So a reviewer with a token of scope ``input`` answers a
team's wait without running anything, and a laptop resumes its own killed run.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from kitaru_core.client import Execution, ExecutionsClient
from kitaru_core.errors import KitaruUsageError, KitaruWaitValidationError
from kitaru_core.runtime import trust
from kitaru_core.runtime.flow import FlowHandle, poll_status
from kitaru_core.store.http_store import ServerTransport, refusal
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import TERMINAL_STATUSES, Status


class ServerExecutions(ExecutionsClient):
    def __init__(self, store: MetadataStore, transport: ServerTransport) -> None:
        super().__init__(store)
        self._transport = transport

    def _runs_here(self, exec_id: str) -> bool:
        return trust.is_trusted(self._store.require_execution(exec_id))

    def input(
        self, exec_id: str, *, wait: str | None = None, value: Any, resume: bool = True
    ) -> Execution:
        if self._runs_here(exec_id):
            return super().input(exec_id, wait=wait, value=value, resume=resume)
        if not resume:
            raise KitaruUsageError(
                "--no-resume is not available for an execution the server runs: it "
                "resumes what it answers"
            )
        return self.get(self._act(exec_id, "input", {"wait": wait, "value": value}))

    def abort_wait(self, exec_id: str, *, wait: str | None = None) -> Execution:
        if self._runs_here(exec_id):
            return super().abort_wait(exec_id, wait=wait)
        return self.get(self._act(exec_id, "input", {"wait": wait, "abort": True}))

    def resume(self, exec_id: str, *, code: str = "recorded") -> FlowHandle[Any]:
        if self._runs_here(exec_id):
            return super().resume(exec_id, code=code)
        _recorded_only(code)
        return FlowHandle(self._act(exec_id, "resume"))

    def retry(self, exec_id: str, *, code: str = "recorded") -> FlowHandle[Any]:
        if self._runs_here(exec_id):
            return super().retry(exec_id, code=code)
        _recorded_only(code)
        return FlowHandle(self._act(exec_id, "retry"))

    def replay(
        self,
        exec_id: str,
        *,
        from_: str | int,
        overrides: dict[str, Any] | None = None,
        **flow_inputs: Any,
    ) -> FlowHandle[Any]:
        if self._runs_here(exec_id):
            return super().replay(exec_id, from_=from_, overrides=overrides, **flow_inputs)
        body = {"from": from_, "overrides": overrides or {}, "args": flow_inputs}
        return FlowHandle(self._act(exec_id, "replay", body))

    def _act(self, exec_id: str, action: str, body: dict[str, Any] | None = None) -> str:
        """POST an action on the execution to the API; the id of the execution it is on,
        once the run the server started stopped (ended, or waits or sleeps), as it has
        when the same action runs here."""
        path = f"/api/v1/executions/{quote(exec_id, safe='')}/{action}"
        sent = json.dumps(body).encode() if body is not None else None
        status, data, _ = self._transport.request("POST", path, sent)
        if status == 422 and action == "input":
            raise KitaruWaitValidationError(str(json.loads(data).get("detail")))
        if status not in (200, 201):
            raise refusal(status, data, f"{action} of execution {exec_id}")
        acted_on = str(json.loads(data)["exec_id"])
        stopped = TERMINAL_STATUSES | {Status.WAITING, Status.SLEEPING}
        poll_status(acted_on, lambda: self._store.require_execution(acted_on), stopped, None)
        return acted_on


def _recorded_only(code: str) -> None:
    if code != "recorded":
        raise KitaruUsageError(
            "--code current moves an execution to the code where it runs, which is the "
            "server's here: run it where that code is"
        )
