"""Conversations: a follow-up to a rejected mail is decided together with it. Pure.

A sender told "no Slack channel named" answers in the same thread: "the channel is #x". Alone,
that line has no facts and is rejected again; read with the earlier mail it completes, it
escalates, without the sender rewriting everything. So the decide worker, before deciding a
mail, looks up the mails it answers (`thread_parents`, from the headers alone) and passes the
ones that `may_complete` it to `decide_conversation`.

The earlier mails are read as the decide worker stored them when it decided them (`Said`: their
From address and body parts, core/facts.py), so a follow-up never has them parsed again. What
is merged is only what triage reads as the sender's words (`merge_follow_up`): headers, subject,
envelope and identity stay the follow-up's, so the automated-mail checks, the sender allowlist
and the thread's dedup key judge the mail that actually arrived. A follow-up that
escalates on its own is decided alone; earlier mails can complete a follow-up, never spoil it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from escalator.core.authenticity import MethodResult
from escalator.core.decide import decide_parsed
from escalator.core.headers import MAX_STORED_ID_CHARS, header_block, message_ids
from escalator.core.mail import ParsedMail
from escalator.core.model import Decision, Verdict
from escalator.core.policy import Policy
from escalator.core.text import BodyParts

MAX_PARENTS = 10  # how many Message-IDs of the thread are looked up, nearest first
CONVERSATION_WINDOW = timedelta(days=7)  # the duplicate window of the store: older is a new case
_FIELD = re.compile(r"^(in-reply-to|references)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


class Said(Protocol):
    """An earlier mail as a conversation reads it: its author and its words (MailFacts stored
    when it was decided, or a ParsedMail)."""

    @property
    def from_addr(self) -> str: ...

    @property
    def body(self) -> BodyParts: ...


@dataclass(frozen=True)
class Conversation:
    """A decision and the earlier mails (indexes into the list given) it was made together with."""

    decision: Decision
    merged: tuple[int, ...] = ()


def thread_parents(raw: bytes) -> tuple[str, ...]:
    """The Message-IDs (without <>) this mail answers, nearest first: In-Reply-To, then
    References from the last (the parent) back to the root. Only the header block is read, so
    this is cheap enough for the decide worker to call before any parsing. Read as the SMTP
    handler stored them (core/headers.py), so a UTF-8 Message-ID is found too."""
    fields = {name.lower(): value for name, value in _FIELD.findall(header_block(raw))}
    ids = message_ids(fields.get("in-reply-to", ""))
    ids += reversed(message_ids(fields.get("references", "")))
    bounded = (found[:MAX_STORED_ID_CHARS] for found in ids)
    return tuple(dict.fromkeys(bounded))[:MAX_PARENTS]


def may_complete(
    *,
    verdict: str | None,
    review: str | None,
    author: str,
    received_at: datetime,
    follow_up_author: str,
    follow_up_at: datetime,
) -> bool:
    """An earlier mail a follow-up may complete: rejected and still held for review (a person
    who released or dismissed it has decided), written by the same From address, and recent."""
    same_author = bool(author) and author.strip().lower() == follow_up_author.strip().lower()
    recent = timedelta(0) <= follow_up_at - received_at <= CONVERSATION_WINDOW
    return verdict == "reject" and review == "held" and same_author and recent


def merge_follow_up(follow_up: ParsedMail, earlier: Sequence[Said]) -> ParsedMail:
    """The follow-up as triage reads it together with the earlier mails: its own new words
    first (so a channel it names wins over one named before), then each earlier mail's new
    words in the order given (nearest first), then everyone's forwarded text. Quoted text and
    signature stay the follow-up's; every header and the identity stay the follow-up's."""
    body = follow_up.body
    new = [body.new, *(mail.body.new for mail in earlier)]
    forwarded = [body.forwarded, *(mail.body.forwarded for mail in earlier)]
    merged = BodyParts(
        new=_joined(new),
        quoted=body.quoted,
        forwarded=_joined(forwarded),
        signature=body.signature,
    )
    return replace(follow_up, body=merged)


def decide_conversation(
    follow_up: ParsedMail,
    earlier: Sequence[Said],
    at: datetime,
    policy: Policy,
    envelope_from: str | None = None,
    extra_auth: tuple[MethodResult, ...] = (),
) -> Conversation:
    """Decide the follow-up alone; if that rejects, decide it together with the earlier mails
    of the same author. The earlier mails should already have passed `may_complete`."""
    alone = decide_parsed(follow_up, at, policy, envelope_from, extra_auth)
    author = follow_up.from_addr.strip().lower()
    usable = [
        index
        for index, mail in enumerate(earlier)
        if author and mail.from_addr.strip().lower() == author
    ]
    if alone.verdict is Verdict.ESCALATE or not usable:
        return Conversation(alone)
    merged = merge_follow_up(follow_up, [earlier[index] for index in usable])
    return Conversation(decide_parsed(merged, at, policy, envelope_from, extra_auth), tuple(usable))


def _joined(parts: list[str]) -> str:
    return "\n\n".join(part.strip() for part in parts if part.strip())
