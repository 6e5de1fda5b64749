"""PagerDuty Events API v2 through the `pagerduty` package, one attempt per call.

The client is synchronous (httpx2), so each send runs in a worker thread. Its own retry loop
(unbounded on 429, blind to Retry-After) is switched off: every non-2xx answer and every network
error comes back at once as RetryLater or Refused, and the outbox owns the retries.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pagerduty

from escalator.core.retry import Refused, RetryLater, parse_retry_after
from escalator.errors import ConfigError


class _Retryable(Exception):
    """Raised from the client's response hook so its retry loop never sees a 429 or 5xx."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class _SingleShotClient(pagerduty.EventsApiV2Client):
    """EventsApiV2Client with its retries off: one request per call, failures raised."""

    max_network_attempts = 0
    max_http_attempts = 0

    def postprocess(self, response: Any) -> None:
        status = int(response.status_code)
        if status == 429 or status >= 500:
            raise _Retryable(status, response.headers.get("Retry-After"))


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """System trust, plus the operator's extra CA bundle when one is configured."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class PagerDuty:
    """Sends trigger events; one instance per process (it keeps a connection pool)."""

    def __init__(
        self, routing_key: str, events_url: str, ca_file: Path | None, timeout: float = 10.0
    ) -> None:
        try:
            self._client = _SingleShotClient(
                routing_key, base_url=events_url.rstrip("/"), verify=tls_context(ca_file)
            )
        except pagerduty.UrlError as exc:
            raise ConfigError(f"ESCALATOR_PAGERDUTY_EVENTS_URL: {exc}") from None
        self._client.retry = {}
        self._client.timeout = timeout  # type: ignore[assignment]  # httpx takes float seconds

    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send one event; returns {"dedup_key": …} as PagerDuty acknowledged it."""
        return await asyncio.to_thread(self._send_blocking, event)

    def close(self) -> None:
        self._client.close()

    def _send_blocking(self, event: dict[str, Any]) -> dict[str, Any]:
        fields = {
            key: value for key, value in event.items() if key not in ("event_action", "dedup_key")
        }
        try:
            key = self._client.send_event(event["event_action"], event.get("dedup_key"), **fields)
        except _Retryable as exc:
            hint = parse_retry_after(exc.retry_after, datetime.now(UTC))
            raise RetryLater(f"PagerDuty answered HTTP {exc.status}", hint) from None
        except pagerduty.HttpError as exc:
            raise Refused(_refusal(exc), code="http_error") from None
        except pagerduty.Error as exc:
            raise RetryLater(f"PagerDuty unreachable: {type(exc.__cause__).__name__}") from None
        return {"dedup_key": key}


def _refusal(exc: Any) -> str:
    """A short reason from PagerDuty's 4xx body (never the routing key, which is not in it)."""
    try:
        body = exc.response.json()
    except ValueError:
        return f"PagerDuty refused the event: HTTP {exc.response.status_code}"
    errors = "; ".join(str(item) for item in body.get("errors", []))[:300]
    return f"PagerDuty refused the event: {body.get('message', '')} {errors}".strip()
