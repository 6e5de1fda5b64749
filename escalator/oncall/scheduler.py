"""The on-call loop's clock (issue 11): handovers, unanswered alarms, unacknowledged pages, and
the one-hour reminder. `tick()` looks once; `run()` ticks every TICK_SECONDS.

Each deed is done once across restarts and replicas: a mark is taken in the store first
(`LoopStore.take_mark`), and the deed's outbox actions follow. What is looked at: escalations
received in the last LOOKBACK (recent_escalations), with what PagerDuty said of them.

- Handover: at each slot of core/handover.py (working days, ESCALATOR_HANDOVER_TIMES) a digest in
  the alarm channel, posted within HANDOVER_GRACE of the slot (a service down at 18:00 posts it
  when back, but not hours later).
- Unanswered: an alarm-only escalation (support hours) with no reaction within
  ESCALATOR_UNANSWERED_AFTER of its alarm post (no PagerDuty ack, not released by a person, no
  person's reply or reaction in the alarm's Slack thread): page on-call anyway, and say so in the
  thread.
- Chased: a page not acknowledged within the same delay: the reporter is told it is being
  chased (PagerDuty escalates on its own policy; escalator only reports).
- One hour: an out-of-hours page acknowledged an hour ago and still open: the process's reminder
  in the reporter's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from escalator.core import handover
from escalator.core.actions import PlannedAction
from escalator.core.cover import CoverCalendar
from escalator.core.notices import ONE_HOUR_REMINDER
from escalator.core.updates import is_own
from escalator.core.webhooks import IncidentState
from escalator.oncall.relay import common_of, notices
from escalator.outbox.slack import Slack
from escalator.settings import Settings
from escalator.store import ActionRow, ListedMail, Store
from escalator.store.loop import Found, LoopStore, loop_store, reply_to

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0
LOOKBACK = timedelta(hours=36)
HANDOVER_GRACE = timedelta(hours=1)
ONE_HOUR = timedelta(hours=1)
STALE = timedelta(hours=6)
RECENT_LIMIT = 500
HELD_LIMIT = 200
ACKED = frozenset({"acknowledged", "resolved"})


@dataclass(frozen=True)
class Conversation:
    """One escalated mail with its first alarm, first page and PagerDuty's state."""

    listed: ListedMail
    alarm: ActionRow | None
    page: ActionRow | None
    state: IncidentState | None
    seen: bool = False  # a person acknowledged it on the review page

    @property
    def mail_id(self) -> int:
        return self.listed.mail.id


class LoopScheduler:
    """See the module docstring. `slack` (None: dry run) posts the digest and reads threads."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        calendar: CoverCalendar,
        *,
        slack: Slack | None = None,
        clock: Callable[[], datetime],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._loop: LoopStore = loop_store(store)
        self._settings = settings
        self._calendar = calendar
        self._times = handover.parse_times(settings.handover_times)
        self._slack = slack
        self._clock = clock
        self._wake = wake
        self._after = timedelta(seconds=settings.unanswered_after)

    async def run(self) -> None:
        """Tick forever; a failing tick is logged and the next one tries again."""
        while True:
            try:
                await self.tick()
            except Exception:  # the loop must outlive one bad tick; logged in full
                log.exception("on-call loop: tick failed")
            await asyncio.sleep(TICK_SECONDS)

    async def tick(self) -> None:
        now = self._clock()
        await self.handover_if_due(now)
        conversations = await self._conversations(now)
        planned = 0
        for conversation in conversations:
            planned += await self._follow(conversation, now)
        if planned:
            self._wake()

    # -- handover ---------------------------------------------------------------------------

    async def handover_if_due(self, now: datetime) -> bool:
        """Post the digest of the slot due now, once; True when this call posted it."""
        slot = handover.due_slot(self._calendar, self._times, now, HANDOVER_GRACE)
        if slot is None:
            return False
        mark = f"handover:{slot.isoformat()}"
        if not await self._loop.take_mark(mark, now):
            return False
        since = handover.slot_before(self._calendar, self._times, slot) or slot - handover.CLI_MAX
        text = await self.digest(since, slot)
        try:
            await self._post_digest(text)
        except Exception:
            await self._loop.drop_mark(mark)  # the next tick tries again, within the grace
            raise
        return True

    async def digest(self, since: datetime, now: datetime) -> str:
        """The handover digest (plain text) of what is open or held since `since`."""
        entries = await digest_entries(self._store, since)
        return handover.digest_text(entries, self._calendar, since, now)

    async def _post_digest(self, text: str) -> None:
        channel = self._settings.slack_alarm_channel
        if self._slack is None:
            log.info("handover digest (dry run) for #%s: %d lines", channel, text.count("\n") + 1)
            return
        escaped = handover.slack_digest(text)
        block = {"type": "section", "text": {"type": "mrkdwn", "text": escaped[:2900]}}
        block["text"]["verbatim"] = True  # type: ignore[index]
        await self._slack.post(channel, escaped, [block])

    # -- unanswered, chased, one hour -----------------------------------------------------------

    async def _conversations(self, now: datetime) -> list[Conversation]:
        listed = [
            item
            for item in await self._store.recent_escalations(RECENT_LIMIT)
            if item.mail.received_at >= now - LOOKBACK
        ]
        ids = [item.mail.id for item in listed]
        states, seen = await self._loop.incident_states(ids), await self._loop.seen(ids)
        return [
            Conversation(
                item,
                _first(item, "alarm"),
                _first(item, "page"),
                states.get(item.mail.id),
                item.mail.id in seen,
            )
            for item in listed
        ]

    async def _follow(self, conversation: Conversation, now: datetime) -> int:
        """The one deed due for this conversation now, if any; how many actions it planned."""
        if _unanswered_due(conversation, now, self._after) and not await self._reacted(
            conversation
        ):
            return await self._once(conversation, "unanswered", now, self._page_anyway)
        if _chase_due(conversation, now, self._after):
            return await self._once(conversation, "chased", now, self._chase)
        if _one_hour_due(conversation, now):
            return await self._once(conversation, "one-hour", now, self._remind)
        return 0

    async def _once(
        self,
        conversation: Conversation,
        what: str,
        now: datetime,
        plan: Callable[[Conversation, datetime], tuple[PlannedAction, ...]],
    ) -> int:
        if not await self._loop.take_mark(f"{what}:{conversation.mail_id}", now):
            return 0
        planned = plan(conversation, now)
        await self._store.add_actions(conversation.mail_id, planned)
        log.info("on-call loop: mail %d %s", conversation.mail_id, what)
        return len(planned)

    async def _reacted(self, conversation: Conversation) -> bool:
        """A person reacted in the alarm's Slack thread (reply or reaction), if we can tell."""
        result = (conversation.alarm.result if conversation.alarm else None) or {}
        if self._slack is None or not result.get("ts"):
            return False
        return await self._slack.someone_reacted(str(result["channel"]), str(result["ts"]))

    def _page_anyway(self, conversation: Conversation, now: datetime) -> tuple[PlannedAction, ...]:
        alarm = conversation.alarm
        assert alarm is not None  # _unanswered_due checked it
        minutes = _minutes(self._after)
        reason = f"nobody reacted to the Slack alarm within {minutes}: on-call paged anyway"
        common = common_of(alarm.payload)
        notes = [*alarm.payload.get("notes", ()), reason]
        page_payload = {**common, "page": "now", "page_at": None, "notes": notes}
        thread = str(common.get("thread") or alarm.dedup_key.removeprefix("alarm:"))
        page = PlannedAction("page", now, thread, page_payload)
        line = f"Nobody reacted to this alarm within {minutes}: on-call has been paged anyway."
        found = self._found(conversation, page_payload)
        said = notices(found, line, f"unanswered:{conversation.mail_id}", self._public, now)
        return (page, *(a for a in said if a.kind == "alarm"))

    def _chase(self, conversation: Conversation, now: datetime) -> tuple[PlannedAction, ...]:
        page = conversation.page
        assert page is not None  # _chase_due checked it
        line = (
            f"On-call has not acknowledged the page within {_minutes(self._after)}. PagerDuty "
            "is escalating it along the on-call policy; we are chasing it."
        )
        found = self._found(conversation, page.payload)
        return notices(found, line, f"chased:{conversation.mail_id}", self._public, now)

    def _remind(self, conversation: Conversation, now: datetime) -> tuple[PlannedAction, ...]:
        page = conversation.page
        assert page is not None  # _one_hour_due checked it
        found = self._found(conversation, page.payload)
        said = notices(
            found, ONE_HOUR_REMINDER, f"one-hour:{conversation.mail_id}", self._public, now
        )
        return tuple(a for a in said if a.kind == "ack")

    def _found(self, conversation: Conversation, payload: dict[str, Any]) -> Found:
        reply = _first(conversation.listed, "reply")
        return Found(
            mail_id=conversation.mail_id,
            incident_key=str(payload.get("thread") or ""),
            page_payload=payload,
            reply_to=None if reply is None else reply_to(reply.payload, reply.state),
            state=conversation.state,
        )

    @property
    def _public(self) -> str:
        return self._settings.public_url


def _first(listed: ListedMail, kind: str) -> ActionRow | None:
    """The mail's first own action of `kind` (not a notice, a fallback or an update's deed:
    an update, issue 13.5, is followed through the escalation it updated)."""
    own = (a for a in listed.actions if a.kind == kind and is_own(a.payload))
    return next(own, None)


def _unanswered_due(conversation: Conversation, now: datetime, after: timedelta) -> bool:
    alarm, mail = conversation.alarm, conversation.listed.mail
    if alarm is None or alarm.state != "sent" or conversation.page is not None:
        return False
    if mail.review == "released" or conversation.state is not None or conversation.seen:
        return False
    return _within(now - alarm.due_at, after)  # due: when it was planned to go out


def _chase_due(conversation: Conversation, now: datetime, after: timedelta) -> bool:
    page = conversation.page
    if page is None or page.state != "sent":
        return False
    state = conversation.state
    if state is not None and (state.status in ACKED or state.acknowledged_at is not None):
        return False
    return _within(now - page.due_at, after)


def _one_hour_due(conversation: Conversation, now: datetime) -> bool:
    state, mail = conversation.state, conversation.listed.mail
    if conversation.page is None or state is None or state.status != "acknowledged":
        return False
    if mail.window == "support" or state.acknowledged_at is None:
        return False
    return _within(now - state.acknowledged_at, ONE_HOUR)


def _within(waited: timedelta, after: timedelta) -> bool:
    """Due after `after`, but not news any more after STALE (a service back from a long
    outage, or just deployed, does not chase yesterday's escalations)."""
    return after <= waited <= after + STALE


def _minutes(delay: timedelta) -> str:
    minutes = delay.total_seconds() / 60
    return f"{minutes:g} minutes" if minutes != 1 else "1 minute"


async def digest_entries(store: Store, since: datetime) -> list[handover.Entry]:
    """Escalations received since `since` not resolved in PagerDuty, and mails held for review
    received since then, oldest first."""
    escalated = [
        item
        for item in await store.recent_escalations(RECENT_LIMIT)
        if item.mail.received_at >= since and not _is_update(item)
    ]
    states = await loop_store(store).incident_states([item.mail.id for item in escalated])
    held = [m for m in await store.mails_in_review("held", HELD_LIMIT) if m.received_at >= since]
    entries = [
        _entry(item, states.get(item.mail.id))
        for item in escalated
        if (states.get(item.mail.id) is None or states[item.mail.id].status != "resolved")
    ]
    entries += [
        handover.Entry(
            m.id,
            m.received_at,
            m.from_addr or m.mail_from,
            m.subject,
            "held for review",
            m.slack_channel,
            None,
        )
        for m in held
    ]
    return sorted(entries, key=lambda entry: (entry.received_at, entry.mail_id))


def _is_update(item: ListedMail) -> bool:
    """An update (issue 13.5) is part of the escalation it updated, listed once under it."""
    return item.mail.decision is not None and item.mail.decision.update is not None


def _entry(item: ListedMail, state: IncidentState | None) -> handover.Entry:
    mail = item.mail
    return handover.Entry(
        mail.id,
        mail.received_at,
        mail.from_addr or mail.mail_from,
        mail.subject,
        _state_words(item, state),
        mail.slack_channel,
        state.acknowledged_by if state is not None else None,
    )


def _state_words(item: ListedMail, state: IncidentState | None) -> str:
    if state is not None:
        return f"PagerDuty {state.status}"
    page, alarm = _first(item, "page"), _first(item, "alarm")
    if page is not None:
        return (
            "page waiting (deferred to on-call)"
            if page.state == "pending"
            else f"page {page.state}"
        )
    if alarm is not None:
        return f"alarm {alarm.state}, no page"
    return "escalated"
