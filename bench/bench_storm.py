"""Another team's page during a storm: a sender floods, the others must still page at once.

The whole path runs in this process as `escalator serve` wires it (SMTP -> store -> decide
children -> outbox -> PagerDuty over HTTPS to a stand-in in a child process; Slack to a stand-in
here). First the BASELINE: 20 other senders' mails, one each, spread over the window, no storm.
Then the STORM: 5,000 mails from one sender in one minute, all from one client address (127.0.0.1,
over a few connections, as a relay would send them), while the same 20 senders each send one
mail during it. Measured: end of DATA (t0 as DATA starts, conservative) -> the PagerDuty stand-in
receiving the page, p50/p99 for the 20; pages and Slack threads for the storm. Prints the issue
12 table row ("another team's page during a storm") and a JSON line.

The day is declared a bank holiday so every mail pages at once (07:00-22:00 London).

    .venv/bin/python bench/bench_storm.py [--storm-mails 5000] [--seconds 60] [--others 20]
        [--postgres]    (PostgreSQL at 127.0.0.1:5432, database test, a schema of its own)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_dispatch import StandInProcess, percentiles
from standins.slack import SlackStandIn

from escalator.app import page_handoff
from escalator.decider.processor import Processor
from escalator.ingress.smtp import start_smtp
from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.settings import Settings
from escalator.store import Store, open_store
from escalator.store.postgres import PostgresStore

RELAY_CONNECTIONS = 4
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class CountingStandIn(StandInProcess):
    """The stand-in's arrivals, plus how many accepted events each dedup key got."""

    def __init__(self, folder: Path) -> None:
        self.events: Counter[str] = Counter()
        self._lock = threading.Lock()
        super().__init__(folder)

    def _read(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                key, at = self._conn.recv()
                with self._lock:
                    self.events[key] += 1
                    self.arrivals.setdefault(key, at)


def message(sender: str, tag: str, n: int, subject: str, channel: str) -> bytes:
    return (
        f'From: "Reporter" <{sender}>\r\nTo: escalations@localhost\r\n'
        f"Subject: {subject}\r\nMessage-ID: <{tag}-{n}@bench.local>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Since 10:40 every user gets a 502 error on submit, so nobody can apply.\r\n"
        f"Our incident channel is #{channel}.\r\n"
    ).encode()


async def other_senders(
    host: str,
    port: int,
    phase: str,
    count: int,
    seconds: float,
    sent: dict[str, float],
    accepted: dict[str, tuple[float, int]] | None = None,
) -> None:
    """`count` senders, one mail each, at evenly spread moments (shuffled) of the window;
    `accepted` gets the moment each 250 came back, and the mail id it named."""
    moments = [seconds * (k + 0.5) / count for k in range(count)]
    random.Random(7).shuffle(moments)
    start = time.perf_counter()

    async def one(k: int) -> None:
        await asyncio.sleep(max(start + moments[k] - time.perf_counter(), 0))
        sender = f"team{k}@digital.justice.gov.uk"
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=60)
        await client.connect()
        await client.mail(sender)
        await client.rcpt("escalations@localhost")
        sent[f"{phase}{k}-0@bench.local"] = time.perf_counter()
        subject = f"Service {k} ({phase}) is down"  # a new incident in each phase
        reply = await client.data(message(sender, f"{phase}{k}", 0, subject, "laa-apply-incident"))
        if accepted is not None:
            mail_id = int(reply.message.rsplit(" ", 1)[-1])  # "Ok: queued as N"
            accepted[f"{phase}{k}-0@bench.local"] = (time.perf_counter(), mail_id)
        await client.quit()

    await asyncio.gather(*(one(k) for k in range(count)))


async def storm(host: str, port: int, mails: int, seconds: float) -> float:
    """`mails` mails from one sender over RELAY_CONNECTIONS connections; returns the seconds
    it took (the server may be slower than the asked rate: each connection waits its turn)."""
    sender = "alerts@storm.justice.gov.uk"
    start = time.perf_counter()

    async def connection(lane: int) -> None:
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=60)
        await client.connect()
        for n in range(lane, mails, RELAY_CONNECTIONS):
            await asyncio.sleep(max(start + n * seconds / mails - time.perf_counter(), 0))
            subject = f"ALERT: error rate {50 + n % 40}% on apply"
            raw = message(sender, "storm", n, subject, "storm-incident")
            await client.sendmail(sender, ["escalations@localhost"], raw)
        await client.quit()

    await asyncio.gather(*(connection(lane) for lane in range(RELAY_CONNECTIONS)))
    return time.perf_counter() - start


async def wait_for(standin: CountingStandIn, keys: set[str], limit: float) -> None:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline and not keys <= set(standin.arrivals):
        await asyncio.sleep(0.05)


def latencies(standin: CountingStandIn, sent: dict[str, float]) -> list[float]:
    return [(standin.arrivals[k] - t0) * 1000 for k, t0 in sent.items() if k in standin.arrivals]


def accept_ms(sent: dict[str, float], accepted: dict[str, tuple[float, int]]) -> list[float]:
    """Start of DATA -> its 250, per mail: the part of the latency spent at the door."""
    return [(accepted[k][0] - t0) * 1000 for k, t0 in sent.items() if k in accepted]


async def stages(
    store: Store, standin: CountingStandIn, sent: dict[str, float], accepted: dict[str, Any]
) -> list[list[int]]:
    """For the 3 slowest: ms from start of DATA to its 250, to the decision's commit (the
    store's decided_at, wall clock turned monotonic), to the PagerDuty request."""
    shift = time.perf_counter() - datetime.now(UTC).timestamp()
    slow = sorted(sent, key=lambda k: standin.arrivals.get(k, 1e9) - sent[k])[-3:]
    out = []
    for key in slow:
        mail = await store.get_mail(accepted[key][1]) if key in accepted else None
        decided = mail.decided_at if mail is not None else None
        marks = [
            accepted.get(key, (0.0,))[0],
            decided.timestamp() + shift if decided else 0.0,
            standin.arrivals.get(key, 0.0),
        ]
        out.append([round((m - sent[key]) * 1000) for m in marks])
    return out


def is_storms(texts: list[str]) -> bool:
    """A Slack post about the storm: its subject or its sender, wherever in the post."""
    return any("error rate" in t or "alerts@storm" in t for t in texts)


def slowest(samples: list[float]) -> list[float]:
    return [round(ms) for ms in sorted(samples)[-3:]]


def storm_window_option() -> dict[str, Any]:
    """Main before storms had no such option: the benchmark runs there too, without it."""
    if "storm_window" in inspect.signature(Processor).parameters:
        return {"storm_window": timedelta(minutes=15)}
    return {}


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    standin = CountingStandIn(folder)
    holidays = folder / "holidays.json"
    today = datetime.now(UTC).date().isoformat()
    holidays.write_text(json.dumps({"england-and-wales": {"events": [{"date": today}]}}))
    async with SlackStandIn() as slack:
        slack.add_channel("C0LAA00001", "laa-apply-incident", member=True)
        slack.add_channel("C0STORM001", "storm-incident", member=True)
        settings = Settings(
            data_dir=folder,
            database_url=args.database_url,
            smtp_listen="127.0.0.1:0",
            extra_holidays_file=holidays,
            pagerduty_routing_key=standin.routing_key,
            pagerduty_events_url=standin.url,
            pagerduty_ca_file=standin.ca_file,
            slack_bot_token=slack.token,
            slack_api_url=slack.api_url,
        )
        try:
            return await measure(args, settings, standin, slack)
        finally:
            standin.stop()
            if args.postgres:
                await drop_schema(args.schema)


def bench_store(args: argparse.Namespace, settings: Settings) -> Store:
    """--postgres: a schema of its own in the local test database (dropped after the run)."""
    if args.postgres:
        return PostgresStore(POSTGRES_URL, schema=args.schema)
    return open_store(settings)


async def drop_schema(schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


async def measure(
    args: argparse.Namespace, settings: Settings, standin: CountingStandIn, slack: SlackStandIn
) -> dict[str, Any]:
    store = bench_store(args, settings)
    await store.open()
    dispatcher = Dispatcher(store, settings)
    processor = Processor(
        store,
        load_policy(settings),
        worker_settings=settings,
        on_decided=dispatcher.wake,
        pages=page_handoff(dispatcher),
        **storm_window_option(),
    )
    smtp = await start_smtp(settings, store, processor.wake)
    workers = [asyncio.ensure_future(w) for w in (processor.run(), dispatcher.run())]
    host, port = smtp.address
    out: dict[str, Any] = {"storm_mails": args.storm_mails, "others": args.others}
    try:
        warm: dict[str, float] = {}  # every decide child started, the TLS pool warm
        await other_senders(host, port, "warm", 8, 1, warm)
        await wait_for(standin, set(warm), 60)
        base: dict[str, float] = {}
        await other_senders(host, port, "base", args.others, args.baseline_seconds, base)
        await wait_for(standin, set(base), 60)
        out["baseline_ms"] = percentiles(latencies(standin, base))
        during: dict[str, float] = {}
        accepted: dict[str, tuple[float, int]] = {}
        flood = asyncio.ensure_future(storm(host, port, args.storm_mails, args.seconds))
        await other_senders(host, port, "during", args.others, args.seconds, during, accepted)
        out["storm_send_seconds"] = round(await flood, 1)
        await wait_for(standin, set(during), 120)
        out["during_storm_ms"] = percentiles(latencies(standin, during))
        out["during_slowest_ms"] = slowest(latencies(standin, during))
        out["during_accept_ms"] = percentiles(accept_ms(during, accepted))
        out["during_accept_slowest_ms"] = slowest(accept_ms(during, accepted))
        out["slowest_stages_ms"] = await stages(store, standin, during, accepted)
        out["others_missing"] = len(during) - len(latencies(standin, during))
        out["others_paged_more_than_once"] = sum(standin.events[k] > 1 for k in during)
        await asyncio.sleep(5)  # let the storm's own pages (if any) arrive before counting
        out["storm_pages"] = sum(n for k, n in standin.events.items() if k.startswith("storm-"))
        storm_posts = slack.posts_in("storm-incident") + [
            p for p in slack.posts_in("high-priority-alarms") if is_storms(p.all_text())
        ]
        out["storm_slack_threads"] = sum(p.thread_ts is None for p in storm_posts)
        out["storm_slack_posts"] = len(storm_posts)
        tops = Counter(slack.channels[p.channel].name for p in slack.posts if p.thread_ts is None)
        out["slack_threads_per_channel"] = dict(tops)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await smtp.stop(5)
        processor.close()
        await dispatcher.close()
        await store.close()
    return out


def table_row(result: dict[str, Any]) -> str:
    base, during = result["baseline_ms"]["p99"], result["during_storm_ms"]["p99"]
    ratio = during / base if base else float("nan")
    return (
        f"| another team's page during a {result['storm_mails']:,}-mail storm from one sender "
        f"| p99 {during / 1000:.2f} s (p50 {result['during_storm_ms']['p50'] / 1000:.2f} s; "
        f"no storm, same run: p99 {base / 1000:.2f} s, {ratio:.1f}x) | <= 1 s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storm-mails", type=int, default=5000, help="default 5000")
    parser.add_argument("--seconds", type=float, default=60.0, help="storm length (default 60)")
    parser.add_argument("--others", type=int, default=20, help="other senders (default 20)")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument(
        "--postgres", action="store_true", help=f"PostgreSQL at {POSTGRES_URL}, a fresh schema"
    )
    args = parser.parse_args()
    args.schema = f"bench_storm_{uuid.uuid4().hex[:8]}"
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(run(args, Path(folder)))
    print("| what | now | goal |")
    print("|---|---|---|")
    print(table_row(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
