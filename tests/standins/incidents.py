"""Sample incidents (the renderers' input) for the adapter and renderer tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from escalator.core.render import Envelope, Incident

AT = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)

_BASE = Incident(
    mail_id=7,
    received_at=AT,
    sender="ana@example.gov.uk",
    sender_name="Ana Analyst",
    subject="LAA apply is down",
    message_id="root-1@example.gov.uk",
    references=(),
    facts="Since 20:40 every user gets a 502 on submit.",
    verdict="escalate",
    reasons=(),
    slack_channel="laa-apply-incident",
    window="on_call",
    page="now",
    page_at=None,
    alarm=False,
    dedup_key="root-1@example.gov.uk",
)


def incident(**changes: object) -> Incident:
    """An on-call escalation from Ana, with any field changed."""
    return replace(_BASE, **changes)  # type: ignore[arg-type]


def envelope() -> Envelope:
    return Envelope("escalations@localhost", "<r1@escalator.localhost>", AT, "http://x/mails/7")
