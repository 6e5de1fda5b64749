"""The DATA spool (escalator/ingress/spool.py): bounded memory per session, bytes back intact."""

from __future__ import annotations

import asyncio

from escalator.ingress.spool import CommitBudget, DiskBudget, Spool


def test_spool_keeps_little_in_memory_and_gives_every_byte_back() -> None:
    """Past the memory size the bytes go to a temporary file; read() returns them all."""
    spool = Spool(memory_bytes=1000)
    parts = [bytes([n % 256]) * 300 for n in range(50)]
    for part in parts:
        spool.write(part)
        assert len(spool._buffer) < 1000, "never more than the memory size held"
    assert spool.read() == b"".join(parts) and spool.size == 15_000
    spool.close()
    small = Spool()
    small.write(b"short\r\n")
    assert small.read() == b"short\r\n" and small._file is None


async def test_commit_budget_lets_big_mails_through_a_few_at_a_time() -> None:
    """No more than the budget in use at once, but a single mail larger than it still passes."""
    budget = CommitBudget(limit=100)
    in_use, peak = 0, 0

    async def commit(size: int) -> None:
        nonlocal in_use, peak
        async with budget.reserve(size):
            in_use += size
            peak = max(peak, in_use)
            await asyncio.sleep(0.01)
            in_use -= size

    await asyncio.gather(*(commit(40) for _ in range(10)), commit(500))
    assert peak <= 500 and in_use == 0
    peak = 0
    await asyncio.gather(*(commit(40) for _ in range(10)))
    assert peak == 80


def test_spool_files_share_a_disk_budget() -> None:
    """What sessions hold in temporary files together is bounded: past it a spool has no room
    (its mail is refused with 452 and retried), and closing gives the room back."""
    disk = DiskBudget(limit=2000)
    first, second = Spool(memory_bytes=1000, disk=disk), Spool(memory_bytes=1000, disk=disk)
    first.write(b"a" * 1500)
    second.write(b"b" * 1000)
    assert not first.no_room and second.no_room and disk.used == 1500
    first.write(b"c" * 100)  # the tail in memory
    assert first.read() == b"a" * 1500 + b"c" * 100, "a mail with room is read back whole"
    first.close()
    second.close()
    assert disk.used == 0
    third = Spool(memory_bytes=1000, disk=disk)
    third.write(b"d" * 1900)
    assert not third.no_room and third.read() == b"d" * 1900
    third.close()
