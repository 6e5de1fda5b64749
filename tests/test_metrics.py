"""Metrics and health of the running service, read over HTTP as Prometheus and Kubernetes would.

A real service (SMTP, store, decide and dispatch workers, web server) on loopback: /metrics is
scraped before and after a mail goes through and the counters must have moved by exactly what
happened; the outbox gauges must match the store at scrape time. /readyz turns 503 when the
store is closed, a worker is gone, or an action is stuck past the retry horizon. The store's
outbox summary (what the gauges and /readyz read) is checked on both backends.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import RunningServer
from prometheus_client.parser import text_string_to_metric_families

from escalator.core.actions import PlannedAction
from escalator.core.record import DecisionRecord
from escalator.store import IncomingMail, ListedMail, OutboxSummary, Store

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SENDER = "ana@digital.justice.gov.uk"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ESCALATION = (
    f'From: "Ana Analyst" <{SENDER}>\r\nTo: escalations@localhost\r\n'
    "Subject: LAA apply is down\r\nMessage-ID: <metrics-1@digital.justice.gov.uk>\r\n"
    "Date: Fri, 27 Nov 2026 11:00:00 +0000\r\n\r\n"
    "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\r\n"
    "Our incident channel is #laa-apply-incident.\r\n\r\nAna\r\n"
)


# -- HTTP helpers ---------------------------------------------------------------------------


def get(server: RunningServer, path: str) -> tuple[int, str]:
    """GET on the service's HTTP port; waits (up to 10 s) for the web server to listen."""
    url = f"http://{server.settings.http_listen}{path}"
    give_up = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except OSError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.05)


def scrape(server: RunningServer) -> Samples:
    status, text = get(server, "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def settled(server: RunningServer) -> ListedMail:
    """The newest mail once decided with nothing of it due and pending."""
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        mails = server.mails(decide=False)
        now = datetime.now(UTC)
        if mails and mails[-1].mail.verdict:
            due = [a for a in mails[-1].actions if a.state == "pending" and a.due_at <= now]
            if not due:
                return mails[-1]
        time.sleep(0.05)
    raise AssertionError("the mail was not decided and dispatched")


def stop_worker(server: RunningServer, name: str) -> None:
    """Cancel one of the service's workers, as if it had died."""

    async def cancel() -> None:
        task = next(t for t in server.service._tasks if t.get_name() == f"escalator-{name}")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    server.call(cancel())


def decided_with(server: RunningServer, planned: tuple[PlannedAction, ...]) -> int:
    """A mail stored and decided with exactly `planned` as its actions (no worker involved)."""
    store = server.service.store
    incoming = IncomingMail(
        ESCALATION.encode(), SENDER, ("escalations@localhost",), None, False, T0
    )
    mail_id = server.call(store.accept(incoming)).mail_id
    record = DecisionRecord({"verdict": "escalate", "window": "on_call"}, T0)
    assert server.call(store.record_decision(mail_id, record, planned))
    return mail_id


# -- /metrics -------------------------------------------------------------------------------


def test_a_mail_through_the_service_moves_each_counter(
    start_server: Callable[..., RunningServer],
) -> None:
    """After one escalation over SMTP: one mail received, one 250, one accept timed, one
    decision (escalate, reason none), each finished action counted by kind and outcome, and
    the outbox gauges equal to what the store holds pending; a refused recipient adds a 550."""
    server = start_server()
    before = scrape(server)
    with server.smtp() as client:
        client.sendmail(SENDER, ["escalations@localhost"], ESCALATION)
    listed = settled(server)
    after = scrape(server)

    assert moved(before, after, "escalator_mails_received_total") == 1
    assert moved(before, after, "escalator_smtp_replies_total", code="250") == 1
    assert moved(before, after, "escalator_accept_seconds_count") == 1
    decisions = moved(before, after, "escalator_decisions_total", verdict="escalate", reason="none")
    assert decisions == 1
    for action in listed.actions:
        finished = [a for a in listed.actions if (a.kind, a.state) == (action.kind, action.state)]
        counted = moved(
            before, after, "escalator_actions_total", kind=action.kind, outcome=action.state
        )
        assert counted == (0 if action.state == "pending" else len(finished))
    for kind in ("page", "alarm", "ack", "reply"):
        pending = [a for a in listed.actions if a.kind == kind and a.state == "pending"]
        assert value(after, "escalator_outbox_pending", kind=kind) == len(pending)

    with server.smtp() as client:
        client.ehlo()
        client.mail(SENDER)
        code, _ = client.rcpt("nobody@example.org")
    assert code == 550
    refused = scrape(server)
    assert moved(after, refused, "escalator_smtp_replies_total", code="550") == 1
    assert moved(after, refused, "escalator_mails_received_total") == 0


def test_outbox_gauges_and_readiness_follow_the_store(
    start_server: Callable[..., RunningServer],
) -> None:
    """With the dispatch worker gone, a deferred page and an alarm overdue by 5 minutes show
    in the gauges at the next scrape, and /readyz says why it is not ready: the worker is not
    running and an action is stuck past the retry horizon (60 s here)."""
    server = start_server(retry_horizon_seconds=60)
    assert get(server, "/readyz")[0] == 200
    stop_worker(server, "dispatch")
    now = datetime.now(UTC)
    decided_with(
        server,
        (
            PlannedAction("page", now + timedelta(hours=2), "k1"),
            PlannedAction("alarm", now - timedelta(minutes=5), "k1"),
        ),
    )
    samples = scrape(server)
    assert value(samples, "escalator_outbox_pending", kind="page") == 1
    assert value(samples, "escalator_outbox_pending", kind="alarm") == 1
    assert value(samples, "escalator_outbox_pending", kind="reply") == 0
    assert value(samples, "escalator_deferred_pages_waiting") == 1
    assert 300 <= value(samples, "escalator_outbox_oldest_pending_seconds") < 400

    status, text = get(server, "/readyz")
    assert status == 503
    assert "dispatch worker is not running" in text and "beyond the retry horizon" in text
    assert get(server, "/healthz")[0] == 200
    # The Kubernetes probe's scope leaves the stuck outbox out of its verdict (it is an alert,
    # not a reason to stop accepting mail; it is still told in the detail), but the dead worker
    # makes it 503.
    status, text = get(server, "/readyz?scope=traffic")
    assert status == 503 and "outbox: an action has been due for" in text
    assert text.index("dispatch worker is not running") < text.index("outbox:")


def test_readyz_fails_when_the_store_is_closed(
    start_server: Callable[..., RunningServer],
) -> None:
    """A store that no longer answers makes /readyz 503 (naming the store); /healthz stays ok;
    a mail is answered 451 and counted (received, reply 451, store error); /metrics still
    answers, counting a store error instead of the outbox gauges."""
    server = start_server()
    status, text = get(server, "/readyz")
    assert status == 200 and "ok" in text
    before = scrape(server)
    server.call(server.service.store.close())
    status, text = get(server, "/readyz")
    assert status == 503 and "store" in text
    status, text = get(server, "/readyz?scope=traffic")
    assert status == 503 and "store" in text
    assert get(server, "/healthz") == (200, "ok\n")
    with server.smtp() as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail(SENDER, ["escalations@localhost"], ESCALATION)
    assert refused.value.smtp_code == 451
    after = scrape(server)
    assert moved(before, after, "escalator_smtp_replies_total", code="451") == 1
    assert moved(before, after, "escalator_mails_received_total") == 1
    assert moved(before, after, "escalator_store_errors_total") >= 2  # the mail, the scrape


# -- the store's outbox summary, both backends ------------------------------------------------


async def test_outbox_summary_counts_pending_by_kind_oldest_due_and_deferred_pages(
    store: Store,
) -> None:
    """Pending actions by kind (claimed ones and future ones included, finished ones not), the
    FIRST due time of the oldest pending action already due (a retry does not make it younger),
    pages scheduled for later (a retry-waiting page is not deferred), the earliest passed due
    time, and since when the oldest failing page was first due."""
    assert await store.outbox_summary(T0) == OutboxSummary({}, None, 0)
    mail_id = (await store.accept(_incoming())).mail_id
    planned = (
        PlannedAction("page", T0 - timedelta(minutes=5), "k"),
        PlannedAction("alarm", T0 - timedelta(minutes=1), "k"),
        PlannedAction("page", T0 + timedelta(hours=1), "k"),
        PlannedAction("reply", T0 - timedelta(minutes=9), "k"),
        PlannedAction("ack", T0, "k", state="skipped", note="no channel named"),
    )
    record = DecisionRecord({"verdict": "escalate", "window": "on_call"}, T0)
    assert await store.record_decision(mail_id, record, planned)
    reply = next(a for a in await store.mail_actions(mail_id) if a.kind == "reply")
    await store.finish_action(reply.id, "sent")
    await store.claim_due_actions(T0, 1, 60)  # leased, still pending

    summary = await store.outbox_summary(T0)
    five_ago = T0 - timedelta(minutes=5)
    assert summary == OutboxSummary({"page": 2, "alarm": 1}, five_ago, 1, five_ago, None)
    later = await store.outbox_summary(T0 + timedelta(hours=2))
    assert later == OutboxSummary({"page": 2, "alarm": 1}, five_ago, 0, five_ago, None)


async def test_a_retry_keeps_the_first_due_time_and_is_not_a_deferred_page(store: Store) -> None:
    """A page failing since T0-5min and waiting for its retry at T0+1min: 5 minutes old (not
    the few seconds since its last try), failing since T0-5min, not counted as deferred."""
    mail_id = (await store.accept(_incoming())).mail_id
    record = DecisionRecord({"verdict": "escalate", "window": "on_call"}, T0)
    first_due = T0 - timedelta(minutes=5)
    assert await store.record_decision(mail_id, record, (PlannedAction("page", first_due, "k"),))
    (page,) = await store.claim_due_actions(T0 - timedelta(seconds=10), 1, 60)
    await store.retry_action(page.id, T0 + timedelta(minutes=1), "failing since ...: 503")

    summary = await store.outbox_summary(T0)
    assert summary.oldest_due == first_due and summary.failing_pages_since == first_due
    assert summary.deferred_pages == 0 and summary.stalled_since is None
    (action,) = await store.mail_actions(mail_id)
    assert action.first_due_at == first_due and action.due_at == T0 + timedelta(minutes=1)


def _incoming() -> IncomingMail:
    fields: dict[str, Any] = {"message_id": "summary@example.org", "subject": "s"}
    return IncomingMail(b"Subject: s\r\n\r\nx\r\n", SENDER, ("e@x",), None, False, T0, **fields)
