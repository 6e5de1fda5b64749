"""The outbox, written once for both dialects: its Store methods as jobs over named queries.

Every way an action enters the outbox (a decision, a release, a webhook, a split) goes through
`insert`. The dispatcher's cycle is here: claim due actions under a lease (fair: pages first,
then each sender's oldest), renew or hand back the lease, finish, retry (the first due time
kept, so a retry keeps its place), replay a failed one, hurry retries when the outside system
is back, settle a mail's failing ones when a person took over; and what it remembers across
replicas: reply slots, the Slack thread of an alarm, storms (store/storms.py). Which SQL runs
is the dialect's (store/queries.sql and the dialect files); when, and in which transaction,
is decided here.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta
from typing import Any

from escalator.core.actions import PlannedAction
from escalator.core.replybudget import ReplyBudget, ReplyClaim, ReplyRefused
from escalator.core.storms import StormJoin
from escalator.errors import StoreUnavailable
from escalator.store import (
    FINAL_ACTION_STATES,
    ActionRow,
    OutboxSummary,
    claim_order,
    storms,
    summarise,
)
from escalator.store.db import Db, Json, Row, Tables, clock


class OutboxTables(Tables):
    """The outbox part of the Store protocol (store/__init__.py documents each method)."""

    async def add_actions(self, mail_id: int, planned: tuple[PlannedAction, ...]) -> list[int]:
        now = clock()
        return await self._write(lambda db: insert(db, mail_id, planned, now), "actions")

    async def claim_due_actions(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[ActionRow]:
        until = now + timedelta(seconds=lease_seconds)
        return await self._write(lambda db: _claim(db, now, until, limit))

    async def finish_action(
        self,
        action_id: int,
        state: str,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        if state not in FINAL_ACTION_STATES:
            raise ValueError(f"finish_action needs a final state, not {state!r}")
        ended = {"id": action_id, "state": state, "error": error, "now": clock()}
        stored = None if result is None else Json(result)
        await self._write(lambda db: db.run("finish_action", result=stored, **ended))

    async def retry_action(self, action_id: int, due_at: datetime, error: str) -> None:
        again = {"id": action_id, "due_at": due_at, "error": error, "now": clock()}
        await self._write(lambda db: db.run("retry_action", **again))

    async def replay_action(self, action_id: int, who: str, now: datetime) -> ActionRow | None:
        return await self._write(lambda db: _replay(db, action_id, who, now), "actions")

    async def mail_actions(self, mail_id: int) -> list[ActionRow]:
        return await self._read(lambda db: of_mail(db, mail_id))

    async def outbox_summary(self, now: datetime) -> OutboxSummary:
        return await self._read(lambda db: _summary(db, now))

    async def claim_reply_slot(
        self, address: str, action_id: int, claim: ReplyClaim
    ) -> ReplyRefused | None:
        if not claim.budgets:
            return None
        return await self._write(lambda db: _reply_slot(db, address, action_id, claim))

    async def alarm_thread(self, dedup_key: str) -> dict[str, Any] | None:
        return await self._read(lambda db: first_result(db, "alarm", dedup_key))

    async def join_storm(
        self, keys: tuple[str, ...], mail_id: int, root: str, at: datetime, since: datetime
    ) -> StormJoin:
        prune = self._storm_pruning_due()
        return await self._write(
            lambda db: storms.join(db, keys, mail_id, root, at, since, prune=prune)
        )

    _storms_pruned = -math.inf  # when (monotonic) a join last deleted old storm rows

    def _storm_pruning_due(self) -> bool:
        """Old storm rows are deleted by at most one join a second (issue 16: a storm's every
        mail joins; one DELETE each was a round trip on the writer for nothing)."""
        now = time.monotonic()
        if now - self._storms_pruned < storms.PRUNE_EVERY:
            return False
        self._storms_pruned = now
        return True

    async def renew_claims(self, action_ids: tuple[int, ...], until: datetime) -> int:
        if not action_ids:
            return 0
        ids = list(action_ids)
        return await self._write(lambda db: db.run("renew_claims", ids=ids, until=until))

    async def release_claims(self, action_ids: tuple[int, ...]) -> int:
        if not action_ids:
            return 0
        ids, now = list(action_ids), clock()
        return await self._write(lambda db: db.run("release_claims", ids=ids, now=now), "actions")

    async def hurry_retries(self, kind: str, now: datetime) -> int:
        return await self._write(lambda db: db.run("hurry_retries", kind=kind, now=now), "actions")

    async def settle_failing(self, mail_id: int, kind: str, note: str, now: datetime) -> int:
        settled = {"mail_id": mail_id, "kind": kind, "note": note, "now": now}
        return await self._write(lambda db: db.run("settle_failing", **settled))


async def insert(
    db: Db, mail_id: int, planned: tuple[PlannedAction, ...], now: datetime
) -> list[int]:
    """The planned actions of one mail, in order (together: one round trip on PostgreSQL);
    their new ids."""
    rows = await db.many("insert_action", [_insert_params(mail_id, a, now) for a in planned])
    return [new_id(row) for row in rows]


def _insert_params(mail_id: int, action: PlannedAction, now: datetime) -> dict[str, Any]:
    return {
        "mail_id": mail_id,
        "kind": action.kind,
        "state": action.state,
        "due_at": action.due_at,
        "last_error": action.note,
        "payload": Json(dict(action.payload)),
        "dedup_key": action.dedup_key,
        "now": now,
    }


def due_pages(
    mail_id: int, planned: tuple[PlannedAction, ...], lease: tuple[datetime, datetime]
) -> tuple[ActionRow, ...]:
    """The pages the decision's commit will claim (claim_mail_pages: pending, due by lease[0],
    leased until lease[1]), as that commit reads them back, before it runs (issue 12). Their
    ids are negative stand-ins, unique per mail, in the order the commit inserts them."""
    due_by, until = lease
    return tuple(
        ActionRow(
            id=-(mail_id * 1024 + index + 1),
            mail_id=mail_id,
            kind=action.kind,
            state=action.state,
            due_at=action.due_at,
            attempts=1,
            last_error=action.note,
            payload=json.loads(json.dumps(dict(action.payload))),  # as the store gives it back
            dedup_key=action.dedup_key,
            claimed_until=until,
            result=None,
            created_at=due_by,
            updated_at=due_by,
            first_due_at=action.due_at,
        )
        for index, action in enumerate(planned)
        if is_due_page(action, due_by)
    )


def is_due_page(action: PlannedAction, due_by: datetime) -> bool:
    """A page the decision's commit claims for the page path (claim_mail_pages)."""
    return action.kind == "page" and action.state == "pending" and action.due_at <= due_by


def new_id(row: Row | None) -> int:
    """The id an INSERT ... RETURNING id gave back."""
    if row is None:
        raise StoreUnavailable("insert returned no row id")
    return int(row["id"])


async def of_mail(db: Db, mail_id: int) -> list[ActionRow]:
    """A mail's actions, oldest first."""
    return [action(db, row) for row in await db.all("actions_of_mail", mail_id=mail_id)]


async def first_result(db: Db, kind: str, dedup_key: str) -> dict[str, Any] | None:
    """The result of the first SENT action of `kind` under `dedup_key`."""
    row = await db.one("first_sent_result", dedup_key=dedup_key, kind=kind)
    return None if row is None else dict(db.json(row["result"]))


async def _claim(db: Db, now: datetime, until: datetime, limit: int) -> list[ActionRow]:
    rows = await db.all("claim_due", now=now, until=until, limit=limit)
    return sorted((action(db, row) for row in rows), key=claim_order)


async def _replay(db: Db, action_id: int, who: str, now: datetime) -> ActionRow | None:
    # last_error without "failing since": the dispatcher starts a new retry horizon from now.
    row = await db.one("replay_action", id=action_id, now=now, note=f"replayed by {who}")
    if row is None:
        return None
    replayed = action(db, row)
    note = f"{replayed.kind} action {action_id}"
    await db.run(
        "insert_audit", at=now, who=who, what="replayed", mail_id=replayed.mail_id, note=note
    )
    return replayed


async def _summary(db: Db, now: datetime) -> OutboxSummary:
    rows = await db.all("outbox_summary", now=now)
    return summarise([_per_kind(db, row) for row in rows])


def _per_kind(db: Db, row: Row) -> dict[str, Any]:
    counts = {name: row[name] for name in ("kind", "pending", "later")}
    instants = {name: row[name] for name in ("oldest", "stalled", "failing")}
    return counts | {name: None if at is None else db.time(at) for name, at in instants.items()}


async def _reply_slot(
    db: Db, address: str, action_id: int, claim: ReplyClaim
) -> ReplyRefused | None:
    """None when the reply is granted (or an earlier attempt of it was); else the budget it
    does not fit in. Addresses compare case-insensitively; on PostgreSQL a concurrent claim
    for the same address waits on its advisory lock."""
    address = address.lower()
    await db.run("lock_reply_address", address=address)
    if await db.one("own_reply_slot", action_id=action_id) is not None:
        return None
    await db.run("drop_old_reply_slots", before=min(b.since for b in claim.budgets))
    for budget in claim.budgets:
        refused = await _over(db, address, budget)
        if refused is not None:
            return refused
    at = {"action_id": action_id, "address": address, "verdict": claim.verdict, "at": claim.now}
    await db.run("add_reply_slot", **at)
    return None


async def _over(db: Db, address: str, budget: ReplyBudget) -> ReplyRefused | None:
    """The refusal when `address` already had `budget.most` replies in the budget."""
    wanted = {"address": address, "since": budget.since, "verdict": budget.verdict}
    row = await db.one("count_reply_slots", **wanted)
    if row is None or int(row["granted"]) < budget.most:
        return None
    return ReplyRefused(budget, db.time(row["first_at"]))


def action(db: Db, row: Row) -> ActionRow:
    """An `actions` row as the outbox sees it."""
    claimed, result = row["claimed_until"], row["result"]
    due_at = db.time(row["due_at"])
    return ActionRow(
        id=int(row["id"]),
        mail_id=int(row["mail_id"]),
        kind=row["kind"],
        state=row["state"],
        due_at=due_at,
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        payload=db.json(row["payload"]),
        dedup_key=row["dedup_key"],
        claimed_until=None if claimed is None else db.time(claimed),
        result=None if result is None else db.json(result),
        created_at=db.time(row["created_at"]),
        updated_at=db.time(row["updated_at"]),
        first_due_at=db.time(row["first_due_at"]) if row["first_due_at"] else due_at,
    )
