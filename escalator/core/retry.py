"""When to try an outbox action again, and when to stop and tell a human (pure).

Adapters raise RetryLater (the outside thing may come back; it may say when) or Refused (it
said no and will say no again). The policy turns a failure into a value: retry at an instant
(exponential backoff with jitter, never sooner than Retry-After) or give up, once the next try
would fall beyond the horizon measured from the first failed attempt. That instant travels in
the action's last_error ("failing since <ISO>: …"), which operators also read in `escalator list`.

A PERSISTENT action (a page, an alarm: what reaches a person) never gives up (issue 14.5): past
the horizon it is retried at the slower cadence `min(slow, horizon)`, and the step that first
crosses the horizon says so (`RetryAt.crossed`), so that a human is told the other way once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from escalator.errors import PermanentError, TransientError


class RetryLater(TransientError):
    """A delivery failed in a way worth retrying; `retry_after` is the server's hint, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(PermanentError):
    """The outside system refused the request; `code` is its machine-readable reason."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: base·factor^(n-1) seconds, capped, with ± jitter share."""

    base: float = 2.0
    factor: float = 2.0
    cap: float = 120.0
    jitter: float = 0.5
    horizon: float = 600.0
    slow: float = 300.0  # past the horizon, a persistent action is tried at most this often


@dataclass(frozen=True)
class RetryAt:
    due_at: datetime
    error: str
    crossed: bool = False  # this step is the first beyond the horizon (persistent actions)


@dataclass(frozen=True)
class GiveUp:
    error: str


def backoff_delay(policy: Backoff, attempts: int, draw: float) -> float:
    """Delay before try `attempts + 1`; `draw` in [0, 1) spreads retries of many actions."""
    raw = min(policy.cap, policy.base * policy.factor ** max(attempts - 1, 0))
    return raw * (1 - policy.jitter + 2 * policy.jitter * draw)


def next_step(
    policy: Backoff,
    *,
    attempts: int,
    last_error: str | None,
    now: datetime,
    error: str,
    retry_after: float | None,
    draw: float,
    persistent: bool = False,
) -> RetryAt | GiveUp:
    """Retry at backoff (or Retry-After when longer), unless that passes the horizon: then
    give up, or, for a persistent action, retry at the slow cadence."""
    since = failing_since(last_error) or now
    delay = backoff_delay(policy, attempts, draw)
    if retry_after is not None:
        delay = max(delay, retry_after)
    due = now + timedelta(seconds=delay)
    stamp = f"{_SINCE}{since.isoformat()}: {error}"
    if (due - since).total_seconds() <= policy.horizon:
        return RetryAt(due, stamp)
    failing = int((now - since).total_seconds())
    if not persistent:
        return GiveUp(f"gave up after {attempts} attempts over {failing} s: {error}")
    slow = min(policy.slow, policy.horizon) * (1 - policy.jitter / 2 + policy.jitter * draw)
    later = now + timedelta(seconds=max(slow, retry_after or 0.0))
    crossed = (now - since).total_seconds() <= policy.horizon
    return RetryAt(later, stamp, crossed=crossed)


_SINCE = "failing since "


def failing_since(last_error: str | None) -> datetime | None:
    """The first failure's instant, as next_step wrote it into last_error; None if absent."""
    if not last_error or not last_error.startswith(_SINCE):
        return None
    stamp = last_error.removeprefix(_SINCE).partition(": ")[0]
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max((moment - now).total_seconds(), 0.0)
