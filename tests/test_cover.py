"""The cover calendar and routing, as tables: every boundary, DST, weekends, bank holidays."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escalator.core.cover import CoverCalendar, build_calendar, parse_extra_days
from escalator.core.model import Page, Verdict, Window
from escalator.core.policy import route
from escalator.errors import ConfigError

LONDON = ZoneInfo("Europe/London")
CAL = build_calendar("Europe/London")

SUP, BOTH, ONC, NOC = Window.SUPPORT, Window.SUPPORT_AND_ON_CALL, Window.ON_CALL, Window.NO_COVER

WORKING_DAY = [  # Wednesday 25 November 2026 (GMT)
    ("00:00:00", NOC),
    ("06:59:59", NOC),
    ("07:00:00", ONC),
    ("08:59:59", ONC),
    ("09:00:00", BOTH),
    ("09:59:59", BOTH),
    ("10:00:00", SUP),
    ("16:59:59", SUP),
    ("17:00:00", BOTH),
    ("17:59:59", BOTH),
    ("18:00:00", ONC),
    ("21:59:59", ONC),
    ("22:00:00", NOC),
    ("23:59:59", NOC),
]
NON_WORKING = [
    ("06:59:59", NOC),
    ("07:00:00", ONC),
    ("09:30:00", ONC),
    ("12:00:00", ONC),
    ("17:30:00", ONC),
    ("21:59:59", ONC),
    ("22:00:00", NOC),
]
NON_WORKING_DAYS = [
    "2026-11-28",  # Saturday
    "2026-11-29",  # Sunday
    "2026-12-25",  # Christmas Day (Friday)
    "2026-12-28",  # Boxing Day substitute (Monday)
    "2027-12-27",  # Christmas Day substitute (Monday)
    "2027-12-28",  # Boxing Day substitute (Tuesday)
    "2026-05-04",  # Early May bank holiday
    "2026-08-31",  # Summer bank holiday (England & Wales, not Scotland's)
]


@pytest.mark.parametrize(("clock", "window"), WORKING_DAY)
def test_working_day_boundaries(clock: str, window: Window) -> None:
    """Each boundary of the contract's working-day row starts its window (half-open)."""
    instant = datetime.fromisoformat(f"2026-11-25T{clock}+00:00")
    assert CAL.window_at(instant) is window


@pytest.mark.parametrize("day", NON_WORKING_DAYS)
@pytest.mark.parametrize(("clock", "window"), NON_WORKING)
def test_weekends_and_bank_holidays_are_on_call_all_day(
    day: str, clock: str, window: Window
) -> None:
    """Weekends and England & Wales bank holidays (substitute days too) follow the on-call row."""
    local = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=LONDON)
    assert CAL.window_at(local) is window


@pytest.mark.parametrize(
    ("instant", "window"),
    [
        ("2026-07-15T05:59:59Z", NOC),  # 06:59:59 BST
        ("2026-07-15T06:00:00Z", ONC),  # 07:00 BST
        ("2026-07-15T08:00:00Z", BOTH),  # 09:00 BST
        ("2026-07-15T09:00:00+01:00", BOTH),
        ("2026-07-15T10:00:00+01:00", SUP),
        ("2026-07-15T16:00:00Z", BOTH),  # 17:00 BST
        ("2026-07-15T21:00:00Z", NOC),  # 22:00 BST
        ("2026-07-15T14:00:00-05:00", ONC),  # 20:00 BST, given in New York time
        ("2026-11-25T09:30:00+00:00", BOTH),
        ("2026-11-25T09:30:00Z", BOTH),
        ("2026-11-25T11:30:00+02:00", BOTH),  # 09:30 GMT from an eastern offset
        ("2026-03-29T05:59:59Z", NOC),  # spring forward day: 06:59:59 BST
        ("2026-03-29T06:00:00Z", ONC),  # 07:00 BST
        ("2026-03-29T00:59:59Z", NOC),  # 00:59:59 GMT, just before the jump
        ("2026-10-25T06:59:59Z", NOC),  # fall back day (a Sunday): 06:59:59 GMT
        ("2026-10-25T07:00:00Z", ONC),
        ("2026-10-25T00:30:00Z", NOC),  # 01:30 BST, the first of the repeated hour
        ("2026-10-25T01:30:00Z", NOC),  # 01:30 GMT, the second
        ("2026-10-25T21:59:59Z", ONC),
        ("2026-10-25T22:00:00Z", NOC),
    ],
)
def test_instants_with_offsets_and_dst(instant: str, window: Window) -> None:
    """Windows follow the London wall clock whatever offset the instant is written in."""
    assert CAL.window_at(datetime.fromisoformat(instant.replace("Z", "+00:00"))) is window


def test_dst_fall_back_morning() -> None:
    """On the October change, 06:59:59 GMT is still no cover; 07:00 GMT starts on call."""
    assert CAL.window_at(datetime(2026, 10, 25, 6, 59, 59, tzinfo=UTC)) is NOC
    assert CAL.window_at(datetime(2026, 10, 25, 7, 0, tzinfo=UTC)) is ONC


@pytest.mark.parametrize(
    ("instant", "page_at"),
    [
        ("2026-11-25T22:00:00+00:00", "2026-11-26T07:00:00+00:00"),
        ("2026-11-26T06:59:59+00:00", "2026-11-26T07:00:00+00:00"),
        ("2026-11-26T00:00:00+00:00", "2026-11-26T07:00:00+00:00"),
        ("2026-03-28T22:30:00+00:00", "2026-03-29T07:00:00+01:00"),  # into summer time
        ("2026-10-24T21:30:00+00:00", "2026-10-25T07:00:00+00:00"),  # into winter time
        ("2026-12-24T23:00:00+00:00", "2026-12-25T07:00:00+00:00"),  # Christmas morning on call
        ("2026-07-15T22:30:00+01:00", "2026-07-16T07:00:00+01:00"),
    ],
)
def test_no_cover_escalation_pages_at_next_0700(instant: str, page_at: str) -> None:
    """Out of cover, an escalation alarms now and is paged at the next 07:00 local."""
    routing = route(Verdict.ESCALATE, CAL, datetime.fromisoformat(instant))
    assert routing.window is NOC and routing.page is Page.DEFERRED and routing.alarm is True
    assert routing.page_at is not None and routing.page_at.isoformat() == page_at


@pytest.mark.parametrize(
    ("instant", "window", "page", "alarm"),
    [
        ("2026-11-25T12:00:00+00:00", SUP, Page.NONE, True),
        ("2026-11-25T09:15:00+00:00", BOTH, Page.NOW, True),
        ("2026-11-25T17:15:00+00:00", BOTH, Page.NOW, True),
        ("2026-11-25T19:00:00+00:00", ONC, Page.NOW, False),
        ("2026-11-28T12:00:00+00:00", ONC, Page.NOW, False),
        ("2026-11-28T23:00:00+00:00", NOC, Page.DEFERRED, True),
    ],
)
def test_routing_table(instant: str, window: Window, page: Page, alarm: bool) -> None:
    """Escalations are routed exactly as the contract's table says."""
    routing = route(Verdict.ESCALATE, CAL, datetime.fromisoformat(instant))
    assert (routing.window, routing.page, routing.alarm) == (window, page, alarm)
    assert (routing.page_at is not None) == (page is Page.DEFERRED)


@pytest.mark.parametrize("instant", ["2026-11-25T12:00:00Z", "2026-11-28T23:00:00Z"])
def test_rejects_are_never_paged_or_alarmed(instant: str) -> None:
    """A reject carries the window but no page and no alarm, in any window."""
    routing = route(Verdict.REJECT, CAL, datetime.fromisoformat(instant.replace("Z", "+00:00")))
    assert (routing.page, routing.page_at, routing.alarm) == (Page.NONE, None, False)


def test_extra_non_working_day_from_govuk_file() -> None:
    """A one-off day from a gov.uk bank-holidays.json file makes a weekday on-call only."""
    extra = parse_extra_days(
        '{"england-and-wales": {"division": "england-and-wales", "events": ['
        '{"title": "Coronation", "date": "2026-11-25", "notes": "", "bunting": true}]}}'
    )
    calendar = build_calendar("Europe/London", extra)
    noon = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert CAL.window_at(noon) is SUP
    assert calendar.window_at(noon) is ONC
    assert calendar.holiday_name(date(2026, 11, 25)) == "extra non-working day"


@pytest.mark.parametrize("text", ["{}", "not json", '{"england-and-wales": {"events": [{}]}}'])
def test_bad_holiday_file_is_a_clear_config_error(text: str) -> None:
    """A malformed override file is refused with a message naming the expected format."""
    with pytest.raises(ConfigError, match=r"bank-holidays\.json"):
        parse_extra_days(text)


def test_naive_instant_is_refused() -> None:
    """An instant without an offset is ambiguous; the calendar refuses to guess."""
    with pytest.raises(ValueError, match="offset"):
        CAL.window_at(datetime(2026, 11, 25, 12))


def test_unknown_timezone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        build_calendar("Mars/Olympus_Mons")


def test_day_segments_cover_the_whole_day() -> None:
    """`escalator cover` rows: contiguous segments from 00:00 to 24:00, merged when equal."""
    working = CAL.day_segments(date(2026, 11, 25))
    holiday = CAL.day_segments(date(2026, 12, 28))
    assert [w for _, _, w in working] == [NOC, ONC, BOTH, SUP, BOTH, ONC, NOC]
    assert [w for _, _, w in holiday] == [NOC, ONC, NOC]
    for segments in (working, holiday):
        assert segments[0][0] == time(0) and segments[-1][1] == time.max
        assert all(a[1] == b[0] for a, b in itertools.pairwise(segments))


instants = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 12, 31),
    timezones=st.sampled_from([UTC, LONDON, ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")]),
)


@given(instants)
def test_every_instant_has_one_window_and_page_at_is_the_next_0700(instant: datetime) -> None:
    """Any instant maps to exactly one window; page_at is the first 07:00 local after it."""
    calendar: CoverCalendar = CAL
    assert calendar.window_at(instant) in set(Window)
    page_at = calendar.next_on_call_start(instant)
    local = page_at.astimezone(LONDON)
    assert local.time() == time(7) and page_at > instant
    previous = datetime.combine(local.date() - timedelta(days=1), time(7), tzinfo=LONDON)
    assert previous <= instant
    assert calendar.window_at(page_at) is ONC


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-11-27T11:00:00+00:00", "2026-11-27T11:00:00+00:00"),  # Friday, support hours: now
        ("2026-11-27T08:00:00+00:00", "2026-11-27T10:00:00+00:00"),  # Friday morning: 10:00
        ("2026-11-27T18:00:00+00:00", "2026-11-30T10:00:00+00:00"),  # Friday evening: Monday
        ("2026-12-24T17:30:00+00:00", "2026-12-29T10:00:00+00:00"),  # Christmas, Boxing Day (obs.)
        ("2026-07-03T18:00:00+00:00", "2026-07-06T10:00:00+01:00"),  # summer: 10:00 BST
    ],
)
def test_next_support_start_is_when_support_looks_at_a_held_mail(
    instant: str, expected: str
) -> None:
    """Support reads held mail 10:00-17:00 on working days (bank holidays skipped)."""
    calendar = build_calendar("Europe/London")
    start = calendar.next_support_start(datetime.fromisoformat(instant))
    assert start == datetime.fromisoformat(expected)
