"""An acceptor process (ESCALATOR_WORKERS > 1, escalator/supervisor.py): SMTP in, 250 out.

It accepts on the listening socket the supervisor bound and shares with the other acceptors,
and speaks SMTP exactly as a lone `escalator serve` does (the same ingress/smtp.py: caps, rate
limits, TLS, DATA rules). It commits each mail to the store itself (its own connection and group
commit; on SQLite under the write lock every process takes, store/sqlite.py) and answers 250
once that committed, then rings the back office (escalator/handoff.py), which decides it.
Nothing else runs here: no decisions, no outbox, no review page.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from escalator import memory
from escalator.handoff import OfficeBell
from escalator.ingress.smtp import SMTPService, start_smtp
from escalator.settings import Settings
from escalator.store import open_store

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE = 25.0  # as app.SHUTDOWN_DEADLINE: sessions in flight get this long


class Acceptor:
    """`start()` then `stop()`: the SMTP listener on `sock`, mails into the store, the back
    office at `desk` rung for each new one."""

    def __init__(self, settings: Settings, sock: socket.socket, desk: str) -> None:
        self.settings = settings
        self.store = open_store(settings)
        self.bell = OfficeBell(desk)
        self.smtp: SMTPService | None = None
        self._sock = sock
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        memory.tune()  # message-sized buffers are unmapped when freed, as in the back office
        await self.store.open()
        try:
            self.smtp = await start_smtp(self.settings, self.store, self.bell.ring, sock=self._sock)
        except BaseException:
            await self.store.close()
            raise
        host, port = self.smtp.address
        log.info("acceptor listening for SMTP on %s:%d", host, port)

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self, deadline: float = SHUTDOWN_DEADLINE) -> None:
        """Stop accepting, let sessions finish up to `deadline`, then close the store."""
        if self.smtp is not None:
            cut = await self.smtp.stop(deadline)
            if cut:
                log.warning("shutdown deadline passed: %d SMTP sessions cut off", cut)
        await self.bell.close()
        await self.store.close()
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
