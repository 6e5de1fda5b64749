"""A follow-up is an update, not a new escalation (issue 13, item 5): a reply-all on an escalated
thread gives no new reply, one thread reply under the first alarm and under the first ack, and a
PagerDuty trigger under the same dedup key (one incident). Hostile mail: a forged In-Reply-To
gets no further than the same mail would as a new one. Real store, decide worker, dispatcher,
stand-ins and web app (tests/loopkit.py); the clock is injected."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopkit import LoopWorld, escalation, loop_world
from standins.slack import Post
from standins.smtp_sink import SmtpSink

from escalator.core.updates import UPDATE_BURST
from escalator.decider.processor import Processor
from escalator.policy import load_policy
from escalator.settings import Settings
from escalator.store import ActionRow, Store

MORNING = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # Friday, support and on call: page + alarm
NIGHT = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # no cover: alarm now, page at 07:00
ANA, BO = "ana@digital.justice.gov.uk", "bo@digital.justice.gov.uk"
BORDER = "mx.border.example"
ROOT = "loop1@digital.justice.gov.uk"
CHANNELS = ("high-priority-alarms", "laa-apply-incident")  # the alarm's thread, the ack's
UPDATE_WORDS = "Update: payments now fail too, the 502 error rate on submit is 100%."


def reply_all(
    sender: str = BO,
    words: str = UPDATE_WORDS,
    n: int = 2,
    headers: str = "",
    in_reply_to: str = ROOT,
    channel: bool = True,
) -> bytes:
    """A reply-all in the escalation's thread: new words on top, the original quoted below."""
    return (
        f"{headers}From: <{sender}>\nTo: escalations@localhost\nCc: {ANA}\n"
        f"Subject: RE: LAA apply is down (1)\nMessage-ID: <reply{n}@digital.justice.gov.uk>\n"
        f"In-Reply-To: <{in_reply_to}>\nReferences: <{in_reply_to}>\n"
        "Date: Fri, 27 Nov 2026 11:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n"
        f"{words}\n{'Still talking in #laa-apply-incident.' if channel else ''}\n\n"
        f"> Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\n"
    ).encode()


def first_mail(headers: str = "") -> bytes:
    """Ana's escalation, with Bo on Cc (so Bo's reply-all is a participant's)."""
    return escalation(1).replace(
        b"To: escalations@localhost\n", f"{headers}To: escalations@localhost\nCc: {BO}\n".encode()
    )


@pytest.fixture
async def world(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> AsyncIterator[LoopWorld]:
    async with loop_world(tmp_path, make_settings, store, sink, MORNING) as built:
        yield built


def threaded(posts: list[Post]) -> tuple[Post, list[Post]]:
    """The one top-level post of a channel, and the replies in its thread."""
    (top,) = [post for post in posts if post.thread_ts is None]
    return top, [post for post in posts if post.thread_ts == top.ts]


async def actions_of(world: LoopWorld, mail_id: int) -> list[ActionRow]:
    return await world.store.mail_actions(mail_id)


async def test_a_reply_all_update_gives_no_new_reply_and_one_thread_post(world: LoopWorld) -> None:
    await world.receive(first_mail(), MORNING)
    await world.dispatch()
    await world.receive(reply_all(), MORNING + timedelta(minutes=10), sender=BO)
    await world.dispatch()
    update = await world.store.get_mail(2)
    assert update is not None and update.verdict == "escalate"  # it would page on its own
    assert update.decision is not None and update.decision.update is not None
    assert update.decision.update["mail_id"] == 1
    assert [d.rcpt_tos for d in world.sink.delivered] == [[ANA]]  # 0 new replies
    for channel in ("high-priority-alarms", "laa-apply-incident"):
        _, replies = threaded(world.slack.posts_in(channel))
        (post,) = replies  # 1 thread post, under the first alarm and under the first ack
        assert (
            f"Update from {BO} (mail 2)" in post.text
            and "error rate on submit is 100%" in post.text
        )
    assert world.pd.triggered == [ROOT, ROOT] and list(world.pd.incidents) == [ROOT]
    event = world.pd.received[-1].body
    details = event["payload"]["custom_details"]
    assert "payments now fail too" in details["what they wrote"]
    assert details["update to"].startswith("escalation #1") and BO in details["update from"]
    assert "Since 10:40" not in details["what they wrote"]  # its own words, not the quote
    own = {a.kind: a for a in await actions_of(world, 2) if not a.payload.get("update_of")}
    assert own["reply"].state == "skipped" and "update to escalation 1" in str(
        own["reply"].last_error
    )
    assert "An update to" in await world.page(2)


async def test_updates_never_page_before_the_escalations_deferred_page(world: LoopWorld) -> None:
    """Out of cover the escalation pages at 07:00: its update waits for that page too, while
    its thread reply goes into the alarm's thread at once."""
    await world.receive(first_mail(), NIGHT)
    await world.dispatch()
    await world.receive(reply_all(), NIGHT + timedelta(minutes=30), sender=BO)
    await world.dispatch()
    assert world.pd.received == []
    _, replies = threaded(world.slack.posts_in("high-priority-alarms"))
    assert len(replies) == 1 and "Update from" in replies[0].text
    pages = [
        a for a in await actions_of(world, 2) if a.kind == "page" and a.payload.get("update_of")
    ]
    (first_page,) = [a for a in await actions_of(world, 1) if a.kind == "page"]
    assert [a.due_at for a in pages] == [first_page.due_at]
    world.clock.now = first_page.due_at
    await world.dispatch()
    assert world.pd.triggered == [ROOT, ROOT]
    assert "Update on escalation #1" in world.pd.received[1].body["payload"]["summary"]


async def test_a_second_update_threads_under_the_first_escalation_too(world: LoopWorld) -> None:
    """An update of an update (a reply to Bo's reply) still belongs to Ana's escalation."""
    await world.receive(first_mail(), MORNING)
    await world.dispatch()
    await world.receive(reply_all(), MORNING + timedelta(minutes=10), sender=BO)
    again = reply_all(
        ANA,
        "Payments are back, submissions still fail.",
        3,
        in_reply_to="reply2@digital.justice.gov.uk",
    )
    await world.receive(again, MORNING + timedelta(minutes=20))
    await world.dispatch()
    _, replies = threaded(world.slack.posts_in("high-priority-alarms"))
    assert len(replies) == 2 and "Payments are back" in replies[1].text
    assert len(world.sink.delivered) == 1 and set(world.pd.triggered) == {ROOT}


async def test_a_later_update_never_overtakes_one_slack_refused(world: LoopWorld) -> None:
    """Two updates decided before one dispatch: Slack answers the first's thread replies 429;
    the second's wait behind them (not posted meanwhile), then both threads read in receipt
    order."""
    await world.receive(first_mail(), MORNING)
    await world.dispatch()
    await world.receive(reply_all(), MORNING + timedelta(minutes=10), sender=BO)
    await world.receive(reply_all(ANA, "Payments are back.", 3), MORNING + timedelta(minutes=20))
    world.slack.script("chat.postMessage", "429", "429")
    await world.dispatch()
    assert [threaded(world.slack.posts_in(c))[1] for c in CHANNELS] == [[], []]
    world.clock.advance(600)
    await world.dispatch()
    for channel in CHANNELS:
        _, replies = threaded(world.slack.posts_in(channel))
        assert ["(mail 2)" in replies[0].text, "(mail 3)" in replies[1].text] == [True, True]


async def test_a_resolved_incident_is_not_updated(world: LoopWorld) -> None:
    """After PagerDuty resolved it, a mail in the thread is a new escalation again (a trigger
    under the old key opens a new incident, as it should for an outage that came back)."""
    await world.receive(first_mail(), MORNING)
    await world.dispatch()
    body = world.book.event("incident.resolved", ROOT, MORNING + timedelta(minutes=5))
    assert (await world.post_webhook(body))[0] == 200
    await world.receive(reply_all(), MORNING + timedelta(minutes=10), sender=BO)
    await world.dispatch()
    update = await world.store.get_mail(2)
    assert update is not None and update.decision is not None and update.decision.update is None
    assert BO in [d.rcpt_tos[0] for d in world.sink.delivered]


# -- hostile mail ----------------------------------------------------------------------------

DMARC = f"Authentication-Results: {BORDER}; dmarc=pass header.from=digital.justice.gov.uk\n"
ANY_NEWS = "Any news on this?"


def any_news(sender: str, headers: str = "") -> bytes:
    """A reply with no facts and no channel of its own: alone, a reject (held)."""
    return reply_all(sender, ANY_NEWS, headers=headers, channel=False)


@pytest.fixture
async def checked(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> AsyncIterator[LoopWorld]:
    """Senders checked against the border's Authentication-Results (annotate, the default)."""
    async with loop_world(
        tmp_path, make_settings, store, sink, MORNING, authserv_id=BORDER
    ) as built:
        yield built


async def thread_replies(world: LoopWorld) -> list[Post]:
    """Replies in the escalation's alarm thread (its first top-level post). A held reply whose
    subject states an outage may add a top-level doubt notice of its own: that is not the thread."""
    posts = world.slack.posts_in("high-priority-alarms")
    top = next(post for post in posts if post.thread_ts is None)
    return [post for post in posts if post.thread_ts == top.ts]


async def test_a_verified_participants_any_news_is_an_update(checked: LoopWorld) -> None:
    """ "Any news?" alone would be held for missing facts; from a verified participant of the
    thread it is an update: posted in the thread, not held, not answered."""
    await checked.receive(first_mail(DMARC), MORNING)
    await checked.dispatch()
    await checked.receive(any_news(BO, DMARC), MORNING + timedelta(minutes=5), BO)
    await checked.dispatch()
    mail = await checked.store.get_mail(2)
    assert mail is not None and (mail.verdict, mail.review) == ("reject", None)
    assert mail.decision is not None and mail.decision.update is not None
    (post,) = await thread_replies(checked)
    assert ANY_NEWS in post.text and "unverified" not in post.text
    assert len(checked.sink.delivered) == 1


@pytest.mark.parametrize(
    ("sender", "headers"),
    [
        (BO, ""),  # a participant's address, but nothing vouches for it: a forged From
        (
            "mallory@attacker.example",
            f"Authentication-Results: {BORDER}; dmarc=pass header.from=attacker.example\n",
        ),
    ],
)
async def test_a_forged_in_reply_to_without_facts_posts_nothing(
    checked: LoopWorld, sender: str, headers: str
) -> None:
    """Message-IDs are not secret. A mail naming someone else's escalation that would only be
    held alone (no facts) stays held: an unverified From, or a verified stranger who took no
    part in the escalated mail, posts nothing into its threads and its incident."""
    await checked.receive(first_mail(DMARC), MORNING)
    await checked.dispatch()
    await checked.receive(any_news(sender, headers), MORNING + timedelta(minutes=5), sender)
    await checked.dispatch()
    mail = await checked.store.get_mail(2)
    assert mail is not None and (mail.verdict, mail.review) == ("reject", "held")
    assert mail.decision is not None and mail.decision.update is None
    assert await thread_replies(checked) == []
    # its own doubt notice (the subject states an outage) is its own incident, never ROOT's
    assert [key for key in checked.pd.triggered if not key.startswith("doubt:")] == [ROOT]


async def test_an_unverified_update_says_so_like_a_page_would(checked: LoopWorld) -> None:
    """Under annotate an unverified sender's escalation would page, marked: as an update it is
    posted, marked the same way."""
    await checked.receive(first_mail(DMARC), MORNING)
    await checked.dispatch()
    await checked.receive(reply_all(), MORNING + timedelta(minutes=5), sender=BO)
    await checked.dispatch()
    (post,) = await thread_replies(checked)
    assert "[unverified sender]" in post.text
    assert "unverified sender" in checked.pd.received[-1].body["payload"]["custom_details"]["notes"]


async def test_enforce_keeps_a_forged_update_out_of_the_thread(
    tmp_path: Path, make_settings: Callable[..., Settings], store: Store, sink: SmtpSink
) -> None:
    """Under enforce an unverified sender is held as sender_not_allowed, thread or no thread."""
    async with loop_world(
        tmp_path, make_settings, store, sink, MORNING, authserv_id=BORDER, sender_policy="enforce"
    ) as world:
        await world.receive(first_mail(DMARC), MORNING)
        await world.dispatch()
        await world.receive(reply_all(), MORNING + timedelta(minutes=5), sender=BO)
        await world.dispatch()
        mail = await world.store.get_mail(2)
        assert mail is not None and mail.reasons == ("sender_not_allowed",)
        assert mail.decision is not None and mail.decision.update is None
        assert await thread_replies(world) == [] and world.pd.triggered == [ROOT]


async def test_a_storm_of_replies_is_posted_only_while_it_is_young(world: LoopWorld) -> None:
    """Storm protection stays (issue 16): in one storm window, mails of the thread are posted as
    updates while the storm holds at most UPDATE_BURST mails; later ones only count in it."""
    world.processor.close()
    world.processor = Processor(
        world.store, load_policy(world.settings), storm_window=timedelta(minutes=15)
    )
    await world.receive(first_mail(), MORNING)
    await world.dispatch()
    for n in range(2, 8):
        words = f"Update {n}: the 502 error rate on submit is still 100%."
        await world.receive(reply_all(BO, words, n), MORNING + timedelta(minutes=n), sender=BO)
        await world.dispatch()
    _, replies = threaded(world.slack.posts_in("high-priority-alarms"))
    posted = [n for n in range(2, 8) if any(f"(mail {n})" in post.text for post in replies)]
    assert posted == list(range(2, UPDATE_BURST + 1))
    assert world.pd.triggered == [ROOT] * UPDATE_BURST and len(world.sink.delivered) == 1
    late = await world.store.get_mail(7)
    assert late is not None and late.decision is not None and late.decision.update is None
    assert late.decision.decision["storm"] == {"joined": 1, "count": 7}
