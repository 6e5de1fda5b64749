"""The mail-path canary: send a marked test escalation and check it was stored and decided.

A probe mail carries `X-Escalator-Probe: <HMAC of its Message-ID>`, keyed by ESCALATOR_PROBE_KEY or,
by default, a random key kept in the data dir (so `escalator probe` run beside `serve`, e.g. with
`kubectl exec`, shares it). Only a correctly keyed mark makes a mail a probe, so nobody can
silence a real escalation by adding the header; a probe is decided like any mail, but its
actions are recorded as skipped: a probe never pages, alarms or replies.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib

from escalator.core.mail import ParsedMail
from escalator.errors import ConfigError, TransientError
from escalator.settings import Settings, split_host_port
from escalator.store import MailRow, Store

PROBE_HEADER = "X-Escalator-Probe"
PROBE_SUBJECT = "[escalator probe]"


def probe_key(settings: Settings) -> bytes:
    """The probe key from settings, else from (or newly into) <data dir>/probe.key."""
    if settings.probe_key is not None:
        return settings.probe_key.get_secret_value().encode()
    path = settings.data_dir / "probe.key"
    try:
        return _read_or_create_key(path)
    except OSError as exc:
        raise ConfigError(f"cannot read or create the probe key {path}: {exc}") from None


def _read_or_create_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key


def probe_mark(key: bytes, message_id: str) -> str:
    return hmac.new(key, message_id.encode(), hashlib.sha256).hexdigest()


def is_probe(mail: ParsedMail, key: bytes) -> bool:
    """True only for a mail whose probe header is the keyed mark of its own Message-ID."""
    mark = (mail.header(PROBE_HEADER.lower()) or "").strip()
    if not mark or not mail.message_id:
        return False
    return hmac.compare_digest(mark, probe_mark(key, mail.message_id))


def build_probe(key: bytes, sender: str, recipient: str, now: datetime) -> EmailMessage:
    """A probe that reads like an escalation, so it exercises the whole decision path."""
    domain = sender.rpartition("@")[2] or "localhost"
    message_id = f"probe-{uuid.uuid4().hex}@{domain}"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"{PROBE_SUBJECT} mail path check {now.isoformat(timespec='seconds')}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{message_id}>"
    message[PROBE_HEADER] = probe_mark(key, message_id)
    message.set_content(
        "This is an escalator probe: a test of the escalation mail path.\n"
        "The probe service is down and returns 503 for every request (simulated).\n"
        "Slack channel: #escalator-probe\n"
    )
    return message


@dataclass(frozen=True)
class ProbeResult:
    message_id: str
    mail: MailRow | None
    seconds: float

    @property
    def decided(self) -> bool:
        return self.mail is not None and self.mail.verdict is not None

    @property
    def recognised(self) -> bool:
        """The server knew it for a probe (same key), so it skipped its actions."""
        return self.mail is not None and self.mail.decision is not None and self.mail.decision.probe

    @property
    def ok(self) -> bool:
        return self.decided and self.recognised


async def send_probe(message: EmailMessage, host: str, port: int, seconds: float) -> None:
    try:
        await aiosmtplib.send(message, hostname=host, port=port, timeout=seconds)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise TransientError(f"probe not accepted by {host}:{port}: {exc}") from None


async def wait_decided(store: Store, message_id: str, seconds: float) -> MailRow | None:
    """Poll the store until the probe is decided or the time is up."""
    deadline = time.monotonic() + seconds
    while True:
        mail = await store.find_mail(message_id)
        if (mail is not None and mail.verdict is not None) or time.monotonic() > deadline:
            return mail
        await asyncio.sleep(0.2)


async def run_probe(
    settings: Settings, store: Store, *, via: str | None, to: str | None, seconds: float
) -> ProbeResult:
    """Send one probe through `via` (default: our own listener) and wait for its decision."""
    host, port = split_host_port(via or settings.smtp_listen, "--via")
    recipient = to or settings.addresses[0]
    message = build_probe(probe_key(settings), settings.reply_from, recipient, datetime.now(UTC))
    message_id = str(message["Message-ID"]).strip("<>")
    started = time.monotonic()
    await send_probe(message, host, port, seconds)
    mail = await wait_decided(store, message_id, seconds)
    return ProbeResult(message_id, mail, time.monotonic() - started)
