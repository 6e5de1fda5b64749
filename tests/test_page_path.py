"""The page path (issue 12): a page leaves as its decision commits (sent while that commit runs,
claimed in it, recorded under the row it claimed; no wake, poll, claim or read between),
exactly once in effect, a sender's pages in order while senders go side by side, and the reply
says "paged" only after PagerDuty accepted it. Real store (both backends), real processor and
dispatcher, the PagerDuty, Slack and relay stand-ins."""

from __future__ import annotations

import asyncio
from datetime import datetime

import test_dispatch
from test_dispatch import FRIDAY, World, mail

from escalator.app import page_handoff
from escalator.decider.processor import Processor
from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.store import ActionRow, IncomingMail

world = test_dispatch.world
ON_CALL = FRIDAY.replace(hour=20)  # pages at once, no alarm


def handed(world: World, **options: object) -> tuple[Processor, Dispatcher]:
    """A processor whose decisions hand their pages to the dispatcher, as app.py wires them."""
    dispatcher = world.dispatcher(**options)
    policy = load_policy(world.settings)
    return Processor(world.store, policy, pages=page_handoff(dispatcher)), dispatcher


async def accept(world: World, raw: bytes, at: datetime, sender: str = "ana@x.gov.uk") -> None:
    world.clock.now = max(world.clock.now, at)
    await world.store.accept(IncomingMail(raw, sender, ("escalations@localhost",), None, False, at))


async def pages(world: World) -> list[ActionRow]:
    return [a for a in await world.actions() if a.kind == "page"]


async def test_a_page_leaves_as_its_decision_commits_and_only_then(world: World) -> None:
    """No dispatcher loop and no burst: deciding the mail sends its page, claimed once; the
    outbox's bursts never send it again; the reply then says on-call was paged."""
    processor, dispatcher = handed(world)
    await accept(world, mail(1), ON_CALL)
    try:
        assert await processor.burst() == 1
        await dispatcher.paged()
        assert world.pd.triggered == ["m1@digital.justice.gov.uk"]
        (page,) = await pages(world)
        assert (page.state, page.attempts) == ("sent", 1)
        await world.drain(dispatcher)
    finally:
        processor.close()
    assert world.pd.triggered == ["m1@digital.justice.gov.uk"]
    (reply,) = world.sink.delivered
    assert "on-call engineer has been paged" in reply.message.get_content()


async def test_the_reply_waits_for_its_page_in_flight(world: World) -> None:
    """While PagerDuty holds the page, the outbox's burst takes the reply: it waits for the
    page's outcome in this process (not a retry two seconds later) and then says "paged"."""
    processor, dispatcher = handed(world)
    world.pd.hold.clear()
    await accept(world, mail(1), ON_CALL)
    try:
        await processor.burst()
        while world.pd.arrived == 0:
            await asyncio.sleep(0.01)
        burst = asyncio.ensure_future(dispatcher.burst())
        await asyncio.sleep(0)
        world.pd.hold.set()
        await asyncio.gather(burst, dispatcher.paged())
    finally:
        processor.close()
    reply = next(a for a in await world.actions() if a.kind == "reply")
    assert (reply.state, reply.attempts) == ("sent", 1)
    assert "has been paged" in world.sink.delivered[0].message.get_content()


async def test_a_senders_pages_keep_their_order_while_others_overtake(world: World) -> None:
    """A's first page is held by PagerDuty: A's second waits behind it (a lane per sender,
    across decisions), B's page goes meanwhile; released, every page is sent once."""
    processor, dispatcher = handed(world)
    world.pd.hold.clear()
    try:
        for n, sender, arrived in ((1, "a", 1), (2, "a", 1), (3, "b", 2)):
            address = f"{sender}@x.gov.uk"
            await accept(world, mail(n, sender=address), ON_CALL, address)
            await processor.burst()
            while world.pd.arrived < arrived:  # A's second never arrives while A's first is held
                await asyncio.sleep(0.01)
        world.pd.hold.set()
        await dispatcher.paged()
    finally:
        processor.close()
    keys = [f"m{n}@digital.justice.gov.uk" for n in (1, 3, 2)]
    assert world.pd.triggered == keys
    assert {(p.state, p.attempts) for p in await pages(world)} == {("sent", 1)}


async def test_a_page_sent_for_a_decision_recorded_elsewhere_is_folded_by_its_key(
    world: World,
) -> None:
    """Two deciders (two replicas) take the same stored mail at once: each may send its page
    while its decision commits, before knowing the other's; one decision is recorded, with one
    claim, its page sent under the mail's dedup_key; PagerDuty has one incident."""
    first, first_pages = handed(world)
    second, second_pages = handed(world)
    await accept(world, mail(1), ON_CALL)
    try:
        decided = await asyncio.gather(first.burst(), second.burst())
        await asyncio.gather(first_pages.paged(), second_pages.paged())
    finally:
        first.close()
        second.close()
    assert sum(decided) == 1
    assert set(world.pd.triggered) == {"m1@digital.justice.gov.uk"}
    assert list(world.pd.incidents) == ["m1@digital.justice.gov.uk"]
    (page,) = await pages(world)
    assert (page.state, page.attempts) == ("sent", 1)


async def test_a_stopping_dispatcher_is_handed_no_pages(world: World) -> None:
    """Decided after stop(): nothing is claimed for the page path; the next dispatcher's burst
    (another replica, or this one restarted) sends the page, once."""
    processor, dispatcher = handed(world)
    dispatcher.stop()
    await accept(world, mail(1), ON_CALL)
    try:
        await processor.burst()
        await dispatcher.paged()
        assert world.pd.triggered == []
        (page,) = await pages(world)
        assert (page.state, page.attempts, page.claimed_until) == ("pending", 0, None)
        await world.dispatcher().burst()
    finally:
        processor.close()
    assert world.pd.triggered == ["m1@digital.justice.gov.uk"]


async def test_a_page_whose_process_dies_in_flight_is_sent_again_under_its_key(
    world: World,
) -> None:
    """Killed while PagerDuty holds the handed page: its lease (from the decision's commit)
    keeps it from everyone until it ends; then another dispatcher re-sends it under the same
    dedup_key, so PagerDuty has one incident."""
    dying = await world.store_factory()
    dispatcher = world.dispatcher(dying, lease_seconds=60)
    processor = Processor(dying, load_policy(world.settings), pages=page_handoff(dispatcher))
    world.pd.hold.clear()
    await accept(world, mail(1), ON_CALL)
    try:
        await processor.burst()
        while world.pd.arrived == 0:
            await asyncio.sleep(0.01)
        await dying.close()  # the process is gone: nothing it does reaches the store now
        world.pd.hold.set()
        await dispatcher.paged()
    finally:
        processor.close()
    restarted = world.dispatcher(lease_seconds=60)
    await restarted.burst()  # the ack may go, the reply waits: the page is the dead one's
    assert world.pd.triggered == ["m1@digital.justice.gov.uk"]  # the dead process's send
    world.clock.advance(61)
    await world.drain(restarted)
    (page,) = await pages(world)
    assert (page.state, page.attempts) == ("sent", 2)
    assert list(world.pd.incidents) == ["m1@digital.justice.gov.uk"]
