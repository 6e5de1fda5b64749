"""An aiosmtpd sink for replies: records envelope and message, optionally over TLS with AUTH.

Modes: plain SMTP; STARTTLS + AUTH (smtp+starttls://user:pass@); implicit TLS (smtps://).
`script(code, ...)` queues answers to DATA (e.g. 451 then 250) to exercise retries.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


class _Handler:
    def __init__(self) -> None:
        self.delivered: list[Delivered] = []
        self.script: deque[str] = deque()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        if self.script:
            return self.script.popleft()
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.delivered.append(Delivered(envelope.mail_from, list(envelope.rcpt_tos), message, raw))
        return "250 OK"


class SmtpSink:
    """A loopback relay. `url` is what ESCALATOR_RELAY_URL would hold; `client_tls` trusts it."""

    def __init__(self, mode: str = "smtp", user: str = "relay", password: str = "s3cret") -> None:
        self.mode = mode
        self._handler = _Handler()
        self._ca = trustme.CA()
        self.client_tls = ssl.create_default_context()
        self._ca.configure_trust(self.client_tls)
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_tls)
        self._user, self._password = user, password
        self._controller = self._build(server_tls)
        self.url = ""

    @property
    def delivered(self) -> list[Delivered]:
        return self._handler.delivered

    def script(self, *answers: str) -> None:
        self._handler.script.extend(answers)

    def _build(self, server_tls: ssl.SSLContext) -> Controller:
        # LOGIN is left out: aiosmtplib's initial-response LOGIN stalls against aiosmtpd on failure
        common: dict[str, Any] = {
            "auth_exclude_mechanism": ["LOGIN"],
            "hostname": "127.0.0.1",
            "port": _free_port(),
            "ready_timeout": 5,
        }
        if self.mode == "smtps":
            # aiosmtpd does not count implicit TLS as TLS for AUTH, though the wire is encrypted
            return Controller(
                self._handler,
                ssl_context=server_tls,
                authenticator=self._auth,
                auth_require_tls=False,
                **common,
            )
        if self.mode == "smtp+starttls":
            return Controller(
                self._handler,
                tls_context=server_tls,
                require_starttls=True,
                authenticator=self._auth,
                auth_required=True,
                **common,
            )
        return Controller(self._handler, **common)

    def _auth(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self._user.encode(),
            self._password.encode(),
        )
        return AuthResult(success=ok, handled=False)

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        port = self._controller.port
        creds = "" if self.mode == "smtp" else f"{self._user}:{self._password}@"
        self.url = f"{self.mode}://{creds}127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def _free_port() -> int:
    """aiosmtpd's Controller probes its own port once started, so it cannot take port 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
