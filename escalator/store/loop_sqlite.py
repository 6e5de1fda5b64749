"""The LoopStore (store/loop.py) on SQLite: a mixin of SQLiteStore, jobs on its writer thread."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from escalator.core.actions import PlannedAction
from escalator.core.webhooks import IncidentState, WebhookEvent
from escalator.store.loop import Found, Outcome, React, reply_to, state_from, state_json

T = TypeVar("T")


class SQLiteLoop:
    """Mixed into SQLiteStore, which provides `_run`."""

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # provided by SQLiteStore

    async def record_webhook(self, event: WebhookEvent, now: datetime, react: React) -> Outcome:
        return await self._run(lambda conn: _record(conn, event, now, react))

    async def incident_states(self, mail_ids: list[int]) -> dict[int, IncidentState]:
        return await self._run(lambda conn: _states(conn, mail_ids))

    async def take_mark(self, mark: str, now: datetime) -> bool:
        return await self._run(lambda conn: _take_mark(conn, mark, now))

    async def drop_mark(self, mark: str) -> None:
        await self._run(lambda conn: conn.execute("DELETE FROM loop_marks WHERE mark = ?", (mark,)))

    async def acknowledge(self, mail_id: int, who: str, now: datetime) -> bool:
        return await self._run(lambda conn: _acknowledge(conn, mail_id, who, now))

    async def split(
        self, mail_id: int, who: str, now: datetime, planned: tuple[PlannedAction, ...]
    ) -> bool:
        return await self._run(lambda conn: _split(conn, mail_id, who, now, planned))

    async def seen(self, mail_ids: list[int]) -> set[int]:
        marks = [f"seen:{mail_id}" for mail_id in mail_ids]
        found = await self._run(lambda conn: _marks(conn, marks))
        return {int(mark.removeprefix("seen:")) for mark in found}

    async def first_result(self, kind: str, dedup_key: str) -> dict[str, Any] | None:
        return await self._run(lambda conn: _first_result(conn, kind, dedup_key))


def _record(conn: sqlite3.Connection, event: WebhookEvent, now: datetime, react: React) -> Outcome:
    from escalator.store.sqlite import _insert_actions  # the backend's one way to write actions

    inserted = conn.execute(
        "INSERT INTO webhook_events (event_id, received_at, occurred_at, event_type, incident_id) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        (event.event_id, _ts(now), _ts(event.occurred_at), event.event_type, event.incident_id),
    )
    if inserted.rowcount == 0:
        return "duplicate"
    found = _find(conn, event)
    if found is None:
        return "unknown"
    state, planned = react(found)
    _save_state(conn, found, state, now)
    conn.execute(
        "UPDATE webhook_events SET mail_id = ? WHERE event_id = ?", (found.mail_id, event.event_id)
    )
    _insert_actions(conn, found.mail_id, planned, now)
    return "recorded"


def _find(conn: sqlite3.Connection, event: WebhookEvent) -> Found | None:
    """The mail whose page opened the incident: by incident_key (our dedup key), else by the
    incident id an earlier event taught us."""
    row = None
    if event.incident_key:
        row = conn.execute(
            "SELECT mail_id, dedup_key, payload FROM actions WHERE kind = 'page' "
            "AND dedup_key = ? ORDER BY id LIMIT 1",
            (event.incident_key,),
        ).fetchone()
    if row is None and event.incident_id:
        row = conn.execute(
            "SELECT a.mail_id, a.dedup_key, a.payload FROM incident_states s JOIN actions a "
            "ON a.mail_id = s.mail_id AND a.kind = 'page' WHERE s.incident_id = ? "
            "ORDER BY a.id LIMIT 1",
            (event.incident_id,),
        ).fetchone()
    return None if row is None else _found(conn, row)


def _found(conn: sqlite3.Connection, row: sqlite3.Row) -> Found:
    mail_id = int(row["mail_id"])
    reply = conn.execute(
        "SELECT payload, state FROM actions WHERE mail_id = ? AND kind = 'reply' "
        "ORDER BY id LIMIT 1",
        (mail_id,),
    ).fetchone()
    known = conn.execute(
        "SELECT state FROM incident_states WHERE mail_id = ?", (mail_id,)
    ).fetchone()
    return Found(
        mail_id=mail_id,
        incident_key=row["dedup_key"],
        page_payload=json.loads(row["payload"]),
        reply_to=None if reply is None else reply_to(json.loads(reply["payload"]), reply["state"]),
        state=None if known is None else state_from(known["state"]),
    )


def _save_state(
    conn: sqlite3.Connection, found: Found, state: IncidentState, now: datetime
) -> None:
    conn.execute(
        "INSERT INTO incident_states (mail_id, incident_id, incident_key, status, state, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mail_id) DO UPDATE SET "
        "incident_id = excluded.incident_id, status = excluded.status, state = excluded.state, "
        "updated_at = excluded.updated_at",
        (
            found.mail_id,
            state.incident_id,
            found.incident_key,
            state.status,
            json.dumps(state_json(state)),
            _ts(now),
        ),
    )


def _states(conn: sqlite3.Connection, mail_ids: list[int]) -> dict[int, IncidentState]:
    found: dict[int, IncidentState] = {}
    for start in range(0, len(mail_ids), 500):
        chunk = mail_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT mail_id, state FROM incident_states WHERE mail_id IN ({marks})",  # noqa: S608 - only '?' placeholders are formatted in
            chunk,
        ).fetchall()
        found.update({int(row["mail_id"]): state_from(row["state"]) for row in rows})
    return found


def _take_mark(conn: sqlite3.Connection, mark: str, now: datetime) -> bool:
    cursor = conn.execute(
        "INSERT INTO loop_marks (mark, at) VALUES (?, ?) ON CONFLICT (mark) DO NOTHING",
        (mark, _ts(now)),
    )
    return cursor.rowcount == 1


def _first_result(conn: sqlite3.Connection, kind: str, dedup_key: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT result FROM actions WHERE dedup_key = ? AND kind = ? AND state = 'sent' "
        "AND result IS NOT NULL ORDER BY id LIMIT 1",
        (dedup_key, kind),
    ).fetchone()
    return None if row is None else dict(json.loads(row["result"]))


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _acknowledge(conn: sqlite3.Connection, mail_id: int, who: str, now: datetime) -> bool:
    if not _take_mark(conn, f"seen:{mail_id}", now):
        return False
    conn.execute(
        "INSERT INTO audit (at, who, what, mail_id, note) VALUES (?, ?, 'acknowledged', ?, ?)",
        (_ts(now), who, mail_id, "on it (review page)"),
    )
    return True


def _marks(conn: sqlite3.Connection, marks: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(marks), 500):
        chunk = marks[start : start + 500]
        places = ",".join("?" * len(chunk))  # only placeholders are formatted in
        query = f"SELECT mark FROM loop_marks WHERE mark IN ({places})"  # noqa: S608 - placeholders only
        found.update(row["mark"] for row in conn.execute(query, chunk))
    return found


def _split(
    conn: sqlite3.Connection,
    mail_id: int,
    who: str,
    now: datetime,
    planned: tuple[PlannedAction, ...],
) -> bool:
    from escalator.store.sqlite import _insert_actions

    if not _take_mark(conn, f"split:{mail_id}", now):
        return False
    conn.execute(
        "INSERT INTO audit (at, who, what, mail_id, note) VALUES (?, ?, 'split', ?, ?)",
        (_ts(now), who, mail_id, "split from the incident it had joined"),
    )
    _insert_actions(conn, mail_id, planned, now)
    return True
