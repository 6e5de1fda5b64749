"""The review deeds (escalator/review/deeds.py), the store methods behind them, retention, CLI."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from reviewkit import ON_CALL, SUPPORT, mail_bytes, seed
from standins.pagerduty import PagerDutyStandIn
from standins.slack import SlackStandIn, mentions

from escalator import cli
from escalator.cli.list import mail_json
from escalator.core.policy import Policy
from escalator.outbox.dispatch import Dispatcher
from escalator.policy import load_policy
from escalator.review import deeds
from escalator.settings import Settings
from escalator.store import Store, retention
from escalator.store.sqlite import SQLiteStore


@pytest.fixture
def policy(settings: Settings) -> Policy:
    return load_policy(settings)


async def test_held_mail_explains_its_reject(store: Store, policy: Policy) -> None:
    """A rejected mail is held, and its view names the reasons and the rule that matched."""
    mail_id = await seed(store, policy, mail_bytes())
    held = await store.mails_in_review("held", 10)
    assert [mail.id for mail in held] == [mail_id]
    view = deeds.mail_view(held[0])
    assert view.reasons[0] == "not_service_impacting"
    assert "rule pr_chaser matched 'any update on my PR' in subject" in view.evidence[0]
    assert view.sender == "Dev Person <dev@justice.gov.uk>"
    assert view.facts is not None and "any update on my PR?" in view.facts.body.new


async def test_held_list_is_newest_first(store: Store, policy: Policy) -> None:
    """The queue shows the newest mail first, whatever order they were stored in."""
    old = await seed(store, policy, mail_bytes(message_id="<a@x>"), received_at=ON_CALL)
    new = await seed(
        store, policy, mail_bytes(message_id="<b@x>"), received_at=ON_CALL + timedelta(hours=1)
    )
    older = await seed(
        store, policy, mail_bytes(message_id="<c@x>"), received_at=ON_CALL - timedelta(hours=1)
    )
    assert [m.id for m in await store.mails_in_review("held", 10)] == [new, old, older]


async def test_release_on_call_pages_now_and_tells_the_sender(store: Store, policy: Policy) -> None:
    """Release routes by the window at release time: on call, a page now and a reply."""
    mail_id = await seed(store, policy, mail_bytes(), received_at=SUPPORT)
    outcome = await deeds.release(store, policy, mail_id, "proxy:amy@x", "real outage", now=ON_CALL)
    assert outcome.changed and outcome.review == "released"
    assert outcome.planned == ("page", "reply")
    view = await deeds.load_view(store, mail_id)
    assert (view.mail.verdict, view.mail.window, view.mail.review) == (
        "escalate",
        "on_call",
        "released",
    )
    page = next(a for a in view.actions if a.kind == "page")
    assert (page.state, page.due_at) == ("pending", ON_CALL)
    assert [(a.who, a.what, a.note) for a in view.audit] == [
        ("proxy:amy@x", "released", "real outage")
    ]
    assert (
        view.released is not None
        and view.released.original is not None
        and view.released.original.verdict == "reject"
    )
    assert view.reasons[0] == "not_service_impacting"  # the page still explains the original reject


async def test_release_in_support_hours_alarms_without_paging(store: Store, policy: Policy) -> None:
    """In support hours a release alarms support in Slack and pages nobody (contract routing)."""
    mail_id = await seed(store, policy, mail_bytes())
    outcome = await deeds.release(store, policy, mail_id, "cli:op", now=SUPPORT)
    assert outcome.planned == ("alarm", "reply")
    mail = await store.get_mail(mail_id)
    assert mail is not None and mail.window == "support"


async def test_two_concurrent_releases_produce_one_page(
    store_factory: object, policy: Policy, tmp_path: Path, make_settings: object
) -> None:
    """Two reviewers (two store connections, like two processes) release at once: one page."""
    first: Store = await store_factory()  # type: ignore[operator]
    second: Store = await store_factory()  # type: ignore[operator]
    mail_id = await seed(first, policy, mail_bytes())
    outcomes = await asyncio.gather(
        deeds.release(first, policy, mail_id, "token:a", now=ON_CALL),
        deeds.release(second, policy, mail_id, "token:b", now=ON_CALL),
    )
    assert sorted(o.changed for o in outcomes) == [False, True]
    actions = await first.mail_actions(mail_id)
    assert [a.kind for a in actions].count("page") == 1
    assert len([row for row in await first.audit_log(mail_id) if row.what == "released"]) == 1
    async with PagerDutyStandIn(tmp_path) as pd:
        routed = make_settings(  # type: ignore[operator]
            pagerduty_routing_key=pd.routing_key,
            pagerduty_events_url=pd.url,
            pagerduty_ca_file=pd.ca_file,
        )
        dispatcher = Dispatcher(first, routed)
        try:
            await dispatcher.burst()
        finally:
            await dispatcher.close()
    assert len(pd.triggered) == 1


async def test_dismiss_needs_a_note_and_records_it(store: Store, policy: Policy) -> None:
    """Dismiss without a note is refused; with one it is audited and nothing is planned."""
    mail_id = await seed(store, policy, mail_bytes())
    with pytest.raises(deeds.NoteRequired):
        await deeds.dismiss(store, mail_id, "token:amy", "   ")
    before = await store.mail_actions(mail_id)
    outcome = await deeds.dismiss(store, mail_id, "token:amy", "PR chaser, answered in Slack")
    assert outcome.changed and outcome.review == "dismissed"
    assert await store.mail_actions(mail_id) == before
    audit = await store.audit_log(mail_id)
    assert [(a.who, a.what, a.note) for a in audit] == [
        ("token:amy", "dismissed", "PR chaser, answered in Slack")
    ]


async def test_a_reviewed_mail_cannot_be_reviewed_again(store: Store, policy: Policy) -> None:
    """After a dismissal, Release changes nothing and plans nothing (no late page)."""
    mail_id = await seed(store, policy, mail_bytes())
    await deeds.dismiss(store, mail_id, "token:amy", "noise")
    again = await deeds.release(store, policy, mail_id, "token:bob", now=ON_CALL)
    assert not again.changed and again.review == "dismissed"
    assert "page" not in [a.kind for a in await store.mail_actions(mail_id)]


async def test_unknown_mail_is_not_found(store: Store, policy: Policy) -> None:
    """Reviewing a mail that does not exist is a clear error, not a crash."""
    with pytest.raises(deeds.MailNotFound):
        await deeds.release(store, policy, 404, "token:a")


async def test_escalations_view_lists_released_mails_with_actions(
    store: Store, policy: Policy
) -> None:
    """Recent escalations: newest first, released ones included, each with its actions."""
    escalated = await seed(
        store,
        policy,
        mail_bytes(
            "Apply service down",
            "Since 09:00 the apply service returns 500 errors for all users, nobody can submit. "
            "We are in #laa-apply-incident.",
            message_id="<down@x>",
        ),
        received_at=ON_CALL - timedelta(hours=2),
    )
    released = await seed(store, policy, mail_bytes(), received_at=ON_CALL)
    await deeds.release(store, policy, released, "token:a", now=ON_CALL)
    listed = await store.recent_escalations(10)
    assert [item.mail.id for item in listed] == [released, escalated]
    assert {a.kind for a in listed[1].actions} >= {"page", "ack", "reply"}


async def test_retention_purges_raw_then_records(
    store: Store, policy: Policy, settings: Settings
) -> None:
    """Raw bodies go after raw_retention_days (the view says when); whole records after a year."""
    now = ON_CALL + timedelta(days=400)
    ancient = await seed(store, policy, mail_bytes(message_id="<old@x>"), received_at=ON_CALL)
    await deeds.dismiss(store, ancient, "token:a", "noise")
    month_old = await seed(
        store, policy, mail_bytes(message_id="<mid@x>"), received_at=now - timedelta(days=31)
    )
    fresh = await seed(
        store, policy, mail_bytes(message_id="<new@x>"), received_at=now - timedelta(days=1)
    )
    purged = await retention.purge_once(store, settings, now)
    assert (purged.raw, purged.mails, purged.audit) == (2, 1, 1)
    assert await store.get_mail(ancient) is None and await store.audit_log(ancient) == []
    view = await deeds.load_view(store, month_old)
    assert view.facts is None and view.mail.raw_purged_at == now
    assert view.reasons  # the decision outlives the body
    fresh_mail = await store.get_mail(fresh)
    assert fresh_mail is not None and fresh_mail.raw is not None
    assert (await retention.purge_once(store, settings, now)).raw == 0  # idempotent


async def test_schema_upgrade_keeps_actions_and_allows_review_kind(tmp_path: Path) -> None:
    """A version-1 store (before review) opens, keeps its outbox, and accepts "review" actions."""
    path = tmp_path / "old.db"
    script = (
        Path(deeds.__file__).parents[1].joinpath("store", "sqlite-0001-initial.sql").read_text()
    )
    with sqlite3.connect(path) as conn:
        conn.executescript(script + "\nPRAGMA user_version = 1;")
        conn.execute(
            "INSERT INTO mails (id, received_at, mail_from, rcpt_tos, size) "
            "VALUES (1, 't', 'a', '[]', 1)"
        )
        conn.execute(
            "INSERT INTO actions (mail_id, kind, state, due_at, payload, dedup_key, created_at, "
            "updated_at) VALUES (1, 'page', 'pending', 't', '{}', 'k', 't', 't')"
        )
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT kind FROM actions").fetchall() == [("page",)]
        conn.execute(
            "INSERT INTO actions (mail_id, kind, state, due_at, payload, dedup_key, created_at, "
            "updated_at) VALUES (1, 'review', 'pending', 't', '{}', 'r', 't', 't')"
        )


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_lists_shows_releases_and_dismisses(
    make_settings: object,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`escalator review …` acts as cli:<unix user>; a second release reports "not held", exit 1."""
    settings: Settings = make_settings()  # type: ignore[operator]
    monkeypatch.setenv("ESCALATOR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setattr("getpass.getuser", lambda: "operator1")

    async def seed_two() -> tuple[int, int]:
        store = SQLiteStore(settings.data_dir / "escalator.db")
        await store.open()
        try:
            policy = load_policy(settings)
            a = await seed(
                store, policy, mail_bytes(message_id="<a@x>", body="any update on my PR?\x1b[2J")
            )
            b = await seed(
                store, policy, mail_bytes(message_id="<b@x>"), received_at=ON_CALL + timedelta(1)
            )
            return a, b
        finally:
            await store.close()

    first, second = asyncio.run(seed_two())
    assert cli.main(["review", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.index(f"{second} ") < listing.index(f"{first} ") and "(2 held)" in listing
    header, *_ = listing.splitlines()
    assert header.split() == ["id", "received", "from", "subject", "why", "held"]
    assert " GMT, " in listing and "not a live incident" in listing
    assert "not_service_impacting" not in listing and "+00:00" not in listing
    assert cli.main(["review", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["id"] for row in rows] == [second, first]
    assert rows[0]["reasons"][0] == "not_service_impacting" and rows[0]["evidence"]
    assert cli.main(["review", "show", str(first)]) == 0
    shown = capsys.readouterr().out
    assert "rule pr_chaser matched" in shown and "\x1b" not in shown
    assert "Received:  " in shown and " GMT, " in shown and "not_service_impacting" not in shown
    assert cli.main(["review", "release", str(first), "--note", "looks real"]) == 0
    assert "released" in capsys.readouterr().out
    assert cli.main(["review", "release", str(first)]) == 1
    assert "was not held" in capsys.readouterr().out
    assert cli.main(["review", "dismiss", str(second), "--note", "chaser"]) == 0
    assert cli.main(["review", "show", str(second)]) == 0
    assert "cli:operator1 dismissed chaser" in capsys.readouterr().out
    assert cli.main(["review", "show", "999"]) == 1
    assert cli.main(["list"]) == 0
    table = capsys.readouterr().out
    assert table.split()[:2] == ["id", "received"] and " GMT, " in table
    assert not any(code in table for code in ("on_call", "no_cover", "dry_run", "+00:00"))
    assert cli.main(["list", "--json"]) == 0  # the JSON keeps the contract's values
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    contract = {"support", "support_and_on_call", "on_call", "no_cover"}  # a release: the clock now
    assert {row["window"] for row in listed} <= contract and "on_call" in str(listed)


# -- the review channel ---------------------------------------------------------------------------


async def test_support_hours_reject_is_posted_mention_safe_to_the_review_channel(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    """In support hours a reject is posted (escaped, no mentions) to the review channel with a
    link to its page; out of hours it is not; `list --json` keeps it out of "actions"."""
    hostile = "<!channel> <@U123> <https://evil.example|click> @here"
    async with SlackStandIn() as slack:
        slack.add_channel("C0REVIEW01", "support-review")
        settings = make_settings(
            slack_bot_token=slack.token,
            slack_api_url=slack.api_url,
            slack_review_channel="support-review",
            public_url="https://escalator.example",
        )
        policy = load_policy(settings)
        raw = mail_bytes(f"any update on my PR? {hostile}", f"Hi {hostile}, any update on my PR?")
        in_hours = await seed(store, policy, raw, received_at=SUPPORT)
        night = await seed(
            store, policy, mail_bytes(message_id="<n@x>"), received_at=ON_CALL + timedelta(hours=11)
        )
        dispatcher = Dispatcher(store, settings)
        try:
            await dispatcher.burst()
        finally:
            await dispatcher.close()
    (post,) = slack.posts_in("support-review")
    link = f"https://escalator.example/mails/{in_hours}|Review mail #{in_hours}"
    assert set(mentions(post)) == {link}  # our own link, in the text and its block; nothing else
    assert "any update on my PR?" in post.text and "not describe a live service" in post.text
    assert "review" not in [a.kind for a in await store.mail_actions(night)]
    listed = {item.mail.id: mail_json(item) for item in await store.list_mails()}
    assert [a["kind"] for a in listed[in_hours]["actions"]] == ["reply"]
    # triage reads this chaser as a reject in doubt (its exclusion is thin): the doubt notice
    # (issue 15) sits beside the review post, out of "actions" too
    others = [a["kind"] for a in listed[in_hours]["other_actions"]]
    assert others == ["review", "doubt"], others


async def test_review_post_is_skipped_without_a_review_channel(
    store: Store, settings: Settings, policy: Policy
) -> None:
    """With no review channel configured the "review" action ends "skipped", saying why."""
    mail_id = await seed(store, policy, mail_bytes(), received_at=SUPPORT)
    dispatcher = Dispatcher(store, settings)
    try:
        await dispatcher.burst()
    finally:
        await dispatcher.close()
    (post,) = [a for a in await store.mail_actions(mail_id) if a.kind == "review"]
    assert (post.state, post.last_error) == ("skipped", "no review channel configured")
