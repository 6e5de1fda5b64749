"""When webhooks stop coming, ask PagerDuty (issue 11): an open incident's state by REST API poll.

PagerDuty disables a webhook subscription after repeated failed deliveries, and then nothing
tells escalator that on-call acknowledged or resolved. So, with ESCALATOR_PAGERDUTY_API_TOKEN
set, every TICK_SECONDS the poller looks at the incidents escalator's pages opened (a page of the
mail's own that PagerDuty accepted, in the last LOOKBACK) that are not resolved, and asks for
those whose status has not changed for ESCALATOR_PAGERDUTY_POLL_AFTER seconds (since the page
went, or since the status a webhook or an earlier poll recorded), once per such period across
replicas (a mark in the store). A status PagerDuty reports that escalator does not know becomes
the event a webhook would have brought (core/webhooks.polled_event) and is recorded by the SAME
path (oncall/relay.record_event): the state, the thread replies and the mail to the reporter,
once. A webhook that arrives later about the same change is recorded and relays nothing
(core/webhooks.fold, SAME_CHANGE); one recorded first leaves the poll nothing to say.

A failed poll is a value: logged with its reason (never the token, never a body) and counted
(escalator_pagerduty_polls_total{outcome="failed"}); the rest of the tick waits for the next. A
429 holds every poll back for as long as PagerDuty asked; a transient failure (timeout, 5xx)
is tried again at the next tick; a refusal (401/403, no such incident) at the next period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from escalator import metrics
from escalator.core.render import bounded_dedup_key
from escalator.core.updates import is_own
from escalator.core.webhooks import IncidentState, polled_event
from escalator.oncall.pdrest import PagerDutyRest, Unpolled
from escalator.oncall.relay import record_event
from escalator.settings import Settings
from escalator.store import ListedMail, Store
from escalator.store.loop import LoopStore, loop_store

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0
LOOKBACK = timedelta(hours=36)
RECENT_LIMIT = 500


@dataclass(frozen=True)
class Watched:
    """One open incident a page of ours opened, as the poller follows it."""

    mail_id: int
    dedup_key: str
    state: IncidentState | None
    quiet_since: datetime  # the page going out, or the last status recorded

    def mark(self, now: datetime, every: timedelta) -> str:
        """One poll per `every` of quiet, across replicas."""
        period = int((now - self.quiet_since) / every)
        return f"pd-poll:{self.mail_id}:{int(self.quiet_since.timestamp())}:{period}"


class IncidentPoller:
    """See the module docstring. `tick()` looks once; `run()` ticks every TICK_SECONDS."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        api: PagerDutyRest,
        *,
        clock: Callable[[], datetime],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._loop: LoopStore = loop_store(store)
        self._api = api
        self._clock = clock
        self._wake = wake
        self._zone = ZoneInfo(settings.timezone)
        self._public = settings.public_url
        self._every = timedelta(seconds=settings.pagerduty_poll_after)
        self._hold_until: datetime | None = None  # PagerDuty said 429: not before this

    async def run(self) -> None:
        """Tick forever; a failing tick is logged and the next one tries again."""
        while True:
            try:
                await self.tick()
            except Exception:  # the poller must outlive one bad tick (a store hiccup); logged
                log.exception("PagerDuty poll: tick failed")
            await asyncio.sleep(TICK_SECONDS)

    async def tick(self) -> int:
        """Poll what is due now; how many new states were recorded."""
        now = self._clock()
        if self._hold_until is not None and now < self._hold_until:
            return 0
        recorded = 0
        for watched in await self.due(now):
            if not await self._loop.take_mark(watched.mark(now, self._every), now):
                continue
            outcome = await self._poll(watched, now)
            if outcome is None:
                break  # PagerDuty is not answering as it should: the rest waits
            recorded += outcome
        if recorded:
            self._wake()
        return recorded

    async def due(self, now: datetime) -> list[Watched]:
        """Open incidents of ours whose status has been quiet for a poll period."""
        listed = [
            item
            for item in await self._store.recent_escalations(RECENT_LIMIT)
            if item.mail.received_at >= now - LOOKBACK
        ]
        states = await self._loop.incident_states([item.mail.id for item in listed])
        watched = (_watched(item, states.get(item.mail.id)) for item in listed)
        return [w for w in watched if w is not None and now - w.quiet_since >= self._every]

    async def _poll(self, watched: Watched, now: datetime) -> int | None:
        """1 when a new state was recorded, 0 when PagerDuty said nothing new, None: failed."""
        incident_id = None if watched.state is None else watched.state.incident_id
        key = bounded_dedup_key(watched.dedup_key)
        polled = await self._api.incident(incident_id, key)
        if isinstance(polled, Unpolled):
            await self._failed(watched, polled, now)
            return None
        event = polled_event(polled.incident, watched.dedup_key, watched.state, now)
        if event is None:
            metrics.PAGERDUTY_POLLS.labels(outcome="unchanged").inc()
            return 0
        outcome = await record_event(self._loop, event, self._zone, self._public, now)
        metrics.PAGERDUTY_POLLS.labels(outcome="changed").inc()
        log.info("PagerDuty poll: mail %d incident %s, %s", watched.mail_id, event.status, outcome)
        return 1 if outcome == "recorded" else 0

    async def _failed(self, watched: Watched, failure: Unpolled, now: datetime) -> None:
        metrics.PAGERDUTY_POLLS.labels(outcome="failed").inc()
        log.warning("PagerDuty poll for mail %d failed: %s", watched.mail_id, failure.reason)
        if failure.retry_after is not None:
            self._hold_until = now + timedelta(seconds=failure.retry_after)
        if failure.transient:  # asked again at the next tick, not a whole period later
            await self._loop.drop_mark(watched.mark(now, self._every))

    async def close(self) -> None:
        await self._api.close()


def _watched(item: ListedMail, state: IncidentState | None) -> Watched | None:
    """The mail's own page that PagerDuty accepted, if its incident is not known resolved."""
    page = next(
        (a for a in item.actions if a.kind == "page" and a.state == "sent" and is_own(a.payload)),
        None,
    )
    if page is None or (state is not None and state.status == "resolved"):
        return None
    # due_at: when the page last went out (a retry moves it), on the same clock as the decision
    quiet = page.due_at if state is None else max(page.due_at, state.status_at)
    return Watched(item.mail.id, page.dedup_key, state, quiet)
