"""An acceptor process (ESCALATOR_WORKERS > 1, escalator/supervisor.py): SMTP in, 250 out.

It accepts on the listening socket the supervisor bound and shares with the other acceptors,
and speaks SMTP exactly as a lone `escalator serve` does (the same ingress/smtp.py: caps, rate
limits, TLS, DATA rules). Each mail goes to the back office's store through escalator/handoff.py
and is answered 250 only once the back office committed it; the back office wakes its decide
worker itself. Nothing else runs here: no store of its own, no decisions, no outbox.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from escalator import memory
from escalator.handoff import OfficeLink
from escalator.ingress.smtp import SMTPService, start_smtp
from escalator.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE = 25.0  # as app.SHUTDOWN_DEADLINE: sessions in flight get this long


class Acceptor:
    """`start()` then `stop()`: the SMTP listener on `sock`, mails to the back office at `desk`."""

    def __init__(self, settings: Settings, sock: socket.socket, desk: str) -> None:
        self.settings = settings
        self.link = OfficeLink(desk)
        self.smtp: SMTPService | None = None
        self._sock = sock
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        memory.tune()  # message-sized buffers are unmapped when freed, as in the back office
        self.smtp = await start_smtp(self.settings, self.link, sock=self._sock)
        host, port = self.smtp.address
        log.info("acceptor listening for SMTP on %s:%d", host, port)

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self, deadline: float = SHUTDOWN_DEADLINE) -> None:
        """Stop accepting, let sessions finish up to `deadline`, then close the link."""
        if self.smtp is not None:
            cut = await self.smtp.stop(deadline)
            if cut:
                log.warning("shutdown deadline passed: %d SMTP sessions cut off", cut)
        await self.link.close()
        log.info("acceptor stopped")


async def serve(
    settings: Settings,
    sock: socket.socket,
    desk: str,
    on_started: Callable[[Acceptor], None] | None = None,
) -> None:
    """Accept until told to stop (`request_stop`, by the supervisor), then stop cleanly."""
    acceptor = Acceptor(settings, sock, desk)
    await acceptor.start()
    if on_started is not None:
        on_started(acceptor)
    try:
        await acceptor.wait()
    finally:
        await acceptor.stop()
