"""The review page and the health endpoints: one aiohttp app on settings.http_listen.

Pages (server-rendered, Jinja2 with autoescape, no JavaScript): /review lists held mails newest
first; /mails/ID shows one mail as text with its decision, actions and audit trail, and the
Release / Dismiss forms; /escalations shows recent escalations and what became of each action.
/healthz and /readyz are public; other modules add routes (e.g. /metrics) with `extra_routes`
and a readiness check with `readiness` (see `build_app`).

WHO MAY ACT: a person signed in through the login form (the shared review token, then an
HttpOnly SameSite=Strict session cookie signed with HMAC), an API client sending
`Authorization: Bearer <token>`, or, behind an OAuth2 proxy, the identity header, believed ONLY
when the TCP peer is one of settings.trusted_proxies. Anything else gets 401 (or, for a browser
asking for a page, a redirect to /login). Every POST from a browser identity (cookie or proxy)
must carry the CSRF token, an HMAC of that identity's session; a bearer token is not sent by
browsers on their own, so it needs none.

SAFETY OF MAIL TEXT: everything that came in a mail is shown as escaped text in <pre>; the
mail's HTML is never rendered, links are never made clickable, and the CSP forbids all script.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web, web_response

from escalator.core import render, words
from escalator.core.model import Page, Verdict
from escalator.core.notices import state_line
from escalator.core.policy import Policy, route
from escalator.errors import PermanentError
from escalator.policy import load_policy
from escalator.review import deeds
from escalator.review.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    THROTTLE_WINDOW,
    Guard,
    Identity,
    session_key,
)
from escalator.settings import Settings, split_host_port
from escalator.store import Store
from escalator.store.loop import loop_store

log = logging.getLogger(__name__)

# Called with traffic_only=True for ?scope=traffic: only what accepting mail needs (see app.py).
Readiness = Callable[[bool], Awaitable[tuple[bool, str]]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login", "/static/review.css"})
QUEUE_LIMIT = 100
ESCALATIONS_LIMIT = 100
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SERVER_NAME = "escalator"
# aiohttp answers requests it cannot parse (400) itself, before any app hook, with its default
# 'Server: Python/3.x aiohttp/3.y'; that module default is its only switch for those answers.
# tests/test_review_signin.py checks a malformed request, so a rename upstream is noticed.
web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]  # not re-exported; read at each response
_SAFE_NEXT = re.compile(r"^/[A-Za-z0-9/_\-]*$")
_DONE = {
    "released": "Released: the escalation is in the outbox.",
    "dismissed": "Dismissed.",
    "unchanged": "Nothing changed: the mail was no longer held (someone else reviewed it).",
}

GUARD: web.AppKey[Guard] = web.AppKey("guard")
STORE: web.AppKey[Store] = web.AppKey("store")
POLICY: web.AppKey[Policy] = web.AppKey("policy")
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates")
ON_RELEASED: web.AppKey[Callable[[], None]] = web.AppKey("on_released")
READINESS: web.AppKey[Readiness] = web.AppKey("readiness")
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
PUBLIC_EXTRA: web.AppKey[frozenset[str]] = web.AppKey("public_extra")


# -- middlewares ------------------------------------------------------------------------------


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path not in PUBLIC_PATHS or request.path == "/login":
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def require_identity(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or request.path in request.app[PUBLIC_EXTRA]:
        return await handler(request)
    guard = request.app[GUARD]
    identity = await _identity(request, guard)
    if identity is None:
        return _unauthenticated(request)
    if request.method != "GET" and request.method != "HEAD":
        form = await request.post()
        if not guard.csrf_ok(identity, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="Refused: the form's CSRF token is missing or wrong.")
    request[IDENTITY] = identity
    return await handler(request)


async def _identity(request: web.Request, guard: Guard) -> Identity | None:
    """Who is asking, with the issue-16 limits: a client over its Bearer budget gets 429 before
    its guess is compared; a wrong Bearer token is counted and logged; a session that signed
    out is no session, on any replica."""
    offered = guard.bearer_offered(request)
    client = guard.client(request)
    if offered is not None and not guard.bearer_allowed(client, time.monotonic()):
        raise web.HTTPTooManyRequests(
            text="429: too many wrong tokens from this address; wait a minute.",
            headers={"Retry-After": str(int(THROTTLE_WINDOW))},
        )
    identity = guard.identify(request)
    if identity is None and offered is not None:
        guard.bearer_failed(client, time.monotonic())
    session = identity.session if identity is not None else None
    if session is not None and await request.app[STORE].session_revoked(session_key(session)):
        return None
    return identity


def _unauthenticated(request: web.Request) -> web.StreamResponse:
    """A browser asking for a page goes to the login form; anything else gets 401."""
    wants_page = request.method == "GET" and "text/html" in request.headers.get("Accept", "")
    if wants_page:
        raise web.HTTPSeeOther(f"/login?next={_safe_next(request.path)}")
    raise web.HTTPUnauthorized(
        text="401: sign in (Authorization: Bearer <token>, or the login form at /login)",
        headers={"WWW-Authenticate": 'Bearer realm="escalator review"'},
    )


def _safe_next(path: str) -> str:
    """Only a local path of plain characters: never another site (open redirect)."""
    return path if _SAFE_NEXT.match(path) and not path.startswith("//") else "/review"


# -- pages ----------------------------------------------------------------------------------


def _page(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    identity = request.get(IDENTITY)
    guard = request.app[GUARD]
    context.setdefault("who", identity.who if identity else None)
    context.setdefault("csrf", guard.csrf_token(identity) if identity else "")
    text = request.app[TEMPLATES].get_template(name).render(**context)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    traffic_only = request.query.get("scope") == "traffic"
    ready, detail = await request.app[READINESS](traffic_only)
    return web.Response(
        text=f"{'ready' if ready else 'not ready'}: {detail}\n", status=200 if ready else 503
    )


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/review")


async def queue_page(request: web.Request) -> web.Response:
    mails = await request.app[STORE].mails_in_review("held", QUEUE_LIMIT)
    views = await asyncio.to_thread(lambda: [deeds.mail_view(mail) for mail in mails])
    return _page(request, "queue.html", views=views, limit=QUEUE_LIMIT)


async def escalations_page(request: web.Request) -> web.Response:
    listed = await request.app[STORE].recent_escalations(ESCALATIONS_LIMIT)
    return _page(request, "escalations.html", listed=listed, limit=ESCALATIONS_LIMIT)


async def mail_page(request: web.Request) -> web.Response:
    view = await _view(request)
    done = _DONE.get(request.query.get("done", ""))
    incident = await _incident_line(request, view.mail.id)
    seen = bool(await loop_store(request.app[STORE]).seen([view.mail.id]))
    preview = _release_preview(request)
    return _page(
        request, "mail.html", view=view, done=done, incident=incident, seen=seen, **preview
    )


async def _incident_line(request: web.Request, mail_id: int) -> str | None:
    """What PagerDuty said of the incident this mail's page opened (issue 11), or None."""
    states = await loop_store(request.app[STORE]).incident_states([mail_id])
    state = states.get(mail_id)
    return None if state is None else state_line(state, ZoneInfo(request.app[SETTINGS].timezone))


async def _view(request: web.Request) -> deeds.MailView:
    try:
        return await deeds.load_view(request.app[STORE], _mail_id(request))
    except deeds.MailNotFound:
        raise web.HTTPNotFound(
            text="No such mail (never stored, or removed by retention)."
        ) from None


def _mail_id(request: web.Request) -> int:
    text = request.match_info["mail_id"]
    if not text.isdigit() or len(text) > 18:
        raise web.HTTPNotFound(text="No such mail.")
    return int(text)


def _release_preview(request: web.Request) -> dict[str, Any]:
    """What Release would do if clicked now, said on the button's page."""
    routing = route(Verdict.ESCALATE, request.app[POLICY].calendar, request.app[CLOCK]())
    zone = ZoneInfo(request.app[SETTINGS].timezone)
    if routing.page is Page.NOW:
        page = "page on-call now"
    elif routing.page is Page.DEFERRED and routing.page_at is not None:
        page = f"page on-call at {words.when(routing.page_at, zone)}"
    else:
        page = "not page on-call (support hours)"
    alarm = (
        f", alarm support in #{request.app[SETTINGS].slack_alarm_channel}" if routing.alarm else ""
    )
    window_now = words.window(routing.window.value)
    return {"preview": f"{page}{alarm}, and tell the sender", "window_now": window_now}


async def release_action(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    mail_id = _mail_id(request)
    try:
        outcome = await deeds.release(
            request.app[STORE],
            request.app[POLICY],
            mail_id,
            request[IDENTITY].who,
            _note(form),
            now=request.app[CLOCK](),
        )
    except deeds.MailNotFound:
        raise web.HTTPNotFound(text="No such mail.") from None
    if outcome.changed:
        request.app[ON_RELEASED]()  # the page goes out now, not at the dispatcher's next poll
    raise web.HTTPSeeOther(
        f"/mails/{mail_id}?done={'released' if outcome.changed else 'unchanged'}"
    )


async def dismiss_action(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    mail_id = _mail_id(request)
    try:
        outcome = await deeds.dismiss(
            request.app[STORE], mail_id, request[IDENTITY].who, _note(form)
        )
    except deeds.MailNotFound:
        raise web.HTTPNotFound(text="No such mail.") from None
    except deeds.NoteRequired:
        view = await _view(request)
        error = "Write a note saying why this mail is dismissed."
        preview = _release_preview(request)
        return _page(
            request,
            "mail.html",
            400,
            view=view,
            error=error,
            done=None,
            incident=None,
            seen=False,
            **preview,
        )
    raise web.HTTPSeeOther(
        f"/mails/{mail_id}?done={'dismissed' if outcome.changed else 'unchanged'}"
    )


def _note(form: Any) -> str:
    return str(form.get("note", ""))


async def login_form(request: web.Request) -> web.Response:
    return _page(request, "login.html", next=_safe_next(request.query.get("next", "/review")))


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    guard = request.app[GUARD]
    target = _safe_next(str(form.get("next", "/review")))
    name = re.sub(r"[^\w.@ -]", "", str(form.get("name", "")))[:60].strip()
    client = guard.client(request)
    if not guard.login_allowed(client, name, time.monotonic()):
        error = "Too many wrong tokens were tried: wait a minute, then sign in again."
        return _page(request, "login.html", 429, next=target, error=error)
    if not guard.token_matches(str(form.get("token", "")).strip()):
        guard.login_failed(client, name, time.monotonic())
        error = "That token is not right."
        return _page(request, "login.html", 401, next=target, error=error)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        SESSION_COOKIE,
        guard.session_cookie(f"token:{name}" if name else "token"),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=guard.secure_cookie,
        path="/",
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out: the session is revoked in the store (so a copied cookie dies with it, on
    every replica), then the cookie is deleted."""
    identity = request[IDENTITY]
    if identity.session is not None:
        guard = request.app[GUARD]
        expires = datetime.fromtimestamp(guard.session_expiry(identity.session), UTC)
        now = datetime.now(UTC)
        await request.app[STORE].revoke_session(session_key(identity.session), expires, now)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def stylesheet(request: web.Request) -> web.Response:
    text = resources.files("escalator").joinpath("templates/review/review.css").read_text("utf-8")
    return web.Response(
        text=text, content_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


# -- the app ----------------------------------------------------------------------------------


def templates(settings: Settings) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("escalator", "templates/review"),
        autoescape=True,  # every page is HTML and most of what it shows came in a mail
        undefined=jinja2.StrictUndefined,
    )
    zone = ZoneInfo(settings.timezone)
    env.filters["when"] = lambda moment: (
        "" if moment is None else words.when(moment, zone, year=True)
    )
    env.filters["when_iso"] = lambda text: _when_iso(str(text or ""), zone)
    env.filters["when_short"] = lambda moment: "" if moment is None else words.when(moment, zone)
    env.filters["action_label"] = deeds.action_label
    env.filters["short_reason"] = words.short_reason
    env.filters["reason"] = words.reason
    env.filters["window"] = words.window
    env.filters["uncoded"] = words.uncoded
    env.filters["payload"] = lambda action: render.payload_text(
        render.sent_payload(action.kind, action.state, action.result)
    )
    env.globals["raw_days"] = settings.raw_retention_days
    return env


def _when_iso(text: str, zone: ZoneInfo) -> str:
    """A stored ISO-8601 instant in the one convention (shown as stored if it is not one)."""
    try:
        return words.when(datetime.fromisoformat(text), zone, year=True)
    except ValueError:
        return text


def store_readiness(store: Store) -> Readiness:
    """Ready when the store answers a read (the writer thread is alive and the file opens)."""

    async def check(traffic_only: bool = False) -> tuple[bool, str]:
        try:
            await store.get_mail(0)
        except PermanentError as exc:
            return False, f"store: {exc}"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said plainly
            return False, f"store: {exc.__class__.__name__}"
        return True, "store ok"

    return check


def build_app(
    settings: Settings,
    store: Store,
    *,
    policy: Policy | None = None,
    guard: Guard | None = None,
    readiness: Readiness | None = None,
    extra_routes: Sequence[web.RouteDef] = (),
    public_paths: frozenset[str] = frozenset({"/metrics"}),
    clock: Callable[[], datetime] | None = None,
    on_released: Callable[[], None] = lambda: None,
) -> web.Application:
    """The whole web app. `extra_routes` (e.g. /metrics) are served without sign-in when their
    path is in `public_paths`; `readiness` replaces the default store check behind /readyz;
    `on_released` is called after a release planned actions (the service wakes its dispatcher)."""
    app = web.Application(
        middlewares=[security_headers, require_identity], client_max_size=64 * 1024
    )
    app[SETTINGS] = settings
    app[STORE] = store
    app[POLICY] = policy or load_policy(settings)
    app[GUARD] = guard or Guard(settings)
    app[TEMPLATES] = templates(settings)
    app[READINESS] = readiness or store_readiness(store)
    app[PUBLIC_EXTRA] = public_paths
    app[CLOCK] = clock or (lambda: datetime.now(UTC))  # tests pin the cover window
    app[ON_RELEASED] = on_released
    app.on_response_prepare.append(_server_header)
    app.add_routes(_ROUTES)
    app.add_routes(extra_routes)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Name no software version (aiohttp would send 'Python/3.x aiohttp/3.y')."""
    response.headers["Server"] = SERVER_NAME


_ROUTES = [
    web.get("/healthz", healthz),
    web.get("/readyz", readyz),
    web.get("/static/review.css", stylesheet),
    web.get("/login", login_form),
    web.post("/login", login),
    web.post("/logout", logout),
    web.get("/", home),
    web.get("/review", queue_page),
    web.get("/escalations", escalations_page),
    web.get(r"/mails/{mail_id}", mail_page),
    web.post(r"/mails/{mail_id}/release", release_action),
    web.post(r"/mails/{mail_id}/dismiss", dismiss_action),
]


@dataclass(frozen=True)
class RunningWeb:
    """A started web server: its runner (to clean up), bound address and guard."""

    runner: web.AppRunner
    host: str
    port: int
    guard: Guard

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(settings: Settings, store: Store, **options: Any) -> RunningWeb:
    """Bind settings.http_listen and serve `build_app(settings, store, **options)`."""
    app = build_app(settings, store, **options)
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=2.0
    )  # paths carry mail ids only, but keep logs lean
    await runner.setup()
    host, port = split_host_port(settings.http_listen, "ESCALATOR_HTTP_LISTEN")
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningWeb(runner, str(bound_host), int(bound_port), app[GUARD])


async def serve(settings: Settings, store: Store, **options: Any) -> None:
    """Run the web server until cancelled; app.py starts this (and the retention pass)."""
    running = await start(settings, store, **options)
    page = settings.public_url.rstrip("/") + "/review"
    if running.guard.generated:
        # Said once, here, by design (shared/spec/settings.md): the operator needs it to sign in.
        log.warning(
            "review page at %s (listening on %s); no ESCALATOR_REVIEW_TOKEN set, "
            "this run's token is: %s",
            page,
            running.url,
            running.guard.token,
        )
    else:
        log.info("review page at %s (listening on %s)", page, running.url)
    try:
        await asyncio.Event().wait()
    finally:
        await running.stop()
