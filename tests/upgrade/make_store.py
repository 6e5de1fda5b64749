"""Write tests/upgrade/store-before-facts.sql and expected.json with escalator as it was BEFORE
facts were stored (issue 10): run with that code on the path, e.g. from a worktree at 8aff1ba:

    PYTHONPATH=/path/to/old/checkout .venv/bin/python tests/upgrade/make_store.py tests/upgrade

The store holds what an upgrade meets: a page deferred to 07:00 still pending, an alarm that
failed (to be replayed), and a held follow-up that was decided together with its held original.
expected.json holds what the old code then sent for each (dry run): test_upgrade.py checks that
the new code sends the same, except the release, which now carries the original's words.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from escalator.decider.processor import Processor
from escalator.ingress.smtp import header_summary
from escalator.outbox.dispatch import Adapters, Dispatcher
from escalator.policy import load_policy
from escalator.review.deeds import release
from escalator.settings import Settings
from escalator.store import IncomingMail
from escalator.store.sqlite import SQLiteStore

SATURDAY_NIGHT = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)  # no cover: page at 07:00
SUNDAY_MORNING = datetime(2026, 11, 29, 7, 1, tzinfo=UTC)
ANA = "ana@digital.justice.gov.uk"
FACTS = "Since 23:10 every LAA apply user gets a 502 error on submit, so nobody can apply."


def mail(n: str, body: str, parent: str | None = None, subject: str = "LAA apply down") -> bytes:
    thread = f"In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n" if parent else ""
    return (
        f"From: Ana Analyst <{ANA}>\r\nTo: escalations@localhost\r\nSubject: {subject}\r\n"
        f"Message-ID: <{n}@justice.example>\r\n{thread}Date: Sat, 28 Nov 2026 23:29:00 +0000\r\n"
        f"\r\nHi,\r\n\r\n{body}\r\n\r\nAna\r\n"
    ).encode()


MAILS = {
    "deferred": mail("deferred", FACTS + "\r\nWe are in #laa-apply-incident."),
    "original": mail("original", FACTS),
    "follow-up": mail("follow-up", "Any news? Still broken.", "original@justice.example", "Re: x"),
}


async def accept(store: SQLiteStore, raw: bytes, at: datetime) -> int:
    message_id, subject, from_addr = header_summary(raw)
    incoming = IncomingMail(
        raw, ANA, ("escalations@localhost",), None, False, at, message_id, subject, from_addr
    )
    return (await store.accept(incoming)).mail_id


async def dispatch(store: SQLiteStore, now: datetime) -> None:
    dispatcher = Dispatcher(store, Settings(), adapters=Adapters(), clock=lambda: now)
    await dispatcher.burst()
    await dispatcher.close()


async def build(path: Path) -> dict[str, int]:
    store = SQLiteStore(path)
    await store.open()
    processor = Processor(store, load_policy(Settings()), batch_size=1)
    ids = {}
    for minute, (name, raw) in enumerate(MAILS.items()):
        ids[name] = await accept(store, raw, SATURDAY_NIGHT + timedelta(minutes=minute))
        await processor.burst()
    processor.close()
    actions = await store.mail_actions(ids["deferred"])
    alarm = next(a for a in actions if a.kind == "alarm")
    await store.finish_action(alarm.id, "failed", "Slack: internal_error (gave up)")
    await dispatch(store, SATURDAY_NIGHT + timedelta(minutes=5))  # ack, replies: not the page
    ids["alarm"] = alarm.id
    await store.close()
    return ids


async def expected(path: Path, ids: dict[str, int]) -> dict[str, Any]:
    """What the old code sends from that store: the page at 07:01, the replayed alarm, the
    release of the held follow-up (and, for the record, its page)."""
    store = SQLiteStore(path)
    await store.open()
    await dispatch(store, SUNDAY_MORNING)
    await store.replay_action(ids["alarm"], "cli:op", SUNDAY_MORNING)
    await dispatch(store, SUNDAY_MORNING)
    policy = load_policy(Settings())
    await release(store, policy, ids["follow-up"], "token:amy", "real", now=SUNDAY_MORNING)
    await dispatch(store, SUNDAY_MORNING + timedelta(minutes=1))
    sent, incidents = {}, {}
    for listed in await store.list_mails():
        for action in listed.actions:
            key = f"{listed.mail.id}:{action.kind}:{action.id}"
            sent[key] = [action.state, action.result]
            incidents[key] = await old_incident(store, action)
    await store.close()
    return {"ids": ids, "sent": sent, "incidents": incidents}


INCIDENT_FIELDS = (
    "sender", "sender_name", "subject", "message_id", "references", "facts", "verdict",
    "reasons", "slack_channel", "window", "page", "page_at", "alarm", "dedup_key", "notes",
)  # fmt: skip


async def old_incident(store: SQLiteStore, action: Any) -> dict[str, Any]:
    """What the old dispatcher handed the renderers for `action` (its private API, as it was:
    it parsed the mail, and the earlier mails it found under "merged_with", to build it)."""
    dispatcher = Dispatcher(store, Settings(), adapters=Adapters(), clock=lambda: SUNDAY_MORNING)
    loaded = (await dispatcher._load({action.mail_id}))[action.mail_id]
    incident = dispatcher._incident(*loaded, action)
    return {name: _plain(getattr(incident, name)) for name in INCIDENT_FIELDS}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return list(value) if isinstance(value, tuple) else value


def dump(path: Path, out: Path) -> None:
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        lines = list(conn.iterdump())
    out.write_text("\n".join([*lines, f"PRAGMA user_version = {version};", ""]), "utf-8")


async def main(folder: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "escalator.db"
        ids = await build(db)
        dump(db, folder / "store-before-facts.sql")
        result = await expected(db, ids)
    text = json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False)
    (folder / "expected.json").write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
