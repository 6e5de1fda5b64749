"""The SMTP front door, driven by real clients (smtplib, aiosmtplib, raw sockets) on loopback."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiosmtplib
import psycopg
import pytest
import trustme
from aiosmtpd.smtp import SMTP
from conftest import POSTGRES_URL, RunningServer
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from escalator.ingress.smtp import NO_AUTH, EscalatorSMTP, MailHandler, SessionGate
from escalator.settings import Settings
from escalator.store.sqlite import SQLiteStore

StartServer = Callable[..., RunningServer]


def message(n: int = 1, size: int = 0, **headers: str) -> bytes:
    """A plausible escalation mail in wire form (CRLF), padded to about `size` bytes."""
    lines = [
        "From: Alice <alice@example.org>",
        "To: escalations@localhost",
        f"Subject: Production down {n}",
        f"Message-ID: <msg-{n}@example.org>",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
        "",
        "Service impact: users cannot log in. Slack: #laa-incident",
    ]
    body = "\r\n".join(lines) + "\r\n"
    padding = "".join(
        f"padding line {i:06d} ..............................\r\n" for i in range(size // 50)
    )
    return (body + padding).encode()


def test_banner_and_ehlo_are_neutral_and_advertise_limits(start_server: StartServer) -> None:
    """The banner names no software version; EHLO offers SIZE, 8BITMIME and SMTPUTF8."""
    server = start_server(max_message_bytes=123456)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        banner = sock.recv(1024).decode()
    assert banner.startswith("220 ") and "escalator" in banner
    assert "Python" not in banner and "1.4" not in banner
    with server.smtp() as client:
        code, _ = client.ehlo()
        assert code == 250
        assert client.esmtp_features["size"] == "123456"
        assert "8bitmime" in client.esmtp_features and "smtputf8" in client.esmtp_features
        assert "starttls" not in client.esmtp_features


def test_accepted_mail_is_stored_with_envelope_and_decided(server: RunningServer) -> None:
    """250 means the raw bytes and envelope are in the store; the worker then decides it."""
    raw = message(1)
    with server.smtp() as client:
        refused = client.sendmail("Bob@Example.org", ["Escalations+sev1@LOCALHOST"], raw)
    assert refused == {}
    (listed,) = server.mails()
    mail = listed.mail
    assert (mail.mail_from, mail.rcpt_tos) == ("Bob@Example.org", ("Escalations+sev1@LOCALHOST",))
    assert (mail.client_address, mail.tls, mail.message_id) == (
        "127.0.0.1",
        False,
        "msg-1@example.org",
    )
    assert mail.subject == "Production down 1" and mail.verdict in ("escalate", "reject")
    stored = server.call(server.service.store.get_mail(mail.id))
    assert stored is not None and stored.raw == raw
    assert [a.kind for a in listed.actions], "a decided mail has planned actions"


def test_foreign_recipient_is_refused_and_never_relayed(server: RunningServer) -> None:
    """Any address outside ESCALATOR_ADDRESSES gets 550 5.1.1; only ours are kept."""
    with server.smtp() as client:
        client.ehlo()
        client.mail("mallory@example.org")
        code, text = client.rcpt("victim@example.com")
        assert (code, text[:5]) == (550, b"5.1.1")
        assert client.rcpt("critical-incident@localhost")[0] == 250
        assert client.data(message(2))[0] == 250
    (listed,) = server.mails(decide=False)
    assert listed.mail.rcpt_tos == ("critical-incident@localhost",)


def test_too_many_recipients_get_452(start_server: StartServer) -> None:
    """Past max_recipients the server answers 452 4.5.3 and keeps the ones it took."""
    server = start_server(max_recipients=2)
    with server.smtp() as client:
        client.ehlo()
        client.mail("alice@example.org")
        assert client.rcpt("escalations@localhost")[0] == 250
        assert client.rcpt("escalations+a@localhost")[0] == 250
        code, text = client.rcpt("escalations+b@localhost")
        assert (code, text[:5]) == (452, b"4.5.3")


def test_oversize_mail_with_size_declared_gets_552(start_server: StartServer) -> None:
    """MAIL FROM with SIZE= over the limit is refused at once with 552 5.3.4."""
    server = start_server(max_message_bytes=10_000)
    with server.smtp() as client:
        client.ehlo()
        code, text = client.mail("alice@example.org", ["SIZE=20000"])
        assert (code, text[:5]) == (552, b"5.3.4")


def test_oversize_mail_without_size_gets_552_after_data(start_server: StartServer) -> None:
    """Without SIZE= the data is read and discarded, then 552 5.3.4; nothing is stored."""
    server = start_server(max_message_bytes=10_000)
    with server.smtp() as client:
        client.ehlo()
        client.mail("alice@example.org")
        client.rcpt("escalations@localhost")
        code, text = client.data(message(3, size=30_000))
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.noop()[0] == 250, "the session goes on after a refused mail"
    assert server.mails(decide=False) == []


def test_no_room_to_spool_gets_452_and_the_next_mail_is_taken(server: RunningServer) -> None:
    """When the spool files of all sessions together would pass their disk budget (a small
    /tmp in a container), the mail is read to its end and refused with 452 4.3.1 (the sender
    retries); once room is back, mail is taken again."""
    assert server.service.smtp is not None
    disk = server.service.smtp.disk
    limit, disk.limit = disk.limit, 300_000
    with server.smtp() as client:
        client.ehlo()
        client.mail("alice@example.org")
        client.rcpt("escalations@localhost")
        code, text = client.data(message(4, size=800_000))
        assert (code, text[:5]) == (452, b"4.3.1")
        assert client.sendmail("alice@example.org", ["escalations@localhost"], message(5)) == {}
    disk.limit = limit
    assert [listed.mail.message_id for listed in server.mails(decide=False)] == [
        "msg-5@example.org"
    ]
    assert disk.used == 0


async def test_aiosmtplib_sees_the_same_codes(start_server: StartServer) -> None:
    """aiosmtplib (another client library) gets 250, 550 and 552 with the same codes."""
    server = start_server(max_message_bytes=10_000)
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=30)
    await client.connect()
    errors, reply = await client.sendmail("a@example.org", ["escalations@localhost"], message(4))
    assert errors == {} and reply.startswith("2.0.0")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await client.sendmail("a@example.org", ["root@example.net"], message(5))
    assert refused.value.recipients[0].code == 550
    with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
        await client.sendmail("a@example.org", ["escalations@localhost"], message(6, size=30_000))
    assert too_big.value.code == 552 and too_big.value.message.startswith("5.3.4")
    await client.quit()
    assert len(server.mails(decide=False)) == 1


def test_connection_cap_overall_gets_421(start_server: StartServer) -> None:
    """Over max_connections with every session mid-transaction, a new session gets 421 4.7.0
    and is closed (idle ones would be shed instead: test_smtp_lockout); a slot frees on quit."""
    server = start_server(max_connections=2)
    first, second = server.smtp(), server.smtp()
    for client in (first, second):
        client.ehlo()
        assert client.mail("alice@example.org")[0] == 250
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        server.smtp()
    assert refused.value.smtp_code == 421 and _text(refused.value.smtp_error).startswith("4.7.0")
    first.quit()
    _eventually(lambda: _connects(server))
    second.quit()


def test_connection_cap_per_client_gets_421(start_server: StartServer) -> None:
    """One client address may hold at most max_connections_per_client sessions."""
    server = start_server(max_connections_per_client=1)
    with server.smtp():
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            server.smtp()
        assert refused.value.smtp_code == 421


def test_store_locked_gets_451_then_retry_succeeds(
    start_server: StartServer, tmp_path: Path
) -> None:
    """While the store cannot commit, DATA gets 451 4.3.0; the sender's retry is stored once."""
    path = tmp_path / "locked.db"
    server = start_server(store=SQLiteStore(path, busy_timeout=0.2))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with server.smtp() as client, pytest.raises(smtplib.SMTPDataError) as failed:
        client.sendmail("alice@example.org", ["escalations@localhost"], message(7))
    assert failed.value.smtp_code == 451 and _text(failed.value.smtp_error).startswith("4.3.0")
    blocker.execute("ROLLBACK")
    blocker.close()
    with server.smtp() as client:
        assert client.sendmail("alice@example.org", ["escalations@localhost"], message(7)) == {}
    assert len(server.mails(decide=False)) == 1


def test_closed_store_gets_451(server: RunningServer) -> None:
    """A store that has gone away answers 451, never 250 and never a 5xx."""
    server.call(server.service.store.close())
    with server.smtp() as client, pytest.raises(smtplib.SMTPDataError) as failed:
        client.sendmail("alice@example.org", ["escalations@localhost"], message(8))
    assert failed.value.smtp_code == 451


def test_duplicate_delivery_is_stored_and_decided_once(server: RunningServer) -> None:
    """An MTA retrying after a lost 250 gets 250 again, but the mail exists once, even when
    the retry carries another trace header and comes from another envelope sender."""
    retry = b"Received: from relay2.example by mx.example; Tue, 1 Dec 2026\r\n" + message(9)
    for sender, raw in [("alice@example.org", message(9))] * 2 + [("srs@relay.example", retry)]:
        with server.smtp() as client:
            assert client.sendmail(sender, ["escalations@localhost"], raw) == {}
    (listed,) = server.mails()
    assert listed.mail.verdict is not None
    kinds = [a.kind for a in listed.actions]
    assert len(kinds) == len(set(kinds)), "one decision, so each action kind at most once"


def test_two_mails_sharing_a_message_id_are_both_stored_and_decided(server: RunningServer) -> None:
    """A templated sender reusing one Message-ID: two different mails, two 250s, both kept."""
    first = message(20)
    second = first.replace(b"Production down 20", b"Payments down").replace(b"log in", b"pay")
    with server.smtp() as client:
        for raw in (first, second):
            assert client.sendmail("alice@example.org", ["escalations@localhost"], raw) == {}
    mails = server.mails()
    assert [m.mail.message_id for m in mails] == ["msg-20@example.org"] * 2
    assert [m.mail.subject for m in mails] == ["Production down 20", "Payments down"]
    assert all(m.mail.verdict is not None for m in mails), "both decided"
    stored = [server.call(server.service.store.get_mail(m.mail.id)) for m in mails]
    assert [m.raw for m in stored if m is not None] == [first, second]


def test_overlong_line_gets_500_with_enhanced_code(server: RunningServer) -> None:
    """A line beyond the line limit is refused with 500 5.5.2 after the data is read."""
    raw = message(10) + b"x" * 20_000 + b"\r\n"
    with server.smtp() as client:
        client.ehlo()
        client.mail("alice@example.org")
        client.rcpt("escalations@localhost")
        code, text = client.data(raw)
    assert (code, text[:5]) == (500, b"5.5.2")


def test_smtputf8_and_8bit_bytes_are_kept(server: RunningServer) -> None:
    """An internationalised sender and 8-bit body arrive and are stored byte for byte."""
    raw = "From: Zoë <zoë@exämple.org>\r\nSubject: Dienst gestört ✓\r\n\r\nTschüß\r\n".encode()
    with server.smtp() as client:
        client.ehlo()
        client.sendmail(
            "zoë@exämple.org", ["escalations@localhost"], raw, ["SMTPUTF8", "BODY=8BITMIME"]
        )
    (listed,) = server.mails(decide=False)
    stored = server.call(server.service.store.get_mail(listed.mail.id))
    assert stored is not None and stored.raw == raw and stored.mail_from == "zoë@exämple.org"
    assert stored.subject == "Dienst gestört ✓"


def test_starttls_offered_and_required(start_server: StartServer, tmp_path: Path) -> None:
    """With a certificate, STARTTLS is offered; with require_tls, MAIL before it gets 530."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    server = start_server(
        tls_cert_file=tmp_path / "cert.pem", tls_key_file=tmp_path / "key.pem", require_tls=True
    )
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with server.smtp() as client:
        client.ehlo()
        assert "starttls" in client.esmtp_features
        assert client.mail("alice@example.org")[0] == 530
        client.starttls(context=client_context)
        assert client.sendmail("alice@example.org", ["escalations@localhost"], message(11)) == {}
    (listed,) = server.mails(decide=False)
    assert listed.mail.tls


def test_proxy_protocol_gives_the_real_client_address(start_server: StartServer) -> None:
    """Behind a TCP load balancer, the PROXY header's source address is what gets recorded."""
    server = start_server(proxy_protocol=True)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n")
        replies = _converse(
            sock,
            [
                b"EHLO lb.example",
                b"MAIL FROM:<alice@example.org>",
                b"RCPT TO:<escalations@localhost>",
                b"DATA",
                message(12) + b".",
                b"QUIT",
            ],
        )
    assert replies[-2].startswith(b"250 2.0.0")
    (listed,) = server.mails(decide=False)
    assert listed.mail.client_address == "203.0.113.7"


def test_idle_session_is_closed_after_command_timeout(start_server: StartServer) -> None:
    """A client that says nothing is disconnected after smtp_command_timeout."""
    server = start_server(smtp_command_timeout=0.5)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        assert sock.recv(1024).startswith(b"220")
        assert sock.recv(1024) == b"", "the server closed the idle session"


def test_shutdown_lets_a_mail_in_flight_finish_then_refuses(server: RunningServer) -> None:
    """On stop: listening ends, a transaction in flight gets its 250, its next MAIL gets 421."""
    client = server.smtp()
    client.ehlo()
    client.mail("alice@example.org")
    client.rcpt("escalations@localhost")
    assert server.service.smtp is not None
    gate = server.service.smtp.gate
    stopping = server.submit(server.service.stop(deadline=10))
    _eventually(lambda: gate.draining)
    assert client.data(message(13))[0] == 250
    code, text = client.mail("alice@example.org")
    assert (code, text[:5]) == (421, b"4.3.2")
    stopping.result(15)
    assert not _connects(server)
    assert len(server.call(_reopen_count(server.settings.sqlite_path))) == 1


async def _reopen_count(path: Path | None) -> list[object]:
    assert path is not None
    store = SQLiteStore(path)
    await store.open()
    try:
        return list(await store.list_mails())
    finally:
        await store.close()


# -- helpers ------------------------------------------------------------------------------


def _text(error: bytes | str) -> str:
    return error.decode() if isinstance(error, bytes) else error


def _connects(server: RunningServer) -> bool:
    try:
        with smtplib.SMTP(server.host, server.port, timeout=2) as client:
            client.noop()
        return True
    except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, OSError):
        return False


def _eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for something the server does asynchronously; not a speed assertion."""
    give_up = time.monotonic() + within
    while not condition():
        assert time.monotonic() < give_up, "condition never became true"
        time.sleep(0.05)


def _converse(sock: socket.socket, commands: list[bytes]) -> list[bytes]:
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


SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


@pytest.mark.skipif(not Path(SMTP_SOURCE).exists(), reason="Postfix's smtp-source not installed")
def test_postfix_smtp_source_pushes_hundreds_through_20_sessions(server: RunningServer) -> None:
    """Postfix's load generator: 300 mails over 20 parallel sessions, all stored and decided."""
    done = subprocess.run(
        [
            SMTP_SOURCE,
            "-s",
            "20",
            "-m",
            "300",
            "-l",
            "2000",
            "-f",
            "alice@example.org",
            "-t",
            "escalations@localhost",
            f"{server.host}:{server.port}",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    mails = server.mails()
    assert len(mails) == 300 and len({m.mail.message_id for m in mails}) == 300
    assert all(m.mail.verdict is not None for m in mails)


def test_postgresql_backend_end_to_end(start_server: StartServer) -> None:
    """On PostgreSQL a mail is stored, deduplicated and decided; hostile headers (a 5 KB
    Message-ID, NUL bytes) are still accepted and decided, never a 451 loop."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}: {exc}")
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        server = start_server(database_url=url)
        hostile = (
            b"Message-ID: <" + b"x" * 5000 + b"@example.org>\r\nSubject: nul \x00 here\r\n"
            b"From: \x00@example.org\r\n\r\nbody \x00 with NUL\r\n"
        )
        for raw in (message(14), message(14), hostile):
            with server.smtp() as client:
                client.sendmail("alice@example.org", ["escalations@localhost"], raw)
        first, second = server.mails()
        assert first.mail.verdict is not None and first.mail.message_id == "msg-14@example.org"
        assert second.mail.verdict is not None and second.mail.decision is not None
        server.stop()
    finally:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        admin.close()


def test_fast_session_setup_leaves_the_same_state_as_aiosmtpd(settings: Settings) -> None:
    """EscalatorSMTP's copy of aiosmtpd's __init__ sets every attribute aiosmtpd's own would."""
    loop = asyncio.new_event_loop()
    try:
        handler = MailHandler(SQLiteStore(settings.data_dir / "unused.db"), ("a@x",), 5)
        gate = SessionGate(1, 1)
        options: dict[str, Any] = {
            "data_size_limit": 1000, "enable_SMTPUTF8": True, "hostname": "h", "ident": "i",
            "tls_context": None, "require_starttls": False, "timeout": 9.0,
            "proxy_protocol_timeout": None, "loop": loop,
        }  # fmt: skip
        fast = EscalatorSMTP(handler, gate, 1.0, **options)
        slow = EscalatorSMTP.__new__(EscalatorSMTP)
        SMTP.__init__(slow, handler, auth_exclude_mechanism=NO_AUTH, **options)
    finally:
        loop.close()
    fast_vars, slow_vars = vars(fast), vars(slow)
    ours = {"_gate", "_data_timeout", "_client", "_refused", "_counting", "_last_active",
            "_in_data", "spool"}  # fmt: skip
    assert set(fast_vars) - ours == set(slow_vars)
    assert fast._handle_hooks == slow._handle_hooks and fast._auth_methods == slow._auth_methods
    assert set(fast._smtp_methods) == set(slow._smtp_methods)
    per_instance = {"_stream_reader_wr", "_strong_reader", "_closed", "_smtp_methods", "_loop",
                    "_client_connected_cb"}  # fmt: skip
    for name in set(slow_vars) - per_instance:
        if not name.startswith("_drain"):
            assert fast_vars[name] == slow_vars[name], name


_PATH_PIECES = st.sampled_from(
    ["a", "b1", ".", "-", "+", "_", "'", '"', "(", ")", " ", "\t", "@", "<", ">", ":", "[", "é"]
)


@given(
    st.lists(_PATH_PIECES, max_size=6).map("".join),
    st.lists(_PATH_PIECES, max_size=4).map("".join),
    st.sampled_from(["", " ", "\t", " SIZE=10", "(c)", " (c) X", "x", " BODY=8BITMIME "]),
)
def test_address_parsing_agrees_with_aiosmtpd(local: str, domain: str, tail: str) -> None:
    """The fast path for <local@domain> gives what aiosmtpd's own parsing gives, or defers."""
    fast = EscalatorSMTP.__new__(EscalatorSMTP)
    fast.local_part_limit = 0
    for arg in (f"<{local}@{domain}>{tail}", f" <{local}>{tail}", f"{local}@{domain}{tail}"):
        assert _outcome(fast._getaddr, arg) == _outcome(partial(SMTP._getaddr, fast), arg), arg


def _outcome(parse: Callable[[str], object], arg: str) -> object:
    """What parsing gives, or the type of what it raises (the email package's parser has bugs)."""
    try:
        return parse(arg)
    except Exception as exc:  # noqa: BLE001 - any exception, compared by type
        return type(exc)


def test_size_limit_is_exact(start_server: StartServer) -> None:
    """A mail of exactly max_message_bytes is accepted; one byte more gets 552 5.3.4."""
    limit = 20_000
    server = start_server(max_message_bytes=limit)
    head = message(15)
    lines = (limit - len(head) - 10) // 50
    rest = limit - len(head) - lines * 50  # 10..59 bytes for the last line
    exact = head + (b"z" * 48 + b"\r\n") * lines + b"x" * (rest - 2) + b"\r\n"
    assert len(exact) == limit
    with server.smtp() as client:
        assert client.sendmail("alice@example.org", ["escalations@localhost"], exact) == {}
        with pytest.raises(smtplib.SMTPResponseException) as too_big:  # refused at MAIL SIZE=
            client.sendmail("alice@example.org", ["escalations@localhost"], b"y" + exact)
        assert too_big.value.smtp_code == 552


def test_slow_upload_outlives_the_command_timeout(start_server: StartServer) -> None:
    """DATA gets its own budget: a client slower than the command timeout still delivers."""
    server = start_server(smtp_command_timeout=0.5, max_message_bytes=40_000)  # DATA: 2.5 s
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        _converse(sock, [b"EHLO slow.example", b"MAIL FROM:<a@example.org>",
                         b"RCPT TO:<escalations@localhost>", b"DATA"])  # fmt: skip
        for line in message(16).splitlines(keepends=True):
            sock.sendall(line)
            time.sleep(0.15)  # 9 lines: longer than the command timeout, within DATA's
        sock.sendall(b".\r\n")
        assert _reply(reader).startswith(b"250 2.0.0")
