"""The support review's deeds, shared by the web page and the CLI: release and dismiss a held mail.

RELEASE ("page anyway") turns a rejected mail into an escalation routed by the cover window AT
RELEASE TIME (a reject reviewed at 10:00 on Monday alarms support; at 20:00 it pages on-call). Its
actions come from the same planner as any escalation (plan_actions: page/alarm/ack/reply, the
reply telling the sender) and enter the same outbox in the same transaction as the review state
and the audit row. The store applies it only while the mail is still held, so two people clicking
Release at once produce one release and one page.

The mail's decision columns then describe the escalation (what the dispatcher renders: the page,
the "escalated" reply); the machine's original reject stays in the decision JSON under
"released" -> "original", and the audit trail says who released it and when.

DISMISS records a person's note and ends the review; nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from escalator.core import render
from escalator.core.actions import (
    DOUBT_KIND,
    NULL_SENDER_REFUSAL,
    Addressed,
    PlannedAction,
    plan_addressed,
)
from escalator.core.facts import MailFacts
from escalator.core.model import Decision, Triage, Verdict
from escalator.core.policy import Policy, route
from escalator.core.record import DecisionRecord, Released
from escalator.errors import PermanentError
from escalator.store import ActionRow, AuditRow, MailRow, Store

MAX_NOTE_CHARS = 2000


class MailNotFound(PermanentError):
    """No stored mail has that id (never stored, or removed by retention)."""


class NoteRequired(PermanentError):
    """A dismissal must say why, for the next person who reads the audit trail."""


@dataclass(frozen=True)
class Reviewed:
    """How a review request ended: `changed` is False when the mail was no longer held."""

    mail_id: int
    review: str | None
    changed: bool
    planned: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        if self.changed:
            return f"Mail {self.mail_id} {self.review}."
        return f"Mail {self.mail_id} was not held (it is {self.review or 'not under review'})."


async def release(
    store: Store,
    policy: Policy,
    mail_id: int,
    who: str,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> Reviewed:
    """Escalate a held mail now; exactly once however many people ask at the same time."""
    mail = await _mail(store, mail_id)
    if mail.review != "held":
        return Reviewed(mail_id, mail.review, changed=False)
    at = now or datetime.now(UTC)
    decision = released_decision(mail, policy, at)
    planned = released_actions(mail, decision)
    record = released_record(mail, decision, who, _clean(note))
    changed = await store.resolve_review(mail.id, "released", who, _clean(note), record, planned)
    return await _outcome(store, mail.id, changed, tuple(action.kind for action in planned))


async def dismiss(store: Store, mail_id: int, who: str, note: str) -> Reviewed:
    """End the review of a held mail without sending anything; the note is required."""
    cleaned = _clean(note)
    if not cleaned:
        raise NoteRequired("a dismissal needs a note saying why")
    mail = await _mail(store, mail_id)
    if mail.review != "held":
        return Reviewed(mail_id, mail.review, changed=False)
    changed = await store.resolve_review(mail.id, "dismissed", who, cleaned)
    return await _outcome(store, mail.id, changed)


def released_decision(mail: MailRow, policy: Policy, at: datetime) -> Decision:
    """An escalation of this mail routed at `at`, keeping the channel the sender named and what
    the sender check found (a released unverified mail still says so, and is answered at its
    From address, not its envelope sender)."""
    channel, slack_id = (
        mail.decision.contract_channel if mail.decision else (mail.slack_channel, None)
    )
    triage = Triage(Verdict.ESCALATE, (), channel, (), slack_id=slack_id)
    routing = route(Verdict.ESCALATE, policy.calendar, at)
    check = mail.decision.sender_check if mail.decision is not None else None
    return Decision(triage, routing, at, check)


def released_actions(mail: MailRow, decision: Decision) -> tuple[PlannedAction, ...]:
    """The escalation's actions, planned from the facts the decide worker stored: the page
    shows the whole conversation it read, the reply goes where it found the sender."""
    facts = mail.facts or unread_facts(mail)
    addressed = Addressed(
        root=facts.thread_root or f"mail-{mail.id}",
        message_id=facts.message_id,
        subject=facts.subject,
        from_addr=facts.from_addr,
        to=facts.release_to,
        refusal=facts.release_refusal,
    )
    return plan_addressed(decision, addressed, mail.id)


def unread_facts(mail: MailRow) -> MailFacts:
    """A mail the decide worker could not read (its decision failed): what the envelope says."""
    to = _bare(mail.mail_from)
    refusal = None if to else NULL_SENDER_REFUSAL
    return MailFacts(
        mail.from_addr, "", mail.subject, mail.message_id, release_to=to, release_refusal=refusal
    )


def _bare(mail_from: str) -> str:
    return mail_from.strip().removeprefix("<").removesuffix(">").strip()


def released_record(
    mail: MailRow, decision: Decision, who: str, note: str | None
) -> DecisionRecord:
    """The escalation's record; the original reject is kept inside it for the page and audit."""
    original = mail.decision
    release = DecisionRecord.decided(decision, decision.at)
    if original is None:
        return replace(release, review=None, released=Released(who, _iso(decision), note, None))
    return original.releasing(release, who, decision.at, note)


def _iso(decision: Decision) -> str:
    return decision.at.isoformat()


async def _mail(store: Store, mail_id: int) -> MailRow:
    mail = await store.get_mail(mail_id)
    if mail is None:
        raise MailNotFound(f"no mail {mail_id}")
    return mail


async def _outcome(
    store: Store, mail_id: int, changed: bool, planned: tuple[str, ...] = ()
) -> Reviewed:
    """The state now; when `changed` is False someone else got there first: report theirs."""
    mail = await store.get_mail(mail_id)
    return Reviewed(mail_id, mail.review if mail else None, changed, planned if changed else ())


def _clean(note: str | None) -> str | None:
    text = (note or "").strip()[:MAX_NOTE_CHARS]
    return text or None


# -- what a person reads about one mail (web page and `escalator review show`) ------------------


@dataclass(frozen=True)
class MailView:
    """One mail as the review shows it: all text, never the mail's HTML, nothing clickable."""

    mail: MailRow
    facts: MailFacts | None
    reasons: tuple[str, ...]
    evidence: tuple[str, ...]
    released: Released | None
    actions: tuple[ActionRow, ...] = ()
    audit: tuple[AuditRow, ...] = ()
    sender_check: str | None = None  # "verified: …" / "unverified sender: …"; None when unchecked
    doubts: tuple[str, ...] = ()  # why the machine's reject may be an incident (issue 15)

    @property
    def doubt_notices(self) -> tuple[ActionRow, ...]:
        """The notices raised because this reject may be an incident (kind "doubt")."""
        return tuple(action for action in self.actions if action.kind == DOUBT_KIND)

    @property
    def sender(self) -> str:
        """Display name and address as the mail gave them (escaped by whoever renders it)."""
        name = self.facts.from_name if self.facts else ""
        address = self.mail.from_addr or self.mail.mail_from
        return f"{name} <{address}>" if name else address

    @property
    def subject(self) -> str:
        return (self.facts.subject if self.facts else "") or self.mail.subject


def mail_view(
    mail: MailRow, actions: tuple[ActionRow, ...] = (), audit: tuple[AuditRow, ...] = ()
) -> MailView:
    """The stored facts (until retention purges them) and the machine's decision explained."""
    record = mail.decision or DecisionRecord({})
    original = record.machine
    return MailView(
        mail=mail,
        facts=mail.facts,
        reasons=original.reasons,
        evidence=tuple(evidence_line(item) for item in original.evidence),
        released=record.released,
        actions=actions,
        audit=audit,
        sender_check=sender_line(original.decision.get("sender")),
        doubts=tuple(render.describe_doubts(original.doubts))
        if original.verdict == "reject"
        else (),
    )


def sender_line(check: Any) -> str | None:
    """What the sender check found (issue 16), as the page and the CLI show it."""
    if not isinstance(check, dict):
        return None
    label = "verified" if check.get("verified") is True else "unverified sender"
    return f"{label}: {check.get('how') or 'no detail'}"


def evidence_line(item: Mapping[str, Any]) -> str:
    """ "rule pr_chaser matched 'any update on my PR' in subject (not_service_impacting)"."""
    line = f"rule {item.get('rule')} matched '{item.get('matched')}'"
    if item.get("where"):
        line += f" in {item['where']}"
    return f"{line} ({item['reason']})" if item.get("reason") else line


async def load_view(store: Store, mail_id: int) -> MailView:
    """Everything the mail's page shows: the mail, its actions and its audit trail."""
    mail = await _mail(store, mail_id)
    actions = tuple(await store.mail_actions(mail_id))
    audit = tuple(await store.audit_log(mail_id))
    return mail_view(mail, actions, audit)


_DONE_WORDS = {
    "page": "paged",
    "alarm": "alarmed",
    "ack": "acknowledged",
    "reply": "replied",
    "review": "posted for review",
    "doubt": "notice sent",
}


def action_label(action: ActionRow) -> str:
    """What support asks ("did on-call get it?"): paged, alarmed, replied, failed, dry run…"""
    if action.state == "sent":
        return _DONE_WORDS.get(action.kind, "sent")
    if action.state == "dry_run":
        return "dry run (nothing sent)"
    if action.state == "failed":
        return f"failed: {action.last_error or 'unknown error'}"
    if action.state == "skipped":
        return f"skipped: {action.last_error or 'not needed'}"
    if action.attempts:
        return f"retrying (attempt {action.attempts}): {action.last_error or ''}".rstrip(": ")
    return f"pending, due {action.due_at.isoformat(timespec='minutes')}"
