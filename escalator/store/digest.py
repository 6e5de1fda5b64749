"""What makes two deliveries the same mail: a digest of its content, not of its Message-ID.

A retry (an MTA that never saw our 250) repeats the same header fields and body, but its trace
headers (Received, Return-Path, DKIM-Signature, Authentication-Results, X-anything a relay adds)
may differ, and two different mails may share a Message-ID (templated senders, broken clients).
So the duplicate key is a SHA-256 over the fields the author wrote (From, Subject, Date,
Message-ID, addressees, threading, Resent-* and the MIME Content-* fields; unfolded, whitespace
collapsed) and the body (line endings normalised). Anything else is ignored, so a relay cannot
make a retry look new. A mail with neither a Message-ID nor a Date has nothing that tells a retry
from a second report with the same words: it gets no digest and is always new.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from escalator.core.headers import blank_line

DIGEST_FIELDS = frozenset(
    (b"date", b"from", b"sender", b"reply-to", b"to", b"cc", b"subject", b"message-id",
     b"in-reply-to", b"references", b"mime-version")
)  # fmt: skip
DIGEST_PREFIXES = (b"resent-", b"content-")
IDENTITY_FIELDS = (b"date", b"message-id")
_LINE_END = re.compile(rb"\r?\n")
_CR, _LF = 13, 10
BODY_CHUNK = 256 * 1024  # the body is hashed a slice at a time, never copied whole


def content_digest(raw: bytes) -> str | None:
    """Hex SHA-256 of the fields that identify a mail plus its body; None without Message-ID
    and Date (see the module docstring). Pure and total: any bytes give an answer."""
    head_end, body_start = head_bounds(raw)
    fields = digest_fields(raw[:head_end])
    if not any(name in IDENTITY_FIELDS for name, _ in fields):
        return None
    digest = hashlib.sha256()
    for name, value in fields:
        digest.update(name + b":" + value + b"\n")
    digest.update(b"\n")
    for piece in normal_body_pieces(raw, body_start):
        digest.update(piece)
    return digest.hexdigest()


def head_bounds(raw: bytes) -> tuple[int, int]:
    """(end of the header block, start of the body): split at the first empty line; all
    header when there is none."""
    found = blank_line(raw)
    return (len(raw), len(raw)) if found is None else found


def digest_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The identifying fields, unfolded, name lowercased, whitespace collapsed, sorted by name
    (stable: repeated fields keep their order)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in _unfolded(head):
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        if colon and (name in DIGEST_FIELDS or name.startswith(DIGEST_PREFIXES)):
            fields.append((name, b" ".join(value.split())))
    return sorted(fields, key=lambda field: field[0])


def _unfolded(head: bytes) -> list[bytes]:
    lines: list[bytes] = []
    for line in _LINE_END.split(head):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += line
        else:
            lines.append(line)
    return lines


def normal_body_pieces(raw: bytes, start: int, chunk: int = BODY_CHUNK) -> Iterator[bytes]:
    """The body from `start`, CRLF read as LF and trailing line ends dropped, in slices of
    about `chunk` bytes (a CRLF is never cut in two; the trailing line ends are found first)."""
    end = _body_end(raw, start)
    while start < end:
        stop = min(start + chunk, end)
        if raw[stop - 1 : stop + 1] == b"\r\n" and stop < end:
            stop += 1
        yield raw[start:stop].replace(b"\r\n", b"\n")
        start = stop


def _body_end(raw: bytes, start: int) -> int:
    """Where the body ends once its trailing line ends (CRLF or LF) are dropped."""
    end = len(raw)
    while end > start and raw[end - 1] == _LF:
        end -= 2 if end - 2 >= start and raw[end - 2] == _CR else 1
    return end
