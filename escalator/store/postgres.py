"""The Store protocol on PostgreSQL (psycopg 3), with the same group commit as the SQLite store.

Connections come from a psycopg_pool pool. One writer task commits: callers queue a job and
await its future; the writer takes everything queued, runs each job in its own savepoint inside
one transaction on a pooled connection and commits once. Reads take their own pooled connection
and never wait behind a commit. Concurrency with OTHER processes is PostgreSQL's: claims use FOR
UPDATE SKIP LOCKED, duplicate detection takes a transaction-scoped advisory lock on the content
digest, and a decision is written only while the mail is still undecided.

Replicas wake each other (issue 14.4): an accepted mail NOTIFYs `escalator_mail`, new pending
actions NOTIFY `escalator_actions` (delivered at commit), with this store's instance id as the
payload; `subscribe` LISTENs on a dedicated connection and calls back for other replicas' news.
Schema versions live in `escalator_schema`; `schema=` (tests) puts every table in a schema of
its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from escalator.core.actions import PlannedAction
from escalator.core.facts import MailFacts
from escalator.core.record import DecisionRecord
from escalator.errors import ConfigError, StoreUnavailable
from escalator.store import (
    DUPLICATE_WINDOW_DAYS,
    REVIEW_STATES,
    Accepted,
    ActionRow,
    AuditRow,
    IncomingMail,
    ListedMail,
    MailRow,
    Purged,
    RecordRejected,
    actions,
    queries,
)
from escalator.store.actions import OutboxTables
from escalator.store.db import Job as DbJob
from escalator.store.db import Json, News
from escalator.store.loop import LoopTables

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[dict[str, Any]]
ConnJob = Callable[[Conn], Awaitable[Any]]

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
)
QUERIES = {
    name: queries.to_pyformat(text).encode() for name, text in queries.load("postgres").items()
}
MAIL_CHANNEL, ACTIONS_CHANNEL = "escalator_mail", "escalator_actions"
CHANNELS: dict[News, str] = {"mail": MAIL_CHANNEL, "actions": ACTIONS_CHANNEL}
POOL_SIZE = 8  # the writer, the listener's reconnects aside, and concurrent reads (web, metrics)
POOL_WAIT = 10.0  # seconds a caller waits for a pooled connection before StoreUnavailable
LISTEN_RETRY = 1.0
_SELECT_MAILS = (
    "SELECT id, received_at, mail_from, rcpt_tos, client_address, tls, message_id, subject, "
    'from_addr, size, decision, verdict, reasons, slack_channel, "window", decided_at, review, '
    "raw_purged_at, facts, NULL AS raw FROM mails "
)
_SELECT_MAILS_RAW = _SELECT_MAILS.replace("NULL AS raw", "raw")


@dataclass
class _Queued:
    job: ConnJob
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PostgresStore(OutboxTables, LoopTables):
    """The Store protocol on PostgreSQL; see the module docstring."""

    def __init__(self, url: str, *, schema: str | None = None, max_batch: int = 512) -> None:
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

    async def _read(self, job: DbJob[T]) -> T:
        """A job of store/db.py on its own pooled connection, beside the writer's commits."""
        return await self._read_conn(lambda conn: job(PostgresDb(conn)))

    async def _read_conn(self, job: Callable[[Conn], Awaitable[T]]) -> T:
        """A read on its own pooled connection, beside the writer's commits."""
        async with self._pooled() as conn:
            result: T = await job(conn)
            return result

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

    async def _write(self, job: DbJob[T], news: News | None = None) -> T:
        """A job of store/db.py in the writer's batch; `news` NOTIFYed at its commit."""
        run = lambda conn: job(PostgresDb(conn))  # noqa: E731 - the job, on a connection
        return await self._run(run if news is None else self._announcing(CHANNELS[news], run))

    async def _run(self, job: Callable[[Conn], Awaitable[T]]) -> T:
        if self._closed or self._writer is None or self._writer.done():
            raise StoreUnavailable("the store is closed")
        queued = _Queued(job)
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
        outcomes: list[tuple[_Queued, Any, BaseException | None]] = []
        try:
            async with self._pooled() as conn, conn.transaction():
                for item in live:
                    outcomes.append((item, *await _run_job(conn, item.job)))
        except (psycopg.Error, StoreUnavailable) as exc:
            failure = StoreUnavailable(f"store write failed: {exc}")
            for item in live:
                _settle(item.future, None, failure)
            return
        for item, result, error in outcomes:
            _settle(item.future, result, error)

    # -- the Store protocol ---------------------------------------------------------------

    async def accept(self, mail: IncomingMail) -> Accepted:
        return await self._run(self._announcing(MAIL_CHANNEL, lambda conn: _accept(conn, mail)))

    async def undecided_mails(self, limit: int, byte_budget: int) -> list[MailRow]:
        return await self._read_conn(lambda conn: _undecided(conn, limit, byte_budget))

    async def record_decision(
        self,
        mail_id: int,
        record: DecisionRecord,
        planned: tuple[PlannedAction, ...],
        facts: MailFacts | None = None,
    ) -> bool:
        now = _now()
        job = functools.partial(
            _record_decision, mail_id=mail_id, record=record, planned=planned, facts=facts
        )
        return await self._run(self._announcing(ACTIONS_CHANNEL, lambda conn: job(conn, now=now)))

    async def mails_without_facts(self, limit: int, after: int = 0) -> list[MailRow]:
        return await self._run(lambda conn: _without_facts(conn, limit, after))

    async def set_facts(self, mail_id: int, facts: MailFacts) -> bool:
        return await self._run(lambda conn: _set_facts(conn, mail_id, facts))

    async def get_mail(self, mail_id: int) -> MailRow | None:
        return await self._read_conn(lambda conn: _get_mail(conn, mail_id))

    async def find_mail(self, message_id: str) -> MailRow | None:
        return await self._read_conn(lambda conn: _find_mail(conn, message_id))

    async def list_mails(self) -> list[ListedMail]:
        return await self._read_conn(_list_mails)

    async def set_review(self, mail_id: int, review: str, who: str, note: str | None) -> None:
        if review not in REVIEW_STATES:
            raise ValueError(f"unknown review state {review!r}")
        now = _now()
        await self._run(lambda conn: _set_review(conn, mail_id, review, who, note, now))

    async def audit_log(self, mail_id: int | None = None) -> list[AuditRow]:
        return await self._read_conn(lambda conn: _audit_log(conn, mail_id))

    async def resolve_review(
        self,
        mail_id: int,
        review: str,
        who: str,
        note: str | None,
        record: DecisionRecord | None = None,
        planned: tuple[PlannedAction, ...] = (),
    ) -> bool:
        if review not in REVIEW_STATES or review == "held":
            raise ValueError(f"a review ends released or dismissed, not {review!r}")
        now = _now()
        return await self._run(
            self._announcing(
                ACTIONS_CHANNEL,
                lambda c: _resolve_review(c, mail_id, review, who, note, record, planned, now),
            )
        )

    async def mails_in_review(self, review: str, limit: int) -> list[MailRow]:
        return await self._read_conn(lambda conn: _mails_in_review(conn, review, limit))

    async def recent_escalations(self, limit: int) -> list[ListedMail]:
        return await self._read_conn(lambda conn: _recent_escalations(conn, limit))

    async def purge(self, raw_before: datetime, records_before: datetime, now: datetime) -> Purged:
        return await self._run(lambda conn: _purge(conn, raw_before, records_before, now))

    def _announcing(self, channel: str, job: Callable[[Conn], Awaitable[T]]) -> ConnJob:
        """The job, then a NOTIFY on `channel`, delivered to the listeners when it commits."""

        async def run(conn: Conn) -> T:
            result = await job(conn)
            await conn.execute("SELECT pg_notify(%s, %s)", (channel, self.instance))
            return result

        return run

    # -- review sessions ------------------------------------------------------------------

    async def revoke_session(self, session_key: str, expires_at: datetime, now: datetime) -> None:
        await self._run(lambda conn: _revoke_session(conn, session_key, expires_at, now))

    async def session_revoked(self, session_key: str) -> bool:
        return await self._run(lambda conn: _session_revoked(conn, session_key))


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
        if version > len(MIGRATIONS):
            raise ConfigError(
                f"the store's schema version {version} is newer than this escalator knows "
                f"({len(MIGRATIONS)}): upgrade escalator"
            )
        for number, name in enumerate(MIGRATIONS[version:], start=version + 1):
            script = resources.files("escalator.store").joinpath(name).read_text("utf-8")
            await conn.execute(script.encode())
            await conn.execute("INSERT INTO escalator_schema (version) VALUES (%s)", (number,))
            log.info("store schema migrated to version %d (%s)", number, name)


# -- jobs ---------------------------------------------------------------------------------


async def _one(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
    return await (await conn.execute(query.encode(), params)).fetchone()


async def _all(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return await (await conn.execute(query.encode(), params)).fetchall()


async def _accept(conn: Conn, mail: IncomingMail) -> Accepted:
    if mail.content_digest:
        # Two replicas taking the same retry at once: the second waits here, then finds the first.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (mail.content_digest,)
        )
        since = mail.received_at - timedelta(days=DUPLICATE_WINDOW_DAYS)
        found = await _one(
            conn,
            "SELECT id FROM mails WHERE content_digest = %s AND received_at >= %s "
            "ORDER BY id LIMIT 1",
            (mail.content_digest, since),
        )
        if found is not None:
            return Accepted(int(found["id"]), duplicate=True)
    row = await _one(
        conn,
        "INSERT INTO mails (received_at, mail_from, rcpt_tos, client_address, tls, message_id, "
        "subject, from_addr, size, raw, content_digest) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            mail.received_at,
            _text(mail.mail_from),
            _json(list(mail.rcpt_tos)),
            mail.client_address,
            mail.tls,
            _text(mail.message_id),
            _text(mail.subject),
            _text(mail.from_addr),
            len(mail.raw),
            mail.raw,
            mail.content_digest,
        ),
    )
    assert row is not None
    return Accepted(int(row["id"]), duplicate=False)


# As SQLite's: each sender's oldest undecided mail before anyone's second (issue 12/16).
_UNDECIDED_FAIRLY = (
    "SELECT id, size FROM (SELECT id, size, row_number() OVER (PARTITION BY lower(mail_from) "
    "ORDER BY id) AS turn FROM mails WHERE verdict IS NULL) AS undecided ORDER BY turn, id"
)


async def _undecided(conn: Conn, limit: int, byte_budget: int) -> list[MailRow]:
    sizes = await _all(conn, _UNDECIDED_FAIRLY + " LIMIT %s", (limit,))
    chosen: list[int] = []
    total = 0
    for row in sizes:
        if chosen and total + int(row["size"]) > byte_budget:
            break
        chosen.append(int(row["id"]))
        total += int(row["size"])
    mails = [await _get_mail(conn, mail_id) for mail_id in chosen]
    return [mail for mail in mails if mail is not None]


async def _record_decision(
    conn: Conn,
    mail_id: int,
    record: DecisionRecord,
    planned: tuple[PlannedAction, ...],
    now: datetime,
    facts: MailFacts | None = None,
) -> bool:
    cursor = await conn.execute(
        "UPDATE mails SET decision = %s, verdict = %s, reasons = %s, slack_channel = %s, "
        '"window" = %s, decided_at = %s, review = COALESCE(review, %s), facts = %s '
        "WHERE id = %s AND verdict IS NULL",
        (
            *_decision_columns(record),
            record.decided_at or now,
            record.review,
            _facts_json(facts),
            mail_id,
        ),
    )
    if cursor.rowcount != 1:
        return False
    await _insert_actions(conn, mail_id, planned, now)
    return True


async def _insert_actions(
    conn: Conn, mail_id: int, planned: tuple[PlannedAction, ...], now: datetime
) -> list[int]:
    return await actions.insert(PostgresDb(conn), mail_id, planned, now)


async def _get_mail(conn: Conn, mail_id: int) -> MailRow | None:
    row = await _one(conn, _SELECT_MAILS_RAW + "WHERE id = %s", (mail_id,))
    return None if row is None else _mail(row, with_raw=True)


async def _find_mail(conn: Conn, message_id: str) -> MailRow | None:
    query = _SELECT_MAILS + "WHERE message_id = %s ORDER BY id DESC LIMIT 1"
    row = await _one(conn, query, (_text(message_id),))
    return None if row is None else _mail(row)


async def _list_mails(conn: Conn) -> list[ListedMail]:
    mails = [_mail(row) for row in await _all(conn, _SELECT_MAILS + "ORDER BY id")]
    by_mail: dict[int, list[ActionRow]] = {}
    for row in await _all(conn, "SELECT * FROM actions ORDER BY id"):
        action = actions.action(PostgresDb(conn), row)
        by_mail.setdefault(action.mail_id, []).append(action)
    return [ListedMail(mail, tuple(by_mail.get(mail.id, ()))) for mail in mails]


async def _set_review(
    conn: Conn, mail_id: int, review: str, who: str, note: str | None, now: datetime
) -> None:
    cursor = await conn.execute("UPDATE mails SET review = %s WHERE id = %s", (review, mail_id))
    if cursor.rowcount != 1:
        raise LookupError(f"no mail {mail_id}")
    await _audit(conn, now, who, review, mail_id, note)


def _decision_columns(record: DecisionRecord) -> tuple[Any, str, Any, str | None, str]:
    """decision, verdict, reasons, slack_channel, window: what every decision write sets."""
    return (
        _json(record.to_dict()),
        record.verdict,
        _json(list(record.reasons)),
        record.slack_channel,
        record.window,
    )


async def _audit(
    conn: Conn, now: datetime, who: str, what: str, mail_id: int, note: str | None
) -> None:
    await conn.execute(
        "INSERT INTO audit (at, who, what, mail_id, note) VALUES (%s, %s, %s, %s, %s)",
        (now, who, what, mail_id, note),
    )


async def _audit_log(conn: Conn, mail_id: int | None) -> list[AuditRow]:
    if mail_id is None:
        rows = await _all(conn, "SELECT * FROM audit ORDER BY id")
    else:
        rows = await _all(conn, "SELECT * FROM audit WHERE mail_id = %s ORDER BY id", (mail_id,))
    return [
        AuditRow(row["id"], row["at"], row["who"], row["what"], row["mail_id"], row["note"])
        for row in rows
    ]


async def _resolve_review(
    conn: Conn,
    mail_id: int,
    review: str,
    who: str,
    note: str | None,
    record: DecisionRecord | None,
    planned: tuple[PlannedAction, ...],
    now: datetime,
) -> bool:
    """Conditional on review = 'held', so of two concurrent releases only the first writes."""
    cursor = await conn.execute(
        "UPDATE mails SET review = %s WHERE id = %s AND review = 'held'", (review, mail_id)
    )
    if cursor.rowcount != 1:
        return False
    if record is not None:
        await conn.execute(
            "UPDATE mails SET decision = %s, verdict = %s, reasons = %s, slack_channel = %s, "
            '"window" = %s WHERE id = %s',
            (*_decision_columns(record), mail_id),
        )
    await _insert_actions(conn, mail_id, planned, now)
    await _audit(conn, now, who, review, mail_id, note)
    return True


async def _mails_in_review(conn: Conn, review: str, limit: int) -> list[MailRow]:
    rows = await _all(
        conn,
        _SELECT_MAILS_RAW + "WHERE review = %s ORDER BY received_at DESC, id DESC LIMIT %s",
        (review, limit),
    )
    return [_mail(row, with_raw=True) for row in rows]


async def _recent_escalations(conn: Conn, limit: int) -> list[ListedMail]:
    rows = await _all(
        conn,
        _SELECT_MAILS + "WHERE verdict = 'escalate' ORDER BY received_at DESC, id DESC LIMIT %s",
        (limit,),
    )
    return [
        ListedMail(mail, tuple(await actions.of_mail(PostgresDb(conn), mail.id)))
        for mail in map(_mail, rows)
    ]


async def _purge(
    conn: Conn, raw_before: datetime, records_before: datetime, now: datetime
) -> Purged:
    raw = await conn.execute(
        "UPDATE mails SET raw = NULL, facts = NULL, raw_purged_at = %s "
        "WHERE raw IS NOT NULL AND received_at < %s",
        (now, raw_before),
    )
    old = (records_before,)
    await conn.execute(
        "DELETE FROM actions WHERE mail_id IN (SELECT id FROM mails WHERE received_at < %s)", old
    )
    audit = await conn.execute(
        "DELETE FROM audit WHERE at < %s "
        "OR mail_id IN (SELECT id FROM mails WHERE received_at < %s)",
        old * 2,
    )
    mails = await conn.execute("DELETE FROM mails WHERE received_at < %s", old)
    return Purged(raw.rowcount, mails.rowcount, audit.rowcount)


async def _revoke_session(
    conn: Conn, session_key: str, expires_at: datetime, now: datetime
) -> None:
    await conn.execute("DELETE FROM revoked_sessions WHERE expires_at < %s", (now,))
    await conn.execute(
        "INSERT INTO revoked_sessions (session_key, expires_at) VALUES (%s, %s) "
        "ON CONFLICT (session_key) DO NOTHING",
        (session_key, expires_at),
    )


async def _session_revoked(conn: Conn, session_key: str) -> bool:
    row = await _one(
        conn, "SELECT 1 AS hit FROM revoked_sessions WHERE session_key = %s", (session_key,)
    )
    return row is not None


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


# -- rows ---------------------------------------------------------------------------------


def _mail(row: dict[str, Any], *, with_raw: bool = False) -> MailRow:
    raw = row.get("raw")
    return MailRow(
        id=int(row["id"]),
        received_at=row["received_at"],
        mail_from=row["mail_from"],
        rcpt_tos=tuple(row["rcpt_tos"]),
        client_address=row["client_address"],
        tls=bool(row["tls"]),
        message_id=row["message_id"],
        subject=row["subject"],
        from_addr=row["from_addr"],
        size=int(row["size"]),
        verdict=row["verdict"],
        reasons=tuple(row["reasons"] or ()),
        slack_channel=row["slack_channel"],
        window=row["window"],
        decision=_decision(row),
        decided_at=row["decided_at"],
        review=row["review"],
        raw=bytes(raw) if with_raw and raw is not None else None,
        raw_purged_at=row["raw_purged_at"],
        facts=MailFacts.from_json(row["facts"]) if row.get("facts") else None,
    )


def _decision(row: dict[str, Any]) -> DecisionRecord | None:
    data = row["decision"]
    if not isinstance(data, dict):
        return None
    return DecisionRecord.from_dict(data, row["decided_at"], row["review"])


def _facts_json(facts: MailFacts | None) -> Jsonb | None:
    return None if facts is None else _json(facts.to_json())


async def _without_facts(conn: Conn, limit: int, after: int) -> list[MailRow]:
    rows = await _all(
        conn,
        _SELECT_MAILS_RAW
        + "WHERE id > %s AND facts IS NULL AND raw IS NOT NULL AND verdict IS NOT NULL "
        "ORDER BY id LIMIT %s",
        (after, limit),
    )
    return [_mail(row, with_raw=True) for row in rows]


async def _set_facts(conn: Conn, mail_id: int, facts: MailFacts) -> bool:
    cursor = await conn.execute(
        "UPDATE mails SET facts = %s WHERE id = %s AND facts IS NULL AND raw IS NOT NULL",
        (_facts_json(facts), mail_id),
    )
    return cursor.rowcount == 1


def _json(value: Any) -> Jsonb:
    """jsonb refuses U+0000, and mail-derived evidence may hold it: store U+FFFD instead."""
    return Jsonb(value, dumps=lambda obj: json.dumps(obj).replace("\\u0000", "\\ufffd"))


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; mail-derived header text occasionally does."""
    return None if value is None else value.replace("\x00", "\ufffd")


def _now() -> datetime:
    return datetime.now(UTC)


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    return f"{scheme}{sep}{credentials.partition(':')[0]}@{host}"
