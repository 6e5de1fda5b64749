"""Direct DKIM verification (issue 16, ESCALATOR_VERIFY_DKIM): real signatures, a stub resolver.

A key pair is made for the test run; mails are signed with dkimpy as a sender's mail server
would, and the "DNS" is a function that answers the selector's TXT record from a dict. So the
cryptography, canonicalisation and alignment are real; only the network is not.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from trustkit import ANA, FRIDAY_EVENING, escalation

from escalator.decider.dkimcheck import dkim_results, verifier
from escalator.decider.processor import Processor
from escalator.errors import ConfigError
from escalator.policy import load_policy
from escalator.store import IncomingMail, Store

SELECTOR = b"s2026"


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    """(private key PEM, the TXT record that publishes its public half)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def resolver(records: dict[str, bytes]) -> Callable[..., bytes | None]:
    """dkimpy's dnsfunc: the TXT record of a name, or None (NXDOMAIN)."""
    asked: list[str] = []

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        asked.append(text)
        return records.get(text.rstrip(".").lower())

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def signed(raw: bytes, domain: str, private: bytes) -> bytes:
    headers = [b"from", b"to", b"subject", b"message-id", b"date"]
    signature = dkim.sign(raw, SELECTOR, domain.encode(), private, include_headers=headers)
    return signature + raw


def dns_for(domain: str, record: bytes) -> dict[str, bytes]:
    return {f"{SELECTOR.decode()}._domainkey.{domain}": record}


def test_a_genuine_signature_passes_and_names_its_signer(keys: tuple[bytes, bytes]) -> None:
    private, record = keys
    raw = signed(escalation(), "justice.gov.uk", private)
    lookup = resolver(dns_for("justice.gov.uk", record))
    (result,) = dkim_results(raw, lookup)
    assert (result.method, result.result, result.prop("header.d")) == (
        "dkim",
        "pass",
        "justice.gov.uk",
    )
    assert lookup.asked == ["s2026._domainkey.justice.gov.uk."]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "records"),
    [
        (lambda raw: raw.replace(b"502 error", b"503 error"), None),  # body changed in transit
        (lambda raw: raw.replace(b"LAA apply is down", b"LAA apply is up"), None),  # subject
        (lambda raw: raw, {}),  # no key published
    ],
)
def test_a_tampered_or_unpublished_signature_fails(
    keys: tuple[bytes, bytes],
    change: Callable[[bytes], bytes],
    records: dict[str, bytes] | None,
) -> None:
    private, record = keys
    raw = change(signed(escalation(), "justice.gov.uk", private))
    lookup = resolver(dns_for("justice.gov.uk", record) if records is None else records)
    assert [r.result for r in dkim_results(raw, lookup)] == ["fail"]


def test_hostile_signatures_never_raise(keys: tuple[bytes, bytes]) -> None:
    lookup = resolver({})
    for junk in (b"", b"\x00\xff", b"DKIM-Signature: v=1; a=\r\n\r\nx", b"DKIM-Signature:\r\n\r\n"):
        assert all(r.result == "fail" for r in dkim_results(junk + escalation(), lookup))


async def decided(store: Store, raw: bytes, settings: Any, lookup: Callable[..., Any]) -> Any:
    """Accept a mail as the listener would and let the real decide worker decide it."""
    incoming = IncomingMail(
        raw, ANA, ("escalations@localhost",), "127.0.0.1", False, FRIDAY_EVENING
    )
    accepted = await store.accept(incoming)
    processor = Processor(store, load_policy(settings), verify=verifier(True, lookup))
    try:
        await processor.burst()
    finally:
        processor.close()
    row = await store.get_mail(accepted.mail_id)
    assert row is not None and row.decision is not None
    return row.decision.to_dict()  # the stored decision JSON


@pytest.mark.parametrize(
    ("signer", "published_for", "pages"),
    [
        ("justice.gov.uk", "justice.gov.uk", True),  # aligned with digital.justice.gov.uk
        ("evil.example", "evil.example", False),  # a real signature, of another organisation
        ("justice.gov.uk", "nobody", False),  # a signature nobody can check
    ],
)
async def test_enforce_with_direct_dkim_and_no_border(
    keys: tuple[bytes, bytes],
    signer: str,
    published_for: str,
    pages: bool,
    make_settings: Any,
    store: Store,
) -> None:
    private, record = keys
    settings = make_settings(sender_policy="enforce", verify_dkim=True)
    raw = signed(escalation(), signer, private)
    decision = await decided(store, raw, settings, resolver(dns_for(published_for, record)))
    assert (decision["page"] == "now") is pages
    assert decision["sender"]["verified"] is pages


def test_enforce_needs_a_border_id_or_direct_dkim(make_settings: Any) -> None:
    with pytest.raises(ConfigError, match="ESCALATOR_VERIFY_DKIM"):
        load_policy(make_settings(sender_policy="enforce"))
    assert load_policy(make_settings(sender_policy="enforce", verify_dkim=True))


def test_verifier_is_off_unless_asked() -> None:
    assert verifier(False) is None
