"""What the renderers are given for one action: the incident (the stored decision and facts,
typed), the reply template and envelope, the review page's link. Read, never parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from escalator.core import render
from escalator.core.facts import MailFacts
from escalator.core.record import DecisionRecord
from escalator.outbox.relay import load_template
from escalator.policy import load_calendar
from escalator.settings import Settings
from escalator.store import ActionRow, MailRow

NO_FACTS = MailFacts()  # a mail whose text is gone (retention) or was never readable
NO_DECISION = DecisionRecord({})
TEMPLATES = {"escalate": "reply_escalated.txt.j2", "reject": "reply_rejected.txt.j2"}


class Frames:
    """Builds what renderers need from settings, the clock and one stored mail."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._zone = ZoneInfo(settings.timezone)
        self._calendar = load_calendar(settings)
        self._templates = {verdict: load_template(name) for verdict, name in TEMPLATES.items()}

    def incident(self, mail: MailRow, action: ActionRow) -> render.Incident:
        """The incident as renderers read it: the stored decision and facts, typed."""
        decision, facts = mail.decision or NO_DECISION, mail.facts or NO_FACTS
        page_at = decision.page_at
        earlier, update = conversation(mail)
        return render.Incident(
            mail_id=mail.id,
            received_at=mail.received_at.astimezone(self._zone),
            sender=facts.from_addr or mail.from_addr,
            sender_name=facts.from_name,
            subject=facts.subject or mail.subject,
            message_id=facts.message_id,
            references=facts.references,
            facts=earlier,
            update=update,
            thread=self.thread(mail) if update else (),
            verdict=mail.verdict or "reject",
            reasons=mail.reasons,
            slack_channel=mail.slack_channel,
            window=mail.window or "unknown",
            # a page planned later (issue 11: an unanswered alarm) says so in its payload
            page=str(action.payload.get("page") or decision.page),
            page_at=page_at.astimezone(self._zone) if page_at else None,
            alarm=decision.alarm,
            dedup_key=render.bounded_dedup_key(action.dedup_key),
            notes=tuple(str(note) for note in action.payload.get("notes", ())),
            evidence=tuple(dict(item) for item in decision.evidence),
            doubts=tuple(dict(item) for item in decision.doubts),
            support_from=self._calendar.next_support_start(mail.received_at),
            status_page_url=self._settings.status_page_url,
            zone=self._zone,
        )

    def thread(self, mail: MailRow) -> tuple[tuple[str, str], ...]:
        """Every mail of the conversation, oldest first, each with its page."""
        ids = [*sorted((mail.decision or NO_DECISION).conversation), mail.id]
        labels = ["first mail"] + ["update"] * (len(ids) - 1)
        pairs = zip(ids, labels, strict=True)
        return tuple((f"Mail #{i} ({label})", self.review_url(i)) for i, label in pairs)

    def template(self, incident: render.Incident) -> str:
        return self._templates["escalate" if incident.verdict == "escalate" else "reject"]

    def envelope(self, action: ActionRow) -> render.Envelope:
        """A Message-ID fixed per action, so a reply re-sent after a crash is recognisably one."""
        return render.Envelope(
            reply_from=self._settings.reply_from,
            message_id=f"<reply-{action.id}.{action.mail_id}@{self._settings.smtp_hostname}>",
            date=self._clock(),
            review_url=f"{self._settings.public_url.rstrip('/')}/mails/{action.mail_id}",
        )

    def review_url(self, mail_id: int) -> str:
        return f"{self._settings.public_url.rstrip('/')}/mails/{mail_id}"


def conversation(mail: MailRow) -> tuple[str, str]:
    """(the facts, the follow-up's own update): a follow-up decided together with earlier mails
    shows their words first (the root's facts), then its own as an update (issue 13)."""
    decision, facts = mail.decision or NO_DECISION, mail.facts or NO_FACTS
    if not decision.conversation or facts.conversation is None:
        return facts.facts, ""
    return render.split_conversation(facts.conversation, facts.body.new)
