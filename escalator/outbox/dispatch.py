"""The outbox executor: claims due actions and carries them out, exactly once in effect.

Split along its jobs (issue 10): this module decides WHEN an action runs and what its outcome
means (claims, leases and heartbeats, page order, retries, the other way to a human);
outbox/deliver.py sends one action (PagerDuty, Slack, relay, dry run); outbox/incident.py
builds what renderers read from the stored decision and facts.

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
So do a thread's notices (its Slack thread replies, in receipt order): the store claims only the
first still pending of each thread, so two never run side by side (claim_due).
A reply to an escalation says "paged" only once PagerDuty accepted the page. Without a routing
key / bot token / relay, an action is recorded as "dry_run" with the exact payload it would
have sent.

No waits on the page path (issue 12): a decision's due pages are claimed in the commit that records
it (store.record_decision_paging) and handed here (`page_now`) as that commit is queued: sent at
once, while it runs, beside whatever else runs, with no wake, poll, claim or read in between; their
outcome is recorded under the rows it claimed (negative stand-in ids until then: `_stored`), in the
next group commit. A decision not recorded here (the store failed, another replica decided the mail
first) records nothing: the mail is decided again and its page sent again under the same dedup_key,
which PagerDuty folds. The outbox's own claims hand out pages before other kinds and each sender's
oldest before anyone's second (a storm cannot starve other reporters). Pages run side by side on a
bounded pool, one lane per sender across batches (a sender's pages keep their order) over one
keep-alive HTTPS pool; a reply of a mail whose page is in flight here waits for its outcome (it
says "paged" only after the 202); and PagerDuty's rate limit (ESCALATOR_PAGERDUTY_EVENTS_PER_MINUTE
per routing key) is kept by deliver.py, so a burst is retried later instead of answered 429 (a 429
empties the budget too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from escalator import metrics
from escalator.core.actions import PlannedAction
from escalator.core.retry import Backoff, GiveUp, Refused, RetryLater, next_step
from escalator.errors import StoreUnavailable
from escalator.outbox.deliver import RESOLVED as RESOLVED
from escalator.outbox.deliver import Adapters as Adapters
from escalator.outbox.deliver import Deliverer, Done, WaitFor
from escalator.settings import Settings
from escalator.store import ActionRow, MailRow, PagesClaimed, PagesDue, Store, claim_order

log = logging.getLogger(__name__)

LEASE_SECONDS = 5.0  # a dead replica's claims are free again this long after its last heartbeat
HEARTBEAT_SECONDS = 1.5
PERSISTENT_KINDS = frozenset({"page", "alarm"})  # never given up: they are what reaches a person
PAGE_POOL = 8  # pages in flight at once (PagerDuty pool: escalator.outbox.pagerduty.POOL_SIZE)


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
        self._clock = clock or (lambda: datetime.now(UTC))
        self._deliver = Deliverer(
            store, settings, adapters or Adapters.from_settings(settings), self._clock
        )
        self._draw = draw
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._policy = Backoff(horizon=settings.retry_horizon_seconds)
        self._gate = _PageGate()
        self._wake = asyncio.Event()
        self._stopping = False
        self._held: set[int] = set()  # claimed by this dispatcher and not yet settled
        self._started: set[int] = set()  # of those, the ones whose run began
        self._pool = asyncio.Semaphore(PAGE_POOL)
        self._lanes: dict[str, tuple[asyncio.Lock, int]] = {}  # per sender: lock, users
        self._paging: dict[int, asyncio.Event] = {}  # mail id -> its page run in flight here
        self._handed: set[asyncio.Task[None]] = set()  # page_now's runs
        self._due: dict[int, PagesDue] = {}  # a handed page's stand-in id -> its decision
        self.done = 0

    def wake(self) -> None:
        """Something may be due now (a mail was accepted or decided): look without waiting."""
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; `run()` returns once the started actions are recorded and the
        unstarted claims handed back."""
        self._stopping = True
        self._wake.set()

    def page_lease(self) -> tuple[datetime, datetime] | None:
        """For the page path: now and the end of a fresh lease, by this dispatcher's clock;
        None once stopping (then decisions claim no pages: they are left to the outbox)."""
        if self._stopping:
            return None
        now = self._clock()
        return now, now + timedelta(seconds=self._lease)

    def page_now(self, due: list[PagesDue]) -> None:
        """The page path (issue 12): these decisions' commits, which claim their due pages
        (store.record_decision_paging), were just queued; send the pages now, beside whatever
        else runs, with no wake, claim or read of their own."""
        for one in due:  # from now on, their replies wait for the outcome
            self._paging.setdefault(one.mail.id, asyncio.Event())
            self._due.update((page.id, one) for page in one.pages)
        task = asyncio.ensure_future(self._page_due(due))
        self._handed.add(task)
        task.add_done_callback(self._handed.discard)

    async def _page_due(self, due: list[PagesDue]) -> None:
        pages = sorted((page for one in due for page in one.pages), key=claim_order)
        try:
            await self._run_leased(pages, {one.mail.id: one.mail for one in due})
        except StoreUnavailable as exc:  # their leases run out and a burst takes them
            metrics.STORE_ERRORS.inc()
            log.warning("dispatch: store unavailable on the page path: %s", exc)
        finally:
            for one in due:
                self._paging.pop(one.mail.id, asyncio.Event()).set()
                for page in one.pages:
                    self._due.pop(page.id, None)

    async def _stored(self, action: ActionRow) -> ActionRow | None:
        """The stored row of an action: a handed page's, once its decision's commit claimed it
        (None: that decision was not recorded here; see the module docstring)."""
        due = self._due.get(action.id)
        if due is None:
            return action
        commit = due.claimed
        await asyncio.wait([commit])  # its failure is the decider's to report, not raised here
        failed = commit.cancelled() or commit.exception() is not None
        return claimed_row(due, action, None if failed else commit.result())

    async def _stored_ids(self, ids: set[int]) -> tuple[int, ...]:
        found = [await self._stored_id(i) for i in sorted(ids)]
        return tuple(sorted(i for i in found if i is not None))

    async def _stored_id(self, action_id: int) -> int | None:
        due = self._due.get(action_id)
        if due is None:
            return action_id
        page = next(p for p in due.pages if p.id == action_id)
        stored = await self._stored(page)
        return None if stored is None else stored.id

    async def run(self) -> None:
        """Serve until stop(): a burst at least every poll_seconds, and at once after a wake;
        then wait for the page path's runs (they record what they started)."""
        while not self._stopping:
            self._wake.clear()
            await self._burst_logged()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
        await self.paged()

    async def paged(self) -> None:
        """Return once the page path's runs handed so far are recorded."""
        while self._handed:
            await asyncio.gather(*self._handed, return_exceptions=True)

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

    async def _run_leased(
        self, batch: list[ActionRow], mails: dict[int, MailRow] | None = None
    ) -> None:
        """Run a claimed batch with a heartbeat renewing its leases; what a stop left unstarted
        is handed back. Batches run side by side (the bursts and the page path's). `mails`:
        the batch's mails as already read (else they are read here)."""
        ids = {action.id for action in batch}
        self._held.update(ids)
        beat = asyncio.ensure_future(self._heartbeat(ids))
        try:
            if mails is None:
                mails = await self._load({action.mail_id for action in batch})
            await self._run_batch(batch, mails)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            await self._release_held(ids)

    async def _heartbeat(self, ids: set[int]) -> None:
        """Every HEARTBEAT_SECONDS, extend the lease of what this batch still holds."""
        while True:
            await asyncio.sleep(min(HEARTBEAT_SECONDS, self._lease / 3))
            until = self._clock() + timedelta(seconds=self._lease)
            try:
                await self._store.renew_claims(await self._stored_ids(ids & self._held), until)
            except StoreUnavailable as exc:
                log.warning("dispatch: lease renewal failed: %s", exc)

    async def _release_held(self, ids: set[int]) -> None:
        """Hand back this batch's claims never started (a stop, or a batch cut short)."""
        held = {i for i in ids & self._held if i not in self._started}
        self._held.difference_update(held)
        if held:
            with contextlib.suppress(StoreUnavailable):  # the short lease frees them anyway
                released = await self._store.release_claims(await self._stored_ids(held))
                log.info("dispatch: handed back %d claimed actions", released)

    async def _run_batch(self, batch: list[ActionRow], mails: dict[int, MailRow]) -> None:
        """Pages first, side by side on the bounded pool, one lane per sender (claimed fairly:
        one per sender in turn); then the other kinds side by side (a reply says "paged" only
        once the page was accepted: it waits for a page of its mail in flight here). Each mail
        is read once per batch, however many of its actions it holds."""
        pages = [action for action in batch if action.kind == "page"]
        others = [action for action in batch if action.kind != "page"]
        await self._run_pages(pages, mails)
        await asyncio.gather(*(self._run_after_page(a, mails) for a in others))

    async def _run_after_page(self, action: ActionRow, mails: dict[int, MailRow]) -> None:
        paging = self._paging.get(action.mail_id)
        if paging is not None:
            await paging.wait()
        await self._run(action, mails)

    async def _load(self, mail_ids: set[int]) -> dict[int, MailRow]:
        """The mails with their decisions and facts as the decide worker stored them (the
        conversation's words included): nothing is parsed here, so the raw bytes stay in the
        store (a 10 MiB mail's would be read twice over for every action batch)."""
        ids = sorted(mail_ids)
        rows = await asyncio.gather(
            *(self._store.get_mail(mail_id, with_raw=False) for mail_id in ids)
        )
        return {row.id: row for row in rows if row is not None}

    async def _run_pages(self, pages: list[ActionRow], mails: dict[int, MailRow]) -> None:
        """One lane per sender: a sender's pages leave in order, senders side by side."""
        lanes: dict[str, list[ActionRow]] = {}
        for action in pages:
            lanes.setdefault(str(action.payload.get("from_addr") or ""), []).append(action)
        for action in pages:
            self._paging.setdefault(action.mail_id, asyncio.Event())
        try:
            await asyncio.gather(*(self._run_lane(s, lane, mails) for s, lane in lanes.items()))
        finally:
            for action in pages:
                self._paging.pop(action.mail_id, asyncio.Event()).set()

    async def _run_lane(
        self, sender: str, lane: list[ActionRow], mails: dict[int, MailRow]
    ) -> None:
        """A sender's lane is one across batches too (a lock per sender, first come first)."""
        lock, users = self._lanes.get(sender, (asyncio.Lock(), 0))
        self._lanes[sender] = (lock, users + 1)
        try:
            async with lock:
                for action in lane:
                    if self._stopping:
                        return  # the rest are handed back by _run_leased
                    await self._run_gated(action, mails)
        finally:
            lock, users = self._lanes[sender]
            if users > 1:
                self._lanes[sender] = (lock, users - 1)
            else:
                del self._lanes[sender]

    async def _run_gated(self, action: ActionRow, mails: dict[int, MailRow]) -> None:
        gate = self._gate.until
        if gate is not None and self._clock() < gate:
            await self._hold(action, gate)
            return
        if gate is not None:
            self._gate = _PageGate()
        async with self._pool:  # a page waits only for a free slot in the pool
            await self._run(action, mails)

    async def _hold(self, action: ActionRow, gate: datetime) -> None:
        """Keep a page behind the failing one, preserving the claim order."""
        self._gate.held += 1
        due = gate + timedelta(microseconds=self._gate.held)
        stored = await self._stored(action)
        if stored is not None:
            await self._store.retry_action(stored.id, due, "waiting behind an earlier page")
        self._held.discard(action.id)

    async def _run(self, action: ActionRow, mails: dict[int, MailRow]) -> None:
        """Run one action and record its outcome. Once started it is not cancelled by a stop
        (shielded): the outcome, such as PagerDuty's 202, is recorded before the process ends."""
        await asyncio.shield(self._run_recorded(action, mails))

    async def _run_recorded(self, action: ActionRow, mails: dict[int, MailRow]) -> None:
        self._started.add(action.id)
        try:
            await self._attempt(action, mails)
        finally:
            self._held.discard(action.id)
            self._started.discard(action.id)

    async def _attempt(self, action: ActionRow, mails: dict[int, MailRow]) -> None:
        """Carry the action out, then record the outcome under its stored row."""
        outcome = await self._execute(action, mails.get(action.mail_id))
        stored = await self._stored(action)
        if stored is None:
            unrecorded(action, outcome)
        else:
            await self._settle(stored, outcome)

    async def _execute(self, action: ActionRow, mail: MailRow | None) -> Done | Exception:
        try:
            return await self._deliver.execute(action, mail)
        except StoreUnavailable:
            raise
        except Exception as exc:  # every outcome is a value, settled by _settle
            if not isinstance(exc, WaitFor | RetryLater | Refused):
                log.exception("dispatch: action %d (%s) raised", action.id, action.kind)
            return exc

    async def _settle(self, action: ActionRow, outcome: Done | Exception) -> None:
        if isinstance(outcome, WaitFor):
            await self._store.retry_action(action.id, outcome.due, str(outcome))
        elif isinstance(outcome, RetryLater):
            await self._retry_or_give_up(action, str(outcome), outcome.retry_after)
        elif isinstance(outcome, Refused):
            await self._fail(action, str(outcome))
        elif isinstance(outcome, Exception):  # a bug must not lose the action: retry, escalate
            await self._retry_or_give_up(action, f"internal error: {outcome!r}", None)
        else:
            await self._finish(action, outcome)

    async def _finish(self, action: ActionRow, done: Done) -> None:
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

    async def close(self) -> None:
        await self._deliver.close()


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


def unrecorded(action: ActionRow, outcome: Done | Exception) -> None:
    """A handed page whose decision was not recorded here: said in the log (never its payload).
    The mail is decided again (the store failed) or was decided elsewhere, and paged under the
    same dedup_key; or its decision was refused, and it is held for review with the error."""
    state = outcome.state if isinstance(outcome, Done) else type(outcome).__name__
    log.warning(
        "dispatch: page of mail %d (%s) went out while its decision committed, which recorded "
        "nothing (decided elsewhere; or decided again, same dedup_key; or held for review)",
        action.mail_id,
        state,
        extra={"mail_id": action.mail_id, "kind": action.kind, "state": state},
    )


def claimed_row(due: PagesDue, page: ActionRow, claimed: object) -> ActionRow | None:
    """The stored row the commit claimed for a handed page: the same place among the mail's
    claimed pages (both in insertion order) under the same dedup_key; None when not claimed."""
    if not isinstance(claimed, PagesClaimed):
        return None
    rows = sorted(claimed.pages, key=lambda row: row.id)
    index = due.pages.index(page)
    if len(rows) != len(due.pages) or rows[index].dedup_key != page.dedup_key:
        return None
    return rows[index]


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
