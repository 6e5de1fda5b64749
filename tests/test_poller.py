"""When webhooks stop coming (issue 11): open incidents polled through PagerDuty's REST API.

Against a real HTTPS stand-in of the REST API (tests/standins/pd_rest.py) that checks the token
header and the path and fails on cue, with the real store, decide worker, dispatcher, Slack and
relay stand-ins and webhook route (tests/loopkit.py). The clock is injected; nothing waits on it.
A polled change is recorded by the webhook's path: relayed once, whichever of the poll and a late
webhook comes first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopkit import LoopWorld, escalation, loop_world
from standins.pd_rest import RETRY_AFTER, PagerDutyRestStandIn, rest_incident
from standins.smtp_sink import SmtpSink

from escalator.app import incident_poller
from escalator.core.webhooks import IncidentState, WebhookEvent, fold, polled_event
from escalator.oncall.pdrest import PagerDutyRest
from escalator.oncall.poller import IncidentPoller
from escalator.settings import Settings
from escalator.store import Store

EVENING = datetime(2026, 11, 27, 20, tzinfo=UTC)  # on call: page, ack, reply
ROOT = "loop1@digital.justice.gov.uk"
ACKED = "acknowledged by Priya Oncall"


@dataclass
class Polling:
    world: LoopWorld
    api: PagerDutyRestStandIn
    poller: IncidentPoller

    def at(self, minutes: float) -> datetime:
        self.world.clock.now = EVENING + timedelta(minutes=minutes)
        return self.world.clock.now

    def told(self, words: str) -> int:
        """How many thread replies in the reporter's channel and notice mails say `words`."""
        posts = [p for p in self.world.slack.posts_in("laa-apply-incident") if p.thread_ts]
        mails = [
            str(d.message.get_body(("plain",)).get_content()) for d in self.world.sink.delivered
        ]
        return sum(words in text for text in [*(p.text for p in posts), *mails])


@pytest.fixture
async def polling(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> AsyncIterator[Polling]:
    async with (
        PagerDutyRestStandIn(tmp_path) as api,
        loop_world(
            tmp_path,
            make_settings,
            store,
            sink,
            EVENING,
            pagerduty_api_token=api.token,
            pagerduty_api_url=api.url,
            pagerduty_poll_after=600,
        ) as world,
    ):
        rest = PagerDutyRest(api.token, api.url, api.ca_file, timeout=3.0)
        poller = IncidentPoller(world.store, world.settings, rest, clock=world.clock)
        await world.receive(escalation(1), EVENING)
        await world.dispatch()
        assert world.pd.triggered == [ROOT]
        yield Polling(world, api, poller)
        await poller.close()


async def test_a_quiet_incident_is_polled_and_its_change_relayed_once(polling: Polling) -> None:
    api, world = polling.api, polling.world
    api.set(ROOT, "acknowledged", EVENING + timedelta(minutes=3))
    polling.at(9)
    assert await polling.poller.tick() == 0 and api.requests == []  # not quiet for 10 min yet
    polling.at(10)
    assert await polling.poller.tick() == 1
    (asked,) = api.requests
    assert asked.authorized and asked.path == "/incidents" and "json" in asked.accept
    assert asked.query == {"incident_key": ROOT, "date_range": "all"}
    await world.dispatch()
    assert polling.told(ACKED) == 2  # a thread reply under the ack, and a mail to the reporter
    # the webhook PagerDuty failed to deliver arrives after all: recorded, nothing said again
    late = world.book.event("incident.acknowledged", ROOT, EVENING + timedelta(minutes=3))
    assert await world.post_webhook(late) == (200, '{"outcome": "recorded"}')
    await world.dispatch()
    assert polling.told(ACKED) == 2
    # quiet again for a period: asked by incident id now, and nothing new to say
    polling.at(14)
    assert await polling.poller.tick() == 0 and len(api.requests) == 2
    assert api.requests[-1].path == "/incidents/PINC001"
    api.set(ROOT, "resolved", EVENING + timedelta(minutes=20), who="Sam Lead")
    polling.at(22)
    assert await polling.poller.tick() == 0 and len(api.requests) == 2  # once per period
    polling.at(23)
    assert await polling.poller.tick() == 1
    await world.dispatch()
    assert polling.told("resolved by Sam Lead") == 2
    polling.at(60)
    assert await polling.poller.tick() == 0 and len(api.requests) == 3  # resolved: not asked


async def test_a_webhook_first_leaves_the_poll_nothing_to_say(polling: Polling) -> None:
    api, world = polling.api, polling.world
    ack = world.book.event("incident.acknowledged", ROOT, EVENING + timedelta(minutes=3))
    await world.post_webhook(ack)
    await world.dispatch()
    assert polling.told(ACKED) == 2
    api.set(ROOT, "acknowledged", EVENING + timedelta(minutes=3))
    polling.at(13)
    assert await polling.poller.tick() == 0 and len(api.requests) == 1
    await world.dispatch()
    assert polling.told(ACKED) == 2


@pytest.mark.parametrize("fault", ["timeout", "401", "429", "500"])
async def test_a_failed_poll_is_logged_without_the_token_never_a_traceback(
    polling: Polling, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = polling.api
    api.set(ROOT, "acknowledged", EVENING + timedelta(minutes=3))
    api.script(fault)
    polling.at(10)
    with caplog.at_level(logging.INFO):
        assert await polling.poller.tick() == 0
    (record,) = [r for r in caplog.records if "PagerDuty poll" in r.getMessage()]
    assert record.exc_info is None and api.token not in caplog.text
    assert {"timeout": "timed out", "401": "token", "429": "429", "500": "500"}[fault] in (
        record.getMessage()
    )
    polling.at(11)
    recorded = await polling.poller.tick()
    if fault in ("timeout", "500"):  # transient: asked again at the next tick
        assert recorded == 1 and len(api.requests) == 2
    else:  # 429: held back as PagerDuty asked; 401: not again in this period
        assert recorded == 0 and len(api.requests) == 1
    polling.at(10 + RETRY_AFTER / 60 + 10)
    assert await polling.poller.tick() == (0 if fault in ("timeout", "500") else 1)


async def test_a_wrong_token_is_refused_by_the_stand_in_and_reported(
    polling: Polling, caplog: pytest.LogCaptureFixture
) -> None:
    """The stand-in checks the header: a poller with another token gets 401, said plainly."""
    world, api = polling.world, polling.api
    wrong = PagerDutyRest("not-the-token", api.url, api.ca_file, timeout=3.0)
    poller = IncidentPoller(world.store, world.settings, wrong, clock=world.clock)
    polling.at(10)
    with caplog.at_level(logging.WARNING):
        assert await poller.tick() == 0
    await poller.close()
    assert not api.requests[0].authorized
    assert "refused the API token (HTTP 401)" in caplog.text and "not-the-token" not in caplog.text


def test_no_token_no_poller(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    from escalator.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "s.db")
    assert incident_poller(store, make_settings(), lambda: None) is None
    token = make_settings(pagerduty_api_token="t0ken")
    assert isinstance(incident_poller(store, token, lambda: None), IncidentPoller)


# -- the pure parts ----------------------------------------------------------------------------


def event(kind: str, minute: int, event_id: str = "e1") -> WebhookEvent:
    at = EVENING + timedelta(minutes=minute)
    return WebhookEvent(event_id, kind, at, "Priya", "PINC001", ROOT, None, None)


def test_the_same_change_told_twice_is_relayed_once() -> None:
    first = fold(None, event("incident.acknowledged", 3))
    assert first.relay
    again = fold(first.state, event("incident.acknowledged", 3, "e2"))
    assert not again.relay and again.state == first.state
    later = fold(first.state, event("incident.acknowledged", 30, "e3"))  # a new ack, later on
    assert later.relay


def test_a_polled_incident_reads_as_the_event_a_webhook_would_bring() -> None:
    incident = rest_incident(ROOT, "acknowledged", EVENING + timedelta(minutes=3), "Priya Oncall")
    found = polled_event(incident, ROOT, None, EVENING)
    assert found is not None and found.occurred_at == EVENING + timedelta(minutes=3)
    assert (found.event_type, found.agent, found.incident_id, found.incident_key) == (
        "incident.acknowledged",
        "Priya Oncall",
        "PINC001",
        ROOT,
    )
    polled_again = polled_event(incident, ROOT, None, EVENING + timedelta(hours=1))
    assert polled_again is not None and polled_again.event_id == found.event_id
    known = IncidentState("PINC001", "acknowledged", EVENING)
    assert polled_event(incident, ROOT, known, EVENING) is None
    assert polled_event({"status": "triggered", "id": "P1"}, ROOT, None, EVENING) is None
    assert polled_event({"status": "weird", "id": "P1"}, ROOT, None, EVENING) is None
