"""Support review in the store, written once for both dialects: Store methods as jobs.

A held mail ends released or dismissed exactly once (of two clicks on Release, the first
writes: the state change is conditional on `held`), with its audit row, its new decision and
its actions in the same transaction. Also here: the audit trail, the review page's listings,
and review sessions signed out before they expire (seen by every replica).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from escalator.core.actions import PlannedAction
from escalator.core.record import DecisionRecord
from escalator.store import REVIEW_STATES, AuditRow, ListedMail, MailRow, actions
from escalator.store.db import Db, Row, Tables, clock
from escalator.store.mails import decision_columns, listed
from escalator.store.mails import mail as mail_row


class ReviewTables(Tables):
    """Review, audit and sessions in the Store protocol (store/__init__.py)."""

    async def set_review(self, mail_id: int, review: str, who: str, note: str | None) -> None:
        if review not in REVIEW_STATES:
            raise ValueError(f"unknown review state {review!r}")
        deed = Deed(who, review, note, clock())
        await self._write(lambda db: _set_review(db, mail_id, deed))

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
        deed = Deed(who, review, note, clock())
        return await self._write(lambda db: _resolve(db, mail_id, deed, record, planned), "actions")

    async def audit_log(self, mail_id: int | None = None) -> list[AuditRow]:
        return await self._read(lambda db: _audit_log(db, mail_id))

    async def mails_in_review(self, review: str, limit: int) -> list[MailRow]:
        held = {"review": review, "limit": limit}
        return await self._read(lambda db: listed(db, "mails_in_review", **held))

    async def recent_escalations(self, limit: int) -> list[ListedMail]:
        return await self._read(lambda db: _recent_escalations(db, limit))

    async def outage_candidates(
        self, since: datetime, until: datetime, not_from: str, limit: int
    ) -> list[ListedMail]:
        near = {"since": since, "until": until, "limit": limit}
        return await self._read(lambda db: _outage_candidates(db, near, not_from.lower()))

    async def revoke_session(self, session_key: str, expires_at: datetime, now: datetime) -> None:
        await self._write(lambda db: _revoke(db, session_key, expires_at, now))

    async def session_revoked(self, session_key: str) -> bool:
        found = await self._write(lambda db: db.one("session_revoked", session_key=session_key))
        return found is not None


@dataclass(frozen=True)
class Deed:
    """A review deed: who moved a mail to which review state (`what`), when, with what note."""

    who: str
    what: str
    note: str | None
    at: datetime

    async def audit(self, db: Db, mail_id: int) -> None:
        await db.run("insert_audit", mail_id=mail_id, **asdict(self))


async def _set_review(db: Db, mail_id: int, deed: Deed) -> None:
    if await db.run("set_review", id=mail_id, review=deed.what) != 1:
        raise LookupError(f"no mail {mail_id}")
    await deed.audit(db, mail_id)


async def _resolve(
    db: Db,
    mail_id: int,
    deed: Deed,
    record: DecisionRecord | None,
    planned: tuple[PlannedAction, ...],
) -> bool:
    """Conditional on review = 'held', so of two concurrent releases only the first writes."""
    if await db.run("end_hold", id=mail_id, review=deed.what) != 1:
        return False
    if record is not None:
        await db.run("redecide", id=mail_id, **decision_columns(record))
    await actions.insert(db, mail_id, planned, deed.at)
    await deed.audit(db, mail_id)
    return True


async def _audit_log(db: Db, mail_id: int | None) -> list[AuditRow]:
    if mail_id is None:
        rows = await db.all("audit_log")
    else:
        rows = await db.all("audit_of_mail", mail_id=mail_id)
    return [_audit_row(db, row) for row in rows]


def _audit_row(db: Db, row: Row) -> AuditRow:
    at = db.time(row["at"])
    return AuditRow(row["id"], at, row["who"], row["what"], row["mail_id"], row["note"])


async def _recent_escalations(db: Db, limit: int) -> list[ListedMail]:
    mails = await listed(db, "recent_escalations", limit=limit)
    return [ListedMail(mail, tuple(await actions.of_mail(db, mail.id))) for mail in mails]


async def _outage_candidates(db: Db, near: dict[str, Any], not_from: str) -> list[ListedMail]:
    """Only other senders' rows are read in full (decision, facts, actions): the one sender of
    a storm costs its rows and nothing more."""
    found = []
    for row in await db.all("escalations_near", **near):
        if (row["from_addr"] or "").lower() == not_from:
            continue
        mail = mail_row(db, row)
        if mail.decision is None or mail.decision.joined_mail_id is None:
            found.append(ListedMail(mail, tuple(await actions.of_mail(db, mail.id))))
    return found


async def _revoke(db: Db, session_key: str, expires_at: datetime, now: datetime) -> None:
    await db.run("drop_expired_sessions", now=now)
    await db.run("revoke_session", session_key=session_key, expires_at=expires_at)
