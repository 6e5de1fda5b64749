"""The embedded store: one SQLite file in WAL mode, every commit fsynced, commits grouped.

The Store's logic is written once (store/manager.py); this module is SQLite's connector and
dialect: where jobs run, how a named query (store/queries.py) is bound and executed.

GROUP COMMIT: one writer thread owns the only connection. Callers queue a job and await its
future; the writer takes everything queued, runs each job inside its own SAVEPOINT within one
transaction, commits once (one fsync for many SMTP sessions), then resolves the futures. So
twenty sessions that finish DATA together share a single fsync, and a job that fails (a
constraint, a bug) spoils only its own future. Any SQLite error becomes StoreUnavailable, which
the SMTP handler answers with 451. A job of store/db.py is a coroutine whose every await
returns at once on this connection: the writer drives it to its end (`drive`). Reads take the
writer's turn too. One service owns the file, so there are no other replicas to tell news.

SEVERAL PROCESSES (ESCALATOR_WORKERS > 1): acceptor processes commit their mails themselves,
beside the back office, and ring it (escalator/handoff.py). SQLite's own lock makes a second
writer sleep and poll (measured here: one waited 4 s while another committed), so every write
transaction here is taken under an exclusive flock() first (`WriteLock`): writers of all
processes queue in the kernel, take turns, and accepts still go first across processes. Each
process groups its own commits.

ACCEPTS FIRST (issue 12): a mail's accept is what an SMTP client waits on before its 250, so
accepts queued beside other work commit in a transaction of their own, ahead of it; and other
work (a decide batch records 32 decisions at once: 30-55 ms measured) is committed in slices of
about SLICE_SECONDS, after each of which the accepts that came meanwhile go first. An accept so
waits for at most one slice, not for a whole batch of decisions and claims.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from escalator.errors import StoreUnavailable
from escalator.store import RecordRejected, queries
from escalator.store.db import Job, Json, News, check_version
from escalator.store.manager import StoreManager

log = logging.getLogger(__name__)

T = TypeVar("T")
ConnJob = Callable[[sqlite3.Connection], Any]

MIGRATIONS = (
    "sqlite-0001-initial.sql",
    "sqlite-0002-review.sql",
    "sqlite-0003-conversations.sql",
    "sqlite-0004-content-digest.sql",
    "sqlite-0005-loop.sql",
    "sqlite-0006-revoked-sessions.sql",
    "sqlite-0007-first-due.sql",
    "sqlite-0008-facts.sql",
    "sqlite-0009-doubt.sql",
    "sqlite-0010-storms.sql",
    "sqlite-0011-reply-budget.sql",
)
QUERIES = queries.load("sqlite")
SLICE_SECONDS = 0.003  # of other jobs in one transaction, before waiting accepts go first
YIELD_SECONDS = 0.05  # other work waits at most this long for other processes' accepts
YIELD_POLL_SECONDS = 0.0005


@dataclass
class _Queued:
    job: ConnJob
    urgent: bool = False  # a mail's accept: an SMTP client waits on it (ACCEPTS FIRST)
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


class WriteLock:
    """The exclusive flock() every write transaction of every process takes (module docstring).

    Entered through a turnstile: a writer holds `<file>.write-queue` while it waits for
    `<file>.write-lock`, so one that releases the lock cannot take it straight back (the
    running thread wins that race) while another process waits: writers take turns. Accepts
    go first across processes too: a writer of accepts holds `<file>.write-accepts` shared
    until it committed, and other work waits (up to YIELD_SECONDS) until none does. The files
    are opened with the connection and closed with it."""

    def __init__(self, path: Path) -> None:
        self._fds: list[int] = []
        try:
            for name in ("write-queue", "write-lock", "write-accepts"):
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                self._fds.append(os.open(f"{path}.{name}", flags, 0o600))
        except OSError:
            self.close()
            raise
        self._queue, self._lock, self._accepts = self._fds

    @contextlib.contextmanager
    def held(self, urgent: bool = False) -> Iterator[None]:
        if urgent:
            fcntl.flock(self._accepts, fcntl.LOCK_SH)
        else:
            self._let_accepts_pass()
        try:
            self._take_turn()
            try:
                yield
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
        finally:
            if urgent:
                fcntl.flock(self._accepts, fcntl.LOCK_UN)

    def _take_turn(self) -> None:
        fcntl.flock(self._queue, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        finally:
            fcntl.flock(self._queue, fcntl.LOCK_UN)

    def _let_accepts_pass(self) -> None:
        """Wait until no process is committing accepts, or YIELD_SECONDS have passed."""
        give_up = time.monotonic() + YIELD_SECONDS
        while True:
            try:
                fcntl.flock(self._accepts, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() < give_up:
                    time.sleep(YIELD_POLL_SECONDS)
                    continue
                return
            fcntl.flock(self._accepts, fcntl.LOCK_UN)
            return

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)


class SQLiteStore(StoreManager):
    """The Store protocol on SQLite; see the module docstring for the write path."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, max_batch: int = 512) -> None:
        self.path = path
        super().__init__(SQLiteConnector(path, busy_timeout, max_batch))


class SQLiteConnector:
    """store/db.py's Connector on one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, busy_timeout: float, max_batch: int) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def open(self) -> None:
        """Create the file if needed and bring the schema up to date, or fail clearly."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            message = f"cannot create the store folder {self.path.parent}: {exc}"
            raise StoreUnavailable(message) from None
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._writer, args=(ready,), name="escalator-store-writer", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(ready)

    async def close(self) -> None:
        """Finish every queued job, then close the connection."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    async def write(self, job: Job[T], news: News | None = None) -> T:
        """The job on the writer thread, in the next group commit; a mail's accept (news
        "mail") ahead of other work (ACCEPTS FIRST)."""
        return await self._run(lambda conn: drive(job(SQLiteDb(conn))), urgent=news == "mail")

    async def read(self, job: Job[T]) -> T:
        return await self.write(job)

    def subscribe(self, on_mail: Callable[[], None], on_actions: Callable[[], None]) -> None:
        """One service owns a SQLite file: it wakes its own workers (its acceptor processes ring
        the back office, escalator/handoff.py); nothing to listen to."""

    async def _run(self, job: Callable[[sqlite3.Connection], T], urgent: bool = False) -> T:
        if self._closed or self._thread is None or not self._thread.is_alive():
            raise StoreUnavailable("the store is closed")
        queued = _Queued(job, urgent)
        self._queue.put(queued)
        result: T = await asyncio.wrap_future(queued.future)
        return result

    def _writer(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            conn, lock = self._connect()
        except Exception as exc:  # noqa: BLE001 - any open failure goes to the awaiting opener
            self._closed = True
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            self._serve_queue(conn, lock)
        finally:
            conn.close()
            lock.close()

    def _connect(self) -> tuple[sqlite3.Connection, WriteLock]:
        try:
            lock = WriteLock(self.path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the store {self.path}: {exc}") from None
        try:
            with lock.held():
                return _connected(self.path, self._busy_timeout), lock
        except BaseException:
            lock.close()
            raise

    def _serve_queue(self, conn: sqlite3.Connection, lock: WriteLock) -> None:
        while not self._serve_batch(conn, lock):
            pass

    def _serve_batch(self, conn: sqlite3.Connection, lock: WriteLock) -> bool:
        """Wait for work, run it (accepts first, the rest in slices); True once told to stop.
        The batch (a mail's bytes, a row read) goes out of scope here, not kept while the next
        is awaited."""
        first = self._queue.get()
        if first is None:
            return True
        pending, stop = self._drain([first])
        while pending:
            with lock.held(urgent=any(item.urgent for item in pending)):
                pending = _run_slice(conn, pending)
            if not stop:
                pending, stop = self._drain(pending)
        return stop

    def _drain(self, batch: list[_Queued]) -> tuple[list[_Queued], bool]:
        """`batch` and whatever is queued now, up to max_batch; True once told to stop."""
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False


def _connected(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection in WAL mode with the schema up to date (under the write lock)."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open the store {path}: {exc}") from None
    try:
        _configure(conn)
        _migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreUnavailable(f"cannot open the store {path}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


# -- batches ------------------------------------------------------------------------------


def _run_slice(conn: sqlite3.Connection, pending: list[_Queued]) -> list[_Queued]:
    """The waiting accepts in one transaction if there are any, else a slice of the rest;
    what is left to run."""
    urgent = [item for item in pending if item.urgent]
    if urgent:
        _run_batch(conn, urgent)
        return [item for item in pending if not item.urgent]
    ran = _run_batch(conn, pending, SLICE_SECONDS)
    return pending[ran:]


def _run_batch(conn: sqlite3.Connection, batch: list[_Queued], budget: float | None = None) -> int:
    """One transaction, one savepoint per job, one commit; then settle every future. With a
    `budget` (seconds), only the jobs started within it (at least one). How many it took."""
    seen: list[_Queued] = []
    try:
        outcomes = _run_jobs(conn, batch, budget, seen)
    except sqlite3.Error as exc:
        _rollback(conn)
        failure = StoreUnavailable(f"store write failed: {exc}")
        for item in seen:
            if item.future.running():
                item.future.set_exception(failure)
        return len(seen)
    for item, result, error in outcomes:
        if error is None:
            item.future.set_result(result)
        else:
            item.future.set_exception(error)
    return len(seen)


def _run_jobs(
    conn: sqlite3.Connection, batch: list[_Queued], budget: float | None, seen: list[_Queued]
) -> list[tuple[_Queued, Any, BaseException | None]]:
    """The jobs of one transaction (each one taken is added to `seen`), committed."""
    give_up = None if budget is None else time.perf_counter() + budget
    outcomes: list[tuple[_Queued, Any, BaseException | None]] = []
    for item in batch:
        if outcomes and give_up is not None and time.perf_counter() > give_up:
            break
        seen.append(item)
        if not item.future.set_running_or_notify_cancel():
            continue  # its caller gave up waiting
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        outcomes.append((item, *_run_job(conn, item.job)))
    if conn.in_transaction:
        conn.execute("COMMIT")
    return outcomes


def _run_job(conn: sqlite3.Connection, job: ConnJob) -> tuple[Any, BaseException | None]:
    conn.execute("SAVEPOINT job")
    try:
        result = job(conn)
    except sqlite3.OperationalError:
        raise  # disk, lock or I/O trouble: the whole transaction is suspect
    except Exception as exc:  # noqa: BLE001 - a job's own error fails only its own future
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        error = (
            RecordRejected(f"store refused the record: {exc}")
            if isinstance(exc, sqlite3.Error)
            else exc
        )
        return None, error
    conn.execute("RELEASE job")
    return result, None


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")


# -- schema -------------------------------------------------------------------------------


def _configure(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        log.warning("SQLite refused WAL mode (got %s); commits will be slower", mode)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply each migration after the file's `user_version`, each in its own transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    check_version(version, len(MIGRATIONS))
    for number, name in enumerate(MIGRATIONS[version:], start=version + 1):
        script = resources.files("escalator.store").joinpath(name).read_text("utf-8")
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\n")
            conn.execute("COMMIT")
        except sqlite3.Error:
            _rollback(conn)
            raise
        log.info("store schema migrated to version %d (%s)", number, name)


# -- the dialect: named queries on the writer's connection ---------------------------------


class SQLiteDb:
    """store/db.py's Db on the writer thread's connection: times are stored as UTC text,
    JSON documents and lists as JSON text (lists read with json_each)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def one(self, name: str, **params: Any) -> sqlite3.Row | None:
        cursor = self._execute(name, params)
        row: sqlite3.Row | None = cursor.fetchone()
        cursor.close()
        return row

    async def all(self, name: str, **params: Any) -> list[sqlite3.Row]:
        return self._execute(name, params).fetchall()

    async def run(self, name: str, **params: Any) -> int:
        return self._execute(name, params).rowcount

    async def many(self, name: str, each: Sequence[dict[str, Any]]) -> list[sqlite3.Row | None]:
        return [await self.one(name, **params) for params in each]

    def time(self, value: Any) -> datetime:
        return _dt(value)

    def json(self, value: Any) -> Any:
        return json.loads(value)

    def _execute(self, name: str, params: dict[str, Any]) -> sqlite3.Cursor:
        """An empty query (nothing to do in SQLite) executes nothing: no row, rowcount -1."""
        bound = {key: _bind(value) for key, value in params.items()}
        blob = _BLOB_WRITES.get(name)
        if blob is None:
            return self._conn.execute(QUERIES[name], bound)
        table, column = blob
        bound[column] = len(params[column])
        cursor = self._conn.execute(QUERIES[name], bound)
        with self._conn.blobopen(table, column, _rowid(cursor)) as written:
            written.write(params[column])  # straight from the caller's buffer into the pages
        return cursor


# Queries whose bytes parameter (named as the column) is bound as its length, for a zeroblob
# the bytes are then written into: a mail's raw bytes are never copied by SQLite nor kept in its
# statement cache (sqlite-queries.sql).
_BLOB_WRITES = {"insert_mail": ("mails", "raw")}


def _rowid(cursor: sqlite3.Cursor) -> int:
    if cursor.lastrowid is None:
        raise StoreUnavailable("insert returned no row id")
    return cursor.lastrowid


def _bind(value: Any) -> Any:
    if isinstance(value, datetime):
        return _ts(value)
    if isinstance(value, Json):
        return json.dumps(value.value)
    if isinstance(value, list):
        return json.dumps(value)
    return value


def drive(job: Awaitable[T]) -> T:
    """Run a job to its end on this thread: every await of SQLiteDb returns at once, so the
    coroutine finishes on its first step (anything that suspends is a bug, and refused)."""
    steps = job.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    steps.close()
    raise RuntimeError("a SQLite store job waited for something outside the store")


def _ts(moment: datetime) -> str:
    """UTC text with fixed precision, so comparing the text compares the instants."""
    if moment.tzinfo is None:
        raise ValueError("store times must carry a time zone")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)
