"""Shared by the review tests (test_review, test_web, test_web_browser): mails, instants, seeding.

Mails enter the store the way the service stores them (Store.accept) and are decided by the real
decide worker (Processor.burst), so every held mail is a genuine reject with genuine evidence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP

from escalator.core.policy import Policy
from escalator.decider.processor import Processor
from escalator.ingress.smtp import header_summary
from escalator.store import IncomingMail, Store

# Saturday 21 Nov 2026 12:00 London: "on_call", so a released mail pages at once.
ON_CALL = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
# Friday 20 Nov 2026 12:00 London: "support", so a released mail alarms support, no page.
SUPPORT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

PR_CHASER = ("any update on my PR?", "Hi, any update on my PR? https://github.com/x/y/pull/1")


def mail_bytes(
    subject: str = PR_CHASER[0],
    body: str = PR_CHASER[1],
    *,
    sender: str = "Dev Person <dev@justice.gov.uk>",
    message_id: str = "<pr1@justice.gov.uk>",
    html: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "escalations@localhost"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes(policy=SMTP)  # CRLF, as it arrives over SMTP


async def seed(
    store: Store,
    policy: Policy,
    raw: bytes,
    *,
    mail_from: str = "dev@justice.gov.uk",
    received_at: datetime = ON_CALL,
) -> int:
    """Store one mail as the SMTP ingress does and let the real decide worker decide it."""
    message_id, subject, from_addr = header_summary(raw)
    incoming = IncomingMail(
        raw,
        mail_from,
        ("escalations@localhost",),
        "127.0.0.1",
        False,
        received_at,
        message_id,
        subject,
        from_addr,
    )
    accepted = await store.accept(incoming)
    processor = Processor(store, policy)
    try:
        await processor.burst()
    finally:
        processor.close()
    return accepted.mail_id
