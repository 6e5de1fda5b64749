"""Facts for mails decided before facts were stored (rows written by escalator before issue 10).

The service runs it once at start, before the dispatcher: a deferred page, a failed alarm to
replay or a held mail to release, decided by the old code, then renders from facts like any
other. Each mail's raw bytes are parsed once here (in a thread), with the earlier mails of its
conversation when it was decided together with them (kept across a release). Mails whose raw
bytes retention purged, and mails whose decision failed, stay without facts.
"""

from __future__ import annotations

import asyncio
import logging

from escalator.core.facts import MailFacts
from escalator.core.mail import parse_mail
from escalator.decider.facts import read_facts
from escalator.store import MailRow, Store

log = logging.getLogger(__name__)

BATCH = 100


async def backfill_facts(store: Store, trusted_list_ids: tuple[str, ...] = ()) -> int:
    """Store the facts of every decided mail that has raw bytes but none; return how many."""
    done, after = 0, 0
    while rows := await store.mails_without_facts(BATCH, after):
        after = rows[-1].id
        for row in rows:
            if row.decision is not None and row.decision.error is not None:
                continue  # the parser failed on it once; a person reads it from the raw bytes
            facts = await _facts(store, row, trusted_list_ids)
            done += await store.set_facts(row.id, facts)
    if done:
        log.info("backfill: facts stored for %d mails decided before facts were kept", done)
    return done


async def _facts(store: Store, row: MailRow, trusted_list_ids: tuple[str, ...]) -> MailFacts:
    ids = row.decision.conversation if row.decision is not None else ()
    found = [await store.get_mail(mail_id) for mail_id in ids]
    earlier = [mail.raw for mail in found if mail is not None and mail.raw]
    return await asyncio.to_thread(_read, row, earlier, trusted_list_ids)


def _read(row: MailRow, earlier: list[bytes], trusted_list_ids: tuple[str, ...]) -> MailFacts:
    merged = [parse_mail(raw) for raw in earlier]
    check = row.decision.sender_check if row.decision is not None else None
    parsed = parse_mail(row.raw or b"")
    return read_facts(parsed, merged, row.mail_from, trusted_list_ids, check)
