"""The embedded store: one SQLite file in WAL mode, every commit fsynced, commits grouped.

GROUP COMMIT: one writer thread owns the only connection. Callers queue a job (a function of
the connection) and await its future; the writer takes everything queued, runs each job inside
its own SAVEPOINT within one transaction, commits once (one fsync for many SMTP sessions), then
resolves the futures. So twenty sessions that finish DATA together share a single fsync, and a
job that fails (a constraint, a bug) spoils only its own future. Any SQLite error becomes
StoreUnavailable, which the SMTP handler answers with 451.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

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
)
_LIST_MAILS = (
    "SELECT id, received_at, mail_from, rcpt_tos, client_address, tls, message_id, subject, "
    "from_addr, size, verdict, reasons, slack_channel, window, decision, decided_at, review, "
    "raw_purged_at, facts FROM mails ORDER BY id"
)
QUERIES = queries.load("sqlite")
_GET_MAIL = "SELECT * FROM mails WHERE id = ?"
_FIND_MAIL = _LIST_MAILS.replace("ORDER BY id", "WHERE message_id = ? ORDER BY id DESC LIMIT 1")


@dataclass
class _Queued:
    job: ConnJob
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


class SQLiteStore(OutboxTables, LoopTables):
    """The Store protocol on SQLite; see the module docstring for the write path."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, max_batch: int = 512) -> None:
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

    # -- the write path -------------------------------------------------------------------

    async def _write(self, job: DbJob[T], news: News | None = None) -> T:
        """A job of store/db.py on the writer thread (one process owns the file: no news)."""
        return await self._run(lambda conn: drive(job(SQLiteDb(conn))))

    async def _read(self, job: DbJob[T]) -> T:
        """Reads take the writer's turn too (one connection)."""
        return await self._write(job)

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed or self._thread is None or not self._thread.is_alive():
            raise StoreUnavailable("the store is closed")
        queued = _Queued(job)
        self._queue.put(queued)
        result: T = await asyncio.wrap_future(queued.future)
        return result

    def _writer(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            conn = self._connect()
        except Exception as exc:  # noqa: BLE001 - any open failure goes to the awaiting opener
            self._closed = True
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            self._serve_queue(conn)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the store {self.path}: {exc}") from None
        try:
            _configure(conn)
            _migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"cannot open the store {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _serve_queue(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._drain(first)
            _run_batch(conn, batch)
            if stop:
                return

    def _drain(self, first: _Queued) -> tuple[list[_Queued], bool]:
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    # -- the Store protocol ---------------------------------------------------------------

    async def accept(self, mail: IncomingMail) -> Accepted:
        return await self._run(lambda conn: _accept(conn, mail))

    async def undecided_mails(self, limit: int, byte_budget: int) -> list[MailRow]:
        return await self._run(lambda conn: _undecided(conn, limit, byte_budget))

    async def record_decision(
        self,
        mail_id: int,
        record: DecisionRecord,
        planned: tuple[PlannedAction, ...],
        facts: MailFacts | None = None,
    ) -> bool:
        now = _now()
        return await self._run(
            lambda conn: _record_decision(conn, mail_id, record, planned, now, facts)
        )

    async def mails_without_facts(self, limit: int, after: int = 0) -> list[MailRow]:
        return await self._run(lambda conn: _without_facts(conn, limit, after))

    async def set_facts(self, mail_id: int, facts: MailFacts) -> bool:
        return await self._run(lambda conn: _set_facts(conn, mail_id, facts))

    async def get_mail(self, mail_id: int) -> MailRow | None:
        return await self._run(lambda conn: _get_mail(conn, mail_id))

    async def find_mail(self, message_id: str) -> MailRow | None:
        return await self._run(lambda conn: _find_mail(conn, message_id))

    async def list_mails(self) -> list[ListedMail]:
        return await self._run(_list_mails)

    async def set_review(self, mail_id: int, review: str, who: str, note: str | None) -> None:
        if review not in REVIEW_STATES:
            raise ValueError(f"unknown review state {review!r}")
        now = _now()
        await self._run(lambda conn: _set_review(conn, mail_id, review, who, note, now))

    async def audit_log(self, mail_id: int | None = None) -> list[AuditRow]:
        return await self._run(lambda conn: _audit_log(conn, mail_id))

    # -- support review -----------------------------------------------------------------

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
            lambda conn: _resolve_review(conn, mail_id, review, who, note, record, planned, now)
        )

    async def mails_in_review(self, review: str, limit: int) -> list[MailRow]:
        return await self._run(lambda conn: _mails_in_review(conn, review, limit))

    async def recent_escalations(self, limit: int) -> list[ListedMail]:
        return await self._run(lambda conn: _recent_escalations(conn, limit))

    async def purge(self, raw_before: datetime, records_before: datetime, now: datetime) -> Purged:
        return await self._run(lambda conn: _purge(conn, raw_before, records_before, now))

    # -- review sessions ------------------------------------------------------------------

    async def revoke_session(self, session_key: str, expires_at: datetime, now: datetime) -> None:
        await self._run(lambda conn: _revoke_session(conn, session_key, expires_at, now))

    async def session_revoked(self, session_key: str) -> bool:
        return await self._run(lambda conn: _session_revoked(conn, session_key))

    def subscribe(self, on_mail: Callable[[], None], on_actions: Callable[[], None]) -> None:
        """One process owns a SQLite file: it wakes its own workers; nothing to listen to."""


# -- batches ------------------------------------------------------------------------------


def _run_batch(conn: sqlite3.Connection, batch: list[_Queued]) -> None:
    """One transaction, one savepoint per job, one commit; then settle every future."""
    live = [item for item in batch if item.future.set_running_or_notify_cancel()]
    if not live:
        return
    outcomes: list[tuple[_Queued, Any, BaseException | None]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        outcomes = [(item, *_run_job(conn, item.job)) for item in live]
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        failure = StoreUnavailable(f"store write failed: {exc}")
        for item in live:
            item.future.set_exception(failure)
        return
    for item, result, error in outcomes:
        if error is None:
            item.future.set_result(result)
        else:
            item.future.set_exception(error)


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
    if version > len(MIGRATIONS):
        raise ConfigError(
            f"the store's schema version {version} is newer than this escalator knows "
            f"({len(MIGRATIONS)}): upgrade escalator"
        )
    for number, name in enumerate(MIGRATIONS[version:], start=version + 1):
        script = resources.files("escalator.store").joinpath(name).read_text("utf-8")
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\n")
            conn.execute("COMMIT")
        except sqlite3.Error:
            _rollback(conn)
            raise
        log.info("store schema migrated to version %d (%s)", number, name)


# -- jobs (run on the writer thread) ------------------------------------------------------


def _accept(conn: sqlite3.Connection, mail: IncomingMail) -> Accepted:
    if mail.content_digest:
        since = _ts(mail.received_at - timedelta(days=DUPLICATE_WINDOW_DAYS))
        row = conn.execute(
            "SELECT id FROM mails WHERE content_digest = ? AND received_at >= ? "
            "ORDER BY id LIMIT 1",
            (mail.content_digest, since),
        ).fetchone()
        if row is not None:
            return Accepted(int(row["id"]), duplicate=True)
    cursor = conn.execute(
        "INSERT INTO mails (received_at, mail_from, rcpt_tos, client_address, tls, message_id, "
        "subject, from_addr, size, raw, content_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            _ts(mail.received_at),
            mail.mail_from,
            json.dumps(list(mail.rcpt_tos)),
            mail.client_address,
            int(mail.tls),
            mail.message_id,
            mail.subject,
            mail.from_addr,
            len(mail.raw),
            mail.raw,
            mail.content_digest,
        ),
    )
    return Accepted(_rowid(cursor), duplicate=False)


# Fair (issue 12/16): each envelope sender's oldest undecided mail before anyone's second, so a
# storm's backlog never holds another sender's mail back; one sender's mails keep their order.
_UNDECIDED_FAIRLY = (
    "SELECT id, size FROM (SELECT id, size, row_number() OVER (PARTITION BY lower(mail_from) "
    "ORDER BY id) AS turn FROM mails WHERE verdict IS NULL) AS undecided ORDER BY turn, id"
)


def _undecided(conn: sqlite3.Connection, limit: int, byte_budget: int) -> list[MailRow]:
    sizes = conn.execute(_UNDECIDED_FAIRLY + " LIMIT ?", (limit,)).fetchall()
    chosen: list[int] = []
    total = 0
    for row in sizes:
        if chosen and total + int(row["size"]) > byte_budget:
            break
        chosen.append(int(row["id"]))
        total += int(row["size"])
    mails = (_get_mail(conn, mail_id) for mail_id in chosen)
    return [mail for mail in mails if mail is not None]


def _record_decision(
    conn: sqlite3.Connection,
    mail_id: int,
    record: DecisionRecord,
    planned: tuple[PlannedAction, ...],
    now: datetime,
    facts: MailFacts | None = None,
) -> bool:
    decided_at = _ts(record.decided_at or now)
    cursor = conn.execute(
        "UPDATE mails SET decision = ?, verdict = ?, reasons = ?, slack_channel = ?, window = ?, "
        "decided_at = ?, review = COALESCE(review, ?), facts = ? WHERE id = ? AND verdict IS NULL",
        (*_decision_columns(record), decided_at, record.review, _facts_json(facts), mail_id),
    )
    if cursor.rowcount != 1:
        return False
    _insert_actions(conn, mail_id, planned, now)
    return True


def _insert_actions(
    conn: sqlite3.Connection, mail_id: int, planned: tuple[PlannedAction, ...], now: datetime
) -> list[int]:
    return drive(actions.insert(SQLiteDb(conn), mail_id, planned, now))


def _decision_columns(record: DecisionRecord) -> tuple[str, str, str, str | None, str]:
    """decision, verdict, reasons, slack_channel, window: what every decision write sets."""
    return (
        record.to_json(),
        record.verdict,
        json.dumps(list(record.reasons)),
        record.slack_channel,
        record.window,
    )


def _facts_json(facts: MailFacts | None) -> str | None:
    return None if facts is None else json.dumps(facts.to_json())


def _without_facts(conn: sqlite3.Connection, limit: int, after: int) -> list[MailRow]:
    rows = conn.execute(
        "SELECT * FROM mails WHERE id > ? AND facts IS NULL AND raw IS NOT NULL "
        "AND verdict IS NOT NULL ORDER BY id LIMIT ?",
        (after, limit),
    )
    return [_mail(row, with_raw=True) for row in rows]


def _set_facts(conn: sqlite3.Connection, mail_id: int, facts: MailFacts) -> bool:
    cursor = conn.execute(
        "UPDATE mails SET facts = ? WHERE id = ? AND facts IS NULL AND raw IS NOT NULL",
        (_facts_json(facts), mail_id),
    )
    return cursor.rowcount == 1


def _audit(
    conn: sqlite3.Connection, now: datetime, who: str, what: str, mail_id: int, note: str | None
) -> None:
    conn.execute(
        "INSERT INTO audit (at, who, what, mail_id, note) VALUES (?, ?, ?, ?, ?)",
        (_ts(now), who, what, mail_id, note),
    )


def _get_mail(conn: sqlite3.Connection, mail_id: int) -> MailRow | None:
    found = conn.execute(_GET_MAIL, (mail_id,)).fetchone()
    return None if found is None else _mail(found, with_raw=True)


def _find_mail(conn: sqlite3.Connection, message_id: str) -> MailRow | None:
    found = conn.execute(_FIND_MAIL, (message_id,)).fetchone()
    return None if found is None else _mail(found)


def _list_mails(conn: sqlite3.Connection) -> list[ListedMail]:
    mails = [_mail(row) for row in conn.execute(_LIST_MAILS)]
    by_mail: dict[int, list[ActionRow]] = {}
    for row in conn.execute("SELECT * FROM actions ORDER BY id"):
        action = actions.action(SQLiteDb(conn), row)
        by_mail.setdefault(action.mail_id, []).append(action)
    return [ListedMail(mail, tuple(by_mail.get(mail.id, ()))) for mail in mails]


def _set_review(
    conn: sqlite3.Connection, mail_id: int, review: str, who: str, note: str | None, now: datetime
) -> None:
    cursor = conn.execute("UPDATE mails SET review = ? WHERE id = ?", (review, mail_id))
    if cursor.rowcount != 1:
        raise LookupError(f"no mail {mail_id}")
    _audit(conn, now, who, review, mail_id, note)


def _audit_log(conn: sqlite3.Connection, mail_id: int | None) -> list[AuditRow]:
    if mail_id is None:
        rows = conn.execute("SELECT * FROM audit ORDER BY id")
    else:
        rows = conn.execute("SELECT * FROM audit WHERE mail_id = ? ORDER BY id", (mail_id,))
    return [
        AuditRow(row["id"], _dt(row["at"]), row["who"], row["what"], row["mail_id"], row["note"])
        for row in rows
    ]


def _resolve_review(
    conn: sqlite3.Connection,
    mail_id: int,
    review: str,
    who: str,
    note: str | None,
    record: DecisionRecord | None,
    planned: tuple[PlannedAction, ...],
    now: datetime,
) -> bool:
    """Conditional on review = 'held', so of two concurrent releases only the first writes."""
    cursor = conn.execute(
        "UPDATE mails SET review = ? WHERE id = ? AND review = 'held'", (review, mail_id)
    )
    if cursor.rowcount != 1:
        return False
    if record is not None:
        conn.execute(
            "UPDATE mails SET decision = ?, verdict = ?, reasons = ?, slack_channel = ?, "
            "window = ? WHERE id = ?",
            (*_decision_columns(record), mail_id),
        )
    _insert_actions(conn, mail_id, planned, now)
    _audit(conn, now, who, review, mail_id, note)
    return True


def _mails_in_review(conn: sqlite3.Connection, review: str, limit: int) -> list[MailRow]:
    rows = conn.execute(
        "SELECT * FROM mails WHERE review = ? ORDER BY received_at DESC, id DESC LIMIT ?",
        (review, limit),
    )
    return [_mail(row, with_raw=True) for row in rows]


def _recent_escalations(conn: sqlite3.Connection, limit: int) -> list[ListedMail]:
    rows = conn.execute(
        _LIST_MAILS.replace(
            "ORDER BY id", "WHERE verdict = 'escalate' ORDER BY received_at DESC, id DESC LIMIT ?"
        ),
        (limit,),
    )
    db = SQLiteDb(conn)
    return [
        ListedMail(mail, tuple(drive(actions.of_mail(db, mail.id)))) for mail in map(_mail, rows)
    ]


def _purge(
    conn: sqlite3.Connection, raw_before: datetime, records_before: datetime, now: datetime
) -> Purged:
    """Old raw bytes go first; whole records (actions, audit, mail) after the longer period."""
    raw = conn.execute(
        "UPDATE mails SET raw = NULL, facts = NULL, raw_purged_at = ? "
        "WHERE raw IS NOT NULL AND received_at < ?",
        (_ts(now), _ts(raw_before)),
    ).rowcount
    old = "SELECT id FROM mails WHERE received_at < ?"
    cutoff = (_ts(records_before),)
    conn.execute(f"DELETE FROM actions WHERE mail_id IN ({old})", cutoff)  # noqa: S608 - constant SQL
    audit = conn.execute(
        f"DELETE FROM audit WHERE at < ? OR mail_id IN ({old})",  # noqa: S608 - constant SQL
        cutoff * 2,
    ).rowcount
    mails = conn.execute("DELETE FROM mails WHERE received_at < ?", cutoff).rowcount
    return Purged(raw, mails, audit)


def _revoke_session(
    conn: sqlite3.Connection, session_key: str, expires_at: datetime, now: datetime
) -> None:
    conn.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (_ts(now),))
    conn.execute(
        "INSERT INTO revoked_sessions (session_key, expires_at) VALUES (?, ?) "
        "ON CONFLICT (session_key) DO NOTHING",
        (session_key, _ts(expires_at)),
    )


def _session_revoked(conn: sqlite3.Connection, session_key: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM revoked_sessions WHERE session_key = ?", (session_key,)
    ).fetchone()
    return row is not None


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

    def time(self, value: Any) -> datetime:
        return _dt(value)

    def json(self, value: Any) -> Any:
        return json.loads(value)

    def _execute(self, name: str, params: dict[str, Any]) -> sqlite3.Cursor:
        bound = {key: _bind(value) for key, value in params.items()}
        return self._conn.execute(QUERIES[name], bound)


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


# -- rows and times -----------------------------------------------------------------------


def _mail(row: sqlite3.Row, *, with_raw: bool = False) -> MailRow:
    decided_at = None if row["decided_at"] is None else _dt(row["decided_at"])
    decision, facts = row["decision"], row["facts"]
    return MailRow(
        id=int(row["id"]),
        received_at=_dt(row["received_at"]),
        mail_from=row["mail_from"],
        rcpt_tos=tuple(json.loads(row["rcpt_tos"])),
        client_address=row["client_address"],
        tls=bool(row["tls"]),
        message_id=row["message_id"],
        subject=row["subject"],
        from_addr=row["from_addr"],
        size=int(row["size"]),
        verdict=row["verdict"],
        reasons=tuple(json.loads(row["reasons"])) if row["reasons"] else (),
        slack_channel=row["slack_channel"],
        window=row["window"],
        decision=DecisionRecord.from_json(decision, decided_at, row["review"])
        if decision
        else None,
        decided_at=decided_at,
        review=row["review"],
        raw=bytes(row["raw"]) if with_raw and row["raw"] is not None else None,
        raw_purged_at=_dt(row["raw_purged_at"]) if row["raw_purged_at"] else None,
        facts=MailFacts.from_json(json.loads(facts)) if facts else None,
    )


def _rowid(cursor: sqlite3.Cursor) -> int:
    if cursor.lastrowid is None:
        raise StoreUnavailable("insert returned no row id")
    return cursor.lastrowid


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(moment: datetime) -> str:
    """UTC text with fixed precision, so comparing the text compares the instants."""
    if moment.tzinfo is None:
        raise ValueError("store times must carry a time zone")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)
