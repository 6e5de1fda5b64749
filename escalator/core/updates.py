"""A follow-up is an update, not a new escalation (issue 13, item 5). Pure.

A reply-all on an escalated thread ("the error rate is now 100 %", from the reporter or a
colleague on Cc) used to be a second escalation: a second "We received your escalation" mail, a
second ack and alarm. Now a mail whose thread (In-Reply-To/References, core/headers.py) leads to
an escalation that is still open (`OpenThread`: paged or alarmed, not resolved in PagerDuty,
within the conversation window) is an UPDATE of it:

- its text is posted as a thread reply under the escalation's first alarm post and first ack
  (the notices of the joining mechanism, oncall/joining.py and outbox/notices.py);
- PagerDuty gets a trigger under the SAME dedup key, which the Events API v2 appends to the open
  alert as a log entry (no new incident), with the update's words in its custom details; it
  never leaves before the escalation's own page (a deferred page keeps its 07:00);
- nobody gets a reply mail, and its own page, alarm, ack and reply are recorded as skipped.

Which mails may be an update (`update_reason`), read as hostile mail: Message-IDs are not secret,
so anyone can write an In-Reply-To naming someone else's escalation. An update can never do more
than the same mail could as a new mail, after the same checks (sender policy, allowlist,
automated mail, probes, postmaster):
- decided escalate alone: it would page on its own anyway; as an update it does less (a thread
  reply and a log entry instead of a page, an alarm, an ack and a reply), and an unverified
  sender is marked "unverified sender" there as on a page;
- rejected only because it lacks facts or a channel ("any news?", "adding Bo"), which a reply in
  a thread naturally does: alone it would be held, so it becomes an update only when the sender
  check VERIFIED its From address and that address took part in the escalated mail (its From,
  To or Cc). A stranger, a forged From, a robot or an excluded request stays what it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from escalator.core.actions import PlannedAction
from escalator.core.model import Reason, SenderCheck
from escalator.core.render import one_line

LACKING = frozenset({Reason.MISSING_INCIDENT_FACTS.value, Reason.MISSING_SLACK_CHANNEL.value})
UPDATE_BURST = 5  # updates posted per storm window; later ones only count in the storm (issue 16)
UPDATE_LINES, UPDATE_LINE_CHARS = 20, 300  # what of the update's new words a thread reply shows
ASIDE = frozenset({"notice", "fallback", "update_of"})  # payloads that are not a mail's own deed


@dataclass(frozen=True)
class OpenThread:
    """The open escalation a follow-up's thread leads to: its first mail, its conversation key
    (its alarm is "alarm:<root>", its ack "ack:<root>"), what it sent, who took part in it."""

    mail_id: int
    root: str
    page_key: str | None  # its page's dedup key; None when it was not paged (support hours)
    page_due: datetime | None
    alarmed: bool
    acked: bool
    participants: frozenset[str]


@dataclass(frozen=True)
class Update:
    """A mail that is an update of `thread`, with why and what it says."""

    thread: OpenThread
    why: str
    line: str  # the thread reply's plain text (escaped when rendered)


def update_reason(
    verdict: str,
    reasons: Iterable[str],
    check: SenderCheck | None,
    thread: OpenThread,
) -> str | None:
    """Why a decided mail is an update of `thread`, or None (see the module docstring)."""
    if verdict == "escalate":
        return f"a reply in the thread of escalation {thread.mail_id}"
    lacking = set(reasons)
    if not lacking or not lacking <= LACKING or check is None or not check.verified:
        return None
    if check.address.strip().lower() not in thread.participants:
        return None
    return f"a reply in the thread of escalation {thread.mail_id} from a verified participant"


def update_line(sender: str, mail_id: int, words: str, unverified: bool) -> str:
    """The thread reply: who sent the update, then its own new words (bounded)."""
    lines = [one_line(line, UPDATE_LINE_CHARS) for line in words.splitlines() if line.strip()]
    text = "\n".join(lines[:UPDATE_LINES]) or "(no new words: the mail only quotes the thread)"
    mark = " [unverified sender]" if unverified else ""
    return f"Update from {one_line(sender, 200)} (mail {mail_id}){mark}:\n{text}"


def update_actions(
    planned: Iterable[PlannedAction],
    update: Update,
    notice: Mapping[str, Any],
    mail_id: int,
    at: datetime,
) -> tuple[PlannedAction, ...]:
    """The update's actions: its own page, alarm, ack and reply (and review or doubt notices)
    skipped, then a page under the escalation's dedup key and thread replies under its alarm and
    ack (`notice`: the rendered Slack reply, core/notices.slack_notice)."""
    thread = update.thread
    note = f"an update to escalation {thread.mail_id}: posted in its threads, not answered"
    own = [replace(a, state="skipped", note=note) if a.state == "pending" else a for a in planned]
    common = _common(own, thread, mail_id)
    added: list[PlannedAction] = []
    if thread.page_key is not None:
        due = max(at, thread.page_due or at)
        payload = {**common, "page": "now", "page_at": None}
        added.append(PlannedAction("page", due, thread.page_key, payload))
    for kind, sent in (("alarm", thread.alarmed), ("ack", thread.acked)):
        if sent:
            payload = {**common, "notice": {"under": kind, **notice}}
            added.append(PlannedAction(kind, at, f"update:{mail_id}:{kind}", payload))
    return (*own, *added)


def _common(planned: list[PlannedAction], thread: OpenThread, mail_id: int) -> dict[str, Any]:
    """The planner's common facts of the update (from any of its payloads), on the thread."""
    base = next((dict(a.payload) for a in planned if a.payload), {"mail_id": mail_id})
    kept = {k: v for k, v in base.items() if k not in ("page", "page_at", "to", "via")}
    return {**kept, "thread": thread.root, "update_of": thread.mail_id}


def is_own(payload: Mapping[str, Any]) -> bool:
    """An action a mail planned for itself: not a notice, a fallback or an update's deed."""
    return not any(payload.get(key) for key in ASIDE)
