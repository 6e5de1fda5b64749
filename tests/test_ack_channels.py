"""Where the bot acknowledges (issue 16): only channels it may use; the reply mail otherwise.

The decision table is pure (core/ackplace.py); the end-to-end cases send a mail over SMTP and
look at the Slack stand-in: which channels got a post, and whether conversations.join was called.
"""

from __future__ import annotations

from typing import Any

import pytest
from standins.slack import SlackStandIn
from standins.smtp_sink import SmtpSink
from trustkit import (
    ANA,
    FRIDAY_EVENING,
    Outside,
    escalation,
    outside,
    through_the_front_door,
)

from escalator.core.ackplace import DEFAULT_PATTERNS, AckPlace, ChannelFacts, ack_place
from escalator.store import Store

__all__ = ["outside"]  # a fixture, used by name


@pytest.mark.parametrize(
    ("facts", "post", "join"),
    [
        (ChannelFacts("laa-apply-incident"), True, True),  # an incident channel: may join
        (ChannelFacts("#LAA-Live-Issue-2"), True, True),
        (ChannelFacts("crime-outage"), True, True),
        (ChannelFacts("team-chat", is_member=True), True, False),  # already in: post only
        (ChannelFacts("team-chat"), False, False),  # neither: the reply mail says it
        (ChannelFacts("general", is_member=True), False, False),  # never #general, member or not
        (ChannelFacts("town-square", is_general=True, is_member=True), False, False),
        (ChannelFacts("random"), False, False),
        (ChannelFacts("general-incident-x", is_general=True), False, False),
        (ChannelFacts("secret-room", listed=False), True, False),  # private: try, never join
    ],
)
def test_the_bot_posts_only_where_it_may(facts: ChannelFacts, post: bool, join: bool) -> None:
    place = ack_place(facts, DEFAULT_PATTERNS)
    assert (place.post, place.join) == (post, join)
    assert bool(place.why) is not post


def test_patterns_are_the_operators_choice() -> None:
    assert ack_place(ChannelFacts("ops-war-room"), ("*-war-room",)) == AckPlace(True, join=True)
    assert not ack_place(ChannelFacts("laa-apply-incident"), ("*-war-room",)).post


def joins(slack: SlackStandIn) -> list[dict[str, Any]]:
    return [args for method, args in slack.calls if method == "conversations.join"]


@pytest.mark.parametrize(
    ("channel", "flags", "posted", "joined"),
    [
        ("general", {"is_general": True, "member": False}, 0, 0),
        ("general", {"is_general": True, "member": True}, 0, 0),
        ("team-chat", {"member": False}, 0, 0),
        ("team-chat", {"member": True}, 1, 0),
        ("crime-outage", {"member": False}, 1, 1),  # so the cases above can fail
    ],
)
async def test_a_mail_naming_general_is_acknowledged_by_reply_mail_only(
    channel: str,
    flags: dict[str, bool],
    posted: int,
    joined: int,
    outside: Outside,
    sink: SmtpSink,
    make_settings: Any,
    store: Store,
) -> None:
    pd, slack = outside
    slack.add_channel("C0CHOSEN01", channel, **flags)
    await through_the_front_door(
        escalation(channel=channel), FRIDAY_EVENING, outside, sink, make_settings, store
    )
    assert len(slack.posts_in(channel)) == posted
    assert len(joins(slack)) == joined
    assert len(pd.triggered) == 1  # the escalation itself goes on as usual
    (reply,) = sink.delivered
    assert reply.rcpt_tos == [ANA] and f"#{channel}" in reply.message.get_content()
    (listed,) = await store.list_mails()
    (ack,) = [a for a in listed.actions if a.kind == "ack"]
    assert ack.state == ("sent" if posted else "skipped")
