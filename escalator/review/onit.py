"""POST /mails/ID/acknowledge: a person on the review page says "I'm on it" (issue 11).

For an escalated mail only. It counts as a reaction to the alarm (no "page anyway" after the
unanswered delay) and is audited on the mail's page; the first click wins, a second changes
nothing. A page of the mail that PagerDuty has been refusing stops being retried: a person has
taken it over (issue 14.5: a page is retried until delivered or resolved here).
POST /mails/ID/split: a mail that joined another reporter's incident (core/grouping.py) but is a
different outage gets its own page, alarm and ack, once. Both behind the review's sign-in and
CSRF check like Release and Dismiss, both audited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from escalator.core.grouping import split_actions
from escalator.outbox.dispatch import RESOLVED
from escalator.review.web import IDENTITY, STORE
from escalator.store.loop import loop_store

PATH = r"/mails/{mail_id}/acknowledge"
SPLIT_PATH = r"/mails/{mail_id}/split"


def routes(
    clock: Callable[[], datetime], on_split: Callable[[], None] = lambda: None
) -> list[web.RouteDef]:
    async def acknowledge(request: web.Request) -> web.StreamResponse:
        text = request.match_info["mail_id"]
        if not text.isdigit() or len(text) > 18:
            raise web.HTTPNotFound(text="No such mail.")
        store = request.app[STORE]
        mail = await store.get_mail(int(text))
        if mail is None or mail.verdict != "escalate":
            raise web.HTTPNotFound(text="No such escalation.")
        who, now = request[IDENTITY].who, clock()
        await loop_store(store).acknowledge(mail.id, who, now)
        await store.settle_failing(mail.id, "page", f"{RESOLVED} by {who}", now)
        raise web.HTTPSeeOther(f"/mails/{mail.id}")

    async def split(request: web.Request) -> web.StreamResponse:
        """A wrongly joined mail gets its own page, alarm and ack (audited, once)."""
        text = request.match_info["mail_id"]
        store = request.app[STORE]
        mail = await store.get_mail(int(text)) if text.isdigit() and len(text) < 19 else None
        if mail is None or mail.decision is None or mail.decision.joined is None:
            raise web.HTTPNotFound(text="No such joined escalation.")
        now = clock()
        planned = split_actions(await store.mail_actions(mail.id), now)
        if await loop_store(store).split(mail.id, request[IDENTITY].who, now, planned):
            on_split()
        raise web.HTTPSeeOther(f"/mails/{mail.id}")

    return [web.post(PATH, acknowledge), web.post(SPLIT_PATH, split)]
