"""What the outbox and the review need to know about a mail, read once when it is decided. Pure.

The decide worker parses each mail once and stores these facts beside the decision, in the same
transaction. Everything after it (the dispatcher rendering pages, alarms and replies; the review
page and `escalator review`; a release; the probe) reads them and never parses mail again:

- who and what: sender address and name, subject, Message-ID, the references a reply threads on
  and the conversation's root (the dedup keys);
- the conversation's new words: this mail's own, followed by those of the earlier held mails it
  was decided together with, as every renderer reads them (capped like the parser caps a body);
- the mail's own text as the review shows it (new words, quoted, forwarded, signature) and the
  names of its attachments;
- where a reply to a release goes and why it may not be sent (RFC 3834), from the headers;
- who took part: the From, To and Cc addresses (an open incident's participants may update it).

Retention blanks the facts together with the raw mail. Stored as one JSON object (`to_json`);
every stored shape stays readable (a key added later reads as unknown in older rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from escalator.core.text import BodyParts

CONVERSATION_MAX_CHARS = 200_000  # what the parser keeps of one body; renderers read within it


@dataclass(frozen=True)
class MailFacts:
    """One decided mail as the shell after the decider sees it (see the module docstring)."""

    from_addr: str = ""
    from_name: str = ""
    subject: str = ""
    message_id: str | None = None
    references: tuple[str, ...] = ()
    thread_root: str | None = None
    body: BodyParts = field(default_factory=lambda: BodyParts("", "", "", ""))
    attachments: tuple[str, ...] = ()
    conversation: str | None = None  # None: the same as body.new (decided alone)
    release_to: str = ""
    release_refusal: str | None = None
    participants: tuple[str, ...] | None = None  # None: stored before they were kept

    @property
    def facts(self) -> str:
        """The conversation's new words: what pages, alarms and replies quote."""
        return self.body.new if self.conversation is None else self.conversation

    def to_json(self) -> dict[str, Any]:
        body = self.body
        return {
            "from_addr": self.from_addr,
            "from_name": self.from_name,
            "subject": self.subject,
            "message_id": self.message_id,
            "references": list(self.references),
            "thread_root": self.thread_root,
            "new": body.new,
            "quoted": body.quoted,
            "forwarded": body.forwarded,
            "signature": body.signature,
            "attachments": list(self.attachments),
            "conversation": self.conversation,
            "release_to": self.release_to,
            "release_refusal": self.release_refusal,
            "participants": None if self.participants is None else list(self.participants),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MailFacts:
        text = {
            key: str(data.get(key) or "") for key in ("new", "quoted", "forwarded", "signature")
        }
        return cls(
            from_addr=str(data.get("from_addr") or ""),
            from_name=str(data.get("from_name") or ""),
            subject=str(data.get("subject") or ""),
            message_id=_optional(data.get("message_id")),
            references=_strings(data.get("references")),
            thread_root=_optional(data.get("thread_root")),
            body=BodyParts(**text),
            attachments=_strings(data.get("attachments")),
            conversation=_optional(data.get("conversation")),
            release_to=str(data.get("release_to") or ""),
            release_refusal=_optional(data.get("release_refusal")),
            participants=_optional_strings(data.get("participants")),
        )


def conversation_text(parts: Sequence[str]) -> str:
    """New words of a follow-up then of the earlier mails, as core.conversation joins them."""
    joined = "\n\n".join(part.strip() for part in parts if part.strip())
    return joined[:CONVERSATION_MAX_CHARS]


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def _optional_strings(value: Any) -> tuple[str, ...] | None:
    return None if value is None else _strings(value)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()
