"""PagerDuty's REST API, read-only: the incident escalator's page opened, as PagerDuty has it now.

Two documented calls (PagerDuty/developer-docs, docs/REST-API): GET /incidents/{id} once the
incident's id is known (a webhook or an earlier poll told it), else GET /incidents?incident_key=…
&date_range=all (our dedup key is the incident key; the newest incident with that key). Headers:
`Authorization: Token token=<ESCALATOR_PAGERDUTY_API_TOKEN>` and the versioned
`Accept: application/vnd.pagerduty+json;version=2`. HTTPS only (the token is secret), with the
same extra CA bundle as the Events API (ESCALATOR_PAGERDUTY_CA_FILE).

aiohttp on the event loop, one attempt per call, like outbox/pagerduty.py (the `pagerduty`
package is synchronous and retries 429 without limit, ignoring Retry-After: library notes).
Failures are values (`Unpolled`), never exceptions, and their words never hold the token or a
response body: a timeout, unreachable, 401/403 (the token), 404, 429 (with when to ask again:
Retry-After, else PagerDuty's ratelimit-reset), 5xx, an unreadable answer.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from escalator.core.retry import parse_retry_after
from escalator.errors import ConfigError
from escalator.outbox.pagerduty import tls_context

ACCEPT = "application/vnd.pagerduty+json;version=2"
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Polled:
    """The incident object as the API returned it."""

    incident: dict[str, Any]


@dataclass(frozen=True)
class Unpolled:
    """Why there is no answer; `retry_after`: seconds PagerDuty asked us to wait (429)."""

    reason: str
    retry_after: float | None = None
    transient: bool = True


def api_base(api_url: str) -> str:
    """The API's base URL; anything but https is a configuration error (the token is secret)."""
    parts = urlsplit(api_url)
    if parts.scheme != "https" or not parts.netloc:
        scheme = parts.scheme or "no scheme"
        raise ConfigError(f"ESCALATOR_PAGERDUTY_API_URL must be an https URL, not {scheme}")
    return api_url.rstrip("/")


class PagerDutyRest:
    """Reads incidents; one instance per process and loop (it keeps a small connection pool)."""

    def __init__(
        self, token: str, api_url: str, ca_file: Path | None, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self._base = api_base(api_url)
        self._headers = {
            "Authorization": f"Token token={token}",
            "Accept": ACCEPT,
            "User-Agent": "escalator",
        }
        self._tls: ssl.SSLContext = tls_context(ca_file)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._tls, limit=2)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers
            )
        return self._session

    async def incident(self, incident_id: str | None, incident_key: str) -> Polled | Unpolled:
        """The incident by id when known, else the newest one with our dedup key."""
        if incident_id:
            found = await self._get(f"/incidents/{incident_id}", {})
            return _one(found)
        params = {"incident_key": incident_key, "date_range": "all"}
        return _newest(await self._get("/incidents", params), incident_key)

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | Unpolled:
        try:
            async with self._pool().get(self._base + path, params=params) as response:
                return await _answer(response)
        except TimeoutError:
            return Unpolled("PagerDuty REST API timed out")
        except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            return Unpolled(f"PagerDuty REST API unreachable: {type(exc).__name__}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _answer(response: aiohttp.ClientResponse) -> dict[str, Any] | Unpolled:
    status = response.status
    if status in (401, 403):
        return Unpolled(f"PagerDuty refused the API token (HTTP {status})", transient=False)
    if status == 429:
        return Unpolled("PagerDuty REST API rate limit (HTTP 429)", _wait(response))
    if status >= 300:
        return Unpolled(f"PagerDuty REST API answered HTTP {status}", transient=status >= 500)
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return Unpolled("PagerDuty REST API answered something that is not JSON")
    return body if isinstance(body, dict) else Unpolled("PagerDuty REST API answer is no object")


def _wait(response: aiohttp.ClientResponse) -> float | None:
    """Retry-After (seconds or a date), else ratelimit-reset (seconds), as PagerDuty documents."""
    hint = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    if hint is not None:
        return hint
    reset = response.headers.get("ratelimit-reset", "")
    return float(reset) if reset.strip().isdigit() else None


def _one(found: dict[str, Any] | Unpolled) -> Polled | Unpolled:
    if isinstance(found, Unpolled):
        return found
    incident = found.get("incident")
    return Polled(incident) if isinstance(incident, dict) else Unpolled("no incident in answer")


def _newest(found: dict[str, Any] | Unpolled, incident_key: str) -> Polled | Unpolled:
    if isinstance(found, Unpolled):
        return found
    listed = found.get("incidents")
    matching = [
        item
        for item in (listed if isinstance(listed, list) else [])
        if isinstance(item, dict) and item.get("incident_key") == incident_key
    ]
    if not matching:
        return Unpolled("PagerDuty has no incident with this key (yet)", transient=False)
    return Polled(max(matching, key=lambda item: str(item.get("created_at") or "")))
