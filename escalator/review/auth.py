"""Who may use the review page: the shared token, signed session cookies and CSRF tokens, and
the identity header of a trusted authenticating proxy (see web.py, WHO MAY ACT)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from escalator.settings import Settings

SESSION_COOKIE = "escalator_session"
SESSION_SECONDS = 12 * 3600
LOGIN_FAILURES_PER_MINUTE = 20  # beyond this the form rests for a minute (bearer/proxy unaffected)


@dataclass(frozen=True)
class Identity:
    """Who is asking; `binding` ties the CSRF token to a browser session (None: no CSRF needed)."""

    who: str
    binding: str | None


class Guard:
    """Checks credentials, issues session cookies and CSRF tokens; never logs the token."""

    def __init__(self, settings: Settings) -> None:
        configured = settings.review_token
        self.generated = configured is None
        self._token = (
            secrets.token_urlsafe(24) if configured is None else configured.get_secret_value()
        )
        # The signing key follows the token: changing the token signs everyone out.
        self._key = hashlib.sha256(b"escalator review session\0" + self._token.encode()).digest()
        self._proxies = tuple(
            ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies
        )
        self._header = settings.identity_header
        self.secure_cookie = settings.public_url.startswith("https://")
        self._failures: deque[float] = deque()

    def login_allowed(self, now: float) -> bool:
        """Guessing the token through the form is slowed to a few tries a minute, all clients."""
        while self._failures and self._failures[0] < now - 60:
            self._failures.popleft()
        return len(self._failures) < LOGIN_FAILURES_PER_MINUTE

    def login_failed(self, now: float) -> None:
        self._failures.append(now)

    @property
    def token(self) -> str:
        return self._token

    def token_matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self._token.encode())

    def identify(self, request: web.Request) -> Identity | None:
        """Trusted proxy header first, then the session cookie, then a bearer token."""
        person = self._proxy_identity(request)
        if person is not None:
            return Identity(f"proxy:{person}", f"proxy|{person}")
        cookie = request.cookies.get(SESSION_COOKIE)
        who = self._session_who(cookie) if cookie else None
        if who is not None and cookie is not None:
            return Identity(who, f"session|{cookie}")
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and offered and self.token_matches(offered.strip()):
            return Identity("token:bearer", None)
        return None

    def _proxy_identity(self, request: web.Request) -> str | None:
        value = request.headers.get(self._header, "").strip()
        if not value or not self._proxies or not self._peer_trusted(request):
            return None
        return value[:200]

    def _peer_trusted(self, request: web.Request) -> bool:
        """The TCP peer itself, never X-Forwarded-For, which anyone can write."""
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer[0])
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def session_cookie(self, who: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = _b64(json.dumps({"who": who, "exp": expires}).encode())
        return f"{body}.{self._sign('session', body)}"

    def _session_who(self, cookie: str) -> str | None:
        body, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature, self._sign("session", body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or int(data.get("exp", 0)) < time.time():
            return None
        return str(data.get("who") or "") or None

    def csrf_token(self, identity: Identity) -> str:
        return self._sign("csrf", identity.binding or "")

    def csrf_ok(self, identity: Identity, offered: str) -> bool:
        if identity.binding is None:
            return True  # a bearer token is never sent by a browser on its own
        return hmac.compare_digest(offered.encode(), self.csrf_token(identity).encode())

    def _sign(self, purpose: str, text: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}|{text}".encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
