"""Carrying out a notice (an outbox action whose payload holds "notice", see oncall/relay.py).

The text was rendered and escaped when the notice was planned; here it is only delivered: a
Slack reply in the thread of the conversation's first ack or alarm post (skipped, with the
reason, when there is no such post), or a short mail to the reporter through the relay, marked
auto-replied and threaded under their mail. Without a bot token / relay: dry run, as elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from escalator.core.render import header_address, header_msgid, one_line
from escalator.outbox.relay import Relay
from escalator.outbox.slack import Slack
from escalator.store import ActionRow
from escalator.store.loop import LoopStore


@dataclass(frozen=True)
class Outcome:
    state: str
    result: dict[str, Any] | None = None
    note: str | None = None


def is_notice(action: ActionRow) -> bool:
    return isinstance(action.payload.get("notice"), dict)


async def slack_notice(action: ActionRow, slack: Slack | None, store: LoopStore) -> Outcome:
    """A reply in the thread of the first `under` post (ack or alarm) of the conversation."""
    notice = action.payload["notice"]
    under, thread = str(notice.get("under")), str(action.payload.get("thread") or "")
    parent = await store.first_result(under, f"{under}:{thread}")
    request = {"under": under, "text": notice["text"], "blocks": notice["blocks"]}
    if slack is None:
        return Outcome("dry_run", request)
    if parent is None or not parent.get("ts"):
        return Outcome("skipped", note=f"no {under} post in Slack to reply under")
    channel, ts = str(parent["channel"]), str(parent["ts"])
    posted = await slack.post(
        channel, notice["text"], notice["blocks"], thread_ts=ts, marker=str(action.id)
    )
    return Outcome("sent", {**posted, "thread_ts": ts})


@dataclass(frozen=True)
class MailFrame:
    """What the mail's headers need from settings and the clock."""

    reply_from: str
    hostname: str
    date: datetime


async def mail_notice(action: ActionRow, relay: Relay | None, frame: MailFrame) -> Outcome:
    """The short mail to the reporter."""
    to = header_address(str(action.payload.get("to") or ""))
    if to is None:
        return Outcome("skipped", note="no address to tell")
    message = build_mail(action, to, frame)
    if relay is None:
        return Outcome("dry_run", {"to": to, "message": message.as_string()})
    sent = await relay.send(message, to)
    return Outcome("sent", {"to": to, "message_id": message["Message-ID"], **sent})


def build_mail(action: ActionRow, to: str, frame: MailFrame) -> EmailMessage:
    mail = action.payload["notice"]["mail"]
    msg = EmailMessage()
    msg["From"] = formataddr(("Cloud platform escalations", frame.reply_from))
    msg["To"] = to
    msg["Subject"] = one_line(str(mail["subject"]), 200)
    msg["Date"] = format_datetime(frame.date)
    msg["Message-ID"] = f"<notice-{action.id}.{action.mail_id}@{frame.hostname}>"
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    parent = header_msgid(action.payload.get("message_id"))
    if parent is not None:
        msg["In-Reply-To"] = parent
        msg["References"] = parent
    msg.set_content(str(mail["body"]))
    return msg
