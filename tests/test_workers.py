"""Several accepting processes (ESCALATOR_WORKERS > 1, issue 12): a supervisor, acceptors on one
port that commit their mails themselves, and one back office that decides them. Real processes,
real SMTP clients, the real SQLite store: a killed back office or acceptor is restarted and no
acknowledged mail is lost or stored twice; a mail sent twice through different acceptors is one
mail; an acceptor whose back office is away still stores before its 250 (decided once the back
office is back); /metrics sums every process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import POSTGRES_URL, SettingsFactory, free_port
from relykit import wait_serving

from escalator.acceptor import Acceptor
from escalator.supervisor import share

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


class Workers:
    """`escalator serve` with ESCALATOR_WORKERS=2 on a private data dir (or the PostgreSQL
    `database`); waits until all its processes serve."""

    def __init__(self, folder: Path, database: str | None = None) -> None:
        self.port, self.http = free_port(), free_port()
        self.data = folder / "var"
        self.database = database
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")},
            "PYTHONPATH": str(REPO),
            "ESCALATOR_DATA_DIR": str(self.data),
            "ESCALATOR_SMTP_LISTEN": f"127.0.0.1:{self.port}",
            "ESCALATOR_HTTP_LISTEN": f"127.0.0.1:{self.http}",
            "ESCALATOR_WORKERS": "2",
            "ESCALATOR_LOG_FORMAT": "json",
            **({"ESCALATOR_DATABASE_URL": database} if database else {}),
        }
        self.log = folder / f"serve-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "escalator", "serve"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_serving(self.proc, self.log, 0, 2)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line[:1] == "{"]

    def pid_of(self, role: str, generation: int = 0) -> int:
        """The pid of `role` ("office 0", "acceptor 1") in its `generation`-th start."""
        found = [
            int(m.group(1))
            for line in self.lines()
            if (m := re.fullmatch(rf"{role} started \(pid (\d+)\)", line["message"]))
        ]
        return found[generation]

    def wait_restarted(self, role: str) -> None:
        """Until `role` was started a second time."""
        started = f"{role} started"
        _wait_for(lambda: sum(x["message"].startswith(started) for x in self.lines()) >= 2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(90)

    def mails(self) -> list[tuple[str, str | None]]:
        """(message_id, verdict) of every stored mail."""
        query = "SELECT message_id, verdict FROM mails"
        if self.database is not None:
            with psycopg.connect(self.database) as conn:
                rows = conn.execute(query).fetchall()
        else:
            with sqlite3.connect(self.data / "escalator.db") as conn:
                rows = conn.execute(query).fetchall()
        return [(str(message_id), verdict) for message_id, verdict in rows]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with _running(Workers(tmp_path)) as running:
        yield running


@contextlib.contextmanager
def _running(running: Workers) -> Iterator[Workers]:
    """The processes, killed afterwards if the test left them running."""
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait(30)


def _wait_for(condition: Callable[[], bool], bound: float = 60) -> None:
    """Poll until `condition` (a generous bound: not a timed assertion)."""
    give_up = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < give_up, "condition not reached within the bound"
        time.sleep(0.05)


def mail(tag: str, n: int) -> bytes:
    return (
        f"From: {tag}@example.org\r\nTo: escalations@localhost\r\n"
        f"Subject: Production outage {n}\r\nMessage-ID: <{tag}-{n}@workers.test>\r\n\r\n"
        "Users cannot log in. Slack: #laa-incident\r\n"
    ).encode()


def _client(port: int, tag: str, acked: list[str], stop: threading.Event) -> None:
    """One mail per session until `stop`; a refusal (its acceptor killed) is retried later,
    as an MTA would; each Message-ID answered 250 is recorded."""
    n = 0
    while not stop.is_set():
        n += 1
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail(f"{tag}@example.org", ["escalations@localhost"], mail(tag, n))
                acked.append(f"{tag}-{n}@workers.test")
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)


def _stream(port: int, acked: list[str], clients: int = 3) -> tuple[threading.Event, list[Any]]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=_client, args=(port, f"c{i}", acked, stop)) for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    return stop, threads


@pytest.mark.parametrize("role", ["office 0", "acceptor 1"])
def test_a_killed_child_is_restarted_and_no_acknowledged_mail_is_lost(
    workers: Workers, role: str
) -> None:
    """SIGKILL the back office (or an acceptor) while mails stream in: the supervisor starts it
    again; sessions cut short were never answered 250 and are retried; at the end every mail
    answered 250 is stored once and decided once, and the supervisor exits 0 on SIGTERM."""
    _kill_mid_stream(workers, role)


def test_a_killed_back_office_on_postgresql_loses_nothing(tmp_path: Path, pg_schema: str) -> None:
    """The same with the store on PostgreSQL: the back office holds its pool and its writer."""
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{pg_schema}"
    with _running(Workers(tmp_path, url)) as workers:
        _kill_mid_stream(workers, "office 0")


def _kill_mid_stream(workers: Workers, role: str) -> None:
    acked: list[str] = []
    stop, threads = _stream(workers.port, acked)
    _wait_for(lambda: len(acked) >= 30)
    os.kill(workers.pid_of(role), signal.SIGKILL)
    workers.wait_restarted(role)
    before = len(acked)
    _wait_for(lambda: len(acked) >= before + 30)  # accepted again, through the new process
    stop.set()
    for thread in threads:
        thread.join(30)
    assert workers.stop() == 0, "SIGTERM is a clean stop"
    stored = workers.mails()
    ids = [message_id for message_id, _ in stored]
    assert set(acked) <= set(ids), f"lost {len(set(acked) - set(ids))} acknowledged mails"
    assert len(ids) == len(set(ids)), "each mail stored once"
    assert all(verdict for _, verdict in stored), "every mail decided by the back office"
    print(f"acked={len(acked)} stored={len(ids)}")


def test_a_mail_sent_twice_through_two_acceptors_is_one_mail(workers: Workers) -> None:
    """The same message resent (its 250 lost on the way, say) on new connections, whichever
    acceptor takes them: the same id each time, stored once."""
    answers = set()
    for _ in range(6):
        with smtplib.SMTP("127.0.0.1", workers.port, timeout=10) as client:
            client.ehlo()
            client.mail("dup@example.org")
            client.rcpt("escalations@localhost")
            code, text = client.data(mail("dup", 1))
        assert code == 250
        answers.add(text)
    assert len(answers) == 1, answers
    assert [m for m, _ in workers.mails()].count("dup-1@workers.test") == 1


def test_metrics_count_what_every_acceptor_received(workers: Workers) -> None:
    """/metrics (the back office's) sums the counters of every process."""
    for n in range(8):
        with smtplib.SMTP("127.0.0.1", workers.port, timeout=10) as client:
            client.sendmail("m@example.org", ["escalations@localhost"], mail("metrics", n))
    with urllib.request.urlopen(f"http://127.0.0.1:{workers.http}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    assert "escalator_mails_received_total 8.0" in text
    assert 'escalator_smtp_replies_total{code="250"} 8.0' in text


async def test_back_office_out_of_reach_still_stores_before_250(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """An acceptor whose back office is not there (restarting) commits the mail itself: 250
    means it is in the store, undecided, for the back office to decide at its start."""
    settings = make_settings()
    sock = socket.create_server(("127.0.0.1", 0))
    acceptor = Acceptor(settings, sock, str(tmp_path / "nobody.sock"))
    await acceptor.start()
    port = sock.getsockname()[1]
    try:
        await asyncio.to_thread(_send_one, port)
    finally:
        await acceptor.stop(deadline=5)
    with sqlite3.connect(settings.data_dir / "escalator.db") as conn:
        stored = conn.execute("SELECT message_id, verdict FROM mails").fetchall()
    assert stored == [("away-1@workers.test", None)]


def _send_one(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("x@example.org", ["escalations@localhost"], mail("away", 1))


def test_limits_are_shared_out_among_acceptors(make_settings: SettingsFactory) -> None:
    """Together the acceptors keep the operator's caps; one client's cap stays whole in each."""
    settings = make_settings(
        max_connections=201,
        sender_rate_limit=60,
        client_rate_limit=0,
        max_connections_per_client=20,
    )
    one = share(settings, 2)
    assert (one.max_connections, one.sender_rate_limit, one.client_rate_limit) == (101, 30, 0)
    assert one.max_connections_per_client == 20
