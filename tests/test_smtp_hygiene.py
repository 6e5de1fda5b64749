"""Input hygiene at the SMTP door (issue 16): envelope addresses, postmaster@, no version shown."""

from __future__ import annotations

import re
import socket

import pytest
from conftest import RunningServer

MAIL = b"From: a@example.org\r\nSubject: bounce\r\nMessage-ID: <pm@x>\r\n\r\nUndeliverable.\r\n"


def converse(server: RunningServer, commands: list[bytes]) -> list[bytes]:
    """One reply (last line) per command, after the banner."""
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        reader = sock.makefile("rb")
        replies = [_reply(reader)]
        for command in commands:
            sock.sendall(command + b"\r\n")
            replies.append(_reply(reader))
    return replies


def _reply(reader: object) -> bytes:
    lines = []
    while True:
        line = reader.readline()  # type: ignore[attr-defined]
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


@pytest.mark.parametrize("bad", [b"a\x00b@example.org", b"a@exa\x01mple.org", b"a\x7f@example.org",
                                 b"a\tb@example.org"])  # fmt: skip
def test_control_characters_in_envelope_addresses_get_501(
    server: RunningServer, bad: bytes
) -> None:
    """NUL and other controls are refused at MAIL (501 5.1.7) and RCPT (501 5.1.3)."""
    commands = [b"EHLO c.example", b"MAIL FROM:<" + bad + b">", b"MAIL FROM:<ok@example.org>",
                b"RCPT TO:<" + bad + b">"]  # fmt: skip
    replies = converse(server, commands)
    assert replies[2].startswith(b"501 5.1.7") and replies[3].startswith(b"250")
    assert replies[4].startswith(b"501 5.1.3")


def test_non_ascii_addresses_need_smtputf8(server: RunningServer) -> None:
    """zoë@ without SMTPUTF8 gets 553 5.6.7 at MAIL and RCPT; with it, it is taken."""
    zoe = "zoë@exämple.org".encode()
    replies = converse(
        server,
        [b"EHLO c.example", b"MAIL FROM:<" + zoe + b">", b"MAIL FROM:<ok@example.org>",
         b"RCPT TO:<escalations@localhost>", b"RCPT TO:<" + zoe + b">", b"RSET",
         b"MAIL FROM:<" + zoe + b"> SMTPUTF8", b"RCPT TO:<escalations@localhost>"],
    )  # fmt: skip
    assert replies[2].startswith(b"553 5.6.7") and replies[3].startswith(b"250")
    assert replies[4].startswith(b"250") and replies[5].startswith(b"553 5.6.7")
    assert replies[7].startswith(b"250") and replies[8].startswith(b"250")
    invalid = converse(server, [b"EHLO c.example", b"MAIL FROM:<\xff\xfe@example.org> SMTPUTF8"])
    assert invalid[2].startswith(b"501 5.1.7"), "bytes that are not UTF-8"


def test_postmaster_is_accepted_held_for_review_and_never_escalated(server: RunningServer) -> None:
    """postmaster@ a local domain and bare <Postmaster> are taken; such mail is rejected as
    automated_message, held for review, and none of its actions is dispatched."""
    outage = MAIL.replace(
        b"Undeliverable.", b"Production is down, users cannot log in. #ops-incident"
    )
    replies = converse(
        server,
        [b"EHLO c.example", b"MAIL FROM:<a@example.org>", b"RCPT TO:<Postmaster@LOCALHOST>",
         b"RCPT TO:<postmaster>", b"RCPT TO:<postmaster@elsewhere.example>", b"DATA",
         outage + b".", b"QUIT"],
    )  # fmt: skip
    assert [r[:3] for r in replies[3:8]] == [b"250", b"250", b"550", b"354", b"250"]
    (listed,) = server.mails()
    mail = listed.mail
    assert (mail.verdict, mail.reasons, mail.review) == ("reject", ("automated_message",), "held")
    assert mail.decision is not None and mail.decision.decision["postmaster"] is True
    assert all(a.state == "skipped" for a in listed.actions), listed.actions


def test_no_version_anywhere_in_the_greeting(server: RunningServer) -> None:
    """Banner, EHLO, HELP and QUIT name no software and no version number."""
    replies = converse(server, [b"EHLO c.example", b"HELO c.example", b"HELP", b"NOOP", b"QUIT"])
    text = b"".join(replies).decode()
    assert not re.search(r"\d+\.\d+\.\d+(?!\s)|python|aiosmtpd|postfix", text, re.IGNORECASE), text
