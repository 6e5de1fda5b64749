"""escalator.core.render: payloads for PagerDuty, Slack and reply mail, built from plain values."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standins.incidents import envelope, incident

from escalator.core import render, words
from escalator.outbox.relay import load_template

HOSTILE = "Users see <!channel> and <@U123> — <https://evil|click> @here & <!subteam^S1>"
PAGE = "http://x/mails/7"
OUR_LINKS = {
    "https://slack.com/app_redirect?channel=laa-apply-incident|#laa-apply-incident",
    f"{PAGE}|Escalation #7",
}


def controls(text: str) -> set[str]:
    """Every <…> sequence Slack would act on (mention, link, channel reference)."""
    return set(re.findall(r"<([^<>]*)>", text))


def test_slack_escape_replaces_ampersand_first_and_nothing_else() -> None:
    """& becomes &amp; before < and > are escaped, so entities are never double-escaped."""
    assert render.slack_escape("a&b <c> *d* @here") == "a&amp;b &lt;c&gt; *d* @here"


@given(st.text(), st.integers(min_value=10, max_value=400))
def test_slack_text_never_exceeds_limit_nor_leaves_control_chars(text: str, limit: int) -> None:
    """Escaped, truncated text fits the limit and carries no raw < or >, nor a broken entity."""
    out = render.slack_text(text, limit)
    assert len(out) <= limit
    assert "<" not in out and ">" not in out
    assert re.search(r"&(?!amp;|lt;|gt;)", out) is None


def test_truncation_happens_after_escaping() -> None:
    """A string of '<' escapes to '&lt;' groups and is cut on a whole entity."""
    out = render.slack_text("<" * 100, 30)
    assert out.endswith(render.ELLIPSIS) and out[:-1] == "&lt;" * 7


def test_alarm_escapes_every_mail_derived_field() -> None:
    """Subject, sender, channel and facts reach the Slack blocks with no control sequence."""
    hostile = incident(subject=HOSTILE, sender_name=HOSTILE, facts=HOSTILE, notes=(HOSTILE,))
    text, blocks = render.slack_alarm(hostile, PAGE)
    everything = text + repr(blocks)
    assert "<!" not in everything and "<@" not in everything and "<https://evil" not in everything
    assert controls(everything) <= OUR_LINKS  # only the links escalator builds itself
    assert "&lt;!channel&gt;" in text


def test_alarm_blocks_fit_slack_limits_for_huge_input() -> None:
    """A 1 MB mail still yields sections <= 3 000 chars and fallback text <= 40 000."""
    huge = incident(facts="<&>" * 350_000, subject="s" * 5000)
    text, blocks = render.slack_alarm(huge, PAGE)
    assert len(text) <= render.SLACK_TEXT_MAX and len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000 and block["text"]["verbatim"] is True


def test_alarm_states_whether_on_call_was_paged_or_when_it_will_be() -> None:
    """The alarm says 'paged' for a page now, and the 07:00 time for a deferred page."""
    _, now_blocks = render.slack_alarm(incident(page="now", alarm=True), PAGE)
    at = datetime(2026, 11, 29, 7, 0, tzinfo=timezone(timedelta(0)))
    later = incident(page="deferred", page_at=at, window="no_cover")
    later_text, later_blocks = render.slack_alarm(later, PAGE)
    assert now_blocks[0]["text"]["text"] == "Email escalation — on-call paged"
    assert later_blocks[0]["text"]["text"] == "Email escalation — will page at 07:00 GMT"
    assert "07:00 GMT, Sun 29 Nov" in later_text + repr(later_blocks)


def test_pagerduty_event_is_bounded_and_critical() -> None:
    """Summary <= 1024 on one line, severity critical, links to the channel and review page."""
    event = render.pagerduty_event(incident(subject="x\r\ny" * 2000), "http://x/mails/7")
    payload = event["payload"]
    assert len(payload["summary"]) <= 1024 and "\n" not in payload["summary"]
    assert payload["severity"] == "critical" and payload["class"] == "email escalation"
    assert event["links"][0]["href"].endswith("channel=laa-apply-incident")
    assert payload["custom_details"]["raised by"] == "Ana Analyst <ana@example.gov.uk>"


def test_channel_given_as_an_id_links_to_its_archive() -> None:
    """Slack archive links need a channel ID: used when the mail named the channel by ID."""
    event = render.pagerduty_event(incident(slack_channel="C0LAA00001"), "http://x/mails/7")
    assert event["links"][0]["href"] == "https://slack.com/archives/C0LAA00001"


@pytest.mark.parametrize(
    ("name", "href"),
    [
        ("laa-apply-incident", "https://slack.com/app_redirect?channel=laa-apply-incident"),
        ("#x&y=1 z/?", "https://slack.com/app_redirect?channel=x%26y%3D1%20z%2F%3F"),
        ("c0laa00001", "https://slack.com/app_redirect?channel=c0laa00001"),
    ],
)
def test_channel_given_by_name_links_through_the_encoded_redirect(name: str, href: str) -> None:
    """A name goes through Slack's app_redirect (which accepts names), percent-encoded so no
    mail-derived character can add a parameter or change the path."""
    assert render.channel_link(name) == href
    assert render.channel_link(None) is None and render.channel_link("") is None


def test_pagerduty_summary_names_service_and_channel() -> None:
    """The on-call reads what is affected and where to talk in the summary."""
    summary = render.pagerduty_summary(incident())
    assert "LAA apply is down" in summary and "#laa-apply-incident" in summary


@pytest.mark.parametrize("key", ["k" * 255, "k" * 256, "a\r\nb", ""])
def test_dedup_key_is_at_most_255_and_single_line(key: str) -> None:
    """Keys over 255 chars (or empty) are replaced by a stable hash; control chars go."""
    out = render.bounded_dedup_key(key)
    assert 0 < len(out) <= 255 and "\n" not in out
    assert out == render.bounded_dedup_key(key)


def test_reply_headers_cannot_be_injected() -> None:
    """CR/LF in subject or Message-ID never produce an extra header in the reply."""
    evil = incident(subject="Help\r\nBcc: victim@example.com", message_id="a@b>\r\nBcc: x@y")
    msg = render.reply_message(evil, "hi", envelope())
    assert msg["Bcc"] is None
    assert "\n" not in str(msg["Subject"]) and msg["In-Reply-To"] is None


def test_reply_is_threaded_and_marked_auto_replied() -> None:
    """In-Reply-To names the mail, References keeps the chain, Auto-Submitted is set."""
    msg = render.reply_message(
        incident(message_id="m2@x", references=("m0@x", "m1@x")), "hi", envelope()
    )
    assert msg["In-Reply-To"] == "<m2@x>"
    assert msg["References"] == "<m0@x> <m1@x> <m2@x>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["To"] == "ana@example.gov.uk"


def test_escalated_template_says_what_was_done_and_where_to_talk() -> None:
    """The packaged wording names the page, the channel and the reference."""
    body = render.reply_message(incident(), load_template("reply_escalated.txt.j2"), envelope())
    text = body.get_content()
    assert "has been paged" in text and "#laa-apply-incident" in text and "#7" in text


def test_rejected_template_explains_each_reason_and_where_to_go() -> None:
    """A reject reply explains every reason given and points to #ask-cloud-platform."""
    rejected = incident(
        verdict="reject", reasons=("not_service_impacting", "missing_slack_channel"), page="none"
    )
    text = render.reply_message(
        rejected, load_template("reply_rejected.txt.j2"), envelope()
    ).get_content()
    assert "#ask-cloud-platform" in text and "Slack channel" in text


def test_template_cannot_reach_python_internals() -> None:
    """Support-edited templates run sandboxed: attribute tricks raise instead of executing."""
    with pytest.raises(Exception, match=r"unsafe|access"):
        render.render_template(
            "{{ subject.__class__.__mro__[1].__subclasses__() }}", {"subject": ""}
        )


# -- what people see (issue 13) ---------------------------------------------------------------

CRIME = incident(
    subject="URGENT: Crime apply — submissions failing (500) since 06:50",
    sender_name="Bartholomew Fitzwilliam-Harrington (LAA Digital, Crime Apply team)",
    sender="bartholomew.fitzwilliam-harrington@digital.justice.gov.uk",
    slack_channel="laa-crime-apply-incident",
    facts="Hi all,\n\nCrime apply (namespace laa-crime-apply-production) returns 500 on submit.",
)


def test_summary_leads_with_service_and_symptom_within_80_characters() -> None:
    """The lock screen shows ~80 characters: service and symptom there, the channel by name,
    the sender (in the details) nowhere in the line."""
    summary = render.pagerduty_summary(CRIME)
    assert summary.startswith("[Email escalation] Crime apply — submissions failing (500)")
    assert "Crime apply" in summary[:80] and "submissions failing (500)" in summary[:80]
    assert "join #laa-crime-apply-incident" in summary and "bartholomew" not in summary.lower()


def test_vague_subject_gives_way_to_the_first_sentence_the_sender_wrote() -> None:
    """'P1' says nothing: the first sentence of the mail (not the greeting) leads instead."""
    vague = incident(
        subject="Re: URGENT - P1", facts="Hello team,\n\nPrison visits booking is down. 503s."
    )
    summary = render.pagerduty_summary(vague)
    assert summary.startswith("[Email escalation] Prison visits booking is down — join #")


def test_channel_given_as_an_id_is_never_shown_as_the_id_in_the_summary() -> None:
    summary = render.pagerduty_summary(incident(slack_channel="C08K3D9XW2P"))
    assert "C08K3D9XW2P" not in summary and "Slack channel linked" in summary


def test_pagerduty_fields_as_pagerduty_defines_them_and_details_in_plain_words() -> None:
    """source = the service, component = its namespace, never the Slack channel; custom
    details in plain words with the London time; links to the channel and the mail's page."""
    event = render.pagerduty_event(CRIME, PAGE)
    payload, details = event["payload"], event["payload"]["custom_details"]
    assert payload["source"] == "Crime apply"
    assert payload["component"] == "laa-crime-apply-production"
    assert "laa-crime-apply-incident" not in payload["source"] + payload["component"]
    assert details["received"] == "21:00 GMT, Sat 28 Nov" and details["since"] == "06:50"
    assert details["talk in"] == "#laa-crime-apply-incident"
    assert "up to an hour" in details["the sender was told"]
    assert [link["href"] for link in event["links"]] == [
        "https://slack.com/app_redirect?channel=laa-crime-apply-incident",
        PAGE,
    ]


def test_alarm_links_the_channel_and_the_mails_page_and_stands_apart_from_firing() -> None:
    """A header unlike '[FIRING]', the channel as a real link (<#C…> for an ID), buttons to the
    mail's page and the channel: links escalator builds, in verbatim text."""
    text, blocks = render.slack_alarm(incident(), PAGE)
    everything = text + repr(blocks)
    assert blocks[0]["type"] == "header" and "FIRING" not in everything
    assert (
        "<https://slack.com/app_redirect?channel=laa-apply-incident|#laa-apply-incident>"
        in (blocks[2]["text"]["text"])
    )
    (actions,) = [block for block in blocks if block["type"] == "actions"]
    urls = [button["url"] for button in actions["elements"]]
    assert urls == [PAGE, "https://slack.com/app_redirect?channel=laa-apply-incident"]
    _, by_id = render.slack_alarm(incident(slack_channel="C0LAA00001"), PAGE)
    assert "*Talk in:* <#C0LAA00001>" in by_id[2]["text"]["text"]


def reply_text(template: str, **changes: object) -> str:
    message = render.reply_message(incident(**changes), load_template(template), envelope())
    return str(message.get_content())


def test_escalated_reply_says_what_happens_next_on_the_process_terms() -> None:
    text = reply_text("reply_escalated.txt.j2")
    assert "has been paged and will join #laa-apply-incident" in text
    assert "best-endeavours" in text and "up to an hour" in text and "working hours" in text
    assert "within 30 minutes" in text and "21:00 GMT, Sat 28 Nov" in text


def test_out_of_cover_reply_names_0700_and_promises_nothing_first_thing() -> None:
    """Support starts at 09:00: the reply says on-call is paged at 07:00, nothing else."""
    at = datetime(2026, 11, 29, 7, 0, tzinfo=timezone(timedelta(0)))
    text = reply_text(
        "reply_escalated.txt.j2", page="deferred", page_at=at, window="no_cover", alarm=True
    )
    assert "will be paged at 07:00 GMT, Sun 29 Nov" in text and "first thing" not in text


def test_reject_reply_names_the_specific_reason_and_where_to_go() -> None:
    """'it is about a non-production environment (you wrote "staging database")', the
    #ask-cloud-platform hours, when support looks; no 'reply with' when nothing is missing."""
    evidence = (
        {
            "rule": "non_production",
            "matched": "staging database",
            "where": "new",
            "reason": "not_service_impacting",
        },
    )
    monday = datetime(2026, 11, 30, 10, 0, tzinfo=timezone(timedelta(0)))
    text = reply_text(
        "reply_rejected.txt.j2",
        verdict="reject",
        page="none",
        reasons=("not_service_impacting",),
        evidence=evidence,
        support_from=monday,
    )
    assert 'it is about a non-production environment (you wrote "staging database")' in text
    assert "#ask-cloud-platform" in text and "10:00-17:00" in text
    assert "reply to this mail with" not in text
    assert "will look at your mail from 10:00 GMT, Mon 30 Nov" in text
    assert words.codes_free(text)


def test_reject_reply_asks_only_for_what_is_missing() -> None:
    text = reply_text(
        "reply_rejected.txt.j2",
        verdict="reject",
        page="none",
        reasons=("missing_slack_channel",),
        slack_channel=None,
    )
    assert "reply to this mail with the Slack channel where the incident" in text
    assert "what its users see" not in text


def test_status_page_is_linked_everywhere_only_when_configured() -> None:
    status = "https://status.example.org"
    linked = incident(status_page_url=status)
    assert status in reply_text("reply_escalated.txt.j2", status_page_url=status)
    assert (
        status in repr(render.slack_alarm(linked, PAGE)) and status in render.slack_ack(linked)[0]
    )
    assert status in [link["href"] for link in render.pagerduty_event(linked, PAGE)["links"]]
    assert status not in reply_text("reply_escalated.txt.j2") + repr(
        render.slack_alarm(incident(), PAGE)
    )


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 12, 3, 21, 0, tzinfo=timezone(timedelta(0))), "21:00 GMT, Thu 3 Dec"),
        (datetime(2026, 7, 1, 20, 0, tzinfo=timezone(timedelta(0))), "21:00 BST, Wed 1 Jul"),
    ],
)
def test_one_time_convention_london_wall_clock_with_its_zone(
    moment: datetime, expected: str
) -> None:
    assert words.when(moment) == expected
    assert words.when(moment, year=True) == f"{expected} {moment.year}"


def test_completed_follow_up_pages_with_the_root_facts_first_then_the_update() -> None:
    """On-call reads the original mail's facts, then the follow-up under 'Update from the
    sender', with a link to each mail of the thread."""
    own = "The channel is #laa-apply-incident."
    earlier, update = render.split_conversation(f"{own}\n\nSince 20:40 every user gets a 502.", own)
    assert (earlier, update) == ("Since 20:40 every user gets a 502.", own)
    thread = (("Mail #3 (first mail)", "http://x/mails/3"), ("Mail #7 (update)", PAGE))
    follow_up = incident(facts=earlier, update=update, thread=thread)
    wrote = render.pagerduty_event(follow_up, PAGE)["payload"]["custom_details"]["what they wrote"]
    assert wrote == f"Since 20:40 every user gets a 502.\n\nUpdate from the sender:\n{own}"
    _, blocks = render.slack_alarm(follow_up, PAGE)
    assert "<http://x/mails/3|Mail #3 (first mail)>" in repr(blocks)
    assert render.split_conversation("alone", "other") == ("alone", "")
