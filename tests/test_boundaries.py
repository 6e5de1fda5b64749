"""The stages keep to their rooms (issue 10): only the decider reads mail.

- No module of escalator/outbox/ or escalator/review/ imports the mail parser (core/mail.py,
  mail-parser, core/conversation.py) or the decide worker (escalator/decider/), nor calls
  parse_mail: they render and show the typed facts the decide worker stored.
- One mail, accepted over SMTP, decided, dispatched, shown on the review page, released and
  dispatched again, is parsed exactly once (counted).
"""

from __future__ import annotations

import ast
import asyncio
import smtplib
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SettingsFactory

from escalator.app import Service
from escalator.core import mail as core_mail
from escalator.outbox.dispatch import Adapters, Dispatcher
from escalator.policy import load_policy
from escalator.review import deeds
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
