"""The sender's reply budget (issue 16: replies to one sender are rate-limited for escalations
too), on both stores, from a real SMTP client to the stand-ins.

Mails go over SMTP (aiosmtplib) to the real listener, whose clock the test pins; the real
processor decides them; each is dispatched by a NEW dispatcher on a NEW store connection (a
restart), so the budget can only hold if it lives in the store. Replies reach a real SMTP relay
stand-in (standins/smtp_sink). No sleeps, no timed asserts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from standins import wiring
from standins.pagerduty import PagerDutyStandIn
from standins.slack import SlackStandIn
from standins.smtp_sink import SmtpSink

from escalator.decider.processor import Processor
from escalator.ingress.smtp import start_smtp
from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.settings import Settings
from escalator.store import ActionRow, Store

MONDAY_0930 = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)  # page + alarm + ack + reply
SENDER = "ana@digital.justice.gov.uk"
SERVICES = ("LAA apply", "CCCD billing", "Court store", "Visit booking", "Prison finder")
LIMIT = 3


def escalation(
    n: int, service: str, sender: str = SENDER, channel: str = "laa-apply-incident"
) -> bytes:
    """One of several distinct escalations (another service each: no storm joins them)."""
    return (
        f'From: "Ana Analyst" <{sender}>\r\nTo: escalations@localhost\r\n'
        f"Subject: {service} is down\r\nMessage-ID: <budget-{n}@digital.justice.gov.uk>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Since 10:40 every {service} user gets a 502 error on submit, so nobody can use it.\r\n"
        f"Our incident channel is #{channel}.\r\n"
    ).encode()


@dataclass
class Front:
    settings: Settings
    store_factory: Callable[[], Any]
    store: Store
    pd: PagerDutyStandIn
    sink: SmtpSink
    now: list[datetime]

    async def send(self, raw: bytes, sender: str = SENDER) -> None:
        """Over SMTP to the listener (clock pinned at now), decided, then dispatched by a
        restarted dispatcher on its own store connection until nothing is due."""
        listener = await start_smtp(self.settings, self.store, clock=lambda: self.now[0])
        try:
            host, port = listener.address
            recipients = ["escalations@localhost"]
            await aiosmtplib.send(
                raw, sender=sender, recipients=recipients, hostname=host, port=port
            )
        finally:
            await listener.stop(5)
        processor = Processor(self.store, load_policy(self.settings))
        await processor.burst()
        processor.close()
        dispatcher = Dispatcher(
            await self.store_factory(), self.settings, clock=lambda: self.now[0], draw=lambda: 0.5
        )
        await dispatcher.burst()
        await dispatcher.close()

    async def replies(self) -> list[ActionRow]:
        listed = await self.store.list_mails()
        return [a for m in listed for a in m.actions if a.kind == "reply"]


@pytest.fixture
async def front(
    tmp_path: Path, make_settings: Callable[..., Settings], store_factory: Any
) -> AsyncIterator[Front]:
    async with PagerDutyStandIn(tmp_path) as pd, SlackStandIn() as slack:
        with SmtpSink() as sink:
            slack.add_channel("C0LAA00001", "laa-apply-incident", member=True)
            settings = make_settings(**wiring(pd, slack, sink.url), sender_reply_limit=LIMIT)
            store = await store_factory()
            yield Front(settings, store_factory, store, pd, sink, [MONDAY_0930])


async def test_escalation_replies_to_one_sender_stop_at_the_budget(front: Front) -> None:
    """5 distinct escalations from one sender in 5 minutes, a restart before each dispatch:
    all 5 page, and only 3 replies reach the relay; the other 2 are recorded as skipped with
    the reason. Another sender is answered meanwhile; after the hour the sender is again."""
    for n, service in enumerate(SERVICES):
        front.now[0] = MONDAY_0930 + timedelta(minutes=n)
        await front.send(escalation(n, service))
    bo = "bo@digital.justice.gov.uk"
    await front.send(escalation(9, "Tax tribunal", bo, "tax-incident"), bo)
    assert len(front.pd.triggered) == 6  # every page went
    to = [d.rcpt_tos for d in front.sink.delivered]
    assert to.count([SENDER]) == LIMIT and len(to) == LIMIT + 1
    states = [a.state for a in await front.replies()]
    assert states == ["sent"] * LIMIT + ["skipped", "skipped", "sent"]
    skipped = [a for a in await front.replies() if a.state == "skipped"]
    for action in skipped:
        assert (action.last_error or "").startswith(f"reply limit: {SENDER} already had 3 replies")
    front.now[0] = MONDAY_0930 + timedelta(hours=1, minutes=1)
    await front.send(escalation(10, "Jury summons"))
    assert [d.rcpt_tos for d in front.sink.delivered].count([SENDER]) == LIMIT + 1


async def test_the_budget_counts_reject_replies_too(front: Front) -> None:
    """One address, one budget: a reject's reply takes a slot of the sender's hour as well."""
    question = (
        f'From: "Ana Analyst" <{SENDER}>\r\nTo: escalations@localhost\r\n'
        "Subject: How do I rotate a password?\r\nMessage-ID: <budget-q@digital.justice.gov.uk>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "What is the recommended way to rotate a database password?\r\n"
    ).encode()
    await front.send(question)
    for n, service in enumerate(SERVICES[:LIMIT]):
        front.now[0] = MONDAY_0930 + timedelta(minutes=n + 1)
        await front.send(escalation(n, service))
    states = [a.state for a in await front.replies()]
    assert states == ["sent"] * LIMIT + ["skipped"]
