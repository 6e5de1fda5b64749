"""A PagerDuty + Slack outage three times the retry horizon, against a running service (issue 14.5
and 14.6): no page is abandoned, every page is delivered once after recovery, the sender is never
told "paged" before PagerDuty accepted the page, and the operator sees the outage: the oldest
pending age grows from the first due time, /readyz says "pages failing for N s" while the
traffic scope stays ready, and the pages-failing gauge reads it too.

Real time, short horizon (2 s): the dispatcher's own loop runs against the stand-ins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosmtplib
from relykit import escalation, paging_now
from standins import wiring
from standins.pagerduty import PagerDutyStandIn
from standins.slack import SlackStandIn
from standins.smtp_sink import SmtpSink
from test_metrics import get, scrape, value

HORIZON = 2.0
OUTAGE = 3 * HORIZON
MAILS = 4
PAGED = "has been paged"
NOT_YET = "has not accepted the page yet"


async def test_outage_of_three_horizons_pages_everyone_after_recovery(
    tmp_path: Path, start_server: Callable[..., Any]
) -> None:
    with SmtpSink() as sink:
        async with PagerDutyStandIn(tmp_path) as pd, SlackStandIn() as slack:
            slack.add_channel("C0LAA00001", "laa-apply-incident", member=True)
            pd.down = slack.down = True
            server = await asyncio.to_thread(start_server, **_settings(tmp_path, pd, slack, sink))
            for n in range(MAILS):
                await _send(server, escalation(n, "outage"))
            for _ in range(1200):  # decided, and the first page refused: the outage is on
                if pd.arrived:
                    break
                await asyncio.sleep(0.05)
            seen = await _watch_outage(server, sink)
            pd.down = slack.down = False
            await _wait_delivered(pd, sink)
    keys = {f"outage-{n}@digital.justice.gov.uk" for n in range(MAILS)}
    assert sorted(pd.triggered) == sorted(keys), "every page delivered, each once"
    assert seen["oldest"] >= 2 * HORIZON, "age counted from the first due time"
    assert seen["failing_gauge"] >= 2 * HORIZON
    assert "pages failing for" in seen["readyz"] and seen["readyz_status"] == 503
    assert seen["traffic_status"] == 200 and "outbox: pages failing for" in seen["traffic"]
    assert not seen["paged_early"], "nobody told 'paged' while PagerDuty was down"
    assert seen["not_yet"] >= 1, "past the horizon the sender hears the truth"
    assert all(_text(d).count(PAGED) + _text(d).count(NOT_YET) == 1 for d in sink.delivered)
    alarms = slack.posts_in("high-priority-alarms")
    assert alarms and all("page on-call manually" in post.text for post in alarms)


def _settings(tmp: Path, pd: PagerDutyStandIn, slack: SlackStandIn, sink: SmtpSink) -> Any:
    return {
        **wiring(pd, slack, sink.url),
        "retry_horizon_seconds": HORIZON,
        "storm_window_seconds": 0,  # one sender's look-alike mails, each to be paged
        **paging_now(tmp),
    }


async def _send(server: Any, raw: bytes) -> None:
    await aiosmtplib.send(
        raw,
        hostname=server.host,
        port=server.port,
        sender="ana@digital.justice.gov.uk",
        recipients=["escalations@localhost"],
    )


async def _watch_outage(server: Any, sink: SmtpSink) -> dict[str, Any]:
    """Watch for OUTAGE seconds (from the first refused page): the replies sent and what an
    operator reads at the end."""
    seen: dict[str, Any] = {"paged_early": False, "not_yet": 0}
    give_up = time.monotonic() + OUTAGE
    while time.monotonic() < give_up:
        await asyncio.sleep(0.5)
        texts = [_text(d) for d in sink.delivered]
        seen["paged_early"] |= any(PAGED in text for text in texts)
        seen["not_yet"] = sum(NOT_YET in text for text in texts)
    samples = await asyncio.to_thread(scrape, server)
    seen["oldest"] = value(samples, "escalator_outbox_oldest_pending_seconds")
    seen["failing_gauge"] = value(samples, "escalator_pages_failing_seconds")
    seen["readyz_status"], seen["readyz"] = await asyncio.to_thread(get, server, "/readyz")
    seen["traffic_status"], seen["traffic"] = await asyncio.to_thread(
        get, server, "/readyz?scope=traffic"
    )
    return seen


async def _wait_delivered(pd: PagerDutyStandIn, sink: SmtpSink) -> None:
    """Until every page is accepted and every mail has its reply (generous bound: 60 s)."""
    give_up = time.monotonic() + 60
    while len(set(pd.triggered)) < MAILS or len(sink.delivered) < MAILS:
        assert time.monotonic() < give_up, f"{len(set(pd.triggered))} pages after recovery"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # anything sent twice would arrive now


def _text(delivered: Any) -> str:
    return str(delivered.message.get_body(("plain",)).get_content())
