"""PagerDuty Events API v2 on the event loop: one keep-alive HTTPS pool, one attempt per call.

POST {events_url}/v2/enqueue with the documented body (routing_key, event_action, dedup_key,
payload, links, ...), as https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
describes it. The connection stays open between pages (aiohttp's pool, TLS handshake once), so
a page costs one request on a warm connection, not a thread hop and a handshake. Every non-2xx
answer and every network error comes back at once as RetryLater (429, 5xx, unreachable) or
Refused (other 4xx); the outbox owns the retries. 429 means "not ingested": retried later.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from escalator.core.retry import Refused, RetryLater, parse_retry_after
from escalator.errors import ConfigError

POOL_SIZE = 8  # concurrent pages in flight on their own keep-alive connections
KEEP_ALIVE_SECONDS = 120.0


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """System trust, plus the operator's extra CA bundle when one is configured."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def enqueue_url(events_url: str) -> str:
    """The enqueue endpoint; anything but https is a configuration error (the key is secret)."""
    parts = urlsplit(events_url)
    if parts.scheme != "https" or not parts.netloc:
        scheme = parts.scheme or "no scheme"
        raise ConfigError(f"ESCALATOR_PAGERDUTY_EVENTS_URL must be an https URL, not {scheme}")
    return f"{events_url.rstrip('/')}/v2/enqueue"


class PagerDuty:
    """Sends events; one instance per process and loop (it keeps the connection pool)."""

    def __init__(
        self, routing_key: str, events_url: str, ca_file: Path | None, timeout: float = 10.0
    ) -> None:
        self._url = enqueue_url(events_url)
        self._key = routing_key
        self._tls = tls_context(ca_file)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running loop it then belongs to."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._tls, limit=POOL_SIZE, keepalive_timeout=KEEP_ALIVE_SECONDS
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": "escalator"},
            )
        return self._session

    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send one event; returns {"dedup_key": …} as PagerDuty acknowledged it."""
        body = {"routing_key": self._key, **event}
        try:
            async with self._pool().post(self._url, json=body) as response:
                return await _answer(response)
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise RetryLater(f"PagerDuty unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _answer(response: aiohttp.ClientResponse) -> dict[str, Any]:
    status = response.status
    if status == 429 or status >= 500:
        hint = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
        raise RetryLater(f"PagerDuty answered HTTP {status}", hint)
    body = await _json(response)
    if status >= 300:
        raise Refused(_refusal(status, body), code="http_error")
    if not isinstance(body, dict) or "dedup_key" not in body:
        raise RetryLater(f"PagerDuty answered HTTP {status} without a dedup_key")
    return {"dedup_key": body["dedup_key"]}


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return None


def _refusal(status: int, body: Any) -> str:
    """A short reason from PagerDuty's 4xx body (never the routing key, which is not in it)."""
    if not isinstance(body, dict):
        return f"PagerDuty refused the event: HTTP {status}"
    errors = "; ".join(str(item) for item in body.get("errors", []))[:300]
    return f"PagerDuty refused the event: {body.get('message', '')} {errors}".strip()
