"""Alembic migrations of the metadata schema, and the check that runs them when needed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from kitaru_core.errors import KitaruBackendError
from kitaru_core.store.database import Database, sqlalchemy_url, sqlite_path

# Every revision in order, oldest first. A new migration appends its id here, so a
# process can tell "behind" (migrate) from "ahead" (this Kitaru is too old) without
# importing alembic on every start.
REVISIONS = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009",
    "0010",
    "0011",
    "0012",
    "0013",
    "0014",
    "0015",
    "0016",
    "0017",
    "0018",
)
SIGNED_REFERENCES = "0010"
"""From this revision on, every execution's flow reference is signed; a store upgraded
across it has its existing executions signed by the process that upgraded it."""
HEAD = REVISIONS[-1]
_ADVISORY_LOCK_ID = 0x6B697461  # "kita"


def ensure_schema(db: Database) -> bool:
    """Bring the database to ``HEAD``; cheap when it already is. True when it held
    executions from before their flow references were signed (the caller signs them)."""
    current = current_revision(db)
    if current == HEAD:
        return False
    if current is not None and current not in REVISIONS:
        raise KitaruBackendError(
            f"the metadata store is at schema revision {current}, newer than this Kitaru "
            f"knows ({HEAD}); upgrade kitaru on this machine"
        )
    upgrade(db.url)
    return current is not None and REVISIONS.index(current) < REVISIONS.index(SIGNED_REFERENCES)


def current_revision(db: Database) -> str | None:
    try:
        row = db.fetchone("SELECT version_num FROM alembic_version")
    except KitaruBackendError:
        return None  # no version table yet
    return str(row[0]) if row else None


def upgrade(url: str, revision: str = "head") -> None:
    """Run alembic's upgrade; concurrent processes serialise on a lock."""
    _migrate(url, revision, down=False)


def downgrade(url: str, revision: str) -> None:
    """Take the schema back to ``revision`` (an older Kitaru's, e.g. to test an upgrade)."""
    _migrate(url, revision, down=True)


def _migrate(url: str, revision: str, *, down: bool) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.attributes["url"] = sqlalchemy_url(url)
    cfg.attributes["advisory_lock_id"] = _ADVISORY_LOCK_ID
    lock_path = sqlite_path(url).with_suffix(".migrate.lock") if url.startswith("sqlite") else None
    with _file_lock(lock_path):
        (command.downgrade if down else command.upgrade)(cfg, revision)


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
