"""Shared by the sender-trust tests (issue 16): a mail that pages on its words, and the whole path
from an SMTP client through the real listener (clock pinned), decide worker and dispatcher to the
PagerDuty, Slack and relay stand-ins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from standins.pagerduty import PagerDutyStandIn
from standins.slack import SlackStandIn
from standins.smtp_sink import SmtpSink

from escalator.decider.processor import Processor
from escalator.ingress.smtp import start_smtp
from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.settings import Settings
from escalator.store import Store

BORDER = "mx.border.example"
ANA = "ana@digital.justice.gov.uk"
FRIDAY_EVENING = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)  # on_call: a page goes at once
FRIDAY_0930 = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # support_and_on_call: page + alarm
Outside = tuple[PagerDutyStandIn, SlackStandIn]


def escalation(
    *headers: str, sender: str = f'"Ana Analyst" <{ANA}>', channel: str = "laa-apply-incident"
) -> bytes:
    """An escalation that pages on its words alone; `headers` go on top, as relays add them."""
    top = "".join(f"{header}\r\n" for header in headers)
    return (
        f"{top}From: {sender}\r\nTo: escalations@localhost\r\nSubject: LAA apply is down\r\n"
        "Message-ID: <m1@digital.justice.gov.uk>\r\nDate: Fri, 27 Nov 2026 20:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Since 19:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\r\n"
        f"Our incident channel is #{channel}.\r\n\r\nAna\r\n"
    ).encode()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def outside(tmp_path: Path) -> AsyncIterator[Outside]:
    async with PagerDutyStandIn(tmp_path) as pd, SlackStandIn() as slack:
        slack.add_channel("C0LAA00001", "laa-apply-incident", member=True)
        yield pd, slack


async def through_the_front_door(
    raw: bytes,
    at: datetime,
    outside: Outside,
    sink: SmtpSink,
    make_settings: Callable[..., Settings],
    store: Store,
    **overrides: Any,
) -> None:
    pd, slack = outside
    settings = make_settings(
        pagerduty_routing_key=pd.routing_key,
        pagerduty_events_url=pd.url,
        pagerduty_ca_file=pd.ca_file,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        relay_url=sink.url,
        authserv_id=BORDER,
        **overrides,
    )
    clock = Clock(at)
    listener = await start_smtp(settings, store, clock=clock)
    try:
        host, port = listener.address
        await aiosmtplib.send(
            raw, sender=ANA, recipients=["escalations@localhost"], hostname=host, port=port
        )
    finally:
        await listener.stop(5)
    processor = Processor(store, load_policy(settings))
    try:
        assert await processor.burst() == 1
    finally:
        processor.close()
    await Dispatcher(store, settings, clock=clock, draw=lambda: 0.5).burst()
