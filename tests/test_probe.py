"""The canary and the logs, against `escalator serve` as a real process with real stand-ins.

One server process for the module (JSON logs to a file, every secret configured, PagerDuty,
Slack and the relay pointed at loopback stand-ins). `escalator probe` runs as a real subprocess
beside it, as the sidecar in the deployment does. A control mail sent after the probe and fully
dispatched bounds the check that the probe sent nothing: the outbox runs due actions in order,
so had the probe's actions been pending they would have gone out before the control's.
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import free_port
from standins.pagerduty import PagerDutyStandIn
from standins.slack import SlackStandIn
from standins.smtp_sink import SmtpSink

from escalator.decider.processor import PROBE_NOTE
from escalator.probe import PROBE_HEADER, build_probe, probe_mark

REPO = Path(__file__).resolve().parents[1]
PROBE_KEY = "probe-key-5d1c0f0b7e2a4c9e"
REVIEW_TOKEN = "review-token-8b3e61d2a9"
SENDER = "ana@digital.justice.gov.uk"
T = TypeVar("T")


class LoopThread:
    """An event loop in a thread, for the asyncio stand-ins beside blocking test code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Served:
    """The running `escalator serve`, its environment, stand-ins and log file."""

    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    db: Path
    http: str
    pd: PagerDutyStandIn
    slack: SlackStandIn
    sink: SmtpSink

    def traffic(self) -> tuple[int, int, int]:
        """Requests that reached PagerDuty, posts in Slack, mails at the relay."""
        return len(self.pd.received), len(self.slack.posts), len(self.sink.delivered)

    def send(self, raw: str) -> None:
        host, port = self.env["ESCALATOR_SMTP_LISTEN"].split(":")
        with smtplib.SMTP(host, int(port), timeout=30) as client:
            client.sendmail(SENDER, ["escalations@localhost"], raw)

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.http + path, timeout=10) as response:
            return str(response.read().decode())

    def mail(self, message_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The stored mail (with its decision) and its actions, read from the SQLite file."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(
                "SELECT * FROM mails WHERE message_id = ? ORDER BY id DESC", (message_id,)
            ).fetchone()
            assert row is not None, f"{message_id} not stored"
            actions = conn.execute("SELECT * FROM actions WHERE mail_id = ?", (row["id"],))
            return dict(row), [dict(action) for action in actions]

    def settled(self, message_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The mail once decided, with no action of it due and still pending."""
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            try:
                mail, actions = self.mail(message_id)
            except AssertionError:
                mail, actions = {}, []
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            due = [a for a in actions if a["state"] == "pending" and a["due_at"] <= now]
            if mail.get("verdict") and not due:
                return mail, actions
            time.sleep(0.05)
        raise AssertionError(f"{message_id} was not decided and dispatched")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("probe")
    loop = LoopThread()
    pd, slack = PagerDutyStandIn(folder), SlackStandIn()
    slack.add_channel("C0LAA00001", "laa-apply-incident", member=False)
    loop.run(pd.__aenter__())
    loop.run(slack.__aenter__())
    with SmtpSink() as sink:
        env = _environment(folder, pd, slack, sink)
        log = folder / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "escalator", "serve"], env=env, stdout=out, stderr=out
            )
        http = f"http://{env['ESCALATOR_HTTP_LISTEN']}"
        db = folder / "var" / "escalator.db"
        served = Served(env, proc, log, db, http, pd, slack, sink)
        try:
            _wait_ready(served)
            yield served
        finally:
            proc.terminate()
            proc.wait(30)
            loop.run(slack.__aexit__())
            loop.run(pd.__aexit__())
            loop.close()


def _environment(
    folder: Path, pd: PagerDutyStandIn, slack: SlackStandIn, sink: SmtpSink
) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")},
        "PYTHONPATH": str(REPO),
        "ESCALATOR_DATA_DIR": str(folder / "var"),
        "ESCALATOR_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "ESCALATOR_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "ESCALATOR_LOG_FORMAT": "json",
        "ESCALATOR_PROBE_KEY": PROBE_KEY,
        "ESCALATOR_REVIEW_TOKEN": REVIEW_TOKEN,
        "ESCALATOR_PAGERDUTY_ROUTING_KEY": pd.routing_key,
        "ESCALATOR_PAGERDUTY_EVENTS_URL": pd.url,
        "ESCALATOR_PAGERDUTY_CA_FILE": str(pd.ca_file),
        "ESCALATOR_SLACK_BOT_TOKEN": slack.token,
        "ESCALATOR_SLACK_API_URL": slack.api_url,
        "ESCALATOR_RELAY_URL": sink.url,
        # the tests send one sender's look-alike mails on purpose, each to be dispatched
        "ESCALATOR_STORM_WINDOW_SECONDS": "0",
    }


def _wait_ready(served: Served) -> None:
    give_up = time.monotonic() + 30
    while True:
        assert served.proc.poll() is None, served.log.read_text()
        try:
            served.get("/readyz")
            return
        except OSError:
            assert time.monotonic() < give_up, "escalator serve never became ready"
            time.sleep(0.1)


def run_probe(served: Served) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "escalator", "probe", "--json", "--timeout", "30"],
        env=served.env,
        capture_output=True,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout or b"{}")


def last_probe(served: Served) -> float:
    for line in served.get("/metrics").splitlines():
        if line.startswith("escalator_last_probe_success_timestamp_seconds "):
            return float(line.split()[1])
    raise AssertionError("no last-probe gauge on /metrics")


def ordinary_mail(n: int, body: str = "") -> str:
    return (
        f'From: "Ana Analyst" <{SENDER}>\r\nTo: escalations@localhost\r\n'
        f"Subject: LAA apply is down ({n})\r\nMessage-ID: <control-{n}@digital.justice.gov.uk>\r\n"
        "Date: Fri, 27 Nov 2026 11:00:00 +0000\r\n\r\n"
        "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\r\n"
        f"Our incident channel is #laa-apply-incident.\r\n{body}\r\nAna\r\n"
    )


def sent_traffic(actions: list[dict[str, Any]]) -> tuple[int, int, int]:
    """What a mail's sent actions put on the wire: PagerDuty events, Slack posts, relay mails."""
    sent = [a["kind"] for a in actions if a["state"] == "sent"]
    posts = sum(kind in ("alarm", "ack", "review") for kind in sent)
    return sent.count("page"), posts, sent.count("reply")


# -- tests ------------------------------------------------------------------------------------


def test_probe_is_decided_never_dispatched_and_moves_the_metric(served: Served) -> None:
    """`escalator probe` exits 0 once its mail is decided; every planned action is recorded
    skipped ("probe: never dispatched"), nothing reaches PagerDuty, Slack or the relay (only
    the later control mail's actions do), no one is asked to review it, and the last-probe
    gauge on /metrics moves."""
    before = served.traffic()
    code, result = run_probe(served)
    assert code == 0 and result["ok"] and result["recognised"], result
    mail, actions = served.mail(result["message_id"])
    assert json.loads(mail["decision"])["probe"] is True and mail["review"] is None
    assert actions and all(
        (a["state"], a["last_error"]) == ("skipped", PROBE_NOTE) for a in actions
    )
    assert last_probe(served) > 0

    served.send(ordinary_mail(1))
    _, control = served.settled("control-1@digital.justice.gov.uk")
    after = served.traffic()
    moved = tuple(b - a for a, b in zip(before, after, strict=True))
    assert moved == sent_traffic(control) and sum(moved) > 0


def test_forged_probe_mark_is_an_ordinary_mail(served: Served) -> None:
    """A mail carrying the probe header with a mark made by another key (or no valid mark at
    all) is decided and dispatched like any mail, and does not count as a probe."""
    gauge = last_probe(served)
    for other_key in (b"not the key", None):
        message = build_probe(b"not the key", SENDER, "escalations@localhost", datetime.now(UTC))
        message_id = str(message["Message-ID"]).strip("<>")
        del message[PROBE_HEADER]
        message[PROBE_HEADER] = "1" if other_key is None else probe_mark(other_key, message_id)
        before = served.traffic()
        served.send(message.as_string())
        mail, actions = served.settled(message_id)
        assert "probe" not in json.loads(mail["decision"])
        assert actions and not any(a["last_error"] == PROBE_NOTE for a in actions)
        after = served.traffic()
        moved = tuple(b - a for a, b in zip(before, after, strict=True))
        assert moved == sent_traffic(actions) and sum(moved) > 0
    assert last_probe(served) == gauge


def test_logs_are_json_lines_with_decisions_and_actions_but_no_body_or_secret(
    served: Served,
) -> None:
    """The production log (JSON lines on stdout) has one line for the decided mail with its
    id, Message-ID, verdict, reasons and action kinds, and one per finished action; the mail's
    body and the configured secrets appear nowhere in it."""
    phrase = "PLUM-HIPPO-7731 the quartz lantern sings"
    served.send(ordinary_mail(2, f"Internal detail: {phrase}.\r\n"))
    mail, actions = served.settled("control-2@digital.justice.gov.uk")
    text = served.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    decided = [e for e in lines if e.get("message_id") == "control-2@digital.justice.gov.uk"]
    assert len(decided) == 1
    entry = decided[0]
    assert (entry["mail_id"], entry["verdict"]) == (mail["id"], mail["verdict"])
    assert entry["reasons"] == json.loads(mail["reasons"])
    assert sorted(entry["actions"]) == sorted(a["kind"] for a in actions)
    done = {
        (e["action_id"], e["state"])
        for e in lines
        if e.get("mail_id") == mail["id"] and "action_id" in e
    }
    assert done == {(a["id"], a["state"]) for a in actions if a["state"] != "pending"}
    secrets = (PROBE_KEY, REVIEW_TOKEN, served.pd.routing_key, served.slack.token)
    for forbidden in (phrase, "PLUM-HIPPO", *secrets):
        assert forbidden not in text
