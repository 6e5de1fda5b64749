"""Reading a mail: raw bytes in, a ParsedMail out. Never raises, whatever the bytes.

mail-parser decodes the header fields (RFC 2047, addresses, dates); the body is walked here with
the standard library so that an attached message/rfc822 is read as a forwarded mail rather than
being folded into the sender's own words, and an attached `.txt` note as one too. Raw bytes stay
the source of truth: this is a view.
"""

from __future__ import annotations

import email
import email.header
import email.parser
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import Any

import mailparser

from escalator.core.headers import blank_line, field_text, message_id, message_ids
from escalator.core.text import BodyParts, html_to_text, split_body

# mail-parser logs every part it does not handle; that is not ours to print (and may quote mail).
logging.getLogger("mailparser").addHandler(logging.NullHandler())
logging.getLogger("mailparser").propagate = False

_KNOWN_HEADERS = frozenset(
    [
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "received",
        "return-path",
        "mime-version",
        "content-type",
        "sender",
        "delivered-to",
        "reply-to",
        "in-reply-to",
        "references",
        "x-mailer",
    ]
)
# A plain-text note attached by the sender ("the details are in the attached note"): read as a
# mail they forwarded, up to its first few thousand characters (a log file is not a note).
_NOTE = re.compile(r"\.txt$", re.IGNORECASE)
_NOTE_CHARS = 4000
_MAX_PARTS = 200  # a bomb of thousands of parts is not an escalation; read the first ones
_MAX_TEXT_CHARS = 200_000  # triage needs the opening of a mail, not a 5 MB log paste
# Of a single-part body, at least this much is parsed: more than _MAX_TEXT_CHARS characters in
# any charset (4 bytes each at most), even quoted-printable (3 bytes per byte, soft breaks).
BODY_READ_BYTES = 4 * 1024 * 1024
_PREFIX_CODINGS = frozenset({"", "7bit", "8bit", "binary", "quoted-printable"})


@dataclass(frozen=True)
class ParsedMail:
    """What escalator reads from one mail. Header names are lowercase."""

    is_mail: bool
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    date: datetime | None
    content_type: str
    headers: tuple[tuple[str, str], ...]
    body: BodyParts
    attachments: tuple[str, ...] = ()
    defects: tuple[str, ...] = field(default=())

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def header_values(self, name: str) -> tuple[str, ...]:
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key == wanted)

    @property
    def thread_root(self) -> str | None:
        """The Message-ID that names the conversation: first reference, else parent, else own."""
        return next(iter(self.references), None) or self.in_reply_to or self.message_id


def parse_mail(raw: bytes, body_bytes: int | None = BODY_READ_BYTES) -> ParsedMail:
    """Read raw mail bytes into a ParsedMail; malformed input degrades, it never raises.
    `body_bytes`: how much of a single-part body is parsed (see `_bounded`; None: all)."""
    raw = _strip_preamble(raw)
    parsed, message = _parse(_bounded(raw, body_bytes))
    fields = _header_fields(parsed, message)
    plain, html, forwarded, attachments = _walk_body(message)
    body = split_body(readable_text(plain, html))
    if forwarded:
        body = BodyParts(
            new=body.new,
            quoted=body.quoted,
            forwarded="\n\n".join(part for part in (body.forwarded, forwarded) if part),
            signature=body.signature,
        )
    headers = tuple((key.lower(), _header_text(value)) for key, value in message.items())
    return ParsedMail(
        is_mail=_looks_like_mail(raw),
        headers=headers,
        body=body,
        attachments=attachments,
        content_type=message.get_content_type(),
        defects=tuple(type(defect).__name__ for defect in message.defects),
        **fields,
    )


# A text/plain part that only points at the HTML ("view this message in your browser") or holds a
# few words while the HTML part says much more: the HTML is what the sender's readers saw.
_STUB = re.compile(
    r"(view|read|open|display|see) (this|the) (message|email|e-mail|mail)\b|"
    r"(in|with) (your|a|an) (web )?browser|html (version|viewer|email|mail)|"
    r"does not support html|requires html|enable html",
    re.IGNORECASE,
)
_STUB_MAX_WORDS = 25  # a plain part this short is a stub when the HTML holds far more words
_RICHER = 3  # how many times more words the HTML must hold to replace a short plain part


def readable_text(plain: str, html: str) -> str:
    """The richer of the two renderings: the plain part, unless it is a stub beside real HTML."""
    if not html.strip():
        return plain
    if not plain.strip():
        return html_to_text(html)
    plain_words = len(plain.split())
    if plain_words > 4 * _STUB_MAX_WORDS:
        return plain
    rendered = html_to_text(html)
    html_words = len(rendered.split())
    short = plain_words <= _STUB_MAX_WORDS and html_words >= _RICHER * max(plain_words, 4)
    pointer = _STUB.search(plain) is not None and html_words > plain_words * 2
    return rendered if short or pointer else plain


def _bounded(raw: bytes, body_bytes: int | None) -> bytes:
    """`raw` cut at the first line end past `body_bytes` of body when it is one part read as is
    or quoted-printable (where decoding a prefix gives a prefix of the text): what triage reads,
    the first _MAX_TEXT_CHARS, is the same, and the parser does not split a 10 MB log paste into
    lines (90 MiB and 2.5 s). Multipart mails and base64 bodies are parsed whole."""
    head = blank_line(raw)
    if body_bytes is None or head is None or len(raw) - head[1] <= body_bytes:
        return raw
    cut = raw.find(b"\n", head[1] + body_bytes)
    if cut < 0 or not _one_prefix_part(raw[: head[0]]):
        return raw
    return raw[: cut + 1]


def _one_prefix_part(head: bytes) -> bool:
    """The header block names no multipart or message/* type (in any Content-Type field) and
    only transfer encodings a prefix of which decodes to a prefix. The parser reads the same
    header fields from this block as from the whole mail, so it judges the same part."""
    fields = email.parser.BytesHeaderParser(policy=compat32).parsebytes(head)
    types = [str(value).lower() for value in fields.get_all("content-type", [])]
    codings = [
        str(value).strip().lower() for value in fields.get_all("content-transfer-encoding", [])
    ]
    nested = any("multipart" in kind or "message" in kind for kind in types)
    return not nested and all(coding in _PREFIX_CODINGS for coding in codings)


def _parse(raw: bytes) -> tuple[Any, Message]:
    """mail-parser's view and its stdlib Message; the stdlib alone when mail-parser gives up."""
    try:
        parsed = mailparser.parse_from_bytes(raw)
    except Exception:  # noqa: BLE001 - mail-parser raises many types on broken mail; degrade
        return None, email.message_from_bytes(raw, policy=compat32)
    message = parsed.message
    if not isinstance(message, Message):
        return None, email.message_from_bytes(raw, policy=compat32)
    return parsed, message


def _header_fields(parsed: Any, message: Message) -> dict[str, Any]:
    """Decoded header fields, from mail-parser when it coped, else from the stdlib."""
    try:
        subject, from_pairs, to_pairs = parsed.subject, parsed.from_, parsed.to
        date = parsed.date if isinstance(parsed.date, datetime) else None
    except Exception:  # noqa: BLE001 - no parsed view, or a field mail-parser cannot decode
        subject = _header_text(message.get("subject", ""))
        from_pairs = getaddresses([_header_text(message.get("from", ""))])
        to_pairs = getaddresses([_header_text(message.get("to", ""))])
        date = None
    name, addr = from_pairs[0] if from_pairs else ("", "")
    return {
        "message_id": _msgid(message.get("message-id")),
        "in_reply_to": _msgid(message.get("in-reply-to")),
        "references": tuple(_msgids(message.get("references"))),
        "subject": _one_line(str(subject or "")),
        "from_addr": str(addr or parseaddr(_header_text(message.get("from", "")))[1]).lower(),
        "from_name": _one_line(str(name or "")),
        "to": tuple(str(pair[1]).lower() for pair in to_pairs if pair[1]),
        "date": date,
    }


def _walk_body(message: Message) -> tuple[str, str, str, tuple[str, ...]]:
    """(plain text, html, forwarded text, attachment names) of the top-level message."""
    plain: list[str] = []
    html: list[str] = []
    forwarded: list[str] = []
    attachments: list[str] = []
    for count, part in enumerate(_parts(message)):
        if count >= _MAX_PARTS:
            break
        _collect(part, plain, html, forwarded, attachments)
    return (
        _cap("\n".join(plain)),
        _cap("\n".join(html)),
        _cap("\n".join(forwarded)),
        tuple(attachments),
    )


def _collect(
    part: Message, plain: list[str], html: list[str], forwarded: list[str], names: list[str]
) -> None:
    kind = part.get_content_type()
    filename = _header_text(part.get_filename() or "")
    if kind == "message/rfc822":
        forwarded.extend(_forwarded_text(part))
    elif filename or part.get_content_disposition() == "attachment":
        names.append(_one_line(filename) or kind)
        if kind == "text/plain" and _NOTE.search(filename):
            forwarded.append(f"Attached {_one_line(filename)}:\n{_decode(part)[:_NOTE_CHARS]}")
    elif kind == "text/plain":
        plain.append(_decode(part))
    elif kind == "text/html":
        html.append(_decode(part))


def _parts(message: Message) -> list[Message]:
    """Leaf parts and attached messages, without descending into the attached messages."""
    if message.get_content_type() == "message/rfc822" or not message.is_multipart():
        return [message]
    leaves: list[Message] = []
    payload = message.get_payload()
    for child in payload if isinstance(payload, list) else []:
        if isinstance(child, Message):
            leaves.extend(_parts(child))
        if len(leaves) > _MAX_PARTS:
            break
    return leaves


def _forwarded_text(part: Message) -> list[str]:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return []
    subject = _header_text(inner.get("subject", ""))
    plain, html, _, _ = _walk_body(inner)
    return [f"Subject: {subject}\n{readable_text(plain, html)}"]


def _decode(part: Message) -> str:
    """A text part's payload as str, tolerant of lying or unknown charsets."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - broken transfer encodings must not stop triage
        data = None
    if not isinstance(data, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name: utf-8 is the best guess today
        return data.decode("utf-8", errors="replace")


def _header_text(value: object) -> str:
    """A header value as text; RFC 2047 words decoded; bytes and Header objects tolerated."""
    try:
        pieces = email.header.decode_header(str(value))
    except Exception:  # noqa: BLE001 - a malformed encoded word keeps its raw form
        return str(value)
    out = []
    for chunk, charset in pieces:
        if isinstance(chunk, bytes):
            try:
                out.append(chunk.decode(charset or "ascii", errors="replace"))
            except LookupError:
                out.append(chunk.decode("utf-8", errors="replace"))
        else:
            out.append(chunk)
    return "".join(out)


def _msgid(value: object) -> str | None:
    """Message-IDs are read as the SMTP handler stores them (core/headers.py: UTF-8)."""
    return None if value is None else message_id(field_text(value))


def _msgids(value: object) -> list[str]:
    return [] if value is None else message_ids(field_text(value))


def _one_line(text: str) -> str:
    """Header-derived text folded to one line, control characters removed."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def _cap(text: str) -> str:
    return text[:_MAX_TEXT_CHARS]


_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def _looks_like_mail(raw: bytes) -> bool:
    """A mail opens with a header line and names at least one header a mail system writes."""
    head = _before(_before(raw, b"\n\n"), b"\r\n\r\n")
    names = [
        match.group(1).lower().decode("ascii", "replace")
        for match in (_HEADER_LINE.match(line) for line in head.splitlines())
        if match
    ]
    first = _HEADER_LINE.match(head.lstrip())
    return first is not None and bool(set(names) & _KNOWN_HEADERS)


def _before(raw: bytes, separator: bytes) -> bytes:
    """What stands before the first `separator` (all of `raw` without one), the rest not copied."""
    end = raw.find(separator)
    return raw if end < 0 else raw[:end]


def _strip_preamble(raw: bytes) -> bytes:
    """Drop a byte-order mark and an mbox 'From ' line: neither is part of the message."""
    raw = raw.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
    if raw.startswith(b"From ") and not re.match(rb"From\s*:", raw):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    return raw
