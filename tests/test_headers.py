"""One Message-ID for everyone (core/headers.py): the SMTP handler, thread_parents and the parser
agree, so a follow-up to a mail with a UTF-8 Message-ID is matched to it."""

from __future__ import annotations

import email.header
import re

import pytest
from conftest import RunningServer
from hypothesis import given
from hypothesis import strategies as st

from escalator.core.conversation import thread_parents
from escalator.core.headers import blank_line, field_text, header_block, message_id, message_ids
from escalator.core.mail import parse_mail
from escalator.ingress.smtp import header_summary

UTF8_ID = "c1-ré-✓@justice.example"
FACTS = "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\r\n"


def mail(n: str, body: str, parent: str | None = None) -> bytes:
    thread = f"In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n" if parent else ""
    return (
        "From: Ana <ana@digital.justice.gov.uk>\r\nTo: escalations@localhost\r\n"
        f"Subject: Urgent: LAA apply\r\nMessage-ID: <{n}>\r\n{thread}"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"\r\nHi,\r\n\r\n{body}\r\nAna\r\n"
    ).encode()


@given(st.lists(st.sampled_from([b"\r", b"\n", b"a", b":", b" "]), max_size=16).map(b"".join))
def test_blank_line_is_where_the_regex_finds_it(raw: bytes) -> None:
    """blank_line's two find() calls agree with the regex they replace, on every mix of CR/LF."""
    found = re.search(rb"\r?\n\r?\n", raw)
    assert blank_line(raw) == (None if found is None else found.span())


def test_message_id_grammar() -> None:
    """Between < and > without spaces; a bare value is trimmed; nothing at all is None."""
    assert message_id(" <a@b> <c@d>") == "a@b"
    assert message_ids("<a@b>\r\n <c@d> junk <e f>") == ["a@b", "c@d"]
    assert message_id("  bare@id ") == "bare@id"
    assert message_id("  ") is None


def test_an_8bit_header_is_read_as_utf8_not_replaced() -> None:
    """The standard library hands 8-bit headers over as Header objects or escaped str."""
    header = email.header.Header(f"<{UTF8_ID}>".encode(), "unknown-8bit")
    assert message_id(field_text(header)) == UTF8_ID
    escaped = f"<{UTF8_ID}>".encode().decode("ascii", "surrogateescape")
    assert message_id(field_text(escaped)) == UTF8_ID
    assert header_block(f"Message-ID: <{UTF8_ID}>\r\n\r\nbody".encode()) == (
        f"Message-ID: <{UTF8_ID}>"
    )


def test_ingress_thread_parents_and_parser_agree_on_a_utf8_message_id() -> None:
    """The id the SMTP handler stores is the one a follow-up's headers look up, and the one the
    parser gives the planner and the replies (before: 'c1-r\ufffd\ufffd-\ufffd\ufffd\ufffd@…')."""
    original = mail(UTF8_ID, FACTS)
    follow_up = mail("c2@justice.example", "the channel is #laa-apply-incident", UTF8_ID)
    assert header_summary(original)[0] == UTF8_ID
    assert parse_mail(original).message_id == UTF8_ID
    assert thread_parents(follow_up) == (UTF8_ID,)
    assert parse_mail(follow_up).in_reply_to == UTF8_ID
    assert parse_mail(follow_up).references == (UTF8_ID,)


@pytest.mark.slow
def test_follow_up_to_a_utf8_message_id_completes_it_over_smtp(server: RunningServer) -> None:
    """End to end: an SMTPUTF8 mail lacking a channel is held; the sender's reply naming the
    channel is matched to it and escalates the pair (before: never matched, both held)."""
    with server.smtp() as client:
        client.ehlo()
        options = ["SMTPUTF8", "BODY=8BITMIME"]
        client.sendmail(
            "ana@digital.justice.gov.uk", ["escalations@localhost"], mail(UTF8_ID, FACTS), options
        )
        server.mails()  # the original is decided (held) before the follow-up arrives
        follow_up = mail(
            "c2@justice.example", "Sorry, the channel is #laa-apply-incident.", UTF8_ID
        )
        client.sendmail("ana@digital.justice.gov.uk", ["escalations@localhost"], follow_up, options)
    original, reply = (listed.mail for listed in server.mails())
    assert original.message_id == UTF8_ID and original.review == "released"
    assert reply.verdict == "escalate" and reply.slack_channel == "laa-apply-incident"
    assert reply.decision is not None
