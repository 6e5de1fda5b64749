"""`escalator handover [--since T] [--at T]`: the handover digest, as posted in the alarm channel.

Escalations received since the last handover that are still open (not resolved in PagerDuty)
and the mails still held for review: who raised them, their state, the channel, and who
acknowledged. Without --since: since the last handover (ESCALATOR_HANDOVER_TIMES on working
days), at most 24 hours back. --at asks as if it were that instant (default: now).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from escalator.core import handover
from escalator.errors import ConfigError
from escalator.oncall.scheduler import digest_entries
from escalator.policy import load_calendar
from escalator.settings import load_settings
from escalator.store import opened_store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("handover", help="print the handover digest")
    parser.add_argument("--since", metavar="TIME", help="ISO 8601 instant (default: last handover)")
    parser.add_argument("--at", metavar="TIME", help="ISO 8601 instant to ask at (default: now)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    calendar = load_calendar(settings)
    now = instant(args.at) if args.at else datetime.now(UTC)
    times = handover.parse_times(settings.handover_times)
    since = instant(args.since) if args.since else handover.cli_since(calendar, times, now)

    async def digest() -> str:
        async with opened_store(settings) as store:
            entries = await digest_entries(store, since)
        return handover.digest_text(entries, calendar, since, now)

    print(asyncio.run(digest()))
    return 0


def instant(text: str) -> datetime:
    """An ISO 8601 instant; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not an ISO 8601 instant: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
