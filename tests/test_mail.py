"""Reading mail: headers decoded, the sender's new words separated, broken input tolerated."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalator.core import mail as mail_module
from escalator.core.mail import parse_mail
from escalator.core.text import html_to_text, split_body

REAL = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "samples"
REAL_FILES = sorted(
    p
    for p in REAL.rglob("*")
    if p.is_file() and not p.name.startswith(("LICENSE", "NOTICE", "README", "MANIFEST", "."))
)


def test_rfc2047_subject_and_latin1_body() -> None:
    """An encoded-word subject and an ISO-8859-1 quoted-printable body are decoded."""
    raw = (
        b"From: =?iso-8859-1?q?Zolt=E1n?= <z@example.org>\r\nTo: e@localhost\r\n"
        b"Subject: =?utf-8?b?U2l0ZSBkb3duIOKAkyBwYXltZW50cw==?=\r\nMessage-ID: <a@b>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 site is down.\r\n"
    )
    mail = parse_mail(raw)
    assert mail.subject == "Site down \u2013 payments"
    assert mail.from_name == "Zolt\u00e1n" and mail.from_addr == "z@example.org"
    assert mail.body.new == "Caf\u00e9 site is down."
    assert mail.message_id == "a@b"


def test_base64_body_and_unknown_charset() -> None:
    """A base64 body in an unknown charset still yields text (with replacements), no error."""
    body = base64.b64encode(b"Payments are failing for everyone").decode()
    raw = (
        "From: a@example.org\nSubject: x\nContent-Type: text/plain; charset=x-unknown-42\n"
        f"Content-Transfer-Encoding: base64\n\n{body}\n"
    ).encode()
    assert parse_mail(raw).body.new == "Payments are failing for everyone"


def test_html_only_outlook_mail_becomes_readable_text() -> None:
    """Outlook HTML: styles dropped, <br> and paragraphs become lines, &nbsp; a space."""
    html = (
        "<html><head><style>p.MsoNormal {margin:0}</style></head><body>"
        "<p class=MsoNormal>Hello,<o:p></o:p></p><p>&nbsp;</p>"
        "<p>The site is down<br>since 08:50&nbsp;today.</p>"
        "<table><tr><td>Service</td><td>Decisions</td></tr></table></body></html>"
    )
    text = html_to_text(html)
    assert "margin" not in text
    assert "The site is down\nsince 08:50 today." in text
    assert "Service Decisions" in text


def test_html_link_to_slack_archive_keeps_the_address() -> None:
    """A link whose text hides a Slack archive address keeps the address for the channel finder."""
    text = html_to_text('<p>Join <a href="https://x.slack.com/archives/C0ABCDEF12">here</a></p>')
    assert "C0ABCDEF12" in text


def test_html_blockquote_is_quoted() -> None:
    text = html_to_text("<p>New words</p><blockquote><p>old words #old-channel</p></blockquote>")
    parts = split_body(text)
    assert parts.new == "New words"
    assert "old-channel" in parts.quoted


@pytest.mark.parametrize(
    "reply_header",
    [
        "On Mon, 2 Nov 2026 at 10:00, Support <s@example.org> wrote:",
        "-----Original Message-----",
        "________________________________\nFrom: Support\nSent: 02 November 2026 10:00",
        "From: Support <s@example.org>\nSent: Monday, November 2, 2026 10:00 AM",
    ],
)
def test_quoted_reply_is_separated(reply_header: str) -> None:
    """Gmail, Outlook and plain-text reply headers start the quoted part."""
    parts = split_body(f"The channel is #pay-incident\n\n{reply_header}\nold text #old\n")
    assert parts.new == "The channel is #pay-incident"
    assert "#old" in parts.quoted and "#old" not in parts.new


def test_signature_disclaimer_and_mobile_footer_are_separated() -> None:
    """'-- ', a sign-off block, a legal disclaimer and 'Sent from my iPhone' leave the new text."""
    parts = split_body(
        "Checkout is down.\n\nThanks,\nJo\nTeam channel: #jo-team\n\n"
        "This e-mail and any attachments is intended only for the addressee.\n"
    )
    assert parts.new == "Checkout is down."
    assert "#jo-team" in parts.signature and "intended" in parts.signature
    assert split_body("Down.\n-- \nJo\n").new == "Down."
    assert split_body("Down.\nSent from my iPhone").signature == "Sent from my iPhone"


def test_mid_text_thanks_does_not_cut_long_facts() -> None:
    """A 'Thanks.' line followed by long lines of facts is not mistaken for a signature."""
    facts = "The payment API returns 503 for every request since 10:00 and users cannot pay."
    assert facts in split_body(f"Hi,\nThanks.\n{facts}\n{facts}\n").new


def test_inline_forward_is_kept_apart() -> None:
    parts = split_body("FYI\n\n---------- Forwarded message ---------\nFrom: x\nSite down\n")
    assert parts.new == "FYI" and "Site down" in parts.forwarded


def test_attached_message_is_read_as_forwarded() -> None:
    """A message/rfc822 attachment is read as a forwarded mail, not as the sender's words."""
    raw = (
        b"From: a@example.org\nTo: e@localhost\nSubject: Fwd: outage\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        b"See attached.\n--b\nContent-Type: message/rfc822\n\nFrom: c@example.org\n"
        b"Subject: Checkout down\n\nCheckout returns 500 since 09:00. #shop-incident\n--b--\n"
    )
    mail = parse_mail(raw)
    assert mail.body.new == "See attached."
    assert "Checkout returns 500" in mail.body.forwarded and "Subject: Checkout down" in (
        mail.body.forwarded
    )


def test_thread_headers() -> None:
    raw = b"From: a@b.c\nSubject: Re: x\nIn-Reply-To: <p@x>\nReferences: <r@x> <p@x>\n\nok\n"
    mail = parse_mail(raw)
    assert (mail.in_reply_to, mail.references, mail.thread_root) == ("p@x", ("r@x", "p@x"), "r@x")


def test_control_characters_do_not_reach_header_fields() -> None:
    """Folded or encoded CR/LF in a subject never survives into the parsed value."""
    mail = parse_mail(b"From: a@b.c\nSubject: =?utf-8?q?a=0D=0ABcc=3A_x=40y?=\n\nbody\n")
    assert "\r" not in mail.subject and "\n" not in mail.subject


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: str(p.relative_to(REAL)))
def test_every_real_mail_parses_without_raising(path: Path) -> None:
    """Every real, often malformed, third-party mail is read without an exception."""
    mail = parse_mail(path.read_bytes())
    assert isinstance(mail.body.new, str)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    """Any bytes at all produce a ParsedMail."""
    parse_mail(raw)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(SAMPLES.glob("*.eml"))), st.integers(0, 10_000), st.binary(max_size=40)
)
def test_mangled_samples_never_raise(path: Path, offset: int, junk: bytes) -> None:
    """Samples with bytes spliced in or cut short still parse."""
    raw = path.read_bytes()
    cut = offset % max(1, len(raw))
    parse_mail(raw[:cut] + junk + raw[cut:])
    parse_mail(raw[:cut])


BIG = 5 * 1024 * 1024  # past BODY_READ_BYTES: the single-part bodies below are cut


def _big_mail(content_type: str, coding: str, line: bytes) -> bytes:
    head = (
        f"From: Ops <ops@example.org>\r\nTo: escalations@example.org\r\nSubject: big paste\r\n"
        f"Date: Thu, 3 Dec 2026 10:00:00 +0000\r\nMessage-ID: <big@example.org>\r\n"
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {coding}\r\n\r\n"
    ).encode()
    opening = b"Production is down for every user. Slack: #laa-incident\r\n\r\n"
    return head + opening + line * (BIG // len(line))


@pytest.mark.parametrize(
    ("content_type", "coding", "line"),
    [
        ("text/plain", "7bit", b"2026-12-03 10:00:00 ERROR upstream timed out after 30 s\r\n"),
        ("text/plain; charset=utf-8", "quoted-printable", b"caf=C3=A9 na=C3=AFve =E2=82=AC =\r\n"),
        (
            "text/html; charset=utf-8",
            "8bit",
            "<p>Fehler: Zugriff verweigert \u2013 \u00fc</p>\r\n".encode(),
        ),
    ],
)
def test_a_huge_single_part_is_read_as_far_as_triage_reads(
    content_type: str, coding: str, line: bytes
) -> None:
    """A 5 MiB paste in one part: the parser gets its first 4 MiB (not 90 MiB of lines), and
    the mail reads exactly as it does whole (the text is capped well inside that)."""
    raw = _big_mail(content_type, coding, line)
    assert len(mail_module._bounded(raw, mail_module.BODY_READ_BYTES)) < len(raw)
    assert parse_mail(raw) == parse_mail(raw, body_bytes=None)


def test_multipart_and_base64_bodies_are_read_whole() -> None:
    """Where a prefix need not decode to a prefix (base64), or parts may follow, no cut."""
    single = _big_mail("text/plain", "base64", base64.encodebytes(b"x" * 57))
    parts = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\n" + b"log line\r\n" * (BIG // 10) + b"--b--\r\n"
    )
    for raw in (single, parts):
        assert mail_module._bounded(raw, mail_module.BODY_READ_BYTES) == raw
