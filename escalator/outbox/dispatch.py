"""The outbox executor: claims due actions and carries them out, exactly once in effect.

Each claim is a SHORT lease in the store (LEASE_SECONDS), renewed by a heartbeat while the batch
runs, so two dispatchers never run one action at the same time, and a dispatcher killed
mid-action leaves it to another replica within seconds. PagerDuty deduplicates on the
conversation's dedup_key, so a page re-sent after such a crash updates the same incident.

A clean stop (`stop()`, on SIGTERM) claims nothing more, finishes the actions already started
and records their outcome (PagerDuty's 202 included), and hands the claimed but unstarted ones
back at once (issue 14.3).

Failures become values (escalator.core.retry): retry with backoff and jitter, no sooner than
Retry-After, until the horizon. Then a reply or an acknowledgement fails; a page or an alarm
never does (issue 14.5): a human is told the other way once (page failing -> Slack alarm "page
manually"; alarm failing -> a page that says Slack failed) and the action goes on at a slower
cadence until delivered. When an action of a kind is delivered, the others of that kind waiting
for a retry become due at once, and are claimed oldest first (by first due time).

Pages leave in order: once a page fails, later pages wait behind it rather than overtake it.
A reply to an escalation says "paged" only once PagerDuty accepted the page. Without a routing
key / bot token / relay, an action is recorded as "dry_run" with the exact payload it would
have sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from escalator import metrics
from escalator.core import render
from escalator.core.ackplace import ChannelFacts, ack_place
from escalator.core.actions import PlannedAction
from escalator.core.facts import MailFacts
from escalator.core.record import DecisionRecord
from escalator.core.retry import Backoff, GiveUp, Refused, RetryLater, next_step
from escalator.errors import StoreUnavailable
from escalator.outbox import notices
from escalator.outbox.pagerduty import PagerDuty
from escalator.outbox.relay import Relay, load_template, parse_relay_url
from escalator.outbox.slack import CHANNEL_GONE, Slack
from escalator.policy import load_calendar
from escalator.settings import Settings
from escalator.store import ActionRow, MailRow, Store
from escalator.store.loop import loop_store

log = logging.getLogger(__name__)

REPLY_GUARD = timedelta(minutes=10)
LEASE_SECONDS = 5.0  # a dead replica's claims are free again this long after its last heartbeat
HEARTBEAT_SECONDS = 1.5
PERSISTENT_KINDS = frozenset({"page", "alarm"})  # never given up: they are what reaches a person
PAGE_WAIT_SECONDS = 2.0  # a reply waits this long (again) for its page's outcome
RESOLVED = "resolved on the review page"  # a failing page a person took over (review/onit.py)
EAGER_LOOKS, EAGER_STEP = 40, 0.005  # after a wake: look every 5 ms for up to 200 ms
ACK_UNREACHABLE = CHANNEL_GONE | {"method_not_supported_for_channel_type"}
NO_FACTS = MailFacts()  # a mail whose text is gone (retention) or was never readable
NO_DECISION = DecisionRecord({})
TEMPLATES = {"escalate": "reply_escalated.txt.j2", "reject": "reply_rejected.txt.j2"}


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


@dataclass
class _PageGate:
    """Head-of-line blocking for pages: while one waits for a retry, later ones wait too."""

    until: datetime | None = None
    held: int = field(default=0)


class Dispatcher:
    """`run()` serves forever; `burst()` runs until nothing is due now, then returns."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        adapters: Adapters | None = None,
        clock: Callable[[], datetime] | None = None,
        draw: Callable[[], float] = random.random,
        batch_size: int = 16,
        lease_seconds: float = LEASE_SECONDS,
        poll_seconds: float = 0.5,
    ) -> None:
        self._store = store
        self._settings = settings
        self._adapters = adapters or Adapters.from_settings(settings)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._draw = draw
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._policy = Backoff(horizon=settings.retry_horizon_seconds)
        self._zone = ZoneInfo(settings.timezone)
        self._calendar = load_calendar(settings)
        self._templates = {verdict: load_template(name) for verdict, name in TEMPLATES.items()}
        self._gate = _PageGate()
        self._wake = asyncio.Event()
        self._stopping = False
        self._held: set[int] = set()  # claimed by this dispatcher and not yet settled
        self._unstarted: set[int] = set()  # of those, the ones not started yet
        self.done = 0

    def wake(self) -> None:
        """Something may be due now (a mail was accepted or decided): look without waiting."""
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; `run()` returns once the started actions are recorded and the
        unstarted claims handed back."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Serve until stop(): a burst at least every poll_seconds, and at once after a wake."""
        while not self._stopping:
            self._wake.clear()
            await self._burst_logged()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
                await self._eager()

    async def _eager(self) -> None:
        """A wake may come at accept, before the decision is written: look a few times quickly."""
        for _ in range(EAGER_LOOKS):
            if self._stopping or await self._burst_logged():
                return
            await asyncio.sleep(EAGER_STEP)

    async def _burst_logged(self) -> int:
        try:
            return await self.burst()
        except StoreUnavailable as exc:
            metrics.STORE_ERRORS.inc()
            log.warning("dispatch: store unavailable, retrying later: %s", exc)
            return 0

    async def burst(self) -> int:
        """Claim and run batches until none is due; return how many actions ran."""
        ran = 0
        while not self._stopping and (
            batch := await self._store.claim_due_actions(
                self._clock(), self._batch_size, self._lease
            )
        ):
            await self._run_leased(batch)
            ran += len(batch)
        self.done += ran
        return ran

    async def _run_leased(self, batch: list[ActionRow]) -> None:
        """Run a claimed batch with a heartbeat renewing its leases; what a stop left unstarted
        is handed back."""
        self._held.update(action.id for action in batch)
        self._unstarted.update(action.id for action in batch)
        beat = asyncio.ensure_future(self._heartbeat())
        try:
            await self._run_batch(batch)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            await self._release_held()

    async def _heartbeat(self) -> None:
        """Every HEARTBEAT_SECONDS, extend the lease of what this dispatcher still holds."""
        while True:
            await asyncio.sleep(min(HEARTBEAT_SECONDS, self._lease / 3))
            until = self._clock() + timedelta(seconds=self._lease)
            try:
                await self._store.renew_claims(tuple(sorted(self._held)), until)
            except StoreUnavailable as exc:
                log.warning("dispatch: lease renewal failed: %s", exc)

    async def _release_held(self) -> None:
        """Hand back claims never started (a stop, or a batch cut short by an error)."""
        held, self._unstarted = tuple(sorted(self._unstarted)), set()
        self._held.difference_update(held)
        if held:
            with contextlib.suppress(StoreUnavailable):  # the short lease frees them anyway
                released = await self._store.release_claims(held)
                log.info("dispatch: handed back %d claimed actions", released)

    async def _run_batch(self, batch: list[ActionRow]) -> None:
        """Pages first, one by one in claim order; then the other kinds side by side. A page is
        what wakes someone up: it must not share the CPU with rendering replies and alarms.
        Each mail is read once per batch, however many of its actions it holds."""
        mails = await self._load({action.mail_id for action in batch})
        pages = [action for action in batch if action.kind == "page"]
        others = [action for action in batch if action.kind != "page"]
        await self._run_pages(pages, mails)
        await asyncio.gather(*(self._run(a, mails) for a in others))

    async def _load(self, mail_ids: set[int]) -> dict[int, MailRow]:
        """The mails with their decisions and facts as the decide worker stored them (the
        conversation's words included): nothing is parsed here."""
        ids = sorted(mail_ids)
        rows = await asyncio.gather(*(self._store.get_mail(mail_id) for mail_id in ids))
        return {row.id: row for row in rows if row is not None}

    async def _run_pages(self, pages: list[ActionRow], mails: dict[int, MailRow]) -> None:
        for action in pages:
            if self._stopping:
                return  # the rest are handed back by _run_leased
            gate = self._gate.until
            if gate is not None and self._clock() < gate:
                await self._hold(action, gate)
            else:
                self._gate = _PageGate()
                await self._run(action, mails)

    async def _hold(self, action: ActionRow, gate: datetime) -> None:
        """Keep a page behind the failing one, preserving the claim order."""
        self._gate.held += 1
        due = gate + timedelta(microseconds=self._gate.held)
        await self._store.retry_action(action.id, due, "waiting behind an earlier page")
        self._held.discard(action.id)
        self._unstarted.discard(action.id)

    async def _run(self, action: ActionRow, mails: dict[int, MailRow]) -> None:
        """Run one action and record its outcome. Once started it is not cancelled by a stop
        (shielded): the outcome, such as PagerDuty's 202, is recorded before the process ends."""
        await asyncio.shield(self._run_recorded(action, mails))

    async def _run_recorded(self, action: ActionRow, mails: dict[int, MailRow]) -> None:
        self._unstarted.discard(action.id)
        try:
            await self._attempt(action, mails)
        finally:
            self._held.discard(action.id)

    async def _attempt(self, action: ActionRow, mails: dict[int, MailRow]) -> None:
        try:
            done = await self._execute(action, mails.get(action.mail_id))
        except WaitFor as exc:
            await self._store.retry_action(action.id, exc.due, str(exc))
        except RetryLater as exc:
            await self._retry_or_give_up(action, str(exc), exc.retry_after)
        except Refused as exc:
            await self._fail(action, str(exc))
        except StoreUnavailable:
            raise
        except Exception as exc:  # a bug must not lose the action: retry, then escalate
            log.exception("dispatch: action %d (%s) raised", action.id, action.kind)
            await self._retry_or_give_up(action, f"internal error: {exc!r}", None)
        else:
            await self._store.finish_action(action.id, done.state, done.note, done.result)
            finished(action, done.state)
            if done.state == "sent" and action.kind in PERSISTENT_KINDS:
                await self._hurry(action.kind)

    async def _hurry(self, kind: str) -> None:
        """A delivery of `kind` went through: the others of that kind waiting for a retry go now,
        oldest first (the claim order); the page gate opens."""
        if kind == "page":
            self._gate = _PageGate()
        if await self._store.hurry_retries(kind, self._clock()):
            self.wake()

    async def _retry_or_give_up(
        self, action: ActionRow, error: str, retry_after: float | None
    ) -> None:
        step = next_step(
            self._policy,
            attempts=action.attempts,
            last_error=action.last_error,
            now=self._clock(),
            error=error,
            retry_after=retry_after,
            draw=self._draw(),
            persistent=action.kind in PERSISTENT_KINDS,
        )
        if isinstance(step, GiveUp):
            await self._fail(action, step.error)
            return
        if action.kind == "page":
            self._gate = _PageGate(until=step.due_at)
        await self._store.retry_action(action.id, step.due_at, step.error)
        metrics.ACTION_RETRIES.labels(kind=action.kind).inc()
        if step.crossed:
            await self._tell_other_way(action, step.error)

    async def _tell_other_way(self, action: ActionRow, error: str) -> None:
        """Past the horizon, still undelivered: a human is told by the other route, once; the
        action itself goes on being retried."""
        kind, action_id = action.kind, action.id
        log.error("dispatch: %s action %d failing past the horizon: %s", kind, action_id, error)
        fallback = fallback_action(action, error, self._clock())
        if fallback is not None:
            await self._store.add_actions(action.mail_id, (fallback,))

    async def _fail(self, action: ActionRow, error: str) -> None:
        """Record the failure, then tell a human by the other route."""
        log.error("dispatch: %s action %d failed: %s", action.kind, action.id, error)
        await self._store.finish_action(action.id, "failed", error)
        finished(action, "failed")
        fallback = fallback_action(action, error, self._clock())
        if fallback is not None:
            await self._store.add_actions(action.mail_id, (fallback,))

    # -- the four kinds ----------------------------------------------------------------------

    async def _execute(self, action: ActionRow, loaded: MailRow | None) -> Done:
        if notices.is_notice(action):  # issue 11: rendered when planned, no mail to read
            return await self._notice(action)
        if loaded is None:
            return Done("skipped", note="mail no longer stored")
        incident = self._incident(loaded, action)
        handler = {
            "page": self._page,
            "alarm": self._alarm,
            "ack": self._ack,
            "reply": self._reply,
            "review": self._review_post,
        }[action.kind]
        return await handler(action, incident)

    async def _notice(self, action: ActionRow) -> Done:
        if action.kind == "reply":
            frame = notices.MailFrame(
                self._settings.reply_from, self._settings.smtp_hostname, self._clock()
            )
            out = await notices.mail_notice(action, self._adapters.relay, frame)
        else:
            out = await notices.slack_notice(action, self._adapters.slack, loop_store(self._store))
        return Done(out.state, out.result, out.note)

    async def _page(self, action: ActionRow, incident: render.Incident) -> Done:
        event = render.pagerduty_event(incident, self._review_url(incident))
        if self._adapters.pagerduty is None:
            return Done("dry_run", {"event": event})
        sent = await self._adapters.pagerduty.send(event)
        if incident.page != "deferred":  # a deferred page waits for on-call on purpose
            waited = self._clock() - incident.received_at
            metrics.ACCEPT_TO_PAGE_SECONDS.observe(max(waited.total_seconds(), 0.0))
        return Done("sent", {**sent, "summary": event["payload"]["summary"], "payload": event})

    async def _alarm(self, action: ActionRow, incident: render.Incident) -> Done:
        text, blocks = render.slack_alarm(incident, self._review_url(incident))
        channel = self._settings.slack_alarm_channel
        # a fallback ("page manually") stands alone where it is seen, not inside a thread
        thread = None if action.payload.get("fallback") else await self._thread_ts(action)
        request = {"channel": channel, "text": text, "blocks": blocks, "thread_ts": thread}
        if self._adapters.slack is None:
            return Done("dry_run", request)
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
        text, blocks = render.slack_review(incident, self._review_url(incident))
        if self._adapters.slack is None:
            return Done("dry_run", {"channel": channel, "text": text, "blocks": blocks})
        posted = await self._adapters.slack.post(channel, text, blocks)
        return Done(
            "sent", {**posted, "payload": {"channel": channel, "text": text, "blocks": blocks}}
        )

    async def _reply(self, action: ActionRow, incident: render.Incident) -> Done:
        to = render.header_address(str(action.payload.get("to") or incident.sender))
        if to is None:
            return Done("skipped", note="no address to reply to")
        failing = await self._page_failing(action, incident)
        guard = await self._loop_guard(action, incident, to)
        if guard is not None:
            return Done("skipped", note=guard)
        build = functools.partial(
            render.reply_message,
            replace(incident, sender=to, page_failing=failing),
            self._template(incident),
            self._envelope(action),
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

    async def _loop_guard(
        self, action: ActionRow, incident: render.Incident, to: str
    ) -> str | None:
        """At most one reject reply per sender per 10 minutes, so two robots cannot loop. The
        slot is taken in the store before sending (a retry of the same reply keeps it), so a
        restart or a second replica honours it too."""
        if incident.verdict != "reject":
            return None
        now = self._clock()
        taken = await self._store.claim_reply_slot(to, action.id, now, now - REPLY_GUARD)
        if taken is None:
            return None
        return f"loop guard: {to} already had a reply at {taken.isoformat(timespec='seconds')}"

    # -- building the incident ---------------------------------------------------------------

    def _incident(self, mail: MailRow, action: ActionRow) -> render.Incident:
        decision, facts = mail.decision or NO_DECISION, mail.facts or NO_FACTS
        page_at = decision.page_at
        return render.Incident(
            mail_id=mail.id,
            received_at=mail.received_at.astimezone(self._zone),
            sender=facts.from_addr or mail.from_addr,
            sender_name=facts.from_name,
            subject=facts.subject or mail.subject,
            message_id=facts.message_id,
            references=facts.references,
            facts=facts.facts,
            verdict=mail.verdict or "reject",
            reasons=mail.reasons,
            slack_channel=mail.slack_channel,
            window=mail.window or "unknown",
            # a page planned later (issue 11: an unanswered alarm) says so in its payload
            page=str(action.payload.get("page") or decision.page),
            page_at=page_at.astimezone(self._zone) if page_at else None,
            alarm=decision.alarm,
            dedup_key=render.bounded_dedup_key(action.dedup_key),
            notes=tuple(str(note) for note in action.payload.get("notes", ())),
            evidence=tuple(dict(item) for item in decision.evidence),
            support_from=self._calendar.next_support_start(mail.received_at),
            status_page_url=self._settings.status_page_url,
            zone=self._zone,
        )

    def _template(self, incident: render.Incident) -> str:
        return self._templates["escalate" if incident.verdict == "escalate" else "reject"]

    def _envelope(self, action: ActionRow) -> render.Envelope:
        """A Message-ID fixed per action, so a reply re-sent after a crash is recognisably one."""
        return render.Envelope(
            reply_from=self._settings.reply_from,
            message_id=f"<reply-{action.id}.{action.mail_id}@{self._settings.smtp_hostname}>",
            date=self._clock(),
            review_url=f"{self._settings.public_url.rstrip('/')}/mails/{action.mail_id}",
        )

    def _review_url(self, incident: render.Incident) -> str:
        return f"{self._settings.public_url.rstrip('/')}/mails/{incident.mail_id}"

    async def close(self) -> None:
        if self._adapters.pagerduty is not None:
            self._adapters.pagerduty.close()
        if self._adapters.slack is not None:
            await self._adapters.slack.close()


def _resolved(page: ActionRow) -> bool:
    """A failing page a person took over on the review page: it was never accepted."""
    return page.state == "skipped" and (page.last_error or "").startswith(RESOLVED)


def finished(action: ActionRow, state: str) -> None:
    """Count and log one finished action: ids, kind and state, never its payload."""
    metrics.ACTIONS.labels(kind=action.kind, outcome=state).inc()
    log.info(
        "action %d (%s) of mail %d: %s",
        action.id,
        action.kind,
        action.mail_id,
        state,
        extra={
            "action_id": action.id,
            "mail_id": action.mail_id,
            "kind": action.kind,
            "state": state,
        },
    )


def fallback_action(action: ActionRow, error: str, now: datetime) -> PlannedAction | None:
    """The other route to a human when a page or an alarm could not be delivered."""
    if action.payload.get("fallback") or action.payload.get("notice"):
        return None  # a failed fallback or notice (issue 11) is logged and shown, not chased
    thread = str(action.payload.get("thread") or action.dedup_key)
    if action.kind == "page":
        note = f"PagerDuty page FAILING, page on-call manually (escalator keeps trying): {error}"
        return _fallback("alarm", f"alarm:{thread}", action, note, now)
    if action.kind == "alarm":
        note = f"Slack alarm to support FAILING (escalator keeps trying): {error}"
        return _fallback("page", thread, action, note, now)
    return None


def _fallback(kind: str, key: str, action: ActionRow, note: str, now: datetime) -> PlannedAction:
    notes = [*action.payload.get("notes", ()), note]
    payload = {**action.payload, "notes": notes, "fallback": action.id, "page_at": None}
    return PlannedAction(kind, now, key, payload)
