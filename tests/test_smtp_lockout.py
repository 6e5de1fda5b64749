"""Lock-out and storms at the SMTP door (issue 16): idle floods and one sender's storm never
keep another sender out. Real sockets from 127.0.0.2-127.0.0.6 (loopback source addresses)."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from contextlib import ExitStack

import pytest
from conftest import RunningServer

from escalator import metrics
from escalator.ingress import smtp as smtp_module

StartServer = Callable[..., RunningServer]
FLOODERS = [f"127.0.0.{n}" for n in range(2, 7)]


def idle_connection(server: RunningServer, source: str) -> socket.socket | None:
    """A connection that says nothing after the banner; None if it was refused."""
    sock = socket.create_connection(
        (server.host, server.port), timeout=30, source_address=(source, 0)
    )
    banner = sock.recv(1024)
    if banner.startswith(b"220"):
        return sock
    sock.close()
    return None


def mail(n: int, sender: str = "alice@example.org") -> bytes:
    return (
        f"From: {sender}\r\nSubject: Payments down {n}\r\nMessage-ID: <lock-{n}-{sender}>\r\n\r\n"
        f"Users cannot pay. Slack: #payments-incident\r\n"
    ).encode()


def test_200_idle_connections_from_5_addresses_do_not_lock_out_a_normal_client(
    server: RunningServer,
) -> None:
    """200 idle connections from 5 addresses (default caps: 100 in all, 10 per address); a
    normal client from another address is then served: banner, mail, 250."""
    with ExitStack() as stack:
        held = 0
        for n in range(200):
            sock = idle_connection(server, FLOODERS[n % 5])
            if sock is not None:
                stack.enter_context(sock)
                held += 1
        assert held <= 5 * server.settings.max_connections_per_client
        with server.smtp() as client:  # from 127.0.0.1, generous socket timeout, no timed assert
            assert client.sendmail("bob@example.org", ["escalations@localhost"], mail(1)) == {}
    assert len(server.mails(decide=False)) == 1


def test_at_the_cap_idle_sessions_are_shed_and_a_sender_mid_data_keeps_its_slot(
    start_server: StartServer,
) -> None:
    """Cap 12, 6 per address: a sender in DATA plus 11 idle sessions fill it. A newcomer is
    served (the longest-idle session gets 421 and is closed), and the DATA still ends in 250."""
    server = start_server(max_connections=12, max_connections_per_client=6)
    shed_before = metrics.SMTP_SHED._value.get()
    with ExitStack() as stack:
        sender = stack.enter_context(smtplib.SMTP(server.host, server.port, timeout=30,
                                                  source_address=("127.0.0.2", 0)))  # fmt: skip
        sender.ehlo()
        sender.mail("alice@example.org")
        sender.rcpt("escalations@localhost")
        assert sender.docmd("DATA")[0] == 354
        sender.send(mail(2)[:40])  # mid-DATA: the rest comes later
        idle = [idle_connection(server, FLOODERS[1 + n % 2]) for n in range(11)]
        assert all(sock is not None for sock in idle)
        for sock in idle:
            stack.enter_context(sock)  # type: ignore[arg-type]
        with server.smtp() as newcomer:
            assert newcomer.sendmail("bob@example.org", ["escalations@localhost"], mail(3)) == {}
        sender.send(mail(2)[40:] + b".\r\n")
        code, _ = sender.getreply()
        assert code == 250, "the sender mid-DATA kept its slot"
        closed = [sock for sock in idle if sock is not None and sock.recv(1024).startswith(b"421")]
        assert len(closed) >= 1
    assert metrics.SMTP_SHED._value.get() > shed_before


def test_one_senders_storm_through_one_relay_never_refuses_another_sender(
    start_server: StartServer,
) -> None:
    """Sender limit 5/min, client limit 12/min: a storm of 30 from one sender through one
    address gets 450 4.7.1 after 5, counted in metrics; 6 other senders through the same
    address are all accepted; a spray of many senders from one address reaches the client
    limit."""
    server = start_server(sender_rate_limit=5, client_rate_limit=12)
    limited = metrics.SMTP_RATE_LIMITED.labels(scope="sender")
    before = limited._value.get()
    refused = 0
    with server.smtp() as relay:
        for n in range(30):
            try:
                relay.sendmail("storm@example.org", ["escalations@localhost"], mail(n, "storm@x"))
            except smtplib.SMTPSenderRefused as error:
                assert (error.smtp_code, error.smtp_error[:5]) == (450, b"4.7.1")
                refused += 1
                relay.rset()
        for n in range(6):
            other = f"team{n}@example.org"
            assert relay.sendmail(other, ["escalations@localhost"], mail(100 + n, other)) == {}
    assert refused == 25 and limited._value.get() - before == 25
    spray = metrics.SMTP_RATE_LIMITED.labels(scope="client")._value.get()
    codes = []
    with server.smtp() as sprayer:  # 11 counted so far, each sender's up to 5: the spray fills it
        for n in range(5):
            sender = f"spray{n}@example.org"
            try:
                sprayer.sendmail(sender, ["escalations@localhost"], mail(200 + n, sender))
                codes.append(250)
            except smtplib.SMTPSenderRefused as error:
                codes.append(error.smtp_code)
                sprayer.rset()
    assert codes == [250, 450, 450, 450, 450]
    assert metrics.SMTP_RATE_LIMITED.labels(scope="client")._value.get() - spray == 4


def test_under_pressure_idle_sessions_get_the_short_idle_timeout(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cap 10, so pressure at 8 sessions: the idle ones (opened while the server was quiet,
    with the 300 s idle timeout) are closed on the short timer, as Postfix's smtpd_timeout
    under stress (10 s; 0.2 s here), long before the 30 s socket timeout."""
    monkeypatch.setattr(smtp_module, "PRESSURE_IDLE_TIMEOUT", 0.2)
    server = start_server(max_connections=10, max_connections_per_client=10)
    assert server.settings.smtp_command_timeout == 300
    with ExitStack() as stack:
        quiet = idle_connection(server, FLOODERS[0])
        assert quiet is not None
        stack.enter_context(quiet)
        for _ in range(8):  # the 9th session in all crosses 80% of the cap
            sock = idle_connection(server, FLOODERS[1])
            assert sock is not None
            stack.enter_context(sock)
        assert quiet.recv(1024) == b"", "closed by the server, not the socket timeout"
