"""The storm bookkeeping both backends share (issue 16): which storm a mail joins, given the
rows its keys name. The SQL lives in each backend; this decides from what it read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

STORM_KEEP = timedelta(days=1)  # rows whose window closed longer ago than this are deleted


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
