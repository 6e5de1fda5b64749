"""Storms (issue 16): many mails that look like one incident collapse into one page. Pure.

Two mails look like the same incident when they come from the same sender (the verified From
address when the sender check verified it, else the envelope sender) with the same normalised
subject, or belong to the same thread. The first mail of such a group inside the window opens a
storm and is handled as usual; the store remembers it (store.join_storm). Every later mail of the
group is still stored, decided and shown, but JOINS the first: its page, ack and reply are
recorded as skipped with the first mail's id, and it pages nobody. The count is posted as a
reply in the first alarm's Slack thread at a few milestones (2, 5, 10, 50, 100, 500, 1000, ...),
so support sees one thread with a counter rather than one post a mail. In on-call-only cover
(a page, no alarm) there is no alarm thread: the count goes to PagerDuty instead, as a trigger
under the storm's dedup key (its thread root), which the Events API v2 appends to the open alert
as a log entry, as an update's does (core/updates.py); it never leaves before the storm's own
page and never re-opens a resolved incident (outbox/deliver.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from escalator.core.actions import PlannedAction

_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv|antw)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
_COLLAPSED_KINDS = frozenset({"page", "ack", "reply", "alarm"})


@dataclass(frozen=True)
class StormJoin:
    """The store's answer for one mail: the storm's first mail, its thread root, and how many
    mails the storm holds now (this one included). `first_mail_id == mail_id`: it opened it."""

    first_mail_id: int
    root: str
    count: int


def normalised_subject(subject: str) -> str:
    """Lower case, without Re:/Fwd: prefixes, numbers as 0, spaces collapsed: an alert that
    counts up ("error rate 52%", "error rate 61%") is one subject."""
    bare = _REPLY_PREFIX.sub("", subject or "")
    return _SPACE.sub(" ", _DIGITS.sub("0", bare)).strip().lower()


def storm_keys(sender: str, subject: str, root: str) -> tuple[str, ...]:
    """The keys under which a mail looks for an open storm: sender+subject, and its thread."""
    who = sender.strip().strip("<>").strip().lower()
    keys = [f"thread:{root}"] if root else []
    if who:
        keys.insert(0, f"subject:{who}\n{normalised_subject(subject)}")
    return tuple(keys)


def storm_sender(contract: Mapping[str, Any], mail_from: str) -> str:
    """The verified From address when the sender check verified it, else the envelope sender."""
    check = contract.get("sender")
    if isinstance(check, dict) and check.get("verified") and check.get("address"):
        return str(check["address"])
    return mail_from


def is_milestone(count: int) -> bool:
    """2, 5, 10, 50, 100, 500, 1000, 5000, ...: a handful of counter posts for any storm."""
    if count in (2, 5):
        return True
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count in (1, 5)


def collapse(
    planned: tuple[PlannedAction, ...], join: StormJoin, mail_id: int
) -> tuple[PlannedAction, ...]:
    """The actions of a mail that joined a storm: nothing leaves, except at a milestone an alarm
    in the first mail's thread carrying the count. Actions of the storm's first mail unchanged."""
    if join.first_mail_id == mail_id:
        return planned
    note = f"joined the storm of mail {join.first_mail_id} ({join.count} mails so far)"
    carrier = _counter_carrier(planned) if is_milestone(join.count) else None
    out = []
    for action in planned:
        if action.kind == carrier and action.state == "pending":
            out.append(_counter(action, join, note))
        elif action.kind in _COLLAPSED_KINDS and action.state == "pending":
            out.append(replace(action, state="skipped", note=note))
        else:
            out.append(action)
    return tuple(out)


def _counter_carrier(planned: tuple[PlannedAction, ...]) -> str | None:
    """Which of a joiner's pending actions carries the count: its alarm (into the storm's
    alarm thread), else its page (PagerDuty, under the storm's dedup key), else none."""
    pending = {action.kind for action in planned if action.state == "pending"}
    return next((kind for kind in ("alarm", "page") if kind in pending), None)


def _counter(action: PlannedAction, join: StormJoin, note: str) -> PlannedAction:
    """The alarm or page that carries the count, under the storm's own alarm or page key."""
    notes = [*action.payload.get("notes", ()), f"storm: {note}"]
    payload = {**action.payload, "notes": notes, "storm_of": join.first_mail_id}
    payload["storm_count"] = join.count
    key = f"alarm:{join.root}" if action.kind == "alarm" else join.root
    return replace(action, dedup_key=key, payload=payload)


def storm_contract(join: StormJoin, mail_id: int) -> dict[str, Any]:
    """What the stored decision says about the storm ("joined" only when it did)."""
    if join.first_mail_id == mail_id:
        return {"storm": {"first": mail_id, "count": join.count}}
    return {"storm": {"joined": join.first_mail_id, "count": join.count}}
