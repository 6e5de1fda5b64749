"""The values that cross the core's boundary: a triage, a routing, a decision."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    ESCALATE = "escalate"
    REJECT = "reject"


class Reason(StrEnum):
    """Reject reasons, declared in precedence order (most important first)."""

    AUTOMATED_MESSAGE = "automated_message"
    SENDER_NOT_ALLOWED = "sender_not_allowed"
    NOT_SERVICE_IMPACTING = "not_service_impacting"
    MISSING_SLACK_CHANNEL = "missing_slack_channel"
    MISSING_INCIDENT_FACTS = "missing_incident_facts"


REASON_ORDER: tuple[Reason, ...] = tuple(Reason)


def ordered_reasons(reasons: Iterable[Reason]) -> tuple[Reason, ...]:
    """The reasons in precedence order, but a mail that states no facts is told that first: the
    channel reason is for an incident with facts (a "please call me" without either is first of
    all no incident report)."""
    found = tuple(reason for reason in REASON_ORDER if reason in set(reasons))
    if Reason.MISSING_INCIDENT_FACTS not in found or Reason.MISSING_SLACK_CHANNEL not in found:
        return found
    facts, channel = Reason.MISSING_INCIDENT_FACTS, Reason.MISSING_SLACK_CHANNEL
    return tuple(facts if r is channel else channel if r is facts else r for r in found)


class Confidence(StrEnum):
    """How sure the verdict is. A low-confidence reject is still a reject, but it must not be
    held silently: the outbox raises a notice for it (decision contract, `confidence`)."""

    HIGH = "high"
    LOW = "low"


class Window(StrEnum):
    SUPPORT = "support"
    SUPPORT_AND_ON_CALL = "support_and_on_call"
    ON_CALL = "on_call"
    NO_COVER = "no_cover"


class Page(StrEnum):
    NOW = "now"
    DEFERRED = "deferred"
    NONE = "none"


class SenderPolicy(StrEnum):
    """ESCALATOR_SENDER_POLICY: how much an unverified From header counts."""

    OFF = "off"  # not checked; the allowlist reads the header From as it stands
    ANNOTATE = "annotate"  # checked; an unverified sender is marked on every payload
    ENFORCE = "enforce"  # checked; an unverified sender is held for review, never paged


@dataclass(frozen=True)
class SenderCheck:
    """Whether the From address is vouched for by the border MTA, and the words that say so."""

    verified: bool
    address: str
    how: str

    def to_json(self) -> dict[str, Any]:
        return {"verified": self.verified, "address": self.address, "how": self.how}


@dataclass(frozen=True)
class Evidence:
    """One observation behind a decision: which rule, on which words, in which part."""

    rule: str
    matched: str
    where: str
    reason: Reason | None = None
    clause: str = ""  # the sentence or clause the words were read in, when the reader split it

    def to_json(self) -> dict[str, Any]:
        shown = {
            "rule": self.rule,
            "matched": self.matched,
            "where": self.where,
            "reason": None if self.reason is None else self.reason.value,
        }
        return {**shown, "clause": self.clause} if self.clause else shown


@dataclass(frozen=True)
class Triage:
    """What the mail is, independent of when it arrived."""

    verdict: Verdict
    reasons: tuple[Reason, ...]
    slack_channel: str | None
    evidence: tuple[Evidence, ...]
    confidence: Confidence = Confidence.HIGH
    doubts: tuple[Evidence, ...] = ()  # what made the confidence low; empty when high
    # The channel as Slack knows it, when the contract shows it otherwise: a Slack ID written
    # bare ("Slack: C07RJ4M2QTX") is lowercased in `slack_channel`, and posted to as written.
    slack_id: str | None = None

    @property
    def slack_target(self) -> str | None:
        """Where Slack posts go: the ID as Slack knows it, else the channel."""
        return self.slack_id or self.slack_channel

    @property
    def low_confidence_reject(self) -> bool:
        """A reject that may be an incident: the outbox raises a notice instead of holding it."""
        return self.verdict is Verdict.REJECT and self.confidence is Confidence.LOW

    @property
    def primary_reason(self) -> Reason | None:
        return self.reasons[0] if self.reasons else None


@dataclass(frozen=True)
class Routing:
    """What to do about an escalation at a given instant."""

    window: Window
    page: Page
    page_at: datetime | None
    alarm: bool
    # a reject out of cover: when a notice about it would reach on-call (the next on-call start,
    # 07:00); not part of the contract's JSON, only the outbox's due time (issue 15)
    notice_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """A triage routed at an instant: the product's decision contract."""

    triage: Triage
    routing: Routing
    at: datetime
    sender: SenderCheck | None = None  # None: ESCALATOR_SENDER_POLICY is off

    @property
    def verdict(self) -> Verdict:
        return self.triage.verdict

    @property
    def confidence(self) -> Confidence:
        return self.triage.confidence

    def to_contract(self) -> dict[str, Any]:
        """The JSON object of shared/spec/decision-contract.md, plus explanatory extras."""
        routing = self.routing
        sender = {} if self.sender is None else {"sender": self.sender.to_json()}
        return {
            "verdict": self.triage.verdict.value,
            "reasons": [reason.value for reason in self.triage.reasons],
            "slack_channel": self.triage.slack_channel,
            **({"slack_channel_id": self.triage.slack_id} if self.triage.slack_id else {}),
            "window": routing.window.value,
            "page": routing.page.value,
            "page_at": None if routing.page_at is None else routing.page_at.isoformat(),
            "alarm": routing.alarm,
            "confidence": self.triage.confidence.value,
            "doubts": [item.to_json() for item in self.triage.doubts],
            "at": self.at.isoformat(),
            "evidence": [item.to_json() for item in self.triage.evidence],
            **sender,
        }
