"""The on-call loop's clock (issue 11): handover calendar and digests, unanswered alarms paged,
unacknowledged pages chased, the one-hour reminder. Fixed instants; the clock is injected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from loopkit import LoopWorld, escalation, loop_world
from standins.smtp_sink import SmtpSink

from escalator.cli import main
from escalator.core import handover
from escalator.core.cover import build_calendar
from escalator.oncall.scheduler import LoopScheduler
from escalator.outbox.slack import Slack
from escalator.policy import load_calendar
from escalator.settings import Settings
from escalator.store import Store
from escalator.store.sqlite import SQLiteStore

CALENDAR = build_calendar("Europe/London")
TIMES = (time(9), time(18))
FRIDAY = datetime(2026, 11, 27, tzinfo=UTC)  # London = UTC in November


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- the calendar -----------------------------------------------------------------------------


def test_friday_1800_is_a_handover_covering_the_day() -> None:
    at = utc(2026, 11, 27, 18, 0, 30)
    slot = handover.due_slot(CALENDAR, TIMES, at, timedelta(hours=1))
    assert slot == utc(2026, 11, 27, 18)
    assert handover.slot_before(CALENDAR, TIMES, utc(2026, 11, 27, 18)) == utc(2026, 11, 27, 9)
    assert handover.due_slot(CALENDAR, TIMES, utc(2026, 11, 27, 17, 59), timedelta(hours=1)) is None


def test_no_handover_on_bank_holidays_or_weekends() -> None:
    for day in (25, 26, 27, 28):  # Fri Christmas, Sat, Sun, Mon Boxing Day (observed)
        for hour in (9, 18):
            at = utc(2026, 12, day, hour, 1)
            assert handover.due_slot(CALENDAR, TIMES, at, timedelta(hours=1)) is None
    # the handover before Tuesday 29 Dec 09:00 is Thursday 24 Dec 18:00
    assert handover.slot_before(CALENDAR, TIMES, utc(2026, 12, 29, 9)) == utc(2026, 12, 24, 18)


def test_clock_change_weekends_keep_wall_clock_times() -> None:
    # spring: clocks go forward on Sunday 29 March 2026; Monday 09:00 BST is 08:00 UTC
    assert handover.last_slot(CALENDAR, TIMES, utc(2026, 3, 30, 8, 0, 1)) == utc(2026, 3, 30, 8)
    assert handover.slot_before(CALENDAR, TIMES, utc(2026, 3, 30, 8)) == utc(2026, 3, 27, 18)
    # 2027: the change falls on Easter Sunday; Good Friday and Easter Monday have no handover
    assert handover.slot_before(CALENDAR, TIMES, utc(2027, 3, 30, 8)) == utc(2027, 3, 25, 18)
    # autumn: back on Sunday 25 October 2026; Friday 18:00 BST was 17:00 UTC
    assert handover.last_slot(CALENDAR, TIMES, utc(2026, 10, 26, 8, 59)) == utc(2026, 10, 23, 17)
    assert handover.due_slot(CALENDAR, TIMES, utc(2026, 10, 26, 9), timedelta(hours=1)) == utc(
        2026, 10, 26, 9
    )


def test_cli_default_is_the_last_handover_at_most_a_day_back() -> None:
    assert handover.cli_since(CALENDAR, TIMES, utc(2026, 11, 27, 12)) == utc(2026, 11, 27, 9)
    monday = utc(2026, 11, 30, 8)
    assert handover.cli_since(CALENDAR, TIMES, monday) == monday - timedelta(hours=24)


# -- the world --------------------------------------------------------------------------------


@pytest.fixture
async def world(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> AsyncIterator[LoopWorld]:
    async with loop_world(tmp_path, make_settings, store, sink, FRIDAY) as built:
        yield built


@pytest.fixture
async def scheduler(world: LoopWorld) -> AsyncIterator[LoopScheduler]:
    slack = Slack(world.settings.slack_bot_token.get_secret_value(), world.slack.api_url)  # type: ignore[union-attr]
    yield LoopScheduler(
        world.store, world.settings, load_calendar(world.settings), slack=slack, clock=world.clock
    )
    await slack.close()


async def at(world: LoopWorld, scheduler: LoopScheduler, moment: datetime) -> None:
    """Move the clock, tick, then dispatch what the tick planned."""
    world.clock.now = moment
    await scheduler.tick()
    await world.dispatch()


# -- handover ---------------------------------------------------------------------------------


async def test_friday_1800_digest_is_posted_once(
    world: LoopWorld, scheduler: LoopScheduler
) -> None:
    await world.receive(escalation(1), utc(2026, 11, 27, 9, 30))
    await world.dispatch()
    held = b"From: bo@example.org\nSubject: How do I rotate a password?\nMessage-ID: <h1@x>\n\nhi\n"
    await world.receive(held, utc(2026, 11, 27, 12), sender="bo@example.org")
    alarms = len(world.slack.posts_in("high-priority-alarms"))
    await at(world, scheduler, utc(2026, 11, 27, 18, 0, 30))
    await at(world, scheduler, utc(2026, 11, 27, 18, 1))
    new = world.slack.posts_in("high-priority-alarms")[alarms:]
    posted = [post for post in new if post.thread_ts is None]  # (the page is chased in-thread)
    # triage reads the held how-to as a reject in doubt: its notice (issue 15) is not the digest
    posted = [post for post in posted if not post.text.startswith("Held, may be an incident")]
    assert len(posted) == 1
    text = posted[0].text
    assert "since Fri 27 Nov 09:00 GMT" in text and "LAA apply is down (1)" in text
    assert "ana@digital.justice.gov.uk" in text and "#laa-apply-incident" in text
    assert "held for review" in text and "How do I rotate a password?" in text


async def test_no_digest_on_a_bank_holiday(world: LoopWorld, scheduler: LoopScheduler) -> None:
    await world.receive(escalation(1), utc(2026, 12, 24, 20))
    await world.dispatch()
    before = len(world.slack.posts_in("high-priority-alarms"))
    for moment in (utc(2026, 12, 25, 9, 0, 30), utc(2026, 12, 25, 18, 0, 30)):
        await at(world, scheduler, moment)
    assert len(world.slack.posts_in("high-priority-alarms")) == before


async def test_the_cli_prints_the_same_digest(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`escalator handover --at T` prints what the 18:00 post would say (on its own SQLite
    store: the CLI opens the store the settings name)."""
    path = tmp_path / "cli.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        async with loop_world(tmp_path, make_settings, store, sink, FRIDAY) as world:
            await world.receive(escalation(1), utc(2026, 11, 27, 9, 30))
            await world.dispatch()
            scheduler = LoopScheduler(
                store, world.settings, load_calendar(world.settings), clock=world.clock
            )
            expected = await scheduler.digest(utc(2026, 11, 27, 9), utc(2026, 11, 27, 12))
            monkeypatch.setenv("ESCALATOR_DATABASE_URL", f"sqlite:///{path}")
            args = ["handover", "--at", "2026-11-27T12:00:00Z"]
            assert await asyncio.to_thread(main, args) == 0  # the CLI runs its own event loop
    finally:
        await store.close()
    assert capsys.readouterr().out.strip() == expected
    assert "LAA apply is down (1)" in expected and "since Fri 27 Nov 09:00 GMT" in expected


# -- unanswered alarms, chased pages, the one-hour rule ------------------------------------------


async def support_hours_alarm(world: LoopWorld) -> None:
    await world.receive(escalation(1), utc(2026, 11, 27, 11))
    await world.dispatch()
    assert world.pd.triggered == [] and len(world.slack.posts_in("high-priority-alarms")) == 1


async def test_an_unanswered_alarm_pages_on_call_after_the_delay(
    world: LoopWorld, scheduler: LoopScheduler
) -> None:
    await support_hours_alarm(world)
    (alarm,) = world.slack.posts_in("high-priority-alarms")
    await at(world, scheduler, utc(2026, 11, 27, 11, 14, 59))
    assert world.pd.triggered == []
    await at(world, scheduler, utc(2026, 11, 27, 11, 15))
    await at(world, scheduler, utc(2026, 11, 27, 11, 16))
    assert len(world.pd.triggered) == 1
    event = world.pd.received[-1].body
    assert "within 15 minutes" in str(event["payload"]["custom_details"])
    said = [p for p in world.slack.posts_in("high-priority-alarms") if p.thread_ts == alarm.ts]
    assert len(said) == 1 and "paged anyway" in said[0].text


@pytest.mark.parametrize("reaction", ["reply", "emoji"])
async def test_a_person_in_the_thread_is_an_answer(
    world: LoopWorld, scheduler: LoopScheduler, reaction: str
) -> None:
    await support_hours_alarm(world)
    (alarm,) = world.slack.posts_in("high-priority-alarms")
    if reaction == "reply":
        world.slack.person_reply(alarm.channel, alarm.ts)
    else:
        world.slack.person_react(alarm.channel, alarm.ts)
    await at(world, scheduler, utc(2026, 11, 27, 11, 30))
    assert world.pd.triggered == []


async def test_acknowledge_on_the_review_page_is_an_answer(
    world: LoopWorld, scheduler: LoopScheduler
) -> None:
    await support_hours_alarm(world)
    assert 'id="acknowledge"' in await world.page(1)
    assert await world.acknowledge(1) == 303
    assert await world.acknowledge(1) == 303  # a second click changes nothing
    await at(world, scheduler, utc(2026, 11, 27, 11, 30))
    assert world.pd.triggered == []
    audit = [row for row in await world.store.audit_log(1) if row.what == "acknowledged"]
    assert len(audit) == 1 and audit[0].who
    page = await world.page(1)
    assert 'id="acknowledged"' in page and 'id="acknowledge"' not in page


async def test_a_page_not_acknowledged_is_chased(
    world: LoopWorld, scheduler: LoopScheduler
) -> None:
    await world.receive(escalation(1), utc(2026, 11, 27, 20))  # on-call: page only
    await world.dispatch()
    (ack,) = world.slack.posts_in("laa-apply-incident")
    await at(world, scheduler, utc(2026, 11, 27, 20, 14))
    assert len(world.sink.delivered) == 1
    await at(world, scheduler, utc(2026, 11, 27, 20, 15))
    await at(world, scheduler, utc(2026, 11, 27, 20, 16))
    assert len(world.sink.delivered) == 2
    assert "we are chasing it" in world.sink.delivered[-1].message.get_content()
    (told,) = [p for p in world.slack.posts_in("laa-apply-incident") if p.thread_ts == ack.ts]
    assert "has not acknowledged" in told.text


async def test_an_acknowledged_page_is_not_chased_and_gets_the_one_hour_reminder(
    world: LoopWorld, scheduler: LoopScheduler
) -> None:
    await world.receive(escalation(1), utc(2026, 11, 27, 20))
    await world.dispatch()
    (ack,) = world.slack.posts_in("laa-apply-incident")
    (key,) = world.pd.triggered
    acked = utc(2026, 11, 27, 20, 5)
    await world.post_webhook(world.book.event("incident.acknowledged", key, acked))
    await world.dispatch()
    await at(world, scheduler, utc(2026, 11, 27, 21, 4))
    in_thread = [p for p in world.slack.posts_in("laa-apply-incident") if p.thread_ts == ack.ts]
    assert len(in_thread) == 1 and "acknowledged by" in in_thread[0].text  # no chase
    await at(world, scheduler, utc(2026, 11, 27, 21, 5))
    await at(world, scheduler, utc(2026, 11, 27, 21, 30))
    in_thread = [p for p in world.slack.posts_in("laa-apply-incident") if p.thread_ts == ack.ts]
    assert len(in_thread) == 2 and "inform the affected team" in in_thread[-1].text
    assert len(world.sink.delivered) == 2  # the first reply and the acknowledge, no more


async def test_a_resolved_incident_gets_no_reminder(
    world: LoopWorld, scheduler: LoopScheduler
) -> None:
    await world.receive(escalation(1), utc(2026, 11, 27, 20))
    await world.dispatch()
    (key,) = world.pd.triggered
    await world.post_webhook(
        world.book.event("incident.acknowledged", key, utc(2026, 11, 27, 20, 5))
    )
    await world.post_webhook(world.book.event("incident.resolved", key, utc(2026, 11, 27, 20, 40)))
    await world.dispatch()
    before = len(world.slack.posts)
    await at(world, scheduler, utc(2026, 11, 27, 21, 30))
    assert len(world.slack.posts) == before
