"""Every test mail of shared/corpus/real, sent over SMTP: answered properly, kept, decided."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest
from conftest import RunningServer

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


def test_every_corpus_file_is_accepted_or_refused_properly(
    server: RunningServer, corpus_dir: Path
) -> None:
    """Each file gets 250 or a proper refusal; each accepted one is stored intact and decided."""
    files = corpus_files(corpus_dir)
    if not files:
        pytest.skip(f"no corpus at {corpus_dir}")
    accepted: dict[str, bytes] = {}
    with server.smtp() as client:
        for n, path in enumerate(files):
            sender = f"corpus{n}@example.org"  # one sender per file: copies are not retries
            client.ehlo_or_helo_if_needed()
            try:
                client.sendmail(sender, ["escalations@localhost"], wire_form(path.read_bytes()))
            except smtplib.SMTPResponseException as refused:
                assert refused.smtp_code in (500, 552, 554), (path, refused.smtp_code)
                assert re.match(r"5\.\d\.\d", _text(refused.smtp_error)), (
                    path,
                    refused.smtp_error,
                )
                client.rset()
                continue
            accepted[sender] = wire_form(path.read_bytes())
    mails = server.mails()
    assert len(mails) == len(accepted), "0 lost"
    for listed in mails:
        mail = server.call(server.service.store.get_mail(listed.mail.id))
        assert mail is not None and mail.raw == accepted[mail.mail_from]
        assert mail.verdict in ("escalate", "reject"), "decided"
    assert server.service.processor.decided == len(accepted)
    print(f"{len(files)} files, {len(accepted)} accepted")
