"""PagerDuty webhooks (v3): the signature check and the events escalator follows. Pure.

A delivery is believed only when one of the `v1=` signatures in X-PagerDuty-Signature is the
HMAC-SHA256 (hex) of the RAW body under one of our secrets (several during a rotation, on both
sides), compared in constant time; nothing of the body is read before that. Then the body is
parsed into a `WebhookEvent`: the event id (deliveries repeat: at least once), its type, when it
occurred, who did it, and which incident (id, and the incident_key = our dedup key, when the
data is an incident; an incident_note carries only the incident's id).

`fold` applies one event to an incident's state. Events may arrive out of order (a resolve
before its acknowledge): the status follows the event that OCCURRED last, an older event only
fills what is still unknown (who acknowledged), and says it changed nothing visible. An event
that brings a status the state already has, from about when it took it (SAME_CHANGE), is the
same change told twice (a poll of the REST API, then the webhook that was late): not relayed.

`polled_event` reads an incident as the REST API returns it (GET /incidents/{id}, issue 11: when
webhooks stop coming) into the event a webhook would have brought about its current status, so
it is recorded by the same path and relayed once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

FOLLOWED = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.resolved",
    "incident.reopened",
    "incident.reassigned",
    "incident.escalated",
    "incident.delegated",
    "incident.annotated",
)
STATUS_OF = {
    "incident.triggered": "triggered",
    "incident.acknowledged": "acknowledged",
    "incident.unacknowledged": "triggered",
    "incident.resolved": "resolved",
    "incident.reopened": "triggered",
}
RELAYED = frozenset(
    {
        "incident.acknowledged",
        "incident.resolved",
        "incident.reassigned",
        "incident.escalated",
        "incident.annotated",
    }
)
TEXT_MAX = 300
SAME_CHANGE = timedelta(seconds=60)  # one status change as a poll and as a late webhook saw it
POLLED_AS = {  # an incident's status, as the event that would have brought it
    "triggered": "incident.unacknowledged",
    "acknowledged": "incident.acknowledged",
    "resolved": "incident.resolved",
}


@dataclass(frozen=True)
class WebhookEvent:
    """One v3 event, reduced to what escalator follows (strings as PagerDuty sent them)."""

    event_id: str
    event_type: str
    occurred_at: datetime
    agent: str | None
    incident_id: str | None
    incident_key: str | None
    status: str | None
    html_url: str | None
    assignees: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class BadEvent:
    """Why a (correctly signed) body is not an event escalator can read."""

    reason: str


@dataclass(frozen=True)
class IncidentState:
    """What escalator knows of one incident it opened (times are the events' occurred_at)."""

    incident_id: str | None
    status: str
    status_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    assignees: tuple[str, ...] = ()
    html_url: str | None = None


def signatures(header: str | None) -> list[str]:
    """The v1 signatures of an X-PagerDuty-Signature header (comma-separated, `v1=` hex)."""
    found = []
    for part in (header or "").split(","):
        version, _, value = part.strip().partition("=")
        if version == "v1" and value:
            found.append(value.strip().lower())
    return found


def signed_by(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when one signature is the HMAC-SHA256 of `body` under one of `secrets`."""
    offered = signatures(header)
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        for signature in offered:  # no early exit: every pair is compared
            matched |= hmac.compare_digest(expected, signature)
    return matched and bool(secrets)


def sign(body: bytes, secret: str) -> str:
    """The header value PagerDuty would send for `body` under `secret` (tests, stand-ins)."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_event(body: bytes) -> WebhookEvent | BadEvent:
    """A v3 webhook body as a WebhookEvent, or why not."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return BadEvent("body is not JSON")
    event = document.get("event") if isinstance(document, dict) else None
    if not isinstance(event, dict):
        return BadEvent("no event object")
    return _event(event)


def _event(event: dict[str, Any]) -> WebhookEvent | BadEvent:
    event_id, kind = _text(event.get("id")), _text(event.get("event_type"))
    occurred = _when(event.get("occurred_at"))
    if not event_id or not kind or occurred is None:
        return BadEvent("event id, event_type or occurred_at missing")
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    incident = data.get("incident") if data.get("type") == "incident_note" else data
    incident = incident if isinstance(incident, dict) else {}
    return WebhookEvent(
        event_id=event_id[:200],
        event_type=kind[:100],
        occurred_at=occurred,
        agent=_summary(event.get("agent")),
        incident_id=_text(incident.get("id")),
        incident_key=_text(data.get("incident_key")),
        status=_text(data.get("status")),
        html_url=_text(incident.get("html_url")),
        assignees=_assignees(data.get("assignees")),
        note=_text(data.get("content")) if data.get("type") == "incident_note" else None,
    )


def _assignees(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(name for name in (_summary(item) for item in value) if name)


def _summary(reference: Any) -> str | None:
    return _text(reference.get("summary")) if isinstance(reference, dict) else None


def _text(value: Any) -> str | None:
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = " ".join(str(value).split())
    return text[:TEXT_MAX] or None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# -- the state of one incident ------------------------------------------------------------------


@dataclass(frozen=True)
class Folded:
    """The state after an event, and whether people should hear about this event."""

    state: IncidentState
    relay: bool
    stale: bool


def fold(state: IncidentState | None, event: WebhookEvent) -> Folded:
    """Apply `event` to `state` (None: nothing known yet, as the page was just sent)."""
    base = state or IncidentState(event.incident_id, "triggered", event.occurred_at)
    base = replace(base, incident_id=base.incident_id or event.incident_id)
    base = replace(base, html_url=base.html_url or event.html_url)
    stale = event.occurred_at < base.status_at and state is not None
    new = _with_facts(base, event)
    status = STATUS_OF.get(event.event_type)
    told = state is not None and status == state.status and not _later(event, state)
    if status is not None and not stale and not told:
        new = replace(new, status=status, status_at=event.occurred_at)
    relay = event.event_type in RELAYED and not ((stale or told) and status is not None)
    return Folded(new, relay, stale)


def _later(event: WebhookEvent, state: IncidentState) -> bool:
    """The event's change came after the one the state holds (not the same one told again)."""
    return event.occurred_at > state.status_at + SAME_CHANGE


# -- an incident read from the REST API ----------------------------------------------------------


def polled_event(
    incident: Mapping[str, Any], incident_key: str, known: IncidentState | None, now: datetime
) -> WebhookEvent | None:
    """The event a webhook would have brought about `incident`'s current status (REST API
    shape), or None when it says nothing new (`known` has that status) or cannot be read. Its
    id is made of the incident, the status and when it took it: polled twice (two replicas,
    two ticks), the change is recorded once."""
    status, incident_id = _text(incident.get("status")), _text(incident.get("id"))
    kind = POLLED_AS.get(status or "")
    if kind is None or incident_id is None:
        return None
    if (known.status if known is not None else "triggered") == status:
        return None  # nothing new: a page's incident starts out triggered
    occurred = _status_time(incident, status or "") or now
    return WebhookEvent(
        event_id=f"poll:{incident_id}:{status}:{occurred.isoformat()}"[:200],
        event_type=kind,
        occurred_at=occurred,
        agent=_status_agent(incident, status or ""),
        incident_id=incident_id,
        incident_key=incident_key,
        status=status,
        html_url=_text(incident.get("html_url")),
        assignees=_assignees([item.get("assignee") for item in _items(incident, "assignments")]),
    )


def _status_time(incident: Mapping[str, Any], status: str) -> datetime | None:
    """When the incident took its status: the last acknowledgement, the resolve, or the last
    status change (the REST API's names)."""
    acks = _items(incident, "acknowledgements")
    if status == "acknowledged" and acks:
        return _when(acks[-1].get("at")) or _when(incident.get("last_status_change_at"))
    if status == "resolved":
        return _when(incident.get("resolved_at")) or _when(incident.get("last_status_change_at"))
    return _when(incident.get("last_status_change_at"))


def _status_agent(incident: Mapping[str, Any], status: str) -> str | None:
    acks = _items(incident, "acknowledgements")
    if status == "acknowledged" and acks and _summary(acks[-1].get("acknowledger")):
        return _summary(acks[-1].get("acknowledger"))
    return _summary(incident.get("last_status_change_by"))


def _items(incident: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    value = incident.get(name)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _with_facts(state: IncidentState, event: WebhookEvent) -> IncidentState:
    """Who acknowledged, when it resolved, who holds it: kept even from a late event."""
    kind = event.event_type
    if kind == "incident.acknowledged" and state.acknowledged_at is None:
        state = replace(state, acknowledged_by=event.agent, acknowledged_at=event.occurred_at)
    if kind == "incident.resolved" and state.resolved_at is None:
        state = replace(state, resolved_at=event.occurred_at)
    if event.assignees and event.occurred_at >= state.status_at:
        state = replace(state, assignees=event.assignees)
    return state
