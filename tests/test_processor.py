"""The decide worker: every stored mail decided once, at its received time, rejects held."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SettingsFactory

from escalator.core.mail import parse_mail
from escalator.decider.processor import Foreseeing, Processor, decide_stored
from escalator.policy import load_policy
from escalator.store import IncomingMail, Store

SATURDAY_NIGHT = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)  # no cover: pages wait for 07:00

ESCALATION = (
    b"From: Alice <alice@example.org>\r\nTo: escalations@localhost\r\n"
    b"Subject: Production outage: laa-apply is down\r\nMessage-ID: <{n}@example.org>\r\n\r\n"
    b"Since 23:10 every user gets a 500 error on laa-apply; nobody can submit applications.\r\n"
    b"We are coordinating in #laa-apply-incident.\r\n"
)
NOT_A_MAIL = b"\x00\x01 just some bytes, no headers at all\r\n"


async def accept(store: Store, raw: bytes, at: datetime = SATURDAY_NIGHT) -> int:
    mail = IncomingMail(raw, "alice@example.org", ("escalations@localhost",), None, False, at)
    return (await store.accept(mail)).mail_id


async def test_burst_decides_each_mail_once_at_its_received_time(
    store: Store, make_settings: SettingsFactory
) -> None:
    """Two workers racing over the same backlog still write one decision per mail."""
    settings = make_settings()
    ids = [await accept(store, ESCALATION.replace(b"{n}", str(n).encode())) for n in range(6)]
    first = Processor(store, load_policy(settings))
    second = Processor(store, load_policy(settings))
    try:
        done = await asyncio.gather(first.burst(), second.burst())
    finally:
        first.close()
        second.close()
    assert sum(done) == len(ids)
    for listed in await store.list_mails():
        assert listed.mail.decision is not None
        assert listed.mail.decision is not None
        assert listed.mail.decision.decision["at"] == SATURDAY_NIGHT.isoformat()
        kinds = [a.kind for a in listed.actions]
        assert len(kinds) == len(set(kinds))


async def test_unreadable_bytes_are_rejected_and_held(
    store: Store, make_settings: SettingsFactory
) -> None:
    """Bytes that are no mail at all are still decided: rejected and held for a person."""
    mail_id = await accept(store, NOT_A_MAIL)
    processor = Processor(store, load_policy(make_settings()))
    try:
        assert await processor.burst() == 1
    finally:
        processor.close()
    mail = await store.get_mail(mail_id)
    assert mail is not None and (mail.verdict, mail.review) == ("reject", "held")


async def test_decide_process_that_cannot_start_holds_nothing(
    store: Store, make_settings: SettingsFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """If the decide child cannot even start, mails stay undecided (for later), not held."""
    broken = make_settings(rules_file=tmp_path / "missing-rules.toml")
    await accept(store, ESCALATION.replace(b"{n}", b"x"))
    processor = Processor(store, load_policy(make_settings()), worker_settings=broken)
    task = asyncio.create_task(processor.run())
    for _ in range(600):  # wait for: spawn, crash, restart, failed ping (not a speed check)
        if "decide worker paused" in caplog.text:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    processor.close()
    assert "cannot start" in caplog.text
    (listed,) = await store.list_mails()
    assert listed.mail.verdict is None and listed.mail.review is None


async def test_two_decide_processes_give_each_mail_its_own_decision(
    store: Store, make_settings: SettingsFactory
) -> None:
    """Split across two child processes, every mail still gets the decision of its own bytes."""
    settings = make_settings()
    policy = load_policy(settings)
    raws = [ESCALATION.replace(b"{n}", b"%d" % n) if n % 3 else NOT_A_MAIL for n in range(7)]
    ids = [await accept(store, raw) for raw in raws]
    processor = Processor(store, policy, worker_settings=settings, processes=2)
    try:
        assert await processor.burst() == len(ids)
    finally:
        processor.close()
    for mail_id in ids:
        stored = await store.get_mail(mail_id)
        assert stored is not None and stored.decision is not None
        expected = decide_stored(stored, policy).record
        assert (stored.verdict, stored.reasons) == (expected.verdict, expected.reasons)


INCOMPLETE = (
    b"From: Alice <alice@example.org>\r\nTo: escalations@localhost\r\n"
    b"Subject: Urgent: laa-apply\r\nMessage-ID: <first@example.org>\r\n\r\n"
    b"Since 23:10 every user gets a 500 error on laa-apply; nobody can submit applications.\r\n"
)
FOLLOW_UP = (
    b"From: Alice <alice@example.org>\r\nTo: escalations@localhost\r\n"
    b"Subject: Re: Urgent: laa-apply\r\nMessage-ID: <second@example.org>\r\n"
    b"In-Reply-To: <first@example.org>\r\nReferences: <first@example.org>\r\n\r\n"
    b"Sorry - the channel is #laa-apply-incident\r\n"
)


async def accept_in_thread(store: Store, raw: bytes, minute: int) -> int:
    """As the SMTP handler stores it: with the Message-ID and From address read from headers."""
    parsed = parse_mail(raw)
    mail = IncomingMail(
        raw,
        parsed.from_addr,
        ("escalations@localhost",),
        None,
        False,
        SATURDAY_NIGHT.replace(minute=minute),
        parsed.message_id,
        parsed.subject,
        parsed.from_addr,
    )
    return (await store.accept(mail)).mail_id


async def test_follow_up_completes_a_held_reject_and_pages_once(
    store: Store, make_settings: SettingsFactory
) -> None:
    """'The channel is #x' in reply to a reject for a missing channel escalates the pair: the
    follow-up carries the original's facts, the original leaves review, one page is planned."""
    first = await accept_in_thread(store, INCOMPLETE, 30)
    processor = Processor(store, load_policy(make_settings()))
    try:
        await processor.burst()
        held = await store.get_mail(first)
        assert held is not None and (held.verdict, held.review) == ("reject", "held")
        assert held.reasons == ("missing_slack_channel",)
        second = await accept_in_thread(store, FOLLOW_UP, 40)
        await processor.burst()
    finally:
        processor.close()
    follow_up, original = await store.get_mail(second), await store.get_mail(first)
    assert follow_up is not None and original is not None
    assert (follow_up.verdict, follow_up.slack_channel) == ("escalate", "laa-apply-incident")
    assert follow_up.decision is not None and follow_up.decision.merged_with == (first,)
    assert original.review == "released"
    pages = [a for m in await store.list_mails() for a in m.actions if a.kind == "page"]
    assert len(pages) == 1 and pages[0].dedup_key == "first@example.org"


async def test_follow_up_from_another_sender_is_decided_alone(
    store: Store, make_settings: SettingsFactory
) -> None:
    """Only the original's author can complete it: a stranger's reply is its own mail."""
    first = await accept_in_thread(store, INCOMPLETE, 30)
    processor = Processor(store, load_policy(make_settings()))
    try:
        await processor.burst()
        stranger = FOLLOW_UP.replace(b"alice@example.org", b"mallory@example.net")
        second = await accept_in_thread(store, stranger, 40)
        await processor.burst()
    finally:
        processor.close()
    follow_up, original = await store.get_mail(second), await store.get_mail(first)
    assert follow_up is not None and original is not None
    assert follow_up.verdict == "reject" and original.review == "held"
    assert follow_up.decision is not None and follow_up.decision.merged_with == ()


async def test_an_earlier_mail_without_stored_facts_is_parsed_for_its_follow_up(
    store: Store, make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An original decided before facts were stored (the backfill has not reached it yet) is
    still completed by its follow-up: its raw bytes are parsed in the decide worker, logged."""
    caplog.set_level(logging.INFO, "escalator.decider.processor")
    policy = load_policy(make_settings())
    first = await accept_in_thread(store, INCOMPLETE, 30)
    row = await store.get_mail(first)
    assert row is not None
    record, planned, _ = decide_stored(row, policy)
    assert await store.record_decision(first, record, planned)  # as before facts: none stored
    second = await accept_in_thread(store, FOLLOW_UP, 40)
    processor = Processor(store, policy)
    try:
        await processor.burst()
    finally:
        processor.close()
    follow_up = await store.get_mail(second)
    assert follow_up is not None and follow_up.decision is not None
    assert follow_up.decision.merged_with == (first,) and follow_up.verdict == "escalate"
    assert f"earlier mail {first} has no stored facts" in caplog.text


def incoming(raw: bytes, minute: int) -> IncomingMail:
    """As the SMTP handler hands a mail to the store (headers read, envelope from From)."""
    parsed = parse_mail(raw)
    at = SATURDAY_NIGHT.replace(minute=minute)
    return IncomingMail(
        raw, parsed.from_addr or "x@example.org", ("escalations@localhost",), None, False, at,
        parsed.message_id, parsed.subject, parsed.from_addr,
    )  # fmt: skip


async def test_mails_read_as_they_commit_get_the_decision_of_their_own_bytes(
    store: Store, make_settings: SettingsFactory
) -> None:
    """Through the door `escalator serve` gives the SMTP handler (Foreseeing), a decide child
    reads each mail while it commits, and its decision is finished once stored: the same as
    read only then. A follow-up read alone is read again with the held mail it completes."""
    settings = make_settings()
    policy = load_policy(settings)
    processor = Processor(store, policy, worker_settings=settings, processes=2)
    door = Foreseeing(store, processor)
    raws = [ESCALATION.replace(b"{n}", b"1"), NOT_A_MAIL, INCOMPLETE, FOLLOW_UP]
    ids = []
    try:
        await processor.burst()  # the decide children start
        for minute, raw in enumerate(raws):
            ids.append((await door.accept(incoming(raw, minute))).mail_id)
            assert await processor.burst() == 1
    finally:
        processor.close()
    for mail_id in ids[:2]:
        stored = await store.get_mail(mail_id)
        assert stored is not None and stored.decision is not None
        expected = decide_stored(stored, policy).record
        assert (stored.verdict, stored.reasons) == (expected.verdict, expected.reasons)
    follow_up = await store.get_mail(ids[3])
    assert follow_up is not None and follow_up.decision is not None
    assert (follow_up.verdict, follow_up.decision.merged_with) == ("escalate", (ids[2],))
