"""Fuzzing the mail-reading and triage layers (issue 16), on a fixed budget that CI can afford.

Mail is hostile, and the core promises never to raise: a mail that crashed the parser would
be held for review without a decision, and a crash in triage could cost a page. Hypothesis
builds mails the way an attacker would (structured: header fields, MIME trees with odd
encodings and charsets, HTML, forwarded messages, Authentication-Results; and plain junk
bytes), and the properties are the contract's: `decide` returns a decision, a reject has
reasons and never pages, an escalation has none, the contract is JSON.

Budget: FUZZ_EXAMPLES examples per test, the same ones on every run (about 20 s for the whole
file on the 2-core machine). A longer local hunt draws new ones:
ESCALATOR_FUZZ_EXAMPLES=5000 ESCALATOR_FUZZ_RANDOM=1 pytest tests/test_fuzz.py.
Every crash found is kept below as an @example (a regression case), with what it broke.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from escalator.core.actions import plan_actions
from escalator.core.authenticity import TrustPolicy, check_sender, trusted_results
from escalator.core.channels import TextPart, find_channel
from escalator.core.decide import decide
from escalator.core.mail import parse_mail
from escalator.core.model import SenderPolicy, Verdict
from escalator.core.policy import Policy
from escalator.core.text import html_to_text, split_body
from escalator.policy import load_policy, organisational_domain
from escalator.settings import Settings

FUZZ_EXAMPLES = int(os.environ.get("ESCALATOR_FUZZ_EXAMPLES", "250"))
BUDGET = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,  # the machine is shared: time per example is not the property
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # The same examples on every CI run; a local hunt draws new ones (ESCALATOR_FUZZ_RANDOM=1).
    derandomize=not os.environ.get("ESCALATOR_FUZZ_RANDOM"),
)
BORDER = "mx.border.example"
AT = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
POLICIES: dict[str, Policy] = {}


def policy(mode: str = "enforce") -> Policy:
    """The real policy as settings build it (rules, calendar, suffix list), once per mode."""
    if mode not in POLICIES:
        values = {"authserv_id": BORDER, "sender_policy": mode, "allowed_senders": ("gov.uk",)}
        POLICIES[mode] = load_policy(Settings(**values))  # type: ignore[arg-type]
    return POLICIES[mode]


# -- strategies: pieces of mail an attacker controls ----------------------------------------------

WORDS = st.sampled_from(
    [
        "down",
        "outage",
        "502",
        "error",
        "#laa-apply-incident",
        "#general",
        "slack",
        "https://mojdt.slack.com/archives/C0LAA00001",
        "PR",
        "please",
        "prod",
        "live",
        "not",
        "no impact",
        "users",
        "cannot",
        "login",
        "=?utf-8?b?w6k=?=",
        "\u202e",
        "\x00",
        "<b>",
        "</p>",
        "&amp;",
        "&#x0;",
        "@here",
        "<!channel>",
        ">",
        "--",
        "-- \n",
        "On Mon",
        "wrote:",
        "From:",
        "Subject:",
        "\r\n",
        "\n\n",
        "é",
        "日本",
        "\ud7ff",
        "#",
        "##1234",
    ]
)
TEXT = st.one_of(
    st.lists(WORDS, max_size=40).map(" ".join),
    st.text(max_size=300),
)
HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Reply-To",
        "Return-Path",
        "Sender",
        "List-Id",
        "List-Post",
        "Precedence",
        "Auto-Submitted",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "Authentication-Results",
        "X-Mailer",
        "Received",
    ]
)
ADDRESS = st.one_of(
    st.sampled_from(
        [
            "ana@digital.justice.gov.uk",
            '"A, B" <a@b.example>',
            "<>",
            "a@b.example, c@d.example",
            "=?utf-8?q?Ana?= <ana@x.gov.uk>",
            "undisclosed-recipients:;",
            "@",
            "x@",
            "@y",
            "MAILER-DAEMON@x.example",
            '"\\"" <q@x.example>',
            "a@[127.0.0.1]",
            "ä@ü.example",
        ]
    ),
    st.text(max_size=60),
)
AUTH_RESULTS = st.one_of(
    st.builds(
        "{}; {}={} header.d={} header.from={}".format,
        st.sampled_from([BORDER, BORDER.upper(), "evil.example", "", "(c) " + BORDER]),
        st.sampled_from(["dkim", "dmarc", "spf", "arc", "x", ""]),
        st.sampled_from(["pass", "fail", "none", "", "pass (comment"]),
        st.sampled_from(["justice.gov.uk", "gov.uk", "", "..", "a" * 300, "xn--j6w193g"]),
        st.sampled_from(["digital.justice.gov.uk", "", "evil.example"]),
    ),
    st.text(max_size=200),
)
CHARSETS = st.sampled_from(["utf-8", "us-ascii", "iso-8859-1", "x-unknown", "utf-7", "", '"'])
ENCODINGS = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "junk"])


def header_value(name: str) -> st.SearchStrategy[str]:
    if name in {"From", "To", "Cc", "Reply-To", "Sender", "Return-Path"}:
        return ADDRESS
    if name == "Authentication-Results":
        return AUTH_RESULTS
    return TEXT


@st.composite
def header_block(draw: st.DrawFn) -> str:
    fields = draw(st.lists(HEADER_NAMES, max_size=12))
    lines = [f"{name}: {draw(header_value(name))}" for name in fields]
    if draw(st.booleans()):  # the usual minimum, so triage gets to read the body too
        lines[:0] = ["From: ana@digital.justice.gov.uk", "Subject: " + draw(TEXT)]
    return "\r\n".join(line.replace("\n", "\n ") for line in lines)


@st.composite
def leaf(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream"]))
    body = draw(TEXT)
    if kind == "text/html":
        body = f"<html><body><p>{body}</p><a href='{draw(TEXT)}'>{draw(TEXT)}</a></body>"
    encoding = draw(ENCODINGS)
    disposition = draw(st.sampled_from(["", "attachment", 'attachment; filename="=?x?q?a?="']))
    head = (
        f"Content-Type: {kind}; charset={draw(CHARSETS)}\r\nContent-Transfer-Encoding: {encoding}"
    )
    if disposition:
        head += f"\r\nContent-Disposition: {disposition}"
    return f"{head}\r\n\r\n{body}"


def multipart(parts: list[str], subtype: str, boundary: str) -> str:
    inner = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n{inner}--{boundary}--'


@st.composite
def mime_tree(draw: st.DrawFn, depth: int = 0) -> str:
    choice = draw(st.integers(0, 3 if depth < 3 else 0))
    if choice == 0:
        return draw(leaf())
    if choice == 3:
        return f"Content-Type: message/rfc822\r\n\r\n{draw(header_block())}\r\n{draw(leaf())}"
    parts = draw(st.lists(mime_tree(depth + 1), min_size=0, max_size=3))
    subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest"]))
    return multipart(parts, subtype, draw(st.sampled_from(["b1", "b2", "", "--", "b1 b1"])))


@st.composite
def structured_mail(draw: st.DrawFn) -> bytes:
    text = f"{draw(header_block())}\r\nMIME-Version: 1.0\r\n{draw(mime_tree())}"
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    return text.replace("\r\n", newline).encode("utf-8", "surrogatepass")


# -- the properties ---------------------------------------------------------------------------


def assert_contract(raw: bytes, mode: str) -> None:
    decision = decide(raw, AT, policy(mode), "ana@digital.justice.gov.uk")
    contract = json.loads(json.dumps(decision.to_contract()))
    if decision.verdict is Verdict.REJECT:
        assert contract["reasons"] and contract["page"] == "none" and not contract["alarm"]
    else:
        assert contract["reasons"] == [] and contract["page"] == "now"
    if mode == "enforce" and not contract["sender"]["verified"]:
        assert decision.verdict is Verdict.REJECT  # an unverified sender never pages
    planned = plan_actions(decision, parse_mail(raw), "<ana@digital.justice.gov.uk>", mail_id=1)
    json.dumps([action.payload for action in planned])  # what the outbox stores is JSON
    assert ("page" in {a.kind for a in planned}) == (contract["page"] != "none")


@BUDGET
@given(structured_mail(), st.sampled_from(["off", "annotate", "enforce"]))
@example(b"From: a@b\r\n\r\n", "enforce")
def test_structured_mail_always_gets_a_decision_by_the_contract(raw: bytes, mode: str) -> None:
    assert_contract(raw, mode)


@BUDGET
@given(st.binary(max_size=3000))
@example(b"\xff\xfe\x00")
@example(b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n")
def test_junk_bytes_always_get_a_decision_by_the_contract(raw: bytes) -> None:
    assert_contract(raw, "annotate")


@BUDGET
@given(st.lists(st.tuples(st.just("authentication-results"), AUTH_RESULTS), max_size=4), ADDRESS)
def test_authentication_results_never_raise(headers: list[tuple[str, str]], sender: str) -> None:
    top = "".join(f"Authentication-Results: {value}\r\n" for _, value in headers)
    mail = parse_mail(f"{top}From: {sender}\r\nSubject: x\r\n\r\nbody\r\n".encode(errors="replace"))
    trusted_results(tuple(headers), BORDER)
    check = check_sender(mail, TrustPolicy(SenderPolicy.ENFORCE, BORDER, organisational_domain))
    assert isinstance(check.verified, bool) and len(check.how) <= 200


@BUDGET
@given(TEXT, TEXT)
def test_text_layers_never_raise(plain: str, html: str) -> None:
    parts = split_body(plain)
    text = html_to_text(f"<div>{html}</div><table><tr><td>{plain}</td></tr></table>")
    found = find_channel([TextPart("new", parts.new), TextPart("quoted", text)])
    if found is not None:
        assert found.channel and "#" not in found.channel
