"""escalator.core.conversation: a follow-up to a rejected mail is decided together with it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from escalator.core.conversation import (
    MAX_PARENTS,
    decide_conversation,
    may_complete,
    merge_follow_up,
    thread_parents,
)
from escalator.core.facts import MailFacts
from escalator.core.mail import ParsedMail, parse_mail
from escalator.core.model import Reason, Verdict
from escalator.core.policy import Policy
from escalator.decider.facts import read_facts
from escalator.policy import load_policy
from escalator.settings import Settings

AT = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)  # a Friday in support hours
ANA = "Ana Analyst <ana@digital.justice.gov.uk>"
FACTS = "Since 10:40 every LAA apply user gets a 502 error on submit, so nobody can apply.\n"


def mail(
    body: str,
    *,
    n: int = 1,
    sender: str = ANA,
    parent: str | None = None,
    headers: str = "",
    subject: str = "Urgent: LAA apply",
) -> ParsedMail:
    thread = f"In-Reply-To: <{parent}>\nReferences: <{parent}>\n" if parent else ""
    raw = (
        f"From: {sender}\nTo: escalations@localhost\nSubject: {subject}\n"
        f"Message-ID: <m{n}@digital.justice.gov.uk>\n{thread}{headers}"
        f"Date: Fri, 27 Nov 2026 11:00:00 +0000\n\nHi,\n\n{body}\nAna\n"
    )
    return parse_mail(raw.encode())


ORIGINAL = mail(FACTS)  # all the facts, but no channel: rejected
FOLLOW_UP = mail(
    "Sorry, the channel is #laa-apply-incident.\n",
    n=2,
    parent="m1@digital.justice.gov.uk",
    subject="Re: Urgent: LAA apply",
)


@pytest.fixture
def policy(make_settings: Callable[..., Settings]) -> Policy:
    return load_policy(make_settings())


def test_original_and_follow_up_are_each_rejected_alone(policy: Policy) -> None:
    """The premise: the original lacks a channel; the one-line follow-up lacks the facts."""
    original = decide_conversation(ORIGINAL, [], AT, policy).decision
    follow_up = decide_conversation(FOLLOW_UP, [], AT, policy).decision
    assert original.triage.reasons == (Reason.MISSING_SLACK_CHANNEL,)
    assert follow_up.verdict is Verdict.REJECT


def test_the_channel_is_x_completes_the_earlier_facts_and_escalates(policy: Policy) -> None:
    """Together with the rejected original, the follow-up naming the channel escalates, with
    that channel, and says which earlier mail it was decided with."""
    conversation = decide_conversation(FOLLOW_UP, [ORIGINAL], AT, policy)
    assert conversation.decision.verdict is Verdict.ESCALATE
    assert conversation.decision.triage.slack_channel == "laa-apply-incident"
    assert conversation.merged == (0,)


def stored(parsed: ParsedMail) -> MailFacts:
    """A mail's facts as the store gives them back: written when it was decided, as JSON."""
    written = json.dumps(read_facts(parsed, [], parsed.from_addr).to_json())
    return MailFacts.from_json(json.loads(written))


def test_the_earlier_mails_stored_facts_decide_as_their_parse(policy: Policy) -> None:
    """The decide worker reads an earlier mail from its stored facts, never parsing it again:
    the conversation decides the same and the follow-up's facts quote the same words."""
    from_facts = decide_conversation(FOLLOW_UP, [stored(ORIGINAL)], AT, policy)
    from_parse = decide_conversation(FOLLOW_UP, [ORIGINAL], AT, policy)
    assert from_facts.decision.to_contract() == from_parse.decision.to_contract()
    assert from_facts.merged == from_parse.merged == (0,)
    facts = read_facts(FOLLOW_UP, [stored(ORIGINAL)], ANA)
    assert facts == read_facts(FOLLOW_UP, [ORIGINAL], ANA) and "502 error" in facts.facts


def test_stored_facts_keep_the_participants_and_older_rows_read_as_unknown() -> None:
    """From, To and Cc are kept (an open incident's participants may update it); facts stored
    before they were kept read back as unknown, not as nobody."""
    cc = mail(FACTS, headers="Cc: Bo <Bo@Digital.Justice.gov.uk>, ops@example.org\n")
    assert stored(cc).participants == (
        "ana@digital.justice.gov.uk",
        "bo@digital.justice.gov.uk",
        "escalations@localhost",
        "ops@example.org",
    )
    older = {key: value for key, value in stored(cc).to_json().items() if key != "participants"}
    assert MailFacts.from_json(older).participants is None


def test_a_follow_up_that_escalates_alone_is_decided_alone(policy: Policy) -> None:
    """Earlier mails complete a follow-up, never change one that stands on its own."""
    whole = mail(FACTS + "We are in #laa-apply-incident.\n", n=2, parent="m1@x")
    conversation = decide_conversation(whole, [mail("How do I rotate a password?\n")], AT, policy)
    assert conversation.decision.verdict is Verdict.ESCALATE and conversation.merged == ()


def test_someone_elses_rejected_mail_is_not_merged(policy: Policy) -> None:
    """Only the same From address completes a mail: a stranger cannot borrow its facts."""
    stranger = mail(FACTS, sender="Eve <eve@example.org>")
    conversation = decide_conversation(FOLLOW_UP, [stranger], AT, policy)
    assert conversation.decision.verdict is Verdict.REJECT and conversation.merged == ()


def test_an_automated_follow_up_stays_rejected_as_automated(policy: Policy) -> None:
    """Headers stay the follow-up's: an auto-reply in the thread completes nothing."""
    robot = mail(
        "Sorry, the channel is #laa-apply-incident.\n",
        n=2,
        parent="m1@digital.justice.gov.uk",
        headers="Auto-Submitted: auto-replied\n",
    )
    decision = decide_conversation(robot, [ORIGINAL], AT, policy).decision
    assert decision.verdict is Verdict.REJECT
    assert Reason.AUTOMATED_MESSAGE in decision.triage.reasons


def test_the_follow_ups_channel_wins_over_one_named_before(policy: Policy) -> None:
    """The newest words come first: a channel the follow-up names beats the original's."""
    original = mail(FACTS + "We first asked in #laa-general.\n")
    decision = decide_conversation(FOLLOW_UP, [original], AT, policy).decision
    assert decision.triage.slack_channel == "laa-apply-incident"


def test_merge_keeps_the_follow_ups_identity_and_orders_the_words() -> None:
    """Subject, sender, Message-ID and thread root are the follow-up's; new words are the
    follow-up's then the earlier mails' (nearest first)."""
    merged = merge_follow_up(FOLLOW_UP, [ORIGINAL, mail("Earliest words.\n", n=0)])
    assert (merged.subject, merged.message_id) == (FOLLOW_UP.subject, FOLLOW_UP.message_id)
    assert merged.thread_root == FOLLOW_UP.thread_root and merged.headers == FOLLOW_UP.headers
    new = merged.body.new
    assert new.index("#laa-apply-incident") < new.index("502 error") < new.index("Earliest")


def test_thread_parents_are_nearest_first_without_duplicates() -> None:
    """In-Reply-To first, then References from the parent back to the root; folded headers
    are read; a mail with no thread headers answers nothing."""
    raw = (
        b"From: a@example.org\r\nReferences: <root@x>\r\n <mid@x>\r\n\t<parent@x>\r\n"
        b"In-Reply-To: <parent@x>\r\nSubject: Re: x\r\n\r\nReferences: <body@x>\r\n"
    )
    assert thread_parents(raw) == ("parent@x", "mid@x", "root@x")
    assert thread_parents(b"From: a@example.org\n\nhello\n") == ()
    assert thread_parents(b"\xff\xfe garbage") == ()


def test_thread_parents_are_bounded() -> None:
    """A hostile References header with thousands of IDs yields at most MAX_PARENTS."""
    refs = " ".join(f"<r{n}@x>" for n in range(5000)).encode()
    parents = thread_parents(b"References: " + refs + b"\n\nbody\n")
    assert len(parents) == MAX_PARENTS and parents[0] == "r4999@x"


@pytest.mark.parametrize(
    ("verdict", "review", "author", "age", "expected"),
    [
        ("reject", "held", "ANA@digital.justice.gov.uk", timedelta(minutes=5), True),
        ("escalate", None, "ana@digital.justice.gov.uk", timedelta(minutes=5), False),
        ("reject", "released", "ana@digital.justice.gov.uk", timedelta(minutes=5), False),
        ("reject", "dismissed", "ana@digital.justice.gov.uk", timedelta(minutes=5), False),
        ("reject", "held", "eve@example.org", timedelta(minutes=5), False),
        ("reject", "held", "", timedelta(minutes=5), False),
        ("reject", "held", "ana@digital.justice.gov.uk", timedelta(days=8), False),
        ("reject", "held", "ana@digital.justice.gov.uk", timedelta(minutes=-1), False),
    ],
)
def test_only_recent_held_rejects_of_the_same_author_may_be_completed(
    verdict: str, review: str | None, author: str, age: timedelta, expected: bool
) -> None:
    """Rejected and still held (no person has decided), same From address, within 7 days."""
    assert (
        may_complete(
            verdict=verdict,
            review=review,
            author=author,
            received_at=AT - age,
            follow_up_author="ana@digital.justice.gov.uk",
            follow_up_at=AT,
        )
        is expected
    )
