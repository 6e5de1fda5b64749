"""From mail bytes and an instant to a Decision: parse, triage, check the sender, route.

Never raises. The sender check (core/authenticity.py) runs unless ESCALATOR_SENDER_POLICY is off;
then the allowlist judges the verified identity instead of the header From as written.
The Policy it decides with and the routing table are core/policy.py's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from escalator.core.authenticity import MethodResult, apply_sender, check_sender
from escalator.core.mail import ParsedMail, parse_mail
from escalator.core.model import (
    Decision,
    Evidence,
    Reason,
    SenderPolicy,
    Triage,
    Verdict,
    ordered_reasons,
)
from escalator.core.policy import Policy, route
from escalator.core.triage import triage


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
            ordered_reasons((*result.reasons, Reason.MISSING_INCIDENT_FACTS)),
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
