"""`escalator check` (what would happen to this mail, and why) and `escalator cover`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from escalator.core import words
from escalator.core.decide import decide
from escalator.core.model import Decision, Evidence, Page, Verdict
from escalator.core.policy import Policy
from escalator.policy import load_policy
from escalator.settings import load_settings

_MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any mail the SMTP listener accepts


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check", help="decide mail files without sending anything")
    check.add_argument("files", nargs="+", metavar="MAIL.eml")
    check.add_argument("--at", type=parse_instant, help="ISO-8601 instant with offset or Z")
    check.add_argument("--json", action="store_true", help="the decision contract as JSON")
    check.set_defaults(handler=run_check)
    cover = commands.add_parser("cover", help="print the cover windows day by day")
    cover.add_argument("--from", dest="start", type=date.fromisoformat, help="first day")
    cover.add_argument("--days", type=int, default=7, help="how many days (default 7)")
    cover.set_defaults(handler=run_cover)


def parse_instant(text: str) -> datetime:
    """--at: ISO-8601 with an offset or Z; a naive time is refused rather than guessed."""
    try:
        instant = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from None
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--at needs an offset or Z: {text!r}")
    return instant


def run_check(args: argparse.Namespace) -> int:
    policy = load_policy(load_settings())
    at: datetime = args.at or datetime.now(UTC)
    several = len(args.files) > 1
    status = 0
    for name in args.files:
        outcome = _check_one(name, at, policy)
        if isinstance(outcome, str):
            status = 1
            _emit_error(name, outcome, as_json=args.json)
        elif args.json:
            record = outcome.to_contract()
            if several:
                record = {"file": name, **record}
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(explain(name, outcome, policy.calendar.timezone))
    return status


def _check_one(name: str, at: datetime, policy: Policy) -> Decision | str:
    """A decision, or the message of why this file is not a mail."""
    path = Path(name)
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            return f"file is larger than {_MAX_FILE_BYTES} bytes"
        raw = path.read_bytes()
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    if not raw.strip():
        return "file is empty, not an email"
    decision = decide(raw, at, policy)
    if any(item.rule == "not_a_mail" for item in decision.triage.evidence):
        return "not an email: no RFC 5322 header lines found"
    return decision


def _emit_error(name: str, message: str, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"file": name, "error": message}, ensure_ascii=False))
    else:
        print(f"{name}: error: {message}", file=sys.stderr)


def explain(name: str, decision: Decision, zone: ZoneInfo = words.LONDON) -> str:
    """A few lines a person reads: the verdict, which rules fired on which words, what's next
    (reasons and windows in words, times on the London wall clock with GMT/BST)."""
    triage, routing = decision.triage, decision.routing
    reasons = "; ".join(words.reason(r.value) for r in triage.reasons)
    lines = [f"{name}: {triage.verdict.value.upper()}" + (f": {reasons}" if reasons else "")]
    for item in triage.evidence:
        label = f"{words.short_reason(item.reason.value)}: " if item.reason else ""
        lines.append(f"  - {label}rule {item.rule} matched {item.matched!r} in {_place(item)}")
    lines.append(f"  confidence: {triage.confidence.value}")
    lines.extend(
        f"    doubt: {item.rule} {item.matched!r} in {_place(item)}" for item in triage.doubts
    )
    lines.append(f"  channel: {('#' + triage.slack_channel) if triage.slack_channel else 'none'}")
    at = words.when(decision.at, zone, year=True)
    lines.append(f"  window at {at}: {words.window(routing.window.value)}")
    lines.append(f"  next: {_next_step(decision, zone)}")
    return "\n".join(lines)


def _place(item: Evidence) -> str:
    """Where the words were read: the part, and the clause when the reader split one."""
    return f"{item.where} (clause: {item.clause!r})" if item.clause else item.where


def _next_step(decision: Decision, zone: ZoneInfo) -> str:
    routing = decision.routing
    if decision.verdict is Verdict.REJECT:
        return "held for support review; the sender is told why (unless the mail is automated)"
    steps = []
    if routing.page is Page.NOW:
        steps.append("page on-call now")
    elif routing.page is Page.DEFERRED and routing.page_at is not None:
        steps.append(f"page on-call at {words.when(routing.page_at, zone, year=True)}")
    if routing.alarm:
        steps.append("post to the alarm channel")
    return ", ".join(steps) + "; reply to the sender"


def run_cover(args: argparse.Namespace) -> int:
    calendar = load_policy(load_settings()).calendar
    start: date = args.start or datetime.now(calendar.timezone).date()
    for day in _days(start, max(1, min(args.days, 3660))):
        segments = ", ".join(
            f"{_clock(start)}-{_clock(end)} {words.short_window(window.value)}"
            for start, end, window in calendar.day_segments(day)
        )
        kind = (
            "working day"
            if calendar.is_working_day(day)
            else (calendar.holiday_name(day) or "weekend")
        )
        zone = datetime.combine(day, time(12), calendar.timezone).tzname()
        print(f"{day.isoformat()} {day.strftime('%a')}  [{kind}]  {segments} ({zone})")
    return 0


def _clock(moment: time) -> str:
    return "24:00" if moment == time.max else moment.strftime("%H:%M")


def _days(start: date, count: int) -> Iterator[date]:
    for offset in range(count):
        yield start + timedelta(days=offset)
