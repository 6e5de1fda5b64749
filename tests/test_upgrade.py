"""An upgrade: a store written before facts were stored behaves the same under today's code.

tests/upgrade/store-before-facts.sql was written by escalator at 8aff1ba (tests/upgrade/
make_store.py): a page deferred to 07:00 still pending, an alarm that failed, and a held
follow-up decided together with its held original. expected.json is what that code then sent
(dry run) and the incident its dispatcher built for each action (by parsing). Here the new
code opens the same store (migrating it), backfills the facts, sends the deferred page, replays
the alarm and releases the follow-up: every incident and payload is the same, except that the
released follow-up's page now carries its original's words (the defect fix). The incidents do
not depend on how renderers word things, so they hold as the rendering changes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer
from upgrade.make_store import FACTS, INCIDENT_FIELDS, SUNDAY_MORNING
from upgrade.make_store import _plain as _plain  # one JSON form for both sides

from escalator.decider.backfill import backfill_facts
from escalator.outbox.dispatch import Adapters, Dispatcher
from escalator.outbox.incident import Frames
from escalator.policy import load_policy
from escalator.review.deeds import release
from escalator.settings import Settings
from escalator.store.sqlite import SQLiteStore

FIXTURE = Path(__file__).parent / "upgrade"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text("utf-8"))
IDS: dict[str, int] = EXPECTED["ids"]
StartServer = Callable[..., RunningServer]


def restore(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript((FIXTURE / "store-before-facts.sql").read_text("utf-8"))
    return path


@pytest.fixture
async def old_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(restore(tmp_path / "escalator.db"))
    await store.open()
    yield store
    await store.close()


async def dispatch(store: SQLiteStore, offset: timedelta = timedelta(0)) -> None:
    now = SUNDAY_MORNING + offset
    dispatcher = Dispatcher(store, Settings(), adapters=Adapters(), clock=lambda: now)
    await dispatcher.burst()
    await dispatcher.close()


async def sent(store: SQLiteStore) -> dict[str, Any]:
    return {
        f"{listed.mail.id}:{action.kind}:{action.id}": [action.state, action.result]
        for listed in await store.list_mails()
        for action in listed.actions
    }


async def test_old_store_pages_replays_and_releases_as_before(old_store: SQLiteStore) -> None:
    """Deferred page and replayed alarm: the same payloads. Release: the same, plus the words
    of the original the follow-up was decided with (before: the follow-up's words alone)."""
    assert await backfill_facts(old_store) == 3
    await dispatch(old_store)
    await old_store.replay_action(IDS["alarm"], "cli:op", SUNDAY_MORNING)
    await dispatch(old_store)
    policy = load_policy(Settings())
    await release(old_store, policy, IDS["follow-up"], "token:amy", "real", now=SUNDAY_MORNING)
    await dispatch(old_store, timedelta(minutes=1))
    now, before = await sent(old_store), EXPECTED["sent"]
    assert sorted(now) == sorted(before)
    changed = sorted(key for key in now if now[key] != before[key])
    assert changed == [f"{IDS['follow-up']}:page:7"]
    new_page, old_page = now[changed[0]][1]["event"], before[changed[0]][1]["event"]
    new_words, old_words = (page["payload"]["custom_details"] for page in (new_page, old_page))
    assert FACTS in new_words["what they wrote"] and FACTS not in old_words["what they wrote"]
    assert new_words["since"] == "23:10" and old_words["since"] == "not stated"
    # issue 13: the original's facts lead (the subject says little), the follow-up is an update,
    # and every mail of the thread is linked
    assert "Since 23:10" in new_page["payload"]["summary"]
    assert "Update from the sender:" in new_words["what they wrote"]
    thread = [link for link in new_page["links"] if link["text"].startswith("Mail #")]
    assert [link["text"].split(" (")[1] for link in thread] == ["first mail)", "update)"]
    new_page["links"] = [link for link in new_page["links"] if link not in thread]
    for page in (new_page, old_page):  # what the original's words add; the rest is the same
        page["payload"].pop("summary")
        # 'what is wrong' leads with the original's words too (issue 13)
        for field in ("what they wrote", "since", "what is wrong"):
            page["payload"]["custom_details"].pop(field)
    assert new_page == old_page


async def test_old_store_renders_from_the_incident_the_old_code_built(
    old_store: SQLiteStore,
) -> None:
    """The renderers' input, action by action, is what the old dispatcher built by parsing
    (expected.json "incidents", taken after the release), whatever the renderers make of it
    since: only the released follow-up's actions differ, by the original's words (the fix: the
    old code lost them once the release moved "merged_with" down a level)."""
    assert await backfill_facts(old_store) == 3
    await dispatch(old_store)
    await old_store.replay_action(IDS["alarm"], "cli:op", SUNDAY_MORNING)
    await dispatch(old_store)
    policy = load_policy(Settings())
    await release(old_store, policy, IDS["follow-up"], "token:amy", "real", now=SUNDAY_MORNING)
    frames, before = Frames(Settings(), lambda: SUNDAY_MORNING), EXPECTED["incidents"]
    now: dict[str, dict[str, Any]] = {}
    for listed in await old_store.list_mails():
        for action in listed.actions:
            incident = frames.incident(listed.mail, action)
            now[f"{listed.mail.id}:{action.kind}:{action.id}"] = {
                name: _plain(getattr(incident, name)) for name in INCIDENT_FIELDS
            }
    assert sorted(now) == sorted(before)
    changed = sorted(key for key in now if now[key] != before[key])
    assert changed and all(key.startswith(f"{IDS['follow-up']}:") for key in changed)
    assert f"{IDS['follow-up']}:page:7" in changed
    for key in changed:
        new, old = now[key], before[key]
        assert FACTS in new.pop("facts") and FACTS not in old.pop("facts")
        assert new == old


async def test_backfill_reads_each_old_mail_once_and_only_once(old_store: SQLiteStore) -> None:
    """Facts are stored for every decided mail with raw bytes; a second pass finds nothing."""
    assert await backfill_facts(old_store) == 3
    assert await backfill_facts(old_store) == 0
    follow_up = await old_store.get_mail(IDS["follow-up"])
    assert follow_up is not None and follow_up.facts is not None
    assert FACTS in follow_up.facts.facts  # the conversation, as the decide worker read it


@pytest.mark.slow
def test_service_start_backfills_before_dispatching(
    start_server: StartServer, tmp_path: Path
) -> None:
    """The service backfills at start, before its dispatcher: the overdue deferred page then
    leaves with its facts."""
    store = SQLiteStore(restore(tmp_path / "old.db"))
    server: RunningServer = start_server(store=store)
    deferred = server.call(store.get_mail(IDS["deferred"]))
    assert deferred is not None and deferred.facts is not None
    assert FACTS in deferred.facts.facts
