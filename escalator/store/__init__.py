"""The durable store: the rows that cross its boundary and the small interface every backend keeps.

Everything the service remembers goes through `Store`: accepted mails (raw bytes + envelope),
their decisions, the outbox of actions, and the review audit trail. The interface is async and
small so that a PostgreSQL backend can stand beside the SQLite one and pass the same contract
tests (tests/test_store.py). Its logic is written once (store/manager.py, over named queries);
each backend supplies a connector and its dialect. `open_store(settings)` picks the backend
from the database URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from escalator.core.facts import MailFacts
from escalator.core.record import DecisionRecord
from escalator.errors import ConfigError, PermanentError

if TYPE_CHECKING:
    from escalator.core.actions import PlannedAction
    from escalator.core.replybudget import ReplyClaim, ReplyRefused
    from escalator.core.storms import StormJoin
    from escalator.settings import Settings

REVIEW_STATES = ("held", "released", "dismissed")
ACTION_KINDS = ("page", "alarm", "ack", "reply")
ACTION_STATES = ("pending", "sent", "dry_run", "failed", "skipped")
FINAL_ACTION_STATES = ("sent", "dry_run", "failed", "skipped")
DUPLICATE_WINDOW_DAYS = 7


class RecordRejected(PermanentError):
    """The store refuses this one record (its data breaks a constraint or a type), while it
    works for others: unlike StoreUnavailable, retrying the same record will not help."""


@dataclass(frozen=True)
class IncomingMail:
    """A mail as the SMTP session hands it over, before anything is decided."""

    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]
    client_address: str | None
    tls: bool
    received_at: datetime
    message_id: str | None = None
    subject: str = ""
    from_addr: str = ""
    content_digest: str | None = None  # store/digest.py; the duplicate key, None = always new


@dataclass(frozen=True)
class Accepted:
    """The store's answer to `accept`: the mail's id, and whether it was already there."""

    mail_id: int
    duplicate: bool


@dataclass(frozen=True)
class MailRow:
    """One stored mail; `raw` is None when a listing did not ask for the bytes."""

    id: int
    received_at: datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    client_address: str | None
    tls: bool
    message_id: str | None
    subject: str
    from_addr: str
    size: int
    verdict: str | None = None
    reasons: tuple[str, ...] = ()
    slack_channel: str | None = None
    window: str | None = None
    decision: DecisionRecord | None = None
    decided_at: datetime | None = None
    review: str | None = None
    raw: bytes | None = None
    raw_purged_at: datetime | None = None  # set when retention removed the raw bytes
    facts: MailFacts | None = None  # read when decided; None: undecided, unreadable or purged


@dataclass(frozen=True)
class ActionRow:
    """One outbox entry. `attempts` counts claims; `last_error` also holds a skip's reason."""

    id: int
    mail_id: int
    kind: str
    state: str
    due_at: datetime
    attempts: int
    last_error: str | None
    payload: dict[str, Any]
    dedup_key: str
    claimed_until: datetime | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    first_due_at: datetime | None = None  # when it was first due; a retry moves only due_at


def claim_order(action: ActionRow) -> tuple[datetime, int]:
    """Oldest work first: by first due time (a retry keeps its place), then by id."""
    return (action.first_due_at or action.due_at, action.id)


@dataclass(frozen=True)
class PagesClaimed:
    """What a decision's commit claimed for the page path (issue 12): the mail as stored, with
    its decision and facts, and its pages due now, leased to the caller."""

    mail: MailRow
    pages: tuple[ActionRow, ...]


@dataclass(frozen=True)
class PagesDue:
    """A decision's due pages handed on BEFORE its commit (issue 12): `mail` as it reads once
    decided, `pages` as that commit claims them (their ids not known yet: negative stand-ins,
    store/actions.py's `due_pages`), and `claimed`, the commit itself: PagesClaimed with the
    stored rows, or anything else when the decision was not recorded here."""

    mail: MailRow
    pages: tuple[ActionRow, ...]
    claimed: asyncio.Future[Any]


@dataclass(frozen=True)
class ListedMail:
    """A mail with its actions, oldest action first, as `escalator list` shows it."""

    mail: MailRow
    actions: tuple[ActionRow, ...] = field(default=())


@dataclass(frozen=True)
class AuditRow:
    """Who did what to which mail, and when (review decisions)."""

    id: int
    at: datetime
    who: str
    what: str
    mail_id: int | None
    note: str | None


@dataclass(frozen=True)
class Purged:
    """What one retention pass removed: raw bodies blanked, mails (with actions) and audit rows."""

    raw: int
    mails: int
    audit: int


@dataclass(frozen=True)
class OutboxSummary:
    """The outbox at one instant (metrics, /readyz): pending actions by kind (deferred pages
    included); the FIRST due time of the oldest pending action already due (a retry does not
    make it younger); how many pending pages were scheduled for later (deferred to on-call; a
    page waiting for a retry is not deferred); the earliest due_at already passed (nobody has
    picked that action up since: a stalled dispatcher); and since when the oldest pending page
    that has failed at least once was first due ("pages failing for N s")."""

    pending_by_kind: dict[str, int]
    oldest_due: datetime | None
    deferred_pages: int
    stalled_since: datetime | None = None
    failing_pages_since: datetime | None = None


def summarise(rows: list[dict[str, Any]]) -> OutboxSummary:
    """One OutboxSummary from per-kind rows (kind, pending, oldest, later, stalled, failing),
    as both backends' summary query returns them."""

    def earliest(name: str, kinds: tuple[str, ...] = ()) -> datetime | None:
        found = [r[name] for r in rows if r[name] is not None and (not kinds or r["kind"] in kinds)]
        return min(found, default=None)

    return OutboxSummary(
        pending_by_kind={row["kind"]: int(row["pending"]) for row in rows},
        oldest_due=earliest("oldest"),
        deferred_pages=sum(int(row["later"] or 0) for row in rows if row["kind"] == "page"),
        stalled_since=earliest("stalled"),
        failing_pages_since=earliest("failing", ("page",)),
    )


class Store(Protocol):
    """The durable store. Every method may raise StoreUnavailable (a TransientError)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def accept(self, mail: IncomingMail) -> Accepted:
        """Commit the mail durably (or find its duplicate) before returning."""
        ...

    async def undecided_mails(self, limit: int, byte_budget: int) -> list[MailRow]:
        """Oldest undecided mails with raw bytes; at least one even if over the budget."""
        ...

    async def record_decision(
        self,
        mail_id: int,
        record: DecisionRecord,
        planned: tuple[PlannedAction, ...],
        facts: MailFacts | None = None,
    ) -> bool:
        """Write decision, facts and actions in one transaction; False if already decided."""
        ...

    async def record_decision_paging(
        self,
        mail_id: int,
        record: DecisionRecord,
        planned: tuple[PlannedAction, ...],
        facts: MailFacts | None,
        due_by: datetime,
        lease_until: datetime,
    ) -> PagesClaimed | None:
        """`record_decision`, and in the same transaction its pages due by `due_by` are claimed
        until `lease_until` and handed back with the stored mail (the page path, issue 12: no
        wake, no claim and no read between the commit and the page). None if already decided."""
        ...

    async def mails_without_facts(self, limit: int, after: int = 0) -> list[MailRow]:
        """Decided mails with id > `after` whose raw bytes are kept but whose facts were never
        stored (written before facts were), oldest first, with raw bytes: for the backfill."""
        ...

    async def set_facts(self, mail_id: int, facts: MailFacts) -> bool:
        """Store a backfilled mail's facts, only while it has none and keeps its raw bytes."""
        ...

    async def add_actions(self, mail_id: int, planned: tuple[PlannedAction, ...]) -> list[int]: ...

    async def claim_due_actions(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[ActionRow]:
        """Lease pending actions due by `now`; a leased action is not claimed again meanwhile."""
        ...

    async def finish_action(
        self,
        action_id: int,
        state: str,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None: ...

    async def retry_action(self, action_id: int, due_at: datetime, error: str) -> None: ...

    async def replay_action(self, action_id: int, who: str, now: datetime) -> ActionRow | None:
        """A failed action back to pending, due now, with a fresh retry horizon; audited.
        None when there is no such failed action (pending, sent or unknown)."""
        ...

    async def get_mail(self, mail_id: int, *, with_raw: bool = True) -> MailRow | None:
        """One mail; without its raw bytes when `with_raw` is False (they may be 10 MiB)."""
        ...

    async def find_mail(self, message_id: str) -> MailRow | None:
        """The newest mail with this Message-ID (without <>), without its raw bytes."""
        ...

    async def list_mails(self) -> list[ListedMail]: ...

    async def set_review(self, mail_id: int, review: str, who: str, note: str | None) -> None:
        """Change a mail's review state and write the audit row in the same transaction."""
        ...

    async def audit_log(self, mail_id: int | None = None) -> list[AuditRow]: ...

    # -- support review (escalator/review/, store/retention.py) --

    async def resolve_review(
        self,
        mail_id: int,
        review: str,
        who: str,
        note: str | None,
        record: DecisionRecord | None = None,
        planned: tuple[PlannedAction, ...] = (),
    ) -> bool:
        """Move a HELD mail to `review` with its audit row, new decision and actions, atomically.

        False (nothing written) when the mail is not held any more: two people clicking
        Release together produce one release.
        """
        ...

    async def mails_in_review(self, review: str, limit: int) -> list[MailRow]:
        """Mails in a review state, newest first, with raw bytes."""
        ...

    async def recent_escalations(self, limit: int) -> list[ListedMail]:
        """Escalated mails (released ones included), newest first, with their actions."""
        ...

    async def outage_candidates(
        self, since: datetime, until: datetime, not_from: str, limit: int
    ) -> list[ListedMail]:
        """Of the newest `limit` escalated mails received from `since` to `until`, those from
        another sender than `not_from` (case-insensitive From address) that joined no incident,
        newest first, with their actions (the outage rule, issue 11: read per escalation)."""
        ...

    async def mail_actions(self, mail_id: int) -> list[ActionRow]: ...

    async def purge(self, raw_before: datetime, records_before: datetime, now: datetime) -> Purged:
        """Blank raw bytes older than `raw_before`; delete records older than `records_before`."""
        ...

    # -- what the dispatcher remembers across restarts and replicas (issue 4) --

    async def claim_reply_slot(
        self, address: str, action_id: int, claim: ReplyClaim
    ) -> ReplyRefused | None:
        """Grant the reply `action_id` (its verdict, now, budgets: core/replybudget.py) a slot among
        `address`'s replies, atomically: None when granted (it fits every budget, or an earlier
        attempt of this action was granted), else the budget it does not fit in. Addresses
        compare case-insensitively."""
        ...

    async def alarm_thread(self, dedup_key: str) -> dict[str, Any] | None:
        """The result (Slack channel and ts) of the first sent alarm under `dedup_key`."""
        ...

    async def join_storm(
        self, keys: tuple[str, ...], mail_id: int, root: str, at: datetime, since: datetime
    ) -> StormJoin:
        """Storms (issue 16): join the storm one of `keys` names if it opened at or after
        `since`, else open one with `mail_id` (thread `root`) at `at`; atomically, counted."""
        ...

    # -- review sessions signed out before they expire (issue 16) --

    async def revoke_session(self, session_key: str, expires_at: datetime, now: datetime) -> None:
        """List a signed-out session until `expires_at` (when its cookie dies anyway); rows
        already past their expiry at `now` are dropped on the way."""
        ...

    async def session_revoked(self, session_key: str) -> bool:
        """Whether the session was signed out (every replica sees it)."""
        ...

    async def outbox_summary(self, now: datetime) -> OutboxSummary:
        """Pending actions at `now` (see OutboxSummary); a read, cheap enough for every scrape."""
        ...

    # -- leases and hand-over (issue 14) --

    async def renew_claims(self, action_ids: tuple[int, ...], until: datetime) -> int:
        """Extend the lease of these claimed, still pending actions (the dispatcher's heartbeat)."""
        ...

    async def release_claims(self, action_ids: tuple[int, ...]) -> int:
        """Hand claimed actions that were never started back: unleased, the claim not counted."""
        ...

    async def hurry_retries(self, kind: str, now: datetime) -> int:
        """Pending actions of `kind` waiting for a retry become due at `now` (a delivery of that
        kind just succeeded: the outside system is back, the oldest go first)."""
        ...

    async def settle_failing(self, mail_id: int, kind: str, note: str, now: datetime) -> int:
        """A person took the escalation over: this mail's pending actions of `kind` that have
        failed at least once and are not in flight end as skipped, with `note` as the reason."""
        ...

    def subscribe(self, on_mail: Callable[[], None], on_actions: Callable[[], None]) -> None:
        """Call `on_mail` when any replica accepted a mail and `on_actions` when any replica
        added actions (PostgreSQL LISTEN/NOTIFY; a single-replica store may call neither)."""
        ...


def open_store(settings: Settings) -> Store:
    """The backend the settings name (not yet opened: call `await store.open()`)."""
    path = settings.sqlite_path
    if path is not None:
        from escalator.store.sqlite import SQLiteStore

        return SQLiteStore(path)
    url = settings.database_url or ""
    if url.startswith(("postgresql://", "postgres://")):
        from escalator.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError(
        "ESCALATOR_DATABASE_URL must start with sqlite:/// or postgresql://, "
        f"got scheme {url.partition(':')[0]!r}"
    )


@contextlib.asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[Store]:
    """The configured store, opened for the block and closed after it (CLI commands)."""
    store = open_store(settings)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
