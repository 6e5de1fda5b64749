"""The doubt path (issue 15): a low-confidence reject is held AND raises a notice.

End to end with the real processor and dispatcher against the PagerDuty and Slack stand-ins,
the clock injected (tests/test_dispatch.py's world): in support hours one mention-safe post in
the alarm channel; on call one PagerDuty event of severity "warning" linking the review page,
under a dedup key of its own; out of cover nothing before 07:00 and the notice at 07:00, unless
a person released or dismissed the mail first. A sure reject raises nothing; a doubtful
escalation pages as usual with the doubt shown.
"""

from __future__ import annotations

from datetime import timedelta

import test_dispatch
import test_web
from standins.slack import SLACK_CHANNEL_LINKS, mentions
from test_dispatch import FRIDAY, HOSTILE, World, mail

from escalator.cli.list import mail_json
from escalator.policy import load_policy
from escalator.review import deeds
from escalator.store import ActionRow

# The dispatch tests' world (stand-ins, store, processor, clock), shared by name: pytest finds
# fixtures in the module namespace (`sink` comes from conftest).
world = test_dispatch.world
ALARMS = "high-priority-alarms"
HEADER = "Held, may be an incident — release to page"
DOUBTFUL = {"channel": None}  # a strong outage without a channel: rejected, in doubt
# A how-to question without a channel (its subject says nothing is down: an outage in the
# subject of a reject for the channel alone is a doubt).
SURE = {"channel": None, "service_down": False, "subject": "Password rotation"}


async def doubts(world: World) -> list[ActionRow]:
    return [a for a in await world.actions() if a.kind == "doubt"]


def warnings(world: World) -> list[dict]:
    return [
        r.body
        for r in world.pd.received
        if r.status == 202 and r.body["payload"]["severity"] == "warning"
    ]


async def receive_at(world: World, hour: int, minute: int = 0, **shape: object) -> None:
    world.clock.now = FRIDAY.replace(hour=hour, minute=minute)
    await world.receive(mail(1, **shape), world.clock.now)  # type: ignore[arg-type]


async def test_support_hours_posts_one_mention_safe_notice_in_the_alarm_channel(
    world: World,
) -> None:
    """11:00: one alarm-channel post naming the doubt and linking the review page; no page."""
    await receive_at(world, 11, channel=None, extra=HOSTILE + "\n")
    (notice,) = await doubts(world)
    await world.dispatcher().burst()
    assert world.pd.received == []
    (post,) = world.slack.posts_in(ALARMS)
    review_url = f"{world.settings.public_url}/mails/1"
    assert HEADER in post.text and review_url in post.text
    assert "nobody can" in post.text  # the doubt, in plain words
    assert mentions(post, (f"{world.settings.public_url}/mails/", *SLACK_CHANNEL_LINKS)) == []
    assert "link_names" not in post.args and post.args.get("parse") != "full"
    assert {a.state for a in await doubts(world)} == {"sent"}
    assert notice.payload["via"] == "slack"


async def test_on_call_sends_one_warning_event_with_the_review_link(world: World) -> None:
    """20:00: one PagerDuty event, severity warning, its own dedup key, the review page linked;
    nothing in the alarm channel."""
    await receive_at(world, 20, **DOUBTFUL)
    await world.dispatcher().burst()
    (event,) = warnings(world)
    assert len(world.pd.received) == 1 and world.pd.received[0].errors == []
    review_url = f"{world.settings.public_url}/mails/1"
    assert review_url in [link["href"] for link in event["links"]]
    assert event["client_url"] == review_url
    assert event["dedup_key"].startswith("doubt:")
    assert event["payload"]["custom_details"]["may be an incident because"]
    assert world.slack.posts_in(ALARMS) == []


async def test_support_and_on_call_raise_both(world: World) -> None:
    """09:30: the alarm-channel post and the low-urgency event, nothing at critical."""
    await receive_at(world, 9, 30, **DOUBTFUL)
    await world.dispatcher().burst()
    assert len(warnings(world)) == 1 == len(world.pd.received)
    assert len(world.slack.posts_in(ALARMS)) == 1


async def test_out_of_cover_the_notice_waits_for_07_00(world: World) -> None:
    """23:00: nothing at once nor at 06:59; the warning event at 07:00 the next morning."""
    await receive_at(world, 23, **DOUBTFUL)
    await world.dispatcher().burst()
    world.clock.now = FRIDAY.replace(hour=6, minute=59) + timedelta(days=1)
    await world.dispatcher().burst()
    assert world.pd.received == [] and world.slack.posts_in(ALARMS) == []
    world.clock.now += timedelta(minutes=1)
    await world.dispatcher().burst()
    assert len(warnings(world)) == 1 == len(world.pd.received)


async def test_released_before_07_00_no_notice_and_the_page_is_a_real_one(world: World) -> None:
    """Released at 23:30: at 07:00 the release's own page goes (critical, the conversation's
    key) and the notice is skipped with a note."""
    await receive_at(world, 23, **DOUBTFUL)
    await world.dispatcher().burst()
    world.clock.now = FRIDAY.replace(hour=23, minute=30)
    policy = load_policy(world.settings)
    await deeds.release(world.store, policy, 1, "sam@support", now=world.clock.now)
    world.clock.now = FRIDAY.replace(hour=7) + timedelta(days=1)
    await world.dispatcher().burst()
    assert warnings(world) == []
    (page,) = world.pd.received
    assert page.body["payload"]["severity"] == "critical"
    assert not page.body["dedup_key"].startswith("doubt:")
    (notice,) = await doubts(world)
    assert notice.state == "skipped" and "released" in (notice.last_error or "")


async def test_dismissed_before_07_00_no_notice(world: World) -> None:
    await receive_at(world, 23, **DOUBTFUL)
    await deeds.dismiss(world.store, 1, "sam@support", "a known test mail")
    world.clock.now = FRIDAY.replace(hour=7) + timedelta(days=1)
    await world.dispatcher().burst()
    assert world.pd.received == []
    (notice,) = await doubts(world)
    assert notice.state == "skipped" and "dismissed" in (notice.last_error or "")


async def test_a_sure_reject_raises_no_notice(world: World) -> None:
    """High confidence: held and answered, nobody paged or alarmed, in any window."""
    for hour in (11, 20):
        await receive_at(world, hour, **SURE)
    await world.dispatcher().burst()
    assert await doubts(world) == []
    assert world.pd.received == [] and world.slack.posts_in(ALARMS) == []


async def test_the_sender_is_told_support_will_look_and_no_page_is_promised(world: World) -> None:
    await receive_at(world, 20, **DOUBTFUL)
    await world.dispatcher().burst()
    (reply,) = world.sink.delivered
    body = reply.message.get_content()
    assert "flagged to the team" in body and "support team will look at it" in body
    assert "will be paged" not in body and "on-call has been paged" not in body.lower()


async def test_list_json_shows_the_notice_beside_the_contract_actions(world: World) -> None:
    await receive_at(world, 20, **DOUBTFUL)
    await world.dispatcher().burst()
    (listed,) = await world.store.list_mails()
    line = mail_json(listed)
    assert line["confidence"] == "low"
    assert {a["kind"] for a in line["actions"]} == {"reply"}
    (notice,) = [a for a in line["other_actions"] if a["kind"] == "doubt"]
    assert notice["state"] == "sent" and notice["payload"]["payload"]["severity"] == "warning"


async def test_review_page_view_shows_the_doubt_and_the_notice_state(world: World) -> None:
    await receive_at(world, 23, **DOUBTFUL)
    view = await deeds.load_view(world.store, 1)
    assert view.doubts and "nobody can" in view.doubts[0]
    (notice,) = view.doubt_notices
    assert deeds.action_label(notice).startswith("pending, due")


async def test_a_doubtful_escalation_pages_as_usual_with_the_doubt_shown(world: World) -> None:
    """09:30, an outage that also asks a how-to: paged at critical, the doubt in the details
    and in the alarm; no notice."""
    await receive_at(world, 9, 30, extra="How do I roll back the last deployment?\n")
    await world.dispatcher().burst()
    (page,) = world.pd.received
    assert page.body["payload"]["severity"] == "critical"
    assert "How do I" in str(page.body["payload"]["custom_details"]["in doubt"])
    (alarm,) = world.slack.posts_in(ALARMS)
    assert any("In doubt" in text for text in alarm.all_text())
    assert await doubts(world) == []


# The review site's fixtures (a running review web app on the test store), shared by name.
start_site, site = test_web.start_site, test_web.site


async def test_the_review_page_shows_the_doubt_and_the_notice_state(site: test_web.Site) -> None:
    """The mail's page says it is held and may be an incident, why, and what the notice did."""
    mail_id = await site.held(mail(1, channel=None))
    async with site.client() as client:
        await test_web.sign_in(client)
        async with client.get(f"/mails/{mail_id}", headers=test_web.HTML) as response:
            page = await response.text()
    assert 'id="doubt"' in page and "Held, may be an incident" in page
    assert "nobody can" in page and "release to page if it is one" in page
    assert "PagerDuty (low urgency): pending, due" in page  # decided on call, not yet sent
