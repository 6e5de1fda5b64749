"""`escalator replay`: a failed action goes back to pending with a fresh horizon, audited."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

from conftest import SettingsFactory
from test_store import T0, incoming, planned, record

from escalator.core.retry import failing_since
from escalator.store import ActionRow, Store, open_store


async def failed_page(store: Store) -> ActionRow:
    """A page that failed for good, as the dispatcher leaves it after the horizon."""
    mail_id = (await store.accept(incoming())).mail_id
    await store.record_decision(mail_id, record(), planned("page", "reply"))
    claimed = await store.claim_due_actions(T0, 10, 60)
    page = next(action for action in claimed if action.kind == "page")
    await store.finish_action(page.id, "failed", error="gave up after 9 attempts over 600 s")
    return page


async def test_replay_puts_a_failed_action_back_due_now(store: Store) -> None:
    """Replay: pending, due now, no 'failing since' (new horizon), one audit entry."""
    page = await failed_page(store)
    now = T0 + timedelta(hours=1)
    replayed = await store.replay_action(page.id, "cli:alice", now)
    assert replayed is not None and replayed.state == "pending"
    assert replayed.due_at == now and replayed.last_error == "replayed by cli:alice"
    assert failing_since(replayed.last_error) is None
    audit = await store.audit_log(page.mail_id)
    assert [(a.who, a.what) for a in audit] == [("cli:alice", "replayed")]
    assert page.id in [a.id for a in await store.claim_due_actions(now, 10, 60)]


async def test_only_failed_actions_are_replayed(store: Store) -> None:
    """A pending or sent action, or an unknown id, is refused and nothing is audited."""
    page = await failed_page(store)
    assert await store.replay_action(page.id, "cli:a", T0) is not None
    assert await store.replay_action(page.id, "cli:a", T0) is None  # pending now
    await store.finish_action(page.id, "sent")
    assert await store.replay_action(page.id, "cli:a", T0) is None
    assert await store.replay_action(99_999, "cli:a", T0) is None
    assert len(await store.audit_log(page.mail_id)) == 1


def test_replay_command(make_settings: SettingsFactory) -> None:
    """The CLI replays a failed action (exit 0) and refuses anything else (exit 1, clear text)."""
    settings = make_settings()

    async def prepare() -> int:
        store = open_store(settings)
        await store.open()
        try:
            return (await failed_page(store)).id
        finally:
            await store.close()

    action_id = asyncio.run(prepare())
    env = {**os.environ, "ESCALATOR_DATA_DIR": str(settings.data_dir)}

    def replay(target: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "escalator", "replay", str(target)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    done = replay(action_id)
    assert done.returncode == 0, done.stderr
    assert f"action {action_id} (page of mail" in done.stdout
    again = replay(action_id)
    assert again.returncode == 1 and "not a failed action" in again.stderr
    assert "Traceback" not in again.stderr
