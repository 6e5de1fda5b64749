"""An aiohttp app served over HTTPS on a free loopback port, its certificate from a test CA
(trustme): what the PagerDuty stand-ins run on (escalator talks to PagerDuty over https only)."""

from __future__ import annotations

import ssl

import trustme
from aiohttp import web


async def serve_https(app: web.Application, ca: trustme.CA) -> tuple[web.AppRunner, str]:
    """Start `app`; its runner (to clean up) and base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"https://127.0.0.1:{port}"
