"""The review web app over real HTTP: sign-in, proxy trust, CSRF, headers, escaping, concurrency."""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import aiohttp
import pytest
from reviewkit import ON_CALL, mail_bytes, seed

from escalator.policy import load_policy
from escalator.review import auth, web
from escalator.settings import Settings
from escalator.store import Store, retention

TOKEN = "correct-horse-battery-staple"
HTML = {"Accept": "text/html,application/xhtml+xml"}
HOSTILE = '<script>window.pwned=1</script>"><img src=x onerror="window.pwned=2">'


def hostile_mail() -> bytes:
    """Markup in the sender's name (RFC 5322 quoted, escapes and all), subject, text and HTML."""
    name = HOSTILE.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'From: "{name}" <evil@example.com>\r\n'
        "To: escalations@localhost\r\n"
        f"Subject: Help {HOSTILE}\r\n"
        "Message-ID: <evil@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\n"
        f'Body {HOSTILE} see <a href="javascript:alert(1)">here</a> or javascript:alert(1)\r\n'
        "--b\r\nContent-Type: text/html\r\n\r\n"
        '<p>HTML PART <a href="javascript:alert(1)">x</a><script>alert(1)</script></p>\r\n'
        "--b--\r\n"
    ).encode()


@dataclass
class Site:
    running: web.RunningWeb
    store: Store
    settings: Settings

    @property
    def url(self) -> str:
        return self.running.url

    def client(self) -> aiohttp.ClientSession:
        # unsafe=True: keep cookies for a bare IP address (127.0.0.1), as browsers do
        jar = aiohttp.CookieJar(unsafe=True)
        return aiohttp.ClientSession(self.url, cookie_jar=jar)

    async def held(self, raw: bytes | None = None, **kwargs: Any) -> int:
        return await seed(self.store, load_policy(self.settings), raw or mail_bytes(), **kwargs)


@pytest.fixture
async def start_site(
    make_settings: Callable[..., Settings], store: Store
) -> AsyncIterator[Callable[..., Any]]:
    started: list[web.RunningWeb] = []

    async def start(on_released: Callable[[], None] = lambda: None, **overrides: Any) -> Site:
        values = {"review_token": TOKEN, "http_listen": "127.0.0.1:0", **overrides}
        settings = make_settings(**values)
        running = await web.start(settings, store, clock=lambda: ON_CALL, on_released=on_released)
        started.append(running)
        return Site(running, store, settings)

    yield start
    for running in started:
        await running.stop()


@pytest.fixture
async def site(start_site: Callable[..., Any]) -> Site:
    started: Site = await start_site()
    return started


async def sign_in(client: aiohttp.ClientSession, name: str = "amy") -> None:
    form = {"token": TOKEN, "name": name, "next": "/review"}
    async with client.post("/login", data=form, allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/review"


async def csrf_of(client: aiohttp.ClientSession, path: str) -> str:
    async with client.get(path, headers=HTML) as response:
        found = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert found is not None
    return found.group(1)


async def test_health_endpoints_are_public_and_every_response_is_hardened(site: Site) -> None:
    """/healthz and /readyz need no sign-in; every answer, a 401 included, carries the headers."""
    async with site.client() as client:
        for path, status in (("/healthz", 200), ("/readyz", 200), ("/review", 401)):
            async with client.get(path) as response:
                assert response.status == status
                headers = response.headers
                assert "default-src 'self'" in headers["Content-Security-Policy"]
                assert "script-src 'none'" in headers["Content-Security-Policy"]
                assert headers["X-Frame-Options"] == "DENY"
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert headers["Referrer-Policy"] == "no-referrer"


async def test_unauthenticated_requests_get_401_or_the_login_page(site: Site) -> None:
    """No page or action without sign-in: browsers are sent to /login, other clients get 401."""
    mail_id = await site.held()
    async with site.client() as client:
        async with client.get("/review", headers=HTML, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/login?next=/review"
        for path in ("/review", f"/mails/{mail_id}", "/escalations"):
            async with client.get(path) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        async with client.post(f"/mails/{mail_id}/release", data={"csrf": "x"}) as response:
            assert response.status == 401
        bad = {"Authorization": "Bearer wrong"}
        async with client.get("/review", headers=bad) as response:
            assert response.status == 401
    mail = await site.store.get_mail(mail_id)
    assert mail is not None and mail.review == "held"


async def test_bearer_token_reads_and_acts_without_csrf(site: Site) -> None:
    """An API client with the token may act: a bearer header is never sent by a browser alone."""
    mail_id = await site.held()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with site.client() as client:
        async with client.get("/review", headers=auth) as response:
            assert response.status == 200 and "any update on my PR?" in await response.text()
        form = {"note": "api"}
        path = f"/mails/{mail_id}/dismiss"
        async with client.post(path, data=form, headers=auth, allow_redirects=False) as response:
            assert response.status == 303
    assert [(a.who, a.what) for a in await site.store.audit_log(mail_id)] == [
        ("token:bearer", "dismissed")
    ]


async def test_login_sets_a_strict_httponly_cookie_and_refuses_a_wrong_token(site: Site) -> None:
    """The form signs in once; the session cookie is HttpOnly and SameSite=Strict."""
    async with site.client() as client:
        form = {"token": "nope", "next": "/review"}
        async with client.post("/login", data=form, allow_redirects=False) as response:
            assert response.status == 401 and "not right" in await response.text()
        form = {"token": TOKEN, "name": "amy", "next": "/review"}
        async with client.post("/login", data=form, allow_redirects=False) as response:
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with client.get("/review", headers=HTML) as response:
            assert response.status == 200 and "Signed in as" in await response.text()


async def test_guessing_the_token_is_slowed(site: Site) -> None:
    """After many wrong tokens in a minute the form answers 429, even to the right token."""
    async with site.client() as client:
        for _ in range(auth.LOGIN_FAILURES_PER_MINUTE):
            async with client.post("/login", data={"token": "guess"}) as response:
                assert response.status == 401
        async with client.post("/login", data={"token": TOKEN}) as response:
            assert response.status == 429 and "wait a minute" in await response.text()
        async with client.get("/review", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200  # API clients and proxies are not locked out


async def test_login_never_redirects_off_site(site: Site) -> None:
    """A crafted `next` pointing elsewhere lands on the review page instead (no open redirect)."""
    async with site.client() as client:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            form = {"token": TOKEN, "next": target}
            async with client.post("/login", data=form, allow_redirects=False) as response:
                assert response.headers["Location"] == "/review"


async def test_forged_cookie_is_ignored(site: Site) -> None:
    """A session cookie not signed with the server's key is no session."""
    async with site.client() as client:
        client.cookie_jar.update_cookies(
            {auth.SESSION_COOKIE: "eyJ3aG8iOiJ4IiwiZXhwIjo5OTk5OTk5OTk5fQ.AAAA"}
        )
        async with client.get("/review") as response:
            assert response.status == 401


async def test_action_without_csrf_token_is_refused(site: Site) -> None:
    """A signed-in browser's POST without (or with a wrong) CSRF token changes nothing: 403."""
    mail_id = await site.held()
    async with site.client() as client:
        await sign_in(client)
        token = await csrf_of(client, f"/mails/{mail_id}")
        path = f"/mails/{mail_id}/release"
        for form in ({"note": "x"}, {"note": "x", "csrf": token[:-2] + "xx"}):
            async with client.post(path, data=form, allow_redirects=False) as response:
                assert response.status == 403
        mail = await site.store.get_mail(mail_id)
        assert mail is not None and mail.review == "held"
        form = {"note": "real", "csrf": token}
        async with client.post(path, data=form, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == f"/mails/{mail_id}?done=released"
    audit = await site.store.audit_log(mail_id)
    assert [(a.who, a.what, a.note) for a in audit] == [("token:amy", "released", "real")]


async def test_csrf_token_of_another_session_is_refused(site: Site) -> None:
    """The CSRF token is bound to the session: one person's token does not work for another."""
    mail_id = await site.held()
    async with site.client() as amy, site.client() as bob:
        await sign_in(amy, "amy")
        await sign_in(bob, "bob")
        amys = await csrf_of(amy, f"/mails/{mail_id}")
        form = {"note": "x", "csrf": amys}
        async with bob.post(f"/mails/{mail_id}/dismiss", data=form) as response:
            assert response.status == 403


async def test_identity_header_from_untrusted_peer_is_ignored(
    start_site: Callable[..., Any],
) -> None:
    """X-Forwarded-Email is believed only from a configured proxy address; others get 401."""
    site: Site = await start_site(trusted_proxies="10.0.0.0/8")
    forged = {"X-Forwarded-Email": "ceo@justice.gov.uk", "X-Forwarded-For": "10.0.0.1"}
    async with site.client() as client, client.get("/review", headers=forged) as response:
        assert response.status == 401


async def test_identity_header_from_trusted_proxy_names_the_person(
    start_site: Callable[..., Any],
) -> None:
    """From a trusted proxy (here the loopback peer), the header's person acts and is audited."""
    site: Site = await start_site(trusted_proxies="127.0.0.1/32, ::1")
    mail_id = await site.held()
    person = {"X-Forwarded-Email": "amy@justice.gov.uk"}
    async with site.client() as client:
        async with client.get(f"/mails/{mail_id}", headers={**person, **HTML}) as response:
            page = await response.text()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None and "proxy:amy@justice.gov.uk" in page
        path = f"/mails/{mail_id}/dismiss"
        async with client.post(path, data={"note": "x"}, headers=person) as response:
            assert response.status == 403  # a proxy's person is a browser: CSRF applies
        form = {"note": "chaser", "csrf": token.group(1)}
        async with client.post(path, data=form, headers=person) as response:
            assert response.status == 200
    audit = await site.store.audit_log(mail_id)
    assert [(a.who, a.note) for a in audit] == [("proxy:amy@justice.gov.uk", "chaser")]


async def test_dismiss_without_a_note_is_explained(site: Site) -> None:
    """An empty note re-renders the page with a clear error (400); the mail stays held."""
    mail_id = await site.held()
    async with site.client() as client:
        await sign_in(client)
        token = await csrf_of(client, f"/mails/{mail_id}")
        form = {"note": " ", "csrf": token}
        async with client.post(f"/mails/{mail_id}/dismiss", data=form) as response:
            assert response.status == 400 and "Write a note" in await response.text()


async def test_two_concurrent_http_releases_make_one_page(
    start_site: Callable[..., Any],
) -> None:
    """Two people press Release at the same moment: one release, one page, one audit row, and
    the dispatcher is woken once (the page leaves at once, not at its next poll)."""
    wakes: list[int] = []
    site: Site = await start_site(on_released=lambda: wakes.append(1))
    mail_id = await site.held()
    async with site.client() as amy, site.client() as bob:
        await sign_in(amy, "amy")
        await sign_in(bob, "bob")
        tokens = [await csrf_of(c, f"/mails/{mail_id}") for c in (amy, bob)]

        async def press(client: aiohttp.ClientSession, token: str) -> str:
            form = {"csrf": token}
            path = f"/mails/{mail_id}/release"
            async with client.post(path, data=form, allow_redirects=False) as response:
                return response.headers["Location"]

        places = await asyncio.gather(press(amy, tokens[0]), press(bob, tokens[1]))
    assert sorted(p.rsplit("=", 1)[1] for p in places) == ["released", "unchanged"]
    kinds = [a.kind for a in await site.store.mail_actions(mail_id)]
    assert kinds.count("page") == 1
    assert len(await site.store.audit_log(mail_id)) == 1
    assert wakes == [1]


async def test_hostile_mail_is_rendered_as_inert_text(site: Site) -> None:
    """Subject, sender name and body with markup come back escaped; the mail's HTML is not shown."""
    raw = hostile_mail()
    mail_id = await site.held(raw)
    async with site.client() as client:
        await sign_in(client)
        for path in ("/review", f"/mails/{mail_id}"):
            async with client.get(path) as response:
                page = await response.text()
            assert "<script" not in page and "<img" not in page and "HTML PART" not in page
            assert 'href="javascript' not in page
            assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page


async def test_purged_mail_page_says_when(site: Site) -> None:
    """After retention purged the body, the page says so and when, and still shows the rest."""
    mail_id = await site.held()
    now = ON_CALL + timedelta(days=31)
    await retention.purge_once(site.store, site.settings, now)
    async with site.client() as client:
        await sign_in(client)
        async with client.get(f"/mails/{mail_id}") as response:
            page = await response.text()
    assert 'id="purged"' in page and "Tue 22 Dec 2026" in page and "pr_chaser" in page


async def test_escalations_view_shows_action_states(site: Site) -> None:
    """The second view lists escalations with what became of each action."""
    mail_id = await site.held()
    async with site.client() as client:
        await sign_in(client)
        token = await csrf_of(client, f"/mails/{mail_id}")
        await client.post(f"/mails/{mail_id}/release", data={"csrf": token})
        page_action = next(a for a in await site.store.mail_actions(mail_id) if a.kind == "page")
        await site.store.finish_action(page_action.id, "dry_run")
        async with client.get("/escalations") as response:
            page = await response.text()
    assert f'id="escalation-{mail_id}"' in page and "released" in page
    assert "page: dry run" in page and "reply: pending" in page


async def test_serve_logs_a_generated_token_once(
    make_settings: Callable[..., Settings], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Without ESCALATOR_REVIEW_TOKEN, serve() makes one and logs it once beside the address."""
    settings = make_settings()
    caplog.set_level(logging.INFO, logger="escalator.review.web")
    task = asyncio.ensure_future(web.serve(settings, store))
    try:
        host, port = settings.http_listen.rsplit(":", 1)
        for _ in range(200):
            if any("token is" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        said = [r.getMessage() for r in caplog.records if "token is" in r.getMessage()]
        assert len(said) == 1 and "/review" in said[0]
        token = said[0].rsplit(" ", 1)[1]
        request = urllib.request.Request(
            f"http://{host}:{port}/review", headers={"Authorization": f"Bearer {token}"}
        )
        status = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=5).status)
        assert status == 200
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len([r for r in caplog.records if "token is" in r.getMessage()]) == 1


def test_service_serves_the_web_app(start_server: Callable[..., Any]) -> None:
    """The composition root (app.py) starts the web app on ESCALATOR_HTTP_LISTEN with the rest."""
    server = start_server(review_token=TOKEN)
    url = f"http://{server.settings.http_listen}/healthz"
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.read() == b"ok\n"
                return
        except OSError:
            server.call(asyncio.sleep(0.02))
    raise AssertionError("the web app never answered")


async def test_attachments_are_listed_by_name_never_shown(site: Site) -> None:
    """The page names each attachment; its content (here HTML with a script) is not rendered."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "dev@x.gov.uk", "escalations@localhost", "see log"
    msg["Message-ID"] = "<att@x>"
    msg.set_content("any update on my PR? log attached")
    msg.add_attachment(b"<script>SECRET-CONTENT</script>", "text", "html", filename="trace.html")
    msg.add_attachment(b"\x89PNG....", "image", "png", filename="screen.png")
    mail_id = await site.held(msg.as_bytes(policy=SMTP))
    async with site.client() as client:
        await sign_in(client)
        async with client.get(f"/mails/{mail_id}") as response:
            page = await response.text()
    assert "trace.html, screen.png" in page and "SECRET-CONTENT" not in page
