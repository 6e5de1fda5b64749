"""What the on-call loop (issue 11) keeps in the store, beside the Store protocol.

`LoopStore` is the Store plus: PagerDuty webhook events recorded once per event id, with the
incident state of the mail whose page opened the incident, and the actions they cause, in ONE
transaction (`record_webhook`); incident states read back for the page and `list --json`; and
marks for things done once across replicas (`take_mark`). `LoopTables` implements it once for
both backends (jobs over the named queries of store/queries.py, mixed into the store) on tables
of their own (migrations sqlite-0005, postgres-0004), so the Store's own tables keep their
meaning.

The decision of what an event means stays pure: the caller passes `react`, called inside the
transaction with what the store found (`Found`), returning the new state and the actions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from escalator.core.actions import PlannedAction
from escalator.core.webhooks import IncidentState, WebhookEvent
from escalator.store import actions
from escalator.store.db import Db, Json, Row, Tables

if TYPE_CHECKING:
    from escalator.store import Store

Outcome = Literal["duplicate", "unknown", "recorded"]
_TIMES = ("status_at", "acknowledged_at", "resolved_at")


@dataclass(frozen=True)
class Found:
    """The mail whose page opened the incident: its page payload (the planner's common facts),
    where its reply went (None: not answered, RFC 3834), and the state known so far."""

    mail_id: int
    incident_key: str
    page_payload: dict[str, Any]
    reply_to: str | None
    state: IncidentState | None


React = Callable[[Found], tuple[IncidentState, tuple[PlannedAction, ...]]]


class LoopStore(Protocol):
    """The store's loop tables (see the module docstring)."""

    async def record_webhook(self, event: WebhookEvent, now: datetime, react: React) -> Outcome:
        """Record the event once; for an incident a page of ours opened, write its new state
        and actions (from `react`) in the same transaction."""
        ...

    async def incident_states(self, mail_ids: list[int]) -> dict[int, IncidentState]: ...

    async def take_mark(self, mark: str, now: datetime) -> bool:
        """True for the one caller that set `mark` first; False when it was already set."""
        ...

    async def drop_mark(self, mark: str) -> None: ...

    async def acknowledge(self, mail_id: int, who: str, now: datetime) -> bool:
        """A person on the review page says they are on it: the mark `seen:<id>` and an audit
        row "acknowledged", together; False (nothing written) when someone already did."""
        ...

    async def split(
        self, mail_id: int, who: str, now: datetime, planned: tuple[PlannedAction, ...]
    ) -> bool:
        """Support splits a wrongly joined mail: the mark `split:<id>`, an audit row "split" and
        the mail's own actions, together; False (nothing written) when it was already split."""
        ...

    async def seen(self, mail_ids: list[int]) -> set[int]:
        """Which of these mails a person acknowledged on the review page."""
        ...

    async def first_result(self, kind: str, dedup_key: str) -> dict[str, Any] | None:
        """The result of the first SENT action of `kind` under `dedup_key` (a Slack post)."""
        ...


def loop_store(store: Store) -> LoopStore:
    """The Store seen as a LoopStore (both backends mix it in)."""
    if not hasattr(store, "record_webhook"):
        raise TypeError(f"{type(store).__name__} has no loop tables")
    return cast("LoopStore", store)


def state_json(state: IncidentState) -> dict[str, Any]:
    data = asdict(state)
    for name in _TIMES:
        data[name] = None if data[name] is None else data[name].isoformat()
    data["assignees"] = list(state.assignees)
    return data


def state_from(data: str | dict[str, Any]) -> IncidentState:
    values = dict(json.loads(data) if isinstance(data, str) else data)
    for name in _TIMES:
        values[name] = None if values.get(name) is None else datetime.fromisoformat(values[name])
    values["assignees"] = tuple(values.get("assignees") or ())
    return IncidentState(**values)


def reply_to(payload: dict[str, Any] | None, state: str | None) -> str | None:
    """Where the reporter's reply went; None when it was refused (RFC 3834) or never planned."""
    if payload is None or state == "skipped":
        return None
    to = payload.get("to")
    return str(to) if to else None


class LoopTables(Tables):
    """The LoopStore, written once: mixed into both stores."""

    async def record_webhook(self, event: WebhookEvent, now: datetime, react: React) -> Outcome:
        return await self._write(lambda db: _record(db, event, now, react))

    async def incident_states(self, mail_ids: list[int]) -> dict[int, IncidentState]:
        rows = await self._write(lambda db: db.all("incident_states_of", mail_ids=mail_ids))
        return {int(row["mail_id"]): state_from(row["state"]) for row in rows}

    async def take_mark(self, mark: str, now: datetime) -> bool:
        return await self._write(lambda db: _take_mark(db, mark, now))

    async def drop_mark(self, mark: str) -> None:
        await self._write(lambda db: db.run("drop_mark", mark=mark))

    async def acknowledge(self, mail_id: int, who: str, now: datetime) -> bool:
        note = "on it (review page)"
        audit = {"what": "acknowledged", "mail_id": mail_id, "who": who, "note": note}
        return await self._write(lambda db: _marked(db, f"seen:{mail_id}", now, audit))

    async def split(
        self, mail_id: int, who: str, now: datetime, planned: tuple[PlannedAction, ...]
    ) -> bool:
        note = "split from the incident it had joined"
        audit = {"what": "split", "mail_id": mail_id, "who": who, "note": note}
        return await self._write(lambda db: _marked(db, f"split:{mail_id}", now, audit, planned))

    async def seen(self, mail_ids: list[int]) -> set[int]:
        marks = [f"seen:{mail_id}" for mail_id in mail_ids]
        rows = await self._write(lambda db: db.all("marks_in", marks=marks))
        return {int(str(row["mark"]).removeprefix("seen:")) for row in rows}

    async def first_result(self, kind: str, dedup_key: str) -> dict[str, Any] | None:
        return await self._write(lambda db: actions.first_result(db, kind, dedup_key))


async def _record(db: Db, event: WebhookEvent, now: datetime, react: React) -> Outcome:
    inserted = await db.run(
        "insert_webhook_event",
        event_id=event.event_id,
        received_at=now,
        occurred_at=event.occurred_at,
        event_type=event.event_type,
        incident_id=event.incident_id,
    )
    if inserted == 0:
        return "duplicate"
    found = await _find(db, event)
    if found is None:
        return "unknown"
    state, planned = react(found)
    await _save_state(db, found, state, now)
    await db.run("link_webhook_event", mail_id=found.mail_id, event_id=event.event_id)
    await actions.insert(db, found.mail_id, planned, now)
    return "recorded"


async def _find(db: Db, event: WebhookEvent) -> Found | None:
    """The mail whose page opened the incident: by incident_key (our dedup key), else by the
    incident id an earlier event taught us."""
    row = None
    if event.incident_key:
        row = await db.one("page_by_incident_key", incident_key=event.incident_key)
    if row is None and event.incident_id:
        row = await db.one("page_by_incident_id", incident_id=event.incident_id)
    return None if row is None else await _found(db, row)


async def _found(db: Db, row: Row) -> Found:
    mail_id = int(row["mail_id"])
    reply = await db.one("first_reply", mail_id=mail_id)
    known = await db.one("incident_state", mail_id=mail_id)
    return Found(
        mail_id=mail_id,
        incident_key=row["dedup_key"],
        page_payload=dict(db.json(row["payload"])),
        reply_to=None if reply is None else reply_to(db.json(reply["payload"]), reply["state"]),
        state=None if known is None else state_from(known["state"]),
    )


async def _save_state(db: Db, found: Found, state: IncidentState, now: datetime) -> None:
    await db.run(
        "save_incident_state",
        mail_id=found.mail_id,
        incident_id=state.incident_id,
        incident_key=found.incident_key,
        status=state.status,
        state=Json(state_json(state)),
        now=now,
    )


async def _take_mark(db: Db, mark: str, now: datetime) -> bool:
    return await db.run("take_mark", mark=mark, at=now) == 1


async def _marked(
    db: Db, mark: str, now: datetime, audit: dict[str, Any], planned: tuple[PlannedAction, ...] = ()
) -> bool:
    """A person's deed done once: its mark, its audit row and its actions together; False
    (nothing written) when the mark was already taken."""
    if not await _take_mark(db, mark, now):
        return False
    mail_id = int(audit["mail_id"])
    await db.run("insert_audit", at=now, **audit)
    await actions.insert(db, mail_id, planned, now)
    return True
