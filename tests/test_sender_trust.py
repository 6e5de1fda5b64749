"""Sender trust (issue 16): the From header is believed on the border MTA's word only.

Core checks on parsed mails, then the whole path: an SMTP client sends to the real listener
(its clock pinned in a paging window), the real decide worker and dispatcher run, and the
PagerDuty and Slack stand-ins show what left.
"""

from __future__ import annotations

from typing import Any

import pytest
from reviewkit import seed
from standins.smtp_sink import SmtpSink
from trustkit import (
    ANA,
    BORDER,
    FRIDAY_0930,
    FRIDAY_EVENING,
    Outside,
    escalation,
    outside,
    through_the_front_door,
)

from escalator.core.actions import plan_actions
from escalator.core.authenticity import TrustPolicy, check_sender, trusted_results
from escalator.core.decide import decide
from escalator.core.mail import parse_mail
from escalator.core.model import SenderPolicy
from escalator.core.policy import Policy
from escalator.errors import ConfigError
from escalator.policy import load_policy, organisational_domain
from escalator.review.deeds import mail_view, release
from escalator.settings import Settings
from escalator.store import Store

__all__ = ["outside"]  # a fixture, used by name

FORGED = "Authentication-Results: evil.example; dmarc=pass header.from=digital.justice.gov.uk"
DMARC_PASS = f"Authentication-Results: {BORDER}; dmarc=pass header.from=digital.justice.gov.uk"
DKIM_ALIGNED = (
    f"Authentication-Results: {BORDER};\r\n dkim=pass (2048-bit key) header.d=justice.gov.uk "
    "header.s=s1 header.b=abcd;\r\n spf=fail smtp.mailfrom=bounce.example; dmarc=none"
)


def trust(mode: SenderPolicy = SenderPolicy.ANNOTATE) -> TrustPolicy:
    return TrustPolicy(mode, BORDER, organisational_domain)


def policy_for(settings: Settings) -> Policy:
    return load_policy(settings)


# -- whose Authentication-Results are read ------------------------------------------------------


def test_forged_results_from_another_authserv_id_are_not_believed() -> None:
    check = check_sender(parse_mail(escalation(FORGED)), trust())
    assert not check.verified
    assert check.how == f"no Authentication-Results from {BORDER}"


@pytest.mark.parametrize(
    ("headers", "verified"),
    [
        # the topmost field with our id is the border's; one below it is the sender's own
        (
            (
                f"Authentication-Results: {BORDER}; dmarc=fail header.from=digital.justice.gov.uk",
                DMARC_PASS,
            ),
            False,
        ),
        ((DMARC_PASS, f"Authentication-Results: {BORDER}; dmarc=fail"), True),
        # another id above ours changes nothing, whatever it says
        ((FORGED, f"Authentication-Results: {BORDER}; dmarc=fail"), False),
        # the id is compared as a domain: case does not matter, a longer name is another id
        ((DMARC_PASS.replace(BORDER, BORDER.upper()),), True),
        ((DMARC_PASS.replace(BORDER, "evil." + BORDER),), False),
        # ours but unreadable: nothing is believed, and nothing below it either
        ((f"Authentication-Results: {BORDER}; dmarc=pass (unclosed", DMARC_PASS), False),
    ],
)
def test_only_the_topmost_field_with_the_border_id_counts(
    headers: tuple[str, ...], verified: bool
) -> None:
    assert check_sender(parse_mail(escalation(*headers)), trust()).verified is verified


@pytest.mark.parametrize(
    ("results", "sender", "verified"),
    [
        ("dkim=pass header.d=justice.gov.uk", ANA, True),  # relaxed: same organisation
        ("dkim=pass header.d=digital.justice.gov.uk", ANA, True),
        ("dkim=pass header.i=@justice.gov.uk", ANA, True),
        ("dkim=pass header.d=attacker.gov.uk", "x@justice.gov.uk", False),  # gov.uk is public
        ("dkim=pass header.d=evil.example", ANA, False),
        ("dkim=fail header.d=justice.gov.uk", ANA, False),
        ("dkim=pass", ANA, False),  # no signing domain named
        ("dmarc=pass header.from=evil.example", ANA, False),  # DMARC for another domain
        ("dmarc=pass", ANA, False),
        ("dmarc=pass header.from=digital.justice.gov.uk", ANA, True),
    ],
)
def test_dmarc_pass_for_the_from_domain_or_an_aligned_dkim_pass(
    results: str, sender: str, verified: bool
) -> None:
    raw = escalation(f"Authentication-Results: {BORDER}; {results}", sender=sender)
    assert check_sender(parse_mail(raw), trust()).verified is verified


def test_an_aligned_dkim_pass_is_trusted_and_says_why() -> None:
    check = check_sender(parse_mail(escalation(DKIM_ALIGNED)), trust())
    assert check.verified and check.address == ANA
    assert check.how == "dkim=pass header.d=justice.gov.uk (aligned with digital.justice.gov.uk)"


def test_without_the_public_suffix_list_alignment_is_strict() -> None:
    strict = TrustPolicy(SenderPolicy.ANNOTATE, BORDER)
    assert not check_sender(parse_mail(escalation(DKIM_ALIGNED)), strict).verified


def test_two_from_addresses_are_never_verified() -> None:
    raw = escalation(DMARC_PASS, sender=f"{ANA}, boss@evil.example")
    assert not check_sender(parse_mail(raw), trust()).verified


def test_hostile_fields_never_raise() -> None:
    for value in ["", ";", "(", "x; dkim", f"{BORDER}; =;=;", f"{BORDER} \x00; dkim=pass"]:
        headers = (("authentication-results", value),)
        assert trusted_results(headers, BORDER) in (None, ())


# -- what the policy makes of it ------------------------------------------------------------------


def decision_of(raw: bytes, settings: Settings, mail_from: str = ANA) -> Any:
    return decide(raw, FRIDAY_EVENING, policy_for(settings), mail_from)


def test_enforce_holds_an_unverified_sender_and_never_pages(make_settings: Any) -> None:
    settings = make_settings(sender_policy="enforce", authserv_id=BORDER)
    forged = decision_of(escalation(FORGED), settings)
    assert forged.to_contract()["reasons"] == ["sender_not_allowed"]
    assert forged.routing.page.value == "none" and not forged.routing.alarm
    assert decision_of(escalation(DKIM_ALIGNED), settings).to_contract()["page"] == "now"


def test_annotate_pages_and_marks_every_payload(make_settings: Any) -> None:
    settings = make_settings(authserv_id=BORDER)  # annotate is the default
    raw = escalation(FORGED)
    decision = decision_of(raw, settings)
    assert decision.to_contract()["page"] == "now"
    assert decision.to_contract()["sender"]["verified"] is False
    planned = plan_actions(decision, parse_mail(raw), ANA, mail_id=1)
    assert {a.kind for a in planned if a.payload.get("notes") == ["unverified sender"]} == {
        "page",
        "ack",
        "reply",
    }
    verified = decision_of(escalation(DMARC_PASS), settings)
    assert all("notes" not in a.payload for a in plan_actions(verified, parse_mail(raw), ANA))


def test_off_checks_nothing(make_settings: Any) -> None:
    decision = decision_of(escalation(FORGED), make_settings(sender_policy="off"))
    assert "sender" not in decision.to_contract() and decision.to_contract()["page"] == "now"


def test_the_allowlist_judges_the_verified_identity(make_settings: Any) -> None:
    """A spoofed From of an allowed domain no longer passes; the verified one does."""
    settings = make_settings(authserv_id=BORDER, allowed_senders="justice.gov.uk")
    spoofed = decision_of(escalation(FORGED), settings).to_contract()
    assert spoofed["reasons"] == ["sender_not_allowed"] and spoofed["page"] == "none"
    assert "unverified" in spoofed["evidence"][0]["matched"]
    assert decision_of(escalation(DKIM_ALIGNED), settings).to_contract()["page"] == "now"
    legacy = make_settings(sender_policy="off", allowed_senders="justice.gov.uk")
    assert decision_of(escalation(FORGED), legacy).to_contract()["page"] == "now"


def reply_to_of(raw: bytes, settings: Settings, mail_from: str, **kwargs: Any) -> str:
    decision = decision_of(raw, settings, mail_from)
    planned = plan_actions(decision, parse_mail(raw), mail_from, mail_id=1, **kwargs)
    (reply,) = [a for a in planned if a.kind == "reply"]
    return str(reply.payload["to"])


def test_replies_go_to_the_verified_sender_only(make_settings: Any) -> None:
    annotate = make_settings(authserv_id=BORDER)
    enforce = make_settings(authserv_id=BORDER, sender_policy="enforce")
    bounce = "bounce-123@mailer.example"
    # verified: the From address, not whatever envelope sender the relay used
    assert reply_to_of(escalation(DMARC_PASS), enforce, bounce) == ANA
    # unverified: the From it claims (the address every payload names), never the envelope
    assert reply_to_of(escalation(FORGED), enforce, "victim@elsewhere.example") == ANA
    assert reply_to_of(escalation(FORGED), annotate, "victim@elsewhere.example") == ANA
    legacy = make_settings(sender_policy="off")
    assert reply_to_of(escalation(FORGED), legacy, bounce) == bounce  # off: as before
    # a forged List-Id of our own group does not make a forged Reply-To believable
    group = "cloud-platform.lists.example"
    headers = (FORGED, f"List-Id: <{group}>", "Reply-To: target@elsewhere.example")
    assert reply_to_of(escalation(*headers), annotate, ANA, trusted_list_ids=(group,)) == ANA
    verified = (DMARC_PASS, f"List-Id: <{group}>", "Reply-To: author@digital.justice.gov.uk")
    to = reply_to_of(escalation(*verified), annotate, bounce, trusted_list_ids=(group,))
    assert to == "author@digital.justice.gov.uk"


def test_enforce_without_a_border_id_is_a_configuration_error(make_settings: Any) -> None:
    with pytest.raises(ConfigError, match="ESCALATOR_AUTHSERV_ID"):
        load_policy(make_settings(sender_policy="enforce"))


async def test_review_page_view_says_unverified_sender(make_settings: Any, store: Store) -> None:
    settings = make_settings(authserv_id=BORDER, sender_policy="enforce")
    mail_id = await seed(store, load_policy(settings), escalation(FORGED))
    row = await store.get_mail(mail_id)
    assert row is not None
    line = mail_view(row).sender_check
    assert line == f"unverified sender: no Authentication-Results from {BORDER}"


# -- end to end: SMTP client -> listener -> decide -> dispatch -> stand-ins -----------------------


@pytest.mark.parametrize(("results", "pages"), [(FORGED, 0), (DKIM_ALIGNED, 1)])
async def test_enforce_a_forged_sender_never_reaches_pagerduty(
    results: str,
    pages: int,
    outside: Outside,
    sink: SmtpSink,
    make_settings: Any,
    store: Store,
) -> None:
    """A forged From with forged Authentication-Results from another id pages nobody under
    enforce; the same mail vouched for by the border pages at once (so this can fail)."""
    raw = escalation(results)
    await through_the_front_door(
        raw, FRIDAY_EVENING, outside, sink, make_settings, store, sender_policy="enforce"
    )
    pd, slack = outside
    assert len(pd.triggered) == pages
    assert len(slack.posts_in("laa-apply-incident")) == pages  # no ack for the forged one
    (reply,) = sink.delivered  # the forged one gets its one notice, the genuine one its reply
    assert reply.rcpt_tos == [ANA]


async def test_annotate_marks_pagerduty_and_the_slack_alarm(
    outside: Outside,
    sink: SmtpSink,
    make_settings: Any,
    store: Store,
) -> None:
    await through_the_front_door(
        escalation(FORGED), FRIDAY_0930, outside, sink, make_settings, store
    )
    pd, slack = outside
    (event,) = [r.body for r in pd.received if r.status == 202]
    assert event["payload"]["summary"].endswith("[unverified sender]")
    assert event["payload"]["custom_details"]["notes"] == ["unverified sender"]
    (alarm,) = slack.posts_in("high-priority-alarms")
    assert any("unverified sender" in text for text in alarm.all_text())


async def test_a_released_unverified_mail_still_says_so(make_settings: Any, store: Store) -> None:
    """A person may release a held unverified mail: on-call is told it is unverified, and the
    reply goes to the From it claims, not to the envelope sender."""
    settings = make_settings(authserv_id=BORDER, sender_policy="enforce")
    policy = load_policy(settings)
    mail_id = await seed(store, policy, escalation(FORGED), mail_from="victim@elsewhere.example")
    await release(store, policy, mail_id, "token:amy", now=FRIDAY_EVENING)
    actions = {a.kind: a for a in await store.mail_actions(mail_id)}
    assert actions["page"].payload["notes"] == ["unverified sender"]
    assert actions["reply"].payload["to"] == ANA
    row = await store.get_mail(mail_id)
    assert row is not None and mail_view(row).sender_check is not None
