"""What a decision means in deeds: the outbox entries planned for one decided mail. Pure.

Escalate: a PagerDuty "page" (due at once, or at page_at when deferred; none when the routing
says "none"), a Slack "alarm" when the routing says so, an "ack" in the sender's incident channel
when they named one, and a "reply" to the sender. Reject: a "reply" explaining why, unless RFC 3834
forbids answering (automated mail, null sender, list or bulk mail, mailer daemons): then the reply
is planned in state "skipped" with the reason, so operators see why nobody was answered. In
support hours a reject also gets a "review" post in the support review channel (issue 5).

A low-confidence reject (issue 15: it may be an incident) is held like any reject and is never
silent: "doubt" notices, a kind beside the contract's four. In support hours one ("via" slack)
is posted in the alarm channel: held, may be an incident, release to page. On call one ("via"
pagerduty) is a PagerDuty event of severity "warning" (low urgency) under a dedup key of its
own ("doubt:<root>"), so a later release pages the conversation's own incident. Support and
on-call together: both. Out of cover: the PagerDuty one at the next on-call start (07:00); the
dispatcher skips a notice whose mail was released or dismissed before it was due.

Behind the deployment's own mail group (a trusted List-Id, as triage treats it), list headers
and Precedence list/bulk are the group's, not a robot's: the person is answered, at their
Reply-To or From address, since the envelope sender is the group's bounce address.

When the sender is checked (ESCALATOR_SENDER_POLICY not off, issue 16): replies go to the From
address (the verified identity, or the unverified one every payload names), never to the
envelope sender; the group's Reply-To is believed only when the group's mail is verified (a
forged List-Id names no one); an unverified sender refused as sender_not_allowed gets one notice
(the reject reply, limited per address by the dispatcher); and every outside payload of an
unverified sender's mail carries the note "unverified sender".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from escalator.core.model import Decision, Page, Reason, SenderCheck, Verdict, Window

# One definition of "our own group" for triage and replies (triage owns it; private by name only).
from escalator.core.triage import from_trusted_list

if TYPE_CHECKING:
    from escalator.core.mail import ParsedMail

_DAEMON_LOCALS = frozenset({"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply"})
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
_GROUP_PRECEDENCE = frozenset({"bulk", "list"})  # what a trusted group itself adds
_MAILTO = re.compile(r"mailto:([^\s<>?,]+)", re.IGNORECASE)
_REVIEW_WINDOWS = frozenset({Window.SUPPORT, Window.SUPPORT_AND_ON_CALL})
_ON_CALL_WINDOWS = frozenset({Window.ON_CALL, Window.SUPPORT_AND_ON_CALL})
DOUBT_KIND = "doubt"
UNVERIFIED_NOTE = "unverified sender"
NULL_SENDER_REFUSAL = "not answered: null sender <> (RFC 3834)"


@dataclass(frozen=True)
class PlannedAction:
    """One outbox entry to create; `note` says why a "skipped" action will never run."""

    kind: str
    due_at: datetime
    dedup_key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    state: str = "pending"
    note: str | None = None


@dataclass(frozen=True)
class Addressed:
    """The mail's part in its actions, read from its headers: the conversation's root (the
    dedup keys), its identity (the common payload), where a reply goes and why it may not."""

    root: str
    message_id: str | None
    subject: str
    from_addr: str
    to: str
    refusal: str | None


def thread_root(mail: ParsedMail, mail_id: int | None) -> str:
    """The first mail of the conversation, so every mail of one incident shares a page."""
    return mail.thread_root or f"mail-{mail_id if mail_id is not None else 'unknown'}"


def plan_actions(
    decision: Decision,
    mail: ParsedMail,
    mail_from: str,
    *,
    mail_id: int | None = None,
    trusted_list_ids: tuple[str, ...] = (),
) -> tuple[PlannedAction, ...]:
    """Every action the decision implies, in the order they should happen. `trusted_list_ids`:
    the List-Ids of the deployment's own front group (settings.trusted_list_ids)."""
    addressed = address(
        mail,
        mail_from,
        reasons=decision.triage.reasons,
        check=decision.sender,
        mail_id=mail_id,
        trusted_list_ids=trusted_list_ids,
    )
    return plan_addressed(decision, addressed, mail_id)


def plan_addressed(
    decision: Decision, addressed: Addressed, mail_id: int | None
) -> tuple[PlannedAction, ...]:
    """`plan_actions` for a mail read earlier: a release plans from the stored facts."""
    root = addressed.root
    common = _common_payload(decision, addressed, mail_id)
    reply = _reply_action(decision.at, root, common, addressed.to, addressed.refusal)
    if decision.verdict is Verdict.ESCALATE:
        return (*_escalation(decision, root, common), reply)
    return (
        reply,
        *_review_post(decision, common, mail_id),
        *_doubt_notices(decision, root, common),
    )


def address(
    mail: ParsedMail,
    mail_from: str,
    *,
    reasons: tuple[Reason, ...] = (),
    check: SenderCheck | None = None,
    mail_id: int | None = None,
    trusted_list_ids: tuple[str, ...] = (),
) -> Addressed:
    """Root, identity, reply address and refusal of a mail decided with `reasons` and `check`
    (a release: no reasons, no sender check)."""
    trusted = from_trusted_list(mail, trusted_list_ids) and (check is None or check.verified)
    to = _group_sender(mail) if trusted else _recipient(check, mail_from)
    refusal = _refusal(reasons, mail, mail_from, trusted=trusted, to=to)
    root = thread_root(mail, mail_id)
    return Addressed(root, mail.message_id, mail.subject, mail.from_addr, to, refusal)


def _recipient(check: SenderCheck | None, mail_from: str) -> str:
    """Unchecked: the envelope sender, as before. Checked: the From address, which is the
    verified identity, or else the one the page and the review show as unverified; never the
    envelope sender, which anyone sending can set to any address."""
    if check is None or not check.address:
        return _bare(mail_from)
    return check.address


def _review_post(
    decision: Decision, common: dict[str, Any], mail_id: int | None
) -> tuple[PlannedAction, ...]:
    """In support hours a reject is also posted to the review channel, so a person sees it soon
    (out of hours nobody watches it; the review page holds the mail either way)."""
    if decision.routing.window not in _REVIEW_WINDOWS:
        return ()
    return (PlannedAction("review", decision.at, f"review:mail-{mail_id}", common),)


def _doubt_notices(
    decision: Decision, root: str, common: dict[str, Any]
) -> tuple[PlannedAction, ...]:
    """A reject that may be an incident raises a notice where someone is watching now, or at
    the next on-call start when nobody is (issue 15, the doubt path)."""
    if not decision.triage.low_confidence_reject:
        return ()
    window, now = decision.routing.window, decision.at
    if window is Window.NO_COVER:
        return (_doubt("pagerduty", decision.routing.notice_at or now, root, common),)
    vias = (
        *(("slack",) if window in _REVIEW_WINDOWS else ()),
        *(("pagerduty",) if window in _ON_CALL_WINDOWS else ()),
    )
    return tuple(_doubt(via, now, root, common) for via in vias)


def _doubt(via: str, due: datetime, root: str, common: dict[str, Any]) -> PlannedAction:
    """One notice; its key never equals a page's (the root) or an alarm's ("alarm:<root>")."""
    key = f"doubt:{root}" if via == "pagerduty" else f"doubt-alarm:{root}"
    return PlannedAction(DOUBT_KIND, due, key, {**common, "via": via})


def _common_payload(
    decision: Decision, addressed: Addressed, mail_id: int | None
) -> dict[str, Any]:
    unverified = decision.sender is not None and not decision.sender.verified
    return {
        **({"notes": [UNVERIFIED_NOTE]} if unverified else {}),
        "mail_id": mail_id,
        "thread": addressed.root,
        "message_id": addressed.message_id,
        "subject": addressed.subject,
        "from_addr": addressed.from_addr,
        "verdict": decision.verdict.value,
        "reasons": [reason.value for reason in decision.triage.reasons],
        "slack_channel": decision.triage.slack_target,
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
    if decision.triage.slack_target:
        planned.append(PlannedAction("ack", now, f"ack:{root}", common))
    return tuple(planned)


def _reply_action(
    now: datetime, root: str, common: dict[str, Any], to: str, refusal: str | None
) -> PlannedAction:
    payload = {**common, "to": to}
    key = f"reply:{common['message_id'] or root}"
    if refusal is None:
        return PlannedAction("reply", now, key, payload)
    return PlannedAction("reply", now, key, payload, state="skipped", note=refusal)


def reply_refusal(
    decision: Decision,
    mail: ParsedMail,
    mail_from: str,
    *,
    trusted: bool = False,
    to: str | None = None,
) -> str | None:
    """Why RFC 3834 forbids an automatic answer to this mail, or None when a reply is fine.
    `trusted`: the mail came through the deployment's own group, answered at `to`."""
    return _refusal(decision.triage.reasons, mail, mail_from, trusted=trusted, to=to)


def _refusal(
    reasons: tuple[Reason, ...],
    mail: ParsedMail,
    mail_from: str,
    *,
    trusted: bool = False,
    to: str | None = None,
) -> str | None:
    sender = _bare(mail_from)
    if not sender:
        return NULL_SENDER_REFUSAL
    if Reason.AUTOMATED_MESSAGE in reasons:
        return "not answered: automated message (RFC 3834)"
    if trusted:
        return _group_refusal(mail, to or "")
    if _is_daemon(sender):
        return f"not answered: {sender.partition('@')[0]} is an automated mailbox (RFC 3834)"
    listed = next((name for name, _ in mail.headers if name.startswith("list-")), None)
    if listed:
        return f"not answered: mailing-list mail ({listed}) (RFC 3834)"
    return _precedence_refusal(mail, _BULK_PRECEDENCE)


def _group_refusal(mail: ParsedMail, to: str) -> str | None:
    """Through our own group: answer the person, never the group itself or a daemon."""
    if not to:
        return "not answered: no sender address behind the mail group"
    if to in _list_addresses(mail):
        return f"not answered: the reply would go back to the mail group {to}"
    if _is_daemon(to):
        return f"not answered: {to.partition('@')[0]} is an automated mailbox (RFC 3834)"
    return _precedence_refusal(mail, _BULK_PRECEDENCE - _GROUP_PRECEDENCE)


def _precedence_refusal(mail: ParsedMail, refused: frozenset[str]) -> str | None:
    precedence = (mail.header("precedence") or "").strip().lower()
    if precedence in refused:
        return f"not answered: Precedence {precedence} (RFC 3834)"
    return None


def _group_sender(mail: ParsedMail) -> str:
    """The person behind a group's mail: Reply-To (groups that rewrite From for DMARC put the
    author there), else From. The envelope sender is the group's bounce address."""
    reply_to = [addr for _, addr in getaddresses(list(mail.header_values("reply-to"))) if addr]
    return (reply_to[0] if reply_to else mail.from_addr).strip().lower()


def _list_addresses(mail: ParsedMail) -> set[str]:
    """The group's own addresses, from List-Post (<mailto:group@example.org>)."""
    posts = " ".join(mail.header_values("list-post"))
    return {addr.lower() for addr in _MAILTO.findall(posts)}


def _is_daemon(sender: str) -> bool:
    local = sender.partition("@")[0].lower()
    return local in _DAEMON_LOCALS or local.startswith("owner-") or local.endswith("-request")


def _bare(mail_from: str) -> str:
    return mail_from.strip().removeprefix("<").removesuffix(">").strip()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
