"""The handover calendar and digest (issue 11). Pure: the instant is an argument.

The process asks support to take a handover at 09:00 and to hand over to on-call at 18:00, on
working days only (no handover on weekends or bank holidays, as the cover calendar says). Slot
times are local wall-clock times (ESCALATOR_HANDOVER_TIMES), so 18:00 is 18:00 in GMT and in BST,
and a slot that does not exist or repeats on a clock-change day is still one instant.

A digest lists the escalations received since the last handover that are still open (not
resolved in PagerDuty) and the mails still held for review: who raised them, their state, the
incident channel, and who acknowledged. Mail-derived text is escaped for Slack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from escalator.core.cover import CoverCalendar
from escalator.core.render import one_line, slack_escape, truncate_escaped

LOOKBACK_DAYS = 14
CLI_MAX = timedelta(hours=24)
LINE_MAX = 300
DIGEST_MAX = 35_000


def parse_times(values: Sequence[str]) -> tuple[time, ...]:
    """'09:00', '18:00' -> sorted times; raises ValueError for a malformed one."""
    return tuple(sorted(time.fromisoformat(value.strip()) for value in values))


def slots_on(calendar: CoverCalendar, day: date, times: Sequence[time]) -> list[datetime]:
    """The handover instants of one local day: none unless it is a working day."""
    if not calendar.is_working_day(day):
        return []
    return [datetime.combine(day, at, tzinfo=calendar.timezone) for at in times]


def last_slot(calendar: CoverCalendar, times: Sequence[time], now: datetime) -> datetime | None:
    """The latest handover at or before `now` (within LOOKBACK_DAYS), or None."""
    today = now.astimezone(calendar.timezone).date()
    for back in range(LOOKBACK_DAYS + 1):
        past = [s for s in slots_on(calendar, today - timedelta(days=back), times) if s <= now]
        if past:
            return max(past)
    return None


def slot_before(calendar: CoverCalendar, times: Sequence[time], slot: datetime) -> datetime | None:
    """The handover before `slot` (the start of what a digest at `slot` covers)."""
    return last_slot(calendar, times, slot - timedelta(microseconds=1))


def due_slot(
    calendar: CoverCalendar, times: Sequence[time], now: datetime, grace: timedelta
) -> datetime | None:
    """The handover that should be posted now: the last slot, if no more than `grace` ago."""
    slot = last_slot(calendar, times, now)
    return slot if slot is not None and now - slot <= grace else None


def cli_since(calendar: CoverCalendar, times: Sequence[time], now: datetime) -> datetime:
    """`escalator handover` without --since: the last handover, at most 24 h ago."""
    slot = last_slot(calendar, times, now)
    return max(slot, now - CLI_MAX) if slot is not None else now - CLI_MAX


@dataclass(frozen=True)
class Entry:
    """One line of a digest (strings as stored: escaped when rendered)."""

    mail_id: int
    received_at: datetime
    raised_by: str
    subject: str
    state: str
    channel: str | None
    acknowledged_by: str | None


def entry_line(entry: Entry, calendar: CoverCalendar) -> str:
    """Plain text: '#12 09:31 Fri  LAA apply is down - ana@… - paged, acknowledged by Jo - #laa'."""
    when = entry.received_at.astimezone(calendar.timezone).strftime("%a %H:%M")
    parts = [
        f"mail {entry.mail_id} ({when})",
        one_line(entry.subject, 120) or "(no subject)",
        f"raised by {one_line(entry.raised_by, 120)}",
        entry.state,
        f"channel #{entry.channel}" if entry.channel else "no channel",
    ]
    if entry.acknowledged_by:
        parts.append(f"acknowledged by {one_line(entry.acknowledged_by, 80)}")
    return " - ".join(parts)


def digest_text(
    entries: Sequence[Entry], calendar: CoverCalendar, since: datetime, now: datetime
) -> str:
    """The digest as plain text (the CLI prints it; Slack gets it escaped)."""
    zone = calendar.timezone
    head = (
        f"Handover {now.astimezone(zone):%a %d %b %H:%M %Z}: escalations still open or held "
        f"since {since.astimezone(zone):%a %d %b %H:%M %Z}"
    )
    if not entries:
        return f"{head}: none."
    lines = [entry_line(entry, calendar) for entry in entries]
    return "\n".join([f"{head} ({len(entries)}):", *(f"- {line}" for line in lines)])


def slack_digest(text: str) -> str:
    """The digest for Slack: escaped, within the message limit."""
    return truncate_escaped(slack_escape(text), DIGEST_MAX)
