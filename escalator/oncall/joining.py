"""At decision time: does this mail join an open incident? One path, three rules.

The decide worker calls `join_batch` with each new decision's outcome before writing it. A mail
joins the open incident of an earlier mail by one of three rules, checked in this order:

- update (issue 13.5, core/updates.py): its thread (In-Reply-To/References) leads to an
  escalation still open (paged or alarmed, not resolved in PagerDuty), and it escalates alone or
  only lacks facts (a verified participant's "any news?"). Its text goes into the incident's
  threads (the same notices as the third rule), PagerDuty gets a trigger under the incident's
  dedup key, nobody gets a reply. Inside a storm window only the first UPDATE_BURST mails of the
  storm are posted as updates; the rest count in the storm like any look-alike mail.
- storm (issue 16, core/storms.py): the same sender with the same normalised subject, or the
  same thread, within ESCALATOR_STORM_WINDOW_SECONDS of the storm's first mail. The store keeps
  the open storms (store.join_storm, counted atomically); the joiner pages, acks and answers no
  one, and a counter goes into the first alarm's thread at milestones.
- same outage (issue 11, core/grouping.py): a DIFFERENT sender naming the same incident channel,
  or sharing most words, within ESCALATOR_JOIN_WINDOW of an escalation not resolved in PagerDuty
  that did not itself join another. Its page is skipped, its alarm (and ack, same channel) go into
  the first report's threads, its sender is answered; support can Split it on the mail's page.

Every rule reads typed values: the new mail's facts as the decide worker found them (its
Outcome), the thread's Message-IDs the processor read from its headers, and the facts stored
with the earlier mails. Nothing here parses mail or looks at its raw bytes.

A mail that joins by the first or third rule registers its storm keys under the incident it
joined, so its own sender's storm that follows counts in that incident's thread too. The decision
records "update", "storm" and/or "joined" ({"mail_id", "why"}); `DecisionRecord.joined_mail_id`
reads any of them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from escalator import metrics
from escalator.core.actions import PlannedAction
from escalator.core.conversation import CONVERSATION_WINDOW
from escalator.core.facts import MailFacts
from escalator.core.grouping import Joined, Report, join_actions, same_outage, words_of
from escalator.core.notices import slack_notice
from escalator.core.record import DecisionRecord
from escalator.core.render import one_line
from escalator.core.storms import StormJoin, collapse, storm_contract, storm_keys, storm_sender
from escalator.core.updates import (
    UPDATE_BURST,
    OpenThread,
    Update,
    is_own,
    update_actions,
    update_line,
    update_reason,
)
from escalator.store import ActionRow, ListedMail, MailRow, Store
from escalator.store.loop import loop_store

log = logging.getLogger(__name__)

RECENT = 100
INCIDENT_HOPS = 3  # an update of an update of a joined report still finds the incident's first


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
    facts: MailFacts
    root: str
    update: Update | None = None


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
    """The one decision: an update first (while its storm is young); else a storm joined; else
    the same outage; else as it was."""
    record = joining.record
    if storm is not None:
        record = replace(record, decision={**record.decision, **storm_contract(storm, mail.id)})
    if joining.update is not None and (storm is None or storm.count <= UPDATE_BURST):
        return _as_update(mail, record, joining.planned, joining.update)
    if storm is not None and storm.first_mail_id != mail.id:
        metrics.STORM_JOINED.inc()
        return record, collapse(joining.planned, storm, mail.id)
    if outage is None:
        return record, joining.planned
    return _join_outage(mail, replace(joining, record=record), outage)


def joining_of(
    mail_id: int,
    record: DecisionRecord,
    planned: tuple[PlannedAction, ...],
    facts: MailFacts | None,
    update: Update | None = None,
) -> Joining | None:
    """An update, or an escalation with a pending page or alarm, as the rules read it; else
    None. An update's storm is counted on its incident's thread."""
    read = facts or MailFacts()  # only a failed decision has none, and it escalates nothing
    if update is not None:
        return Joining(record, planned, read, update.thread.root, update)
    loud = [a for a in planned if a.kind in ("page", "alarm") and a.state == "pending"]
    if record.verdict != "escalate" or record.probe or not loud:
        return None
    root = str(loud[0].payload.get("thread") or f"mail-{mail_id}")
    return Joining(record, planned, read, root)


# -- rule 1: an update in the thread of an open escalation ---------------------------------


async def update_of(
    store: Store,
    mail: MailRow,
    record: DecisionRecord,
    facts: MailFacts | None,
    parents: tuple[str, ...],
) -> Update | None:
    """The open escalation this mail's thread (`parents`: core.conversation.thread_parents)
    leads to, when the mail may update it (core/updates.py says which may); the nearest
    escalated mail of the thread decides."""
    if record.probe or record.error or record.decision.get("postmaster") or facts is None:
        return None
    escalated = await _nearest_escalated(store, mail, parents)
    thread = None if escalated is None else await open_thread(store, escalated)
    if thread is None:
        return None
    check = record.sender_check
    why = update_reason(record.verdict, record.reasons, check, thread)
    if why is None:
        return None
    unverified = check is not None and not check.verified
    sender = facts.from_addr or mail.from_addr
    return Update(thread, why, update_line(sender, mail.id, facts.body.new, unverified))


async def _nearest_escalated(
    store: Store, mail: MailRow, parents: tuple[str, ...]
) -> MailRow | None:
    """The nearest mail of this one's thread that escalated, within the conversation window."""
    for message_id in parents:
        row = await store.find_mail(message_id)
        if row is None or row.id == mail.id or row.verdict != "escalate":
            continue
        recent = timedelta(0) <= mail.received_at - row.received_at <= CONVERSATION_WINDOW
        return row if recent else None
    return None


async def open_thread(store: Store, escalated: MailRow) -> OpenThread | None:
    """The incident an escalated mail belongs to (its own, or the one it joined), while it is
    open: paged or alarmed, and not resolved in PagerDuty."""
    first = await _incident_first(store, escalated)
    state = (await loop_store(store).incident_states([first.id])).get(first.id)
    if state is not None and state.status == "resolved":
        return None
    own = [a for a in await store.mail_actions(first.id) if is_own(a.payload)]
    page, alarm, ack = (_live(own, kind) for kind in ("page", "alarm", "ack"))
    if page is None and alarm is None:
        return None
    root = str((page or alarm or own[0]).payload.get("thread") or f"mail-{first.id}")
    people = _participants(first) | _participants(escalated)
    return OpenThread(
        first.id,
        root,
        None if page is None else page.dedup_key,
        None if page is None else page.first_due_at or page.due_at,
        alarm is not None,
        ack is not None,
        frozenset(people),
    )


async def _incident_first(store: Store, mail: MailRow) -> MailRow:
    """Follow "joined"/"update"/"storm" back to the incident's first mail."""
    for _ in range(INCIDENT_HOPS):
        first_id = None if mail.decision is None else mail.decision.joined_mail_id
        found = None if first_id is None else await store.get_mail(first_id)
        if found is None:
            break
        mail = found
    return mail


def _live(actions: list[ActionRow], kind: str) -> ActionRow | None:
    """The first action of `kind` that is going out or went out (not skipped, not failed)."""
    return next((a for a in actions if a.kind == kind and a.state not in SILENT), None)


SILENT = ("skipped", "failed")


def _participants(mail: MailRow) -> set[str]:
    """From, To and Cc addresses of a stored mail, from its facts (its From alone once its text
    is purged, or when its facts were stored before participants were kept: logged)."""
    people = {mail.from_addr.strip().lower()} if mail.from_addr else set()
    facts = mail.facts
    if facts is None:
        return people
    if facts.participants is None:
        log.info("mail %d: facts stored without participants; its From address only", mail.id)
        return people | {facts.from_addr.strip().lower()} - {""}
    return people | set(facts.participants)


def _as_update(
    mail: MailRow, record: DecisionRecord, planned: tuple[PlannedAction, ...], update: Update
) -> Rewritten:
    """The update's record (nobody reviews it: it went to the incident's people) and deeds."""
    notice = slack_notice(update.line)
    rewritten = update_actions(planned, update, notice, mail.id, mail.received_at)
    found = {"mail_id": update.thread.mail_id, "why": update.why}
    return replace(record, decision={**record.decision, "update": found}, review=None), rewritten


# -- rule 2: a storm (same sender + subject, or same thread) -----------------------------------


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


# -- rule 3: the same outage from another sender --------------------------------------------


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
    if joining is None or window is None or joining.update is not None:
        return None
    reports = await open_reports(store, mail, window)
    if not reports:
        return None
    facts = joining.facts
    new = Report(
        mail.id,
        facts.from_addr or mail.from_addr,
        mail.received_at,
        joining.record.slack_channel,
        words_of(facts.subject, facts.body.new),
        joining.root,
    )
    joined = same_outage(new, reports, window)
    if joined is None:
        return None
    first = next(report for report in reports if report.mail_id == joined.mail_id)
    return _Outage(joined, new, first, facts.subject)


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
    """Other senders' escalations within `window` that are still open and joined nothing.
    On every escalation's page path: the store reads in full only other senders' mails."""
    at = mail.received_at
    near = await store.outage_candidates(at - window, at + window, mail.from_addr or "", RECENT)
    recent = [listed for listed in near if listed.mail.id != mail.id]
    if not recent:
        return []
    states = await loop_store(store).incident_states([listed.mail.id for listed in recent])
    reports = []
    for listed in recent:
        state = states.get(listed.mail.id)
        if state is not None and state.status == "resolved":
            continue
        report = _report(listed)
        if report is not None:
            reports.append(report)
    return reports


def _report(listed: ListedMail) -> Report | None:
    """An open escalation as the outage rule reads it: from the facts stored with it (none
    once retention purged its text: its envelope From, no words)."""
    root = next((str(a.payload["thread"]) for a in listed.actions if a.payload.get("thread")), None)
    if root is None:
        return None
    mail = listed.mail
    facts = mail.facts or MailFacts()
    return Report(
        mail.id,
        facts.from_addr or mail.from_addr,
        mail.received_at,
        mail.slack_channel,
        words_of(facts.subject, facts.body.new),
        root,
    )
