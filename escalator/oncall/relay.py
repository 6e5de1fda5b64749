"""What a recorded PagerDuty event causes: the incident's new state and the notices to send.

Built as a `React` for LoopStore.record_webhook, so the state and the outbox entries are written
in the transaction that records the event id; `record_event` is that one path, for a webhook
(review/webhooks.py) and for a poll of the REST API (oncall/poller.py) alike. Notices are
outbox actions of the contract's kinds, marked by a "notice" payload (the dispatcher hands them
to outbox/notices.py): a thread reply under the reporter's ack ("ack"), one under the alarm post
("alarm"), and a short mail to the reporter ("reply", only where the first reply went: never to
a sender RFC 3834 forbids answering).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from escalator.core.actions import PlannedAction
from escalator.core.notices import plan_notice
from escalator.core.webhooks import IncidentState, WebhookEvent, fold
from escalator.store.loop import Found, LoopStore, Outcome, React

_PAGE_ONLY = ("page", "page_at", "fallback")


def react_to(event: WebhookEvent, zone: ZoneInfo, public_url: str, now: datetime) -> React:
    """The React for one verified event (see the module docstring)."""
    from escalator.core.notices import event_line

    def react(found: Found) -> tuple[IncidentState, tuple[PlannedAction, ...]]:
        folded = fold(found.state, event)
        line = event_line(event, zone) if folded.relay else None
        if line is None:
            return folded.state, ()
        return folded.state, notices(found, line, f"pd:{event.event_id}", public_url, now)

    return react


async def record_event(
    store: LoopStore, event: WebhookEvent, zone: ZoneInfo, public_url: str, now: datetime
) -> Outcome:
    """One PagerDuty event, from a webhook or a poll of the REST API, recorded once with its
    state and notices (the one path both take)."""
    return await store.record_webhook(event, now, react_to(event, zone, public_url, now))


def common_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The planner's common facts of a mail, from one of its actions' payloads."""
    return {k: v for k, v in payload.items() if k not in (*_PAGE_ONLY, "notice", "notes", "to")}


def notices(
    found: Found, line: str, key: str, public_url: str, now: datetime, *, mail: bool = True
) -> tuple[PlannedAction, ...]:
    """A thread reply under the ack and the alarm post, and (with `mail`) a mail."""
    common = common_of(found.page_payload)
    review_url = f"{public_url.rstrip('/')}/mails/{found.mail_id}"
    rendered = plan_notice(common, line, review_url)
    planned = [
        PlannedAction(
            under,
            now,
            f"notice:{key}:{under}",
            {**common, "notice": {"under": under, **rendered["slack"]}},
        )
        for under in ("ack", "alarm")
        if under == "alarm" or common.get("slack_channel")
    ]
    if mail and found.reply_to:
        payload = {**common, "to": found.reply_to, "notice": {"mail": rendered["mail"]}}
        planned.append(PlannedAction("reply", now, f"notice:{key}:mail", payload))
    return tuple(planned)
