"""A world for the on-call loop tests (issue 11): a real store, the real decide worker and
dispatcher against the PagerDuty, Slack and relay stand-ins, the web app (review page and
/webhooks/pagerduty) on a loopback port, and a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from standins.pagerduty import PagerDutyStandIn
from standins.pd_webhooks import IncidentBook, signature
from standins.slack import SlackStandIn
from standins.smtp_sink import SmtpSink

from escalator.decider.processor import Processor
from escalator.ingress.smtp import header_summary
from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.review import onit, web, webhooks
from escalator.settings import Settings
from escalator.store import ActionRow, IncomingMail, Store

SECRET = "pd-webhook-secret-0123456789"
TOKEN = "review-token-for-loop-tests-0123"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def escalation(
    n: int, sender: str = "ana@digital.justice.gov.uk", channel: str = "laa-apply-incident"
) -> bytes:
    return (
        f'From: "Ana Analyst" <{sender}>\nTo: escalations@localhost\n'
        f"Subject: LAA apply is down ({n})\nMessage-ID: <loop{n}@digital.justice.gov.uk>\n"
        "Date: Fri, 27 Nov 2026 11:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n"
        "Hi,\n\nSince 10:40 every LAA apply user gets a 502 error on submit, so nobody can "
        f"apply.\nOur incident channel is #{channel}.\n\nAna\n"
    ).encode()


@dataclass
class LoopWorld:
    settings: Settings
    store: Store
    pd: PagerDutyStandIn
    slack: SlackStandIn
    sink: SmtpSink
    clock: Clock
    processor: Processor
    server: TestServer
    book: IncidentBook

    async def receive(self, raw: bytes, at: datetime, sender: str | None = None) -> None:
        self.clock.now = max(self.clock.now, at)
        mail_from = sender or "ana@digital.justice.gov.uk"
        message_id, subject, from_addr = header_summary(raw)  # as the SMTP listener does
        incoming = IncomingMail(
            raw,
            mail_from,
            ("escalations@localhost",),
            "127.0.0.1",
            False,
            at,
            message_id=message_id,
            subject=subject,
            from_addr=from_addr,
        )
        await self.store.accept(incoming)
        await self.processor.burst()

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.store, self.settings, clock=self.clock, draw=lambda: 0.5)

    async def dispatch(self) -> None:
        dispatcher = self.dispatcher()
        await dispatcher.burst()
        await dispatcher.close()

    async def actions(self) -> list[ActionRow]:
        return [a for listed in await self.store.list_mails() for a in listed.actions]

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post_webhook(
        self, body: bytes, header: str | None = None, secrets: tuple[str, ...] = (SECRET,)
    ) -> tuple[int, Any]:
        sig = signature(body, *secrets) if header is None else header
        headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sig}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url(webhooks.PATH), data=body, headers=headers) as response,
        ):
            text = await response.text()
            return response.status, text

    async def acknowledge(self, mail_id: int, what: str = "acknowledge") -> int:
        """Click "Acknowledge" (or `what`: "split") on the mail's page (as an API client)."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.url(f"/mails/{mail_id}/{what}"), headers=headers, allow_redirects=False
            ) as response,
        ):
            return response.status

    async def page(self, mail_id: int) -> str:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url(f"/mails/{mail_id}"), headers=headers) as response,
        ):
            assert response.status == 200
            return await response.text()


@asynccontextmanager
async def loop_world(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    store: Store,
    sink: SmtpSink,
    start: datetime,
    **overrides: Any,
) -> AsyncIterator[LoopWorld]:
    async with PagerDutyStandIn(tmp_path) as pd, SlackStandIn() as slack:
        slack.add_channel("C0LAA00001", "laa-apply-incident", member=False)
        values: dict[str, Any] = {
            "pagerduty_routing_key": pd.routing_key,
            "pagerduty_events_url": pd.url,
            "pagerduty_ca_file": pd.ca_file,
            "slack_bot_token": slack.token,
            "slack_api_url": slack.api_url,
            "relay_url": sink.url,
            "pagerduty_webhook_secret": SECRET,
            "review_token": TOKEN,
            "handover_times": ("09:00", "18:00"),  # the default, on this world's pinned clock
        }
        settings = make_settings(**{**values, **overrides})
        clock = Clock(start)
        routes = [*webhooks.routes(store, settings, clock=clock), *onit.routes(clock)]
        app = web.build_app(
            settings,
            store,
            extra_routes=routes,
            public_paths=frozenset({webhooks.PATH}),
            clock=clock,
        )
        join = timedelta(seconds=settings.join_window) if settings.join_window else None
        processor = Processor(store, load_policy(settings), join_window=join)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield LoopWorld(
                settings, store, pd, slack, sink, clock, processor, server, IncidentBook()
            )
        finally:
            await server.close()
            processor.close()
