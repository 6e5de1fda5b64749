"""The outbox claim (claim_due) does work in proportion to the backlog, whatever the planner
knows about the table: a storm's backlog on a PostgreSQL `actions` table not yet analysed once
made the thread-order condition a nested loop that re-ran the pending window per row (4-5.5 s
for 1,200 actions; 10-13 ms after ANALYZE). Work is counted, never timed: PostgreSQL's rows
visited by every plan node (EXPLAIN ANALYZE, rows x loops), SQLite's virtual machine steps (a
progress handler). Each claim runs in a transaction rolled back, so nothing is leased.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from test_store import T0, incoming

from escalator.core.actions import PlannedAction
from escalator.store import Store
from escalator.store.postgres import QUERIES as POSTGRES_QUERIES
from escalator.store.postgres import PostgresStore
from escalator.store.sqlite import QUERIES as SQLITE_QUERIES
from escalator.store.sqlite import SQLiteStore

NOW = T0 + timedelta(hours=2)
PER_ACTION = 20  # rows visited per pending action allowed; the quadratic plan visited ~6,600


def storm_actions(n: int, at: datetime) -> tuple[PlannedAction, ...]:
    """A mail's page, reply and ack, and an alarm: for odd mails a notice in one of 10
    threads (a storm's updates), for even ones an alarm of its own; 20 senders."""
    common = {"from_addr": f"team{n % 20}@example.org"}
    notice = {"thread": f"t{n % 10}", "notice": {"under": "alarm", "text": f"update {n}"}}
    alarm = {**common, **notice} if n % 2 else common
    return (
        *(PlannedAction(kind, at, f"{kind}:{n}", common) for kind in ("page", "reply", "ack")),
        PlannedAction("alarm", at, f"alarm:{n}", alarm),
    )


async def build_backlog(store: Store, mails: int, start: int = 0) -> None:
    """`mails` received a second apart, their actions all pending (never analysed)."""
    for n in range(start, start + mails):
        at = T0 + timedelta(seconds=n)
        mail_id = (await store.accept(incoming(n, received_at=at))).mail_id
        await store.add_actions(mail_id, storm_actions(n, at))


def claim_params() -> dict[str, Any]:
    return {"now": NOW, "until": NOW + timedelta(seconds=5), "limit": 64}


def rows_visited(node: dict[str, Any]) -> int:
    """Rows every node of an EXPLAIN ANALYZE plan produced, over all its loops."""
    own = int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))
    return own + sum(rows_visited(child) for child in node.get("Plans", []))


async def postgres_claim_work(store: PostgresStore) -> tuple[int, int]:
    """(rows visited, rows claimed) by one claim, explained and rolled back."""
    async with await psycopg.AsyncConnection.connect(store.url) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(store.schema)))
        explain = b"EXPLAIN (ANALYZE, FORMAT JSON) " + POSTGRES_QUERIES["claim_due"]
        row = await (await conn.execute(explain, claim_params())).fetchone()
        await conn.rollback()
    assert row is not None
    plan = row[0][0]["Plan"]
    return rows_visited(plan), int(plan["Actual Rows"])


def sqlite_claim_steps(store: SQLiteStore) -> tuple[int, int]:
    """(virtual machine steps in thousands, rows claimed) by one claim, rolled back."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    params = {k: v.isoformat(timespec="microseconds") if isinstance(v, datetime) else v
              for k, v in claim_params().items()}  # fmt: skip
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.set_progress_handler(count, 1000)
        claimed = len(conn.execute(SQLITE_QUERIES["claim_due"], params).fetchall())
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return steps[0], claimed


@pytest.mark.parametrize("store_factory", ["postgresql"], indirect=True)  # its planner only
async def test_postgres_claim_on_a_table_never_analysed_stays_linear(store: Store) -> None:
    """300 mails (1,200 pending actions, 150 notices in 10 threads), no ANALYZE: one claim
    visits at most PER_ACTION rows per pending action, and claims a full batch."""
    assert isinstance(store, PostgresStore)
    await build_backlog(store, 300)
    visited, claimed = await postgres_claim_work(store)
    assert claimed == 64
    assert visited <= PER_ACTION * 1200, f"{visited} rows visited for 1,200 actions"


@pytest.mark.parametrize("store_factory", ["sqlite"], indirect=True)  # its plan only
async def test_sqlite_claim_work_grows_in_proportion_to_the_backlog(store: Store) -> None:
    """SQLite's claim (windows computed once, then an IN list): doubling the backlog from 600
    to 1,200 pending actions at most about doubles its virtual machine steps."""
    assert isinstance(store, SQLiteStore)
    await build_backlog(store, 150)
    small, _ = sqlite_claim_steps(store)
    await build_backlog(store, 150, start=150)
    large, claimed = sqlite_claim_steps(store)
    assert claimed == 64
    assert large <= 2.5 * small, f"{small} -> {large} thousand steps for 600 -> 1,200 actions"
