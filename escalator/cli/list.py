"""`escalator list [--json]`: every stored mail with its decision and actions, oldest first.

The JSON Lines shape is a contract (shared/spec/settings.md); the table is for people. Beside
the contract's keys, "confidence" says how sure the decision was (issue 15; the notices of a
low-confidence reject are the "doubt" entries of "other_actions"), and "incident" holds what
PagerDuty said of the incident the mail's page opened (issue 11: status, who acknowledged and
when), or null.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from escalator.core import render, words
from escalator.core.notices import state_json
from escalator.core.webhooks import IncidentState
from escalator.settings import load_settings
from escalator.store import ACTION_KINDS, ActionRow, ListedMail, opened_store
from escalator.store.loop import loop_store

_COLUMNS = ("id", "received", "from", "subject", "verdict", "window", "review", "actions")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = commands.add_parser("list", help="show stored mails, decisions and actions")
    listing.add_argument("--json", action="store_true", help="one JSON object per mail")
    listing.set_defaults(handler=run_list)


def run_list(args: argparse.Namespace) -> int:
    mails, states = asyncio.run(_load())
    if args.json:
        for listed in mails:
            line = {**mail_json(listed), "incident": state_json(states.get(listed.mail.id))}
            print(json.dumps(line, ensure_ascii=False))
    else:
        print(table(mails, ZoneInfo(load_settings().timezone)))
    return 0


async def _load() -> tuple[list[ListedMail], dict[int, IncidentState]]:
    """The mails, and what PagerDuty said of the incidents their pages opened (issue 11)."""
    async with opened_store(load_settings()) as store:
        mails = await store.list_mails()
        states = await loop_store(store).incident_states([m.mail.id for m in mails])
        return mails, states


def mail_json(listed: ListedMail) -> dict[str, Any]:
    mail = listed.mail
    return {
        "id": mail.id,
        "received_at": _iso(mail.received_at),
        "mail_from": mail.mail_from,
        "rcpt_tos": list(mail.rcpt_tos),
        "message_id": mail.message_id,
        "subject": mail.subject,
        "verdict": mail.verdict,
        "reasons": list(mail.reasons),
        "slack_channel": mail.slack_channel,
        "window": mail.window,
        "review": mail.review,
        "decided_at": _iso(mail.decided_at),
        # "actions" holds the contract's kinds only; newer kinds (e.g. "review") go beside it
        "actions": [action_json(a) for a in listed.actions if a.kind in ACTION_KINDS],
        "other_actions": [action_json(a) for a in listed.actions if a.kind not in ACTION_KINDS],
        # issue 15: how sure the machine was (null until decided); a low-confidence reject's
        # notices are the "doubt" entries of "other_actions"
        "confidence": mail.decision.confidence if mail.decision is not None else None,
    }


def action_json(action: ActionRow) -> dict[str, Any]:
    return {
        "kind": action.kind,
        "state": action.state,
        "due_at": _iso(action.due_at),
        "attempts": action.attempts,
        "last_error": action.last_error,
        # what it sent, or in dry run would have sent (issue 13): an extra key, None if nothing
        "payload": render.sent_payload(action.kind, action.state, action.result),
    }


def table(mails: list[ListedMail], zone: ZoneInfo = words.LONDON) -> str:
    """A plain table; subjects are cut so one mail stays on one line. Times on the wall clock
    with GMT/BST, windows and states in words."""
    rows = [_COLUMNS, *(_row(listed, zone) for listed in mails)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + f"\n({len(mails)} mails)"


def _row(listed: ListedMail, zone: ZoneInfo) -> tuple[str, ...]:
    mail = listed.mail
    actions = ", ".join(f"{a.kind} {words.state(a.state)}" for a in listed.actions) or "-"
    return (
        str(mail.id),
        words.when(mail.received_at, zone, year=True),
        _cut(mail.from_addr or mail.mail_from, 30),
        _cut(mail.subject, 40),
        mail.verdict or "(undecided)",
        words.short_window(mail.window) if mail.window else "-",
        mail.review or "-",
        actions,
    )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
