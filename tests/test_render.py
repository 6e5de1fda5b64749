"""escalator.core.render: payloads for PagerDuty, Slack and reply mail, built from plain values."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standins.incidents import envelope, incident

from escalator.core import render
from escalator.outbox.relay import load_template

HOSTILE = "Users see <!channel> and <@U123> — <https://evil|click> @here & <!subteam^S1>"


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
    text, blocks = render.slack_alarm(hostile)
    everything = text + repr(blocks)
    assert "<!" not in everything and "<@" not in everything and "<http" not in everything
    assert "&lt;!channel&gt;" in text


def test_alarm_blocks_fit_slack_limits_for_huge_input() -> None:
    """A 1 MB mail still yields sections <= 3 000 chars and fallback text <= 40 000."""
    huge = incident(facts="<&>" * 350_000, subject="s" * 5000)
    text, blocks = render.slack_alarm(huge)
    assert len(text) <= render.SLACK_TEXT_MAX and len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000 and block["text"]["verbatim"] is True


def test_alarm_states_whether_on_call_was_paged_or_when_it_will_be() -> None:
    """The alarm says 'paged' for a page now, and the 07:00 time for a deferred page."""
    now_text, _ = render.slack_alarm(incident(page="now", alarm=True))
    at = datetime(2026, 11, 29, 7, 0, tzinfo=timezone(timedelta(0)))
    later_text, _ = render.slack_alarm(incident(page="deferred", page_at=at, window="no_cover"))
    assert "has been paged" in now_text
    assert "07:00 on Sun 29 Nov" in later_text


def test_pagerduty_event_is_bounded_and_critical() -> None:
    """Summary <= 1024 on one line, severity critical, links to the channel and review page."""
    event = render.pagerduty_event(incident(subject="x\r\ny" * 2000), "http://x/mails/7")
    payload = event["payload"]
    assert len(payload["summary"]) <= 1024 and "\n" not in payload["summary"]
    assert payload["severity"] == "critical" and payload["source"] == "escalator"
    assert event["links"][0]["href"].endswith("channel=laa-apply-incident")
    assert payload["custom_details"]["sender"] == "Ana Analyst <ana@example.gov.uk>"


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
