"""What people are told when on-call answers, or when nobody does (issue 11). Pure.

A notice is a short line posted as a Slack thread reply (under the reporter's ack in their
channel, and under the alarm post) and sent as a short mail to the reporter. Everything that came
from PagerDuty or from a mail is untrusted: Slack text is escaped, mail text has no control
characters, and times are the local wall clock with its zone name ("21:07 GMT", "09:15 BST").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from escalator.core.render import one_line, slack_escape, truncate_escaped
from escalator.core.webhooks import IncidentState, WebhookEvent

NOTE_MAX = 500
SUBJECT_MAX = 150
ONE_HOUR_REMINDER = (
    "It is an hour since on-call acknowledged this out-of-hours incident and it is still open. "
    "As the on-call process asks: inform the affected team, and put together a plan to resolve "
    "the issue during normal working hours."
)


def clock(moment: datetime, zone: ZoneInfo) -> str:
    """'21:07 GMT' (or BST) in the calendar's zone."""
    return moment.astimezone(zone).strftime("%H:%M %Z")


def event_line(event: WebhookEvent, zone: ZoneInfo) -> str | None:
    """The plain sentence for one relayed PagerDuty event, or None when there is none."""
    who, at = event.agent or "someone", clock(event.occurred_at, zone)
    kind = event.event_type
    if kind == "incident.acknowledged":
        return f"On-call acknowledged: acknowledged by {who} at {at}."
    if kind == "incident.resolved":
        return f"The incident was resolved by {who} at {at}."
    if kind in ("incident.reassigned", "incident.escalated"):
        to = ", ".join(event.assignees) or "the next responder"
        verb = "reassigned" if kind.endswith("reassigned") else "escalated"
        return f"The incident was {verb} to {to} at {at}."
    if kind == "incident.annotated" and event.note:
        return f"Note from {who} at {at}: {one_line(event.note, NOTE_MAX)}"
    return None


def slack_notice(line: str) -> dict[str, Any]:
    """A thread reply's text and blocks; the line is escaped (it may carry PagerDuty text)."""
    text = truncate_escaped(slack_escape(line), 2900)
    block = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    return {"text": text, "blocks": [block]}


def mail_notice(line: str, subject: str, mail_id: int, review_url: str) -> dict[str, str]:
    """The short mail to the reporter: subject and body as plain, single-line-safe values."""
    about = one_line(subject, SUBJECT_MAX) or f"your escalation (mail {mail_id})"
    body = (
        f'An update on your escalation "{about}":\n\n{one_line(line, NOTE_MAX + 100)}\n\n'
        "The on-call person will get back to you on Slack.\n"
        f"Escalation record: {review_url}\n"
    )
    return {"subject": f"Update: {about}", "body": body}


def plan_notice(common: Mapping[str, Any], line: str, review_url: str) -> dict[str, dict[str, Any]]:
    """The rendered Slack and mail notice for one line, as outbox payload parts."""
    mail_id = int(common.get("mail_id") or 0)
    return {
        "slack": slack_notice(line),
        "mail": mail_notice(line, str(common.get("subject") or ""), mail_id, review_url),
    }


def state_line(state: IncidentState, zone: ZoneInfo) -> str:
    """The incident's state in one line, as the mail's page and the handover show it."""
    parts = [f"PagerDuty: {state.status}"]
    if state.acknowledged_at is not None:
        who = state.acknowledged_by or "someone"
        parts.append(f"acknowledged by {who} at {clock(state.acknowledged_at, zone)}")
    if state.resolved_at is not None and state.status == "resolved":
        parts.append(f"resolved at {clock(state.resolved_at, zone)}")
    return "; ".join(parts)


def state_json(state: IncidentState | None) -> dict[str, Any] | None:
    """The incident's state for `list --json` (key "incident")."""
    if state is None:
        return None
    return {
        "status": state.status,
        "incident_id": state.incident_id,
        "acknowledged_by": state.acknowledged_by,
        "acknowledged_at": _iso(state.acknowledged_at),
        "resolved_at": _iso(state.resolved_at),
        "assignees": list(state.assignees),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
