"""The exception hierarchy users catch. Every message says what was wrong and how to fix it."""

from __future__ import annotations


class KitaruError(Exception):
    """Base of every error Kitaru raises on purpose."""


class KitaruUsageError(KitaruError):
    """The API was called in a way it does not support (wrong arguments, direct flow call)."""


class KitaruNotFoundError(KitaruUsageError):
    """What was named (an execution, an artifact, a memory key, a flow) does not exist."""


class KitaruContextError(KitaruError):
    """A primitive was called where it cannot work (a checkpoint outside a flow, nested, ...)."""


class KitaruUntrustedError(KitaruUsageError):
    """A stored record names code to import, but this deployment's key did not sign it
    (a forged row, or one written by another deployment): nothing was imported."""


class KitaruStateError(KitaruError):
    """The execution is not in a state that allows the operation (already completed, running)."""


class KitaruLeaseLost(KitaruStateError):
    """This process's run of an execution lost its lease (another process took the
    execution over): it stops without recording anything more."""


class KitaruExecutionError(KitaruError):
    """An execution ended without a result."""

    def __init__(self, message: str, *, exec_id: str, status: str, hint: str | None = None) -> None:
        self.exec_id = exec_id
        self.status = status
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)


class KitaruDivergenceError(KitaruExecutionError):
    """A resumed flow body called checkpoints in another order than its journal records."""

    def __init__(self, *, exec_id: str, position: int, recorded: str, called: str) -> None:
        self.position = position
        self.recorded = recorded
        self.called = called
        super().__init__(
            f"execution {exec_id} diverged from its journal at position {position}: "
            f"the journal records checkpoint {recorded!r} there, but the flow body now "
            f"calls {called!r}",
            exec_id=exec_id,
            status="failed",
            hint=(
                'put the changed code behind `if kitaru.patched("<change>"):` (the old '
                "execution keeps its path, new ones take the new one), or restore the "
                f"original checkpoint order; then run `kitaru executions retry {exec_id}`. "
                "`kitaru executions upgrade --all-waiting --dry-run` finds such executions "
                "before a deploy"
            ),
        )


class KitaruWaitValidationError(KitaruError):
    """Input given to a wait does not fit its schema; nothing was stored."""


class KitaruWaitExpiredError(KitaruError):
    """Nobody answered a wait before its ``expires_after`` passed, and it has no default.
    Raised at the ``kitaru.wait()`` call inside the flow, which may catch it."""

    def __init__(self, message: str, *, exec_id: str, wait: str) -> None:
        self.exec_id = exec_id
        self.wait = wait
        super().__init__(message)


class KitaruBudgetExceededError(KitaruError):
    """An LLM call would go over the flow's ``max_cost_usd`` or ``max_llm_calls``. Raised
    at the call in the flow (which may catch it); the execution records why."""

    def __init__(self, message: str, *, exec_id: str, spent_usd: float, calls: int) -> None:
        self.exec_id = exec_id
        self.spent_usd = spent_usd
        self.calls = calls
        super().__init__(message)


class KitaruStackError(KitaruError):
    """A stack file, flavor or plugin problem."""


class KitaruBackendError(KitaruError):
    """A storage or service backend failed (artifact store, database, orchestrator, ...)."""


class KitaruDispatchError(KitaruBackendError):
    """The execution was created but its orchestrator could not be handed it (the
    cluster did not answer, refused the Job). It stays ``running`` with no process:
    ``will_run`` says whether a live ``kitaru worker`` of its stack will start it again
    (then do not start it again yourself: it would run twice)."""

    def __init__(self, message: str, *, exec_id: str, will_run: bool) -> None:
        super().__init__(message)
        self.exec_id = exec_id
        self.will_run = will_run


class KitaruDatabaseUnavailable(KitaruBackendError):
    """The metadata database could not be reached, or dropped the connection midway:
    a passing fault (a restart, a failover) that the next call may not meet."""


def backend_error(flavor: str, resource: str, fix: str, exc: BaseException) -> KitaruBackendError:
    """The one shape of a service failure: which flavor, which resource, what to do, and
    the service's own first line, e.g. ``s3 (s3://bucket/key): access denied; check the
    credentials and their IAM permissions (AccessDenied: ...)``."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return KitaruBackendError(f"{flavor} ({resource}): {fix} ({detail})")
