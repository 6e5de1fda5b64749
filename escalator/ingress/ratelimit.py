"""Rate limits at the SMTP door: per envelope sender, and per client address (issue 16).

Sliding one-minute windows, in memory (per process). A sender over ESCALATOR_SENDER_RATE_LIMIT
mails a minute gets 450 4.7.1 at MAIL FROM. A client address over ESCALATOR_CLIENT_RATE_LIMIT
gets the same, but the client's count takes each sender's mails only up to the sender limit:
mail usually arrives through the provider's one or two relays, so one sender's storm through a
relay fills only its own budget and never gets another sender's mail refused; many senders at
once from one address (a spray) still reach the client limit. A limit of 0 turns it off (with
the sender limit off, the client limit counts every mail). Only stored new mails count.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0
PRUNE_ABOVE = 10_000  # distinct senders remembered before stale ones are dropped


@dataclass
class RateLimits:
    """Which mails (sender, client) may be accepted now; `record` one once it was stored."""

    per_sender: int
    per_client: int
    clock: Callable[[], float]
    _senders: dict[str, deque[float]] = field(default_factory=dict)
    _clients: dict[str, dict[str, deque[float]]] = field(default_factory=lambda: defaultdict(dict))

    def refusal(self, sender: str, client: str) -> str | None:
        """None when the mail may come; else which limit it is over ('sender' or 'client')."""
        now, key = self.clock(), sender.lower()
        if self.per_sender and self._count(self._senders.get(key), now) >= self.per_sender:
            return "sender"
        if self.per_client and self._client_count(client, now) >= self.per_client:
            return "client"
        return None

    def record(self, sender: str, client: str) -> None:
        now, key = self.clock(), sender.lower()
        if len(self._senders) > PRUNE_ABOVE:
            self._prune(now)
        cap = self.per_sender or self.per_client or 1  # enough to know "at the limit"
        self._senders.setdefault(key, deque(maxlen=cap)).append(now)
        self._clients[client].setdefault(key, deque(maxlen=cap)).append(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, times in self._senders.items() if not self._count(times, now)]:
            del self._senders[key]
        for client in list(self._clients):
            if not self._client_count(client, now):
                del self._clients[client]

    def _client_count(self, client: str, now: float) -> int:
        """The client's mails in the window, each sender's counted up to the sender limit."""
        senders = self._clients.get(client, {})
        for key in [k for k, times in senders.items() if not self._count(times, now)]:
            del senders[key]
        return sum(len(times) for times in senders.values())

    @staticmethod
    def _count(times: deque[float] | None, now: float) -> int:
        """Drop entries older than the window; how many are left."""
        if times is None:
            return 0
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        return len(times)
