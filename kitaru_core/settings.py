"""Process-wide settings read from ``KITARU_*`` environment variables.

This is a plain dataclass rather than a pydantic-settings model on purpose: it is read
by every process that runs a flow, and pydantic-settings alone costs ~160 ms of import
here, half of the whole-process budget.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kitaru_core.errors import KitaruUsageError

Durability = Literal["normal", "full"]


@dataclass(frozen=True)
class Settings:
    home: Path
    """Where the SQLite journal, local artifacts and logs live (``KITARU_HOME``)."""
    database_url: str | None
    """A PostgreSQL URL to share the journal between machines (``KITARU_DATABASE_URL``)."""
    durability: Durability
    """``normal`` survives a killed process; ``full`` also survives power loss."""
    stack: str | None
    """Overrides the active stack for this process (``KITARU_STACK``)."""
    inline_artifact_bytes: int = 4096
    """Artifacts up to this size live in the metadata store, beside their journal entry
    (``KITARU_INLINE_ARTIFACT_BYTES``; 0 sends every artifact to the artifact store)."""
    server_url: str | None = None
    """A ``kitaru serve`` that holds the metadata in place of a database
    (``KITARU_SERVER_URL``, else ``kitaru login``)."""
    token: str | None = field(default=None, repr=False)
    """The API token sent to ``server_url`` (``KITARU_TOKEN``, else ``kitaru login``)."""

    @property
    def sqlite_path(self) -> Path:
        return self.home / "kitaru.db"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def login_file(self) -> Path:
        return login_file(self.home)


def login_file(home: Path) -> Path:
    """Where ``kitaru login`` keeps the server's URL and the token (mode 0600)."""
    return home / "login.json"


def _login(home: Path) -> dict[str, str]:
    try:
        data = json.loads(login_file(home).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # no login (or no home yet)
        return {}
    except (OSError, ValueError) as exc:
        raise KitaruUsageError(
            f"{login_file(home)} cannot be read ({exc}); run `kitaru login URL` again, or "
            "`kitaru logout` to use the database directly"
        ) from None
    return data if isinstance(data, dict) else {}


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "kitaru"


def load_settings() -> Settings:
    """Read the settings from the environment now (tests change it between calls)."""
    env = os.environ
    durability = env.get("KITARU_DURABILITY", "normal").strip().lower() or "normal"
    if durability not in ("normal", "full"):
        raise KitaruUsageError(
            f"KITARU_DURABILITY={durability!r} is not a durability level; "
            "use 'normal' (survives a killed process) or 'full' (also survives power loss)"
        )
    inline = env.get("KITARU_INLINE_ARTIFACT_BYTES", "4096").strip() or "4096"
    if not inline.isdigit():
        raise KitaruUsageError(
            f"KITARU_INLINE_ARTIFACT_BYTES={inline!r} is not a size in bytes; use a whole "
            "number such as 4096, or 0 to keep every artifact in the artifact store"
        )
    home = Path(env["KITARU_HOME"]).expanduser() if env.get("KITARU_HOME") else _default_home()
    server_url, token = env.get("KITARU_SERVER_URL", "").strip(), env.get("KITARU_TOKEN")
    if not server_url:
        login = _login(home)
        server_url, token = login.get("url", ""), token or login.get("token")
    return Settings(
        home=home,
        database_url=database_url(env.get("KITARU_DATABASE_URL", "").strip()),
        durability=durability,  # type: ignore[arg-type]
        stack=env.get("KITARU_STACK") or None,
        inline_artifact_bytes=int(inline),
        server_url=server_url.rstrip("/") or None,
        token=token or None,
    )


POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")


def database_url(url: str) -> str | None:
    """``KITARU_DATABASE_URL`` as the store opens it: PostgreSQL under any of its usual
    spellings (``postgres://`` included), a SQLite file (``sqlite:///path``), or nothing
    (SQLite in the Kitaru home)."""
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in POSTGRES_SCHEMES:
        return "postgresql://" + rest
    if sep and scheme.lower() == "sqlite" and rest.startswith("/"):
        return url  # sqlite:///path/to/kitaru.db: a SQLite file of your choosing
    shown = f"starts with {scheme}://" if sep else f"is {url[:40]!r}"
    raise KitaruUsageError(
        f"KITARU_DATABASE_URL {shown}, which Kitaru cannot use: set a PostgreSQL "
        "URL (postgresql://user:password@host:5432/db, postgres:// also works), or unset it "
        "to use SQLite in KITARU_HOME"
    )
