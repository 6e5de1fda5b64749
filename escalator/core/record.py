"""The stored decision of one mail, typed, and its one JSON form. Pure.

The decision JSON is written once by the decide worker (or a release) and read by the outbox,
the review and the probe. It has grown five shapes, all of them kept readable:

- normal:   the decision contract (`Decision.to_contract()`);
- merged:   the contract + "merged_with": ids of earlier held mails it was decided together with;
- probe:    the contract (+ "merged_with") + "probe": true: actions recorded as skipped;
- failed:   {"verdict": "reject", "reasons": [], "error": "decision failed: ..."};
- released: the release's contract + "released": {"by", "at", "note", "original"}, where
  "original" is the machine's decision before it (any of the shapes above, or null).

`DecisionRecord.to_json` writes exactly what today's code writes (same keys, same order, same
bytes under `json.dumps`); `from_json` reads every shape back. Nothing else builds or reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from escalator.core.model import Decision, SenderCheck, Verdict

_EXTRAS = ("merged_with", "probe", "released", "error")


@dataclass(frozen=True)
class Released:
    """Who released a held mail ("page anyway"), when, why, and what the machine had decided."""

    by: str
    at: str
    note: str | None
    original: DecisionRecord | None

    def to_json(self) -> dict[str, Any]:
        original = None if self.original is None else self.original.to_dict()
        return {"by": self.by, "at": self.at, "note": self.note, "original": original}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Released:
        original = data.get("original")
        return cls(
            by=str(data.get("by") or ""),
            at=str(data.get("at") or ""),
            note=None if data.get("note") is None else str(data.get("note")),
            original=DecisionRecord.from_dict(original) if isinstance(original, Mapping) else None,
        )


@dataclass(frozen=True)
class DecisionRecord:
    """One mail's decision as stored: the contract and what happened to it since.

    `decided_at` and `review` are columns of their own, not part of the JSON."""

    decision: Mapping[str, Any]
    decided_at: datetime | None = None
    review: str | None = None
    merged_with: tuple[int, ...] = ()
    probe: bool = False
    released: Released | None = None
    error: str | None = None

    # -- building --------------------------------------------------------------------------

    @classmethod
    def decided(cls, decision: Decision, decided_at: datetime) -> DecisionRecord:
        """Rejected mails are held for a person to review; escalations need no review."""
        held = "held" if decision.verdict is Verdict.REJECT else None
        return cls(decision.to_contract(), decided_at, held)

    @classmethod
    def failed(cls, error: BaseException, decided_at: datetime) -> DecisionRecord:
        """The core promises never to raise; if it ever does, a person sees the mail."""
        contract = {"verdict": "reject", "reasons": []}
        return cls(contract, decided_at, "held", error=f"decision failed: {error!r}")

    def as_probe(self) -> DecisionRecord:
        return replace(self, probe=True, review=None)

    def releasing(
        self, release: DecisionRecord, by: str, at: datetime, note: str | None
    ) -> DecisionRecord:
        """`release` (an escalation decided at release time) with this record kept inside it:
        the machine's decision stays readable, and so does the conversation it was part of."""
        released = Released(by, at.isoformat(), note, self)
        return replace(release, review=None, released=released)

    # -- the one JSON form -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.decision)
        if self.merged_with:
            data["merged_with"] = list(self.merged_with)
        if self.probe:
            data["probe"] = True
        if self.released is not None:
            data["released"] = self.released.to_json()
        if self.error is not None:
            data["error"] = self.error
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        decided_at: datetime | None = None,
        review: str | None = None,
    ) -> DecisionRecord:
        released = data.get("released")
        return cls(
            decision={key: value for key, value in data.items() if key not in _EXTRAS},
            decided_at=decided_at,
            review=review,
            merged_with=_ids(data.get("merged_with")),
            probe=data.get("probe") is True,
            released=Released.from_json(released) if isinstance(released, Mapping) else None,
            error=None if data.get("error") is None else str(data.get("error")),
        )

    @classmethod
    def from_json(
        cls, text: str | bytes, decided_at: datetime | None = None, review: str | None = None
    ) -> DecisionRecord:
        data = json.loads(text)
        return cls.from_dict(data if isinstance(data, Mapping) else {}, decided_at, review)

    # -- typed reads -----------------------------------------------------------------------

    @property
    def verdict(self) -> str:
        return str(self.decision.get("verdict") or "reject")

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(str(reason) for reason in self.decision.get("reasons") or ())

    @property
    def slack_channel(self) -> str | None:
        """The channel to post to: a bare Slack ID as Slack knows it ("slack_channel_id", upper
        case), else the contract's channel."""
        channel = self.decision.get("slack_channel_id") or self.decision.get("slack_channel")
        return None if channel is None else str(channel)

    @property
    def contract_channel(self) -> tuple[str | None, str | None]:
        """The contract's channel and, for a bare Slack ID, the ID as Slack knows it."""
        found = (self.decision.get("slack_channel"), self.decision.get("slack_channel_id"))
        channel, slack_id = (None if item is None else str(item) for item in found)
        return channel, slack_id

    @property
    def window(self) -> str:
        return str(self.decision.get("window") or "unknown")

    @property
    def page(self) -> str:
        return str(self.decision.get("page", "none"))

    @property
    def page_at(self) -> datetime | None:
        value = self.decision.get("page_at")
        return datetime.fromisoformat(value) if value else None

    @property
    def alarm(self) -> bool:
        return bool(self.decision.get("alarm"))

    @property
    def evidence(self) -> tuple[Mapping[str, Any], ...]:
        items = self.decision.get("evidence") or ()
        return tuple(item for item in items if isinstance(item, Mapping))

    @property
    def confidence(self) -> str:
        """ "high" or "low" (issue 15); a decision stored before confidence existed is "high"."""
        return "low" if self.decision.get("confidence") == "low" else "high"

    @property
    def doubts(self) -> tuple[Mapping[str, Any], ...]:
        """The evidence that made the confidence low; empty when it is high."""
        items = self.decision.get("doubts") or ()
        return tuple(item for item in items if isinstance(item, Mapping))

    @property
    def sender_check(self) -> SenderCheck | None:
        """What the sender check found (issue 16), or None when the sender was not checked."""
        found = self.decision.get("sender")
        if not isinstance(found, Mapping):
            return None
        address, how = str(found.get("address") or ""), str(found.get("how") or "")
        return SenderCheck(found.get("verified") is True, address, how)

    @property
    def machine(self) -> DecisionRecord:
        """What the machine decided: the original of a released mail, else this record."""
        if self.released is not None and self.released.original is not None:
            return self.released.original
        return self

    @property
    def conversation(self) -> tuple[int, ...]:
        """The earlier mails this one was decided together with (kept across a release)."""
        return self.merged_with or self.machine.merged_with

    @property
    def joined(self) -> Mapping[str, Any] | None:
        """Same outage, another reporter (issue 11): {"mail_id", "why"} of the open incident
        this escalation joined, or None."""
        found = self.decision.get("joined")
        return found if isinstance(found, Mapping) else None

    @property
    def update(self) -> Mapping[str, Any] | None:
        """A follow-up on an escalated thread (issue 13.5): {"mail_id", "why"} of the open
        escalation it updated (a thread reply and a PagerDuty log entry, no reply), or None."""
        found = self.decision.get("update")
        return found if isinstance(found, Mapping) else None

    @property
    def joined_mail_id(self) -> int | None:
        """The first mail of the open incident this one joined, by any rule (an update in its
        thread, the same outage from another sender, a storm of its own sender), or None."""
        storm = self.decision.get("storm")
        joined = (self.update or {}).get("mail_id"), (self.joined or {}).get("mail_id")
        for found in (*joined, (storm or {}).get("joined")):
            if isinstance(found, int) and not isinstance(found, bool):
                return found
        return None

    @property
    def completes(self) -> tuple[int, ...]:
        """The held mails an escalated follow-up completed: they leave the review queue."""
        return self.merged_with if self.verdict == "escalate" else ()


def _ids(value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, list | tuple) else ()
    return tuple(int(i) for i in items if isinstance(i, int) and not isinstance(i, bool))
