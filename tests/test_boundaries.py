"""The stages keep to their rooms (issue 10): only the decider reads mail.

- No module of escalator/outbox/ or escalator/review/ imports the mail parser (core/mail.py,
  mail-parser, core/conversation.py) or the decide worker (escalator/decider/), nor calls
  parse_mail: they render and show the typed facts the decide worker stored. Nor do they load
  either at run time, by way of what they do import (checked in a fresh interpreter).
- One mail, accepted over SMTP, decided, dispatched, shown on the review page, released and
  dispatched again, is parsed exactly once (counted). So is every mail of a conversation: an
  escalation that pages, a follow-up completing a held original (the original is read from the
  facts stored when it was decided), another sender's report joining an open outage and a reply
  updating an open escalation (joining reads the stored facts, never the mails again).
"""

from __future__ import annotations

import ast
import asyncio
import smtplib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SettingsFactory

from escalator.app import Service, join_window, storm_window
from escalator.core import mail as core_mail
from escalator.decider.processor import Processor
from escalator.ingress.smtp import start_smtp
from escalator.outbox.dispatch import Adapters, Dispatcher
from escalator.policy import load_policy
from escalator.review import deeds
from escalator.settings import Settings
from escalator.store import MailRow, Store

PACKAGE = Path(__file__).resolve().parents[1] / "escalator"
FORBIDDEN = (
    "escalator.core.mail",
    "mailparser",
    "escalator.core.conversation",
    "escalator.decider",
)
RAW = (
    b"From: Ana <ana@digital.justice.gov.uk>\r\nTo: escalations@localhost\r\n"
    b"Subject: LAA apply down\r\nMessage-ID: <once@justice.example>\r\n\r\n"
    b"Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\r\n"
    b"Any update on my PR?\r\n"
)


def _imports_and_calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Name) and node.id == "parse_mail":
            names.add("parse_mail")
    return names


@pytest.mark.parametrize("room", ["outbox", "review"])
def test_outbox_and_review_import_no_parser_and_no_decider(room: str) -> None:
    """Static: their modules name neither the parser nor the decide worker."""
    offenders = {}
    for path in sorted((PACKAGE / room).glob("*.py")):
        bad = {
            name
            for name in _imports_and_calls(path)
            if name == "parse_mail" or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
        }
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def _loaded_by_importing(modules: list[str]) -> str:
    """Which FORBIDDEN modules a fresh interpreter has loaded once it imported `modules`."""
    probe = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        f"print(sorted(n for n in {FORBIDDEN!r} if n in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return run.stdout.strip()


@pytest.mark.parametrize("room", ["outbox", "review"])
def test_outbox_and_review_load_no_parser_and_no_decider(room: str) -> None:
    """At run time: importing every module of the room loads neither the parser nor the decide
    worker through what it imports (Policy and route come from core/policy.py, which reads no
    mail; core/authenticity.py names ParsedMail for typing only)."""
    paths = sorted((PACKAGE / room).glob("*.py"))
    modules = [f"escalator.{room}" + ("" if p.stem == "__init__" else f".{p.stem}") for p in paths]
    assert len(modules) > 1
    assert _loaded_by_importing(modules) == "[]"


def test_the_planner_loads_no_parser() -> None:
    """core/actions.py names ParsedMail for typing only, and what it borrows from the triage
    (from_trusted_list) does not load the parser either: rendering what was decided reaches
    no mail parser through the planner (checked in a fresh interpreter)."""
    assert _loaded_by_importing(["escalator.core.actions"]) == "[]"


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every loaded escalator module's parse_mail, counted (the parser itself still runs)."""
    calls: list[bytes] = []
    real = core_mail.parse_mail

    def counted(raw: bytes) -> Any:
        calls.append(raw)
        return real(raw)

    for name, module in list(sys.modules.items()):
        if name.startswith("escalator") and getattr(module, "parse_mail", None) is real:
            monkeypatch.setattr(module, "parse_mail", counted)
    return calls


async def _decided(store: Store) -> MailRow:
    for _ in range(1000):
        held = await store.mails_in_review("held", 10)
        if held:
            return held[0]
        await asyncio.sleep(0.01)
    raise AssertionError("the mail was never decided")


async def test_one_accepted_mail_is_parsed_once(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted over SMTP, decided (in-thread, so the count sees it), dispatched, viewed,
    released on the review deed and dispatched again: one parse, in the decide worker."""
    calls = _count_parses(monkeypatch)
    settings = make_settings()
    policy = load_policy(settings)  # a policy given: decisions run in this process
    service = Service(settings, policy=policy, with_dispatch_and_web=False)
    await service.start()
    try:
        host, port = service.smtp_address
        send: Callable[[], Any] = lambda: smtplib.SMTP(host, port, timeout=30).sendmail(  # noqa: E731 - one line
            "ana@digital.justice.gov.uk", ["escalations@localhost"], RAW
        )
        await asyncio.to_thread(send)
        store = service.store
        held = await _decided(store)  # by the running decide worker, woken by the accept
        dispatcher = Dispatcher(store, settings, adapters=Adapters())
        await dispatcher.burst()
        view = await deeds.load_view(store, held.id)
        assert view.facts is not None and "502 error" in view.facts.body.new
        # released on a Saturday evening (on call): the release pages whatever the real hour
        on_call = datetime(2026, 11, 28, 21, tzinfo=UTC)
        outcome = await deeds.release(store, policy, held.id, "token:amy", "real", now=on_call)
        assert outcome.changed and "page" in outcome.planned
        await dispatcher.burst()
        await dispatcher.close()
        actions = await store.mail_actions(held.id)
        page = next(a for a in actions if a.kind == "page")
        assert page.state == "dry_run" and page.result is not None
    finally:
        await service.stop(deadline=5)
    assert [raw for raw in calls if raw == RAW] == [RAW]
    assert len(calls) == 1


# -- every mail of a conversation, parsed once --------------------------------------------------

EVENING = datetime(2026, 11, 27, 20, tzinfo=UTC)  # a Friday evening: on call, escalations page
ANA, BO = "ana@digital.justice.gov.uk", "bo@digital.justice.gov.uk"
OUTAGE = "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply."


def _mail(
    n: int, sender: str, text: str, answers: int | None = None, subject: str = "LAA apply down"
) -> bytes:
    thread = "" if answers is None else f"In-Reply-To: <c{answers}@justice.example>\r\n"
    return (
        f"From: <{sender}>\r\nTo: escalations@localhost\r\nCc: {ANA}, {BO}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <c{n}@justice.example>\r\n{thread}\r\n{text}\r\n"
    ).encode()


PAGED = _mail(1, ANA, f"{OUTAGE}\r\nOur incident channel is #laa-apply-incident.")
HELD = _mail(1, ANA, OUTAGE)  # no channel named: held for review
COMPLETING = _mail(2, ANA, "The channel is #laa-apply-incident.", 1, "Re: your reply")
ANOTHER_REPORT = _mail(
    2, BO, "LAA apply is down for us too: 502 on submit. Channel #laa-apply-incident."
)
UPDATE = _mail(2, BO, f"Still down at 20:05. {OUTAGE} Channel #laa-apply-incident.", answers=1)


@dataclass
class Conversation:
    """The SMTP listener at a pinned instant, the decide worker in this process (so the count
    sees its parses) with the storm and join windows of the settings, a dry-run dispatcher."""

    settings: Settings
    store: Store
    processor: Processor
    address: tuple[str, int]
    at: list[datetime]

    async def send(self, sender: str, raw: bytes, minutes: int) -> MailRow:
        """Accepted over SMTP `minutes` after EVENING, decided, dispatched and viewed."""
        self.at[0] = EVENING + timedelta(minutes=minutes)
        await asyncio.to_thread(_send, self.address, sender, raw)
        await self.processor.burst()
        dispatcher = Dispatcher(self.store, self.settings, adapters=Adapters())
        await dispatcher.burst()
        await dispatcher.close()
        row = await self.store.find_mail(_message_id(raw))
        assert row is not None
        view = await deeds.load_view(self.store, row.id)
        assert view.facts is not None and view.facts.message_id == row.message_id
        return row


def _send(address: tuple[str, int], sender: str, raw: bytes) -> None:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.sendmail(sender, ["escalations@localhost"], raw)


def _message_id(raw: bytes) -> str:
    return raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode()


@asynccontextmanager
async def conversation(settings: Settings, store: Store) -> AsyncIterator[Conversation]:
    policy = load_policy(settings)
    processor = Processor(
        store, policy, storm_window=storm_window(settings), join_window=join_window(settings)
    )
    at = [EVENING]
    smtp = await start_smtp(settings, store, clock=lambda: at[0])
    try:
        yield Conversation(settings, store, processor, smtp.address, at)
    finally:
        await smtp.stop(deadline=5)
        processor.close()


async def _paged(talk: Conversation, row: MailRow) -> None:
    (page,) = [a for a in await talk.store.mail_actions(row.id) if a.kind == "page"]
    assert page.state == "dry_run" and row.verdict == "escalate"


async def _completed(talk: Conversation, row: MailRow) -> None:
    (original,) = [m.mail for m in await talk.store.list_mails() if m.mail.id != row.id]
    assert row.decision is not None and row.decision.merged_with == (original.id,)
    assert row.verdict == "escalate" and original.review == "released"


async def _joined(talk: Conversation, row: MailRow) -> None:
    assert row.decision is not None and row.decision.joined is not None


async def _updated(talk: Conversation, row: MailRow) -> None:
    assert row.decision is not None and row.decision.update is not None


SCENARIOS: dict[str, tuple[list[tuple[str, bytes]], Callable[[Conversation, MailRow], Any]]] = {
    "an escalation that pages": ([(ANA, PAGED)], _paged),
    "a follow-up completing a held original": ([(ANA, HELD), (ANA, COMPLETING)], _completed),
    "another sender joining an open outage": ([(ANA, PAGED), (BO, ANOTHER_REPORT)], _joined),
    "a reply updating an open escalation": ([(ANA, PAGED), (BO, UPDATE)], _updated),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_every_accepted_mail_of_a_conversation_is_parsed_once(
    scenario: str, make_settings: SettingsFactory, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each mail accepted over SMTP, decided (joining what it belongs to), dispatched and viewed
    is parsed once, by the decide worker: a later mail never has an earlier one parsed again."""
    calls = _count_parses(monkeypatch)
    mails, check = SCENARIOS[scenario]
    async with conversation(make_settings(), store) as talk:
        for minutes, (sender, raw) in enumerate(mails):
            last = await talk.send(sender, raw, minutes * 3)
        await check(talk, last)
    assert calls == [raw for _, raw in mails]
