"""The facts of a decided mail, read from its parse (escalator.core.facts says what they are for).

Only the decide worker parses mail; this is where the parse becomes the typed facts it stores
beside the decision, in the same transaction, and the backfill reads old rows with.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import getaddresses

from escalator.core.actions import address
from escalator.core.conversation import Said, merge_follow_up
from escalator.core.facts import CONVERSATION_MAX_CHARS, MailFacts
from escalator.core.mail import ParsedMail
from escalator.core.model import SenderCheck


def read_facts(
    mail: ParsedMail,
    merged: Sequence[Said],
    mail_from: str,
    trusted_list_ids: tuple[str, ...] = (),
    check: SenderCheck | None = None,
) -> MailFacts:
    """`mail`, decided together with the earlier mails `merged` (nearest first: their stored
    facts), as facts; `check`: what the sender check found (a release answers where it says)."""
    conversation = None
    if merged:
        conversation = merge_follow_up(mail, merged).body.new[:CONVERSATION_MAX_CHARS]
    # A release is an escalation with no reasons, keeping the sender check: answered as today.
    release = address(mail, mail_from, check=check, trusted_list_ids=trusted_list_ids)
    return MailFacts(
        from_addr=mail.from_addr,
        from_name=mail.from_name,
        subject=mail.subject,
        message_id=mail.message_id,
        references=mail.references or tuple(filter(None, [mail.in_reply_to])),
        thread_root=mail.thread_root,
        body=mail.body,
        attachments=mail.attachments,
        conversation=conversation,
        release_to=release.to,
        release_refusal=release.refusal,
        participants=participants(mail),
    )


def participants(mail: ParsedMail) -> tuple[str, ...]:
    """The From, To and Cc addresses, lowercase, sorted: who took part in the mail."""
    cc = [found for _, found in getaddresses(list(mail.header_values("cc")))]
    people = (mail.from_addr, *mail.to, *cc)
    return tuple(sorted({person.strip().lower() for person in people if person.strip()}))
