"""PagerDuty webhooks v3 (issue 11): signed bodies shaped like the documented events.

The signature is checked before anything else (forged: 401, nothing changes), an event id is
recorded once (PagerDuty delivers at least once), events about incidents escalator did not open
change nothing, and out-of-order events (a resolve before its acknowledge) leave the incident
resolved. End to end: a mail, its page at the PagerDuty stand-in, a signed acknowledge, then the
thread replies at the Slack stand-in and the mail at the relay stand-in.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from loopkit import SECRET, LoopWorld, escalation, loop_world
from standins.pd_webhooks import IncidentBook, signature
from standins.smtp_sink import SmtpSink

from escalator.core.notices import state_json
from escalator.core.webhooks import BadEvent, WebhookEvent, fold, parse_event, signed_by
from escalator.settings import Settings
from escalator.store import Store
from escalator.store.loop import loop_store

FRIDAY_0930 = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # page + alarm (London = UTC in Nov)
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
async def world(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> AsyncIterator[LoopWorld]:
    async with loop_world(tmp_path, make_settings, store, sink, FRIDAY_0930) as built:
        yield built


async def paged(world: LoopWorld) -> str:
    """A mail escalated at 09:30 and dispatched; the dedup key PagerDuty got."""
    await world.receive(escalation(1), FRIDAY_0930)
    await world.dispatch()
    (key,) = world.pd.triggered
    return key


# -- pure: the signature and the fold -----------------------------------------------------------


def test_signature_accepts_any_configured_secret_and_any_offered_v1() -> None:
    body = IncidentBook().event("incident.acknowledged", "k", FRIDAY_0930)
    assert signed_by(body, signature(body, "new"), ("new",))
    assert signed_by(body, signature(body, "old", "new"), ("new",))  # PagerDuty rotating
    assert signed_by(body, signature(body, "old"), ("new", "old"))  # we are rotating
    assert not signed_by(body, signature(body, "other"), ("new", "old"))
    assert not signed_by(body + b" ", signature(body, "new"), ("new",))  # the raw body counts
    assert not signed_by(body, signature(body, "new").replace("v1=", "v0="), ("new",))
    assert not signed_by(body, None, ("new",))
    assert not signed_by(body, signature(body, ""), ())


def test_documented_bodies_parse() -> None:
    book = IncidentBook()
    event = parse_event(book.event("incident.acknowledged", "key-1", FRIDAY_0930, agent="Jo"))
    assert isinstance(event, WebhookEvent)
    assert (event.event_type, event.agent, event.incident_key) == (
        "incident.acknowledged",
        "Jo",
        "key-1",
    )
    note = parse_event(book.event("incident.annotated", "key-1", FRIDAY_0930, note="on it"))
    assert isinstance(note, WebhookEvent)
    assert (note.incident_id, note.incident_key, note.note) == (book.ids["key-1"], None, "on it")
    assert isinstance(parse_event(b"not json"), BadEvent)
    assert isinstance(parse_event(json.dumps({"event": {"id": "x"}}).encode()), BadEvent)


def test_a_late_acknowledge_fills_who_but_keeps_resolved() -> None:
    book = IncidentBook()
    resolved = parse_event(book.event("incident.resolved", "k", FRIDAY_0930))
    acked = parse_event(
        book.event("incident.acknowledged", "k", FRIDAY_0930 - timedelta(minutes=5), agent="Jo")
    )
    assert isinstance(resolved, WebhookEvent) and isinstance(acked, WebhookEvent)
    first = fold(None, resolved)
    second = fold(first.state, acked)
    assert first.relay and not second.relay and second.stale
    assert second.state.status == "resolved"
    assert second.state.acknowledged_by == "Jo"


# -- the endpoint ---------------------------------------------------------------------------------


async def test_signed_acknowledge_is_recorded_and_relayed(world: LoopWorld) -> None:
    key = await paged(world)
    before = len(await world.actions())
    at = FRIDAY_0930 + timedelta(minutes=7)
    status, text = await world.post_webhook(world.book.event("incident.acknowledged", key, at))
    assert (status, json.loads(text)) == (200, {"outcome": "recorded"})
    states = await loop_store(world.store).incident_states([1])
    assert state_json(states.get(1)) == {
        "status": "acknowledged",
        "incident_id": world.book.ids[key],
        "acknowledged_by": "Priya Oncall",
        "acknowledged_at": at.isoformat(),
        "resolved_at": None,
        "assignees": ["Priya Oncall"],
    }
    added = (await world.actions())[before:]
    assert sorted(a.kind for a in added) == ["ack", "alarm", "reply"]
    assert all("acknowledged by Priya Oncall at 09:37 GMT" in json.dumps(a.payload) for a in added)


async def test_forged_signature_gets_401_and_changes_nothing(world: LoopWorld) -> None:
    key = await paged(world)
    before = await world.actions()
    body = world.book.event("incident.acknowledged", key, FRIDAY_0930)
    for header in (signature(body, "not-the-secret"), "", "v1=00", "garbage"):
        status, _ = await world.post_webhook(body, header=header)
        assert status == 401
    assert await world.actions() == before
    assert await loop_store(world.store).incident_states([1]) == {}
    # the same event, signed, is then recorded: the forgeries did not take its id
    assert (await world.post_webhook(body))[0] == 200
    assert (await loop_store(world.store).incident_states([1]))[1].status == "acknowledged"


async def test_a_repeated_event_id_changes_nothing(world: LoopWorld) -> None:
    key = await paged(world)
    body = world.book.event("incident.acknowledged", key, FRIDAY_0930, event_id="evt-1")
    assert json.loads((await world.post_webhook(body))[1]) == {"outcome": "recorded"}
    after_first = await world.actions()
    assert json.loads((await world.post_webhook(body))[1]) == {"outcome": "duplicate"}
    assert await world.actions() == after_first


async def test_an_incident_escalator_did_not_open_changes_nothing(world: LoopWorld) -> None:
    await paged(world)
    before = await world.actions()
    body = world.book.event("incident.acknowledged", "someone-elses-key", FRIDAY_0930)
    assert json.loads((await world.post_webhook(body))[1]) == {"outcome": "unknown"}
    assert await world.actions() == before
    assert await loop_store(world.store).incident_states([1]) == {}


async def test_resolved_before_acknowledged(world: LoopWorld) -> None:
    """PagerDuty may deliver out of order: the later-occurring resolve wins; the older
    acknowledge still says who acknowledged, and is not relayed as news."""
    key = await paged(world)
    ack_at, resolved_at = FRIDAY_0930 + timedelta(minutes=5), FRIDAY_0930 + timedelta(minutes=9)
    before = len(await world.actions())
    await world.post_webhook(world.book.event("incident.resolved", key, resolved_at))
    await world.post_webhook(world.book.event("incident.acknowledged", key, ack_at, agent="Jo"))
    state = (await loop_store(world.store).incident_states([1]))[1]
    assert (state.status, state.acknowledged_by, state.resolved_at) == (
        "resolved",
        "Jo",
        resolved_at,
    )
    texts = [json.dumps(a.payload) for a in (await world.actions())[before:]]
    assert len(texts) == 3 and all("resolved by Priya Oncall at 09:39 GMT" in t for t in texts)


async def test_a_note_is_matched_by_the_incident_id_learnt_earlier(world: LoopWorld) -> None:
    key = await paged(world)
    await world.post_webhook(world.book.event("incident.acknowledged", key, FRIDAY_0930))
    before = len(await world.actions())
    hostile = "<!channel> see <https://evil|here>"
    body = world.book.event("incident.annotated", key, FRIDAY_0930, note=hostile)
    assert json.loads((await world.post_webhook(body))[1]) == {"outcome": "recorded"}
    slack = [a for a in (await world.actions())[before:] if a.kind != "reply"]
    assert slack and all("<" not in a.payload["notice"]["text"] for a in slack)


async def test_without_a_secret_the_endpoint_is_not_there(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    store: Store,
    sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with loop_world(
        tmp_path, make_settings, store, sink, FRIDAY_0930, pagerduty_webhook_secret=None
    ) as world:
        body = world.book.event("incident.acknowledged", "k", FRIDAY_0930)
        assert (await world.post_webhook(body))[0] == 404
    assert "ESCALATOR_PAGERDUTY_WEBHOOK_SECRET is not set" in caplog.text


async def test_rotation_accepts_old_and_new_secrets(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> None:
    async with loop_world(
        tmp_path, make_settings, store, sink, FRIDAY_0930, pagerduty_webhook_secret="new, old"
    ) as world:
        key = await paged(world)
        ack = world.book.event("incident.acknowledged", key, FRIDAY_0930)
        assert (await world.post_webhook(ack, secrets=("old",)))[0] == 200
        note = world.book.event("incident.annotated", key, FRIDAY_0930, note="x")
        assert (await world.post_webhook(note, secrets=("new",)))[0] == 200
        assert SECRET not in (await world.post_webhook(note, secrets=(SECRET,)))[1]


# -- end to end ------------------------------------------------------------------------------------


async def test_mail_page_ack_reaches_the_reporter(world: LoopWorld) -> None:
    """mail -> page at the PagerDuty stand-in -> signed acknowledge -> a reply in the thread of
    the reporter's ack and of the alarm post at the Slack stand-in, and a mail at the relay."""
    key = await paged(world)
    (ack,) = world.slack.posts_in("laa-apply-incident")
    (alarm,) = world.slack.posts_in("high-priority-alarms")
    assert len(world.sink.delivered) == 1
    world.clock.now = FRIDAY_0930 + timedelta(minutes=8)
    at = datetime(2026, 11, 27, 21, 7, tzinfo=UTC)
    await world.post_webhook(world.book.event("incident.acknowledged", key, at))
    await world.dispatch()
    reply_ack = world.slack.posts_in("laa-apply-incident")[-1]
    reply_alarm = world.slack.posts_in("high-priority-alarms")[-1]
    assert (reply_ack.thread_ts, reply_alarm.thread_ts) == (ack.ts, alarm.ts)
    for post in (reply_ack, reply_alarm):
        assert "acknowledged by Priya Oncall at 21:07 GMT" in post.text
    told = world.sink.delivered[-1]
    assert told.rcpt_tos == ["ana@digital.justice.gov.uk"] and told.mail_from == "<>"
    assert "acknowledged by Priya Oncall at 21:07 GMT" in told.message.get_content()
    assert told.message["In-Reply-To"] == "<loop1@digital.justice.gov.uk>"
    assert "acknowledged by Priya Oncall at 21:07 GMT" in await world.page(1)
