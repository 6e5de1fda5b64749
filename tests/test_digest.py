"""The duplicate key (escalator/store/digest.py): same content is the same mail, nothing else is."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from escalator.store.digest import content_digest, head_bounds, normal_body_pieces

MAIL = (
    b"Received: from a.example by b.example; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; b=AAAA\r\n"
    b"From: Alice <alice@example.org>\r\n"
    b"Subject: Production\r\n down\r\n"
    b"Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <one@example.org>\r\n"
    b"\r\n"
    b"Users cannot log in. Slack: #laa-incident\r\n"
)


def test_a_retry_with_other_trace_headers_has_the_same_digest() -> None:
    """Received, Return-Path, DKIM, Authentication-Results, relay X- fields: ignored."""
    retry = (
        b"Return-Path: <bounce-123@example.org>\r\n"
        b"X-MS-Exchange-Organization-Network-Message-Id: 1234\r\n"
        b"Authentication-Results: mx.example; dkim=pass\r\n"
        b"Received: from c.example by b.example; Tue, 1 Dec 2026 10:05:00 +0000\r\n"
        + MAIL.replace(b"a.example", b"z.example").replace(b"b=AAAA", b"b=BBBB")
    )
    assert content_digest(retry) == content_digest(MAIL) is not None


def test_line_endings_and_folding_do_not_matter() -> None:
    """The same mail in bare-LF form, or folded differently, is the same mail."""
    assert content_digest(MAIL.replace(b"\r\n", b"\n")) == content_digest(MAIL)
    unfolded = MAIL.replace(b"Production\r\n down", b"Production down")
    assert content_digest(unfolded) == content_digest(MAIL)


def test_any_identifying_change_is_another_mail() -> None:
    """Body, From, Subject, Date, Message-ID, addressees, MIME type changed or a Resent-*
    field added: a different digest."""
    changes = [
        (b"Subject:", b"To: bob@example.org\r\nSubject:"),
        (b"Subject:", b"Content-Type: text/plain; charset=X-UNKNOWN\r\nSubject:"),
        (b"Subject:", b"Resent-Date: Wed, 2 Dec 2026 10:00:00 +0000\r\nSubject:"),
        (b"cannot log in", b"cannot pay"),
        (b"alice@", b"bob@"),
        (b"Production", b"Staging"),
        (b"10:00:00 +0000\r\nMessage", b"10:00:01 +0000\r\nMessage"),
        (b"<one@", b"<two@"),
    ]
    digests = {content_digest(MAIL.replace(old, new)) for old, new in changes}
    assert len(digests) == len(changes) and content_digest(MAIL) not in digests


def test_a_mail_without_message_id_or_date_has_no_digest() -> None:
    """Nothing tells a retry from a second report with the same words: never a duplicate."""
    bare = b"From: a@example.org\r\nSubject: down\r\n\r\nit is down\r\n"
    assert content_digest(bare) is None
    assert content_digest(b"") is None and content_digest(b"\x00\xff junk") is None
    assert content_digest(b"Date: x\r\n\r\n") is not None


@settings(max_examples=300)
@given(st.binary(max_size=60).map(lambda b: b.replace(b"x", b"\r").replace(b"y", b"\n")))
def test_the_body_is_hashed_in_slices_as_if_whole(body: bytes) -> None:
    """Sliced (a 10 MiB body is never copied whole), the normal form is what it was as one
    piece: CRLF read as LF, trailing line ends dropped, whatever the slice size."""
    whole = body.replace(b"\r\n", b"\n").rstrip(b"\n")
    raw = b"Date: x\r\n\r\n" + body
    start = head_bounds(raw)[1]
    for chunk in (1, 2, 3, 7, 1024):
        assert b"".join(normal_body_pieces(raw, start, chunk)) == whole
