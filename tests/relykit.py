"""Helpers for the reliability tests (issue 14): mails that page now, whatever the hour.

A test that runs against the real clock cannot choose the cover window by moving time, so it
chooses the wall clock instead: `paging_now(folder)` gives settings (a fixed-offset time zone in
which it is early afternoon now, and that day as an extra bank holiday) under which the cover
calendar says "on_call" for hours to come: every escalation pages at once, with no alarm.
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from conftest import free_port
from standins.pagerduty import PagerDutyStandIn

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]

AFTERNOON = 14  # local hour chosen for "now": 7 hours before the 22:00 end of on-call cover


def paging_now(folder: Path) -> dict[str, Any]:
    """Settings overrides (timezone, extra_holidays_file) that make 'now' an on-call window."""
    now = datetime.now(UTC)
    offset = AFTERNOON - now.hour
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    zone = "Etc/GMT" + (f"{-offset:+d}" if offset else "")  # POSIX sign: Etc/GMT-6 is UTC+6
    local_day = (now + timedelta(hours=offset)).date()
    events = [
        {"title": "Test day", "date": str(day), "notes": "", "bunting": False}
        for day in (local_day, local_day + timedelta(days=1))
    ]
    path = folder / "holidays.json"
    path.write_text(json.dumps({"england-and-wales": {"events": events}}))
    return {"timezone": zone, "extra_holidays_file": path}


def escalation(n: int, tag: str) -> bytes:
    """A mail that escalates: a production service down, an incident channel named."""
    return (
        f"From: Ana Analyst <ana{n}@digital.justice.gov.uk>\r\nTo: escalations@localhost\r\n"
        f"Subject: LAA apply is down ({tag} {n})\r\n"
        f"Message-ID: <{tag}-{n}@digital.justice.gov.uk>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Since 10:40 every LAA apply user gets a 502 error on submit ({tag} {n}), so nobody can "
        "apply.\r\nOur incident channel is #laa-apply-incident.\r\n"
    ).encode()


class PagerDutyThread:
    """The PagerDuty stand-in on its own loop in a thread, for `escalator serve` subprocesses."""

    def __init__(self, folder: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.pd = PagerDutyStandIn(folder)
        self.call(self.pd.__aenter__())

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def env(self) -> dict[str, str]:
        return {
            "ESCALATOR_PAGERDUTY_ROUTING_KEY": self.pd.routing_key,
            "ESCALATOR_PAGERDUTY_EVENTS_URL": self.pd.url,
            "ESCALATOR_PAGERDUTY_CA_FILE": str(self.pd.ca_file),
        }

    def close(self) -> None:
        self.call(self.pd.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def serve_env(folder: Path, smtp_port: int, extra: dict[str, str]) -> dict[str, str]:
    """The environment of an `escalator serve` subprocess: nothing of the developer's."""
    paging = paging_now(folder)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")},
        "PYTHONPATH": str(REPO),
        "ESCALATOR_SMTP_LISTEN": f"127.0.0.1:{smtp_port}",
        "ESCALATOR_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "ESCALATOR_TIMEZONE": paging["timezone"],
        "ESCALATOR_EXTRA_HOLIDAYS_FILE": str(paging["extra_holidays_file"]),
        "ESCALATOR_LOG_FORMAT": "json",
        "ESCALATOR_HANDOVER_TIMES": "",  # no digest posted by whichever test runs at 09:00
        "ESCALATOR_STORM_WINDOW_SECONDS": "0",  # one sender's look-alike mails, each paged
        # these mails are one outage from many senders on purpose, yet each must page: no joining
        "ESCALATOR_JOIN_WINDOW": "0",
        **extra,
    }


class Serve:
    """`python -m escalator serve` with the given environment; waits until SMTP listens."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = int(env["ESCALATOR_SMTP_LISTEN"].rpartition(":")[2])
        offset = log.stat().st_size if log.exists() else 0
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "escalator", "serve"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its decide children are killed with it (killpg)
        )
        self._wait_listening()
        wait_serving(self.proc, log, offset, int(env.get("ESCALATOR_WORKERS", "1")))

    def _wait_listening(self) -> None:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            assert self.proc.poll() is None, "escalator serve exited during start-up"
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as client:
                    client.noop()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("escalator serve never listened")

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)

    def wait(self) -> int:
        code = self.proc.wait(60)
        self._log.close()
        return code


SERVING = b"acceptor processes and a back office"  # the supervisor's log line once all serve


def wait_serving(proc: subprocess.Popen[bytes], log: Path, offset: int, workers: int) -> None:
    """With several workers SMTP answers once one acceptor listens: wait until all processes
    serve (the supervisor logs it after `offset` in `log`)."""
    give_up = time.monotonic() + 60
    while workers > 1 and SERVING not in log.read_bytes()[offset:]:
        assert proc.poll() is None, "escalator serve exited during start-up"
        assert time.monotonic() < give_up, "escalator serve never said all its processes serve"
        time.sleep(0.1)


def send_until(port: int, tag: str, acked: list[str], stop: threading.Event, pause: float) -> None:
    """Send escalations one per session until `stop` or the server goes; record each 250."""
    n = len(acked)
    while not stop.is_set():
        n += 1
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.sendmail(
                    "ana@digital.justice.gov.uk", ["escalations@localhost"], escalation(n, tag)
                )
        except (OSError, smtplib.SMTPException):
            return
        acked.append(f"{tag}-{n}@digital.justice.gov.uk")
        time.sleep(pause)
