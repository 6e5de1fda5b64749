"""Direct DKIM verification (issue 16, optional: ESCALATOR_VERIFY_DKIM), beside the border MTA.

The border's Authentication-Results are the first source of truth; where there is no border
that writes them (or to check it), the decide worker verifies the mail's own DKIM-Signature
fields with dkimpy against the keys their signers publish in DNS. Each verified signature is
handed to the core as `dkim=pass header.d=<signer>` (a failed one as `dkim=fail`), and the core
applies the same alignment rule as to the border's word: a signature vouches for the From
domain only when the signer is the same organisation. DNS happens here, never in the core;
tests pass a stub resolver (`dnsfunc(name, timeout=…) -> TXT bytes | None`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dkim
import dkim.dnsplug

from escalator.core.authenticity import MethodResult

log = logging.getLogger(__name__)

MAX_SIGNATURES = 3  # a mail with dozens of signatures costs DNS lookups, not trust
DNS_TIMEOUT = 5.0
DnsFunc = Callable[..., Any]
Verifier = Callable[[bytes], tuple[MethodResult, ...]]


def dkim_results(
    raw: bytes, dnsfunc: DnsFunc | None = None, timeout: float = DNS_TIMEOUT
) -> tuple[MethodResult, ...]:
    """One result per DKIM-Signature (the first MAX_SIGNATURES); never raises."""
    try:
        signer = dkim.DKIM(raw, minkey=1024, timeout=int(timeout))
        count = sum(1 for name, _ in signer.headers if name.lower() == b"dkim-signature")
    except Exception:  # noqa: BLE001 - dkimpy raises many types on hostile mail: nothing verified
        return ()
    lookup = dnsfunc or dkim.dnsplug.get_txt
    return tuple(_verify(signer, index, lookup) for index in range(min(count, MAX_SIGNATURES)))


def _verify(signer: dkim.DKIM, index: int, lookup: DnsFunc) -> MethodResult:
    signer.domain = None
    try:
        passed = bool(signer.verify(idx=index, dnsfunc=lookup))
    except Exception as exc:  # noqa: BLE001 - a bad signature, key or DNS answer is a failure
        log.info("DKIM signature %d not verified: %s", index, type(exc).__name__)
        passed = False
    domain = signer.domain.decode("ascii", "replace").lower() if signer.domain else ""
    return MethodResult("dkim", "pass" if passed else "fail", (("header.d", domain),))


def verifier(enabled: bool, dnsfunc: DnsFunc | None = None) -> Verifier | None:
    """The decide worker's DKIM check when ESCALATOR_VERIFY_DKIM is on, else None."""
    if not enabled:
        return None
    return lambda raw: dkim_results(raw, dnsfunc)
