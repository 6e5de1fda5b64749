"""Who may use the review page: the shared token, signed session cookies and CSRF tokens, and
the identity header of a trusted authenticating proxy (see web.py, WHO MAY ACT).

Guessing the token is throttled (issue 16) per client address (IPv6 by /64) and per identity
(the name typed into the form), each kind of guess on its own budget: the form, and Bearer
headers. A throttled client is answered 429 before its guess is compared, so the throttle is no
oracle. Per identity never locks out another address: it applies only to addresses that have
themselves failed, so the right token from a clean address always signs in. Failures are logged
with the client address and a count, never with what was offered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from aiohttp import web

from escalator.settings import Settings

log = logging.getLogger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SESSION_COOKIE = "escalator_session"
SESSION_SECONDS = 12 * 3600
LOGIN_FAILURES_PER_MINUTE = 20  # per client address: then the form rests a minute for it
BEARER_FAILURES_PER_MINUTE = 20  # per client address: then its Bearer headers get 429
IDENTITY_FAILURES_PER_MINUTE = 20  # per name typed in the form, for addresses that failed too
THROTTLE_WINDOW = 60.0
THROTTLE_KEYS = 10_000  # addresses and names remembered at most (oldest forgotten first)


@dataclass(frozen=True)
class Identity:
    """Who is asking; `binding` ties the CSRF token to a browser session (None: no CSRF needed)."""

    who: str
    binding: str | None
    session: str | None = None  # the session cookie this identity came from, if any


class Throttle:
    """Failures per key in a sliding minute, for a bounded number of keys."""

    def __init__(self, limit: int, window: float = THROTTLE_WINDOW, keys: int = THROTTLE_KEYS):
        self.limit = limit
        self._window = window
        self._keys = keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def count(self, key: str, now: float) -> int:
        """Failures of `key` within the window."""
        times = self._failures.get(key)
        while times and times[0] <= now - self._window:
            times.popleft()
        return len(times) if times else 0

    def over(self, key: str, now: float) -> bool:
        return self.count(key, now) >= self.limit

    def fail(self, key: str, now: float) -> int:
        """Note one failure; the count within the window after it."""
        times = self._failures.setdefault(key, deque())
        self._failures.move_to_end(key)
        times.append(now)
        while len(self._failures) > self._keys:
            self._failures.popitem(last=False)
        return self.count(key, now)


def client_key(request: web.Request, proxies: tuple[Network, ...] = ()) -> str:
    """The client's address as the throttle counts it: the TCP peer (behind a trusted proxy,
    the last X-Forwarded-For hop it added); an IPv6 client by its /64, which one host owns."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    text = str(peer[0]) if peer else "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
    if forwarded and _within(text, proxies):
        text = forwarded
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _within(text: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(address in network for network in networks)


def session_key(cookie: str) -> str:
    """How a session is named server-side (in the revocation list): a digest, not the cookie."""
    return hashlib.sha256(cookie.encode()).hexdigest()


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
        self._logins = Throttle(LOGIN_FAILURES_PER_MINUTE)
        self._names = Throttle(IDENTITY_FAILURES_PER_MINUTE)
        self._bearers = Throttle(BEARER_FAILURES_PER_MINUTE)

    def client(self, request: web.Request) -> str:
        return client_key(request, self._proxies)

    def login_allowed(self, client: str, name: str, now: float) -> bool:
        """May this client try the form now? Its own failures count; the name's failures count
        only once this client has failed too (another address is never locked out)."""
        if self._logins.over(client, now):
            return False
        return not (self._logins.count(client, now) and self._names.over(name.lower(), now))

    def login_failed(self, client: str, name: str, now: float) -> None:
        count = self._logins.fail(client, now)
        self._names.fail(name.lower(), now)
        _log_failure("login form", client, count, self._logins.limit)

    def bearer_allowed(self, client: str, now: float) -> bool:
        return not self._bearers.over(client, now)

    def bearer_failed(self, client: str, now: float) -> None:
        _log_failure("Bearer token", client, self._bearers.fail(client, now), self._bearers.limit)

    @staticmethod
    def bearer_offered(request: web.Request) -> str | None:
        """The token of an `Authorization: Bearer` header, or None when there is none."""
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        return offered.strip() if scheme.lower() == "bearer" and offered.strip() else None

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
            return Identity(who, f"session|{cookie}", cookie)
        offered = self.bearer_offered(request)
        if offered is not None and self.token_matches(offered):
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
        """A signed session; its random `sid` makes each sign-in a session of its own, so
        signing out (revoking it) ends that one only."""
        expires = int((now or time.time()) + SESSION_SECONDS)
        payload = {"who": who, "exp": expires, "sid": secrets.token_urlsafe(12)}
        body = _b64(json.dumps(payload).encode())
        return f"{body}.{self._sign('session', body)}"

    def session_expiry(self, cookie: str) -> float:
        """When a (valid) session cookie expires anyway: how long its revocation is kept."""
        body = cookie.partition(".")[0]
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            return float(data.get("exp", 0)) if isinstance(data, dict) else 0.0
        except (ValueError, TypeError):
            return 0.0

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


def _log_failure(kind: str, client: str, count: int, limit: int) -> None:
    """One line per failure until the client is throttled, then one saying so; never the
    offered secret."""
    if count < limit:
        log.warning("review sign-in: wrong %s from %s (%d in a minute)", kind, client, count)
    elif count == limit:
        log.warning(
            "review sign-in: %s throttled for %s after %d wrong tries in a minute",
            kind,
            client,
            count,
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
