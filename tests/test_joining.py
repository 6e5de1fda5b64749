"""Same outage, several reporters (issue 11): two senders reporting the same outage 3 minutes
apart get one page, two replies, one thread; the page says why; different outages stay apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopkit import LoopWorld, escalation, loop_world
from standins.smtp_sink import SmtpSink

from escalator.core.grouping import Report, same_outage, words_of
from escalator.decider.processor import Processor
from escalator.policy import load_policy
from escalator.settings import Settings
from escalator.store import Store

EVENING = datetime(2026, 11, 27, 20, tzinfo=UTC)  # on call: page, ack, reply
MORNING = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # page + alarm + ack + reply


@pytest.fixture
async def world(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> AsyncIterator[LoopWorld]:
    async with loop_world(tmp_path, make_settings, store, sink, EVENING) as built:
        yield built


def report(mail_id: int, sender: str, minutes: int, channel: str | None, text: str) -> Report:
    at = EVENING + timedelta(minutes=minutes)
    return Report(mail_id, sender, at, channel, words_of(text, ""), f"root-{mail_id}")


def test_what_counts_as_the_same_outage() -> None:
    first = report(1, "ana@x.gov.uk", 0, "laa-incident", "LAA apply returns 502 on submit")
    assert same_outage(report(2, "bo@x.gov.uk", 3, "laa-incident", "other words"), [first])
    similar = "LAA apply returns 502 on submit for everyone"
    assert same_outage(report(2, "bo@x.gov.uk", 3, None, similar), [first])
    assert same_outage(report(2, "ana@x.gov.uk", 3, "laa-incident", "x"), [first]) is None
    assert same_outage(report(2, "bo@x.gov.uk", 31, "laa-incident", "x"), [first]) is None
    other = "Prison visits booking page times out"
    assert same_outage(report(2, "bo@x.gov.uk", 3, "pvb-incident", other), [first]) is None


async def test_two_senders_three_minutes_apart_one_page_two_replies_one_thread(
    world: LoopWorld,
) -> None:
    await world.receive(escalation(1), MORNING)
    await world.dispatch()
    second = escalation(2, sender="bo@digital.justice.gov.uk")
    await world.receive(second, MORNING + timedelta(minutes=3), sender="bo@digital.justice.gov.uk")
    await world.dispatch()
    assert len(world.pd.triggered) == 1
    assert sorted(d.rcpt_tos[0] for d in world.sink.delivered) == [
        "ana@digital.justice.gov.uk",
        "bo@digital.justice.gov.uk",
    ]
    for channel in ("laa-apply-incident", "high-priority-alarms"):
        posts = world.slack.posts_in(channel)
        top = [post for post in posts if post.thread_ts is None]
        assert len(top) == 1, channel
        (later,) = [post for post in posts if post.thread_ts == top[0].ts]
        assert "Another report of this outage, from bo@digital.justice.gov.uk" in later.text
    page = await world.page(2)
    assert "Joined the open incident of" in page and "same incident channel" in page


async def test_a_different_outage_is_paged_on_its_own(world: LoopWorld) -> None:
    await world.receive(escalation(1), EVENING)
    other = (
        escalation(2, sender="bo@digital.justice.gov.uk", channel="pvb-incident")
        .replace(b"LAA apply", b"Prison visits")
        .replace(b"502 error on submit, so nobody can apply", b"timeout, bookings fail")
    )
    world.slack.add_channel("C0PVB00001", "pvb-incident", member=False)
    await world.receive(other, EVENING + timedelta(minutes=3), sender="bo@digital.justice.gov.uk")
    await world.dispatch()
    assert len(world.pd.triggered) == 2


async def test_support_can_split_a_wrongly_joined_mail(world: LoopWorld) -> None:
    await world.receive(escalation(1), MORNING)
    await world.dispatch()
    second = escalation(2, sender="bo@digital.justice.gov.uk")
    await world.receive(second, MORNING + timedelta(minutes=3), sender="bo@digital.justice.gov.uk")
    await world.dispatch()
    assert 'id="split"' in await world.page(2)
    assert await world.acknowledge(2, "split") == 303
    assert await world.acknowledge(2, "split") == 303  # once
    await world.dispatch()
    assert len(world.pd.triggered) == 2 and len(set(world.pd.triggered)) == 2
    alarms = [p for p in world.slack.posts_in("high-priority-alarms") if p.thread_ts is None]
    assert len(alarms) == 2
    acks = [p for p in world.slack.posts_in("laa-apply-incident") if p.thread_ts is None]
    assert len(acks) == 2  # its own acknowledgement in the incident channel
    assert [row.what for row in await world.store.audit_log(2)].count("split") == 1


async def test_one_mechanism_a_joiners_own_storm_counts_in_the_incident_it_joined(
    world: LoopWorld,
) -> None:
    """Both rules on: bo's report joins ana's incident (same outage); bo's look-alike second
    mail joins bo's storm (same sender and subject), which was filed under ana's incident, so
    its counter goes into ana's alarm thread. One page, one alarm thread, for three mails."""
    world.processor.close()
    world.processor = Processor(
        world.store,
        load_policy(world.settings),
        storm_window=timedelta(minutes=15),
        join_window=timedelta(minutes=30),
    )
    bo = "bo@digital.justice.gov.uk"
    await world.receive(escalation(1), MORNING)
    await world.dispatch()
    await world.receive(escalation(2, sender=bo), MORNING + timedelta(minutes=3), sender=bo)
    await world.receive(escalation(3, sender=bo), MORNING + timedelta(minutes=4), sender=bo)
    await world.dispatch()
    assert len(world.pd.triggered) == 1
    posts = world.slack.posts_in("high-priority-alarms")
    (top,) = [post for post in posts if post.thread_ts is None]
    threaded = [post for post in posts if post.thread_ts == top.ts]
    assert any("Another report of this outage" in post.text for post in threaded)
    assert any("mails so far" in post.text + str(post.args.get("blocks")) for post in threaded)
    decisions = {m.mail.id: m.mail.decision for m in await world.store.recent_escalations(10)}
    second, third = decisions[2], decisions[3]
    assert second is not None and second.joined_mail_id == 1
    assert third is not None and third.joined_mail_id == 2  # bo's storm, filed under mail 1
