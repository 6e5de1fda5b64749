"""The cover calendar: which window applies at an instant, and when on-call next starts.

Pure: the instant is an argument. Wall clock is local (Europe/London by default), so 07:00 means
07:00 in winter and in summer alike; a working day is Mon-Fri that is neither an England & Wales
bank holiday (the `holidays` package) nor an extra non-working day from the operator's file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from escalator.core.model import Window
from escalator.errors import ConfigError


@dataclass(frozen=True)
class CoverHours:
    """The boundaries of the contract's table (half-open windows)."""

    on_call_start: time = time(7)
    support_online_start: time = time(9)
    support_start: time = time(10)
    support_end: time = time(17)
    support_online_end: time = time(18)
    on_call_end: time = time(22)

    def working_day_window(self, at: time) -> Window:
        if at < self.on_call_start or at >= self.on_call_end:
            return Window.NO_COVER
        if self.support_start <= at < self.support_end:
            return Window.SUPPORT
        if self.support_online_start <= at < self.support_online_end:
            return Window.SUPPORT_AND_ON_CALL
        return Window.ON_CALL

    def non_working_day_window(self, at: time) -> Window:
        if at < self.on_call_start or at >= self.on_call_end:
            return Window.NO_COVER
        return Window.ON_CALL

    def boundaries(self) -> tuple[time, ...]:
        return (
            self.on_call_start,
            self.support_online_start,
            self.support_start,
            self.support_end,
            self.support_online_end,
            self.on_call_end,
        )


@dataclass(frozen=True)
class CoverCalendar:
    timezone: ZoneInfo
    hours: CoverHours = field(default_factory=CoverHours)
    extra_days: frozenset[date] = frozenset()
    bank_holiday_name: Callable[[date], str | None] = field(default=lambda _day: None)

    def holiday_name(self, day: date) -> str | None:
        """Why `day` is not a working day although it is a weekday, or None."""
        if day in self.extra_days:
            return "extra non-working day"
        return self.bank_holiday_name(day)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and self.holiday_name(day) is None

    def window_at(self, instant: datetime) -> Window:
        """The cover window in force at an aware instant."""
        local = _local(instant, self.timezone)
        if self.is_working_day(local.date()):
            return self.hours.working_day_window(local.time())
        return self.hours.non_working_day_window(local.time())

    def next_on_call_start(self, instant: datetime) -> datetime:
        """The next on-call start strictly after the instant, as local time with its offset."""
        local = _local(instant, self.timezone)
        day = local.date()
        if local.time() >= self.hours.on_call_start:
            day += timedelta(days=1)
        return datetime.combine(day, self.hours.on_call_start, tzinfo=self.timezone)

    def next_support_start(self, instant: datetime) -> datetime:
        """When support next looks at the queue: the instant itself within support hours,
        else the next support start (10:00 local on a working day)."""
        local = _local(instant, self.timezone)
        day, hours = local.date(), self.hours
        if self.is_working_day(day) and local.time() < hours.support_end:
            if local.time() >= hours.support_start:
                return local
            return datetime.combine(day, hours.support_start, tzinfo=self.timezone)
        day += timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return datetime.combine(day, hours.support_start, tzinfo=self.timezone)

    def day_segments(self, day: date) -> list[tuple[time, time, Window]]:
        """The windows of one local day, as (start, end, window) with 00:00 and 24:00 ends."""
        edges = [time(0), *self.hours.boundaries()]
        segments: list[tuple[time, time, Window]] = []
        for start, end in zip(edges, [*edges[1:], time.max], strict=True):
            window = (
                self.hours.working_day_window(start)
                if self.is_working_day(day)
                else self.hours.non_working_day_window(start)
            )
            if segments and segments[-1][2] == window:
                segments[-1] = (segments[-1][0], end, window)
            else:
                segments.append((start, end, window))
        return segments


def _local(instant: datetime, timezone: ZoneInfo) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("the instant must carry a UTC offset")
    return instant.astimezone(timezone)


def build_calendar(
    timezone: str, extra_days: Iterable[date] = (), hours: CoverHours | None = None
) -> CoverCalendar:
    """A calendar for a named zone with England & Wales bank holidays plus extra days."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown timezone {timezone!r}: {exc}") from None
    bank = holidays.country_holidays("GB", subdiv="ENG")

    def bank_holiday_name(day: date) -> str | None:
        name = bank.get(day)
        return str(name) if name else None

    return CoverCalendar(zone, hours or CoverHours(), frozenset(extra_days), bank_holiday_name)


def parse_extra_days(text: str, source: str = "extra holidays") -> frozenset[date]:
    """Dates from a gov.uk bank-holidays.json document (the england-and-wales division)."""
    try:
        events = json.loads(text)["england-and-wales"]["events"]
        return frozenset(date.fromisoformat(str(event["date"])) for event in events)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{source}: expected gov.uk bank-holidays.json "
            f'({{"england-and-wales": {{"events": [{{"date": "YYYY-MM-DD", ...}}]}}}}): {exc}'
        ) from None
