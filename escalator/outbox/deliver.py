"""Carrying out one action against the outside world: a page to PagerDuty, an alarm, an ack or a
review post to Slack, a reply through the relay, a notice (issue 11). Dry run per system when
its adapter is absent: the exact payload is recorded instead. Rendering reads the typed
decision and facts the decide worker stored (outbox/incident.py); nothing here parses mail.

The Dispatcher (outbox/dispatch.py) decides when an action runs and what its outcome means;
this decides how it is sent.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from escalator import metrics
from escalator.core import render
from escalator.core.ackplace import ChannelFacts, ack_place
from escalator.core.replybudget import refusal_note, reply_claim
from escalator.core.retry import Refused, RetryLater
from escalator.core.updates import is_own
from escalator.outbox import notices
from escalator.outbox.incident import Frames
from escalator.outbox.pagerduty import PagerDuty
from escalator.outbox.relay import Relay, parse_relay_url
from escalator.outbox.slack import CHANNEL_GONE, Slack
from escalator.settings import Settings
from escalator.store import ActionRow, MailRow, Store
from escalator.store.loop import loop_store

ACK_UNREACHABLE = CHANNEL_GONE | {"method_not_supported_for_channel_type"}
RESOLVED = "resolved on the review page"  # a failing page a person took over (review/onit.py)
PAGE_WAIT_SECONDS = 2.0  # a reply waits this long (again) for its page's outcome
SILENT = ("skipped", "failed")  # an action in these states never reached anyone


class WaitFor(Exception):
    """Not a failure: the action cannot say what it must say yet; look again at `due`."""

    def __init__(self, due: datetime, reason: str) -> None:
        super().__init__(reason)
        self.due = due


@dataclass(frozen=True)
class Done:
    """How an action ended when it did not need a retry."""

    state: str
    result: dict[str, Any] | None = None
    note: str | None = None


@dataclass(frozen=True)
class Adapters:
    """The outside systems; None means dry run for that system."""

    pagerduty: PagerDuty | None = None
    slack: Slack | None = None
    relay: Relay | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Adapters:
        key, token, relay = (
            settings.pagerduty_routing_key,
            settings.slack_bot_token,
            settings.relay_url,
        )
        events_url, ca_file = settings.pagerduty_events_url, settings.pagerduty_ca_file
        return cls(
            pagerduty=None
            if key is None
            else PagerDuty(key.get_secret_value(), events_url, ca_file),
            slack=None
            if token is None
            else Slack(token.get_secret_value(), settings.slack_api_url),
            relay=None if relay is None else Relay(parse_relay_url(relay.get_secret_value())),
        )


class PageBudget:
    """A token bucket for one routing key: `per_minute` events, refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self._rate, self._cap, self._clock = per_minute / 60.0, float(per_minute), clock
        self._tokens, self._at = float(per_minute), clock()

    def take(self) -> float:
        """0 when a page may leave now (its token taken), else the seconds until one may."""
        now = self._clock()
        self._tokens = min(self._cap, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def empty(self) -> None:
        """PagerDuty said 429: its own count is ahead of ours."""
        self._tokens, self._at = 0.0, self._clock()


class Deliverer:
    """Sends one action through the adapters (or records it as a dry run)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        adapters: Adapters,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._settings = settings
        self._adapters = adapters
        self._clock = clock
        self._frames = Frames(settings, clock)
        self._budget = PageBudget(settings.pagerduty_events_per_minute, time.monotonic)

    async def execute(self, action: ActionRow, loaded: MailRow | None) -> Done:
        """Carry out one action for its stored mail (RetryLater, Refused, WaitFor as values)."""
        if notices.is_notice(action):  # issue 11: rendered when planned, no mail to read
            return await self._notice(action)
        if loaded is None:
            return Done("skipped", note="mail no longer stored")
        incident = self._frames.incident(loaded, action)
        if action.kind == "doubt":
            return await self._doubt(action, incident, loaded.review)
        handler = {
            "page": self._page,
            "alarm": self._alarm,
            "ack": self._ack,
            "reply": self._reply,
            "review": self._review_post,
        }[action.kind]
        return await handler(action, incident)

    async def _notice(self, action: ActionRow) -> Done:
        if action.payload.get("update_of") and self._adapters.slack is not None:
            held = await self._after_first(action, action.kind, int(action.payload["update_of"]))
            if held is not None:
                return held
        if action.kind == "reply":
            frame = notices.MailFrame(
                self._settings.reply_from, self._settings.smtp_hostname, self._clock()
            )
            out = await notices.mail_notice(action, self._adapters.relay, frame)
        else:
            out = await notices.slack_notice(action, self._adapters.slack, loop_store(self._store))
        return Done(out.state, out.result, out.note)

    async def _page(self, action: ActionRow, incident: render.Incident) -> Done:
        if action.payload.get("update_of"):
            return await self._update_page(action, incident, int(action.payload["update_of"]))
        if action.payload.get("storm_of"):
            return await self._storm_page(action, incident, int(action.payload["storm_of"]))
        event = render.pagerduty_event(incident, self._frames.review_url(incident.mail_id))
        done = await self._send_page(event)
        if done.state == "sent" and incident.page != "deferred":  # deferred: waits on purpose
            waited = self._clock() - incident.received_at
            metrics.ACCEPT_TO_PAGE_SECONDS.observe(max(waited.total_seconds(), 0.0))
        return done

    async def _update_page(
        self, action: ActionRow, incident: render.Incident, first_id: int
    ) -> Done:
        """An update (issue 13.5): a trigger under the escalation's dedup key, which PagerDuty
        appends to the open alert."""
        held = await self._onto_open_page(action, first_id)
        if held is not None:
            return held
        url, first_url = (self._frames.review_url(i) for i in (incident.mail_id, first_id))
        return await self._send_page(render.pagerduty_update(incident, url, first_id, first_url))

    async def _storm_page(
        self, action: ActionRow, incident: render.Incident, first_id: int
    ) -> Done:
        """A storm's counter where no alarm thread carries it (on-call-only cover, issue 16):
        a trigger under the storm's dedup key, appended to its open alert like an update."""
        held = await self._onto_open_page(action, first_id)
        if held is not None:
            return held
        url, first_url = (self._frames.review_url(i) for i in (incident.mail_id, first_id))
        count = int(action.payload.get("storm_count") or 0)
        event = render.pagerduty_storm(incident, url, (first_id, first_url), count)
        return await self._send_page(event)

    async def _onto_open_page(self, action: ActionRow, first_id: int) -> Done | None:
        """None when a trigger under escalation `first_id`'s dedup key may go now: never before
        its own page, never re-opening a resolved incident (a trigger after a resolve would open
        a new one); else how the action ends (or WaitFor)."""
        held = await self._after_first(action, "page", first_id)
        if held is not None:
            return held
        state = (await loop_store(self._store).incident_states([first_id])).get(first_id)
        if state is not None and state.status == "resolved":
            return Done("skipped", note=f"escalation {first_id} was resolved first: not re-opened")
        return None

    async def _after_first(self, action: ActionRow, kind: str, first_id: int) -> Done | None:
        """An update's page or thread reply (or a storm's counter page) goes after the
        escalation's own `kind` (its page, alarm post or ack): None to go now; WaitFor while
        that is on its way; skipped when it never went out."""
        own = [a for a in await self._store.mail_actions(first_id) if a.kind == kind]
        first = next((a for a in own if is_own(a.payload) and a.state not in SILENT), None)
        if first is None:
            return Done("skipped", note=f"escalation {first_id} has no {kind} to update")
        if first.state == "pending":
            soon = self._clock() + timedelta(seconds=PAGE_WAIT_SECONDS)
            raise WaitFor(max(first.due_at, soon), f"waiting for escalation {first_id}'s {kind}")
        return None

    async def _send_page(self, event: dict[str, Any]) -> Done:
        """One Events API v2 event, within the routing key's budget (or its dry run)."""
        if self._adapters.pagerduty is None:
            return Done("dry_run", {"event": event})
        wait = self._budget.take()
        if wait > 0:
            metrics.PAGERDUTY_THROTTLED.inc()
            raise RetryLater("held back: PagerDuty's rate limit for the routing key", wait)
        try:
            sent = await self._adapters.pagerduty.send(event)
        except RetryLater as exc:
            if "HTTP 429" in str(exc):
                metrics.PAGERDUTY_THROTTLED.inc()
                self._budget.empty()
            raise
        return Done("sent", {**sent, "summary": event["payload"]["summary"], "payload": event})

    async def _alarm(self, action: ActionRow, incident: render.Incident) -> Done:
        text, blocks = render.slack_alarm(incident, self._frames.review_url(incident.mail_id))
        channel = self._settings.slack_alarm_channel
        # a fallback ("page manually") stands alone where it is seen, not inside a thread
        thread = None if action.payload.get("fallback") else await self._thread_ts(action)
        request = {"channel": channel, "text": text, "blocks": blocks, "thread_ts": thread}
        if self._adapters.slack is None:
            return Done("dry_run", request)
        if thread is None and action.payload.get("storm_of"):  # a storm's counter: in its thread
            raise RetryLater("waiting for the storm's first alarm to be posted")
        posted = await self._slack_once(action, channel, text, blocks, thread_ts=thread)
        return Done("sent", {**posted, "payload": request})

    async def _thread_ts(self, action: ActionRow) -> str | None:
        """A follow-up's alarm joins the thread of the conversation's first alarm, looked up in
        the store so that a restart or another replica finds it too."""
        first = await self._store.alarm_thread(action.dedup_key)
        ts = (first or {}).get("ts")
        return str(ts) if ts else None

    async def _slack_once(
        self, action: ActionRow, channel: str, text: str, blocks: list[Any], **options: Any
    ) -> dict[str, Any]:
        """Post, unless an earlier claim of this action already did and then died unrecorded
        (Slack has no idempotency key: the message metadata carries the action's id)."""
        slack, marker = self._adapters.slack, f"{action.id}"
        assert slack is not None  # callers handle dry run first
        if action.attempts > 1:
            found = await slack.find_posted(channel, marker, action.created_at)
            if found is not None:
                return found
        return await slack.post(channel, text, blocks, marker=marker, **options)

    async def _ack(self, action: ActionRow, incident: render.Incident) -> Done:
        channel = incident.slack_channel
        if not channel:
            return Done("skipped", note="no channel named")
        text, blocks = render.slack_ack(incident)
        patterns = self._settings.ack_channel_patterns
        if self._adapters.slack is None:
            place = ack_place(ChannelFacts(channel, listed=False), patterns)
            dry = {"channel": channel, "text": text, "blocks": blocks, "may_join": place.join}
            return Done("dry_run", dry) if place.post else Done("skipped", note=place.why)
        try:
            place = ack_place(await self._adapters.slack.channel_facts(channel), patterns)
            if not place.post:
                return Done("skipped", note=f"{place.why}; the reply says it")
            posted = await self._slack_once(action, channel, text, blocks, join=place.join)
            payload = {"channel": channel, "text": text, "blocks": blocks}
            return Done("sent", {**posted, "payload": payload})
        except Refused as exc:
            if exc.code not in ACK_UNREACHABLE:
                raise
            return Done("skipped", note=f"cannot post in #{channel}: {exc.code}; the reply says it")

    async def _review_post(self, action: ActionRow, incident: render.Incident) -> Done:
        """A reject held in support hours, posted to the review channel with its page's link."""
        channel = self._settings.slack_review_channel
        if not channel:
            return Done("skipped", note="no review channel configured")
        text, blocks = render.slack_review(incident, self._frames.review_url(incident.mail_id))
        if self._adapters.slack is None:
            return Done("dry_run", {"channel": channel, "text": text, "blocks": blocks})
        posted = await self._adapters.slack.post(channel, text, blocks)
        return Done(
            "sent", {**posted, "payload": {"channel": channel, "text": text, "blocks": blocks}}
        )

    async def _doubt(
        self, action: ActionRow, incident: render.Incident, review: str | None
    ) -> Done:
        """A held reject that may be an incident (issue 15): a post in the alarm channel or a
        low-urgency PagerDuty event, unless a person already released or dismissed the mail
        (`review`, as read with this batch)."""
        if review != "held":
            return Done("skipped", note=f"not needed: the mail was {review or 'not held'} first")
        url = self._frames.review_url(incident.mail_id)
        if action.payload.get("via") == "pagerduty":
            event = render.pagerduty_doubt_event(incident, url)
            if self._adapters.pagerduty is None:
                return Done("dry_run", {"event": event})
            sent = await self._adapters.pagerduty.send(event)
            return Done("sent", {**sent, "summary": event["payload"]["summary"], "payload": event})
        text, blocks = render.slack_doubt(incident, url)
        channel = self._settings.slack_alarm_channel
        request = {"channel": channel, "text": text, "blocks": blocks}
        if self._adapters.slack is None:
            return Done("dry_run", request)
        posted = await self._slack_once(action, channel, text, blocks)
        return Done("sent", {**posted, "payload": request})

    async def _reply(self, action: ActionRow, incident: render.Incident) -> Done:
        to = render.header_address(str(action.payload.get("to") or incident.sender))
        if to is None:
            return Done("skipped", note="no address to reply to")
        failing = await self._page_failing(action, incident)
        guard = await self._reply_guard(action, incident, to)
        if guard is not None:
            return Done("skipped", note=guard)
        build = functools.partial(
            render.reply_message,
            replace(incident, sender=to, page_failing=failing),
            self._frames.template(incident),
            self._frames.envelope(action),
        )
        if self._adapters.relay is None:  # rendering is CPU work (~ms): off the loop
            text = await asyncio.to_thread(lambda: build().as_string())
            return Done("dry_run", {"to": to, "message": text})
        message = await asyncio.to_thread(build)
        sent = await self._adapters.relay.send(message, to)
        text = await asyncio.to_thread(message.as_string)
        payload = {"to": to, "message": text}
        return Done(
            "sent", {"to": to, "message_id": message["Message-ID"], **sent, "payload": payload}
        )

    async def _page_failing(self, action: ActionRow, incident: render.Incident) -> bool:
        """The sender is told "paged" only once PagerDuty accepted the page (issue 14.5). While
        the page is on its way the reply waits (WaitFor); once it failed, or has been failing
        past the retry horizon, the reply says it is not accepted yet."""
        if incident.verdict != "escalate" or incident.page != "now":
            return False
        actions = await self._store.mail_actions(action.mail_id)
        pages = [a for a in actions if a.kind == "page" and not a.payload.get("fallback")]
        if any(a.state in ("sent", "dry_run") for a in pages):
            return False
        if any(a.state == "failed" or self._failing_long(a) or _resolved(a) for a in pages):
            return True
        if not any(a.state == "pending" for a in pages):
            return False  # no page, or skipped (a probe)
        wait = self._clock() + timedelta(seconds=PAGE_WAIT_SECONDS)
        raise WaitFor(wait, "waiting for PagerDuty to accept the page before replying")

    def _failing_long(self, page: ActionRow) -> bool:
        """Pending, failed at least once, and first due longer ago than the retry horizon."""
        first = page.first_due_at or page.due_at
        waited = (self._clock() - first).total_seconds()
        return (
            page.state == "pending"
            and page.last_error is not None
            and (waited > self._settings.retry_horizon_seconds)
        )

    async def _reply_guard(
        self, action: ActionRow, incident: render.Incident, to: str
    ) -> str | None:
        """The reject loop guard and the sender's reply budget (core/replybudget.py): the slot
        is taken in the store before sending (a retry of the same reply keeps it), so a restart
        or a second replica honours it too. None: the reply may go; else why it is skipped."""
        per_hour = self._settings.sender_reply_limit
        claim = reply_claim(incident.verdict, self._clock(), per_hour)
        refused = await self._store.claim_reply_slot(to, action.id, claim)
        return None if refused is None else refusal_note(to, refused)

    async def close(self) -> None:
        if self._adapters.pagerduty is not None:
            await self._adapters.pagerduty.close()
        if self._adapters.slack is not None:
            await self._adapters.slack.close()


def _resolved(page: ActionRow) -> bool:
    """A failing page a person took over on the review page: it was never accepted."""
    return page.state == "skipped" and (page.last_error or "").startswith(RESOLVED)
