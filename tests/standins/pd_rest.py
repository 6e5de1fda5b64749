"""A PagerDuty REST API stand-in over HTTPS (trustme CA): the two incident reads escalator makes.

GET /incidents?incident_key=…  -> {"incidents": [...], "limit", "offset", "more", "total"}
GET /incidents/{id}            -> {"incident": {...}}  (404 {"error": …} when unknown)
as PagerDuty/developer-docs documents them. Every request must carry `Authorization: Token
token=<the token>` (else 401 {"error": {"message": "Authentication failed", "code": 2006}}) and
an Accept header naming JSON (else 406). Every request is recorded (path, query, whether its
token was right). Faults on cue: `script("timeout", "401", "429", "500")` answers the next
requests so; a 429 says Retry-After and the ratelimit-* headers.

Incidents are set by the test (`set`), in the REST API's shape: id, status, incident_key,
html_url, assignments, acknowledgements, last_status_change_at/by, resolved_at.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from standins.https import serve_https
from standins.pd_webhooks import user

RETRY_AFTER = 120


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    authorized: bool
    accept: str


class PagerDutyRestStandIn:
    """Run with `async with PagerDutyRestStandIn(tmp_path) as api:`; then api.url / api.ca_file."""

    def __init__(self, folder: Path, token: str = "u+REST-API-TOKEN-0123456789") -> None:
        self.token = token
        self.requests: list[Request] = []
        self.incidents: dict[str, dict[str, Any]] = {}  # by id
        self._script: deque[str] = deque()
        self._release = asyncio.Event()
        self._ca = trustme.CA()
        self.ca_file = folder / "pagerduty-rest-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, *answers: str) -> None:
        self._script.extend(answers)

    def set(
        self,
        incident_key: str,
        status: str,
        at: datetime,
        who: str = "Priya Oncall",
        incident_id: str = "PINC001",
    ) -> dict[str, Any]:
        """The incident with this key now has `status`, changed at `at` by `who`."""
        incident = rest_incident(incident_key, status, at, who, incident_id)
        self.incidents[incident_id] = incident
        return incident

    async def __aenter__(self) -> PagerDutyRestStandIn:
        app = web.Application()
        app.router.add_get("/incidents", self._list)
        app.router.add_get("/incidents/{id}", self._one)
        self._runner, self.url = await serve_https(app, self._ca)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _list(self, request: web.Request) -> web.StreamResponse:
        refused = await self._check(request)
        if refused is not None:
            return refused
        key = request.query.get("incident_key")
        found = [i for i in self.incidents.values() if key is None or i["incident_key"] == key]
        body = {"incidents": found, "limit": 25, "offset": 0, "more": False, "total": None}
        return web.json_response(body)

    async def _one(self, request: web.Request) -> web.StreamResponse:
        refused = await self._check(request)
        if refused is not None:
            return refused
        incident = self.incidents.get(request.match_info["id"])
        if incident is None:
            return web.json_response({"error": {"message": "Not Found", "code": 2100}}, status=404)
        return web.json_response({"incident": incident})

    async def _check(self, request: web.Request) -> web.StreamResponse | None:
        """Record the request; the fault on cue, a wrong token or Accept, else None (serve it)."""
        authorized = request.headers.get("Authorization") == f"Token token={self.token}"
        accept = request.headers.get("Accept", "")
        self.requests.append(Request(request.path, dict(request.query), authorized, accept))
        if self._script:
            return await self._fault(self._script.popleft())
        if not authorized:
            return _error(401, "Authentication failed", 2006)
        if "json" not in accept:
            return _error(406, "Not Acceptable", 2001)
        return None

    async def _fault(self, fault: str) -> web.StreamResponse:
        if fault == "timeout":
            await self._release.wait()
            return _error(504, "too late", 0)
        if fault == "429":
            headers = {
                "Retry-After": str(RETRY_AFTER),
                "ratelimit-limit": "960",
                "ratelimit-remaining": "0",
                "ratelimit-reset": str(RETRY_AFTER),
            }
            body = {"error": {"message": "Rate Limit Exceeded", "code": 2020}}
            return web.json_response(body, status=429, headers=headers)
        return _error(int(fault), "scripted fault", 0)


def rest_incident(
    incident_key: str, status: str, at: datetime, who: str, incident_id: str = "PINC001"
) -> dict[str, Any]:
    """An incident as GET /incidents/{id} returns it, `status` taken at `at` by `who`."""
    stamp = at.isoformat().replace("+00:00", "Z")
    return {
        "id": incident_id,
        "type": "incident",
        "incident_key": incident_key,
        "status": status,
        "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
        "created_at": "2026-11-27T09:30:05Z",
        "last_status_change_at": stamp,
        "last_status_change_by": user(who),
        "assignments": [] if status == "resolved" else [{"at": stamp, "assignee": user(who)}],
        "acknowledgements": (
            [{"at": stamp, "acknowledger": user(who)}] if status == "acknowledged" else []
        ),
        "resolved_at": stamp if status == "resolved" else None,
    }


def _error(status: int, message: str, code: int) -> web.Response:
    return web.json_response({"error": {"message": message, "code": code}}, status=status)
