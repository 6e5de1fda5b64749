"""How many reply mails one sender may get (issue 16: replies are rate-limited for escalations
too). Pure: the budgets a reply must fit in, and the note a reply over budget is skipped with.

Two limits, counted in the store over the replies already granted to the address (lowercase),
so a restart or a second replica honours them:
- the RFC 3834 loop guard: at most one REJECT reply per address per 10 minutes (two robots
  answering each other cannot loop);
- the sender's reply budget (ESCALATOR_SENDER_REPLY_LIMIT): at most that many replies of any
  verdict per address per hour, so a flood of distinct escalations (a storm already replies
  once) cannot make escalator mail one address without end. 0 switches it off.
A reply over either is recorded as skipped with `refusal_note`; its page, alarm and ack go as
decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

LOOP_GUARD = timedelta(minutes=10)
BUDGET_WINDOW = timedelta(hours=1)
ANY_VERDICT = ""


@dataclass(frozen=True)
class ReplyBudget:
    """At most `most` replies to one address granted at or after `since`, counting only
    replies of `verdict` (ANY_VERDICT: every reply)."""

    most: int
    since: datetime
    verdict: str = ANY_VERDICT
    name: str = "reply limit"


@dataclass(frozen=True)
class ReplyRefused:
    """The budget a reply did not fit in, and when the oldest reply counted in it went."""

    budget: ReplyBudget
    first_at: datetime


@dataclass(frozen=True)
class ReplyClaim:
    """A reply of `verdict` asking at `now` for a slot within `budgets`."""

    verdict: str
    now: datetime
    budgets: tuple[ReplyBudget, ...]


def reply_claim(verdict: str, now: datetime, per_hour: int) -> ReplyClaim:
    """The budgets a reply of `verdict` at `now` must fit in (none: it goes unchecked)."""
    budgets = []
    if verdict == "reject":
        budgets.append(ReplyBudget(1, now - LOOP_GUARD, "reject", "loop guard"))
    if per_hour > 0:
        budgets.append(ReplyBudget(per_hour, now - BUDGET_WINDOW))
    return ReplyClaim(verdict, now, tuple(budgets))


def refusal_note(to: str, refused: ReplyRefused) -> str:
    """Why the reply was skipped, as the action's last_error (the address is the header-safe
    one the reply would have gone to)."""
    at = refused.first_at.isoformat(timespec="seconds")
    if refused.budget.most == 1:
        return f"{refused.budget.name}: {to} already had a reply at {at}"
    return (
        f"{refused.budget.name}: {to} already had {refused.budget.most} replies since {at}"
        " (ESCALATOR_SENDER_REPLY_LIMIT an hour); the page, alarm and ack are not affected"
    )
