"""POST /webhooks/pagerduty: PagerDuty's v3 webhooks, verified, recorded once, answered fast.

Order matters: the raw body is read (the app caps it at 64 KiB), the X-PagerDuty-Signature is
checked against every configured secret (ESCALATOR_PAGERDUTY_WEBHOOK_SECRET, comma-separated
during a rotation) BEFORE anything of the body is parsed; a forged or unsigned delivery gets 401
and changes nothing. A signed event is recorded in one store transaction (event id, incident
state, notices in the outbox) and answered 200 at once: the notices leave from the dispatcher,
so PagerDuty's 5-second limit never waits for Slack or the relay. A repeated event id is
answered 200 and changes nothing (PagerDuty delivers at least once). Without a secret the
endpoint answers 404 and the log says why. Nothing of a body and no secret is ever logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from escalator.core.webhooks import FOLLOWED, BadEvent, parse_event, signed_by
from escalator.oncall.relay import record_event
from escalator.settings import Settings
from escalator.store import Store
from escalator.store.loop import loop_store

log = logging.getLogger(__name__)

PATH = "/webhooks/pagerduty"


def webhook_secrets(settings: Settings) -> tuple[str, ...]:
    """The accepted signing secrets (several while PagerDuty rotates them)."""
    secret = settings.pagerduty_webhook_secret
    if secret is None:
        return ()
    return tuple(part.strip() for part in secret.get_secret_value().split(",") if part.strip())


def routes(
    store: Store,
    settings: Settings,
    *,
    clock: Callable[[], datetime],
    on_recorded: Callable[[], None] = lambda: None,
) -> list[web.RouteDef]:
    """The webhook route, bound to the store and settings (served without sign-in)."""
    secrets, zone = webhook_secrets(settings), ZoneInfo(settings.timezone)
    loop = loop_store(store)

    async def receive(request: web.Request) -> web.Response:
        if not secrets:
            log.warning("PagerDuty webhook refused: ESCALATOR_PAGERDUTY_WEBHOOK_SECRET is not set")
            raise web.HTTPNotFound(text="PagerDuty webhooks are not configured here.")
        body = await request.read()
        if not signed_by(body, request.headers.get("X-PagerDuty-Signature"), secrets):
            log.warning("PagerDuty webhook refused: no valid signature (%d bytes)", len(body))
            raise web.HTTPUnauthorized(text="Signature missing or invalid.")
        event = parse_event(body)
        if isinstance(event, BadEvent):
            log.warning("PagerDuty webhook signed but unreadable: %s", event.reason)
            raise web.HTTPBadRequest(text=f"Unreadable event: {event.reason}.")
        if event.event_type not in FOLLOWED:
            return web.json_response({"outcome": "ignored"})
        now = clock()
        outcome = await record_event(loop, event, zone, settings.public_url, now)
        log.info(
            "PagerDuty webhook %s (%s): %s",
            event.event_id,
            event.event_type,
            outcome,
            extra={"event_id": event.event_id, "outcome": outcome},
        )
        if outcome == "recorded":
            on_recorded()
        return web.json_response({"outcome": outcome})

    return [web.post(PATH, receive)]
