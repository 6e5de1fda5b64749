"""Is the sender who the From header says? Decided from the border MTA's word only. Pure.

The escalation addresses are public, and anyone can write `From: someone@justice.gov.uk` and an
`Authentication-Results: … dmarc=pass` of their own. So (RFC 8601 §5, §7.1) only the topmost
Authentication-Results field whose authserv-id is the configured border MTA's is read; every other
one, whatever its id and wherever it stands, is ignored. The border strips incoming fields with
its own id and adds its own on top, so the topmost one with that id is the border's.

A sender is verified when that field says dmarc=pass for the header From domain, or dkim=pass
with a signing domain (header.d) aligned with the From domain in DMARC's relaxed mode: the same
organisational domain (RFC 7489 §3.1.1). The organisational domain needs the Public Suffix List
(justice.gov.uk and prison.gov.uk are different organisations); the shell passes that lookup in,
and without it alignment is strict (the same domain exactly), which is never too lenient.

`apply_sender` turns the check into triage: the allowlist judges the verified identity only, and
under "enforce" an unverified sender is a sender_not_allowed reject. DNS never happens here: a
direct DKIM verification is the shell's, handed in as extra results.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.utils import getaddresses
from typing import TYPE_CHECKING

import authres

from escalator.core.model import (
    Evidence,
    Reason,
    SenderCheck,
    SenderPolicy,
    Triage,
    Verdict,
    ordered_reasons,
)
from escalator.core.triage import sender_allowed

if TYPE_CHECKING:  # checked mails come parsed; who only holds a TrustPolicy parses none
    from escalator.core.mail import ParsedMail

_ID = re.compile(r"\s*(?:\([^()]*\)\s*)*([^\s;()]+)")
_SNIPPET = 120


def strict_domain(domain: str) -> str:
    """Alignment without the Public Suffix List: a domain is its own organisation."""
    return domain


@dataclass(frozen=True)
class TrustPolicy:
    """How much the deployment believes the From header, and whose word it takes for it."""

    mode: SenderPolicy = SenderPolicy.OFF
    authserv_id: str = ""
    organisational: Callable[[str], str] = field(default=strict_domain)


@dataclass(frozen=True)
class MethodResult:
    """One result of an Authentication-Results field: method, result and properties."""

    method: str
    result: str
    props: tuple[tuple[str, str], ...] = ()

    def prop(self, name: str) -> str:
        """A property such as "header.d", lowercase, or '' when absent."""
        return next((value for key, value in self.props if key == name), "").strip().lower()


# --- reading the border's Authentication-Results --------------------------------------------


def authserv_id_of(value: str) -> str:
    """The authserv-id a field claims (its first token), lowercase; cheap and never raises."""
    match = _ID.match(value)
    return match.group(1).lower() if match else ""


def parse_results(value: str) -> tuple[MethodResult, ...] | None:
    """The results of one field, or None when it cannot be parsed (then nothing is believed)."""
    try:
        header = authres.AuthenticationResultsHeader.parse_value(value)
        return tuple(_method(item) for item in header.results)
    except Exception:  # noqa: BLE001 - authres raises several types on hostile text: degrade
        return None


def _method(item: authres.core.AuthenticationResult) -> MethodResult:
    props = tuple(
        (f"{prop.type}.{prop.name}".lower(), str(prop.value or "")) for prop in item.properties
    )
    return MethodResult(str(item.method).lower(), str(item.result).lower(), props)


def trusted_results(
    headers: tuple[tuple[str, str], ...], authserv_id: str
) -> tuple[MethodResult, ...] | None:
    """The results of the topmost field with our authserv-id; None when there is none. A field
    with our id that cannot be parsed yields no results (it is still the topmost of ours)."""
    wanted = authserv_id.strip().lower()
    if not wanted:
        return None
    for name, value in headers:
        if name == "authentication-results" and authserv_id_of(value) == wanted:
            return parse_results(value) or ()
    return None


# --- the verdict on the sender ----------------------------------------------------------------


def check_sender(
    mail: ParsedMail, policy: TrustPolicy, extra: tuple[MethodResult, ...] = ()
) -> SenderCheck:
    """Verified or not, with the one line that says why; `extra` are the shell's own results."""
    address = _single_from(mail)
    if address is None:
        return SenderCheck(False, mail.from_addr, "not exactly one From address")
    domain = address.rpartition("@")[2]
    results = trusted_results(mail.headers, policy.authserv_id)
    if results is None and not extra:
        source = policy.authserv_id or "a border MTA (ESCALATOR_AUTHSERV_ID unset)"
        return SenderCheck(False, address, f"no Authentication-Results from {source}")
    found = (*(results or ()), *extra)
    how = _passing(found, domain, policy.organisational)
    if how is not None:
        return SenderCheck(True, address, how)
    return SenderCheck(False, address, _summary(found, domain))


def _single_from(mail: ParsedMail) -> str | None:
    """The From address when the mail has exactly one (DMARC refuses to guess between several)."""
    values = mail.header_values("from")
    pairs = [addr for _, addr in getaddresses(list(values)) if addr] if len(values) == 1 else []
    if len(pairs) != 1 or not mail.from_addr or "@" not in mail.from_addr:
        return None
    return mail.from_addr.strip().lower()


def _passing(
    found: tuple[MethodResult, ...], domain: str, organisational: Callable[[str], str]
) -> str | None:
    for item in found:
        if item.method == "dmarc" and item.result == "pass" and item.prop("header.from") == domain:
            return f"dmarc=pass header.from={domain}"
    for item in found:
        signer = _signing_domain(item)
        passed = item.method == "dkim" and item.result == "pass" and bool(signer)
        if passed and _aligned(signer, domain, organisational):
            return f"dkim=pass header.d={signer} (aligned with {domain})"
    return None


def _signing_domain(item: MethodResult) -> str:
    return item.prop("header.d") or item.prop("header.i").rpartition("@")[2]


def _aligned(signer: str, domain: str, organisational: Callable[[str], str]) -> bool:
    """Relaxed alignment: both domains belong to the same organisational domain."""
    signer, domain = signer.rstrip(".").lower(), domain.rstrip(".").lower()
    if signer == domain:
        return True
    try:
        return bool(organisational(signer)) and organisational(signer) == organisational(domain)
    except Exception:  # noqa: BLE001 - a lookup that fails on a hostile name aligns nothing
        return False


def _summary(found: tuple[MethodResult, ...], domain: str) -> str:
    """Why not: the border's dmarc and dkim results, in its words, bounded."""
    shown = [
        f"{item.method}={item.result}"
        + (f" header.d={_signing_domain(item)}" if item.method == "dkim" else "")
        for item in found
        if item.method in {"dmarc", "dkim"}
    ]
    text = ", ".join(shown) or "no dmarc or dkim result"
    return f"{text} (From domain {domain})"[:_SNIPPET]


# --- what triage makes of it ------------------------------------------------------------------


def apply_sender(
    result: Triage, check: SenderCheck, mode: SenderPolicy, allowed: tuple[str, ...]
) -> Triage:
    """Add what the sender check implies to a triage made without the allowlist: the allowlist
    judges the verified identity; "enforce" rejects the unverified; "annotate" only says so."""
    added = _sender_findings(check, mode, allowed)
    if not added:
        return result
    reasons = {item.reason for item in added if item.reason is not None}
    reasons.update(result.reasons)
    merged = ordered_reasons(reasons)
    verdict = Verdict.REJECT if merged else result.verdict
    evidence = _ordered(result.evidence, added)
    if merged[:1] == result.reasons[:1]:  # the same primary reason: the content's doubt holds
        return replace(result, verdict=verdict, reasons=merged, evidence=evidence)
    # A reject for who sent it is as sure as the sender check; the content's doubt was about
    # a different verdict.
    return Triage(verdict, merged, result.slack_channel, evidence, slack_id=result.slack_id)


def _ordered(evidence: tuple[Evidence, ...], added: list[Evidence]) -> tuple[Evidence, ...]:
    """Evidence stays in the contract's order: automated, then a sender reason, then the other
    reasons; evidence that gives no reason (an annotation) comes after all of those."""
    first = [e for e in evidence if e.reason is Reason.AUTOMATED_MESSAGE]
    reasoned = [e for e in added if e.reason is not None]
    notes = [e for e in added if e.reason is None]
    rest = [e for e in evidence if e.reason is not Reason.AUTOMATED_MESSAGE]
    reasons_rest = [e for e in rest if e.reason is not None]
    plain_rest = [e for e in rest if e.reason is None]
    return (*first, *reasoned, *reasons_rest, *notes, *plain_rest)


def _sender_findings(
    check: SenderCheck, mode: SenderPolicy, allowed: tuple[str, ...]
) -> list[Evidence]:
    where = "header Authentication-Results"
    shown = (check.address or "(no From address)")[:_SNIPPET]
    if allowed and not (check.verified and sender_allowed(check.address, allowed)):
        matched = shown if check.verified else f"{shown} (unverified: {check.how})"[:_SNIPPET]
        return [Evidence("sender_allowlist", matched, "header From", Reason.SENDER_NOT_ALLOWED)]
    if check.verified:
        return [Evidence("sender_verified", check.how, where)]
    if mode is SenderPolicy.ENFORCE:
        return [Evidence("sender_unverified", check.how, where, Reason.SENDER_NOT_ALLOWED)]
    return [Evidence("sender_unverified", check.how, where)]
