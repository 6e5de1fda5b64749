"""The Store on PostgreSQL (psycopg 3): its connector and dialect, with the same group commit
as the SQLite store. The Store's logic is written once (store/manager.py).

Connections come from a psycopg_pool pool. One writer task commits: callers queue a job and
await its future; the writer takes everything queued, runs the jobs one after another inside
one transaction on a pooled connection and commits once. Every statement is a round trip to
the server, the writer's whole cost (issue 16: a storm's mails queue on it), so the batch runs
first without a savepoint per job; when a job fails, that transaction is rolled back and the
batch runs again with one savepoint per job, so the failure spoils only its own future as
before (jobs are functions of the database: running one again after a rollback is safe).
Reads take their own pooled connection and never wait behind a commit. Concurrency with OTHER
processes is PostgreSQL's: claims use FOR UPDATE SKIP LOCKED, duplicate detection takes a
transaction-scoped advisory lock on the content digest, and a decision is written only while
the mail is still undecided (postgres-queries.sql).
Named queries (store/queries.py) run with psycopg's `%(name)s` parameters.

Replicas wake each other (issue 14.4): an accepted mail NOTIFYs `escalator_mail`, new pending
actions NOTIFY `escalator_actions` (delivered at commit; once per channel per batch), with this
store's instance id as the payload; `subscribe` LISTENs on a dedicated connection and calls
back for other replicas' news.
Schema versions live in `escalator_schema`; `schema=` (tests) puts every table in a schema of
its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from escalator.errors import StoreUnavailable
from escalator.store import RecordRejected, queries
from escalator.store.db import Job, Json, News, check_version
from escalator.store.manager import StoreManager

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[dict[str, Any]]
ConnJob = Callable[[Conn], Awaitable[Any]]
JobRunner = Callable[[Conn, ConnJob], Awaitable[tuple[Any, BaseException | None]]]

MIGRATIONS = (
    "postgres-0001-initial.sql",
    "postgres-0002-conversations.sql",
    "postgres-0003-content-digest.sql",
    "postgres-0004-loop.sql",
    "postgres-0005-revoked-sessions.sql",
    "postgres-0006-first-due.sql",
    "postgres-0007-facts.sql",
    "postgres-0008-doubt.sql",
    "postgres-0009-storms.sql",
    "postgres-0010-claim-index.sql",
    "postgres-0011-reply-budget.sql",
)
QUERIES = {
    name: queries.to_pyformat(text).encode() for name, text in queries.load("postgres").items()
}
MAIL_CHANNEL, ACTIONS_CHANNEL = "escalator_mail", "escalator_actions"
CHANNELS: dict[News, str] = {"mail": MAIL_CHANNEL, "actions": ACTIONS_CHANNEL}
POOL_SIZE = 8  # the writer, the listener's reconnects aside, and concurrent reads (web, metrics)
POOL_WAIT = 10.0  # seconds a caller waits for a pooled connection before StoreUnavailable
LISTEN_RETRY = 1.0


@dataclass
class _Queued:
    job: ConnJob
    channel: str | None = None  # NOTIFYed at commit when the job succeeded
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


Outcome = tuple[_Queued, Any, BaseException | None]  # a job's result or its own error


class PostgresStore(StoreManager):
    """The Store protocol on PostgreSQL; see the module docstring."""

    def __init__(self, url: str, *, schema: str | None = None, max_batch: int = 512) -> None:
        self.url = url
        self.schema = schema
        connector = PostgresConnector(url, schema, max_batch)
        self.instance = connector.instance
        super().__init__(connector)


class PostgresConnector:
    """store/db.py's Connector on a PostgreSQL database (see the module docstring)."""

    def __init__(self, url: str, schema: str | None, max_batch: int) -> None:
        self.url = url
        self.schema = schema
        self.instance = uuid.uuid4().hex  # the NOTIFY payload: which replica said it
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue()
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self) -> None:
        """Connect and migrate, or fail with the (password-free) target in the message."""
        conn = await self._connect()
        try:
            await _migrate(conn)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot prepare the store {_safe(self.url)}: {exc}") from None
        finally:
            await conn.close()
        self._pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=self._configure,
            check=AsyncConnectionPool.check_connection,
            timeout=POOL_WAIT,
            open=False,
            name="escalator-store",
        )
        await self._pool.open()
        self._writer = asyncio.create_task(self._serve_queue(), name="escalator-store-writer")

    async def close(self) -> None:
        if self._closed or self._writer is None:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self._queue.put(None)
        await self._writer
        if self._pool is not None:
            await self._pool.close()

    async def write(self, job: Job[T], news: News | None = None) -> T:
        """The job in the writer's next batch; `news` NOTIFYed when it commits."""
        run = lambda conn: job(PostgresDb(conn))  # noqa: E731 - the job, on a connection
        return await self._run(run, None if news is None else CHANNELS[news])

    async def read(self, job: Job[T]) -> T:
        """The job on its own pooled connection, beside the writer's commits."""
        async with self._pooled() as conn:
            result: T = await job(PostgresDb(conn))
            return result

    async def _connect(self) -> Conn:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, row_factory=dict_row
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to the store {_safe(self.url)}: {exc}"
            ) from None
        await self._configure(conn)
        return conn

    async def _configure(self, conn: Conn) -> None:
        """Every connection: UTC, and the test schema when there is one."""
        await conn.execute("SET TIME ZONE 'UTC'")
        if self.schema:
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))

    @contextlib.asynccontextmanager
    async def _pooled(self) -> Any:
        """A pooled connection for the block; pool and server trouble become StoreUnavailable."""
        if self._closed or self._pool is None:
            raise StoreUnavailable("the store is closed")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no store connection: {exc}") from None
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"store read failed: {exc}") from None

    # -- replicas waking each other ---------------------------------------------------------

    def subscribe(self, on_mail: Callable[[], None], on_actions: Callable[[], None]) -> None:
        """LISTEN for other replicas' accepted mails and new actions (see the module docstring)."""
        if self._listener is None and not self._closed:
            calls = {MAIL_CHANNEL: on_mail, ACTIONS_CHANNEL: on_actions}
            self._listener = asyncio.create_task(self._listen(calls), name="escalator-listen")

    async def _listen(self, calls: dict[str, Callable[[], None]]) -> None:
        """Listen for as long as the store is open; reconnect after a lost connection."""
        while not self._closed:
            try:
                await self._listen_once(calls)
            except (psycopg.Error, StoreUnavailable) as exc:
                log.warning("store: LISTEN connection lost, reconnecting: %s", exc)
            for call in calls.values():
                call()  # news may have been missed meanwhile: look once
            await asyncio.sleep(LISTEN_RETRY)

    async def _listen_once(self, calls: dict[str, Callable[[], None]]) -> None:
        conn = await self._connect()
        async with conn:
            for channel in calls:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            async for note in conn.notifies():
                if note.payload != self.instance and note.channel in calls:
                    calls[note.channel]()

    # -- the write path -------------------------------------------------------------------

    async def _run(self, job: Callable[[Conn], Awaitable[T]], channel: str | None) -> T:
        if self._closed or self._writer is None or self._writer.done():
            raise StoreUnavailable("the store is closed")
        queued = _Queued(job, channel)
        await self._queue.put(queued)
        result: T = await queued.future
        return result

    async def _serve_queue(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._run_batch(batch)
            if stop:
                return

    async def _run_batch(self, batch: list[_Queued]) -> None:
        live = [item for item in batch if not item.future.cancelled()]
        if not live:
            return
        try:
            try:
                outcomes = await self._commit(live, _run_bare)
            except _JobFailed:  # rolled back: again, each job in a savepoint of its own
                outcomes = await self._commit(live, _run_job)
        except (psycopg.Error, StoreUnavailable) as exc:
            failure = StoreUnavailable(f"store write failed: {exc}")
            for item in live:
                _settle(item.future, None, failure)
            return
        for item, result, error in outcomes:
            _settle(item.future, result, error)

    async def _commit(self, live: list[_Queued], run: JobRunner) -> list[Outcome]:
        """The jobs in one transaction, then one NOTIFY per channel the succeeded ones name."""
        outcomes: list[Outcome] = []
        async with self._pooled() as conn, conn.transaction():
            for item in live:
                outcomes.append((item, *await run(conn, item.job)))
            told = {item.channel for item, _, error in outcomes if error is None}
            for channel in sorted(channel for channel in told if channel is not None):
                await conn.execute("SELECT pg_notify(%s, %s)", (channel, self.instance))
        return outcomes


class _JobFailed(Exception):
    """A job failed in a batch run without savepoints: that transaction is rolled back."""


async def _run_bare(conn: Conn, job: ConnJob) -> tuple[Any, BaseException | None]:
    try:
        return await job(conn), None
    except psycopg.OperationalError:
        raise  # the connection or the server is in trouble: the whole batch is suspect
    except Exception as exc:
        raise _JobFailed from exc


async def _run_job(conn: Conn, job: ConnJob) -> tuple[Any, BaseException | None]:
    try:
        async with conn.transaction():  # a savepoint inside the batch's transaction
            return await job(conn), None
    except psycopg.OperationalError:
        raise  # the connection or the server is in trouble: the whole batch is suspect
    except psycopg.Error as exc:
        return None, RecordRejected(f"store refused the record: {exc}")
    except Exception as exc:  # noqa: BLE001 - a job's own error fails only its own future
        return None, exc


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


async def _migrate(conn: Conn) -> None:
    async with conn.transaction():
        # Two instances starting together: the second waits here, then finds the schema current.
        await conn.execute("SELECT pg_advisory_xact_lock(7342001)")
        await conn.execute("CREATE TABLE IF NOT EXISTS escalator_schema (version INTEGER NOT NULL)")
        row = await (
            await conn.execute("SELECT max(version) AS v FROM escalator_schema")
        ).fetchone()
        version = int(row["v"] or 0) if row else 0
        check_version(version, len(MIGRATIONS))
        for number, name in enumerate(MIGRATIONS[version:], start=version + 1):
            script = resources.files("escalator.store").joinpath(name).read_text("utf-8")
            await conn.execute(script.encode())
            await conn.execute("INSERT INTO escalator_schema (version) VALUES (%s)", (number,))
            log.info("store schema migrated to version %d (%s)", number, name)


# -- the dialect: named queries on a connection -------------------------------------------


class PostgresDb:
    """store/db.py's Db on one connection: times and JSON come back as Python values; text and
    JSON parameters have NUL replaced (PostgreSQL refuses it, mail-derived text may hold it)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def one(self, name: str, **params: Any) -> dict[str, Any] | None:
        return await (await self._execute(name, params)).fetchone()

    async def all(self, name: str, **params: Any) -> list[dict[str, Any]]:
        return await (await self._execute(name, params)).fetchall()

    async def run(self, name: str, **params: Any) -> int:
        return (await self._execute(name, params)).rowcount

    async def many(self, name: str, each: Sequence[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """executemany: psycopg pipelines the statements, one round trip for all of them."""
        if not each:
            return []
        cursor = self._conn.cursor()
        bound = [{key: _bind(value) for key, value in params.items()} for params in each]
        await cursor.executemany(QUERIES[name], bound, returning=True)
        found = []
        for _ in each:
            found.append(None if cursor.description is None else await cursor.fetchone())
            cursor.nextset()
        return found

    def time(self, value: Any) -> datetime:
        moment: datetime = value
        return moment

    def json(self, value: Any) -> Any:
        return value

    async def _execute(
        self, name: str, params: dict[str, Any]
    ) -> psycopg.AsyncCursor[dict[str, Any]]:
        bound = {key: _bind(value) for key, value in params.items()}
        return await self._conn.execute(QUERIES[name], bound)


def _bind(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Json):
        return _json(value.value)
    return value


def _json(value: Any) -> Jsonb:
    """jsonb refuses U+0000, and mail-derived evidence may hold it: store U+FFFD instead."""
    return Jsonb(value, dumps=lambda obj: json.dumps(obj).replace("\\u0000", "\\ufffd"))


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; mail-derived header text occasionally does."""
    return None if value is None else value.replace("\x00", "\ufffd")


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    return f"{scheme}{sep}{credentials.partition(':')[0]}@{host}"
