"""OpenTelemetry spans for executions, checkpoints, waits and LLM calls.

Only ``opentelemetry-api`` is used, and only when the program has imported it (an
application that configures an SDK has): otherwise no span is ever made and the cost
is one dictionary lookup.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from kitaru_core import __version__


def tracer() -> Any | None:
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    return trace.get_tracer("kitaru", __version__)


@contextlib.contextmanager
def span(
    name: str,
    attributes: dict[str, Any],
    *,
    client: bool = False,
    link_to: str | None = None,
) -> Iterator[Any | None]:
    """A span around the block (None when tracing is off). Exceptions mark it as an
    error; a flow stopping to wait (a BaseException) does not."""
    active = tracer()
    if active is None:
        yield None
        return
    from opentelemetry import trace

    links = []
    if link_to:
        trace_id, _, span_id = link_to.partition(":")
        links.append(
            trace.Link(
                trace.SpanContext(
                    int(trace_id, 16),
                    int(span_id, 16),
                    is_remote=True,
                    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                )
            )
        )
    with active.start_as_current_span(
        name,
        attributes={k: v for k, v in attributes.items() if v is not None},
        kind=trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL,
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except Exception as exc:
            current.record_exception(exc)
            current.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise


def span_id_of(current: Any | None) -> str | None:
    """``trace_id:span_id`` in hex, to link a later run's span to this one."""
    if current is None:
        return None
    context = current.get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}:{context.span_id:016x}"


def set_attributes(current: Any | None, **attributes: Any) -> None:
    if current is not None:
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})
