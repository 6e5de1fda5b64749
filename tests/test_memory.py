"""Process memory (escalator/memory.py): a message-sized buffer leaves the process when freed."""

from __future__ import annotations

from pathlib import Path

from escalator import memory

MESSAGE = 10 * 1024 * 1024


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_freed_message_buffer_leaves_the_process() -> None:
    """glibc would raise its mmap threshold after the first large free and keep the next
    mails in its heap; tuned, every 10 MiB buffer is unmapped as soon as it is freed."""
    assert memory.tune()
    for _ in range(3):  # the first free is the one that used to raise the threshold
        buffer = b"x" * MESSAGE
        held = rss_kib()
        del buffer
        assert held - rss_kib() >= MESSAGE // 1024 * 9 // 10
    memory.trim()  # callable at any time; hands back what the heap can spare
