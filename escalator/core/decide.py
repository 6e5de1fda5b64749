"""From mail bytes and an instant to a Decision: parse, triage, check the sender, route.

Never raises. The sender check (core/authenticity.py) runs unless ESCALATOR_SENDER_POLICY is off;
then the allowlist judges the verified identity instead of the header From as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from escalator.core.authenticity import MethodResult, TrustPolicy, apply_sender, check_sender
from escalator.core.cover import CoverCalendar
from escalator.core.mail import ParsedMail, parse_mail
from escalator.core.model import (
    Decision,
    Evidence,
    Page,
    Reason,
    Routing,
    SenderPolicy,
    Triage,
    Verdict,
    Window,
)
from escalator.core.triage import TriagePolicy, triage


@dataclass(frozen=True)
class Policy:
    """Everything a decision depends on besides the mail and the instant."""

    triage: TriagePolicy
    calendar: CoverCalendar
    trust: TrustPolicy = field(default_factory=TrustPolicy)


_ROUTES: dict[Window, tuple[Page, bool]] = {
    Window.SUPPORT: (Page.NONE, True),
    Window.SUPPORT_AND_ON_CALL: (Page.NOW, True),
    Window.ON_CALL: (Page.NOW, False),
    Window.NO_COVER: (Page.DEFERRED, True),
}


def route(verdict: Verdict, calendar: CoverCalendar, at: datetime) -> Routing:
    """The contract's routing table: escalations by window; rejects are never paged or alarmed."""
    window = calendar.window_at(at)
    if verdict is Verdict.REJECT:
        later = calendar.next_on_call_start(at) if window is Window.NO_COVER else None
        return Routing(window, Page.NONE, None, False, notice_at=later)
    page, alarm = _ROUTES[window]
    page_at = calendar.next_on_call_start(at) if page is Page.DEFERRED else None
    return Routing(window, page, page_at, alarm)


def decide_parsed(
    mail: ParsedMail,
    at: datetime,
    policy: Policy,
    envelope_from: str | None = None,
    extra_auth: tuple[MethodResult, ...] = (),
) -> Decision:
    """`extra_auth`: results of the shell's own checks (direct DKIM), beside the border's."""
    checking = policy.trust.mode is not SenderPolicy.OFF
    sender = check_sender(mail, policy.trust, extra_auth) if checking else None
    unlisted = replace(policy.triage, allowed_senders=()) if checking else policy.triage
    result = triage(mail, unlisted, envelope_from)
    if sender is not None:
        result = apply_sender(result, sender, policy.trust.mode, policy.triage.allowed_senders)
    if not mail.is_mail:
        # Not recognisably a mail: still recorded and held for a person, never silently dropped.
        result = Triage(
            Verdict.REJECT,
            tuple(sorted({*result.reasons, Reason.MISSING_INCIDENT_FACTS}, key=_rank)),
            result.slack_channel,
            (
                Evidence("not_a_mail", "no mail headers", "mail", Reason.MISSING_INCIDENT_FACTS),
                *result.evidence,
            ),
            slack_id=result.slack_id,
        )
    return Decision(result, route(result.verdict, policy.calendar, at), at, sender)


def decide(raw: bytes, at: datetime, policy: Policy, envelope_from: str | None = None) -> Decision:
    """Decide one mail at an instant. `envelope_from` is the SMTP MAIL FROM when known."""
    return decide_parsed(parse_mail(raw), at, policy, envelope_from)


def _rank(reason: Reason) -> int:
    return list(Reason).index(reason)
