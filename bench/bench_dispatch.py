"""Latency from the end of DATA to the PagerDuty request reaching the stand-in, p50/p99.

The whole path runs in this process as `escalator serve` wires it: aiosmtpd front door ->
store commit, while a decide child (on a pipe) reads the mail -> the decide worker finishes the
decision of the stored mail in that child -> dispatcher.page_now, while the decision's commit
claims the page -> PagerDuty client (aiohttp, keep-alive) -> HTTPS -> a PagerDuty Events API
stand-in in a child process. The accept callback wakes the decide worker.
Clients send at 1 mail/s and at 20 mails/s on one connection each; beside them, in the same
run, the bare store commit (`store.accept`) is timed, as the baseline the path is compared to.

The day is declared a bank holiday and the SMTP and dispatcher clocks (received_at, the instant
a mail is routed at; when a page is due) run from 12:00 London that day, so that every mail
pages at once whenever the script runs (07:00-22:00 London on a bank holiday); a page that
never arrives is counted in `pages_missing_at_*`, and a rate with none has null percentiles.

    .venv/bin/python bench/bench_dispatch.py [--seconds 15] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from standins.pagerduty import PagerDutyStandIn

from escalator.app import page_handoff
from escalator.decider.processor import Foreseeing, Processor
from escalator.ingress.smtp import start_smtp
from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.settings import Settings
from escalator.store import IncomingMail, Store, open_store

BODY = (
    "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\n"
    "Our incident channel is #laa-apply-incident.\n"
)


class StandInProcess:
    """The PagerDuty stand-in in a child process (PagerDuty is remote: it must not share our
    GIL), reporting each accepted event's arrival as (dedup_key, perf_counter); on Linux
    perf_counter is CLOCK_MONOTONIC, the same clock in every process."""

    def __init__(self, folder: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_standin, args=(folder, child), daemon=True)
        self._process.start()
        self.url, self.ca_file, self.routing_key = self._conn.recv()
        self.arrivals: dict[str, float] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                key, at = self._conn.recv()
                self.arrivals.setdefault(key, at)

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(5)


def _serve_standin(folder: Path, conn: Any) -> None:
    asyncio.run(_standin_main(folder, conn))


async def _standin_main(folder: Path, conn: Any) -> None:
    async with PagerDutyStandIn(folder) as pd:
        original = pd._record

        def stamped(body: Any, status: int, errors: list[str]) -> Any:
            if status == 202:
                conn.send((body["dedup_key"], time.perf_counter()))
            return original(body, status, errors)

        pd._record = stamped  # type: ignore[method-assign]
        conn.send((pd.url, pd.ca_file, pd.routing_key))
        await asyncio.Event().wait()


def message(tag: str, n: int) -> bytes:
    """An escalation that pages at once (on a bank holiday in daytime)."""
    return (
        f'From: "Ana" <ana@digital.justice.gov.uk>\r\nTo: escalations@localhost\r\n'
        f"Subject: LAA apply is down ({tag} {n})\r\nMessage-ID: <{tag}-{n}@bench.local>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHi,\r\n\r\n{BODY}\r\nAna\r\n"
    ).encode()


async def send_at_rate(
    host: str, port: int, tag: str, rate: float, seconds: float, sent: dict[str, float]
) -> None:
    """One connection, one mail every 1/rate s; t0 is taken as DATA starts (conservative)."""
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
    await client.connect()
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(start + n / rate - time.perf_counter(), 0))
        await client.mail("ana@digital.justice.gov.uk")
        await client.rcpt("escalations@localhost")
        sent[f"{tag}-{n}@bench.local"] = time.perf_counter()
        await client.data(message(tag, n))
    await client.quit()


async def bare_commits(store: Store, count: int) -> list[float]:
    """The baseline: store.accept alone, one at a time, in milliseconds (same mail size)."""
    out = []
    for n in range(count):
        mail = IncomingMail(
            message("bare", n), "ana@x", ("escalations@localhost",), None, False, datetime.now(UTC)
        )
        t0 = time.perf_counter()
        await store.accept(mail)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def percentiles(samples: list[float]) -> dict[str, float | None]:
    ordered = sorted(samples)

    def pick(q: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)], 2)

    return {"n": len(ordered), "p50": pick(0.5), "p99": pick(0.99)}


async def wait_for_pages(
    standin: StandInProcess, sent: dict[str, float], limit: float
) -> list[float]:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline and not set(sent) <= set(standin.arrivals):
        await asyncio.sleep(0.05)
    return [(standin.arrivals[k] - t0) * 1000 for k, t0 in sent.items() if k in standin.arrivals]


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    standin = StandInProcess(folder)
    holidays = folder / "holidays.json"
    today = datetime.now(UTC).date().isoformat()
    holidays.write_text(json.dumps({"england-and-wales": {"events": [{"date": today}]}}))
    settings = Settings(
        data_dir=folder,
        database_url=args.database_url,
        smtp_listen="127.0.0.1:0",
        extra_holidays_file=holidays,
        pagerduty_routing_key=standin.routing_key,
        pagerduty_events_url=standin.url,
        pagerduty_ca_file=standin.ca_file,
        # 20 pages/s is over PagerDuty's 120 events/min: lift our budget, the path is measured
        pagerduty_events_per_minute=100_000,
    )
    store = open_store(settings)
    await store.open()
    noon = datetime.combine(datetime.now(UTC).date(), wall_time(12), ZoneInfo("Europe/London"))
    shift = noon - datetime.now(UTC)  # midday of the bank holiday, in cover, for both clocks

    def clock() -> datetime:
        return datetime.now(UTC) + shift

    dispatcher = Dispatcher(store, settings, clock=clock)
    # as app.py wires it: a recorded decision wakes the dispatcher (no storm window: every
    # mail here is one sender's, and each must page for the path to be measured)
    processor = Processor(
        store,
        load_policy(settings),
        worker_settings=settings,
        on_decided=dispatcher.wake,
        pages=page_handoff(dispatcher),
    )

    smtp = await start_smtp(settings, Foreseeing(store, processor), processor.wake, clock=clock)
    workers = [asyncio.ensure_future(w) for w in (processor.run(), dispatcher.run())]
    host, port = smtp.address
    results: dict[str, Any] = {}
    try:
        warm: dict[str, float] = {}  # the decide children started, the TLS pool warm
        await send_at_rate(host, port, "warm", 5, 1, warm)
        await wait_for_pages(standin, warm, 60)
        await asyncio.sleep(1)
        for rate in (1, 20):
            sent: dict[str, float] = {}
            await send_at_rate(host, port, f"r{rate}", rate, args.seconds, sent)
            latencies = await wait_for_pages(standin, sent, 30)
            results[f"data_to_page_ms_at_{rate}_per_s"] = percentiles(latencies)
            results[f"pages_missing_at_{rate}_per_s"] = len(sent) - len(latencies)
        # last, so the mails it stores (which the worker then decides) delay no measured page
        results["store_commit_ms"] = percentiles(await bare_commits(store, 200))
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await smtp.stop(5)
        processor.close()
        await dispatcher.close()
        await store.close()
        standin.stop()
    base = results["store_commit_ms"]["p99"] or 1
    for rate in (1, 20):
        p99 = results[f"data_to_page_ms_at_{rate}_per_s"]["p99"]
        ratio = None if p99 is None else round(p99 / base, 1)
        results[f"p99_ratio_to_store_commit_at_{rate}_per_s"] = ratio
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per rate (default 15)")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(asyncio.run(run(args, Path(folder))), indent=2))


if __name__ == "__main__":
    main()
