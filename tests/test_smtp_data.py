"""The DATA phase: bare-LF clients are served, SMTP smuggling is not (real sockets, real server).

Postfix's smtpd_forbid_bare_newline = normalize is the model: a bare LF ends a line and is stored
as CRLF; the end of data in a CRLF session is only <CR><LF>.<CR><LF>.
"""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage

import pytest
from conftest import RunningServer

HEAD = b"From: alice@example.org\r\nSubject: db down\r\nMessage-ID: <s@example.org>\r\n\r\n"
SMUGGLED = (
    b"MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<escalations@localhost>\r\nDATA\r\n"
    b"From: ceo@bank.example\r\nSubject: forged\r\n\r\nwire the money\r\n"
)


def converse(server: RunningServer, script: bytes) -> list[bytes]:
    """Send the whole script at once (as a pipelining relay would), then read every reply."""
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(script)  # ends with QUIT: the server closes after its 221
        reader = sock.makefile("rb")
        return [line.rstrip(b"\r\n") for line in reader if line[3:4] != b"-"]


def envelope(ending: bytes = b"\r\n") -> bytes:
    commands = [b"EHLO relay.example", b"MAIL FROM:<alice@example.org>",
                b"RCPT TO:<escalations@localhost>", b"DATA"]  # fmt: skip
    return b"".join(command + ending for command in commands)


def stored_raws(server: RunningServer) -> list[bytes]:
    mails = server.mails(decide=False)
    rows = [server.call(server.service.store.get_mail(m.mail.id)) for m in mails]
    return [row.raw or b"" for row in rows if row is not None]


def test_bare_lf_mail_over_8_kb_is_accepted_and_stored_with_crlf(server: RunningServer) -> None:
    """Python's smtplib with as_bytes() (bare LF), over 8 KB: 250, stored with CRLF line ends."""
    message = EmailMessage()
    message["From"], message["To"] = "alice@example.org", "escalations@localhost"
    message["Subject"], message["Message-ID"] = "db down", "<lf@example.org>"
    message.set_content("Users cannot log in. Slack: #laa-incident\n" + "x" * 70 + "\n" * 300)
    raw = message.as_bytes()
    assert b"\r\n" not in raw
    raw = raw + b"".join(b"line %05d of a long but ordinary mail\n" % i for i in range(400))
    assert len(raw) > 8192
    with server.smtp() as client:
        assert client.sendmail("alice@example.org", ["escalations@localhost"], raw) == {}
    (stored,) = stored_raws(server)
    assert stored == raw.replace(b"\n", b"\r\n") + b"\r\n", "smtplib's own CRLF before the dot"


@pytest.mark.parametrize(
    "fake_end",
    [
        b"\n.\n",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\n..\n",
        b"\r\n\x00.\r\n",
    ],
    ids=["LF.LF", "LF.CRLF", "CRLF.LF", "CR.CR", "CR.CRLF", "CRLF.CR", "LF..LF", "CRLF-NUL.CRLF"],
)
def test_smuggled_end_of_data_is_content(server: RunningServer, fake_end: bytes) -> None:
    """A relay in front sees one message; so must we: a non-standard dot line never ends the
    data in a CRLF session, and the commands after it are part of the one stored mail."""
    script = envelope() + HEAD + b"first part" + fake_end + SMUGGLED + b".\r\nQUIT\r\n"
    replies = converse(server, script)
    after_data = replies[replies.index(b"354 End data with <CR><LF>.<CR><LF>") + 1 :]
    assert [r[:3] for r in after_data] == [b"250", b"221"], after_data
    (stored,) = stored_raws(server)
    assert b"wire the money" in stored and b"MAIL FROM:<ceo@bank.example>" in stored


def test_standard_end_after_bare_lf_lines_needs_a_crlf_before_the_dot(
    server: RunningServer,
) -> None:
    """<LF>.<CR><LF> is content (the dot line's predecessor must end CRLF); the CRLF.CRLF
    that follows ends the mail."""
    script = envelope() + HEAD + b"one\ntwo\n.\r\nthree\r\n.\r\nQUIT\r\n"
    replies = converse(server, script)
    assert [r[:3] for r in replies[-2:]] == [b"250", b"221"]
    (stored,) = stored_raws(server)
    assert stored == HEAD + b"one\r\ntwo\r\n\r\nthree\r\n", "the lone dot un-stuffed to empty"


def test_bare_lf_session_may_end_with_lf_dot_lf(server: RunningServer) -> None:
    """A client that speaks bare LF throughout (its DATA command too) ends with <LF>.<LF>;
    no relay writes its commands that way, so this cannot smuggle through one."""
    body = HEAD.replace(b"\r\n", b"\n") + b"..dotted line\nlast\n"
    replies = converse(server, envelope(b"\n") + body + b".\nQUIT\n")
    assert [r[:3] for r in replies[-2:]] == [b"250", b"221"], replies
    (stored,) = stored_raws(server)
    assert stored == HEAD + b".dotted line\r\nlast\r\n", "dot-stuffing undone, CRLF stored"


def test_dot_stuffing_is_undone_with_either_line_end(server: RunningServer) -> None:
    """smtplib doubles leading dots in bare-LF data too; the stored mail has single dots."""
    raw = b"From: a@example.org\nSubject: dots\nMessage-ID: <d@x>\n\n.hidden\n..two\nend\n"
    with server.smtp() as client:
        assert client.sendmail("a@example.org", ["escalations@localhost"], raw) == {}
    (stored,) = stored_raws(server)
    assert stored == raw.replace(b"\n", b"\r\n") + b"\r\n"


def test_lines_are_limited_after_normalising(server: RunningServer) -> None:
    """A bare-LF line longer than the limit is still refused with 500 5.5.2."""
    raw = b"Subject: long\n\n" + b"y" * 9000 + b"\n"
    with server.smtp() as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("a@example.org", ["escalations@localhost"], raw)
    assert refused.value.smtp_code == 500 and refused.value.smtp_error.startswith(b"5.5.2")
