"""`escalator serve` as a real process: SIGKILL mid-stream loses nothing; SIGTERM exits 0."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from relykit import wait_serving

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 4


class ServeProcess:
    """`python -m escalator serve` on a private data dir and port."""

    def __init__(self, data_dir: Path, port: int, workers: int = 1) -> None:
        self.port = port
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")},
            "PYTHONPATH": str(REPO),
            "ESCALATOR_DATA_DIR": str(data_dir),
            "ESCALATOR_SMTP_LISTEN": f"127.0.0.1:{port}",
            "ESCALATOR_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
            "ESCALATOR_WORKERS": str(workers),
        }
        log = data_dir.parent / f"serve-{time.monotonic_ns()}.log"
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "escalator", "serve"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a SIGKILL takes the whole group: every process dies at once
        )
        self._wait_listening()
        wait_serving(self.proc, log, 0, workers)

    def _wait_listening(self) -> None:
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            assert self.proc.poll() is None, "escalator serve exited during start-up"
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as client:
                    client.noop()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("escalator serve never listened")

    def list_json(self) -> list[dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, "-m", "escalator", "list", "--json"],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        return [json.loads(line) for line in done.stdout.decode().splitlines()]

    def stop(self, signum: int) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)
        code = self.proc.wait(60)
        self.log.close()
        return code


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "var"


def _client(port: int, name: str, acked: list[str], stop: threading.Event) -> None:
    """Sends mails, a few per session, until the server dies; records every Message-ID acked."""
    n = 0
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                for _ in range(3):
                    n += 1
                    msg_id = f"{name}-{n}@crash.test"
                    raw = (
                        f"From: {name}@example.org\r\nTo: escalations@localhost\r\n"
                        f"Subject: Production outage {n}\r\nMessage-ID: <{msg_id}>\r\n\r\n"
                        "Users cannot log in. Slack: #laa-incident\r\n"
                    ).encode()
                    client.sendmail(f"{name}@example.org", ["escalations@localhost"], raw)
                    acked.append(msg_id)
        except (OSError, smtplib.SMTPException):
            return


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_stream_loses_no_acknowledged_mail(data_dir: Path, workers: int) -> None:
    """Every mail a client saw 250 for survives SIGKILL and is decided once after restart; with
    two workers, SIGKILL of the whole process group (supervisor, acceptors, back office, decide
    lanes) at once, as a node or OOM kill would."""
    port = free_port()
    first = ServeProcess(data_dir, port, workers)
    acked: list[str] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=_client, args=(port, f"c{i}", acked, stop)) for i in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    while len(acked) < 150:
        time.sleep(0.01)
    first.stop(signal.SIGKILL)
    stop.set()
    for thread in clients:
        thread.join(30)
    undecided_at_crash = _undecided(data_dir / "escalator.db")

    second = ServeProcess(data_dir, port, workers)
    mails = _wait_all_decided(second)
    assert second.stop(signal.SIGTERM) == 0, "SIGTERM is a clean shutdown"

    ids = [m["message_id"] for m in mails]
    assert set(acked) <= set(ids), f"lost {len(set(acked) - set(ids))} acknowledged mails"
    assert len(ids) == len(set(ids)), "each mail stored once"
    for mail in mails:
        kinds = [a["kind"] for a in mail["actions"]]
        assert mail["verdict"] and len(kinds) == len(set(kinds)), "decided exactly once"
    print(f"acked={len(acked)} stored={len(ids)} undecided_at_crash={undecided_at_crash}")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_exits_zero_and_unopenable_store_fails_fast(
    data_dir: Path, tmp_path: Path, workers: int
) -> None:
    """A store that cannot be opened stops start-up with a clear message and a non-zero exit;
    with two workers the back office's failure stops the acceptors and the supervisor too."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data folder should be")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")},
        "PYTHONPATH": str(REPO),
        "ESCALATOR_DATA_DIR": str(blocker / "var"),
        "ESCALATOR_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "ESCALATOR_WORKERS": str(workers),
    }
    done = subprocess.run(
        [sys.executable, "-m", "escalator", "serve"], env=env, capture_output=True, timeout=60
    )
    said = done.stderr.decode(errors="replace")
    assert done.returncode in (1, 2), said
    assert "store" in said and str(blocker) in said
    assert "Traceback" not in said, said


def _undecided(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM mails WHERE verdict IS NULL").fetchone()[0])


def _wait_all_decided(server: ServeProcess) -> list[dict[str, Any]]:
    give_up = time.monotonic() + 60
    while True:
        mails = server.list_json()
        if all(m["verdict"] for m in mails):
            return mails
        assert time.monotonic() < give_up, "undecided mails after restart"
        time.sleep(0.2)
