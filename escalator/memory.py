"""The process's malloc behaviour: large buffers go back to the system once they are freed.

glibc serves a request of 128 KiB or more with a mapping of its own and unmaps it on free, but it
raises that threshold to the size of every such block freed (up to 32 MiB): after the first
10 MiB mail, every mail's bytes came from the heap, whose freed middle glibc keeps, so the
process stayed at its burst peak. `tune()` fixes the threshold at 1 MiB (which stops the
raising; socket reads of 256 KiB stay in the heap) and the heap's top trim at 4 MiB (what the
raising would have made it, about); `trim()` hands back freed heap pages after a burst. Both are
called by the serve process and by each decide child; both do nothing where the C library is
not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD_BYTES = 1024 * 1024  # a message-sized buffer is mapped, and unmapped when freed
TRIM_THRESHOLD_BYTES = 4 * 1024 * 1024  # free heap top kept for the next burst of small objects


@cache
def _libc() -> Any:
    """glibc, or None (another C library, or none found): then tuning is skipped."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    has = libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")
    return libc if has else None


def tune() -> bool:
    """Fix glibc's mmap and trim thresholds for this process; True when both were set."""
    libc = _libc()
    if libc is None:
        return False
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not done:
        log.warning("mallopt refused the thresholds: freed mail buffers may stay resident")
    return done


def trim() -> None:
    """Give freed heap memory back to the system (after a burst; costs about a millisecond)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
