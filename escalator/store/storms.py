"""The storm bookkeeping (issue 16), written once for both dialects: which storm a mail joins,
given the rows its keys name (`storm_outcome`, pure), and the job that reads and writes them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from escalator.core.storms import StormJoin
from escalator.store.db import Db

STORM_KEEP = timedelta(days=1)  # rows whose window closed longer ago than this are deleted
PRUNE_EVERY = 1.0  # seconds between two joins that delete those rows (a stale row is no harm:
# storm_outcome joins only rows opened within the window)


@dataclass(frozen=True)
class OpenStorm:
    """One storm as every key of the joining mail will name it after the join."""

    first_mail_id: int
    root: str
    first_at: datetime
    count: int


StormRow = tuple[int, str, datetime, int]  # first_mail_id, root, first_at, count


def storm_outcome(
    rows: list[StormRow], mail_id: int, root: str, at: datetime, since: datetime
) -> OpenStorm:
    """The first row still open (opened at or after `since`, or opened by this very mail, which
    a crash made decide again) is joined; none open: this mail opens a storm."""
    for first, first_root, first_at, count in rows:
        if first == mail_id:
            return OpenStorm(first, first_root, first_at, count)
        if first_at >= since:
            return OpenStorm(first, first_root, first_at, count + 1)
    return OpenStorm(mail_id, root, at, 1)


async def join(
    db: Db,
    keys: tuple[str, ...],
    mail_id: int,
    root: str,
    at: datetime,
    since: datetime,
    *,
    prune: bool = True,
) -> StormJoin:
    """Join the open storm one of `keys` names, or open one with this mail; every key then names
    it. The rows are read (on PostgreSQL: locked) in key order, so two replicas deciding one
    storm's mails take turns; they are weighed in the order of `keys`. A mail decided again
    after a crash finds itself and counts once. `prune`: old rows are deleted first."""
    if prune:
        await db.run("drop_old_storms", before=since - STORM_KEEP)
    found = {key: await db.one("storm_row", key=key) for key in sorted(keys)}
    rows = [
        (row["first_mail_id"], row["root"], db.time(row["first_at"]), row["count"])
        for row in (found[key] for key in keys)
        if row is not None
    ]
    storm = storm_outcome(rows, mail_id, root, at, since)
    await db.many("save_storm", [{"key": key, **asdict(storm)} for key in keys])
    return StormJoin(storm.first_mail_id, storm.root, storm.count)
