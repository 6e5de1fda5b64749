"""PagerDuty's side of webhooks v3, as documented (PagerDuty/developer-docs, docs/webhooks/
01-Overview.md "Webhook Payload" and "Event Data Types", 04-Signatures.md).

`IncidentBook` plays the PagerDuty account: one incident per dedup key (incident_key) with an
id like "PGR0VU2", and builds event bodies shaped like the documented examples: an `event`
with id, event_type, resource_type, occurred_at, agent (a user_reference), client and data (an
`incident` object; an `incident_note` for incident.annotated, which names the incident only by
reference). `signature(body, *secrets)` is the X-PagerDuty-Signature header: one `v1=` HMAC-SHA256
hex per secret, comma-separated (several during a rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import Any

INCIDENT_EVENTS = {
    "incident.triggered": "triggered",
    "incident.acknowledged": "acknowledged",
    "incident.resolved": "resolved",
    "incident.reassigned": "acknowledged",
    "incident.escalated": "triggered",
}


def signature(body: bytes, *secrets: str) -> str:
    return ",".join(
        "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() for secret in secrets
    )


def user(name: str, user_id: str = "PLH1HKV") -> dict[str, Any]:
    return {
        "html_url": f"https://acme.pagerduty.com/users/{user_id}",
        "id": user_id,
        "self": f"https://api.pagerduty.com/users/{user_id}",
        "summary": name,
        "type": "user_reference",
    }


class IncidentBook:
    """Incidents by dedup key, and event bodies about them."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def incident_id(self, dedup_key: str) -> str:
        return self.ids.setdefault(dedup_key, f"P{uuid.uuid4().hex[:6].upper()}")

    def incident(self, dedup_key: str, status: str, assignee: str) -> dict[str, Any]:
        incident_id = self.incident_id(dedup_key)
        return {
            "id": incident_id,
            "type": "incident",
            "self": f"https://api.pagerduty.com/incidents/{incident_id}",
            "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
            "number": 2,
            "status": status,
            "incident_key": dedup_key,
            "created_at": "2020-04-09T15:16:27Z",
            "title": "escalation",
            "service": {
                "html_url": "https://acme.pagerduty.com/services/PF9KMXH",
                "id": "PF9KMXH",
                "self": "https://api.pagerduty.com/services/PF9KMXH",
                "summary": "Cloud Platform escalations",
                "type": "service_reference",
            },
            "assignees": [user(assignee, "PTUXL6G")],
            "escalation_policy": {
                "html_url": "https://acme.pagerduty.com/escalation_policies/PUS0KTE",
                "id": "PUS0KTE",
                "self": "https://api.pagerduty.com/escalation_policies/PUS0KTE",
                "summary": "Default",
                "type": "escalation_policy_reference",
            },
            "teams": [],
            "priority": None,
            "urgency": "high",
            "conference_bridge": None,
            "resolve_reason": None,
        }

    def event(
        self,
        event_type: str,
        dedup_key: str,
        at: datetime,
        *,
        agent: str = "Priya Oncall",
        assignee: str = "Priya Oncall",
        note: str = "",
        event_id: str | None = None,
    ) -> bytes:
        """One webhook body (bytes, as sent) for `event_type` about `dedup_key`'s incident."""
        if event_type == "incident.annotated":
            data = self._note(dedup_key, note)
        else:
            data = self.incident(dedup_key, INCIDENT_EVENTS[event_type], assignee)
        event = {
            "id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "agent": user(agent),
            "client": {"name": "PagerDuty"},
            "data": data,
        }
        return json.dumps({"event": event}).encode()

    def _note(self, dedup_key: str, content: str) -> dict[str, Any]:
        incident_id = self.incident_id(dedup_key)
        return {
            "incident": {
                "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
                "id": incident_id,
                "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                "summary": "escalation",
                "type": "incident_reference",
            },
            "id": "P2LA89X",
            "content": content,
            "trimmed": False,
            "type": "incident_note",
        }
