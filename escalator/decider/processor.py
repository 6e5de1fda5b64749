"""The decide worker: every accepted mail gets exactly one decision and its planned actions.

It wakes on an asyncio.Event the SMTP handler sets after each accept (no polling delay on the
hot path), with a slow poll as a safety net, and on start it decides whatever a crash left
undecided. The decision and its outbox rows are written in one transaction that only applies
while the mail is still undecided, so a crash, a restart or two workers never decide twice.

ISOLATION: by default decisions run in child processes ("lanes": one per core, at most 4, niced
so accepting comes first). Parsing is CPU work; in a thread it would hold the GIL against the
event loop and every SMTP reply would wait behind it (measured: accept rates fell to a tenth).
In processes it uses the other cores, and a mail that crashes the parser kills only its lane's
child: that mail is held for review and a fresh child takes the next one. A lane is a child on
a pipe the event loop reads itself (decider/lanes.py: no helper threads on a page's path).

THE PAGE PATH (issue 12): as a mail's commit starts (the SMTP door is `Foreseeing`), an idle
lane reads it: parses it and decides it on its own words, which needs neither its id nor the
store; once it is stored, the worker finishes that decision in the same lane (its actions, its
joins) instead of starting from the bytes. With a PageHandoff, a decision's due pages are
claimed in the very commit that records it, and handed to the dispatcher as that commit is
queued: the page leaves while the decision commits (see PageHandoff for why that is safe), and
its outcome is recorded under the row the commit claimed.

THE INSTANT: a mail is decided at the time it was RECEIVED, not when the worker gets to it, so
a restart or a backlog never changes its routing, and `escalator check --at <received_at>`
reproduces it. A consequence: after an outage, a page may be due in the past (a deferred
page_at of 07:00 decided at 09:00, or a "now" page from last night). That is deliberate: due
times say "not before"; the dispatcher sends anything overdue at once, so the page goes out as
soon as the service is back, and never earlier than the cover calendar allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from escalator import memory, metrics
from escalator.core.actions import PlannedAction, plan_actions
from escalator.core.conversation import (
    Conversation,
    Said,
    decide_conversation,
    may_complete,
    thread_parents,
)
from escalator.core.facts import MailFacts
from escalator.core.mail import ParsedMail, parse_mail
from escalator.core.model import Decision, Reason, SenderPolicy
from escalator.core.policy import Policy
from escalator.core.record import DecisionRecord
from escalator.decider import dkimcheck
from escalator.decider.dkimcheck import Verifier
from escalator.decider.facts import read_facts
from escalator.decider.lanes import Lane, LaneDied, ProcessLane, ThreadLane
from escalator.errors import StoreUnavailable, TransientError
from escalator.oncall.joining import JoinWindows, join_batch, joining_of, update_of
from escalator.policy import load_policy
from escalator.probe import is_probe
from escalator.settings import Settings
from escalator.store import Accepted, IncomingMail, MailRow, PagesClaimed, PagesDue, Store
from escalator.store.actions import due_pages, is_due_page
from escalator.store.mails import as_decided

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageHandoff:
    """Where pages go the moment their decision is known (issue 12): the pages due by
    `lease()`'s now are claimed, until its lease end, in the commit that records the decision
    (None: the receiver takes no pages now); `run(due)` (the dispatcher's page_now) is handed
    them as that commit is queued, and sends them while it runs, recording their outcome under
    the rows it claimed. Safe to send before the commit: the mail itself is stored (decisions
    are made of stored mails only), and a decision that is then not recorded leaves the mail
    undecided, to be decided again and paged again under the same dedup_key (the thread's
    root: its Message-ID/References, else its mail id), which PagerDuty folds."""

    run: Callable[[list[PagesDue]], None]
    lease: Callable[[], tuple[datetime, datetime] | None]


class Outcome(NamedTuple):
    """What deciding one mail produced: stored together, in one transaction."""

    record: DecisionRecord
    planned: tuple[PlannedAction, ...]
    facts: MailFacts | None = None


DECIDE_NICENESS = 10
DECIDE_BYTE_BUDGET = 8 * 1024 * 1024  # raw bytes of one batch in this process (one mail passes)
LARGE_MAIL_BYTES = 1024 * 1024  # after deciding one, memory is handed back (_settle_memory)
PROBE_NOTE = "probe: never dispatched"
POSTMASTER_NOTE = "postmaster@: kept for review, never escalated"
TAKEOVER_GRACE = 1.0  # seconds another replica has to decide the mail it accepted
FORESEE_BYTES = 256 * 1024  # larger mails are read once, after their commit
FORESEEN_KEPT = 16  # readings a decide child keeps for mails not decided yet


def decide_stored(
    mail: MailRow,
    policy: Policy,
    probe_key: bytes | None = None,
    earlier: tuple[MailRow, ...] = (),
    verify: Verifier | None = None,
    reading: Reading | None = None,
) -> Outcome:
    """The decision record and planned actions for one stored mail, at its received time: the
    one parse of this mail, whose facts (core/facts.py) travel with the outcome; `reading`:
    that parse and decision made already, at the end of DATA (used only without `earlier`).

    `earlier`: held rejects of the same sender that this mail answers, read from the facts
    stored when they were decided (never parsed again); a follow-up that alone would be rejected
    is decided together with them ("the channel is #x" completes the facts).
    With `probe_key`, a correctly marked probe mail gets its actions planned as skipped.
    `verify`: the direct DKIM check (decider/dkimcheck.py), run unless the sender policy is off."""
    before = [said_of(row) for row in earlier]
    if reading is None or before:
        reading = read_mail(
            mail.raw or b"", mail.mail_from, mail.received_at, policy, before, verify
        )
    parsed, conversation = reading
    decision = conversation.decision
    trusted = policy.triage.trusted_list_ids
    planned = plan_actions(
        decision, parsed, mail.mail_from, mail_id=mail.id, trusted_list_ids=trusted
    )
    record = decision_record(decision, datetime.now(UTC))
    record = replace(record, merged_with=tuple(earlier[i].id for i in conversation.merged))
    merged = [before[index] for index in conversation.merged]
    facts = read_facts(parsed, merged, mail.mail_from, trusted, decision.sender)
    if probe_key is not None and is_probe(parsed, probe_key):
        return as_probe(Outcome(record, planned, facts))
    if mail.rcpt_tos and all(is_postmaster(rcpt) for rcpt in mail.rcpt_tos):
        return as_postmaster(Outcome(record, planned, facts))
    return Outcome(record, planned, facts)


class Reading(NamedTuple):
    """A mail parsed and decided on its own words, which needs no mail id and no store: made at
    the end of DATA while the mail commits (Processor.foresee), finished once it is stored."""

    parsed: ParsedMail
    conversation: Conversation


def read_mail(
    raw: bytes,
    mail_from: str,
    received_at: datetime,
    policy: Policy,
    before: list[Said],
    verify: Verifier | None,
) -> Reading:
    """The one parse of a mail and its decision (with the earlier mails it answers)."""
    parsed = parse_mail(raw)
    checking = verify is not None and policy.trust.mode is not SenderPolicy.OFF
    extra = verify(raw) if verify is not None and checking else ()
    conversation = decide_conversation(parsed, before, received_at, policy, mail_from, extra)
    return Reading(parsed, conversation)


ForesightKey = tuple[int, str, int]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def foresight_key(received_at: datetime, mail_from: str, size: int) -> ForesightKey:
    """What a mail is known by before and after its commit: its instant (in microseconds, so
    any time zone the store hands back matches), envelope sender and size."""
    return (received_at - EPOCH) // timedelta(microseconds=1), mail_from, size


def said_of(row: MailRow) -> Said:
    """An earlier mail's words as stored when it was decided; a row without facts (its decision
    failed, or it awaits the backfill: decided before facts were kept) is parsed, and logged."""
    if row.facts is not None:
        return row.facts
    log.info("earlier mail %d has no stored facts: parsed once for its follow-up", row.id)
    return parse_mail(row.raw or b"")


def completes(record: DecisionRecord) -> list[int]:
    """The held mails an escalated follow-up completed: they leave the review queue."""
    return list(record.completes)


def as_probe(outcome: Outcome) -> Outcome:
    """A probe is decided like any mail, but nothing of it leaves and no one reviews it: its
    actions are recorded as skipped, and the stored decision says it was a probe."""
    skipped = tuple(replace(action, state="skipped", note=PROBE_NOTE) for action in outcome.planned)
    return Outcome(outcome.record.as_probe(), skipped, outcome.facts)


def as_postmaster(outcome: Outcome) -> Outcome:
    """Mail only to postmaster@ (RFC 5321 makes us accept it: bounces, abuse reports) is kept
    for a person to review and never escalated: rejected as automated_message, held, and its
    actions recorded as skipped (no page, no alarm, no reply that could loop)."""
    reasons = [Reason.AUTOMATED_MESSAGE.value]
    decision = {**outcome.record.decision, "verdict": "reject", "reasons": reasons}
    held = replace(outcome.record, decision={**decision, "postmaster": True}, review="held")
    planned = outcome.planned
    skipped = tuple(replace(action, state="skipped", note=POSTMASTER_NOTE) for action in planned)
    return Outcome(held, skipped, outcome.facts)


def is_postmaster(address: str) -> bool:
    """postmaster@any-domain or bare <Postmaster>, as the SMTP listener accepts them."""
    local = address.strip().strip("<>").rpartition("@")[0] or address.strip().strip("<>")
    return local.partition("+")[0].lower() == "postmaster"


def is_probe_record(record: DecisionRecord) -> bool:
    return record.probe


_worker_policy: Policy | None = None
_worker_probe_key: bytes | None = None
_worker_verify: Verifier | None = None
_worker_foreseen: dict[ForesightKey, tuple[bytes, Reading]] = {}  # oldest first


def _start_worker(settings: Settings, probe_key: bytes | None = None) -> None:
    """Initialiser of the decide process: load the policy once; leave signals to the parent."""
    global _worker_policy, _worker_probe_key, _worker_verify  # one each per worker process
    _worker_policy = load_policy(settings)
    _worker_probe_key = probe_key
    _worker_verify = dkimcheck.verifier(settings.verify_dkim)
    memory.tune()
    # Ctrl-C and SIGTERM are the parent's to handle: it finishes the batch, then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Accepting comes first: under a burst the SMTP loop gets the CPU, decisions catch up after.
    os.nice(DECIDE_NICENESS)
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()


def _exit_with_parent() -> None:
    """A SIGKILLed parent cannot stop us, and an idle worker would wait for work forever."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)


def first_turns(mails: list[MailRow]) -> list[MailRow]:
    """The batch to decide now, from the store's fair order (each sender's oldest first): when
    several senders wait, their first mails alone, so another team's page never waits for a
    whole batch of a storm's mails to be decided and recorded; one sender's mails, all."""
    seen: set[str] = set()
    for n, mail in enumerate(mails):
        sender = mail.mail_from.lower()
        if sender in seen:
            return mails[:n] if len(seen) > 1 else mails
        seen.add(sender)
    return mails


def _ping() -> bool:
    """A round trip that proves the child is up; it also hands back the child's freed memory
    (see Processor._settle_memory)."""
    memory.trim()
    return True


def _decide_in_worker(
    mail: MailRow, earlier: tuple[MailRow, ...] = (), key: ForesightKey | None = None
) -> Outcome:
    """Decide a stored mail; from its reading at the end of DATA when this child made one of
    the very same bytes (`key`), else from the start."""
    if _worker_policy is None:
        raise RuntimeError("decide worker started without a policy")
    found = None if key is None else _worker_foreseen.pop(key, None)
    reading = found[1] if found is not None and found[0] == mail.raw else None
    policy, probe_key, verify = _worker_policy, _worker_probe_key, _worker_verify
    return decide_stored(mail, policy, probe_key, earlier, verify, reading)


def _foresee_in_worker(
    key: ForesightKey, raw: bytes, mail_from: str, received_at: datetime
) -> bool:
    """Read a mail whose commit is under way; kept for its decision (FORESEEN_KEPT at most:
    a mail refused at its commit is never decided, and its reading goes in time)."""
    if _worker_policy is None:
        raise RuntimeError("decide worker started without a policy")
    reading = read_mail(raw, mail_from, received_at, _worker_policy, [], _worker_verify)
    _worker_foreseen[key] = (raw, reading)
    _keep_newest(_worker_foreseen, FORESEEN_KEPT)
    return True


def _keep_newest(kept: dict[ForesightKey, Any], most: int) -> None:
    """Drop the oldest entries (insertion order) of `kept` until at most `most` remain."""
    while len(kept) > most:
        del kept[next(iter(kept))]


def decision_record(decision: Decision, decided_at: datetime) -> DecisionRecord:
    """Rejected mails are held for a person to review; escalations need no review."""
    return DecisionRecord.decided(decision, decided_at)


def failed_record(mail: MailRow, error: BaseException) -> Outcome:
    """The core promises never to raise; if it ever does, a person sees the mail, no one else
    (without facts: the review page says the text could not be read)."""
    return Outcome(DecisionRecord.failed(error, datetime.now(UTC)), ())


def log_decision(mail: MailRow, record: DecisionRecord, planned: tuple[PlannedAction, ...]) -> None:
    """One line per decided mail: ids, verdict, reasons and action kinds; never mail text."""
    probe = is_probe_record(record)
    log.info(
        "decided mail %d: %s%s",
        mail.id,
        record.verdict,
        " (probe, actions skipped)" if probe else "",
        extra={
            "mail_id": mail.id,
            "message_id": mail.message_id,
            "verdict": record.verdict,
            "reasons": list(record.reasons),
            "actions": [action.kind for action in planned],
            "probe": probe,
        },
    )


class Processor:
    """Decides stored mails; `run()` serves forever, `burst()` empties the backlog and returns."""

    def __init__(
        self,
        store: Store,
        policy: Policy,
        *,
        batch_size: int = 32,
        byte_budget: int = DECIDE_BYTE_BUDGET,
        poll_seconds: float = 30.0,
        worker_settings: Settings | None = None,
        processes: int | None = None,
        probe_key: bytes | None = None,
        on_decided: Callable[[], None] = lambda: None,
        verify: Verifier | None = None,
        storm_window: timedelta | None = None,
        join_window: timedelta | None = None,
        pages: PageHandoff | None = None,
    ) -> None:
        """With `worker_settings`, decisions run in `processes` child processes (default: one
        per core, at most 4) that load the policy from them (the policy holds closures and
        cannot be pickled); without, in one thread. `probe_key` recognises probe mails
        (escalator.probe); `on_decided` is called once recorded decisions left work in the
        outbox (the service wakes the dispatcher with it). `verify`: the direct DKIM check in
        the thread (the child processes build theirs from `worker_settings`). `storm_window`:
        one sender's look-alike mails inside it join the first one (core/storms.py);
        `join_window`: another sender's report of an open outage joins it (core/grouping.py).
        `pages`: where due pages go as their decisions commit (else the dispatcher's wake)."""
        self._pages = pages
        self._join_windows = JoinWindows(storm_window, join_window)
        self._probe_key = probe_key
        self._verify = verify
        self._on_decided = on_decided
        self._store = store
        self._policy = policy
        self._batch_size = batch_size
        self._byte_budget = byte_budget
        self._poll_seconds = poll_seconds
        self._worker_settings = worker_settings
        lanes = 1 if worker_settings is None else processes or min(4, os.cpu_count() or 1)
        self._lane_count = lanes
        self._lanes: list[Lane] = []  # started by run() or burst(), inside the loop
        self._wake = asyncio.Event()
        self._soon: asyncio.TimerHandle | None = None
        self._foreseen: dict[ForesightKey, Lane] = {}  # read at the end of DATA, by that lane
        self.decided = 0

    def wake(self) -> None:
        """Called after each accept: there is something new to decide."""
        self._wake.set()

    def foresee(self, mail: IncomingMail) -> None:
        """The end of DATA, as the mail's commit starts (issue 12): an idle decide child reads
        and decides it meanwhile, so that once stored its decision is a short step away. Only
        a stored mail is decided (its id, its joins, its pages come after its commit); a busy
        decider (a backlog, a storm) or a large mail skips this."""
        lane = next((lane for lane in self._lanes if lane.idle()), None)
        if lane is None or self._worker_settings is None or len(mail.raw) > FORESEE_BYTES:
            return
        key = foresight_key(mail.received_at, mail.mail_from, len(mail.raw))
        self._foreseen[key] = lane
        _keep_newest(self._foreseen, FORESEEN_KEPT)
        args = (key, mail.raw, mail.mail_from, mail.received_at)
        sent = lane.call_now(_foresee_in_worker, *args)  # before the commit takes the GIL
        reading = sent or asyncio.ensure_future(lane.call(_foresee_in_worker, *args))
        reading.add_done_callback(_let_go)

    def wake_soon(self, delay: float = TAKEOVER_GRACE) -> None:
        """Another replica accepted a mail (PostgreSQL NOTIFY): it decides it itself within
        milliseconds, so look only after `delay`, and then decide whatever it left undecided
        (it may have died). One look per `delay`, however many mails arrive meanwhile."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(delay, self._look_now)

    def _look_now(self) -> None:
        self._soon = None
        self._wake.set()

    async def run(self) -> None:
        await self._warm_up()
        while True:
            self._wake.clear()
            try:
                await self.burst()
            except TransientError as exc:  # the store or the decide process: both come back
                if isinstance(exc, StoreUnavailable):
                    metrics.STORE_ERRORS.inc()
                log.warning("decide worker paused, retrying later: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    async def _warm_up(self) -> None:
        """Start every decide process now (a spawn and the policy load take seconds on a busy
        machine), so the first mail, or a dead replica's mails, wait for none of it."""
        self._start_lanes()
        pings = [lane.call(_ping) for lane in self._lanes]
        outcomes = await asyncio.gather(*pings, return_exceptions=True)
        for lane, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):  # a fresh lane: the first mail tells why
                self._lanes[lane].close(wait=False)
                self._lanes[lane] = self._new_lane()

    def _start_lanes(self) -> None:
        while len(self._lanes) < self._lane_count:
            self._lanes.append(self._new_lane())

    async def burst(self) -> int:
        """Decide every undecided mail there is now; return how many this call decided."""
        self._start_lanes()
        done, large = 0, False
        while mails := await self._store.undecided_mails(self._batch_size, self._byte_budget):
            mails = first_turns(mails)
            large = large or any(mail.size >= LARGE_MAIL_BYTES for mail in mails)
            done += await self._decide_batch(mails)
        if large:
            await self._settle_memory()
        return done

    async def _settle_memory(self) -> None:
        """After large mails, memory goes back: each lane is pinged (its child trims), then
        this process trims."""
        for lane in self._lanes:
            with contextlib.suppress(LaneDied, RuntimeError):  # the next mail tells
                await lane.call(_ping)
        memory.trim()

    async def _decide_batch(self, mails: list[MailRow]) -> int:
        parents = {mail.id: thread_parents(mail.raw or b"") for mail in mails}  # headers only
        earlier = {mail.id: await self._earlier(mail, parents[mail.id]) for mail in mails}
        outcomes = await self._decide_all(mails, earlier)
        outcomes = await self._join_open(mails, outcomes, parents)
        # Recorded together: the store's group commit makes the batch one transaction.
        lease = self._page_lease()
        commits = [
            asyncio.ensure_future(self._record(mail, outcome, lease))
            for mail, outcome in zip(mails, outcomes, strict=True)
        ]
        self._hand_pages(mails, outcomes, lease, commits)  # sent while their commit runs
        results = await asyncio.gather(*commits, return_exceptions=True)
        written: list[tuple[MailRow, Outcome]] = []
        for mail, outcome, result in zip(mails, outcomes, results, strict=True):
            if isinstance(result, asyncio.CancelledError | StoreUnavailable):
                raise result  # the store is down or busy: pause, the mail is decided later
            if isinstance(result, BaseException):
                outcome, result = await self._record_failure(mail, result)
            if result:
                written.append((mail, outcome))
        await self._close_completed(written)
        self._report(written)
        return len(written)

    def _hand_pages(
        self,
        mails: list[MailRow],
        outcomes: list[Outcome],
        lease: tuple[datetime, datetime] | None,
        commits: Sequence[asyncio.Future[bool | PagesClaimed | None]],
    ) -> None:
        """The due pages of these decisions go to the page path now, each with its commit."""
        if self._pages is None or lease is None:
            return
        due = [
            PagesDue(as_decided(mail, outcome.record, outcome.facts, lease[0]), pages, commit)
            for mail, outcome, commit in zip(mails, outcomes, commits, strict=True)
            if (pages := due_pages(mail.id, outcome.planned, lease))
        ]
        if due:
            self._pages.run(due)

    def _page_lease(self) -> tuple[datetime, datetime] | None:
        """(now, lease end) for the decisions' commit to claim due pages for the handoff."""
        return None if self._pages is None else self._pages.lease()

    async def _record(
        self, mail: MailRow, outcome: Outcome, lease: tuple[datetime, datetime] | None
    ) -> bool | PagesClaimed | None:
        """Written: True or PagesClaimed (its due pages claimed for the handoff); not: False
        or None (already decided). Only a decision with a page due claims (and reads back)."""
        if lease is None or not any(is_due_page(a, lease[0]) for a in outcome.planned):
            return await self._store.record_decision(mail.id, *outcome)
        return await self._store.record_decision_paging(mail.id, *outcome, *lease)

    async def _join_open(
        self, mails: list[MailRow], outcomes: list[Outcome], parents: dict[int, tuple[str, ...]]
    ) -> list[Outcome]:
        """Mails that belong to an open incident join it (oncall/joining.py: one path, three
        rules: an update in its thread, a storm of one sender, the same outage from another),
        read from the facts the decide worker found, never from the mail again."""
        pairs = list(zip(mails, outcomes, strict=True))
        updates = await asyncio.gather(
            *(update_of(self._store, m, o.record, o.facts, parents[m.id]) for m, o in pairs)
        )
        joinings = [
            joining_of(m.id, o.record, o.planned, o.facts, u)
            for (m, o), u in zip(pairs, updates, strict=True)
        ]
        joined = await join_batch(self._store, mails, joinings, self._join_windows)
        return [
            o if j is None else o._replace(record=j[0], planned=j[1])
            for o, j in zip(outcomes, joined, strict=True)
        ]

    async def _earlier(self, mail: MailRow, parents: tuple[str, ...]) -> tuple[MailRow, ...]:
        """Held rejects by the same sender, within 7 days, that this mail is a reply to, with
        the facts stored when they were decided (raw bytes only for a row without facts)."""
        found: list[MailRow] = []
        for message_id in parents:
            row = await self._store.find_mail(message_id)
            if (
                row is None
                or row.id == mail.id
                or not may_complete(
                    verdict=row.verdict,
                    review=row.review,
                    author=row.from_addr,
                    received_at=row.received_at,
                    follow_up_author=mail.from_addr,
                    follow_up_at=mail.received_at,
                )
            ):
                continue
            full = row if row.facts is not None else await self._store.get_mail(row.id)
            if full is not None and (full.facts is not None or full.raw):
                found.append(full)
        return tuple(found)

    async def _close_completed(self, written: list[tuple[MailRow, Outcome]]) -> None:
        """An escalated follow-up carries its original's facts and pages for both: the
        original is released from review (audited), so no one reviews it a second time."""
        for mail, outcome in written:
            for original in completes(outcome.record):
                await self._store.resolve_review(
                    original, "released", "escalator", f"completed by follow-up mail {mail.id}"
                )

    async def _record_failure(self, mail: MailRow, error: BaseException) -> tuple[Outcome, bool]:
        """A decision the store refuses (RecordRejected: say, text it cannot hold) must not
        block the mails behind it: the mail is held for review with the error instead."""
        log.error("storing the decision of mail %d failed: %r; held for review", mail.id, error)
        outcome = failed_record(mail, error)
        return outcome, await self._store.record_decision(mail.id, *outcome)

    def _report(self, written: list[tuple[MailRow, Outcome]]) -> None:
        """Log and count what was recorded; wake the dispatcher if any of it is to be done."""
        self.decided += len(written)
        for mail, (record, planned, _) in written:
            log_decision(mail, record, planned)
            if is_probe_record(record):
                metrics.LAST_PROBE.set_to_current_time()
            else:
                metrics.record_decision(record.verdict, record.reasons)
        if any(a.state == "pending" for _, outcome in written for a in outcome.planned):
            self._on_decided()

    def _new_lane(self) -> Lane:
        if self._worker_settings is None:
            return ThreadLane()
        return ProcessLane(_start_worker, (self._worker_settings, self._probe_key))

    async def _decide_all(
        self, mails: list[MailRow], earlier: dict[int, tuple[MailRow, ...]]
    ) -> list[Outcome]:
        """Each lane (one child) decides its share one mail at a time, so a child that dies is
        blamed on exactly the mail it was deciding; a mail read at the end of DATA goes to the
        lane that read it."""
        shares: list[list[tuple[int, MailRow, ForesightKey | None]]] = [[] for _ in self._lanes]
        for n, mail in enumerate(mails):
            lane, key = self._route(mail, n % len(self._lanes))
            shares[lane].append((n, mail, key))
        decided = await asyncio.gather(
            *(self._decide_share(share, lane, earlier) for lane, share in enumerate(shares))
        )
        by_position = dict(pair for share in decided for pair in share)
        return [by_position[position] for position in range(len(mails))]

    def _route(self, mail: MailRow, default: int) -> tuple[int, ForesightKey | None]:
        """The lane still holding this mail's reading from the end of DATA, else `default`."""
        key = foresight_key(mail.received_at, mail.mail_from, mail.size)
        lane = self._foreseen.pop(key, None)
        if lane is None or lane not in self._lanes:
            return default, None
        return self._lanes.index(lane), key

    async def _decide_share(
        self,
        share: list[tuple[int, MailRow, ForesightKey | None]],
        lane: int,
        earlier: dict[int, tuple[MailRow, ...]],
    ) -> list[tuple[int, Outcome]]:
        return [
            (n, await self._decide(mail, lane, earlier.get(mail.id, ()), key=key))
            for n, mail, key in share
        ]

    async def _decide(
        self,
        mail: MailRow,
        lane: int,
        earlier: tuple[MailRow, ...],
        retries: int = 1,
        key: ForesightKey | None = None,
    ) -> Outcome:
        try:
            return await self._submit(mail, lane, earlier, key)
        except RuntimeError as exc:
            # The lane refused the work (shut down, cannot spawn): not the mail's fault.
            raise TransientError(f"the decide worker cannot take work: {exc}") from None
        except LaneDied as exc:
            log.error("the decide process died on mail %d; starting a new one", mail.id)
            await self._restart_worker(lane)
            if retries > 0:  # it may have died of something else: give the mail one more go
                return await self._decide(mail, lane, earlier, retries - 1)
            log.error("mail %d kills the decide process; held for review", mail.id)
            return failed_record(mail, exc)
        except Exception as exc:
            log.exception("decision of mail %d failed; held for review", mail.id)
            return failed_record(mail, exc)

    async def _submit(
        self, mail: MailRow, lane: int, earlier: tuple[MailRow, ...], key: ForesightKey | None
    ) -> Outcome:
        if self._worker_settings is not None:
            return await self._lanes[lane].call(_decide_in_worker, mail, earlier, key)
        return await self._lanes[lane].call(
            decide_stored, mail, self._policy, self._probe_key, earlier, self._verify
        )

    async def _restart_worker(self, lane: int) -> None:
        """A fresh child that must answer a ping: if it cannot even start, the fault is not the
        mail's, so nothing is held for review; the burst stops and is retried later."""
        self._lanes[lane].close(wait=False)
        self._lanes[lane] = self._new_lane()
        try:
            await self._lanes[lane].call(_ping)
        except (LaneDied, RuntimeError):
            raise TransientError("the decide process cannot start; retrying later") from None

    def close(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
        for lane in self._lanes:
            lane.close()
        self._lanes = []


def _let_go(reading: asyncio.Future[bool]) -> None:
    """A reading at the end of DATA that failed says nothing: the mail's decision tells."""
    if not reading.cancelled():
        reading.exception()


class Foreseeing:
    """The store's `accept` as the SMTP front door calls it in `escalator serve`: each mail is
    handed to Processor.foresee as its commit starts."""

    def __init__(self, store: Store, processor: Processor) -> None:
        self._store = store
        self._processor = processor

    async def accept(self, mail: IncomingMail) -> Accepted:
        self._processor.foresee(mail)
        return await self._store.accept(mail)
