"""Reply mail through the relay (aiosmtplib), sent with a null reverse-path.

ESCALATOR_RELAY_URL picks the transport: smtp://host:port (plain), smtp+starttls://user:pass@
host:port (STARTTLS, then AUTH), smtps://user:pass@host:port (implicit TLS). A 4xx or a broken
connection is worth retrying; a 5xx means the relay will never take this mail.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from importlib import resources
from urllib.parse import unquote, urlsplit

import aiosmtplib

from escalator.core.retry import Refused, RetryLater
from escalator.errors import ConfigError

_SCHEMES = {
    "smtp": (25, False, False),
    "smtp+starttls": (587, False, True),
    "smtps": (465, True, False),
}


@dataclass(frozen=True)
class RelayTarget:
    """Where and how to hand replies over; the password never reaches a log line."""

    host: str
    port: int
    use_tls: bool
    start_tls: bool
    username: str | None
    password: str | None


def parse_relay_url(url: str) -> RelayTarget:
    """Read ESCALATOR_RELAY_URL; ConfigError (without the URL, it may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ConfigError("ESCALATOR_RELAY_URL must be smtp://, smtp+starttls:// or smtps://host")
    default_port, use_tls, start_tls = _SCHEMES[parts.scheme]
    return RelayTarget(
        host=parts.hostname,
        port=parts.port or default_port,
        use_tls=use_tls,
        start_tls=start_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def load_template(name: str) -> str:
    """The packaged reply wording (escalator/templates/NAME), as support last edited it."""
    return (resources.files("escalator") / "templates" / name).read_text(encoding="utf-8")


class Relay:
    """Sends one reply per call, MAIL FROM:<> so no bounce can loop back to us."""

    def __init__(
        self, target: RelayTarget, tls: ssl.SSLContext | None = None, timeout: float = 30.0
    ) -> None:
        self._target = target
        self._tls = tls
        self._timeout = timeout

    async def send(self, message: EmailMessage, recipient: str) -> dict[str, str]:
        target = self._target
        try:
            _refused, reply = await aiosmtplib.send(
                message,
                hostname=target.host,
                port=target.port,
                sender="",
                recipients=[recipient],
                username=target.username,
                password=target.password,
                use_tls=target.use_tls,
                start_tls=target.start_tls,
                tls_context=self._tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _classify(exc.recipients[0].code, "recipient refused") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise RetryLater(f"relay unreachable: {type(exc).__name__}") from None
        return {"relay_reply": reply[:200]}


def _classify(code: int, text: str) -> RetryLater | Refused:
    message = f"relay answered {code} {text[:200]}"
    if 400 <= code < 500:
        return RetryLater(message)
    return Refused(message, code=f"smtp_{code}")
