"""Every test mail of shared/corpus/real, sent over SMTP: answered properly, kept, decided.

Sent once in wire form (CRLF, as an MTA sends) and once with bare LF line ends (as Python's
smtplib sends `as_bytes()`): every 250 must be in the store, and only the same content (a retry
through another path, the same file in another line-ending form) is stored once.
"""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest
from conftest import RunningServer

from escalator.store.digest import content_digest

NOT_MAIL = re.compile(r"^(LICENSE|NOTICE|README|MANIFEST)|^\.")


def corpus_files(root: Path) -> list[Path]:
    return sorted(
        path for path in root.rglob("*") if path.is_file() and not NOT_MAIL.match(path.name)
    )


def _text(error: bytes | str) -> str:
    return error.decode() if isinstance(error, bytes) else error


def wire_form(data: bytes) -> bytes:
    """What a real MTA sends: every line ending CRLF (smtplib alone would leave bare LFs)."""
    fixed = re.sub(rb"\r\n|\n|\r", b"\r\n", data)
    return fixed if fixed.endswith(b"\r\n") else fixed + b"\r\n"


def sent_and_kept(data: bytes, ending: str) -> tuple[bytes, bytes]:
    """(what smtplib is given, what the store must hold). smtplib ends a bare-LF message with
    its own CRLF before the final dot, which the server keeps as one more (empty) line."""
    wire = wire_form(data)
    if ending == "crlf":
        return wire, wire
    return wire.replace(b"\r\n", b"\n"), wire + b"\r\n"


@pytest.mark.parametrize("ending", ["crlf", "bare_lf"])
def test_every_corpus_file_is_accepted_or_refused_properly(
    server: RunningServer, corpus_dir: Path, ending: str
) -> None:
    """Each file gets 250 or a proper refusal; every accepted one is stored intact and decided;
    only identical content is stored once."""
    files = corpus_files(corpus_dir)
    if not files:
        pytest.skip(f"no corpus at {corpus_dir}")
    accepted: list[bytes] = []
    with server.smtp() as client:
        for n, path in enumerate(files):
            sent, kept = sent_and_kept(path.read_bytes(), ending)
            client.ehlo_or_helo_if_needed()
            try:
                client.sendmail(f"corpus{n}@example.org", ["escalations@localhost"], sent)
            except smtplib.SMTPResponseException as refused:
                assert refused.smtp_code in (500, 552, 554), (path, refused.smtp_code)
                assert re.match(r"5\.\d\.\d", _text(refused.smtp_error)), (
                    path,
                    refused.smtp_error,
                )
                client.rset()
                continue
            accepted.append(kept)
    mails = server.mails()
    stored = [server.call(server.service.store.get_mail(m.mail.id)) for m in mails]
    raws = {mail.raw for mail in stored if mail is not None}
    digests = {content_digest(raw) for raw in raws} - {None}
    lost = [raw[:200] for raw in accepted if raw not in raws and content_digest(raw) not in digests]
    assert lost == [], "every 250 is in the store, byte for byte or as the same content"
    keys = {content_digest(raw) or raw for raw in accepted}
    assert len(mails) == len(keys), "same content once, everything else kept"
    assert all(m.mail.verdict in ("escalate", "reject") for m in mails), "decided"
    print(f"{ending}: {len(files)} files, {len(accepted)} accepted, {len(mails)} stored")
