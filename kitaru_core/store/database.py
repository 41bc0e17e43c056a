"""Connections to the metadata database, SQLite or PostgreSQL, through its DB-API driver.

The runtime talks to the database with plain parametrised SQL on the stdlib ``sqlite3``
(or ``psycopg``) driver instead of SQLAlchemy: importing SQLAlchemy costs ~0.3 s here,
which alone is the whole budget of a process running a short flow. The schema is still
defined with SQLAlchemy (``schema.py``) and changed only through alembic migrations,
which are imported only when the database is behind (``store/migrations/``).

Connections come and go under the one ``Database`` object a process keeps: SQLite gets
a connection per thread (readers never wait on each other; writers queue on SQLite's
own lock); PostgreSQL gets a ``psycopg_pool`` pool whose check on checkout notices a
connection the server dropped (a restart, a failover, ``pg_terminate_backend``, a
proxy's idle timeout) and replaces it, so a long-lived server or worker rides out a
database restart instead of failing until restarted by hand.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from kitaru_core.errors import KitaruBackendError, KitaruDatabaseUnavailable
from kitaru_core.private_files import private_dir, tighten
from kitaru_core.settings import Durability

Row = tuple[Any, ...]
T = TypeVar("T")
_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

CHECKPOINT_SECONDS = 0.2
"""How often, at most, a writing process copies SQLite's WAL back (``_WalCheckpointer``)."""
BACKSTOP_CHECKPOINT_PAGES = 20_000
"""The WAL size (pages of 4 KiB) at which a commit copies it back itself."""

POOL_SIZE = 10
"""Most PostgreSQL connections one process holds: a server's request threads beyond it
wait for one (and answer 503 after ``CHECKOUT_SECONDS``)."""
CHECKOUT_SECONDS = 5.0
"""How long a statement waits for a working PostgreSQL connection before it fails as
unavailable: the time a database restart may take without a request failing."""
CONNECT_SECONDS = 5


@functools.lru_cache(maxsize=512)
def _to_pyformat(sql: str) -> str:
    """``:name`` parameters (sqlite3's style) to ``%(name)s`` (psycopg's)."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql)


class Database:
    """The process's way to the metadata database; safe to share between threads.

    Statements outside :meth:`transaction` commit on their own. A read whose connection
    was lost is retried once on a fresh one; so is a transaction whose connection was
    found lost before its first statement. A write whose connection is lost midway
    is never retried (it may have been applied): it fails as
    ``KitaruDatabaseUnavailable``.
    """

    def __init__(self, url: str, *, durability: Durability = "normal") -> None:
        self.url = url
        self.durability: Durability = durability
        self.dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        self._local = threading.local()  # the thread's open transaction, if any
        self._connections: _Connections
        self._sqlite: _SQLiteConnections | None = None
        if self.dialect == "sqlite":
            self._connections = self._sqlite = _SQLiteConnections(sqlite_path(url), durability)
            self.integrity_error: type[Exception] = sqlite3.IntegrityError
            self._driver_error: type[Exception] = sqlite3.Error
            self._pipelines = False
        else:
            self._connections = _PostgresPool(url, durability)
            import psycopg

            self.integrity_error = psycopg.IntegrityError
            self._driver_error = psycopg.Error
            # Pipelines need libpq 14 or later (the binary wheel bundles one).
            self._pipelines = psycopg.Pipeline.is_supported()

    def opened(self) -> None:
        """The metadata store on it opened: background upkeep may start (SQLite's WAL)."""
        self._connections.opened()

    def close(self) -> None:
        self._connections.close()

    # -- statements ------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else _to_pyformat(sql)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; returns the number of rows it changed."""
        text = self._sql(sql)
        return self._run(lambda conn: int(conn.execute(text, params or {}).rowcount), read=False)

    def fetchall(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        text = self._sql(sql)
        read = sql.lstrip()[:6].upper() == "SELECT"  # not INSERT/UPDATE ... RETURNING
        return self._run(lambda conn: list(conn.execute(text, params or {}).fetchall()), read=read)

    def fetchone(self, sql: str, params: dict[str, Any] | None = None) -> Row | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        def run(conn: Any) -> None:
            if self.dialect == "sqlite":
                conn.executemany(sql, rows)
            else:
                with conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)

        self._run(run, read=False)

    def _run(self, work: Callable[[Any], T], *, read: bool) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is not None:  # inside this thread's transaction
            return self._attempt(work, conn)
        with self._connections.connection() as conn:
            try:
                return self._attempt(work, conn)
            except KitaruDatabaseUnavailable:
                if not read:
                    raise
        with self._connections.connection() as conn:  # a fresh one: the lost one is gone
            return self._attempt(work, conn)

    def _attempt(self, work: Callable[[Any], T], conn: Any) -> T:
        try:
            return work(conn)
        except self.integrity_error:
            raise
        except self._driver_error as exc:
            raise self._backend_error(exc, conn) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """All statements inside commit together, or none do."""
        local = self._local
        if getattr(local, "conn", None) is not None:  # nested use joins the outer one
            yield self
            return
        with self._begun() as conn:
            local.conn = conn
            try:
                yield self
            except BaseException:
                local.conn = None
                self._connections.rollback(conn)
                raise
            local.conn = None
            try:
                conn.execute("COMMIT")
            except self._driver_error as exc:
                self._connections.rollback(conn)  # never leave a connection mid-transaction
                raise self._backend_error(exc, conn) from exc
            self._connections.committed()

    def batch(
        self,
        statements: Sequence[tuple[str, dict[str, Any]]],
        *,
        check: Callable[[list[int]], None] | None = None,
    ) -> list[int]:
        """Run ``statements`` in one transaction; their row counts. ``check`` is given
        the row counts before the commit, and raises to roll the transaction back.

        On PostgreSQL the statements go out together in one pipeline, so a batch costs
        two round trips (the statements, then the commit) however many it holds: a
        checkpoint's entry, its artifacts and its lease check cost what one did."""
        if getattr(self._local, "conn", None) is None and self._sqlite is not None:
            return self._sqlite_batch(self._sqlite.current(), statements, check)
        if not self._pipelines or getattr(self._local, "conn", None) is not None:
            with self.transaction() as db:
                counts = [db.execute(sql, params) for sql, params in statements]
                if check is not None:
                    check(counts)
                return counts
        with self._connections.connection() as conn:
            try:
                with conn.pipeline() as pipeline:
                    conn.execute("BEGIN")
                    cursors = [conn.execute(self._sql(sql), params) for sql, params in statements]
                    pipeline.sync()
                counts = [int(cursor.rowcount) for cursor in cursors]
                if check is not None:
                    check(counts)
            except BaseException as exc:
                self._connections.rollback(conn)
                if isinstance(exc, self._driver_error) and not isinstance(
                    exc, self.integrity_error
                ):
                    raise self._backend_error(exc, conn) from exc
                raise
            self._attempt(lambda c: c.execute("COMMIT"), conn)
            return counts

    def _sqlite_batch(
        self,
        conn: sqlite3.Connection,
        statements: Sequence[tuple[str, dict[str, Any]]],
        check: Callable[[list[int]], None] | None,
    ) -> list[int]:
        """``batch`` on SQLite, straight on the thread's connection: every checkpoint and
        model request commits through here, and the layers ``transaction`` goes through
        for a connection that may be lost (PostgreSQL's) cost a tenth of the commit.
        A SQLite connection is a local file: it is never lost."""
        cursor = conn.cursor()  # one for the batch: Connection.execute makes one each time
        try:
            cursor.execute("BEGIN IMMEDIATE")
            counts = []
            for sql, params in statements:
                cursor.execute(sql, params)
                counts.append(cursor.rowcount)
            if check is not None:
                check(counts)
            cursor.execute("COMMIT")
        except BaseException as exc:
            self._connections.rollback(conn)
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                raise self._backend_error(exc, conn) from exc
            raise
        self._connections.committed()
        return counts

    @contextlib.contextmanager
    def _begun(self) -> Iterator[Any]:
        """A connection with a transaction begun on it; a connection found lost at
        ``BEGIN`` (nothing ran on it yet) is replaced once."""
        with contextlib.ExitStack() as held:
            conn = held.enter_context(self._connections.connection())
            try:
                self._attempt(self._connections.begin, conn)
            except KitaruDatabaseUnavailable:
                held.close()
                conn = held.enter_context(self._connections.connection())
                self._attempt(self._connections.begin, conn)
            yield conn

    def patiently(self, work: Callable[[], T], *, patience: float) -> T:
        """``work()``, done again while the database is unavailable, for up to
        ``patience`` seconds. For work that is safe to repeat: a transaction that
        failed before its commit left nothing behind, and one that failed at its commit
        must be checked for by ``work`` itself."""
        deadline = time.monotonic() + patience
        delay = 0.05
        while True:
            try:
                return work()
            except KitaruDatabaseUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

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

    def prefix_match(self, column: str, param: str, prefix: str) -> tuple[str, dict[str, str]]:
        """A condition that ``column`` starts with ``prefix``, case-sensitively on both
        databases (SQLite's LIKE ignores case): its SQL and its parameter."""
        if self.dialect == "sqlite":
            escaped = re.sub(r"([*?\[])", r"[\1]", prefix)
            return f"{column} GLOB :{param}", {param: escaped + "*"}
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"{column} LIKE :{param} ESCAPE '\\'", {param: escaped + "%"}

    def _backend_error(self, exc: Exception, conn: Any) -> KitaruBackendError:
        if self._connections.lost(exc, conn):
            return KitaruDatabaseUnavailable(
                f"lost the connection to the metadata store {redact(self.url)} ({exc}); "
                "it is retried on the next call: check that the database is up"
            )
        return KitaruBackendError(f"metadata store {redact(self.url)} failed: {exc}")


class _Connections:
    """Where a ``Database`` gets a connection for a statement or a transaction."""

    def connection(self) -> Any:
        raise NotImplementedError

    def begin(self, conn: Any) -> None:
        raise NotImplementedError

    def rollback(self, conn: Any) -> None:
        with contextlib.suppress(Exception):  # a lost connection rolled back by itself
            conn.execute("ROLLBACK")

    def lost(self, exc: Exception, conn: Any) -> bool:
        return False

    def committed(self) -> None:
        """A transaction was committed (SQLite: the WAL grew)."""

    def opened(self) -> None:
        """The store on it was opened: its schema is Kitaru's, and current."""

    def close(self) -> None:
        raise NotImplementedError


class _SQLiteConnections(_Connections):
    """One connection per thread, opened on the thread's first statement and closed by
    that thread: when it ends, or at its first statement after the database closed.

    Never by another thread while the owner may be inside a statement: CPython's
    ``sqlite3`` frees what a running statement still uses, and the interpreter crashes
    (a server shutting down under a request, a store closed under a lease heartbeat).
    """

    def __init__(self, path: Path, durability: Durability) -> None:
        self.path = path
        self.durability = durability
        self._closed = False
        self._local = threading.local()
        self._checkpointer: _WalCheckpointer | None = None
        with self.connection() as conn:  # open now: a bad path fails here, in one message
            _use_wal(conn)

    def opened(self) -> None:
        # Only now: a database Kitaru refuses to open (not its schema, not current) must
        # not be written to by a thread of its own.
        self._checkpointer = _WalCheckpointer(self._connect)
        owned = getattr(self._local, "owned", None)  # made before: it checkpoints no more
        if owned is not None:
            owned.conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")

    def committed(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.nudge()

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        yield self.current()

    def current(self) -> sqlite3.Connection:
        """This thread's connection."""
        if self._closed:
            self._retire()
        owned = getattr(self._local, "owned", None)
        if owned is None:
            owned = self._local.owned = _Owned(self._connect())
        return owned.conn

    def _retire(self) -> NoReturn:
        """This thread's statement after ``close``: its own connection closes here."""
        self._close_own()
        raise KitaruBackendError(
            f"the SQLite metadata store at {self.path} was closed; open the store again "
            "instead of keeping a closed one"
        )

    def _connect(self) -> sqlite3.Connection:
        path = self.path
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
            # NORMAL loses nothing when a process dies, FULL also survives power loss.
            full = self.durability == "full"
            conn.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            if self._checkpointer is not None:
                # The WAL is copied back by `_WalCheckpointer`, not by the commit that
                # crosses SQLite's threshold; this is only the bound if it falls behind.
                conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
        except (OSError, sqlite3.Error) as exc:
            raise KitaruBackendError(
                f"cannot open the SQLite metadata store at {path}: {exc}; "
                "check that KITARU_HOME points to a writable directory"
            ) from exc
        return conn

    def begin(self, conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of one failing on a lock upgrade.
        conn.execute("BEGIN IMMEDIATE")

    def rollback(self, conn: Any) -> None:
        if conn.in_transaction:
            super().rollback(conn)

    def close(self) -> None:
        self._closed = True
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._close_own()  # every other thread closes its own (see the class)

    def _close_own(self) -> None:
        owned = getattr(self._local, "owned", None)
        if owned is not None:
            owned.conn.close()
            self._local.owned = None


_this_process = os.getpid()
"""This process's id, kept here: ``os.getpid`` is a system call, and every commit asks."""


def _forked() -> None:
    global _this_process
    _this_process = os.getpid()


os.register_at_fork(after_in_child=_forked)


class _WalCheckpointer:
    """Copies the WAL back into the database file in a thread of its own while this
    process writes. SQLite would do it in the commit that takes the WAL past 1000
    pages: that commit waits for two fsyncs (milliseconds), which, spread over the
    commits before it, more than doubled the mean time of a small commit. Here it runs
    at most every ``CHECKPOINT_SECONDS`` after a commit, beside the writers (a
    ``PASSIVE`` checkpoint blocks no one, and SQLite lets go of the GIL meanwhile)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0  # the process the thread runs in (a forked child starts its own)

    def nudge(self) -> None:
        if self._pid != _this_process and not self._halt.is_set():
            self._pid = _this_process
            self._thread = threading.Thread(
                target=self._run, name="kitaru-wal-checkpoint", daemon=True
            )
            self._thread.start()
        if not self._wake.is_set():  # (setting it takes a lock: most commits find it set)
            self._wake.set()

    def stop(self) -> None:
        """No checkpoint after this returns: the file may be gone or replaced next."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None and self._pid == _this_process:
            self._thread.join(10)

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._wake.wait()
                # Commits meanwhile join this checkpoint; a stop ends the wait at once.
                if self._halt.wait(CHECKPOINT_SECONDS):
                    return
                self._wake.clear()
                with contextlib.suppress(sqlite3.Error):  # busy: the next commit asks again
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()


class _Owned:
    """A thread's SQLite connection, closed when the thread's locals are dropped."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __del__(self) -> None:
        self.conn.close()


class _PostgresPool(_Connections):
    """A ``psycopg_pool`` pool that checks each connection as it is handed out."""

    def __init__(self, url: str, durability: Durability) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise KitaruBackendError(
                "KITARU_DATABASE_URL names PostgreSQL but psycopg is not installed; "
                "run: pip install -e '.[postgres]' (in a Kitaru checkout)"
            ) from exc
        self.url = url
        self._psycopg = psycopg

        def configure(conn: Any) -> None:
            if durability == "normal":
                # Like SQLite's synchronous=NORMAL: a commit does not wait for the
                # server's WAL flush (2 to 3 ms here), and survives any client process
                # dying; only a crash of the database server itself may lose the last
                # fraction of a second. `full` keeps every commit flushed.
                conn.execute("SET synchronous_commit = off")

        self.pool = ConnectionPool(
            libpq_url(url),
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_SECONDS},
            configure=configure,
            timeout=CHECKOUT_SECONDS,
            num_workers=1,
            open=False,
            name="kitaru",
        )
        self.pool.open(wait=False)
        with self.connection():
            pass  # fail here, in one message, when the database is not there

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        from psycopg_pool import PoolTimeout

        try:
            conn = self._checkout()
        except PoolTimeout:
            raise self._unreachable() from None
        try:
            yield conn
        finally:
            self.pool.putconn(conn)

    def _checkout(self) -> Any:
        """A pooled connection that is still connected. After the server dropped them
        all (a restart, ``pg_terminate_backend``) the pool holds dead ones: each is
        closed and passed over at once, so the pool replaces it. (The pool's own check
        would wait a second, then two, then four, after each dead one: five seconds
        are gone before the tenth, and the caller is told the pool stayed busy.)"""
        for _ in range(POOL_SIZE):
            conn = self.pool.getconn()
            if _still_connected(conn):
                return conn
            conn.close()
            self.pool.putconn(conn)  # a closed connection is discarded and replaced
        return self.pool.getconn()

    def _unreachable(self) -> KitaruDatabaseUnavailable:
        """Why no connection could be had, in the driver's words (one direct try)."""
        try:
            self._psycopg.connect(libpq_url(self.url), connect_timeout=CONNECT_SECONDS).close()
            reason = f"every one of its {POOL_SIZE} connections stayed busy"
        except self._psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0]
        return KitaruDatabaseUnavailable(
            f"cannot connect to the PostgreSQL metadata store {redact(self.url)} within "
            f"{CHECKOUT_SECONDS:g} s: {reason}; check KITARU_DATABASE_URL and that the "
            "server is running"
        )

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def rollback(self, conn: Any) -> None:
        # A connection the server dropped while a pipeline was still being read can
        # fail with "cannot exit pipeline mode while busy" before psycopg notices that
        # it is gone: still in pipeline mode, a query still active. Nothing can run on
        # it again, so close it; the pool discards it and `lost` names it as lost.
        pq = self._psycopg.pq
        if (
            conn.pgconn.pipeline_status != pq.PipelineStatus.OFF
            or conn.info.transaction_status == pq.TransactionStatus.ACTIVE
        ):
            conn.close()
            return
        super().rollback(conn)

    def lost(self, exc: Exception, conn: Any) -> bool:
        state = getattr(exc, "sqlstate", None) or ""
        return bool(conn.broken or conn.closed) or state[:2] == "08" or state in _SHUTDOWN

    def close(self) -> None:
        self.pool.close()


# admin_shutdown (pg_terminate_backend, a fast shutdown), crash_shutdown, cannot_connect_now
_SHUTDOWN = {"57P01", "57P02", "57P03"}


def _still_connected(conn: Any) -> bool:
    """Whether an idle connection is still connected: it has nothing to say, so a
    readable socket means the server closed it or sent its last words (``terminating
    connection``). One ``poll`` instead of a round trip: a checkout costs microseconds."""
    if conn.closed or conn.broken:
        return False
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        try:
            conn.execute("")  # notices are harmless; a dropped connection raises here
        except Exception:
            return False
    return True


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
