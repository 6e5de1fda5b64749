"""A PagerDuty Events API v2 stand-in over HTTPS (trustme CA), strict about the documented API.

POST /v2/enqueue only. It checks what PagerDuty documents: JSON body, a known routing_key,
event_action in trigger/acknowledge/resolve, dedup_key <= 255 chars, and for a trigger a payload
with summary (1..1024), source (1..255), severity in critical/error/warning/info, an ISO-8601
timestamp, object custom_details, links/images as lists of objects with href. Valid events get
202 {"status": "success", ...}; invalid ones 400 {"status": "invalid event", "errors": [...]}.

Incidents model PagerDuty's deduplication: one incident per dedup_key while it is open.
Faults on cue: `script(...)` queues answers ("429", "500", "timeout", "reset"); `down` answers
503 to everything; `delay` makes each accepted event take that long (`inflight` counts requests
not answered yet); every received request is recorded, accepted or not.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from standins.https import serve_https

SEVERITIES = {"critical", "error", "warning", "info"}
ACTIONS = {"trigger", "acknowledge", "resolve"}


@dataclass
class Received:
    """One request as it reached the stand-in, with its verdict."""

    body: dict[str, Any]
    status: int
    errors: list[str] = field(default_factory=list)


def validate_event(body: Any, routing_key: str) -> list[str]:
    """Every way `body` breaks the Events API v2 contract (empty when it is valid)."""
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    errors = []
    if body.get("routing_key") != routing_key:
        errors.append("routing_key missing or unknown")
    action = body.get("event_action")
    if action not in ACTIONS:
        errors.append(f"event_action must be one of {sorted(ACTIONS)}")
    key = body.get("dedup_key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 255):
        errors.append("dedup_key must be a string of 1..255 chars")
    if action != "trigger":
        return errors + ([] if key else ["dedup_key is required unless triggering"])
    return errors + _payload_errors(body.get("payload")) + _link_errors(body)


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["payload is required for trigger"]
    errors = []
    for name, limit in (("summary", 1024), ("source", 255)):
        value = payload.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            errors.append(f"payload.{name} must be a string of 1..{limit} chars")
    if payload.get("severity") not in SEVERITIES:
        errors.append("payload.severity must be critical, error, warning or info")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            errors.append("payload.timestamp must be ISO 8601")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("payload.custom_details must be an object")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"payload.{name} must be a string")
    return errors


def _link_errors(body: dict[str, Any]) -> list[str]:
    errors = []
    for name in ("links", "images"):
        items = body.get(name, [])
        if not isinstance(items, list) or not all(
            isinstance(item, dict)
            and isinstance(item.get("href" if name == "links" else "src"), str)
            for item in items
        ):
            errors.append(f"{name} must be a list of objects with href/src")
    return errors


class PagerDutyStandIn:
    """Run with `async with PagerDutyStandIn(tmp_path) as pd:`; then use pd.url / pd.ca_file."""

    def __init__(self, folder: Path, routing_key: str = "R0UTINGKEY0123456789ABCDEFGHIJKL"):
        self.routing_key = routing_key
        self.received: list[Received] = []
        self.incidents: dict[str, list[dict[str, Any]]] = {}
        self.down = False
        self.delay = 0.0  # seconds each accepted event takes (pages in flight for a while)
        self.inflight = 0  # requests arrived and not yet answered
        self.arrived = 0
        self.hold = asyncio.Event()
        self.hold.set()
        self._release = asyncio.Event()
        self._script: deque[str] = deque()
        self._ca = trustme.CA()
        self.ca_file = folder / "pagerduty-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, *answers: str) -> None:
        """Queue fault answers for the next requests: "429", "500", "timeout", "reset"."""
        self._script.extend(answers)

    @property
    def triggered(self) -> list[str]:
        """dedup_keys of accepted triggers, in arrival order (repeats included)."""
        return [
            r.body["dedup_key"]
            for r in self.received
            if r.status == 202 and r.body.get("event_action") == "trigger"
        ]

    async def __aenter__(self) -> PagerDutyStandIn:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._runner, self.url = await serve_https(app, self._ca)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.hold.set()
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _enqueue(self, request: web.Request) -> web.StreamResponse:
        self.inflight += 1
        try:
            return await self._answer(request)
        finally:
            self.inflight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.arrived += 1
        fault = self._script.popleft() if self._script else ("503" if self.down else None)
        body = _decode(raw)
        if fault is not None:
            return await self._fault(request, fault, body)
        await self.hold.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.content_type != "application/json":
            return self._record(body, 400, ["Content-Type must be application/json"])
        errors = validate_event(body, self.routing_key)
        if errors:
            return self._record(body, 400, errors)
        key = body.get("dedup_key") or f"generated-{len(self.received)}"
        body["dedup_key"] = key
        self.incidents.setdefault(key, []).append(body)
        response = self._record(body, 202, [])
        return response

    def _record(self, body: Any, status: int, errors: list[str]) -> web.Response:
        self.received.append(Received(body if isinstance(body, dict) else {}, status, errors))
        if status == 202:
            payload = {
                "status": "success",
                "message": "Event processed",
                "dedup_key": body["dedup_key"],
            }
        else:
            payload = {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": errors,
            }
        return web.json_response(payload, status=status)

    async def _fault(self, request: web.Request, fault: str, body: Any) -> web.StreamResponse:
        self.received.append(
            Received(
                body if isinstance(body, dict) else {},
                int(fault) if fault.isdigit() else 0,
                [fault],
            )
        )
        if fault == "timeout":
            await self._release.wait()
        if fault == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        headers = {"Retry-After": "30"} if fault == "429" else {}
        return web.json_response(
            {"status": "throttled" if fault == "429" else "error"},
            status=int(fault),
            headers=headers,
        )


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
