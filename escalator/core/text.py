"""Turning a mail body into the text a person reads, split into what is new and what is not.

A reply carries the earlier conversation, a signature and often a legal disclaimer. Triage must
weigh the new words; the rest is kept (quoted, forwarded, signature) for reference and for the
channel finder, which treats each part with a different trust.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from escalator.core.prefilter import Prefiltered

_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "br",
        "tr",
        "li",
        "ul",
        "ol",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "pre",
        "address",
        "section",
        "article",
        "header",
        "footer",
    ]
)
_SKIP_TAGS = frozenset({"style", "script", "head", "title", "xml"})
_QUOTE_CLASSES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted")


class _TextExtractor(HTMLParser):
    """Collects readable text; blockquotes and webmail quote containers become '> ' lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self._skip_depth = 0
        self._quote_stack: list[str] = []
        self._href: str | None = None
        self._link_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        if tag == "blockquote" or any(
            cls in (attributes.get("class") or "") for cls in _QUOTE_CLASSES
        ):
            self._quote_stack.append(tag)
            self._newline()
        elif tag == "a":
            self._href, self._link_text = attributes.get("href"), ""
        if tag in _BLOCK_TAGS:
            self._newline()
        elif tag in ("td", "th"):
            self._write(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip_depth:
            self._skip_depth -= 1
        if self._quote_stack and self._quote_stack[-1] == tag:
            self._quote_stack.pop()
            self._newline()
        if tag == "a":
            self._close_link()
        if tag in _BLOCK_TAGS:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._href is not None:
            self._link_text += data
        self._write(data)

    def _close_link(self) -> None:
        # A Slack link whose visible text is not the address still names a channel: keep both.
        href, text = self._href or "", self._link_text.strip()
        if "slack.com/archives/" in href and href not in text:
            self._write(f" ({href})")
        self._href = None

    def _write(self, data: str) -> None:
        data = data.replace("\xa0", " ").replace("\r", "")
        for index, piece in enumerate(data.split("\n")):
            if index:
                self._newline()
            self.lines[-1] += re.sub(r"[ \t]+", " ", piece)

    def _newline(self) -> None:
        prefix = "> " * len(self._quote_stack)
        if self.lines[-1].strip() or len(self.lines) == 1:
            self.lines.append(prefix)
        else:
            self.lines[-1] = prefix


def html_to_text(html: str) -> str:
    """Readable text from an HTML body (Outlook tables, <br>, &nbsp;), never raising."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except (AssertionError, ValueError):  # html.parser gives up on some malformed markup
        pass
    text = "\n".join(line.rstrip() for line in extractor.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclass(frozen=True)
class BodyParts:
    """A body split by who wrote it and when."""

    new: str
    quoted: str = ""
    forwarded: str = ""
    signature: str = ""


_REPLY_HEADER = Prefiltered.compile(
    r"^(on\s[^\n]{0,200}?(\n[^\n]{0,120}?)?wrote:\s*$"  # Gmail, Apple Mail (often wrapped)
    r"|-{2,}\s*original message\s*-{2,}"  # Outlook plain text
    r"|_{10,}\s*$"  # Outlook's rule above "From: … Sent: …"
    r"|from:\s.+\n\s*(sent|date):\s)",
    re.IGNORECASE | re.MULTILINE,
)
_FORWARD_HEADER = Prefiltered.compile(
    r"^(-{2,}\s*forwarded message\s*-{2,}|begin forwarded message:|-{2,}\s*forwarded by\b)",
    re.IGNORECASE | re.MULTILINE,
    starts=("--", "begin"),
)
_SIG_DELIMITER = Prefiltered.compile(r"^-- ?$", re.MULTILINE, starts=("--",))
_MOBILE_FOOTER = Prefiltered.compile(
    r"^(sent from (my )?(iphone|ipad|android|samsung|mobile|outlook|blackberry)\b.*|"
    r"get outlook for (ios|android).*)$",
    re.IGNORECASE | re.MULTILINE,
    starts=("sent from", "get outlook"),
)
_SIGN_OFF = Prefiltered.compile(
    r"^(thanks|thank you|many thanks|thanks (very|so) much|kind regards|best regards|warm regards|"
    r"regards|best|best wishes|cheers|br|ta|all the best)[,.!]*\s*$",
    re.IGNORECASE | re.MULTILINE,
    starts=("thank", "many", "kind", "best", "warm", "regards", "cheers", "br", "ta", "all"),
)
_DISCLAIMER = Prefiltered.compile(
    r"^[^\n]*\b(this e-?mail (and any (attachments|files) )?[^\n]{0,40}(confidential|intended)|"
    r"if you (have )?received this (e-?mail|message|communication) in error|"
    r"confidentiality notice|disclaimer:)",
    re.IGNORECASE | re.MULTILINE,
)
_SIGNATURE_MAX_LINES = 10
# The markers are searched through literal prefilters, and tried only where the strings they
# begin with occur (`starts`): a pasted 50 KB log is not walked line by line six times.


def split_body(text: str) -> BodyParts:
    """Separate new text from quoted replies, forwarded mail, signature and disclaimer."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text, forwarded = _cut(text, _FORWARD_HEADER)
    text, quoted = _cut(text, _REPLY_HEADER)
    text, quote_lines = _drop_quote_lines(text)
    text, signature = _split_signature(text)
    quoted = "\n".join(part for part in (quote_lines, quoted) if part)
    return BodyParts(new=text.strip(), quoted=quoted, forwarded=forwarded, signature=signature)


def _cut(text: str, marker: Prefiltered) -> tuple[str, str]:
    match = marker.search(text)
    if match is None:
        return text, ""
    return text[: match.start()], text[match.start() :].strip()


def _drop_quote_lines(text: str) -> tuple[str, str]:
    kept: list[str] = []
    quoted: list[str] = []
    for line in text.split("\n"):
        (quoted if line.lstrip().startswith(">") else kept).append(line)
    return "\n".join(kept), "\n".join(line.lstrip()[1:].strip() for line in quoted)


def _split_signature(text: str) -> tuple[str, str]:
    """Cut at '-- ', a mobile footer, a disclaimer, or a sign-off followed by a short block."""
    cut = len(text)
    for marker in (_SIG_DELIMITER, _MOBILE_FOOTER, _DISCLAIMER):
        match = marker.search(text)
        if match is not None:
            cut = min(cut, match.start())
    for match in _SIGN_OFF.finditer(text[:cut]):
        tail = _filled_lines(text, match.end(), cut, _SIGNATURE_MAX_LINES + 1)
        # A signature is a short block of short lines; facts after a mid-text "thanks" are not.
        if len(tail) <= _SIGNATURE_MAX_LINES and all(_signature_line(line) for line in tail):
            cut = match.start()
            break
    return text[:cut].rstrip(), text[cut:].strip()


def _filled_lines(text: str, start: int, end: int, limit: int) -> list[str]:
    """The first `limit` non-blank lines of text[start:end], without splitting a long paste."""
    lines: list[str] = []
    while start <= end and len(lines) < limit:
        stop = text.find("\n", start, end)
        stop = end if stop < 0 else stop
        if text[start:stop].strip():
            lines.append(text[start:stop])
        start = stop + 1
    return lines


def _signature_line(line: str) -> bool:
    """Names, titles, phone numbers: short lines, never a sentence of facts."""
    return len(line) <= 60 and len(line.split()) <= 8
