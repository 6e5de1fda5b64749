"""Where a message goes while it arrives: a small buffer, then an unlinked temporary file.

A session holds at most `MEMORY_BYTES` of its message in memory, whatever the message's size
(aiosmtpd kept every line in a list). The bytes are read back once, for the commit, and only
while `CommitBudget` allows: twenty 10 MiB mails ending together are stored one after another
(small ones beside them) rather than all held in memory at once. The file is anonymous
(TemporaryFile), so a crash leaves nothing behind; the store commit, not this file, is what
makes a 250 durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from typing import IO

MEMORY_BYTES = 256 * 1024  # per session, before the message moves to a temporary file
COMMIT_BUDGET_BYTES = 16 * 1024 * 1024  # raw bytes read back for commits at any one time
# What all sessions may hold in temporary files at once. In a container /tmp is small (the
# Deployment's emptyDir: a pod past its sizeLimit is evicted), so past this a mail is refused
# with 452 4.3.1 and the sender retries later, as Postfix does when its queue's disk is full.
DISK_BUDGET_BYTES = 256 * 1024 * 1024


class DiskBudget:
    """Bytes in spool files across sessions, at most `limit` (a plain count: one loop)."""

    def __init__(self, limit: int = DISK_BUDGET_BYTES) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int, always: bool = False) -> bool:
        if not always and self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used -= size


class Spool:
    """Append-only message bytes: in memory up to MEMORY_BYTES, then in a temporary file while
    `disk` has room; past that `no_room` is set and the bytes are dropped."""

    def __init__(self, memory_bytes: int = MEMORY_BYTES, disk: DiskBudget | None = None) -> None:
        self._memory_bytes = memory_bytes
        self._disk = disk or DiskBudget()
        self._on_disk = 0
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0
        self.no_room = False

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= self._memory_bytes:
            self._flush()

    def _flush(self, always: bool = False) -> None:
        """The buffer to the file while the disk budget has room (`always`: the short tail of
        a mail about to be read back, held in memory already); else the mail is dropped."""
        if not self._disk.take(len(self._buffer), always):
            self.no_room = True
            self.close()
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="escalator-spool-")  # noqa: SIM115 - closed in close()
        self._file.write(self._buffer)
        self._on_disk += len(self._buffer)
        self._buffer = bytearray()

    def read(self) -> bytes:
        """The whole message, in one allocation (blocking file I/O: call it off the loop for
        large ones)."""
        if self._file is None:
            return bytes(self._buffer)
        self._flush(always=True)  # the tail joins the file: one copy read back, not two
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._buffer = bytearray()
        self._disk.give_back(self._on_disk)
        self._on_disk = 0
        if self._file is not None:
            self._file.close()
            self._file = None


class CommitBudget:
    """A byte semaphore: how much raw mail may be in memory for commits at once. One mail is
    always let through, however large, so no size can wait forever."""

    def __init__(self, limit: int = COMMIT_BUDGET_BYTES) -> None:
        self._limit = limit
        self._in_use = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(
                lambda: not self._in_use or self._in_use + size <= self._limit
            )
            self._in_use += size
        try:
            yield
        finally:
            async with self._changed:
                self._in_use -= size
                self._changed.notify_all()
