"""`escalator review list|show ID|release ID|dismiss ID --note …|purge`: the review page's deeds.

The CLI acts as the local operator "cli:<unix user>" (that is who the audit trail names). It
writes to the same store as the running service, whose dispatcher sends what a release planned.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from escalator.core import render, words
from escalator.policy import load_policy
from escalator.review import deeds
from escalator.settings import Settings, load_settings
from escalator.store import ActionRow, AuditRow, MailRow, Store, opened_store, retention

T = TypeVar("T")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("review", help="review held (rejected) mails: release or dismiss")
    actions = parser.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="held mails, newest first")
    listing.add_argument("--json", action="store_true", help="one JSON object per mail")
    listing.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="one mail as text, with its actions and audit trail")
    show.add_argument("mail_id", type=int)
    show.set_defaults(handler=run_show)
    release = actions.add_parser("release", help="escalate a held mail now (page anyway)")
    release.add_argument("mail_id", type=int)
    release.add_argument("--note", default=None, help="why it is released (optional)")
    release.set_defaults(handler=run_release)
    dismiss = actions.add_parser("dismiss", help="close a held mail's review, sending nothing")
    dismiss.add_argument("mail_id", type=int)
    dismiss.add_argument("--note", required=True, help="why it is dismissed")
    dismiss.set_defaults(handler=run_dismiss)
    purge = actions.add_parser("purge", help="apply the retention periods now")
    purge.set_defaults(handler=run_purge)


def operator() -> str:
    """The local operator, as the audit trail names them."""
    return f"cli:{getpass.getuser()}"


def with_store(work: Callable[[Store, Settings], Awaitable[T]]) -> T:
    async def go() -> T:
        settings = load_settings()
        async with opened_store(settings) as store:
            return await work(store, settings)

    return asyncio.run(go())


def run_list(args: argparse.Namespace) -> int:
    mails = with_store(lambda store, _: store.mails_in_review("held", 10_000))
    if args.json:
        for mail in mails:
            print(json.dumps(held_json(mail), ensure_ascii=False))
        return 0
    zone = ZoneInfo(load_settings().timezone)
    print(terminal_safe(held_table(mails, zone)))
    return 0


def held_json(mail: MailRow) -> dict[str, Any]:
    view = deeds.mail_view(mail)
    return {
        "id": mail.id,
        "received_at": mail.received_at.isoformat(),
        "from": view.sender,
        "subject": view.subject,
        "reasons": list(view.reasons),
        "evidence": list(view.evidence),
        "sender_check": view.sender_check,
        "slack_channel": mail.slack_channel,
        "attachments": list(view.facts.attachments) if view.facts else [],
        "raw_purged_at": mail.raw_purged_at.isoformat() if mail.raw_purged_at else None,
    }


HELD_COLUMNS = ("id", "received", "from", "subject", "why held")


def held_table(mails: list[MailRow], zone: ZoneInfo = words.LONDON) -> str:
    """Held mails under a header row: London time with GMT/BST, reasons in words."""
    rows = [HELD_COLUMNS, *(held_row(mail, zone) for mail in mails)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HELD_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + f"\n({len(mails)} held)"


def held_row(mail: MailRow, zone: ZoneInfo) -> tuple[str, ...]:
    subject = " ".join(mail.subject.split()) or "(no subject)"
    return (
        str(mail.id),
        words.when(mail.received_at, zone, year=True),
        mail.from_addr or mail.mail_from,
        subject if len(subject) <= 50 else subject[:49] + "…",
        ", ".join(words.short_reason(code) for code in mail.reasons) or "-",
    )


def run_show(args: argparse.Namespace) -> int:
    view = with_store(lambda store, _: deeds.load_view(store, args.mail_id))
    print(terminal_safe(show_text(view, ZoneInfo(load_settings().timezone))))
    return 0


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Mail text may carry escape sequences that would drive the operator's terminal: drop them."""
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)


def show_text(view: deeds.MailView, zone: ZoneInfo = words.LONDON) -> str:
    """The mail page as plain text (mail text printed as is: a terminal renders no HTML)."""
    mail = view.mail
    lines = [
        f"Mail {mail.id}: {view.subject}",
        f"Received:  {words.when(mail.received_at, zone, year=True)}",
        f"From:      {view.sender} (envelope {mail.mail_from})",
        *([f"Sender:    {view.sender_check}"] if view.sender_check else []),
        f"Review:    {mail.review or 'not under review'}",
        f"Reasons:   {'; '.join(words.reason(code) for code in view.reasons) or 'none'}",
        *(f"Evidence:  {words.uncoded(line)}" for line in view.evidence),
        f"Channel:   {('#' + mail.slack_channel) if mail.slack_channel else 'none'}",
        "",
        *_text_lines(view),
        "",
        "Actions:",
        *(line for a in view.actions for line in _action_lines(a)),
        "Audit:",
        *(f"  {_audit_line(r, zone)}" for r in view.audit),
    ]
    return "\n".join(lines)


def _action_lines(action: ActionRow) -> list[str]:
    """One action and, indented under it, exactly what it sent (or would have sent)."""
    head = f"  {action.kind}: {deeds.action_label(action)}"
    payload = render.sent_payload(action.kind, action.state, action.result)
    if payload is None:
        return [head]
    text = render.payload_text(payload) or ""
    return [head, *("      " + line for line in text.splitlines())]


def _audit_line(record: AuditRow, zone: ZoneInfo) -> str:
    at = words.when(record.at, zone, year=True)
    return f"{at} {record.who} {record.what} {record.note or ''}".rstrip()


def _text_lines(view: deeds.MailView) -> list[str]:
    if view.facts is None and view.mail.raw_purged_at is None:
        return ["(text not read: its decision failed, or no service started since the upgrade)"]
    if view.facts is None:
        purged = view.mail.raw_purged_at.isoformat() if view.mail.raw_purged_at else "unknown"
        return [f"(text purged on {purged} by retention)"]
    body = view.facts.body
    parts = [("Text", body.new), ("Quoted", body.quoted), ("Signature", body.signature)]
    lines = [f"--- {title} ---\n{text.rstrip()}" for title, text in parts if text.strip()]
    return [*lines, f"Attachments: {', '.join(view.facts.attachments) or 'none'}"]


def run_release(args: argparse.Namespace) -> int:
    async def work(store: Store, settings: Settings) -> deeds.Reviewed:
        return await deeds.release(
            store, load_policy(settings), args.mail_id, operator(), args.note
        )

    outcome = with_store(work)
    print(outcome.message + (f" Planned: {', '.join(outcome.planned)}." if outcome.planned else ""))
    return 0 if outcome.changed else 1


def run_dismiss(args: argparse.Namespace) -> int:
    outcome = with_store(lambda store, _: deeds.dismiss(store, args.mail_id, operator(), args.note))
    print(outcome.message)
    return 0 if outcome.changed else 1


def run_purge(args: argparse.Namespace) -> int:
    purged = with_store(retention.purge_once)
    print(
        f"{purged.raw} raw bodies purged; {purged.mails} mails, {purged.audit} audit rows deleted"
    )
    return 0
