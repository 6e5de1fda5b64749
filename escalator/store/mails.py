"""Mails and their decisions, written once for both dialects: Store methods as jobs.

A mail is committed (or found to be a retry of one already stored) before its 250; the decide
worker takes undecided mails fairly and writes a decision, its facts and its actions in one
transaction, only while the mail is still undecided; listings read them back as MailRow.
Retention blanks raw bytes (and the facts read from them) first and whole records later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from escalator.core.actions import PlannedAction
from escalator.core.facts import MailFacts
from escalator.core.record import DecisionRecord
from escalator.store import (
    DUPLICATE_WINDOW_DAYS,
    Accepted,
    ActionRow,
    IncomingMail,
    ListedMail,
    MailRow,
    PagesClaimed,
    Purged,
    actions,
    claim_order,
)
from escalator.store.db import Db, Json, Row, Tables, clock


class MailTables(Tables):
    """Mails, decisions and retention in the Store protocol (store/__init__.py)."""

    async def accept(self, mail: IncomingMail) -> Accepted:
        return await self._write(lambda db: _accept(db, mail), "mail")

    async def undecided_mails(self, limit: int, byte_budget: int) -> list[MailRow]:
        return await self._read(lambda db: _undecided(db, limit, byte_budget))

    async def record_decision(
        self,
        mail_id: int,
        record: DecisionRecord,
        planned: tuple[PlannedAction, ...],
        facts: MailFacts | None = None,
    ) -> bool:
        now = clock()
        return await self._write(
            lambda db: _record_decision(db, mail_id, record, planned, now, facts), "actions"
        )

    async def record_decision_paging(
        self,
        mail_id: int,
        record: DecisionRecord,
        planned: tuple[PlannedAction, ...],
        facts: MailFacts | None,
        due_by: datetime,
        lease_until: datetime,
    ) -> PagesClaimed | None:
        now = clock()
        return await self._write(
            lambda db: _record_paging(
                db, mail_id, record, planned, now, facts, (due_by, lease_until)
            ),
            "actions",
        )

    async def mails_without_facts(self, limit: int, after: int = 0) -> list[MailRow]:
        return await self._write(
            lambda db: listed(db, "mails_without_facts", after=after, limit=limit)
        )

    async def set_facts(self, mail_id: int, facts: MailFacts) -> bool:
        return await self._write(lambda db: _set_facts(db, mail_id, facts))

    async def get_mail(self, mail_id: int, *, with_raw: bool = True) -> MailRow | None:
        if not with_raw:
            return await self._read(lambda db: _found(db, "mail_without_raw", id=mail_id))
        return await self._read(lambda db: get(db, mail_id))

    async def find_mail(self, message_id: str) -> MailRow | None:
        return await self._read(lambda db: _found(db, "mail_by_message_id", message_id=message_id))

    async def list_mails(self) -> list[ListedMail]:
        return await self._read(_list)

    async def purge(self, raw_before: datetime, records_before: datetime, now: datetime) -> Purged:
        return await self._write(lambda db: _purge(db, raw_before, records_before, now))


async def _accept(db: Db, mail: IncomingMail) -> Accepted:
    if mail.content_digest:
        await db.run("lock_digest", digest=mail.content_digest)
        since = mail.received_at - timedelta(days=DUPLICATE_WINDOW_DAYS)
        found = await db.one("duplicate_of", digest=mail.content_digest, since=since)
        if found is not None:
            return Accepted(int(found["id"]), duplicate=True)
    row = await db.one(
        "insert_mail",
        received_at=mail.received_at,
        mail_from=mail.mail_from,
        rcpt_tos=Json(list(mail.rcpt_tos)),
        client_address=mail.client_address,
        tls=mail.tls,
        message_id=mail.message_id,
        subject=mail.subject,
        from_addr=mail.from_addr,
        size=len(mail.raw),
        raw=mail.raw,
        content_digest=mail.content_digest,
    )
    return Accepted(actions.new_id(row), duplicate=False)


async def _undecided(db: Db, limit: int, byte_budget: int) -> list[MailRow]:
    """The oldest undecided mails, fairly, within the byte budget (at least one); read in one
    query, not one per mail (issue 16)."""
    chosen: list[int] = []
    total = 0
    for row in await db.all("undecided_fairly", limit=limit):
        if chosen and total + int(row["size"]) > byte_budget:
            break
        chosen.append(int(row["id"]))
        total += int(row["size"])
    found = {row.id: row for row in await listed(db, "mails_by_ids", ids=chosen)}
    return [found[mail_id] for mail_id in chosen if mail_id in found]


async def _record_decision(
    db: Db,
    mail_id: int,
    record: DecisionRecord,
    planned: tuple[PlannedAction, ...],
    now: datetime,
    facts: MailFacts | None,
) -> bool:
    decided = await db.run(
        "record_decision",
        id=mail_id,
        decided_at=record.decided_at or now,
        review=record.review,
        facts=facts_json(facts),
        **decision_columns(record),
    )
    if decided != 1:
        return False
    await actions.insert(db, mail_id, planned, now)
    return True


async def _record_paging(
    db: Db,
    mail_id: int,
    record: DecisionRecord,
    planned: tuple[PlannedAction, ...],
    now: datetime,
    facts: MailFacts | None,
    lease: tuple[datetime, datetime],
) -> PagesClaimed | None:
    """The decision, then its pages due by lease[0] claimed until lease[1] (issue 12)."""
    if not await _record_decision(db, mail_id, record, planned, now, facts):
        return None
    due_by, until = lease
    rows = await db.all("claim_mail_pages", mail_id=mail_id, due_by=due_by, until=until, now=now)
    found = await _found(db, "mail_without_raw", id=mail_id)
    pages = tuple(sorted((actions.action(db, row) for row in rows), key=claim_order))
    return None if found is None else PagesClaimed(found, pages)


def decision_columns(record: DecisionRecord) -> dict[str, Any]:
    """decision, verdict, reasons, slack_channel, window: what every decision write sets."""
    return {
        "decision": Json(record.to_dict()),
        "verdict": record.verdict,
        "reasons": Json(list(record.reasons)),
        "slack_channel": record.slack_channel,
        "window": record.window,
    }


def facts_json(facts: MailFacts | None) -> Json | None:
    return None if facts is None else Json(facts.to_json())


async def _set_facts(db: Db, mail_id: int, facts: MailFacts) -> bool:
    return await db.run("set_facts", id=mail_id, facts=facts_json(facts)) == 1


async def get(db: Db, mail_id: int) -> MailRow | None:
    """One mail with its raw bytes (while retention keeps them)."""
    return await _found(db, "mail", id=mail_id)


async def _found(db: Db, query: str, **params: Any) -> MailRow | None:
    row = await db.one(query, **params)
    return None if row is None else mail(db, row)


async def listed(db: Db, query: str, **params: Any) -> list[MailRow]:
    """The mails a query of mail rows (mail_columns and raw) gives."""
    return [mail(db, row) for row in await db.all(query, **params)]


async def _list(db: Db) -> list[ListedMail]:
    mails = await listed(db, "all_mails")
    by_mail: dict[int, list[ActionRow]] = {}
    for row in await db.all("all_actions"):
        action = actions.action(db, row)
        by_mail.setdefault(action.mail_id, []).append(action)
    return [ListedMail(mail, tuple(by_mail.get(mail.id, ()))) for mail in mails]


async def _purge(db: Db, raw_before: datetime, records_before: datetime, now: datetime) -> Purged:
    """Old raw bytes go first; whole records (actions, audit, mail) after the longer period."""
    raw = await db.run("purge_raw", before=raw_before, now=now)
    await db.run("purge_actions", before=records_before)
    audit = await db.run("purge_audit", before=records_before)
    mails = await db.run("purge_mails", before=records_before)
    return Purged(raw, mails, audit)


def mail(db: Db, row: Row) -> MailRow:
    """A `mails` row (store/queries.sql's mail_columns and raw) as a MailRow."""
    decided_at = None if row["decided_at"] is None else db.time(row["decided_at"])
    raw, purged = row["raw"], row["raw_purged_at"]
    return MailRow(
        id=int(row["id"]),
        received_at=db.time(row["received_at"]),
        mail_from=row["mail_from"],
        rcpt_tos=tuple(db.json(row["rcpt_tos"])),
        client_address=row["client_address"],
        tls=bool(row["tls"]),
        message_id=row["message_id"],
        subject=row["subject"],
        from_addr=row["from_addr"],
        size=int(row["size"]),
        verdict=row["verdict"],
        reasons=tuple(db.json(row["reasons"])) if row["reasons"] else (),
        slack_channel=row["slack_channel"],
        window=row["window"],
        decision=_decision(db, row["decision"], decided_at, row["review"]),
        decided_at=decided_at,
        review=row["review"],
        raw=None if raw is None else bytes(raw),
        raw_purged_at=db.time(purged) if purged else None,
        facts=_facts(db, row["facts"]),
    )


def as_decided(
    mail: MailRow, record: DecisionRecord, facts: MailFacts | None, now: datetime
) -> MailRow:
    """An undecided mail as it reads once `_record_decision` stored this decision (its JSON
    forms round-tripped as the store does), without its raw bytes: the page path renders its
    pages from it before the commit returns (issue 12)."""
    stored = json.loads(json.dumps(record.to_dict()))
    decided_at = record.decided_at or now
    return replace(
        mail,
        verdict=record.verdict,
        reasons=tuple(record.reasons),
        slack_channel=record.slack_channel,
        window=record.window,
        decision=DecisionRecord.from_dict(stored, decided_at, record.review),
        decided_at=decided_at,
        review=record.review,
        raw=None,
        facts=None if facts is None else _round_trip(facts),
    )


def _round_trip(facts: MailFacts) -> MailFacts:
    return MailFacts.from_json(json.loads(json.dumps(facts.to_json())))


def _decision(
    db: Db, stored: Any, decided_at: datetime | None, review: str | None
) -> DecisionRecord | None:
    data = db.json(stored) if stored else None
    if data is None:
        return None
    return DecisionRecord.from_dict(data if isinstance(data, Mapping) else {}, decided_at, review)


def _facts(db: Db, stored: Any) -> MailFacts | None:
    data = db.json(stored) if stored else None
    return MailFacts.from_json(data) if data else None
