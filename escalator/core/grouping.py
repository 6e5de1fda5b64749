"""Same outage, several reporters (issue 11). Pure.

Mails from DIFFERENT senders within WINDOW of an open escalation, about the same outage, join
it: one page (the later mail's page is planned as skipped, saying which incident it joined),
the later report posted in the first one's Slack threads (the reporter's ack and the alarm), and
each sender still answered. "The same outage" is read conservatively, like PagerDuty's content
grouping in a 5-60 minute window: the same incident channel named, or, with no channel in
common, most of the subject's and first lines' words shared (Jaccard >= SIMILAR with at least
MIN_SHARED words). The reason is kept in the decision ("joined") and shown on the mail's page,
where support can split a wrongly grouped mail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from escalator.core.actions import PlannedAction

WINDOW = timedelta(minutes=30)
SIMILAR = 0.5
MIN_SHARED = 4
FACTS_CHARS = 600
_WORD = re.compile(r"[a-z0-9][a-z0-9\-]{2,}")
_STOP = frozenset(
    [
        "this",
        "that",
        "with",
        "from",
        "have",
        "been",
        "were",
        "your",
        "what",
        "when",
        "will",
        "there",
        "their",
        "they",
        "them",
        "about",
        "since",
        "error",
        "errors",
        "issue",
        "please",
        "thanks",
        "hello",
        "team",
        "down",
        "help",
        "urgent",
        "incident",
        "service",
        "channel",
        "slack",
        "users",
        "user",
        "every",
        "getting",
    ]
)


@dataclass(frozen=True)
class Report:
    """What grouping compares of one escalated mail."""

    mail_id: int
    sender: str
    received_at: datetime
    channel: str | None
    words: frozenset[str]
    root: str  # the conversation key its page and alarm use


@dataclass(frozen=True)
class Joined:
    mail_id: int
    root: str
    why: str


def words_of(subject: str, facts: str) -> frozenset[str]:
    text = f"{subject}\n{facts[:FACTS_CHARS]}".lower()
    return frozenset(word for word in _WORD.findall(text) if word not in _STOP)


def same_outage(
    new: Report, open_reports: Sequence[Report], window: timedelta = WINDOW
) -> Joined | None:
    """The open report `new` joins (the earliest that matches within `window`), or None."""
    for first in sorted(open_reports, key=lambda report: report.received_at):
        why = _why(new, first, window)
        if why is not None:
            return Joined(first.mail_id, first.root, why)
    return None


def _why(new: Report, first: Report, window: timedelta) -> str | None:
    if first.sender.lower() == new.sender.lower() or first.mail_id == new.mail_id:
        return None
    gap = new.received_at - first.received_at
    if not timedelta(0) <= gap <= window:
        return None
    minutes = f"{gap.total_seconds() / 60:.0f} min"
    if new.channel and first.channel and new.channel.lower() == first.channel.lower():
        return f"same incident channel #{new.channel}, {minutes} after mail {first.mail_id}"
    shared = new.words & first.words
    union = new.words | first.words
    if len(shared) >= MIN_SHARED and len(shared) / max(len(union), 1) >= SIMILAR:
        sample = ", ".join(sorted(shared)[:5])
        return f"same words ({sample}), {minutes} after mail {first.mail_id}"
    return None


def join_actions(
    planned: Iterable[PlannedAction], joined: Joined, line: dict[str, Any], same_channel: bool
) -> tuple[PlannedAction, ...]:
    """The later report's actions when it joins `joined`: its page skipped (PagerDuty already
    has the incident), its alarm (and its ack, when it names the same channel) as replies in the
    first report's threads (`line`: the rendered Slack notice), its reply to the sender as it
    was. Each payload keeps the mail's own conversation as "own_thread", for a split."""
    note = f"joined the open incident of mail {joined.mail_id}: {joined.why}"
    out: list[PlannedAction] = []
    for action in planned:
        own = {**action.payload, "own_thread": action.payload.get("thread")}
        if action.kind == "page":
            skipped = replace(action, state="skipped", note=note, payload=own)
            out.append(replace(skipped, dedup_key=f"joined:{action.dedup_key}"))
        elif action.kind == "alarm" or (action.kind == "ack" and same_channel):
            notice = {"under": action.kind, **line}
            payload = {**own, "thread": joined.root, "notice": notice}
            out.append(replace(action, dedup_key=f"joined:{action.dedup_key}", payload=payload))
        else:
            out.append(action)
    return tuple(out)


def split_actions(joined_actions: Iterable[Any], now: datetime) -> tuple[PlannedAction, ...]:
    """A split mail's own page, alarm and ack, from the actions it joined with (rows with
    kind, state, payload): each back on the mail's own conversation ("own_thread")."""
    keys = {"page": "{}", "alarm": "alarm:{}", "ack": "ack:{}"}
    out: list[PlannedAction] = []
    for action in joined_actions:
        own = action.payload.get("own_thread")
        joined = action.kind == "page" or "notice" in action.payload
        if own is None or action.kind not in keys or not joined:
            continue
        payload = {k: v for k, v in action.payload.items() if k not in ("notice", "own_thread")}
        out.append(
            PlannedAction(
                action.kind, now, keys[action.kind].format(own), {**payload, "thread": own}
            )
        )
    return tuple(out)
