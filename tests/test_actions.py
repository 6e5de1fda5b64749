"""The pure plan of deeds for a decision: which outbox entries, when due, under which dedup key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from escalator.core.actions import PlannedAction, plan_actions
from escalator.core.mail import parse_mail
from escalator.core.model import Decision, Page, Reason, Routing, Triage, Verdict, Window

AT = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
MORNING = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)


def mail(*extra: str, message_id: str | None = "m1@example.org") -> bytes:
    lines = ["From: Alice <alice@example.org>", "To: escalations@localhost", "Subject: Down"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    return ("\r\n".join([*lines, *extra, "", "Users cannot log in."]) + "\r\n").encode()


def decision(
    verdict: Verdict = Verdict.ESCALATE,
    window: Window = Window.SUPPORT,
    page: Page = Page.NONE,
    alarm: bool = True,
    channel: str | None = "laa-incident",
    reasons: tuple[Reason, ...] = (),
) -> Decision:
    page_at = MORNING if page is Page.DEFERRED else None
    triage = Triage(verdict, reasons, channel, ())
    return Decision(triage, Routing(window, page, page_at, alarm), AT)


def kinds(planned: tuple[object, ...]) -> list[str]:
    return [p.kind for p in planned]  # type: ignore[attr-defined]


def test_support_window_escalation_alarms_acks_and_replies() -> None:
    """In support hours: no page, an alarm, an ack in the sender's channel, a reply; all due now."""
    planned = plan_actions(decision(), parse_mail(mail()), "alice@example.org", mail_id=1)
    assert kinds(planned) == ["alarm", "ack", "reply"]
    assert {p.due_at for p in planned} == {AT} and {p.state for p in planned} == {"pending"}
    assert planned[-1].payload["to"] == "alice@example.org"


def test_no_cover_page_is_deferred_to_page_at_and_keyed_by_thread_root() -> None:
    """Out of cover the page waits for page_at; its dedup key is the thread's first Message-ID."""
    raw = mail("References: <root@example.org> <mid@example.org>", "In-Reply-To: <mid@example.org>")
    d = decision(window=Window.NO_COVER, page=Page.DEFERRED)
    page = plan_actions(d, parse_mail(raw), "alice@example.org")[0]
    assert (page.kind, page.due_at, page.dedup_key) == ("page", MORNING, "root@example.org")
    assert page.payload["page"] == "deferred" and page.payload["page_at"] == MORNING.isoformat()


def test_on_call_pages_now_without_alarm_or_ack_when_no_channel() -> None:
    """On call: a page due at once; no alarm; no ack when the sender named no channel."""
    d = decision(window=Window.ON_CALL, page=Page.NOW, alarm=False, channel=None)
    planned = plan_actions(d, parse_mail(mail(message_id=None)), "alice@example.org", mail_id=7)
    assert kinds(planned) == ["page", "reply"]
    assert planned[0].due_at == AT and planned[0].dedup_key == "mail-7"


def test_rejected_mail_gets_only_a_reply() -> None:
    """A reject is never paged, alarmed or acked: the sender gets a reply saying why."""
    d = decision(Verdict.REJECT, alarm=False, reasons=(Reason.MISSING_SLACK_CHANNEL,))
    planned = plan_actions(d, parse_mail(mail()), "alice@example.org")
    assert not {"page", "alarm", "ack"} & set(kinds(planned))
    (reply,) = [p for p in planned if p.kind == "reply"]
    assert reply.state == "pending"
    assert reply.payload["reasons"] == ["missing_slack_channel"]


@pytest.mark.parametrize(
    ("extra", "sender", "reasons", "why"),
    [
        ((), "<>", (), "null sender"),
        ((), "", (), "null sender"),
        ((), "MAILER-DAEMON@example.org", (), "automated mailbox"),
        ((), "owner-ops@lists.example.org", (), "automated mailbox"),
        ((), "ops-request@lists.example.org", (), "automated mailbox"),
        (("List-Id: <ops.lists.example.org>",), "alice@example.org", (), "mailing-list"),
        (("Precedence: bulk",), "alice@example.org", (), "Precedence bulk"),
        ((), "alice@example.org", (Reason.AUTOMATED_MESSAGE,), "automated message"),
    ],
)
def test_rfc3834_mail_is_not_answered_but_the_skip_is_recorded(
    extra: tuple[str, ...], sender: str, reasons: tuple[Reason, ...], why: str
) -> None:
    """Automated, list, bulk and daemon mail gets no reply; the skipped reply says why."""
    d = decision(Verdict.REJECT, alarm=False, reasons=reasons or (Reason.NOT_SERVICE_IMPACTING,))
    planned = plan_actions(d, parse_mail(mail(*extra)), sender)
    (reply,) = [p for p in planned if p.kind == "reply"]
    assert reply.state == "skipped"
    assert reply.note is not None and why in reply.note and "RFC 3834" in reply.note


# -- behind the deployment's own mail group (settings.trusted_list_ids) ---------------------------

GROUP = "escalations.group.example.org"
GROUP_HEADERS = (
    f"List-Id: Escalations <{GROUP}>",
    "List-Post: <mailto:escalations@group.example.org>",
    "List-Unsubscribe: <mailto:escalations+unsubscribe@group.example.org>",
    "Precedence: list",
)
BOUNCE = "escalations+bncBAABB@group.example.org"  # the group's envelope sender


def reply_of(planned: tuple[PlannedAction, ...]) -> PlannedAction:
    (reply,) = [p for p in planned if p.kind == "reply"]
    return reply


def test_mail_through_the_trusted_group_is_answered_at_the_senders_from_address() -> None:
    """A trusted List-Id makes the group's List-* and Precedence: list headers ordinary: the
    person who wrote is answered at their From address, not at the group's bounce address."""
    d = decision(Verdict.REJECT, alarm=False, reasons=(Reason.MISSING_SLACK_CHANNEL,))
    planned = plan_actions(d, parse_mail(mail(*GROUP_HEADERS)), BOUNCE, trusted_list_ids=(GROUP,))
    reply = reply_of(planned)
    assert reply.state == "pending"
    assert reply.payload["to"] == "alice@example.org"


def test_trusted_group_that_rewrites_from_is_answered_at_reply_to() -> None:
    """Groups that rewrite From to themselves (DMARC) keep the author in Reply-To."""
    raw = mail(*GROUP_HEADERS, "Reply-To: Bob <bob@example.org>").replace(
        b"From: Alice <alice@example.org>",
        b"From: 'Bob' via Escalations <escalations@group.example.org>",
    )
    reply = reply_of(plan_actions(decision(), parse_mail(raw), BOUNCE, trusted_list_ids=(GROUP,)))
    assert reply.state == "pending" and reply.payload["to"] == "bob@example.org"


@pytest.mark.parametrize(
    ("extra", "trusted", "why"),
    [
        (GROUP_HEADERS, ("other.group.example.org",), "mailing-list"),
        (GROUP_HEADERS, (), "mailing-list"),
        ((*GROUP_HEADERS[:3], "Precedence: junk"), (GROUP,), "Precedence junk"),
    ],
)
def test_untrusted_lists_and_junk_through_the_group_are_still_not_answered(
    extra: tuple[str, ...], trusted: tuple[str, ...], why: str
) -> None:
    """Only the configured List-Id is trusted; junk is refused even through our own group."""
    d = decision(Verdict.REJECT, alarm=False, reasons=(Reason.NOT_SERVICE_IMPACTING,))
    reply = reply_of(plan_actions(d, parse_mail(mail(*extra)), BOUNCE, trusted_list_ids=trusted))
    assert reply.state == "skipped" and why in (reply.note or "")


def test_trusted_group_mail_whose_only_address_is_the_group_is_not_answered() -> None:
    """From rewritten to the group and no Reply-To: answering would mail the whole group."""
    raw = mail(*GROUP_HEADERS).replace(
        b"From: Alice <alice@example.org>", b"From: Escalations <escalations@group.example.org>"
    )
    d = decision(Verdict.REJECT, alarm=False, reasons=(Reason.NOT_SERVICE_IMPACTING,))
    reply = reply_of(plan_actions(d, parse_mail(raw), BOUNCE, trusted_list_ids=(GROUP,)))
    assert reply.state == "skipped" and "mail group" in (reply.note or "")


def test_automated_mail_through_the_trusted_group_is_still_not_answered() -> None:
    """Trusting the group does not trust what it carries: an auto-reply stays unanswered."""
    d = decision(Verdict.REJECT, alarm=False, reasons=(Reason.AUTOMATED_MESSAGE,))
    reply = reply_of(
        plan_actions(d, parse_mail(mail(*GROUP_HEADERS)), BOUNCE, trusted_list_ids=(GROUP,))
    )
    assert reply.state == "skipped" and "automated" in (reply.note or "")
