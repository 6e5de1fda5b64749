"""escalator.outbox.slack against the Web API stand-in: posting, joining, channel lookup, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from standins.incidents import incident
from standins.slack import SLACK_CHANNEL_LINKS, SlackStandIn, mentions

from escalator.core import render
from escalator.core.retry import Refused, RetryLater
from escalator.outbox.slack import Slack, is_channel_id

HOSTILE = "Help <!channel> <!here> <!everyone> <@U123> <#C999> <https://evil|click> @here"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        standin.add_channel("C0SVC00001", "svc-incident", member=False)
        standin.add_channel("C0OLD00001", "old-incident", is_archived=True, member=False)
        standin.add_channel("G0PRIV0001", "secret-incident", is_private=True, member=False)
        yield standin


def client(slack: SlackStandIn, token: str | None = None) -> Slack:
    return Slack(token or slack.token, slack.api_url, timeout=5)


def hostile_incident() -> render.Incident:
    return incident(
        mail_id=3,
        sender="eve@example.com",
        sender_name=HOSTILE,
        subject=HOSTILE,
        facts=HOSTILE + "\n" + HOSTILE,
        slack_channel="svc-incident",
        window="support",
        page="none",
        alarm=True,
    )


async def test_alarm_from_hostile_mail_produces_no_mention_or_link(slack: SlackStandIn) -> None:
    """<!channel>, <!here>, <@U123>, disguised links and @here in a mail mention nobody."""
    text, blocks = render.slack_alarm(hostile_incident(), "http://x/mails/1")
    await client(slack).post("high-priority-alarms", text, blocks)
    (post,) = slack.posts
    assert mentions(post, ("http://x/mails/1|", *SLACK_CHANNEL_LINKS)) == []
    assert len(mentions(post)) >= 2  # the channel and the mail's page, built by escalator
    assert "link_names" not in post.args and "parse" not in post.args
    assert post.args["unfurl_links"] is False and post.args["unfurl_media"] is False


async def test_alarm_goes_to_the_channel_by_name(slack: SlackStandIn) -> None:
    """A channel name is resolved through conversations.list (paged) and posted by ID."""
    result = await client(slack).post(
        "#high-priority-alarms", "t", render.slack_alarm(hostile_incident(), "http://x/m/1")[1]
    )
    assert result["channel"] == "C0ALARMS01" and result["ts"]
    assert slack.posts[0].channel == "C0ALARMS01"


async def test_ack_joins_a_public_channel_then_posts(slack: SlackStandIn) -> None:
    """not_in_channel on a public channel: join it, post again, once."""
    text, blocks = render.slack_ack(hostile_incident())
    await client(slack).post("svc-incident", text, blocks, join=True)
    assert [m for m, _ in slack.calls].count("conversations.join") == 1
    assert len(slack.posts_in("svc-incident")) == 1 and mentions(slack.posts[0]) == []


async def test_private_channel_the_bot_is_in_is_posted_by_name(slack: SlackStandIn) -> None:
    """A private channel is not in the public directory: the post goes by name and lands."""
    slack.add_channel("G0ALARMS02", "private-alarms", is_private=True)
    result = await client(slack).post("#private-alarms", "t", [])
    assert result["channel"] == "G0ALARMS02" and len(slack.posts_in("private-alarms")) == 1


async def test_channel_id_is_used_as_is(slack: SlackStandIn) -> None:
    """A channel given as an ID (C0123…) is not looked up."""
    await client(slack).post("C0SVC00001", "t", [], join=True)
    assert "conversations.list" not in [m for m, _ in slack.calls]
    assert is_channel_id("C0SVC00001") and not is_channel_id("svc-incident")


@pytest.mark.parametrize(
    ("channel", "code"),
    [
        ("no-such-channel", "channel_not_found"),
        ("old-incident", "is_archived"),
        ("G0PRIV0001", "method_not_supported_for_channel_type"),
    ],
)
async def test_unreachable_channels_are_refused_with_slacks_code(
    slack: SlackStandIn, channel: str, code: str
) -> None:
    """Unknown, archived and private channels come back as Refused with the reason."""
    with pytest.raises(Refused) as caught:
        await client(slack).post(channel, "t", [], join=True)
    assert caught.value.code in (code, "not_in_channel")
    assert slack.posts == []


async def test_rate_limit_is_transient_with_retry_after(slack: SlackStandIn) -> None:
    """429 ratelimited comes back as RetryLater carrying Slack's Retry-After, not retried."""
    slack.script("chat.postMessage", "429")
    with pytest.raises(RetryLater) as caught:
        await client(slack).post("C0ALARMS01", "t", [])
    assert caught.value.retry_after == 7.0
    assert [m for m, _ in slack.calls] == ["chat.postMessage"]


@pytest.mark.parametrize("answer", ["500", "internal_error", "service_unavailable"])
async def test_server_trouble_is_transient(slack: SlackStandIn, answer: str) -> None:
    """HTTP 5xx and Slack's own transient codes are worth a retry."""
    slack.script("chat.postMessage", answer)
    with pytest.raises(RetryLater):
        await client(slack).post("C0ALARMS01", "t", [])


async def test_bad_token_is_refused(slack: SlackStandIn) -> None:
    """invalid_auth is permanent: retrying with the same token will not help."""
    with pytest.raises(Refused) as caught:
        await client(slack, token="xoxb-wrong").post("C0ALARMS01", "t", [])
    assert caught.value.code == "invalid_auth"


async def test_unreachable_api_is_transient() -> None:
    """Nothing listening on the API port: RetryLater."""
    with pytest.raises(RetryLater):
        await Slack("xoxb-t", "http://127.0.0.1:9/api/", timeout=2).post("C0ALARMS01", "t", [])


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"link_names": True}, "project_rule:link_names"),
        ({"parse": "full"}, "project_rule:parse_full"),
        ({"unfurl_links": True}, "project_rule:unfurls_on"),
        ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}, "verbatim"),
        (
            {
                "blocks": [
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": "x" * 3001, "verbatim": True},
                    }
                ]
            },
            "section",
        ),
        ({"blocks": [{"type": "divider"}] * 51}, "too_many"),
        ({"text": "x" * 40_001}, "msg_too_long"),
    ],
)
async def test_standin_refuses_what_slack_or_project_rules_forbid(
    slack: SlackStandIn, extra: dict[str, object], code: str
) -> None:
    """The stand-in is strict, so an accepted post really is within the API and project rules."""
    body = {"channel": "C0ALARMS01", "text": "t", "unfurl_links": False, "unfurl_media": False}
    body.update(extra)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            slack.api_url + "chat.postMessage",
            json=body,
            headers={"Authorization": f"Bearer {slack.token}"},
        ) as response,
    ):
        data = await response.json()
    assert data["ok"] is False and code in data["error"]
    assert slack.posts == []
