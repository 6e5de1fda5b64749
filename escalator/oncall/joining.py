"""At decision time: does this escalation join an open incident? One path, two rules.

The decide worker calls `join_open` with each new escalation's outcome before writing it. A mail
joins the open incident of an earlier mail by one of two rules, checked in this order:

- storm (issue 16, core/storms.py): the same sender with the same normalised subject, or the
  same thread, within ESCALATOR_STORM_WINDOW_SECONDS of the storm's first mail. The store keeps
  the open storms (store.join_storm, counted atomically); the joiner pages, acks and answers no
  one, and a counter goes into the first alarm's thread at milestones.
- same outage (issue 11, core/grouping.py): a DIFFERENT sender naming the same incident channel,
  or sharing most words, within ESCALATOR_JOIN_WINDOW of an escalation not resolved in PagerDuty
  that did not itself join another. Its page is skipped, its alarm (and ack, same channel) go into
  the first report's threads, its sender is answered; support can Split it on the mail's page.

A mail that joins by the second rule registers its storm keys under the incident it joined, so
its own sender's storm that follows counts in that incident's thread too. The decision records
"storm" and/or "joined" ({"mail_id", "why"}); `DecisionRecord.joined_mail_id` reads either.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta

from escalator import metrics
from escalator.core.actions import PlannedAction
from escalator.core.grouping import Joined, Report, join_actions, same_outage, words_of
from escalator.core.mail import parse_mail
from escalator.core.notices import slack_notice
from escalator.core.record import DecisionRecord
from escalator.core.render import one_line
from escalator.core.storms import StormJoin, collapse, storm_contract, storm_keys, storm_sender
from escalator.store import ListedMail, MailRow, Store
from escalator.store.loop import loop_store

RECENT = 100


@dataclass(frozen=True)
class JoinWindows:
    """How far back each rule looks; None switches the rule off."""

    storm: timedelta | None = None  # same sender (ESCALATOR_STORM_WINDOW_SECONDS)
    outage: timedelta | None = None  # other senders (ESCALATOR_JOIN_WINDOW)


@dataclass(frozen=True)
class Joining:
    """One escalation as the rules read it."""

    record: DecisionRecord
    planned: tuple[PlannedAction, ...]
    root: str


Rewritten = tuple[DecisionRecord, tuple[PlannedAction, ...]]


async def join_batch(
    store: Store, mails: list[MailRow], joinings: list[Joining | None], windows: JoinWindows
) -> list[Rewritten | None]:
    """For each mail of a decided batch (None: not an escalation with anything loud), its record
    and actions rewritten to join the open incident it belongs to, else as they were. The
    reads come first; the storm joins are then queued together, in mail order (one group
    commit), so the first mail of a storm in the batch is its first."""
    outages = await asyncio.gather(
        *(_outage_match(store, m, j, windows.outage) for m, j in zip(mails, joinings, strict=True))
    )
    storms = await asyncio.gather(
        *(
            _storm_join(store, m, j, windows.storm, o)
            for m, j, o in zip(mails, joinings, outages, strict=True)
        )
    )
    return [
        None if j is None else join_open(m, j, s, o)
        for m, j, s, o in zip(mails, joinings, storms, outages, strict=True)
    ]


def join_open(
    mail: MailRow, joining: Joining, storm: StormJoin | None, outage: _Outage | None
) -> Rewritten:
    """The one decision: a storm joined comes first; else the same outage; else as it was."""
    record = joining.record
    if storm is not None:
        record = replace(record, decision={**record.decision, **storm_contract(storm, mail.id)})
        if storm.first_mail_id != mail.id:
            metrics.STORM_JOINED.inc()
            return record, collapse(joining.planned, storm, mail.id)
    if outage is None:
        return record, joining.planned
    return _join_outage(mail, replace(joining, record=record), outage)


def joining_of(
    mail_id: int, record: DecisionRecord, planned: tuple[PlannedAction, ...]
) -> Joining | None:
    """An escalation with a pending page or alarm, as the rules read it; else None."""
    loud = [a for a in planned if a.kind in ("page", "alarm") and a.state == "pending"]
    if record.verdict != "escalate" or record.probe or not loud:
        return None
    return Joining(record, planned, str(loud[0].payload.get("thread") or f"mail-{mail_id}"))


# -- rule 1: a storm (same sender + subject, or same thread) -----------------------------------


async def _storm_join(
    store: Store,
    mail: MailRow,
    joining: Joining | None,
    window: timedelta | None,
    outage: _Outage | None,
) -> StormJoin | None:
    """The storm this mail joins or opens; one it opens is filed under the incident `outage`
    joined, so its sender's next look-alike mails count in that incident's thread."""
    if joining is None or window is None:
        return None
    sender = storm_sender(joining.record.decision, mail.mail_from)
    keys = storm_keys(sender, mail.subject, joining.root)
    root = joining.root if outage is None else outage.joined.root
    at = mail.received_at
    return await store.join_storm(keys, mail.id, root, at, at - window)


# -- rule 2: the same outage from another sender --------------------------------------------


@dataclass(frozen=True)
class _Outage:
    joined: Joined
    new: Report
    first: Report
    subject: str


async def _outage_match(
    store: Store, mail: MailRow, joining: Joining | None, window: timedelta | None
) -> _Outage | None:
    """The same outage reported by another sender, still open: what this mail joins."""
    if joining is None or window is None:
        return None
    reports = await open_reports(store, mail, window)
    if not reports:
        return None
    parsed = parse_mail(mail.raw or b"")
    new = Report(
        mail.id,
        parsed.from_addr or mail.from_addr,
        mail.received_at,
        joining.record.slack_channel,
        words_of(parsed.subject, parsed.body.new),
        joining.root,
    )
    joined = same_outage(new, reports, window)
    if joined is None:
        return None
    first = next(report for report in reports if report.mail_id == joined.mail_id)
    return _Outage(joined, new, first, parsed.subject)


def _join_outage(mail: MailRow, joining: Joining, outage: _Outage) -> Rewritten:
    joined, new, first = outage.joined, outage.new, outage.first
    line = slack_notice(
        f"Another report of this outage, from {new.sender} (mail {mail.id}; {joined.why}): "
        f"{one_line(outage.subject, 150)}"
    )
    same_channel = bool(new.channel and first.channel and new.channel == first.channel)
    rewritten = join_actions(joining.planned, joined, line, same_channel)
    record = joining.record
    decision = {**record.decision, "joined": {"mail_id": joined.mail_id, "why": joined.why}}
    return replace(record, decision=decision), rewritten


async def open_reports(store: Store, mail: MailRow, window: timedelta) -> list[Report]:
    """Other senders' escalations within `window` that are still open and joined nothing."""
    sender = (mail.from_addr or "").lower()
    recent = [
        listed
        for listed in await store.recent_escalations(RECENT)
        if listed.mail.id != mail.id
        and (listed.mail.from_addr or "").lower() != sender
        and abs(mail.received_at - listed.mail.received_at) <= window
        and (listed.mail.decision is None or listed.mail.decision.joined_mail_id is None)
    ]
    states = await loop_store(store).incident_states([listed.mail.id for listed in recent])
    reports = []
    for listed in recent:
        state = states.get(listed.mail.id)
        if state is not None and state.status == "resolved":
            continue
        report = await _report(store, listed)
        if report is not None:
            reports.append(report)
    return reports


async def _report(store: Store, listed: ListedMail) -> Report | None:
    root = next((str(a.payload["thread"]) for a in listed.actions if a.payload.get("thread")), None)
    full = await store.get_mail(listed.mail.id)
    if root is None or full is None:
        return None
    parsed = parse_mail(full.raw or b"")
    return Report(
        full.id,
        parsed.from_addr or full.from_addr,
        full.received_at,
        full.slack_channel,
        words_of(parsed.subject, parsed.body.new),
        root,
    )
