"""Storms (issue 16) and a fair outbox (issue 12), against real stores and the stand-ins.

A sender's storm (same sender, same subject up to numbers, or the same thread) pages once, posts
one alarm thread with a counter, acknowledges and replies once; every mail of it is still stored
and decided, the later ones recorded as joined to the first. Other senders' mails during the
storm each page once. The outbox hands out one page per sender in turn, and keeps PagerDuty's
rate limit. Mails are accepted and decided by the real processor; the dispatcher runs in burst
mode with a clock the test moves (no sleeps, no timed asserts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from loopkit import escalation, loop_world
from standins import wiring
from standins.pagerduty import PagerDutyStandIn
from standins.slack import SlackStandIn
from standins.smtp_sink import SmtpSink

from escalator.core.actions import PlannedAction
from escalator.core.storms import is_milestone, normalised_subject
from escalator.decider.processor import Processor, first_turns
from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.settings import Settings
from escalator.store import ActionRow, IncomingMail, ListedMail, Store

MONDAY_0930 = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)  # page + alarm + ack + reply
WINDOW = timedelta(minutes=15)


def mail(n: int, sender: str, subject: str = "LAA apply is down", reply_to: str = "") -> bytes:
    thread = f"In-Reply-To: <{reply_to}>\nReferences: <{reply_to}>\n" if reply_to else ""
    return (
        f'From: "Reporter" <{sender}>\nTo: escalations@localhost\n'
        f"Subject: {subject} ({n})\nMessage-ID: <s{n}.{sender}>\n{thread}"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\n"
        "Our incident channel is #laa-apply-incident.\n"
    ).encode()


@dataclass
class Storm:
    store: Store
    processor: Processor
    dispatcher: Dispatcher
    pd: PagerDutyStandIn
    slack: SlackStandIn
    sink: SmtpSink
    now: list[datetime]

    async def receive(self, raw: bytes, sender: str, at: datetime) -> None:
        self.now[0] = max(self.now[0], at)
        await self.store.accept(
            IncomingMail(raw, sender, ("escalations@localhost",), None, False, at)
        )

    async def settle(self) -> list[ListedMail]:
        """Decide everything, then run the outbox until nothing is due (the clock moves)."""
        await self.processor.burst()
        for _ in range(50):
            await self.dispatcher.burst()
            listed = await self.store.list_mails()
            if not [a for m in listed for a in m.actions if a.state == "pending"]:
                return listed
            self.now[0] += timedelta(seconds=30)
        raise AssertionError("actions still pending")


@pytest.fixture
async def storm(
    tmp_path: Path, make_settings: Callable[..., Settings], store_factory: Any
) -> AsyncIterator[Storm]:
    async with PagerDutyStandIn(tmp_path) as pd, SlackStandIn() as slack:
        with SmtpSink() as sink:
            slack.add_channel("C0LAA00001", "laa-apply-incident", member=True)
            settings = make_settings(**wiring(pd, slack, sink.url))
            store = await store_factory()
            processor = Processor(store, load_policy(settings), storm_window=WINDOW)
            now = [MONDAY_0930]
            dispatcher = Dispatcher(store, settings, clock=lambda: now[0], draw=lambda: 0.5)
            yield Storm(store, processor, dispatcher, pd, slack, sink, now)
            await dispatcher.close()
            processor.close()


def storm_of(listed: ListedMail) -> dict[str, Any]:
    record = listed.mail.decision
    return dict(record.decision.get("storm") or {}) if record is not None else {}


def actions_of(listed: ListedMail, kind: str) -> list[ActionRow]:
    return [a for a in listed.actions if a.kind == kind]


async def test_a_storm_pages_once_and_others_page_each(storm: Storm) -> None:
    """12 mails from one sender (subjects differ only by numbers) among 3 other senders' mails:
    1 page, 1 alarm thread with its counter, 1 ack and 1 reply for the storm; each other sender
    paged, alarmed, acknowledged and answered once; every mail stored and decided."""
    others = ["bo@digital.justice.gov.uk", "cy@digital.justice.gov.uk", "di@digital.justice.gov.uk"]
    at = MONDAY_0930
    for n in range(12):
        await storm.receive(mail(n, "ana@digital.justice.gov.uk"), "ana@digital.justice.gov.uk", at)
        if n % 4 == 1:
            other = others[n // 4]
            await storm.receive(mail(100 + n, other), other, at)
        at += timedelta(seconds=1)
    listed = await storm.settle()
    assert len(listed) == 15 and all(m.mail.verdict == "escalate" for m in listed)
    assert sorted(storm.pd.triggered) == sorted(
        [
            "s0.ana@digital.justice.gov.uk",
            *(f"s{100 + n}.{o}" for n, o in zip((1, 5, 9), others, strict=True)),
        ]
    )
    alarms = storm.slack.posts_in("high-priority-alarms")
    tops = [p for p in alarms if p.thread_ts is None]
    assert len(tops) == 4
    counters = [p for p in alarms if p.thread_ts is not None]
    assert len(counters) == 3  # at 2, 5 and 10 mails
    assert len({p.thread_ts for p in counters}) == 1 and counters[0].thread_ts in {
        p.ts for p in tops
    }
    assert all("mails so far" in p.text + str(p.args.get("blocks")) for p in counters)
    assert len(storm.slack.posts_in("laa-apply-incident")) == 4
    assert len(storm.sink.delivered) == 4
    ana = [m for m in listed if m.mail.mail_from == "ana@digital.justice.gov.uk"]
    first = ana[0].mail.id
    for joined in ana[1:]:
        assert storm_of(joined).get("joined") == first
        (page,) = actions_of(joined, "page")
        assert page.state == "skipped" and f"storm of mail {first}" in (page.last_error or "")
    assert storm_of(ana[-1])["count"] == 12


async def test_in_on_call_only_cover_the_counter_goes_to_pagerduty(storm: Storm) -> None:
    """At 20:00 (on-call only: a page, no alarm) there is no alarm thread: the counter goes to
    PagerDuty as a trigger under the storm's dedup key (appended to its open alert) at 2, 5 and
    10 mails, after the storm's own page; the subject arrives flattened and bounded."""
    sender, at = "ana@digital.justice.gov.uk", MONDAY_0930.replace(hour=20)
    hostile = "=?utf-8?q?LAA_apply_is_down=0AX-Injected:_yes_" + "a" * 80 + "?="
    for n in range(12):
        await storm.receive(mail(n, sender, subject=hostile), sender, at + timedelta(seconds=n))
    listed = await storm.settle()
    assert storm.pd.triggered == [f"s0.{sender}"] * 4
    assert storm.slack.posts_in("high-priority-alarms") == []
    first, *counters = (r.body for r in storm.pd.received)
    assert "mails so far" not in first["payload"]["summary"]
    assert [c["payload"]["custom_details"]["mails so far"] for c in counters] == [2, 5, 10]
    first_id = listed[0].mail.id
    for counter in counters:
        summary = counter["payload"]["summary"]
        assert f"mails so far on escalation #{first_id}:" in summary
        assert "\n" not in summary and len(summary) <= 1024
        assert counter["links"][0]["href"].endswith(f"/mails/{first_id}")
    assert len(storm.sink.delivered) == 1


async def test_the_counter_never_reopens_a_resolved_incident(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> None:
    """On-call-only cover: once PagerDuty resolved the storm's incident, the counter is
    recorded as skipped, not sent (a trigger after a resolve would open a new incident)."""
    evening, root = MONDAY_0930.replace(hour=20), "loop1@digital.justice.gov.uk"
    async with loop_world(tmp_path, make_settings, store, sink, evening) as world:
        world.processor.close()
        world.processor = Processor(store, load_policy(world.settings), storm_window=WINDOW)
        await world.receive(escalation(1), evening)
        await world.dispatch()
        resolved = world.book.event("incident.resolved", root, evening + timedelta(minutes=1))
        assert (await world.post_webhook(resolved))[0] == 200
        await world.receive(escalation(2), evening + timedelta(minutes=2))
        await world.dispatch()
        assert world.pd.triggered == [root]
        (page,) = [a for a in await world.actions() if a.kind == "page" and a.mail_id == 2]
        assert page.state == "skipped" and "not re-opened" in (page.last_error or "")


async def test_a_reply_in_the_thread_joins_the_storm(storm: Storm) -> None:
    """A follow-up in the same thread, under a new subject, joins the first mail's storm."""
    sender = "ana@digital.justice.gov.uk"
    await storm.receive(mail(1, sender), sender, MONDAY_0930)
    follow_up = mail(2, sender, subject="Still down", reply_to=f"s1.{sender}")
    await storm.receive(follow_up, sender, MONDAY_0930 + timedelta(seconds=5))
    listed = await storm.settle()
    assert storm.pd.triggered == [f"s1.{sender}"]
    assert storm_of(listed[1])["joined"] == listed[0].mail.id


async def test_after_the_window_the_same_incident_pages_again(storm: Storm) -> None:
    """The window is fixed from the storm's first mail: a mail after it opens a new storm."""
    sender = "ana@digital.justice.gov.uk"
    await storm.receive(mail(1, sender), sender, MONDAY_0930)
    await storm.receive(mail(2, sender), sender, MONDAY_0930 + WINDOW + timedelta(seconds=1))
    listed = await storm.settle()
    assert storm.pd.triggered == [f"s1.{sender}", f"s2.{sender}"]
    assert "joined" not in storm_of(listed[1])


async def test_the_outbox_hands_out_one_page_per_sender_in_turn(store: Store) -> None:
    """30 due pages of one sender, then one of another: a claim of 5 includes the other's."""
    t0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    for n, sender in enumerate(["storm@x.gov.uk"] * 30 + ["other@y.gov.uk"]):
        raw = mail(n, sender)
        accepted = await store.accept(
            IncomingMail(raw, sender, ("escalations@localhost",), None, False, t0)
        )
        due = t0 + timedelta(milliseconds=n)
        payload = {"from_addr": sender}
        await store.add_actions(accepted.mail_id, (PlannedAction("page", due, f"k{n}", payload),))
    claimed = await store.claim_due_actions(t0 + timedelta(seconds=1), 5, 60)
    assert "other@y.gov.uk" in {a.payload["from_addr"] for a in claimed}


async def test_pagerduty_rate_limit_holds_pages_back_not_lost(
    tmp_path: Path, make_settings: Callable[..., Settings], store_factory: Any
) -> None:
    """With a budget of 2 events a minute, 4 senders' pages: 2 leave, 2 wait for a retry (no
    request is spent on them), and none fails."""
    async with PagerDutyStandIn(tmp_path) as pd:
        settings = make_settings(
            pagerduty_routing_key=pd.routing_key,
            pagerduty_events_url=pd.url,
            pagerduty_ca_file=pd.ca_file,
            pagerduty_events_per_minute=2,
        )
        store = await store_factory()
        processor = Processor(store, load_policy(settings), storm_window=WINDOW)
        dispatcher = Dispatcher(store, settings, clock=lambda: MONDAY_0930, draw=lambda: 0.5)
        try:
            for n in range(4):
                sender = f"r{n}@digital.justice.gov.uk"
                raw = mail(n, sender)
                await store.accept(
                    IncomingMail(raw, sender, ("escalations@localhost",), None, False, MONDAY_0930)
                )
            await processor.burst()
            await dispatcher.burst()
        finally:
            await dispatcher.close()
            processor.close()
        pages = [a for m in await store.list_mails() for a in m.actions if a.kind == "page"]
        assert len(pd.received) == 2 and len(pd.triggered) == 2
        assert sorted(a.state for a in pages) == ["pending", "pending", "sent", "sent"]
        assert any("rate limit" in (a.last_error or "") for a in pages)


def test_subjects_that_differ_by_numbers_or_prefixes_are_one() -> None:
    assert normalised_subject("RE: Fwd: Error rate 52% on  LAA") == normalised_subject(
        "error rate 61% on LAA"
    )
    assert normalised_subject("LAA down") != normalised_subject("CCQ down")


def test_the_counter_posts_at_a_handful_of_milestones() -> None:
    assert [n for n in range(2, 5001) if is_milestone(n)] == [2, 5, 10, 50, 100, 500, 1000, 5000]


async def test_the_decide_queue_takes_one_mail_per_sender_in_turn(store: Store) -> None:
    """40 undecided mails of one sender, then one of another: a batch of 8 includes it."""
    t0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    for n, sender in enumerate(["storm@x.gov.uk"] * 40 + ["other@y.gov.uk"]):
        rcpt = ("escalations@localhost",)
        incoming = IncomingMail(mail(n, sender), sender, rcpt, None, False, t0)
        await store.accept(incoming)
    batch = await store.undecided_mails(8, 10_000_000)
    assert "other@y.gov.uk" in {m.mail_from for m in batch}
    assert [m.id for m in batch if m.mail_from == "storm@x.gov.uk"] == sorted(
        m.id for m in batch if m.mail_from == "storm@x.gov.uk"
    )


async def test_several_senders_waiting_are_decided_first_turns_alone(store: Store) -> None:
    """A storm's backlog and another sender's mail: the batch decided now is each sender's
    oldest only (the other's page waits for no batch of storm mails); a storm alone is decided
    in whole batches."""
    t0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    for n, sender in enumerate(["storm@x.gov.uk"] * 20 + ["Other@y.gov.uk", "other@y.gov.uk"]):
        incoming = IncomingMail(
            mail(n, sender), sender, ("escalations@localhost",), None, False, t0
        )
        await store.accept(incoming)
    batch = first_turns(await store.undecided_mails(8, 10_000_000))
    assert [m.mail_from for m in batch] == ["storm@x.gov.uk", "Other@y.gov.uk"]
    storm_only = [m for m in await store.undecided_mails(30, 10_000_000) if "x.gov" in m.mail_from]
    assert first_turns(storm_only) == storm_only and len(storm_only) == 20
