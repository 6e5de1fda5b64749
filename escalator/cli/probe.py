"""`escalator probe`: send a marked test escalation and check it arrived and was decided."""

from __future__ import annotations

import argparse
import asyncio
import json

from escalator.probe import ProbeResult, run_probe
from escalator.settings import load_settings
from escalator.store import opened_store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    probe = commands.add_parser("probe", help="test the mail path end to end (never pages)")
    probe.add_argument("--via", help="host:port to send through (default: ESCALATOR_SMTP_LISTEN)")
    probe.add_argument("--to", help="recipient (default: the first of ESCALATOR_ADDRESSES)")
    probe.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    probe.add_argument("--json", action="store_true", help="print the result as JSON")
    probe.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(_probe(args))
    print(json.dumps(_summary(result)) if args.json else _sentence(result))
    return 0 if result.ok else 1


async def _probe(args: argparse.Namespace) -> ProbeResult:
    settings = load_settings()
    async with opened_store(settings) as store:
        return await run_probe(settings, store, via=args.via, to=args.to, seconds=args.timeout)


def _summary(result: ProbeResult) -> dict[str, object]:
    mail = result.mail
    return {
        "ok": result.ok,
        "message_id": result.message_id,
        "mail_id": mail.id if mail else None,
        "verdict": mail.verdict if mail else None,
        "recognised": result.recognised,
        "seconds": round(result.seconds, 3),
    }


def _sentence(result: ProbeResult) -> str:
    if result.mail is None:
        return f"probe FAILED: {result.message_id} was not stored within the timeout"
    if not result.decided:
        return f"probe FAILED: mail {result.mail.id} stored but not decided within the timeout"
    if not result.recognised:
        return (
            f"probe FAILED: mail {result.mail.id} was decided as an ordinary mail (the server "
            "does not share this probe key), so its actions will be carried out"
        )
    return (
        f"probe ok: mail {result.mail.id} decided {result.mail.verdict} "
        f"in {result.seconds:.2f} s (never dispatched)"
    )
