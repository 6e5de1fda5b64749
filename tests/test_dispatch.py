"""The outbox executor end to end: stored mail -> decision -> actions -> PagerDuty/Slack/SMTP.

Mails are accepted into a real SQLite store at a fixed instant and decided by the real
processor; the dispatcher runs its real loop in burst mode against the stand-ins, with a clock
the test moves forward (retries are due times in the store, not sleeps).
"""

from __future__ import annotations

import asyncio
import email.policy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_string
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from prometheus_client import REGISTRY
from standins.pagerduty import PagerDutyStandIn
from standins.slack import SLACK_CHANNEL_LINKS, SlackStandIn, mentions
from standins.smtp_sink import SmtpSink

from escalator.cli.list import action_json
from escalator.cli.review import show_text
from escalator.core.replybudget import ReplyClaim, reply_claim
from escalator.core.retry import (
    Backoff,
    GiveUp,
    RetryAt,
    backoff_delay,
    next_step,
    parse_retry_after,
)
from escalator.decider.processor import Processor, decide_stored
from escalator.ingress.smtp import start_smtp
from escalator.outbox.dispatch import RESOLVED, Adapters, Dispatcher
from escalator.outbox.pagerduty import PagerDuty
from escalator.policy import load_policy
from escalator.review import deeds
from escalator.settings import Settings
from escalator.store import ActionRow, IncomingMail, ListedMail, Store

FRIDAY = datetime(2026, 11, 27, tzinfo=UTC)  # a working day; London is on UTC in November
HOSTILE = "<!channel> <@U123> <https://evil|click> @here <!here> <!subteam^S1|@team>"


def mail(
    n: int,
    *,
    channel: str | None = "laa-apply-incident",
    in_reply_to: str | None = None,
    sender: str = "ana@digital.justice.gov.uk",
    extra: str = "",
    service_down: bool = True,
    subject: str = "LAA apply is down",
) -> bytes:
    """A mail that escalates (service down, channel named) unless told otherwise."""
    thread = f"In-Reply-To: <{in_reply_to}>\nReferences: <{in_reply_to}>\n" if in_reply_to else ""
    where = f"Our incident channel is #{channel}.\n" if channel else ""
    what = (
        "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\n"
        if service_down
        else "What is the recommended way to rotate a database password?\n"
    )
    return (
        f'From: "Ana Analyst" <{sender}>\nTo: escalations@localhost\n'
        f"Subject: {subject} ({n})\nMessage-ID: <m{n}@digital.justice.gov.uk>\n{thread}"
        f"Date: Fri, 27 Nov 2026 11:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n"
        f"Hi,\n\n{what}{where}{extra}\nAna\n"
    ).encode()


class Clock:
    """The dispatcher's now, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    settings: Settings
    store: Store
    pd: PagerDutyStandIn
    slack: SlackStandIn
    sink: SmtpSink
    clock: Clock
    processor: Processor
    store_factory: Callable[[], Any]

    async def receive(self, raw: bytes, at: datetime, mail_from: str | None = None) -> None:
        """Accept a mail as the SMTP server would at `at` (the clock moves there), decide it."""
        self.clock.now = max(self.clock.now, at)
        sender = mail_from if mail_from is not None else "ana@digital.justice.gov.uk"
        incoming = IncomingMail(raw, sender, ("escalations@localhost",), "127.0.0.1", False, at)
        await self.store.accept(incoming)
        await self.processor.burst()

    def dispatcher(self, store: Store | None = None, **kwargs: Any) -> Dispatcher:
        options: dict[str, Any] = {"clock": self.clock, "draw": lambda: 0.5}
        options.update(kwargs)
        return Dispatcher(store or self.store, self.settings, **options)

    async def actions(self) -> list[ActionRow]:
        return [a for listed in await self.store.list_mails() for a in listed.actions]

    async def drain(self, dispatcher: Dispatcher, step: float = 30.0, rounds: int = 200) -> None:
        """Run bursts, moving the clock, until no action is pending."""
        for _ in range(rounds):
            await dispatcher.burst()
            if not [a for a in await self.actions() if a.state == "pending"]:
                return
            self.clock.advance(step)
        raise AssertionError("actions still pending")


@pytest.fixture
async def world(
    tmp_path: Path, make_settings: Callable[..., Settings], store_factory: Any, sink: SmtpSink
) -> AsyncIterator[World]:
    async with PagerDutyStandIn(tmp_path) as pd, SlackStandIn() as slack:
        slack.add_channel("C0LAA00001", "laa-apply-incident", member=False)
        settings = make_settings(
            pagerduty_routing_key=pd.routing_key,
            pagerduty_events_url=pd.url,
            pagerduty_ca_file=pd.ca_file,
            slack_bot_token=slack.token,
            slack_api_url=slack.api_url,
            relay_url=sink.url,
        )
        store = await store_factory()
        processor = Processor(store, load_policy(settings))
        yield World(settings, store, pd, slack, sink, Clock(FRIDAY), processor, store_factory)
        processor.close()


# -- the windows of the contract, end to end ---------------------------------------------------

WINDOWS = [
    # (local time, pages, alarms, reply wording)
    ("11:00", 0, 1, "support team has been alerted"),
    ("09:30", 1, 1, "on-call engineer has been paged"),
    ("20:00", 1, 0, "on-call engineer has been paged"),
    ("23:00", 1, 1, "will be paged at 07:00"),
]


async def dispatch_and_check(
    world: World, hhmm: str, pages: int, alarms: int, wording: str
) -> None:
    """Run the dispatcher (and, out of cover, again at 07:00); check what the stand-ins saw."""
    await world.dispatcher().burst()
    if hhmm == "23:00":
        assert world.pd.triggered == []  # deferred: nothing before 07:00
        world.clock.now = FRIDAY.replace(hour=7) + timedelta(days=1)
        await world.dispatcher().burst()
    assert len(world.pd.triggered) == pages
    assert len(world.slack.posts_in("high-priority-alarms")) == alarms
    assert len(world.slack.posts_in("laa-apply-incident")) == 1
    (reply,) = world.sink.delivered
    assert wording in reply.message.get_content() and reply.mail_from == "<>"
    assert {a.state for a in await world.actions()} == {"sent"}


@pytest.mark.parametrize(("hhmm", "pages", "alarms", "wording"), WINDOWS)
async def test_each_window_runs_its_actions(
    world: World, hhmm: str, pages: int, alarms: int, wording: str
) -> None:
    """Support: alarm; both: page + alarm; on-call: page; no cover: alarm now, page at 07:00.
    Every escalation also acks in the reporter's channel and replies to the sender."""
    hour, minute = map(int, hhmm.split(":"))
    world.clock.now = FRIDAY.replace(hour=hour, minute=minute)
    await world.receive(mail(1), world.clock.now)
    await dispatch_and_check(world, hhmm, pages, alarms, wording)


@pytest.mark.parametrize(("hhmm", "pages", "alarms", "wording"), WINDOWS)
async def test_each_window_from_an_smtp_client_to_the_stand_ins(
    world: World, hhmm: str, pages: int, alarms: int, wording: str
) -> None:
    """The same table through the front door: an SMTP client sends the mail to the real
    listener, whose clock is pinned in the window; the decide worker and the dispatcher run
    their real loops in burst mode; PagerDuty, Slack and the relay stand-ins see the result."""
    hour, minute = map(int, hhmm.split(":"))
    world.clock.now = FRIDAY.replace(hour=hour, minute=minute)
    listener = await start_smtp(world.settings, world.store, clock=world.clock)
    try:
        host, port = listener.address
        await aiosmtplib.send(
            mail(1),
            sender="ana@x.gov.uk",
            recipients=["escalations@localhost"],
            hostname=host,
            port=port,
        )
    finally:
        await listener.stop(5)
    assert await world.processor.burst() == 1
    await dispatch_and_check(world, hhmm, pages, alarms, wording)


async def test_bare_slack_id_is_lowercase_in_the_contract_and_posted_as_written(
    world: World,
) -> None:
    """A Slack ID written bare ("Slack channel C0LAA00001") is lowercase in the decision contract,
    as every channel is there, while Slack is asked for the ID as Slack knows it: the ack lands
    in the channel and the alarm links it (a lowercase ID is no channel to Slack)."""
    bare = mail(1, channel=None, extra="We are in Slack channel C0LAA00001.\n")
    await world.receive(bare, FRIDAY.replace(hour=11))
    (listed,) = await world.store.list_mails()
    assert listed.mail.decision is not None
    assert listed.mail.decision.decision["slack_channel"] == "c0laa00001"
    assert listed.mail.slack_channel == "C0LAA00001"
    await world.dispatcher().burst()
    assert len(world.slack.posts_in("laa-apply-incident")) == 1
    (alarm,) = world.slack.posts_in("high-priority-alarms")
    assert "<#C0LAA00001>" in str(alarm.blocks)


async def test_rejected_mail_gets_only_a_reply_saying_why(world: World) -> None:
    """A reject pages nobody and posts nothing; the sender learns where to go instead."""
    await world.receive(
        mail(1, channel=None, service_down=False, subject="Password rotation"),
        FRIDAY.replace(hour=11),
    )
    await world.dispatcher().burst()
    assert world.pd.received == [] and world.slack.posts == []
    (reply,) = world.sink.delivered
    assert "#ask-cloud-platform" in reply.message.get_content()


async def test_hostile_mail_text_mentions_nobody_in_slack(world: World) -> None:
    """<!channel>, <@U123>, <https://evil|click> and @here in a mail produce no mention or link."""
    raw = mail(1, extra=HOSTILE + "\n").replace(b"LAA apply is down", HOSTILE.encode())
    await world.receive(raw, FRIDAY.replace(hour=9, minute=30))
    await world.dispatcher().burst()
    assert len(world.slack.posts) == 2  # the alarm and the ack
    ours = (f"{world.settings.public_url}/mails/", *SLACK_CHANNEL_LINKS)
    for post in world.slack.posts:
        assert mentions(post, ours) == []
    assert world.pd.received[0].status == 202


async def test_dry_run_records_the_exact_payload(
    make_settings: Callable[..., Settings], store_factory: Any
) -> None:
    """With no routing key, token or relay, every action is 'dry_run' with what it would send."""
    settings = make_settings()
    store = await store_factory()
    processor = Processor(store, load_policy(settings))
    incoming = IncomingMail(
        mail(1),
        "ana@x.gov.uk",
        ("escalations@localhost",),
        None,
        False,
        FRIDAY.replace(hour=9, minute=30),
    )
    await store.accept(incoming)
    await processor.burst()
    processor.close()
    await Dispatcher(store, settings, clock=lambda: FRIDAY.replace(hour=10)).burst()
    actions = {a.kind: a for listed in await store.list_mails() for a in listed.actions}
    assert {a.state for a in actions.values()} == {"dry_run"}
    assert actions["page"].result is not None
    assert actions["page"].result["event"]["payload"]["severity"] == "critical"
    assert actions["alarm"].result and actions["alarm"].result["channel"] == "high-priority-alarms"
    assert (
        actions["reply"].result
        and "Auto-Submitted: auto-replied" in actions["reply"].result["message"]
    )


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_outcomes_retries_and_page_latency_reach_the_metrics(world: World) -> None:
    """escalator_actions_total, escalator_action_retries_total and the accept-to-page histogram
    (the names the alert rules use) move with what the dispatcher does."""
    before = {
        "sent": sample("escalator_actions_total", kind="page", outcome="sent"),
        "retries": sample("escalator_action_retries_total", kind="page"),
        "pages": sample("escalator_accept_to_page_seconds_count"),
    }
    world.pd.script("500")
    await world.receive(mail(1), FRIDAY.replace(hour=20))
    await world.drain(world.dispatcher(), step=10)
    assert sample("escalator_actions_total", kind="page", outcome="sent") == before["sent"] + 1
    assert sample("escalator_action_retries_total", kind="page") == before["retries"] + 1
    assert sample("escalator_accept_to_page_seconds_count") == before["pages"] + 1


# -- what was sent (issue 13) -------------------------------------------------------------------


async def test_every_action_keeps_the_exact_payload_it_sent(world: World) -> None:
    """A sent action keeps exactly what left (the event PagerDuty got, the blocks Slack got, the
    whole reply mail): `list --json` gives it as "payload" and `review show` prints it."""
    await world.receive(mail(1), FRIDAY.replace(hour=9, minute=30))
    await world.dispatcher().burst()
    actions = {a.kind: a for a in await world.actions()}
    assert {a.state for a in actions.values()} == {"sent"}
    sent = {kind: action_json(a)["payload"] for kind, a in actions.items()}
    (event,) = [r.body for r in world.pd.received]
    assert sent["page"] == {key: v for key, v in event.items() if key != "routing_key"}
    (alarm,) = world.slack.posts_in("high-priority-alarms")
    assert sent["alarm"]["blocks"] == alarm.blocks and sent["alarm"]["text"] == alarm.text
    (ack,) = world.slack.posts_in("laa-apply-incident")
    assert sent["ack"]["blocks"] == ack.blocks
    (reply,) = world.sink.delivered
    assert reply.message["Message-ID"] in sent["reply"]["message"]
    kept = message_from_string(sent["reply"]["message"], policy=email.policy.default)
    assert isinstance(kept, EmailMessage)
    assert kept.get_content().split() == reply.message.get_content().split()
    view = await deeds.load_view(world.store, actions["page"].mail_id)
    shown = show_text(view)
    assert '"event_action": "trigger"' in shown and "Auto-Submitted: auto-replied" in shown


# -- conversations -----------------------------------------------------------------------------


async def test_follow_up_reaches_same_incident_and_slack_thread(world: World) -> None:
    """A reply in the thread of an escalation re-triggers the same dedup_key (one incident)
    and its alarm lands in the first alarm's Slack thread."""
    at = FRIDAY.replace(hour=9, minute=30)
    await world.receive(mail(1), at)
    dispatcher = world.dispatcher()
    await dispatcher.burst()
    await world.receive(mail(2, in_reply_to="m1@digital.justice.gov.uk"), at + timedelta(minutes=5))
    await dispatcher.burst()
    assert list(world.pd.incidents) == ["m1@digital.justice.gov.uk"]
    first, second = world.slack.posts_in("high-priority-alarms")
    assert first.thread_ts is None and second.thread_ts == first.ts


async def test_follow_up_after_a_restart_still_joins_the_first_alarm_thread(world: World) -> None:
    """The thread of a conversation's first alarm is found in the store: a follow-up handled by
    a new dispatcher on a new store connection (a restart, or another replica) still threads."""
    at = FRIDAY.replace(hour=9, minute=30)
    await world.receive(mail(1), at)
    await world.dispatcher().burst()
    restarted = world.dispatcher(store=await world.store_factory())
    await world.receive(mail(2, in_reply_to="m1@digital.justice.gov.uk"), at + timedelta(minutes=5))
    await restarted.burst()
    first, second = world.slack.posts_in("high-priority-alarms")
    assert first.thread_ts is None and second.thread_ts == first.ts


async def test_alarm_of_an_unrelated_mail_starts_its_own_thread(world: World) -> None:
    """Only the same conversation threads: a new incident's alarm is a new top-level post."""
    at = FRIDAY.replace(hour=9, minute=30)
    await world.receive(mail(1), at)
    await world.receive(mail(2), at + timedelta(minutes=1))
    await world.dispatcher().burst()
    assert [p.thread_ts for p in world.slack.posts_in("high-priority-alarms")] == [None, None]


async def test_follow_up_decided_with_its_original_pages_with_the_original_facts(
    world: World,
) -> None:
    """A one-line follow-up ("the channel is #x") decided together with its rejected original
    (as the decide worker records it: "merged_with") pages and alarms with the original's
    facts, and its actions share the original's conversation key."""
    at = FRIDAY.replace(hour=9, minute=30)
    await world.receive(mail(1, channel=None, extra="").replace(b"is down (1)", b"(1)"), at)
    (original,) = [m.mail for m in await world.store.list_mails()]
    assert original.verdict == "reject"
    follow_up = (
        b"From: ana@digital.justice.gov.uk\nTo: escalations@localhost\nSubject: Re: LAA apply\n"
        b"Message-ID: <m2@digital.justice.gov.uk>\nIn-Reply-To: <m1@digital.justice.gov.uk>\n"
        b"References: <m1@digital.justice.gov.uk>\n\nThe channel is #laa-apply-incident.\n"
    )
    sender = "ana@digital.justice.gov.uk"
    incoming = IncomingMail(follow_up, sender, ("escalations@localhost",), None, False, at)
    accepted = await world.store.accept(incoming)
    await decide_as_the_worker_will(world, accepted.mail_id, original.id)
    await world.dispatcher().burst()
    # The original alone was a reject in doubt (an outage, no channel): its notices (issue 15,
    # a warning event and a "Held, may be an incident" post) went too, as this harness leaves
    # it held; they are not the page and alarm looked at here.
    (event,) = [r.body for r in world.pd.received if r.body["payload"]["severity"] != "warning"]
    wrote = event["payload"]["custom_details"]["what they wrote"]
    # the root mail's facts first, then the follow-up as an update (issue 13)
    assert wrote.index("502 error") < wrote.index("Update from the sender:\nThe channel is #")
    assert event["dedup_key"] == "m1@digital.justice.gov.uk"
    pages = [link["href"] for link in event["links"]]
    for mail_id in (original.id, accepted.mail_id):  # every mail of the thread is linked
        assert f"{world.settings.public_url}/mails/{mail_id}" in pages
    alarms = world.slack.posts_in("high-priority-alarms")
    (alarm,) = [post for post in alarms if not post.text.startswith("Held, may be an incident")]
    facts = str(alarm.blocks)
    assert "502 error" in facts and "Update from the sender:" in facts
    assert f"/mails/{original.id}|Mail #{original.id} (first mail)>" in facts


async def decide_as_the_worker_will(world: World, mail_id: int, original_id: int) -> None:
    """What the decide worker is to do for a follow-up (see the report to the lead)."""
    row, earlier = await world.store.get_mail(mail_id), await world.store.get_mail(original_id)
    assert row is not None and earlier is not None
    outcome = decide_stored(row, load_policy(world.settings), earlier=(earlier,))
    assert outcome.record.merged_with == (original_id,) and outcome.record.verdict == "escalate"
    assert await world.store.record_decision(mail_id, *outcome)


# -- exactly once ------------------------------------------------------------------------------


async def test_two_dispatchers_racing_page_each_mail_once(world: World) -> None:
    """Two dispatchers on two connections to one store: every mail is paged exactly once."""
    for n in range(20):
        await world.receive(mail(n), FRIDAY.replace(hour=20))
    other = await world.store_factory()
    first, second = world.dispatcher(batch_size=3), world.dispatcher(store=other, batch_size=3)
    await asyncio.gather(first.burst(), second.burst())
    assert sorted(world.pd.triggered) == sorted(f"m{n}@digital.justice.gov.uk" for n in range(20))
    assert first.done > 0 and second.done > 0
    actions = await world.actions()
    assert {a.state for a in actions if a.kind != "reply"} == {"sent"}
    # one sender: the racing dispatchers keep its reply budget between them (issue 16)
    replies = [a.state for a in actions if a.kind == "reply"]
    limit = world.settings.sender_reply_limit
    assert replies.count("sent") == limit == len(world.sink.delivered)
    assert replies.count("skipped") == 20 - limit


async def test_dispatcher_killed_mid_page_is_finished_by_the_next_one(world: World) -> None:
    """Killed while PagerDuty holds the request: the action is not claimed again until its lease
    ends; then the new dispatcher re-sends under the same dedup_key, so one incident results."""
    await world.receive(mail(1), FRIDAY.replace(hour=20))
    world.pd.hold.clear()
    dying_store = await world.store_factory()
    doomed = asyncio.create_task(world.dispatcher(dying_store, lease_seconds=60).burst())
    while world.pd.arrived == 0:
        await asyncio.sleep(0.01)
    await dying_store.close()  # the process is gone: nothing it does reaches the store now
    world.pd.hold.set()  # PagerDuty did get the event; nobody recorded it
    await asyncio.gather(doomed, return_exceptions=True)
    restarted = world.dispatcher(lease_seconds=60)
    assert await restarted.burst() == 0  # leased to the dead dispatcher for now
    world.clock.advance(61)
    await restarted.burst()
    page = next(a for a in await world.actions() if a.kind == "page")
    assert page.state == "sent" and page.attempts == 2
    assert list(world.pd.incidents) == ["m1@digital.justice.gov.uk"]


async def test_dispatcher_killed_mid_slack_post_does_not_post_twice(world: World) -> None:
    """Killed while Slack holds the alarm and the ack (which Slack then posts): the next
    dispatcher finds each message by its metadata and records it instead of posting again."""
    world.slack.channels["C0LAA00001"].member = True
    await world.receive(mail(1), FRIDAY.replace(hour=11))
    world.slack.hold.clear()
    dying_store = await world.store_factory()
    doomed = asyncio.create_task(world.dispatcher(dying_store, lease_seconds=60).burst())
    while world.slack.arrived < 2:
        await asyncio.sleep(0.01)
    await dying_store.close()  # the process is gone: nothing it does reaches the store now
    world.slack.hold.set()
    await asyncio.gather(doomed, return_exceptions=True)
    while len(world.slack.posts) < 2:
        await asyncio.sleep(0.01)
    world.clock.advance(61)
    await world.dispatcher().burst()
    assert len(world.slack.posts_in("high-priority-alarms")) == 1
    assert len(world.slack.posts_in("laa-apply-incident")) == 1
    slack_actions = [a for a in await world.actions() if a.kind in ("alarm", "ack")]
    assert all(a.state == "sent" and (a.result or {}).get("recovered") for a in slack_actions)


async def test_pagerduty_outage_ends_with_every_page_once_in_order(world: World) -> None:
    """PagerDuty answers 503 for five minutes while mails keep coming; afterwards every page
    has been delivered exactly once, in the order the mails arrived, with no fallback."""
    world.clock.now = FRIDAY.replace(hour=20)
    dispatcher = world.dispatcher()
    world.pd.down = True
    for n in range(6):
        await world.receive(mail(n), world.clock.now)
        await dispatcher.burst()
        world.clock.advance(50)
    world.clock.advance(20)  # five minutes of outage
    world.pd.down = False
    await world.drain(dispatcher, step=10)
    assert world.pd.triggered == [f"m{n}@digital.justice.gov.uk" for n in range(6)]
    # no "page manually" alarm: PagerDuty came back within the horizon
    assert world.slack.posts_in("high-priority-alarms") == []
    assert any(r.status == 503 for r in world.pd.received)


async def test_pagerduty_down_past_horizon_alarms_page_manually(world: World) -> None:
    """PagerDuty unreachable past the horizon: Slack says 'page manually' once, and the page is
    never given up: retried at the slow cadence, delivered once PagerDuty is back."""
    world.pd.down = True
    await world.receive(mail(1), FRIDAY.replace(hour=20))
    dispatcher = world.dispatcher()
    for _ in range(60):  # 30 minutes, three times the horizon
        await dispatcher.burst()
        world.clock.advance(30)
    page = next(a for a in await world.actions() if a.kind == "page")
    assert page.state == "pending" and (page.last_error or "").startswith("failing since")
    (alarm,) = world.slack.posts_in("high-priority-alarms")
    assert "page on-call manually" in alarm.text and alarm.thread_ts is None
    tries = world.pd.arrived
    assert 8 <= tries <= 30, "slower after the horizon, but still trying"
    world.pd.down = False
    await world.drain(dispatcher, step=30)
    assert world.pd.triggered == ["m1@digital.justice.gov.uk"]
    assert len(world.slack.posts_in("high-priority-alarms")) == 1


async def test_a_failing_page_stops_only_when_a_person_takes_it_over(world: World) -> None:
    """PagerDuty down past the horizon: the page goes on failing until a person resolves it on
    the review page (Acknowledge calls settle_failing); then it is retried no more, and the
    sender's reply never said "paged"."""
    world.pd.down = True
    await world.receive(mail(1), FRIDAY.replace(hour=20))
    dispatcher = world.dispatcher()
    for _ in range(30):
        await dispatcher.burst()
        world.clock.advance(30)
    (page,) = [a for a in await world.actions() if a.kind == "page"]
    assert page.state == "pending"
    note = f"{RESOLVED} by support@example.org"
    assert await world.store.settle_failing(page.mail_id, "page", note, world.clock.now) == 1
    tries = world.pd.arrived
    for _ in range(30):
        await dispatcher.burst()
        world.clock.advance(30)
    assert world.pd.arrived == tries and world.pd.triggered == []
    (page,) = [a for a in await world.actions() if a.kind == "page"]
    assert page.state == "skipped" and page.last_error == note
    (reply,) = world.sink.delivered
    text = reply.message.get_body(("plain",)).get_content()
    assert "has not accepted the page yet" in text and "has been paged" not in text


async def test_slack_down_past_horizon_pages_saying_so(world: World) -> None:
    """In support hours Slack is the only route; if it stays down, on-call is paged and told,
    and the alarm itself is still delivered once Slack is back."""
    world.slack.down = True
    await world.receive(mail(1), FRIDAY.replace(hour=11))
    dispatcher = world.dispatcher()
    for _ in range(40):
        await dispatcher.burst()
        world.clock.advance(30)
    (event,) = [r.body for r in world.pd.received if r.status == 202]
    assert "Slack alarm to support FAILING" in event["payload"]["summary"]
    world.slack.down = False
    await world.drain(dispatcher, step=30)
    assert len(world.slack.posts_in("high-priority-alarms")) == 1


async def test_slack_rate_limit_waits_for_retry_after(world: World) -> None:
    """A 429 with Retry-After: 7 is retried no sooner than 7 s later, then succeeds."""
    world.slack.script("chat.postMessage", "429", "429")  # the alarm's and the ack's
    await world.receive(mail(1), FRIDAY.replace(hour=11))
    dispatcher = world.dispatcher()
    await dispatcher.burst()
    alarm = next(a for a in await world.actions() if a.kind == "alarm")
    assert alarm.state == "pending" and alarm.due_at >= FRIDAY.replace(hour=11, second=7)
    world.clock.advance(6)
    await dispatcher.burst()
    assert world.slack.posts == []
    world.clock.advance(1.5)
    await dispatcher.burst()
    assert len(world.slack.posts) == 2


async def test_pagerduty_timeout_is_retried(world: World) -> None:
    """A PagerDuty request that times out is retried later and delivered once."""
    world.pd.script("timeout")
    adapters = Adapters(
        pagerduty=PagerDuty(world.pd.routing_key, world.pd.url, world.pd.ca_file, timeout=0.5)
    )
    await world.receive(mail(1), FRIDAY.replace(hour=20))
    await world.drain(world.dispatcher(adapters=adapters), step=10)
    assert world.pd.triggered == ["m1@digital.justice.gov.uk"]


async def test_ack_in_unknown_channel_is_skipped_and_the_reply_still_goes(world: World) -> None:
    """channel_not_found for the ack is recorded as skipped with the reason; the reply is sent."""
    await world.receive(mail(1, channel="no-such-incident"), FRIDAY.replace(hour=11))
    await world.dispatcher().burst()
    ack = next(a for a in await world.actions() if a.kind == "ack")
    assert ack.state == "skipped" and "channel_not_found" in (ack.last_error or "")
    assert len(world.sink.delivered) == 1


async def test_archived_channel_ack_is_skipped(world: World) -> None:
    """is_archived for the ack is recorded as skipped with the reason."""
    world.slack.add_channel("C0OLD00001", "old-incident", is_archived=True, member=False)
    await world.receive(mail(1, channel="old-incident"), FRIDAY.replace(hour=11))
    await world.dispatcher().burst()
    ack = next(a for a in await world.actions() if a.kind == "ack")
    assert ack.state == "skipped" and "is_archived" in (ack.last_error or "")


async def test_reject_replies_are_limited_per_sender(world: World) -> None:
    """At most one reject reply per sender per 10 minutes (a loop guard); later ones are skipped."""
    dispatcher = world.dispatcher()
    for n, minutes in enumerate((0, 3, 11)):
        world.clock.now = FRIDAY.replace(hour=11, minute=minutes)
        await world.receive(mail(n, channel=None, service_down=False), world.clock.now)
        await dispatcher.burst()
    states = [a.state for a in await world.actions() if a.kind == "reply"]
    assert states == ["sent", "skipped", "sent"] and len(world.sink.delivered) == 2


async def test_reject_reply_guard_survives_a_restart(world: World) -> None:
    """The loop guard lives in the store: a dispatcher restarted (new instance, new store
    connection) between two rejects from one sender still skips the second reply."""
    for n, minutes in enumerate((0, 3, 11)):
        world.clock.now = FRIDAY.replace(hour=11, minute=minutes)
        await world.receive(mail(n, channel=None, service_down=False), world.clock.now)
        await world.dispatcher(store=await world.store_factory()).burst()
    states = [a.state for a in await world.actions() if a.kind == "reply"]
    assert states == ["sent", "skipped", "sent"] and len(world.sink.delivered) == 2
    skipped = [a for a in await world.actions() if a.kind == "reply" and a.state == "skipped"]
    assert "loop guard" in (skipped[0].last_error or "")


async def test_reject_reply_guard_counts_dry_runs_and_ignores_case(
    make_settings: Callable[..., Settings], store_factory: Any
) -> None:
    """In dry run a reject reply still takes the sender's slot; ANA@ and ana@ are one sender."""
    settings = make_settings()
    store = await store_factory()
    processor = Processor(store, load_policy(settings))
    for n, sender in enumerate(("ana@x.gov.uk", "ANA@X.gov.uk")):
        at = FRIDAY.replace(hour=11, minute=n)
        raw = mail(n, channel=None, service_down=False, sender=sender)
        await store.accept(IncomingMail(raw, sender, ("escalations@localhost",), None, False, at))
        await processor.burst()
        await Dispatcher(store, settings, clock=Clock(at)).burst()
    processor.close()
    replies = [
        a for listed in await store.list_mails() for a in listed.actions if a.kind == "reply"
    ]
    assert [a.state for a in replies] == ["dry_run", "skipped"]


async def test_reply_slot_is_kept_by_its_own_retry_and_freed_after_ten_minutes(
    store: Store,
) -> None:
    """claim_reply_slot: the holder may claim again (a retried send); another reply is told
    when the slot was taken; after the window anyone may take it."""
    at = FRIDAY.replace(hour=11)

    def reject(now: datetime) -> ReplyClaim:
        return reply_claim("reject", now, per_hour=0)

    assert await store.claim_reply_slot("Ana@X.gov.uk", 1, reject(at)) is None
    later = at + timedelta(minutes=3)
    assert await store.claim_reply_slot("ana@x.gov.uk", 1, reject(later)) is None
    refused = await store.claim_reply_slot("ana@x.gov.uk", 2, reject(later))
    assert refused is not None and refused.first_at == at
    past = at + timedelta(minutes=10, seconds=1)
    assert await store.claim_reply_slot("ana@x.gov.uk", 2, reject(past)) is None


async def test_two_replicas_racing_send_one_reject_reply_per_sender(world: World) -> None:
    """Two dispatchers on two store connections, two rejects from one sender due together:
    the slot is taken atomically, so exactly one reply goes out and the other is skipped."""
    world.clock.now = FRIDAY.replace(hour=11)
    for n in range(2):
        await world.receive(mail(n, channel=None, service_down=False), world.clock.now)
    other = world.dispatcher(store=await world.store_factory(), batch_size=1)
    await asyncio.gather(world.dispatcher(batch_size=1).burst(), other.burst())
    states = sorted(a.state for a in await world.actions() if a.kind == "reply")
    assert states == ["sent", "skipped"] and len(world.sink.delivered) == 1


@pytest.mark.parametrize(
    ("header", "mail_from"),
    [
        ("Auto-Submitted: auto-replied\n", "ana@digital.justice.gov.uk"),
        ("List-Id: <ops.lists.example>\n", "ana@digital.justice.gov.uk"),
        ("", "<>"),
        ("", "MAILER-DAEMON@digital.justice.gov.uk"),
    ],
)
async def test_no_reply_to_automated_mail_lists_or_null_senders(
    world: World, header: str, mail_from: str
) -> None:
    """Auto-replies, list mail, a null reverse-path and mailer daemons never get a reply."""
    raw = header.encode() + mail(1, channel=None, service_down=False)
    await world.receive(raw, FRIDAY.replace(hour=11), mail_from=mail_from)
    await world.dispatcher().burst()
    assert world.sink.delivered == []
    reply = next(a for a in await world.actions() if a.kind == "reply")
    assert reply.state == "skipped"


async def test_relay_4xx_is_retried_and_delivered_once(world: World) -> None:
    """A 451 from the relay leaves the reply pending; the next try delivers it once."""
    world.sink.script("451 4.3.0 try later")
    await world.receive(
        mail(1, channel=None, service_down=False, subject="Password rotation"),
        FRIDAY.replace(hour=11),
    )
    await world.drain(world.dispatcher(), step=10)
    assert len(world.sink.delivered) == 1


# -- the retry policy as values ------------------------------------------------------------------


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    """base·2^(n-1), capped, spread by ±50 %."""
    policy = Backoff(base=2, factor=2, cap=120, jitter=0.5)
    assert [backoff_delay(policy, n, 0.5) for n in (1, 2, 3, 10)] == [2, 4, 8, 120]
    assert backoff_delay(policy, 3, 0.0) == 4 and backoff_delay(policy, 3, 0.999) < 12


def test_retry_after_wins_when_longer_and_horizon_gives_up() -> None:
    """Retry-After delays the next try; past the horizon from the first failure, give up."""
    now = FRIDAY
    step = next_step(
        Backoff(), attempts=1, last_error=None, now=now, error="429", retry_after=30, draw=0.5
    )
    assert isinstance(step, RetryAt) and step.due_at == now + timedelta(seconds=30)
    later = now + timedelta(seconds=590)
    final = next_step(
        Backoff(horizon=600),
        attempts=9,
        last_error=step.error,
        now=later,
        error="503",
        retry_after=None,
        draw=0.5,
    )
    assert isinstance(final, GiveUp) and "590 s" in final.error


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After is delta-seconds or an HTTP date; garbage is ignored."""
    assert parse_retry_after("12", FRIDAY) == 12.0
    assert parse_retry_after("Fri, 27 Nov 2026 00:01:00 GMT", FRIDAY) == 60.0
    assert parse_retry_after("soon", FRIDAY) is None and parse_retry_after(None, FRIDAY) is None


# -- through the whole service: an SMTP client to the stand-ins -----------------------------------


async def test_service_dispatches_what_it_decided_from_smtp_to_standins(
    world: World, start_server: Callable[..., Any]
) -> None:
    """A mail sent over SMTP to the running service is decided (at the real now) and the
    service's own dispatch worker carries out exactly the decided actions."""
    overrides = {
        name: getattr(world.settings, name)
        for name in ("pagerduty_events_url", "pagerduty_ca_file", "slack_api_url")
    }
    for name in ("pagerduty_routing_key", "slack_bot_token", "relay_url"):
        overrides[name] = getattr(world.settings, name).get_secret_value()
    server = await asyncio.to_thread(start_server, **overrides)
    await aiosmtplib.send(
        mail(1, extra=HOSTILE + "\n"),
        hostname=server.host,
        port=server.port,
        sender="ana@digital.justice.gov.uk",
        recipients=["escalations@localhost"],
    )
    listed = await settled(server)
    decision = listed.mail.decision
    assert decision is not None
    assert (len(world.pd.triggered) == 1) == (decision.page == "now")
    assert len(world.slack.posts_in("high-priority-alarms")) == int(decision.alarm)
    assert len(world.slack.posts_in("laa-apply-incident")) == 1
    assert len(world.sink.delivered) == 1
    ours = (f"{server.settings.public_url}/mails/", *SLACK_CHANNEL_LINKS)
    assert all(mentions(post, ours) == [] for post in world.slack.posts)


async def settled(server: Any) -> ListedMail:
    """The one stored mail once it is decided and nothing of it is due and pending."""
    for _ in range(600):
        mails = await asyncio.to_thread(server.mails, False)
        now = datetime.now(UTC)
        due = [a for m in mails for a in m.actions if a.state == "pending" and a.due_at <= now]
        if mails and mails[0].actions and not due:
            return mails[0]  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError("the service did not settle")
