"""What a decision means in deeds: the outbox entries planned for one decided mail. Pure.

Escalate: a PagerDuty "page" (due at once, or at page_at when deferred; none when the routing
says "none"), a Slack "alarm" when the routing says so, an "ack" in the sender's incident channel
when they named one, and a "reply" to the sender. Reject: a "reply" explaining why, unless RFC 3834
forbids answering (automated mail, null sender, list or bulk mail, mailer daemons): then the reply
is planned in state "skipped" with the reason, so operators see why nobody was answered. In
support hours a reject also gets a "review" post in the support review channel (issue 5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalator.core.model import Decision, Page, Reason, Verdict, Window

if TYPE_CHECKING:
    from escalator.core.mail import ParsedMail

_DAEMON_LOCALS = frozenset({"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply"})
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
_REVIEW_WINDOWS = frozenset({Window.SUPPORT, Window.SUPPORT_AND_ON_CALL})


@dataclass(frozen=True)
class PlannedAction:
    """One outbox entry to create; `note` says why a "skipped" action will never run."""

    kind: str
    due_at: datetime
    dedup_key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    state: str = "pending"
    note: str | None = None


def thread_root(mail: ParsedMail, mail_id: int | None) -> str:
    """The first mail of the conversation, so every mail of one incident shares a page."""
    return mail.thread_root or f"mail-{mail_id if mail_id is not None else 'unknown'}"


def plan_actions(
    decision: Decision,
    mail: ParsedMail,
    mail_from: str,
    *,
    mail_id: int | None = None,
) -> tuple[PlannedAction, ...]:
    """Every action the decision implies, in the order they should happen."""
    root = thread_root(mail, mail_id)
    common = _common_payload(decision, mail, mail_id, root)
    refusal = reply_refusal(decision, mail, mail_from)
    reply = _reply_action(decision.at, root, common, mail_from, refusal)
    if decision.verdict is Verdict.ESCALATE:
        return (*_escalation(decision, root, common), reply)
    return (reply, *_review_post(decision, common, mail_id))


def _review_post(
    decision: Decision, common: dict[str, Any], mail_id: int | None
) -> tuple[PlannedAction, ...]:
    """In support hours a reject is also posted to the review channel, so a person sees it soon
    (out of hours nobody watches it; the review page holds the mail either way)."""
    if decision.routing.window not in _REVIEW_WINDOWS:
        return ()
    return (PlannedAction("review", decision.at, f"review:mail-{mail_id}", common),)


def _common_payload(
    decision: Decision, mail: ParsedMail, mail_id: int | None, root: str
) -> dict[str, Any]:
    return {
        "mail_id": mail_id,
        "thread": root,
        "message_id": mail.message_id,
        "subject": mail.subject,
        "from_addr": mail.from_addr,
        "verdict": decision.verdict.value,
        "reasons": [reason.value for reason in decision.triage.reasons],
        "slack_channel": decision.triage.slack_channel,
        "window": decision.routing.window.value,
    }


def _escalation(decision: Decision, root: str, common: dict[str, Any]) -> tuple[PlannedAction, ...]:
    routing, now = decision.routing, decision.at
    planned: list[PlannedAction] = []
    if routing.page is not Page.NONE:
        due = routing.page_at if routing.page is Page.DEFERRED and routing.page_at else now
        payload = {**common, "page": routing.page.value, "page_at": _iso(routing.page_at)}
        planned.append(PlannedAction("page", due, root, payload))
    if routing.alarm:
        planned.append(PlannedAction("alarm", now, f"alarm:{root}", common))
    if decision.triage.slack_channel:
        planned.append(PlannedAction("ack", now, f"ack:{root}", common))
    return tuple(planned)


def _reply_action(
    now: datetime, root: str, common: dict[str, Any], mail_from: str, refusal: str | None
) -> PlannedAction:
    payload = {**common, "to": _bare(mail_from)}
    key = f"reply:{common['message_id'] or root}"
    if refusal is None:
        return PlannedAction("reply", now, key, payload)
    return PlannedAction("reply", now, key, payload, state="skipped", note=refusal)


def reply_refusal(decision: Decision, mail: ParsedMail, mail_from: str) -> str | None:
    """Why RFC 3834 forbids an automatic answer to this mail, or None when a reply is fine."""
    sender = _bare(mail_from)
    if not sender:
        return "not answered: null sender <> (RFC 3834)"
    if Reason.AUTOMATED_MESSAGE in decision.triage.reasons:
        return "not answered: automated message (RFC 3834)"
    if _is_daemon(sender):
        return f"not answered: {sender.partition('@')[0]} is an automated mailbox (RFC 3834)"
    listed = next((name for name, _ in mail.headers if name.startswith("list-")), None)
    if listed:
        return f"not answered: mailing-list mail ({listed}) (RFC 3834)"
    precedence = (mail.header("precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"not answered: Precedence {precedence} (RFC 3834)"
    return None


def _is_daemon(sender: str) -> bool:
    local = sender.partition("@")[0].lower()
    return local in _DAEMON_LOCALS or local.startswith("owner-") or local.endswith("-request")


def _bare(mail_from: str) -> str:
    return mail_from.strip().removeprefix("<").removesuffix(">").strip()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
