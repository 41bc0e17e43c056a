"""``kitaru.patched()`` and ``kitaru.deprecate_patch()``: changing a flow body while
executions of the old body wait.

A resumed execution replays its flow body against its journal; code that now calls
another step where the journal records one diverges. Changed code goes behind
``if kitaru.patched("name"):``. Where the execution being replayed recorded some
other step at that point, it passed there under the old code: ``patched`` answers
False and takes no journal position, so the old path replays unchanged. Otherwise
(a new execution, or an old one that had not got this far) it answers True and records
that answer as a step of its own (``patched:name``), which every later resume finds.

Once no execution that could take the old path is left, the branch goes and
``kitaru.deprecate_patch("name")`` stays in its place: it steps over the marker an
execution recorded there, and records nothing in new ones.
"""

from __future__ import annotations

from kitaru_core.errors import KitaruContextError
from kitaru_core.runtime.context import ExecutionContext, current_checkpoint, require_flow
from kitaru_core.untrusted import validate_name

PATCH_KIND = "patch"


def marker_name(name: str) -> str:
    """The journal name of the step that records a patch's answer."""
    return f"patched:{name}"


def patched(name: str) -> bool:
    """Whether this execution takes the code behind ``if kitaru.patched(name):``."""
    ctx = _flow_body("kitaru.patched()")
    marker = marker_name(validate_name("patch name", name))
    found = ctx.peek_step()
    if found is not None and found[0].name != marker:
        return False  # recorded under code without the patch: that path again
    step = ctx.open_step(marker, PATCH_KIND)
    if ctx.answer(step) is None:
        if ctx.dry_run:
            ctx.reached_end(step)
        step.complete(True)
    return True


def deprecate_patch(name: str) -> None:
    """Where ``if kitaru.patched(name):`` was: steps over the marker an execution
    recorded here, records nothing in one that did not."""
    ctx = _flow_body("kitaru.deprecate_patch()")
    found = ctx.peek_step()
    if found is not None and found[0].name == marker_name(validate_name("patch name", name)):
        ctx.open_step(found[0].name, PATCH_KIND)


def _flow_body(what: str) -> ExecutionContext:
    ctx = require_flow(what)
    if current_checkpoint.get() is not None:
        raise KitaruContextError(
            f"{what} belongs in the flow body, not in a checkpoint: a checkpoint's body "
            "is not replayed, so there is nothing in it to patch"
        )
    return ctx
