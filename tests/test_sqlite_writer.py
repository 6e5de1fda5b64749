"""The SQLite writer's order (store/sqlite.py, ACCEPTS FIRST, issue 12): a mail's accept, which an
SMTP client waits on, is not queued behind a long run of other work. Real writer thread, real
file; the jobs only note when they run, and block on events the test releases (no timing)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from escalator.store import sqlite
from escalator.store.db import Db
from escalator.store.sqlite import SQLiteConnector


@pytest.fixture
async def connector(tmp_path: Path) -> AsyncIterator[SQLiteConnector]:
    opened = SQLiteConnector(tmp_path / "writer.db", 5.0, 512)
    await opened.open()
    yield opened
    await opened.close()


def noting(
    order: list[str],
    name: str,
    hold: threading.Event | None = None,
    started: threading.Event | None = None,
) -> Any:
    """A job that notes its name when it runs; with `hold`, it keeps the writer until set;
    `started` is set as it begins."""

    async def job(db: Db) -> str:
        if started is not None:
            started.set()
        if hold is not None:
            hold.wait(30)
        order.append(name)
        return name

    return job


async def test_an_accept_goes_before_work_queued_ahead_of_it(
    connector: SQLiteConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six jobs of other work are queued together; while the first runs, a mail's accept
    arrives: it runs right after that first slice, before the other five."""
    monkeypatch.setattr(sqlite, "SLICE_SECONDS", 0.0)  # each slice: one job
    order: list[str] = []
    gate, first, running = threading.Event(), threading.Event(), threading.Event()
    held = asyncio.ensure_future(connector.write(noting(order, "gate", gate)))
    await asyncio.sleep(0)  # the writer takes the gate job and waits in it
    work = [asyncio.ensure_future(connector.write(noting(order, "work-0", first, running)))]
    work += [asyncio.ensure_future(connector.write(noting(order, f"work-{n}"))) for n in (1, 2)]
    await asyncio.sleep(0)  # all three queued behind the gate
    gate.set()
    await held
    # Only once work-0 runs (the writer took it, its slice begun) is the accept queued: queued
    # earlier, the writer could take it in the same drain as work-0 and run it first.
    assert await asyncio.to_thread(running.wait, 30)
    accept = asyncio.ensure_future(connector.write(noting(order, "accept"), "mail"))
    await asyncio.sleep(0)  # queued while work-0 holds the writer
    first.set()
    await asyncio.gather(accept, *work)
    assert order == ["gate", "work-0", "accept", "work-1", "work-2"]


async def test_accepts_and_other_work_each_commit(connector: SQLiteConnector) -> None:
    """Whatever the order, every job's caller gets its own result."""
    order: list[str] = []
    jobs = [connector.write(noting(order, f"w{n}"), "mail" if n % 2 else None) for n in range(20)]
    assert await asyncio.gather(*jobs) == [f"w{n}" for n in range(20)]


async def test_writers_of_two_processes_take_turns_on_the_lock(tmp_path: Path) -> None:
    """Two connectors on one file, as an acceptor process and the back office have: while one
    holds a transaction open, the other's accept waits its turn on the write lock instead of
    failing on SQLite's busy timeout (10 ms here), and runs once the first committed."""
    first, second = (SQLiteConnector(tmp_path / "shared.db", 0.01, 512) for _ in range(2))
    await first.open()
    await second.open()
    try:
        order: list[str] = []
        hold = threading.Event()
        held = asyncio.ensure_future(first.write(noting(order, "office", hold)))
        await asyncio.sleep(0.1)  # the office's job holds its transaction open
        accept = asyncio.ensure_future(second.write(noting(order, "acceptor"), "mail"))
        await asyncio.sleep(0.1)  # the acceptor waits on the lock, well past its busy timeout
        hold.set()
        assert await asyncio.gather(held, accept) == ["office", "acceptor"]
        assert order == ["office", "acceptor"]
    finally:
        await first.close()
        await second.close()
