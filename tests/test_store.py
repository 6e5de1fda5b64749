"""Contract tests of the durable store, run against every backend (`store` fixture in conftest)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from escalator.core.actions import PlannedAction
from escalator.core.record import DecisionRecord
from escalator.errors import ConfigError, StoreUnavailable
from escalator.store import IncomingMail, Store
from escalator.store.db import Db
from escalator.store.digest import content_digest
from escalator.store.manager import StoreManager
from escalator.store.sqlite import MIGRATIONS, SQLiteStore

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def incoming(n: int = 1, **changes: object) -> IncomingMail:
    fields: dict[str, object] = {
        "raw": f"Message-ID: <m{n}@example.org>\r\nSubject: s{n}\r\n\r\nbody {n}\r\n".encode(),
        "mail_from": "alice@example.org",
        "rcpt_tos": ("escalations@localhost",),
        "client_address": "127.0.0.1",
        "tls": False,
        "received_at": T0,
        "message_id": f"m{n}@example.org",
        "subject": f"s{n}",
        "from_addr": "alice@example.org",
    }
    fields.update(changes)
    fields.setdefault("content_digest", content_digest(fields["raw"]))  # type: ignore[arg-type]
    return IncomingMail(**fields)  # type: ignore[arg-type]


def record(verdict: str = "escalate") -> DecisionRecord:
    reasons = () if verdict == "escalate" else ("sender_not_allowed",)
    contract = {
        "verdict": verdict,
        "reasons": list(reasons),
        "slack_channel": "laa-incident",
        "window": "support",
    }
    return DecisionRecord(contract, T0)


def planned(*kinds: str, due: datetime = T0) -> tuple[PlannedAction, ...]:
    return tuple(PlannedAction(kind, due, f"{kind}:root", {"n": i}) for i, kind in enumerate(kinds))


async def test_accept_keeps_raw_bytes_and_envelope(store: Store) -> None:
    """An accepted mail comes back byte for byte, with its envelope, null sender included."""
    raw = b"Subject: \xff odd bytes\r\n\r\n\x00nul and 8-bit \xe9\r\n"
    mail = incoming(raw=raw, mail_from="<>", rcpt_tos=("a@x", "B@x"), tls=True, message_id=None)
    accepted = await store.accept(mail)
    row = await store.get_mail(accepted.mail_id)
    assert row is not None and not accepted.duplicate
    assert (row.raw, row.mail_from, row.rcpt_tos, row.tls) == (raw, "<>", ("a@x", "B@x"), True)
    assert (row.received_at, row.client_address, row.size) == (T0, "127.0.0.1", len(raw))
    assert row.verdict is None and row.review is None
    # For readers of the decision only (the dispatcher): the same row, the bytes left out.
    assert await store.get_mail(accepted.mail_id, with_raw=False) == replace(row, raw=None)


async def test_duplicate_within_seven_days_is_stored_once(store: Store) -> None:
    """Same content (digest) within 7 days is the same mail, whoever the envelope sender;
    a later one, or a mail without a digest, is a new one."""
    first = await store.accept(incoming(1))
    again = await store.accept(incoming(1, received_at=T0 + timedelta(days=6)))
    other_sender = await store.accept(incoming(1, mail_from="bob@example.org"))
    later = await store.accept(incoming(1, received_at=T0 + timedelta(days=8)))
    assert again.duplicate and again.mail_id == first.mail_id
    assert other_sender.duplicate and other_sender.mail_id == first.mail_id
    assert not later.duplicate
    no_digest = [await store.accept(incoming(2, content_digest=None)) for _ in range(2)]
    assert not any(a.duplicate for a in no_digest)
    assert no_digest[0].mail_id != no_digest[1].mail_id


async def test_same_message_id_with_other_content_is_a_new_mail(store: Store) -> None:
    """Two different mails sharing one Message-ID (a templated sender) are both kept."""
    one = incoming(3, raw=b"Message-ID: <same@x>\r\nSubject: db down\r\n\r\nthe db\r\n")
    two = incoming(3, raw=b"Message-ID: <same@x>\r\nSubject: api down\r\n\r\nthe api\r\n")
    first, second = await store.accept(one), await store.accept(two)
    assert not first.duplicate and not second.duplicate and first.mail_id != second.mail_id
    assert [m.mail.message_id for m in await store.list_mails()] == ["m3@example.org"] * 2


async def test_concurrent_accepts_all_commit(store: Store) -> None:
    """Many sessions accepting at once (one group commit) each get their own stored row."""
    results = await asyncio.gather(*(store.accept(incoming(n)) for n in range(200)))
    assert len({a.mail_id for a in results}) == 200
    assert len(await store.list_mails()) == 200


async def test_concurrent_duplicates_in_one_batch_collapse(store: Store) -> None:
    """Two deliveries of one mail that land in the same group commit still make one row."""
    results = await asyncio.gather(*(store.accept(incoming(7)) for _ in range(5)))
    assert len({a.mail_id for a in results}) == 1
    assert sum(not a.duplicate for a in results) == 1


async def test_a_failing_job_spoils_only_its_own_future(store: Store) -> None:
    """In one group commit, a job that writes and then fails leaves nothing behind and fails
    alone; the jobs beside it commit (PostgreSQL runs a batch without savepoints first, and
    again with one per job when a job fails)."""
    ids = [(await store.accept(incoming(n))).mail_id for n in (1, 2, 3)]

    def hold(mail_id: int, fail: bool) -> Callable[[Db], Awaitable[None]]:
        async def job(db: Db) -> None:
            await db.run("set_review", id=mail_id, review="held")
            if fail:
                raise ValueError("the job's own error")

        return job

    assert isinstance(store, StoreManager)
    jobs = [hold(mail_id, fail=mail_id == ids[1]) for mail_id in ids]
    outcomes = await asyncio.gather(*map(store._write, jobs), return_exceptions=True)
    assert [isinstance(outcome, ValueError) for outcome in outcomes] == [False, True, False]
    reviews = [listed.mail.review for listed in await store.list_mails()]
    assert reviews == ["held", None, "held"]


async def test_decision_and_actions_are_recorded_exactly_once(store: Store) -> None:
    """record_decision writes decision + actions together; a second call changes nothing."""
    mail_id = (await store.accept(incoming())).mail_id
    assert await store.record_decision(mail_id, record(), planned("page", "alarm", "reply"))
    assert not await store.record_decision(mail_id, record("reject"), planned("reply"))
    (listed,) = await store.list_mails()
    assert listed.mail.verdict == "escalate" and listed.mail.window == "support"
    assert listed.mail.decision is not None
    assert listed.mail.decision.to_dict() == record().to_dict()  # PostgreSQL: jsonb key order
    assert [a.kind for a in listed.actions] == ["page", "alarm", "reply"]
    assert {a.state for a in listed.actions} == {"pending"}


async def test_rejected_mail_is_held_and_skipped_reply_keeps_reason(store: Store) -> None:
    """A held review state and a skipped reply with its reason are stored as given."""
    mail_id = (await store.accept(incoming())).mail_id
    skipped = PlannedAction("reply", T0, "reply:x", {}, state="skipped", note="null sender")
    contract = {"verdict": "reject", "reasons": ["automated_message"], "window": "on_call"}
    rejected = DecisionRecord(contract, T0, "held")
    await store.record_decision(mail_id, rejected, (skipped,))
    (listed,) = await store.list_mails()
    assert listed.mail.review == "held" and listed.mail.reasons == ("automated_message",)
    (action,) = listed.actions
    assert (action.state, action.last_error) == ("skipped", "null sender")


async def test_undecided_mails_respects_byte_budget(store: Store) -> None:
    """The worker gets the oldest undecided mails within a byte budget, but at least one."""
    ids = [(await store.accept(incoming(n))).mail_id for n in range(5)]
    await store.record_decision(ids[0], record(), ())
    size = len(incoming(1).raw)
    assert [m.id for m in await store.undecided_mails(10, size * 2)] == ids[1:3]
    assert [m.id for m in await store.undecided_mails(10, 1)] == ids[1:2]
    assert [m.id for m in await store.undecided_mails(2, 10**9)] == ids[1:3]
    assert all(m.raw for m in await store.undecided_mails(10, 10**9))


async def test_claim_leases_due_pending_actions(store: Store) -> None:
    """Only due, pending, unleased actions are claimed; a lease hides them until it expires."""
    mail_id = (await store.accept(incoming())).mail_id
    await store.record_decision(mail_id, record(), planned("page", "alarm"))
    await store.add_actions(mail_id, planned("reply", due=T0 + timedelta(hours=1)))
    claimed = await store.claim_due_actions(T0, 10, lease_seconds=60)
    assert [a.kind for a in claimed] == ["page", "alarm"]
    assert all(a.attempts == 1 and a.claimed_until for a in claimed)
    assert await store.claim_due_actions(T0 + timedelta(seconds=30), 10, 60) == []
    again = await store.claim_due_actions(T0 + timedelta(seconds=61), 1, 60)
    assert [(a.kind, a.attempts) for a in again] == [("page", 2)]


async def test_a_decision_claims_its_due_pages_in_its_own_commit(store: Store) -> None:
    """The page path (issue 12): record_decision_paging writes the decision, claims its pages
    due by then (not a later page, not other kinds) and returns them with the stored mail;
    nobody claims them again before the lease ends; a second decision claims nothing."""
    mail_id = (await store.accept(incoming())).mail_id
    later = PlannedAction("page", T0 + timedelta(hours=9), "page:later", {})
    lease = T0 + timedelta(seconds=60)
    claimed = await store.record_decision_paging(
        mail_id, record(), (*planned("page", "alarm"), later), None, T0, lease
    )
    assert claimed is not None and claimed.mail.decision is not None
    assert (claimed.mail.id, claimed.mail.verdict) == (mail_id, "escalate")
    (page,) = claimed.pages
    assert (page.kind, page.dedup_key, page.attempts, page.claimed_until) == (
        "page",
        "page:root",
        1,
        lease,
    )
    assert [a.kind for a in await store.claim_due_actions(T0, 10, 60)] == ["alarm"]
    again = await store.record_decision_paging(mail_id, record(), planned("page"), None, T0, lease)
    assert again is None
    after = await store.claim_due_actions(lease + timedelta(seconds=1), 1, 60)  # pages first
    assert [(a.kind, a.dedup_key, a.attempts) for a in after] == [("page", "page:root", 2)]


async def test_outage_candidates_are_other_senders_open_reports_near(store: Store) -> None:
    """The outage rule's read (issue 11, on every escalation's page path): escalations received
    in the span, newest first, from another sender (any case), that joined nothing, with their
    actions; the asking sender's own, rejects, joined ones and those outside are left out."""

    async def decided(n: int, sender: str, minutes: int, rec: DecisionRecord) -> int:
        at = T0 + timedelta(minutes=minutes)
        mail_id = (await store.accept(incoming(n, from_addr=sender, received_at=at))).mail_id
        await store.record_decision(mail_id, rec, planned("page"))
        return mail_id

    bob = await decided(1, "bob@example.org", 0, record())
    joined = DecisionRecord({**record().decision, "joined": {"mail_id": bob, "why": "x"}}, T0)
    await decided(2, "carol@example.org", 10, joined)
    await decided(3, "alice@example.org", 5, record())
    await decided(4, "dave@example.org", 20, record("reject"))
    await decided(5, "erin@example.org", 90, record())
    bob_again = await decided(6, "Bob@Example.org", 15, record())
    span = (T0 - timedelta(minutes=1), T0 + timedelta(minutes=30))
    found = await store.outage_candidates(*span, "ALICE@example.org", 100)
    assert [listed.mail.id for listed in found] == [bob_again, bob]
    assert [a.kind for a in found[1].actions] == ["page"]
    assert found[1].mail.decision is not None and found[1].mail.from_addr == "bob@example.org"


async def test_finish_and_retry(store: Store) -> None:
    """finish_action ends an action for good; retry_action reschedules it with the error."""
    mail_id = (await store.accept(incoming())).mail_id
    await store.record_decision(mail_id, record(), planned("page", "alarm"))
    page, alarm = await store.claim_due_actions(T0, 10, 60)
    await store.finish_action(page.id, "dry_run", result={"event": "would page"})
    await store.retry_action(alarm.id, T0 + timedelta(minutes=5), "slack 503")
    assert await store.claim_due_actions(T0 + timedelta(minutes=1), 10, 60) == []
    (retried,) = await store.claim_due_actions(T0 + timedelta(minutes=5), 10, 60)
    assert (retried.id, retried.last_error, retried.attempts) == (alarm.id, "slack 503", 2)
    (listed,) = await store.list_mails()
    assert listed.actions[0].state == "dry_run" and listed.actions[0].result == {
        "event": "would page"
    }
    with pytest.raises(ValueError):
        await store.finish_action(page.id, "pending")


def notice(thread: str, at: datetime) -> tuple[PlannedAction, ...]:
    """A reply in `thread`'s alarm thread, planned at `at` (its mail's receipt)."""
    payload = {"thread": thread, "notice": {"under": "alarm", "text": thread}}
    return (PlannedAction("alarm", at, f"update:{thread}:{at.isoformat()}", payload),)


async def test_a_threads_notices_are_claimed_one_at_a_time_in_receipt_order(store: Store) -> None:
    """Only the first pending notice of a thread is claimed, by receipt even when a later mail's
    notice was planned first; while it waits for a retry the next waits too. Other threads'
    notices and a thread's own alarm are not held up."""
    late, early, other = [(await store.accept(incoming(n))).mail_id for n in range(3)]
    await store.add_actions(late, notice("a", T0 + timedelta(minutes=2)))
    await store.add_actions(early, notice("a", T0 + timedelta(minutes=1)))
    await store.add_actions(other, (*notice("b", T0), *planned("alarm")))
    now = T0 + timedelta(minutes=3)
    claimed = await store.claim_due_actions(now, 10, 60)
    assert sorted(a.mail_id for a in claimed) == [early, other, other]
    for action in claimed:
        if action.mail_id == early:
            await store.retry_action(action.id, now + timedelta(minutes=1), "slack 429")
        else:
            await store.finish_action(action.id, "sent")
    assert await store.claim_due_actions(now + timedelta(seconds=30), 10, 60) == []
    (again,) = await store.claim_due_actions(now + timedelta(minutes=1), 10, 60)
    await store.finish_action(again.id, "sent")
    (last,) = await store.claim_due_actions(now + timedelta(minutes=1), 10, 60)
    assert (again.mail_id, last.mail_id) == (early, late)


async def test_two_stores_never_claim_the_same_action(store_factory: object) -> None:
    """Two workers (two store connections) claiming at once split the actions between them."""
    first, second = await store_factory(), await store_factory()  # type: ignore[operator]
    for n in range(20):
        mail_id = (await first.accept(incoming(n))).mail_id
        await first.record_decision(mail_id, record(), planned("page", "alarm"))
    claims = await asyncio.gather(
        *(s.claim_due_actions(T0, 3, 60) for _ in range(10) for s in (first, second))
    )
    ids = [a.id for batch in claims for a in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_review_change_writes_audit(store: Store) -> None:
    """Changing the review state leaves an audit row saying who, what and why."""
    mail_id = (await store.accept(incoming())).mail_id
    await store.set_review(mail_id, "released", "sam@example.org", "real incident")
    (entry,) = await store.audit_log(mail_id)
    assert (entry.who, entry.what, entry.mail_id, entry.note) == (
        "sam@example.org",
        "released",
        mail_id,
        "real incident",
    )
    assert (await store.get_mail(mail_id)).review == "released"  # type: ignore[union-attr]
    with pytest.raises(LookupError):
        await store.set_review(9999, "dismissed", "sam", None)


async def test_closed_store_raises_store_unavailable(store: Store) -> None:
    """After close, every call says the store is unavailable (the SMTP side answers 451)."""
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.accept(incoming())


async def test_sqlite_locked_database_is_store_unavailable(tmp_path: Path) -> None:
    """When another process holds the write lock past the busy timeout, accept fails cleanly."""
    store = SQLiteStore(tmp_path / "s.db", busy_timeout=0.1)
    await store.open()
    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreUnavailable, match="locked"):
        await store.accept(incoming())
    blocker.execute("ROLLBACK")
    assert not (await store.accept(incoming())).duplicate
    blocker.close()
    await store.close()


async def test_sqlite_reopen_keeps_data_and_schema_version(tmp_path: Path) -> None:
    """Reopening the file migrates nothing twice and keeps every mail."""
    for _ in range(2):
        store = SQLiteStore(tmp_path / "s.db")
        await store.open()
        await store.accept(incoming(message_id=None, content_digest=None))
        await store.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM mails").fetchone()[0] == 2


async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    """A store written by a newer escalator is refused with a clear message, not damaged."""
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError, match="newer"):
        await SQLiteStore(tmp_path / "s.db").open()


async def test_sqlite_unopenable_path_fails_fast(tmp_path: Path) -> None:
    """A store path under a file (not a folder) fails at open with the path in the message."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailable, match="file"):
        await SQLiteStore(tmp_path / "file" / "s.db").open()


async def test_find_mail_by_message_id_returns_the_newest(store: Store) -> None:
    """find_mail gives the newest mail with that Message-ID, or None when there is none."""
    await store.accept(incoming(1))
    newest = await store.accept(incoming(1, mail_from="bob@example.org"))
    found = await store.find_mail("m1@example.org")
    assert found is not None and found.id == newest.mail_id and found.raw is None
    assert await store.find_mail("nobody@example.org") is None


OLD_ROW = (
    "INSERT INTO mails (received_at, mail_from, rcpt_tos, client_address, tls, message_id, "
    "subject, from_addr, size, raw) VALUES ({})"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_content_digest_migration_is_additive(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store of the schema before the digest column upgrades in place: old rows stay readable
    (and are never a duplicate's match), new mails are deduplicated by content."""
    import psycopg
    from conftest import POSTGRES_URL, _require_postgres
    from psycopg import sql

    import escalator.store.postgres as pg_module
    import escalator.store.sqlite as sqlite_module

    schema = f"t_up_{uuid.uuid4().hex[:12]}"
    module = sqlite_module if backend == "sqlite" else pg_module
    if backend == "postgresql":
        await _require_postgres()
    make = (
        (lambda: SQLiteStore(tmp_path / "up.db"))
        if backend == "sqlite"
        else (lambda: pg_module.PostgresStore(POSTGRES_URL, schema=schema))
    )
    monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:-1])
    old = make()
    await old.open()
    await old.close()
    mail = incoming(5)
    rcpts = '["escalations@localhost"]'
    values = (mail.received_at.isoformat(), mail.mail_from, rcpts, None, 0, mail.message_id,
              mail.subject, mail.from_addr, len(mail.raw), mail.raw)  # fmt: skip
    try:
        if backend == "sqlite":
            with sqlite3.connect(tmp_path / "up.db") as conn:
                conn.execute(OLD_ROW.format(", ".join("?" * 10)), values)
        else:
            async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as c:
                await c.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                pg_values = (mail.received_at, *values[1:4], False, *values[5:])
                await c.execute(OLD_ROW.format(", ".join(["%s"] * 10)).encode(), pg_values)
        monkeypatch.undo()
        store = make()
        await store.open()
        first, second = await store.accept(mail), await store.accept(mail)
        assert not first.duplicate and second.duplicate and second.mail_id == first.mail_id
        listed = await store.list_mails()
        assert [m.mail.message_id for m in listed] == [mail.message_id] * 2
        old_row = await store.get_mail(listed[0].mail.id)
        assert old_row is not None and old_row.raw == mail.raw
        await store.close()
    finally:
        if backend == "postgresql":
            async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as c:
                await c.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
