"""Stops and deaths of `escalator serve` processes (issue 14.3, 14.4), counted at the PagerDuty
stand-in: a clean stop (SIGTERM) finishes the pages it started and hands the rest back, so no
page is sent twice and a restart drains at once; a replica SIGKILLed while it holds claims and
undecided mails is taken over by an idle replica on the same PostgreSQL database within seconds.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import POSTGRES_URL, free_port
from relykit import PagerDutyThread, Serve, escalation, send_until, serve_env

from escalator.outbox.dispatch import PAGE_POOL

TERM_RUNS = 5
PD_DELAY = 0.3  # each page takes this long at "PagerDuty", so a SIGTERM can land mid-page


@pytest.fixture
def pagerduty(tmp_path: Path) -> Iterator[PagerDutyThread]:
    running = PagerDutyThread(tmp_path)
    yield running
    running.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_mid_stream_five_times_sends_no_page_twice(
    tmp_path: Path, pagerduty: PagerDutyThread, workers: int
) -> None:
    """Five SIGTERMs while mails stream in and a page is in flight (PagerDuty takes 0.3 s each):
    every exit is clean with no claim left behind, each restart drains what the last one left
    (timed with PagerDuty answering at once: the figure is escalator's, not the stand-in's),
    and at the end every acknowledged mail was paged exactly once. With two workers the
    SIGTERM reaches the whole process group (acceptors and back office too): the supervisor
    alone acts on it, acceptors first."""
    extra = {"ESCALATOR_DATA_DIR": str(tmp_path / "var"), "ESCALATOR_WORKERS": str(workers)}
    env = serve_env(tmp_path, free_port(), extra)
    env.update(pagerduty.env())
    pd, acked, figures = pagerduty.pd, [], []
    for run in range(TERM_RUNS):
        server = Serve(env, tmp_path / "serve.log")
        figures.append(_drain_seconds(pd, set(acked)))  # PagerDuty answering at once meanwhile
        pd.delay = PD_DELAY
        stop = threading.Event()
        client = threading.Thread(
            target=send_until, args=(server.port, f"term{run}", acked, stop, 0.05)
        )
        client.start()
        _wait_for(lambda run=run: sum(k.startswith(f"term{run}-") for k in acked) >= 12)
        _wait_for(lambda: pd.inflight >= 1)  # SIGTERM while PagerDuty is answering a page
        in_flight = pd.inflight
        server.signal(signal.SIGTERM)
        assert server.wait() == 0, "SIGTERM is a clean stop"
        pd.delay = 0.0
        stop.set()
        client.join(30)
        left = _claims_left(tmp_path / "var" / "escalator.db")
        assert left == 0, f"run {run}: {left} claims left behind (not finished nor handed back)"
        figures.append(in_flight)
    final = Serve(env, tmp_path / "serve.log")
    figures.append(_drain_seconds(pd, set(acked)))
    final.signal(signal.SIGTERM)
    assert final.wait() == 0
    twice = [key for key in set(pd.triggered) if pd.triggered.count(key) > 1]
    assert twice == [], f"pages sent twice: {twice}"
    assert set(acked) <= set(pd.triggered), "every acknowledged mail paged"
    print(f"acked={len(acked)} drain_s={figures[0::2]} in_flight_at_term={figures[1::2]}")


def _drain_seconds(pd: object, keys: set[str]) -> float:
    """Seconds until every key was paged (generous bound: 60 s, so not a timed assertion)."""
    start = time.monotonic()
    _wait_for(lambda: keys <= set(pd.triggered), 60)  # type: ignore[attr-defined]
    return round(time.monotonic() - start, 2)


def _wait_for(condition: object, bound: float = 60) -> None:
    give_up = time.monotonic() + bound
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < give_up, "condition not reached within the bound"
        time.sleep(0.05)


def _claims_left(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM actions WHERE state = 'pending' AND claimed_until IS NOT NULL"
        ).fetchone()
    return int(row[0])


# -- two replicas on one PostgreSQL database -----------------------------------------------------


def test_idle_replica_takes_over_a_killed_one_within_seconds(
    tmp_path: Path, pagerduty: PagerDutyThread, pg_schema: str
) -> None:
    """Replica A holds claimed pages (PagerDuty holding the first) and accepted mails it has not
    decided (its decide processes are stopped); replica B is idle. SIGKILL A: B decides every
    mail and pages each once (PagerDuty's dedup_key folds the ones A had in flight), the last
    page within 10 s of the kill."""
    pd = pagerduty.pd
    pd.delay = 0.0
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{pg_schema}"
    extra = {"ESCALATOR_DATABASE_URL": url, **pagerduty.env()}
    victim = Serve(serve_env(tmp_path, free_port(), extra), tmp_path / "a.log")
    idle = Serve(serve_env(tmp_path, free_port(), extra), tmp_path / "b.log")
    idle.signal(signal.SIGSTOP)  # idle: it takes no part until the kill
    pd.hold.clear()
    sent = _send(victim.port, "claimed", 5)
    _wait_for(lambda: pd.inflight >= 1 and _count(url, _CLAIMED) >= 1)
    _stop_children(victim.proc.pid)
    sent += _send(victim.port, "undecided", 5)
    held, undecided = _count(url, _CLAIMED), _count(url, _UNDECIDED)
    assert held >= 1 and undecided >= 1, "A holds claims and undecided mails"
    idle.signal(signal.SIGCONT)
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait()
    in_flight = pd.inflight  # A's pages PagerDuty held when A died (A sends a few at once)
    pd.hold.set()
    _wait_for(lambda: set(sent) <= set(pd.incidents), 60)
    last_page = time.monotonic() - killed_at
    idle.signal(signal.SIGTERM)
    assert idle.wait() == 0
    assert _count(url, _UNDECIDED) == 0 and _count(url, _PAGES_PER_MAIL) == 0
    assert sorted(pd.incidents) == sorted(sent), "one incident per mail"
    repeats = len(pd.triggered) - len(set(pd.triggered))
    assert 1 <= in_flight <= PAGE_POOL
    assert repeats <= in_flight, "only the pages in flight at the kill may reach PagerDuty again"
    print(f"held={held} undecided={undecided} last_page_after_kill={last_page:.2f}s")
    assert last_page < 10, f"the last page came {last_page:.1f} s after the kill"


_CLAIMED = "SELECT count(*) FROM actions WHERE state = 'pending' AND claimed_until > now()"
_UNDECIDED = "SELECT count(*) FROM mails WHERE verdict IS NULL"
_PAGES_PER_MAIL = (
    "SELECT count(*) FROM mails m WHERE (SELECT count(*) FROM actions a WHERE a.mail_id = m.id "
    "AND a.kind = 'page') <> 1"
)


def _count(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query.encode()).fetchone()
    return int(row[0]) if row else 0


def _send(port: int, tag: str, count: int) -> list[str]:
    """Send `count` escalations on one session; their dedup keys (Message-IDs)."""
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for n in range(count):
            client.sendmail(
                "ana@digital.justice.gov.uk", ["escalations@localhost"], escalation(n, tag)
            )
    return [f"{tag}-{n}@digital.justice.gov.uk" for n in range(count)]


def _stop_children(pid: int) -> None:
    """SIGSTOP the decide processes of `pid`: it still accepts mail but decides nothing."""
    import os

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            os.kill(int(entry.name), signal.SIGSTOP)


def test_sigterm_of_one_replica_hands_its_work_to_the_other(
    tmp_path: Path, pagerduty: PagerDutyThread, pg_schema: str
) -> None:
    """Two replicas on PostgreSQL; SIGTERM the one taking the mail stream while it has a page
    in flight: it exits cleanly, the other carries on with what it handed back (NOTIFY), no page
    is sent twice and every acknowledged mail is paged."""
    pd = pagerduty.pd
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{pg_schema}"
    extra = {"ESCALATOR_DATABASE_URL": url, **pagerduty.env()}
    leaving = Serve(serve_env(tmp_path, free_port(), extra), tmp_path / "a.log")
    staying = Serve(serve_env(tmp_path, free_port(), extra), tmp_path / "b.log")
    pd.delay, acked, stop = PD_DELAY, [], threading.Event()
    client = threading.Thread(target=send_until, args=(leaving.port, "roll", acked, stop, 0.05))
    client.start()
    _wait_for(lambda: len(acked) >= 15 and pd.inflight >= 1)
    leaving.signal(signal.SIGTERM)
    assert leaving.wait() == 0, "SIGTERM is a clean stop"
    stop.set()
    client.join(30)
    pd.delay = 0.0
    handed_over = _drain_seconds(pd, set(acked))
    staying.signal(signal.SIGTERM)
    assert staying.wait() == 0
    twice = [key for key in set(pd.triggered) if pd.triggered.count(key) > 1]
    assert twice == [], f"pages sent twice: {twice}"
    assert _count(url, _UNDECIDED) == 0
    print(f"acked={len(acked)} drained_by_the_other_in={handed_over}s")
