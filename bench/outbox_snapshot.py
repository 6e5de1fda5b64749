"""Every outbox action of a fixed corpus, one JSON line each: cmp two runs to prove no change.

Run: .venv/bin/python bench/outbox_snapshot.py OUT.jsonl   (then `cmp BEFORE.jsonl OUT.jsonl`)
The dispatch twin of decision_snapshot.py. For each fixed instant (one per cover window, working
day and weekend), a fresh SQLite store accepts the corpora one mail at a time as the SMTP handler
stores them (shared/corpus/samples, the blind set, the labelled cases, shared/corpus/real, and a
few conversations: a follow-up completing a held mail, a held merged follow-up, a UTF-8
Message-ID answered, a probe); each is decided as the decide worker decides it and dispatched in
dry run with a clock fixed per mail; then every held mail is released and dispatched. Each line
is a mail's stored decision or one action with its planned payload and the exact payload it
would have sent. Clocks are fixed, ids follow the accept order: two runs are byte-identical.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from escalator.core.policy import Policy
from escalator.decider.processor import Processor
from escalator.ingress.smtp import header_summary
from escalator.outbox.dispatch import Adapters, Dispatcher
from escalator.policy import load_policy
from escalator.probe import build_probe, probe_mark
from escalator.review.deeds import release
from escalator.settings import Settings
from escalator.store import IncomingMail, Store
from escalator.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]
# The labelled cases live in a test module, not in a package.
cases: Any = importlib.import_module("test_triage_cases")

CORPUS = ROOT.parent / "shared" / "corpus"
BLIND = ROOT / "tests" / "mails" / "blind"
NOT_MAIL = ("LICENSE", "NOTICE", "README", "MANIFEST")
PROBE_KEY = b"outbox-snapshot-probe-key"
# Europe/London wall clock: one instant per cover window (and a weekend, and a bank holiday).
INSTANTS = {
    "tue-0930-support_and_on_call": datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    "tue-1200-support": datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
    "tue-2000-on_call": datetime(2026, 12, 1, 20, 0, tzinfo=UTC),
    "tue-2300-no_cover": datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
    "sat-1400-weekend": datetime(2026, 11, 28, 14, 0, tzinfo=UTC),
    "xmas-0300-no_cover": datetime(2026, 12, 25, 3, 0, tzinfo=UTC),
}
Item = tuple[str, bytes, str]  # name, raw bytes, envelope sender


def corpus() -> Iterator[Item]:
    for path in sorted((CORPUS / "samples").glob("*.eml")):
        yield f"sample:{path.name}", path.read_bytes(), "ravi@example.org"
    for path in sorted(BLIND.glob("*.eml")):
        yield f"blind:{path.name}", path.read_bytes(), "someone@example.org"
    for n, case in enumerate(cases.CASES):
        # The cases share one Message-ID: one each, or the store keeps only the first.
        raw = case.raw.replace(b"<case@", f"<case-{n}@".encode(), 1)
        yield f"case:{case.name}", raw, "someone@example.org"
    for path in sorted((CORPUS / "real").rglob("*")):
        if path.is_file() and not path.name.startswith(NOT_MAIL):
            yield f"real:{path.relative_to(CORPUS)}", path.read_bytes(), "someone@example.org"
    yield from conversations()


FACTS = "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\r\n"


def eml(
    n: str,
    body: str,
    parent: str | None = None,
    subject: str = "Urgent: LAA apply",
    sender: str = "Ana Analyst <ana@digital.justice.gov.uk>",
) -> bytes:
    thread = f"In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n" if parent else ""
    return (
        f"From: {sender}\r\nTo: escalations@localhost\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{n}>\r\n{thread}"
        "Date: Tue, 01 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        f"\r\nHi,\r\n\r\n{body}\r\nAna\r\n"
    ).encode()


def conversations() -> Iterator[Item]:
    """Follow-ups: one completing a held mail, one merged but still held, a UTF-8 Message-ID,
    and a colleague's reply-all update on an escalated thread (issue 13.5)."""
    ana = "ana@digital.justice.gov.uk"
    yield "conv:a-original", eml("a1@justice.example", FACTS), ana
    channel = "Sorry, the channel is #laa-apply-incident.\r\n"
    yield "conv:a-follow-up", eml("a2@justice.example", channel, "a1@justice.example", "Re: x"), ana
    yield "conv:b-original", eml("b1@justice.example", FACTS), ana
    nudge = "Any news on this? Still waiting.\r\n"
    yield "conv:b-held-follow-up", eml("b2@justice.example", nudge, "b1@justice.example"), ana
    utf8 = "c1-ré@justice.example"
    yield "conv:c-utf8-original", eml(utf8, FACTS), ana
    yield "conv:c-utf8-follow-up", eml("c2@justice.example", channel, utf8, "Re: x"), ana
    yield "conv:probe", probe_mail(), "escalator-probe@localhost"
    yield "conv:d-escalated", eml("d1@justice.example", FACTS + channel), ana
    bo, update = "bo@digital.justice.gov.uk", "Update: payments fail too, since 10:55.\r\n"
    reply_all = eml("d2@justice.example", update + channel, "d1@justice.example", "RE: x", bo)
    yield "conv:d-reply-all-update", reply_all, bo


def probe_mail() -> bytes:
    message = build_probe(PROBE_KEY, "escalator-probe@localhost", "escalations@localhost", FIXED)
    message.replace_header("Message-ID", "<probe-snapshot@localhost>")
    message.replace_header("Date", format_datetime(FIXED))
    message.replace_header("X-Escalator-Probe", probe_mark(PROBE_KEY, "probe-snapshot@localhost"))
    return message.as_bytes()


FIXED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def incoming(raw: bytes, mail_from: str, at: datetime) -> IncomingMail:
    """The mail as the SMTP handler stores it (its header read included)."""
    message_id, subject, from_addr = header_summary(raw)
    return IncomingMail(
        raw=raw,
        mail_from=mail_from,
        rcpt_tos=("escalations@localhost",),
        client_address="127.0.0.1",
        tls=False,
        received_at=at,
        message_id=message_id,
        subject=subject,
        from_addr=from_addr,
    )


class Run:
    """One instant: a fresh store, the decide worker in-thread, a dry-run dispatcher."""

    def __init__(self, store: Store, policy: Policy, settings: Settings, at: datetime) -> None:
        self.store, self.policy, self.settings, self.at = store, policy, settings, at
        self.processor = Processor(store, policy, probe_key=PROBE_KEY, batch_size=1)
        self.step = 0
        self.names: dict[int, str] = {}

    async def dispatch(self) -> None:
        """Everything due, at a clock of its own: two days on (deferred pages are due), one
        step of 11 minutes per call (so the reply loop guard never couples two mails)."""
        self.step += 1
        now = self.at + timedelta(days=2, minutes=11 * self.step)
        dispatcher = Dispatcher(
            self.store, self.settings, adapters=Adapters(), clock=lambda: now, draw=lambda: 0.5
        )
        await dispatcher.burst()
        await dispatcher.close()

    async def accept_all(self) -> None:
        for name, raw, mail_from in corpus():
            accepted = await self.store.accept(incoming(raw, mail_from, self.at))
            self.names.setdefault(accepted.mail_id, name)
            await self.processor.burst()
            await self.dispatch()

    async def release_held(self) -> None:
        held = await self.store.mails_in_review("held", 100_000)
        for mail in sorted(held, key=lambda row: row.id):
            at = self.at + timedelta(minutes=3)
            await release(self.store, self.policy, mail.id, "support@snapshot", "ok", now=at)
            await self.dispatch()


def mail_line(label: str, name: str, mail: Any) -> dict[str, Any]:
    return {
        "instant": label,
        "name": name,
        "mail": mail.id,
        "message_id": mail.message_id,
        "verdict": mail.verdict,
        "review": mail.review,
        "decision": stored_json(mail.decision),
    }


def stored_json(decision: Any) -> Any:
    """The decision as stored: a typed record (issue 10) is written in its one JSON form."""
    return decision.to_dict() if hasattr(decision, "to_dict") else decision


def action_line(label: str, name: str, action: Any) -> dict[str, Any]:
    return {
        "instant": label,
        "name": name,
        "mail": action.mail_id,
        "action": action.id,
        "kind": action.kind,
        "state": action.state,
        "due_at": action.due_at.isoformat(),
        "dedup_key": action.dedup_key,
        "note": action.last_error,
        "planned": action.payload,
        "sent": action.result,
    }


async def snapshot(label: str, at: datetime, out: Any, policy: Policy) -> None:
    settings = Settings()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        store = SQLiteStore(Path(tmp) / "snapshot.db")
        await store.open()
        run = Run(store, policy, settings, at)
        try:
            await run.accept_all()
            await run.release_held()
            for listed in await store.list_mails():
                name = run.names.get(listed.mail.id, "?")
                write(out, mail_line(label, name, listed.mail))
                for action in sorted(listed.actions, key=lambda a: a.id):
                    write(out, action_line(label, name, action))
        finally:
            run.processor.close()
            await store.close()


def write(out: Any, row: dict[str, Any]) -> None:
    out.write(json.dumps(row, sort_keys=True, default=str) + "\n")


async def main() -> None:
    policy = load_policy(Settings())
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for label, at in INSTANTS.items():
            await snapshot(label, at, out, policy)


if __name__ == "__main__":
    asyncio.run(main())
