"""One connection to the metadata database, SQLite or PostgreSQL, through its DB-API driver.

The runtime talks to the database with plain parametrised SQL on the stdlib ``sqlite3``
(or ``psycopg``) driver instead of SQLAlchemy: importing SQLAlchemy costs ~0.3 s here,
which alone is the whole budget of a process running a short flow. The schema is still
defined with SQLAlchemy (``schema.py``) and changed only through alembic migrations,
which are imported only when the database is behind (``store/migrations/``).
"""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kitaru_core.errors import KitaruBackendError
from kitaru_core.private_files import private_dir, tighten
from kitaru_core.settings import Durability

Row = tuple[Any, ...]
_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=512)
def _to_pyformat(sql: str) -> str:
    """``:name`` parameters (sqlite3's style) to ``%(name)s`` (psycopg's)."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql)


class Database:
    """A thread-safe connection; every statement runs under one lock.

    Statements outside :meth:`transaction` commit on their own.
    """

    def __init__(self, url: str, *, durability: Durability = "normal") -> None:
        self.url = url
        self.durability: Durability = durability
        self.dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        self._lock = threading.RLock()
        self._in_transaction = False
        if self.dialect == "sqlite":
            self._conn: Any = self._connect_sqlite(sqlite_path(url), durability)
            self.integrity_error: type[Exception] = sqlite3.IntegrityError
            self._driver_error: type[Exception] = sqlite3.Error
        else:
            self._conn = self._connect_postgres(url, durability)
            import psycopg

            self.integrity_error = psycopg.IntegrityError
            self._driver_error = psycopg.Error

    # -- connecting ------------------------------------------------------------------

    def _connect_sqlite(self, path: Path, durability: Durability) -> sqlite3.Connection:
        try:
            private_dir(path.parent)
            tighten(path.parent)  # a home made by an earlier Kitaru, or under a lax umask
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            # Before the first write: SQLite gives the -wal and -shm files the
            # database's own mode, so all three stay readable by their owner only.
            for suffix in ("", "-wal", "-shm"):
                tighten(f"{path}{suffix}")
            conn.execute("PRAGMA busy_timeout=30000")
            _use_wal(conn)
            # NORMAL loses nothing when a process dies, FULL also survives power loss.
            conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        except (OSError, sqlite3.Error) as exc:
            raise KitaruBackendError(
                f"cannot open the SQLite metadata store at {path}: {exc}; "
                "check that KITARU_HOME points to a writable directory"
            ) from exc
        return conn

    def _connect_postgres(self, url: str, durability: Durability) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise KitaruBackendError(
                "KITARU_DATABASE_URL names PostgreSQL but psycopg is not installed; "
                'run: pip install "kitaru[postgres]"'
            ) from exc
        try:
            conn = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10)
            if durability == "normal":
                # Like SQLite's synchronous=NORMAL: a commit does not wait for the
                # server's WAL flush (2 to 3 ms here), and survives any client process
                # dying; only a crash of the database server itself may lose the last
                # fraction of a second. `full` keeps every commit flushed.
                conn.execute("SET synchronous_commit = off")
            return conn
        except psycopg.Error as exc:
            raise KitaruBackendError(
                f"cannot connect to the PostgreSQL metadata store {redact(url)}: {exc}; "
                "check KITARU_DATABASE_URL and that the server is running"
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- statements ------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else _to_pyformat(sql)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._lock:
            try:
                cur = self._conn.execute(self._sql(sql), params or {})
                return int(cur.rowcount)
            except self.integrity_error:
                raise
            except self._driver_error as exc:
                raise self._backend_error(exc) from exc

    def fetchall(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        with self._lock:
            try:
                return list(self._conn.execute(self._sql(sql), params or {}).fetchall())
            except self.integrity_error:
                raise
            except self._driver_error as exc:
                raise self._backend_error(exc) from exc

    def fetchone(self, sql: str, params: dict[str, Any] | None = None) -> Row | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            try:
                if self.dialect == "sqlite":
                    self._conn.executemany(sql, rows)
                else:
                    with self._conn.cursor() as cur:
                        cur.executemany(self._sql(sql), rows)
            except self.integrity_error:
                raise
            except self._driver_error as exc:
                raise self._backend_error(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """All statements inside commit together, or none do."""
        with self._lock:
            if self._in_transaction:  # nested use joins the outer transaction
                yield self
                return
            self._in_transaction = True
            try:
                if self.dialect == "sqlite":
                    # IMMEDIATE takes the write lock up front, so two writers queue on
                    # busy_timeout instead of one failing on a lock upgrade.
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self
                    except BaseException:
                        self._conn.execute("ROLLBACK")
                        raise
                    self._conn.execute("COMMIT")
                else:
                    with self._conn.transaction():
                        yield self
            except self.integrity_error:
                raise
            except self._driver_error as exc:
                raise self._backend_error(exc) from exc
            finally:
                self._in_transaction = False

    def lock(self, name: str) -> None:
        """Hold a lock on ``name`` until the current transaction ends, so writers of
        the same thing take turns. PostgreSQL: a transaction-level advisory lock;
        SQLite needs none (a write transaction already excludes every other writer)."""
        if self.dialect == "postgresql":
            digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
            self.execute(
                "SELECT pg_advisory_xact_lock(:id)",
                {"id": int.from_bytes(digest, "big", signed=True)},
            )

    def _backend_error(self, exc: Exception) -> KitaruBackendError:
        return KitaruBackendError(f"metadata store {redact(self.url)} failed: {exc}")


def _use_wal(conn: sqlite3.Connection, patience: float = 30.0) -> None:
    """Put the database in WAL mode, so readers (the CLI, other processes) work while a
    flow writes. The mode is kept in the file: once set, it is only read. Switching
    needs the database to itself, which the busy timeout does not wait for, so while
    another process creates or migrates a new database, try again."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# -- URLs ------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy's spelling) to what libpq accepts."""
    _scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep else url


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy (and so alembic) needs, with the psycopg 3 driver."""
    if url.startswith("postgresql"):
        return "postgresql+psycopg://" + url.partition("://")[2]
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
