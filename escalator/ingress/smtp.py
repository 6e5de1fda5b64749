"""The SMTP front door: aiosmtpd in the service's own loop; 250 only once the mail is on disk.

Three pieces: `SessionGate` counts sessions overall and per client address (aiosmtpd has no
connection cap), `MailHandler` checks recipients and hands each mail to the store, and
`EscalatorSMTP` (an aiosmtpd SMTP subclass) enforces the gate, gives DATA a longer timer and
puts RFC 3463 enhanced codes on aiosmtpd's own size and line replies. `start_smtp` wires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.header
import email.parser
import email.policy
import email.utils
import enum
import logging
import re
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, AnyStr, Protocol

import aiosmtpd
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, login_always_fail

from escalator import metrics
from escalator.core import headers as core_headers
from escalator.errors import ConfigError, StoreUnavailable
from escalator.ingress.ratelimit import RateLimits
from escalator.ingress.spool import MEMORY_BYTES, CommitBudget, DiskBudget, Spool
from escalator.settings import Settings, split_host_port
from escalator.store import Accepted, IncomingMail
from escalator.store.digest import content_digest

log = logging.getLogger(__name__)

IDENT = "escalator"  # the banner says what answers, never which version (no fingerprinting)
LINE_LIMIT = 8192  # RFC 5321 says 1000; real senders overshoot, so be liberal up to a point
MIN_UPLOAD_RATE = 20_000  # bytes/s a legitimately slow client still gets for the largest mail
PROXY_TIMEOUT = 10.0
HEADER_SCAN_LIMIT = 64 * 1024  # Message-ID/Subject/From sit in the header block
FAST_INIT_VERSION = "1.4.6"  # EscalatorSMTP._fast_init mirrors this release's SMTP.__init__
NO_AUTH = ("LOGIN", "PLAIN")
PRESSURE_FRACTION = 0.8  # of ESCALATOR_MAX_CONNECTIONS in use: idle sessions get the short timer
PRESSURE_IDLE_TIMEOUT = 10.0  # Postfix's smtpd_timeout under stress (${stress?{10}:{300}}s)

REPLY_STORED = "250 2.0.0 Ok: queued as {mail_id}"
REPLY_STORE_DOWN = "451 4.3.0 Temporarily unable to store the message, try again later"
REPLY_TOO_MANY_SESSIONS = b"421 4.7.0 Too many connections, try again later\r\n"
REPLY_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
REPLY_SHED = b"421 4.7.0 Idle too long while the server is busy, closing\r\n"
REPLY_RATE_LIMITED = "450 4.7.1 Too many mails from this {scope} just now, try again later"
REPLY_UNKNOWN_RCPT = "550 5.1.1 <{address}>: recipient address rejected"
REPLY_TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
REPLY_TOO_BIG = "552 5.3.4 Message too big for this system (limit {limit} bytes)"
REPLY_LINE_TOO_LONG = "500 5.5.2 Line too long (limit {limit} bytes)"
REPLY_NO_ROOM = "452 4.3.1 Insufficient system storage, try again later"


# -- recipients ---------------------------------------------------------------------------


def mailbox_key(address: str) -> str:
    """Lowercase, without <> and without a +tag: how recipients are compared."""
    bare = address.strip().removeprefix("<").removesuffix(">").strip().lower()
    local, at, domain = bare.rpartition("@")
    if not at:
        return bare
    return f"{local.partition('+')[0]}@{domain}"


def postmasters(addresses: tuple[str, ...]) -> frozenset[str]:
    """RFC 5321 4.5.1: postmaster@ each local domain, and bare <Postmaster>, are accepted."""
    domains = {mailbox_key(a).rpartition("@")[2] for a in addresses if "@" in a}
    return frozenset({"postmaster", *(f"postmaster@{domain}" for domain in domains)})


def is_postmaster(address: str) -> bool:
    return mailbox_key(address).partition("@")[0] == "postmaster"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# <dot-atom@dot-atom> and the blanks around it: what nearly every MTA sends in MAIL and RCPT,
# and what the email package's parser reads as exactly the text between < and >.
_DOMAIN = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_PATH = re.compile(rf"[ \t]*<({_ATOM}(?:\.{_ATOM})*@{_DOMAIN})>[ \t]*")
_SMTPUTF8_PARAM = re.compile(r"\sSMTPUTF8(?:\s|$)", re.IGNORECASE)


def address_refusal(arg: str | None, smtputf8: bool, command: str) -> str | None:
    """Hygiene before aiosmtpd parses a MAIL/RCPT argument: control characters -> 501,
    non-ASCII without SMTPUTF8 -> 553 5.6.7, bytes that are not UTF-8 -> 501."""
    if not arg:
        return None
    code = "5.1.7" if command == "MAIL" else "5.1.3"
    if _CONTROL.search(arg) or any("\udc80" <= char <= "\udcff" for char in arg):
        return f"501 {code} Control characters or invalid bytes in the address"
    if not arg.isascii() and not (smtputf8 or _SMTPUTF8_PARAM.search(arg)):
        return "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter"
    return None


# -- sessions -----------------------------------------------------------------------------


@dataclass
class SessionGate:
    """Counts live sessions overall and per client; refuses over either cap.

    Under pressure (`pressure` of the cap in use, like Postfix's stress mode) idle sessions,
    those with no transaction under way, get the short `PRESSURE_IDLE_TIMEOUT`, and when the cap
    is reached the longest-idle one is closed to make room for the newcomer: a few addresses
    holding idle connections cannot lock everyone else out, and a sender mid-transaction (MAIL
    given, or in DATA) always keeps its slot."""

    max_total: int
    max_per_client: int
    sessions: set[EscalatorSMTP] = field(default_factory=set)
    per_client: Counter[str] = field(default_factory=Counter)
    draining: bool = False
    pressure: float = PRESSURE_FRACTION
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def admit(self, session: EscalatorSMTP, client: str) -> bool:
        if self.draining or self.per_client[client] >= self.max_per_client:
            return False
        if self.under_pressure(extra=1):
            self._squeeze()
        if len(self.sessions) >= self.max_total and not self._shed_one():
            return False
        self.sessions.add(session)
        self.per_client[client] += 1
        self._idle.clear()
        return True

    def under_pressure(self, extra: int = 0) -> bool:
        return len(self.sessions) + extra > self.max_total * self.pressure

    def _squeeze(self) -> None:
        """Pressure: every idle session gets the short idle timeout."""
        for session in self.sessions:
            if session.idle_since is not None:
                session.shorten_timeout(PRESSURE_IDLE_TIMEOUT)

    def _shed_one(self) -> bool:
        """Close the longest-idle session; False when every session is mid-transaction."""
        idle = [s for s in self.sessions if s.idle_since is not None]
        if not idle:
            return False
        oldest = min(idle, key=lambda s: s.idle_since or 0.0)
        metrics.SMTP_SHED.inc()
        oldest.shed()
        self.sessions.discard(oldest)  # its slot is the newcomer's now; release() skips it
        return True

    def release(self, session: EscalatorSMTP, client: str) -> None:
        self.sessions.discard(session)
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]
        if not self.sessions:
            self._idle.set()

    async def drain(self, deadline: float) -> int:
        """Close idle sessions now, wait up to `deadline` s for the rest; return how many cut."""
        self.draining = True
        for session in list(self.sessions):
            session.close_if_idle()
        if self.sessions:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), deadline)
        left = list(self.sessions)
        for session in left:
            session.abort()
        return len(left)


# -- the handler --------------------------------------------------------------------------


class Accepting(Protocol):
    """All the handler needs of the store: `Store.accept`."""

    async def accept(self, mail: IncomingMail) -> Accepted: ...


class MailHandler:
    """aiosmtpd hooks: which recipients we take, and durable acceptance of the data."""

    def __init__(
        self,
        store: Accepting,
        addresses: tuple[str, ...],
        max_recipients: int,
        on_accepted: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        limits: RateLimits | None = None,
    ) -> None:
        self._store = store
        self._limits = limits or RateLimits(0, 0, time.monotonic)
        self._budget = CommitBudget()
        self.disk = DiskBudget()  # what all sessions' spool files may hold at once
        self._addresses = frozenset(mailbox_key(a) for a in addresses) | postmasters(addresses)
        self._max_recipients = max_recipients
        self._on_accepted = on_accepted
        self._clock = clock
        # What aiosmtpd would find with dir() on every connection, found once.
        self.hooks: dict[str, Callable[..., Any]] = {
            name.removeprefix("handle_"): getattr(self, name)
            for name in dir(self)
            if name.startswith("handle_")
        }

    async def handle_MAIL(  # noqa: N802 - aiosmtpd finds hooks by this exact name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        over = self._limits.refusal(address, client_address(session) or "unknown")
        if over is not None:
            metrics.SMTP_RATE_LIMITED.labels(scope=over).inc()
            return REPLY_RATE_LIMITED.format(scope=over)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd finds hooks by this exact name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if mailbox_key(address) not in self._addresses:
            return REPLY_UNKNOWN_RCPT.format(address=_printable(address))
        if len(envelope.rcpt_tos) >= self._max_recipients:
            return REPLY_TOO_MANY_RCPTS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(  # noqa: N802 - aiosmtpd finds hooks by this exact name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        spool = getattr(server, "spool", None)
        size = spool.size if spool is not None else len(envelope.original_content or b"")
        async with self._budget.reserve(size):
            raw = b"" if spool is None else await _read(spool)
            mail = incoming_mail(session, envelope, self._clock(), raw or envelope.original_content)
            return await self._store_mail(mail)

    async def _store_mail(self, mail: IncomingMail) -> str:
        started = time.perf_counter()
        try:
            accepted = await self._store.accept(mail)
        except StoreUnavailable as exc:
            metrics.STORE_ERRORS.inc()
            log.warning("store unavailable, answered 451: %s", exc)
            return REPLY_STORE_DOWN
        metrics.ACCEPT_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "accepted mail %d (%d bytes, %d rcpt, from %s%s)",
            accepted.mail_id,
            len(mail.raw),
            len(mail.rcpt_tos),
            mail.client_address,
            ", duplicate" if accepted.duplicate else "",
        )
        if not accepted.duplicate:
            self._limits.record(mail.mail_from, mail.client_address or "unknown")
            self._on_accepted()
        return REPLY_STORED.format(mail_id=accepted.mail_id)

    async def handle_PROXY(  # noqa: N802 - aiosmtpd finds hooks by this exact name
        self, server: SMTP, session: Session, envelope: Envelope, proxy_data: Any
    ) -> bool:
        return bool(proxy_data and proxy_data.valid)

    async def handle_exception(self, error: Exception) -> str:
        """A bug must not lose mail: the client is told to retry, the traceback goes to the log."""
        log.error("SMTP session error", exc_info=error)
        return "451 4.3.0 Internal error, try again later"


async def _read(spool: Spool) -> bytes:
    """A spooled message back as bytes: off the loop when it went to a file."""
    if spool.size <= MEMORY_BYTES:
        return spool.read()
    return await asyncio.to_thread(spool.read)


def incoming_mail(
    session: Session, envelope: Envelope, received_at: datetime, raw: bytes | None = None
) -> IncomingMail:
    raw = raw or b""
    message_id, subject, from_addr = header_summary(raw)
    return IncomingMail(
        raw=raw,
        mail_from=envelope.mail_from or "<>",
        rcpt_tos=tuple(envelope.rcpt_tos),
        client_address=client_address(session),
        tls=session.ssl is not None,
        received_at=received_at,
        message_id=message_id,
        subject=subject,
        from_addr=from_addr,
        content_digest=content_digest(raw),
    )


def client_address(session: Session) -> str | None:
    proxied = session.proxy_data
    if proxied is not None and proxied.src_addr is not None:
        return str(proxied.src_addr)
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None if peer is None else str(peer)


def header_summary(raw: bytes) -> tuple[str | None, str, str]:
    """(Message-ID without <>, Subject, From address) from the header block only; never raises."""
    try:
        text = core_headers.header_block(raw, HEADER_SCAN_LIMIT)  # SMTPUTF8 headers are raw UTF-8
        headers = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
        message_id = core_headers.message_id(str(headers.get("message-id", "")))
        subject = _printable(_decoded(headers.get("subject", "")))
        from_addr = email.utils.parseaddr(str(headers.get("from", "")))[1].lower()
    except Exception:  # noqa: BLE001 - header junk must never cost a 250; the core reads it later
        return None, "", ""
    # Bounded so a hostile header cannot outgrow an index row (PostgreSQL btree: ~2.7 KB).
    stored_id = (message_id or "")[: core_headers.MAX_STORED_ID_CHARS] or None
    return stored_id, subject[:998], _printable(from_addr)[:320]


def _decoded(value: object) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except Exception:  # noqa: BLE001 - a broken encoded word keeps its raw form
        return str(value)


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


# -- DATA ---------------------------------------------------------------------------------


class CommandReader(asyncio.StreamReader):
    """aiosmtpd's reader, remembering whether the last line it gave ended in CRLF: a session
    whose DATA command ended in a bare LF is a bare-LF session (see `MessageReader`)."""

    crlf = True

    async def readuntil(self, separator: Any = b"\n") -> bytes:  # Any: typeshed's private alias
        line = await super().readuntil(separator)
        self.crlf = line.endswith(b"\r\n")
        return line


class DataState(enum.Enum):
    NOMINAL = "nominal"
    TOO_LONG = "too long"
    TOO_MUCH = "too much"
    NO_ROOM = "no room"  # the spool's disk budget is spent (other sessions' large mails)


@dataclass
class MessageReader:
    """The DATA phase, line by line, as Postfix's smtpd_forbid_bare_newline = normalize reads it.

    A bare LF ends a line like CRLF does and is stored as CRLF, so bare-LF clients are served.
    The end of data stays <CR><LF>.<CR><LF>: in a CRLF session a dot line ends the message only
    when it and the line before it end in CRLF, so `<LF>.<LF>`, `<LF>.<CR><LF>` and
    `<CR><LF>.<LF>` are content (SMTP smuggling: a relay in front reads them as content too, so
    we must never see a second message where it saw one). Only a client that sent its DATA
    command with a bare LF (a bare-LF session; no relay writes its commands that way) may end
    with any dot line. Dot-stuffing is undone; size and line limits apply to the stored form.
    """

    size_limit: int | None
    line_limit: int
    bare_lf_session: bool
    state: DataState = DataState.NOMINAL
    size: int = 0
    spool: Spool = field(default_factory=Spool)
    _previous_crlf: bool = True
    _continued: bool = False  # the next chunk continues an overlong line

    def feed(self, line: bytes) -> bool:
        """Take one line (or a chunk of an overlong one); True once it was the end of data."""
        if self._continued:
            self._continued = not line.endswith(b"\n")
            return False
        crlf = line.endswith(b"\r\n")
        text = line[: -2 if crlf else -1] if line.endswith(b"\n") else line
        if text == b"." and (self.bare_lf_session or (crlf and self._previous_crlf)):
            return True
        self._previous_crlf = crlf
        self._keep(text[1:] if text.startswith(b".") else text)
        return False

    def overlong(self, chunk: bytes) -> None:
        """A chunk of a line longer than the reader's limit: refuse the mail, skip the line."""
        self._fail(DataState.TOO_LONG)
        self._continued = not chunk.endswith(b"\n")

    def _keep(self, text: bytes) -> None:
        self.size += len(text) + 2
        if len(text) + 2 > self.line_limit:
            self._fail(DataState.TOO_LONG)
        elif self.size_limit and self.size > self.size_limit:
            self._fail(DataState.TOO_MUCH)
        if self.state is DataState.NOMINAL:
            self.spool.write(text + b"\r\n")
            if self.spool.no_room:
                self._fail(DataState.NO_ROOM)

    def _fail(self, state: DataState) -> None:
        if self.state is DataState.NOMINAL:
            self.state = state
            self.spool.close()


# -- the protocol -------------------------------------------------------------------------


class EscalatorSMTP(SMTP):
    """aiosmtpd's SMTP with a session cap, a DATA timer and enhanced status codes."""

    line_length_limit = LINE_LIMIT

    def __init__(
        self, handler: MailHandler, gate: SessionGate, data_timeout: float, **kwargs: Any
    ) -> None:
        if aiosmtpd.__version__ == FAST_INIT_VERSION:
            self._fast_init(handler, **kwargs)
        else:
            super().__init__(handler, auth_exclude_mechanism=NO_AUTH, **kwargs)
        self._gate = gate
        self._data_timeout = data_timeout
        self._client: str | None = None
        self._refused = False
        self._counting: str | None = None  # the command whose reply the metrics count
        self._last_active = time.monotonic()
        self._in_data = False
        self.spool: Spool | None = None  # the message of the DATA being handled

    def _fast_init(
        self,
        handler: MailHandler,
        *,
        data_size_limit: int,
        enable_SMTPUTF8: bool,  # noqa: N803 - aiosmtpd's keyword
        hostname: str,
        ident: str,
        tls_context: ssl.SSLContext | None,
        require_starttls: bool,
        timeout: float,
        proxy_protocol_timeout: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """aiosmtpd 1.4.6's SMTP.__init__ for exactly these options, without its per-connection
        introspection (inspect.getmembers and dir() of protocol and handler: about a fifth of
        the loop's CPU at 20 sessions, one connection per mail). No AUTH is offered: an inbound
        MX has no users. test_smtp checks this leaves the same state as aiosmtpd's own."""
        reader = CommandReader(loop=loop, limit=self.line_length_limit)
        asyncio.StreamReaderProtocol.__init__(
            self, reader, client_connected_cb=self._cb_client_connected, loop=loop
        )
        self.__ident__ = ident
        self.loop = loop
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = False
        self.command_size_limits.clear()
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = tls_context and require_starttls
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = proxy_protocol_timeout
        self._authenticator = None
        self._auth_callback = login_always_fail
        self._auth_required = False
        self._auth_methods = {}
        self._handle_hooks = handler.hooks
        self._ehlo_hook_ver = None
        self._smtp_methods = {name: getattr(self, f"smtp_{name}") for name in SMTP_COMMANDS}
        self._enforce_call_limit = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._client is None and self._original_transport is None:
            peer = transport.get_extra_info("peername")
            client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            if not self._gate.admit(self, client):
                self._refused = True
                count_reply(REPLY_TOO_MANY_SESSIONS.decode())
                transport.write(REPLY_TOO_MANY_SESSIONS)  # type: ignore[attr-defined]
                transport.close()
                return
            self._client = client
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return  # aiosmtpd never started this session, so it has nothing to tear down
        if self._client is not None:
            self._gate.release(self, self._client)
            self._client = None
        super().connection_lost(error)

    @property
    def idle_since(self) -> float | None:
        """When this session last answered, or None while a transaction is under way."""
        envelope = self.envelope
        if self._in_data or (envelope is not None and envelope.mail_from):
            return None
        return self._last_active

    def shorten_timeout(self, seconds: float) -> None:
        if self._timeout_duration > seconds and self.transport is not None:
            self._timeout_duration = seconds
            self._reset_timeout()

    def shed(self) -> None:
        """Closed to make room under pressure (SessionGate._shed_one)."""
        if self.transport is not None:
            count_reply(REPLY_SHED.decode())
            self.transport.write(REPLY_SHED)  # type: ignore[attr-defined]
            self.transport.close()

    async def push(self, status: AnyStr) -> None:
        self._last_active = time.monotonic()
        if isinstance(status, str):
            status = self._enhanced(status)
            self._count(status)
        await super().push(status)

    def _count(self, status: str) -> None:
        """Every final reply to DATA (one mail received), and refusals at MAIL and RCPT."""
        command, self._counting = self._counting, None
        if command == "DATA" and status.startswith("354"):
            self._counting = "MESSAGE"  # the final reply comes once the data is in
        elif command == "MESSAGE":
            metrics.MAILS_RECEIVED.inc()
            count_reply(status)
        elif command is not None and not status.startswith("2"):
            count_reply(status)

    def _enhanced(self, status: str) -> str:
        """aiosmtpd's own size and line replies carry no RFC 3463 code: give them one."""
        if status.startswith(("552 Error: Too much mail", "552 Error: message size exceeds")):
            return REPLY_TOO_BIG.format(limit=self.data_size_limit)
        if status.startswith("500 Line too long"):
            return REPLY_LINE_TOO_LONG.format(limit=self.line_length_limit)
        return status

    async def smtp_MAIL(self, arg: str) -> None:  # noqa: N802 - aiosmtpd dispatches by name
        self._counting = "MAIL"
        if self._gate.draining:
            await self.push(REPLY_SHUTTING_DOWN)
            self.abort()
            return
        refusal = address_refusal(arg, False, "MAIL")
        if refusal is not None:
            await self.push(refusal)
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd dispatches by name
        """aiosmtpd's DATA with `MessageReader` reading the message (bare LF, smuggling)."""
        # aiosmtpd re-arms its timer only per command, so DATA gets a budget for the largest
        # mail at the slowest rate we still serve; commands keep the short idle timeout.
        self._reset_timeout(self._data_timeout)
        self._counting = "DATA"
        if await self._data_refused(arg):
            return
        assert self.envelope is not None
        self._in_data = True
        try:
            await self._data()
        finally:
            self._in_data = False

    async def _data(self) -> None:
        assert self.envelope is not None
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader = MessageReader(
            self.data_size_limit,
            self.line_length_limit,
            not getattr(self._reader, "crlf", True),
            spool=Spool(disk=self.event_handler.disk),
        )
        try:
            if not await self._read_message(reader):
                return
            if reader.state is not DataState.NOMINAL:
                self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd, unannotated
                await self.push(self._refusal(reader.state))
                return
            self.spool = reader.spool
            status = await self._call_handler_hook("DATA")
        finally:
            reader.spool.close()
            self.spool = None
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd, unannotated
        await self.push("250 OK" if status is MISSING else status)

    async def _data_refused(self, arg: str) -> bool:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return True
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return True
        if arg:
            await self.push("501 Syntax: DATA")
            return True
        return False

    async def _read_message(self, reader: MessageReader) -> bool:
        """Feed `reader` until the end of data: True; False when the client went away."""
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as overrun:
                reader.overlong(await self._reader.read(overrun.consumed))
                continue
            except asyncio.IncompleteReadError:
                self.abort()
                return False
            if reader.feed(line):
                return True

    def _refusal(self, state: DataState) -> str:
        if state is DataState.TOO_LONG:
            return REPLY_LINE_TOO_LONG.format(limit=self.line_length_limit)
        if state is DataState.NO_ROOM:
            return REPLY_NO_ROOM
        return REPLY_TOO_BIG.format(limit=self.data_size_limit)

    async def smtp_RCPT(self, arg: str) -> None:  # noqa: N802 - aiosmtpd dispatches by name
        self._counting = "RCPT"
        envelope = self.envelope
        smtputf8 = envelope is not None and bool(envelope.smtp_utf8)
        refusal = (
            address_refusal(arg, smtputf8, "RCPT") if envelope and envelope.mail_from else None
        )
        if refusal is not None:
            await self.push(refusal)
            return
        await super().smtp_RCPT(arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parsing with a fast path for a plain <local@domain>: aiosmtpd
        builds a typing.Protocol class and runs the email package's parser on every MAIL and
        RCPT (~0.1 ms each, a tenth of a no-op server's CPU per mail). Anything else (quoted
        or commented parts, source routes, literals, a bare address) goes to aiosmtpd's own."""
        plain = _PLAIN_PATH.match(arg) if arg else None
        rest = arg[plain.end() :] if plain else ""
        if plain is None or rest.startswith("("):
            return super()._getaddr(arg)
        address = plain.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    def close_if_idle(self) -> None:
        """At shutdown: a session with no mail in flight is told so and closed at once."""
        envelope = self.envelope
        if self.transport is not None and (envelope is None or envelope.mail_from is None):
            count_reply(REPLY_SHUTTING_DOWN)
            self.transport.write(f"{REPLY_SHUTTING_DOWN}\r\n".encode())  # type: ignore[attr-defined]
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()


def count_reply(status: str) -> None:
    metrics.SMTP_REPLIES.labels(code=status[:3]).inc()


SMTP_COMMANDS = tuple(
    name.removeprefix("smtp_") for name in dir(EscalatorSMTP) if name.startswith("smtp_")
)


# -- wiring -------------------------------------------------------------------------------


@dataclass
class SMTPService:
    """The listening server, its gate and the spool's disk budget; `address` is where it
    actually listens."""

    server: asyncio.Server
    gate: SessionGate
    disk: DiskBudget

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self, deadline: float) -> int:
        """Stop listening, let sessions finish up to `deadline` s; return how many were cut."""
        self.server.close()
        return await self.gate.drain(deadline)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A server context when both certificate and key are set; a clear error if unusable."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        if settings.require_tls:
            raise ConfigError("ESCALATOR_REQUIRE_TLS needs ESCALATOR_TLS_CERT_FILE and _KEY_FILE")
        return None
    if cert is None or key is None:
        raise ConfigError("set both ESCALATOR_TLS_CERT_FILE and ESCALATOR_TLS_KEY_FILE, or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} / key {key}: {exc}") from None
    return context


def data_timeout(settings: Settings) -> float:
    return settings.smtp_command_timeout + settings.max_message_bytes / MIN_UPLOAD_RATE


async def start_smtp(
    settings: Settings,
    store: Accepting,
    on_accepted: Callable[[], None] = lambda: None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sock: socket.socket | None = None,
) -> SMTPService:
    """Listen on ESCALATOR_SMTP_LISTEN in the running loop, or accept on `sock` (a socket the
    supervisor bound and shares with its other workers). `clock` stamps received_at (the
    instant a mail is decided at); tests pin it to a cover window."""
    host, port = split_host_port(settings.smtp_listen, "ESCALATOR_SMTP_LISTEN")
    limits = RateLimits(settings.sender_rate_limit, settings.client_rate_limit, time.monotonic)
    handler = MailHandler(
        store, settings.addresses, settings.max_recipients, on_accepted, clock, limits
    )
    # Behind a PROXY-protocol load balancer every TCP peer is the balancer itself, so the
    # per-client cap would throttle everyone together: only the overall cap applies there.
    per_client = settings.max_connections if settings.proxy_protocol else None
    gate = SessionGate(settings.max_connections, per_client or settings.max_connections_per_client)
    context = tls_context(settings)
    loop = asyncio.get_running_loop()
    options: dict[str, Any] = {
        "data_size_limit": settings.max_message_bytes,
        "enable_SMTPUTF8": True,
        "hostname": settings.smtp_hostname,
        "ident": IDENT,
        "tls_context": context,
        "require_starttls": settings.require_tls,
        "timeout": settings.smtp_command_timeout,
        "proxy_protocol_timeout": PROXY_TIMEOUT if settings.proxy_protocol else None,
        "loop": loop,
    }
    timeout = data_timeout(settings)
    where: dict[str, Any] = {"sock": sock} if sock else {"host": host, "port": port}
    try:
        server = await loop.create_server(
            lambda: EscalatorSMTP(handler, gate, timeout, **options), **where
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.smtp_listen}: {exc}") from None
    return SMTPService(server, gate, handler.disk)
