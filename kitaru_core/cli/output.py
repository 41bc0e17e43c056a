"""Tables for people, JSON for programs: every listing supports ``--output json``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from typing import Any, NoReturn

import typer


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


OutputOption = typer.Option(
    OutputFormat.table, "--output", "-o", help="table for people, json for programs"
)


def print_json(data: Any) -> None:
    """JSON for programs. NaN and infinity are not JSON: they are printed as null, and a
    note on stderr says so."""
    try:
        text = json.dumps(data, indent=2, default=_json_default, allow_nan=False)
    except ValueError:
        replaced: list[str] = []

        def to_null(name: str) -> None:
            replaced.append(name)
            return None

        loose = json.dumps(data, default=_json_default)
        text = json.dumps(json.loads(loose, parse_constant=to_null), indent=2, allow_nan=False)
        sys.stderr.write(
            f"note: {len(replaced)} value(s) were NaN or infinite, which JSON cannot hold; "
            "they are printed as null\n"
        )
    sys.stdout.write(text + "\n")


def json_text(value: Any, width: int | None = None, *, raw_strings: bool = False) -> str:
    """A value as JSON on one line (a string as itself with ``raw_strings``), cut to
    ``width`` with an ellipsis: what plain output shows of a value, never a Python repr."""
    if raw_strings and isinstance(value, str):
        shown = value
    else:
        try:
            shown = json.dumps(value, default=_json_data, ensure_ascii=False)
        except (TypeError, ValueError):  # no JSON form (a pickled object): its repr
            shown = repr(value)
    if width is None or len(shown) <= width:
        return shown
    return shown[: width - 1] + "…"


def _json_data(value: Any) -> Any:
    """Models, dataclasses and bytes as JSON data; anything else has no JSON form."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        return {k: v for k, v in value.__dict__.items() if not k.startswith("_")}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _json_default(value: Any) -> Any:
    """``--output json``: JSON data where there is a form for it, else the repr."""
    try:
        return _json_data(value)
    except TypeError:
        return repr(value)


# C0 and C1 control characters but newline and tab: what could move the cursor, change
# colours or ring the bell if text from a flow or a model reached the terminal raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain_text(value: Any) -> str:
    """``value`` as text that shows as written: control characters become ``\\x..``
    escapes. Rich markup is not interpreted where this text is printed (see ``text``)."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def text(value: Any, style: str = "") -> Any:
    """A rich ``Text``: printed literally (never parsed as markup), optionally styled."""
    from rich.text import Text

    if isinstance(value, Text):
        return value
    return Text(plain_text(value), style=style)


def echo(*parts: Any) -> None:
    """One line of plain output built from values that may come from users or models."""
    typer.echo(" ".join(plain_text(p) for p in parts))


def print_line(*parts: Any) -> None:
    """One line of ``text()`` parts (plain values and styled ones), never markup."""
    from rich.console import Console
    from rich.text import Text

    Console(soft_wrap=True).print(Text.assemble(*(text(p) for p in parts)), highlight=False)


def when(ts: float | None, *, compact: bool = False) -> str:
    """A local time to the minute; ``compact``: without the year when it is this year."""
    if ts is None:
        return "-"
    moment = dt.datetime.fromtimestamp(ts)
    if compact and moment.year == dt.datetime.now().year:
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


STATUS_STYLE = {
    "queued": "blue",
    "running": "cyan",
    "sleeping": "magenta",
    "waiting": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


FREE_TEXT = frozenset(
    {"error", "question", "value", "parameters", "config", "expects", "state", "did"}
)
"""Columns of free text: cut with an ellipsis to fit the terminal. Every other column
(ids, names, statuses, numbers, times) is shown whole and never wrapped mid-word."""


ID_COLUMNS = frozenset({"id", "execution", "worker"})
MIN_ID_WIDTH = 13
"""Ids are shown whole. Where the table would not fit the terminal they are cut in the
middle, never below this width, keeping the end: a child (``PARENT.3``) and a schedule's
firing (``daily@2026-12-01T08:00:00Z``) differ from their siblings only there."""


def cut_middle(value: str, width: int) -> str:
    """``value`` in ``width`` characters: its start, an ellipsis, and its end, keeping
    whole the part after the last ``.`` or ``@`` where it fits."""
    if len(value) <= width:
        return value
    room = width - 1
    marker = max(value.rfind("."), value.rfind("@"))
    tail = len(value) - marker if marker > 0 and len(value) - marker <= room - 6 else room // 2
    return value[: room - tail] + "…" + value[-tail:]


def _cell_width(cell: Any) -> int:
    """The widest line of a ``Text`` cell (a cell may hold several lines)."""
    from rich.cells import cell_len

    return max((cell_len(line) for line in cell.plain.split("\n")), default=0)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table whose cells show exactly what they hold (no markup, no control codes),
    fitted to the terminal by cutting free text, then ids in the middle."""
    from rich.console import Console
    from rich.table import Table

    cells = [[text(c) for c in row] for row in rows]
    widths = [
        max([len(column), *(_cell_width(row[i]) for row in cells if i < len(row))])
        for i, column in enumerate(columns)
    ]
    console = Console()
    chrome = 3 * len(columns) + 1  # borders and one space of padding either side
    free = [i for i, column in enumerate(columns) if column in FREE_TEXT]
    if free:
        room = console.width - chrome - sum(w for i, w in enumerate(widths) if i not in free)
        share = max(8, room // len(free))
        for i in free:
            widths[i] = max(len(columns[i]), min(widths[i], share))
    ids = [i for i, column in enumerate(columns) if column in ID_COLUMNS]
    over = sum(widths) + chrome - console.width
    for i in ids:
        if over <= 0:
            break
        cut = min(over, widths[i] - max(len(columns[i]), MIN_ID_WIDTH))
        if cut > 0:
            widths[i] -= cut
            over -= cut
            for row in cells:
                if i < len(row) and row[i].cell_len > widths[i]:
                    row[i] = text(cut_middle(row[i].plain, widths[i]))
    needed = sum(widths) + chrome
    if needed > console.width:  # fixed columns alone are wider: never cut them
        console = Console(width=needed)
    table = Table(title=title and text(title), title_justify="left", header_style="bold")
    for column, width in zip(columns, widths, strict=True):
        table.add_column(column, width=width, no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*row)
    console.print(table)


def styled_status(status: str) -> Any:
    return text(status, STATUS_STYLE.get(status, ""))


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C while a flow runs here: one line saying what became of the execution
    (the engine notes it on the interrupt) instead of click's bare "Aborted!"."""
    try:
        yield
    except KeyboardInterrupt as exc:
        notes = [n.removeprefix("kitaru: ") for n in getattr(exc, "__notes__", [])]
        fail("interrupted" + (f": {notes[-1]}" if notes else ""), 130)


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, printed literally."""
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(
        text("error: ", "bold red") + text(message), highlight=False
    )


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one line on stderr and exit ``code``."""
    print_error(message)
    raise typer.Exit(code)


@contextlib.contextmanager
def progress(what: str) -> Iterator[Callable[[str], None]]:
    """A status line on stderr for long work (``what``, then what the work reports
    through the callable); nothing when stderr is not a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda _: None
        return
    with console.status(text(what)) as status:
        yield lambda news: status.update(text(f"{what}: {news}"))
