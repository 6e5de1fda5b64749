"""Review sign-in under attack (issue 16), over real HTTP from two loopback addresses.

127.0.0.1 plays the attacker and 127.0.0.2 the support engineer (Linux routes all of 127/8 to
loopback, so a client can bind either): the throttle is per address and per identity, and never
locks the right token out from another address; Bearer guesses are throttled and logged without
the secret; signing out revokes the session in the store; no software version is announced.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from test_web import HTML, TOKEN, Site, csrf_of, sign_in, site, start_site

from escalator.review import auth

__all__ = ["site", "start_site"]  # fixtures, used by name

ATTACKER, ENGINEER = "127.0.0.1", "127.0.0.2"


def client_from(site: Site, address: str) -> aiohttp.ClientSession:
    """A browser-like client whose connections come from `address`."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    jar = aiohttp.CookieJar(unsafe=True)
    return aiohttp.ClientSession(site.url, connector=connector, cookie_jar=jar)


async def login(client: aiohttp.ClientSession, token: str, name: str = "amy") -> int:
    form = {"token": token, "name": name, "next": "/review"}
    async with client.post("/login", data=form, allow_redirects=False) as response:
        return response.status


async def test_a_login_brute_force_from_one_address_does_not_stop_the_right_token_from_another(
    site: Site,
) -> None:
    async with client_from(site, ATTACKER) as attacker, client_from(site, ENGINEER) as engineer:
        tries = [await login(attacker, f"guess-{n}") for n in range(30)]
        assert tries[: auth.LOGIN_FAILURES_PER_MINUTE] == [401] * auth.LOGIN_FAILURES_PER_MINUTE
        assert set(tries[auth.LOGIN_FAILURES_PER_MINUTE :]) == {429}
        assert await login(attacker, TOKEN) == 429  # the throttle holds even for the right token
        assert await login(engineer, TOKEN) == 303  # same name, another address: signed in
        async with engineer.get("/review", headers=HTML) as response:
            assert response.status == 200 and "Signed in as" in await response.text()


async def test_an_identity_under_attack_slows_only_addresses_that_failed(site: Site) -> None:
    """Guesses spread over addresses for one name: an address that failed once is throttled by
    the name's count; a clean address with the right token still signs in."""
    guard = site.running.guard
    for n in range(auth.IDENTITY_FAILURES_PER_MINUTE):
        guard.login_failed(f"198.51.100.{n}", "amy", 0.0)
    assert not guard.login_allowed("198.51.100.1", "AMY", 1.0)
    assert guard.login_allowed("203.0.113.9", "amy", 1.0)
    assert guard.login_allowed("198.51.100.1", "bob", 1.0)
    assert guard.login_allowed("198.51.100.1", "amy", 61.0)  # a minute later


async def test_bearer_guessing_is_throttled_and_logged_without_the_secret(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="escalator.review.auth")
    async with client_from(site, ATTACKER) as attacker, client_from(site, ENGINEER) as engineer:
        statuses = []
        for n in range(auth.BEARER_FAILURES_PER_MINUTE + 5):
            headers = {"Authorization": f"Bearer secret-guess-{n}"}
            async with attacker.get("/review", headers=headers) as response:
                statuses.append(response.status)
        limit = auth.BEARER_FAILURES_PER_MINUTE
        assert statuses == [401] * limit + [429] * 5
        right = {"Authorization": f"Bearer {TOKEN}"}
        async with attacker.get("/review", headers=right) as response:
            assert response.status == 429 and response.headers["Retry-After"] == "60"
        async with engineer.get("/review", headers=right) as response:
            assert response.status == 200
    lines = [record.getMessage() for record in caplog.records]
    assert f"review sign-in: wrong Bearer token from {ATTACKER} (1 in a minute)" in lines
    assert any("throttled" in line for line in lines)
    assert len(lines) == limit  # one per failure until throttled, then one saying so
    assert not any("secret-guess" in line or TOKEN in line for line in lines)


async def test_sign_out_revokes_the_session_server_side(site: Site) -> None:
    """A cookie copied before sign-out no longer works afterwards; another session still does."""
    async with site.client() as browser, site.client() as other:
        await sign_in(browser)
        await sign_in(other, name="ben")
        (cookie,) = [c.value for c in browser.cookie_jar if c.key == auth.SESSION_COOKIE]
        csrf = await csrf_of(browser, "/review")
        async with browser.post("/logout", data={"csrf": csrf}, allow_redirects=False) as done:
            assert done.status == 303
        async with site.client() as thief:
            thief.cookie_jar.update_cookies({auth.SESSION_COOKIE: cookie})
            async with thief.get("/review") as response:
                assert response.status == 401
        async with other.get("/review") as response:
            assert response.status == 200


async def raw_request(site: Site, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(site.running.host, site.running.port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read(65536)
    writer.close()
    return answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /no-such-page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /review HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",  # answered 400 by aiohttp's parser itself
    ],
)
async def test_no_software_version_in_the_server_header(site: Site, request_bytes: bytes) -> None:
    head = (await raw_request(site, request_bytes)).split(b"\r\n\r\n")[0].decode()
    servers = [line for line in head.split("\r\n") if line.lower().startswith("server:")]
    assert servers == ["Server: escalator"]


def test_throttle_forgets_old_failures_and_bounds_its_memory() -> None:
    throttle = auth.Throttle(limit=2, window=60.0, keys=3)
    assert throttle.fail("a", 0.0) == 1 and throttle.fail("a", 1.0) == 2
    assert throttle.over("a", 30.0) and not throttle.over("a", 61.0)
    for key in ("b", "c", "d"):
        throttle.fail(key, 100.0)
    assert throttle.count("a", 100.0) == 0 and throttle.count("d", 100.0) == 1


def test_ipv6_clients_are_counted_by_their_64(monkeypatch: Any) -> None:
    class Transport:
        def __init__(self, peer: str) -> None:
            self.peer = peer

        def get_extra_info(self, name: str) -> Any:
            return (self.peer, 1) if name == "peername" else None

    class Request:
        def __init__(self, peer: str, forwarded: str = "") -> None:
            self.transport = Transport(peer)
            self.headers = {"X-Forwarded-For": forwarded} if forwarded else {}

    one = auth.client_key(Request("2001:db8:1:2::1"))  # type: ignore[arg-type]
    two = auth.client_key(Request("2001:db8:1:2:ffff::9"))  # type: ignore[arg-type]
    assert one == two == "2001:db8:1:2::/64"
    spoofed = Request("192.0.2.7", forwarded="10.9.9.9")
    assert auth.client_key(spoofed) == "192.0.2.7"  # type: ignore[arg-type]
    proxies = (auth.ipaddress.ip_network("192.0.2.0/24"),)
    assert auth.client_key(spoofed, proxies) == "10.9.9.9"  # type: ignore[arg-type]
