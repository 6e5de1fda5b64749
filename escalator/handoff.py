"""Acceptor processes tell the back office "a new mail is stored" (ESCALATOR_WORKERS > 1).

Acceptors (escalator/acceptor.py) commit each mail to the store themselves before its 250 (on
SQLite under the store's write lock shared by every process, store/sqlite.py), so no mail waits
on the back office's loop, which decides and dispatches beside them. After each new mail an
acceptor rings the back office's bell: one byte on a UNIX stream socket in the supervisor's
private (0700) folder, on which the back office wakes its decide worker at once. The bell is
best effort: a mail is already durable when it rings, and a back office that was away
(restarting) decides at start whatever is undecided, and its decide worker polls slowly anyway.
Nothing but that byte crosses the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

RING = b"\x01"
READ_SIZE = 4096  # rings read at once: one wake for all of them


class OfficeBell:
    """`ring()` after each new mail; one connection to the back office, opened when needed."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None

    def ring(self) -> None:
        """Wake the back office's decide worker; never waits, never fails."""
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(RING)
        elif self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect_and_ring())

    async def _connect_and_ring(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(self._path)
        except OSError as exc:
            log.debug("the back office is not reachable (it decides at start): %s", exc)
            return
        self._writer.write(RING)
        self._watching = asyncio.create_task(self._watch(reader))

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        """The back office never writes: end of stream means it went away."""
        with contextlib.suppress(ConnectionError, OSError):
            await reader.read()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def close(self) -> None:
        for task in (self._connecting, self._watching):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()


async def serve_desk(sock: socket.socket, on_stored: Callable[[], None]) -> asyncio.Server:
    """Listen for acceptors' rings on `sock` (a listening UNIX socket); `on_stored` for each
    read (the decide worker's wake)."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(READ_SIZE):
                on_stored()
        writer.close()

    return await asyncio.start_unix_server(session, sock=sock)
