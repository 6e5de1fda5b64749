"""The LoopStore (store/loop.py) on PostgreSQL: a mixin of PostgresStore, jobs on its writer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from escalator.core.actions import PlannedAction
from escalator.core.webhooks import IncidentState, WebhookEvent
from escalator.store.loop import Found, Outcome, React, reply_to, state_from, state_json

T = TypeVar("T")
Conn = psycopg.AsyncConnection[dict[str, Any]]


class PostgresLoop:
    """Mixed into PostgresStore, which provides `_run`."""

    async def _run(self, job: Callable[[Conn], Awaitable[T]]) -> T:
        raise NotImplementedError  # provided by PostgresStore

    async def record_webhook(self, event: WebhookEvent, now: datetime, react: React) -> Outcome:
        return await self._run(lambda conn: _record(conn, event, now, react))

    async def incident_states(self, mail_ids: list[int]) -> dict[int, IncidentState]:
        return await self._run(lambda conn: _states(conn, mail_ids))

    async def take_mark(self, mark: str, now: datetime) -> bool:
        return await self._run(lambda conn: _take_mark(conn, mark, now))

    async def drop_mark(self, mark: str) -> None:
        await self._run(lambda conn: _exec(conn, "DELETE FROM loop_marks WHERE mark = %s", (mark,)))

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


async def _exec(conn: Conn, query: str, params: tuple[Any, ...]) -> int:
    cursor = await conn.execute(query.encode(), params)
    return cursor.rowcount


async def _one(conn: Conn, query: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    return await (await conn.execute(query.encode(), params)).fetchone()


async def _record(conn: Conn, event: WebhookEvent, now: datetime, react: React) -> Outcome:
    from escalator.store.postgres import _insert_actions  # the backend's one way to write actions

    inserted = await _exec(
        conn,
        "INSERT INTO webhook_events (event_id, received_at, occurred_at, event_type, incident_id) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
        (event.event_id, now, event.occurred_at, event.event_type, event.incident_id),
    )
    if inserted == 0:
        return "duplicate"
    found = await _find(conn, event)
    if found is None:
        return "unknown"
    state, planned = react(found)
    await _save_state(conn, found, state, now)
    await _exec(
        conn,
        "UPDATE webhook_events SET mail_id = %s WHERE event_id = %s",
        (found.mail_id, event.event_id),
    )
    await _insert_actions(conn, found.mail_id, planned, now)
    return "recorded"


async def _find(conn: Conn, event: WebhookEvent) -> Found | None:
    """As the SQLite mixin: by incident_key (our dedup key), else by a known incident id."""
    row = None
    if event.incident_key:
        row = await _one(
            conn,
            "SELECT mail_id, dedup_key, payload FROM actions WHERE kind = 'page' "
            "AND dedup_key = %s ORDER BY id LIMIT 1",
            (event.incident_key,),
        )
    if row is None and event.incident_id:
        row = await _one(
            conn,
            "SELECT a.mail_id, a.dedup_key, a.payload FROM incident_states s JOIN actions a "
            "ON a.mail_id = s.mail_id AND a.kind = 'page' WHERE s.incident_id = %s "
            "ORDER BY a.id LIMIT 1",
            (event.incident_id,),
        )
    return None if row is None else await _found(conn, row)


async def _found(conn: Conn, row: dict[str, Any]) -> Found:
    mail_id = int(row["mail_id"])
    reply = await _one(
        conn,
        "SELECT payload, state FROM actions WHERE mail_id = %s AND kind = 'reply' "
        "ORDER BY id LIMIT 1",
        (mail_id,),
    )
    known = await _one(conn, "SELECT state FROM incident_states WHERE mail_id = %s", (mail_id,))
    return Found(
        mail_id=mail_id,
        incident_key=row["dedup_key"],
        page_payload=dict(row["payload"]),
        reply_to=None if reply is None else reply_to(dict(reply["payload"]), reply["state"]),
        state=None if known is None else state_from(known["state"]),
    )


async def _save_state(conn: Conn, found: Found, state: IncidentState, now: datetime) -> None:
    await _exec(
        conn,
        "INSERT INTO incident_states (mail_id, incident_id, incident_key, status, state, "
        "updated_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (mail_id) DO UPDATE SET "
        "incident_id = excluded.incident_id, status = excluded.status, state = excluded.state, "
        "updated_at = excluded.updated_at",
        (
            found.mail_id,
            state.incident_id,
            found.incident_key,
            state.status,
            Jsonb(state_json(state)),
            now,
        ),
    )


async def _states(conn: Conn, mail_ids: list[int]) -> dict[int, IncidentState]:
    rows = await (
        await conn.execute(
            b"SELECT mail_id, state FROM incident_states WHERE mail_id = ANY(%s)", (mail_ids,)
        )
    ).fetchall()
    return {int(row["mail_id"]): state_from(row["state"]) for row in rows}


async def _take_mark(conn: Conn, mark: str, now: datetime) -> bool:
    inserted = await _exec(
        conn,
        "INSERT INTO loop_marks (mark, at) VALUES (%s, %s) ON CONFLICT (mark) DO NOTHING",
        (mark, now),
    )
    return inserted == 1


async def _first_result(conn: Conn, kind: str, dedup_key: str) -> dict[str, Any] | None:
    row = await _one(
        conn,
        "SELECT result FROM actions WHERE dedup_key = %s AND kind = %s AND state = 'sent' "
        "AND result IS NOT NULL ORDER BY id LIMIT 1",
        (dedup_key, kind),
    )
    return None if row is None else dict(row["result"])


async def _acknowledge(conn: Conn, mail_id: int, who: str, now: datetime) -> bool:
    if not await _take_mark(conn, f"seen:{mail_id}", now):
        return False
    await _exec(
        conn,
        "INSERT INTO audit (at, who, what, mail_id, note) VALUES (%s, %s, 'acknowledged', %s, %s)",
        (now, who, mail_id, "on it (review page)"),
    )
    return True


async def _marks(conn: Conn, marks: list[str]) -> set[str]:
    rows = await (
        await conn.execute(b"SELECT mark FROM loop_marks WHERE mark = ANY(%s)", (marks,))
    ).fetchall()
    return {str(row["mark"]) for row in rows}


async def _split(
    conn: Conn, mail_id: int, who: str, now: datetime, planned: tuple[PlannedAction, ...]
) -> bool:
    from escalator.store.postgres import _insert_actions

    if not await _take_mark(conn, f"split:{mail_id}", now):
        return False
    await _exec(
        conn,
        "INSERT INTO audit (at, who, what, mail_id, note) VALUES (%s, %s, 'split', %s, %s)",
        (now, who, mail_id, "split from the incident it had joined"),
    )
    await _insert_actions(conn, mail_id, planned, now)
    return True
