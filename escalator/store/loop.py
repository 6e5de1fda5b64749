"""What the on-call loop (issue 11) keeps in the store, beside the Store protocol.

`LoopStore` is the Store plus: PagerDuty webhook events recorded once per event id, with the
incident state of the mail whose page opened the incident, and the actions they cause, in ONE
transaction (`record_webhook`); incident states read back for the page and `list --json`; and
marks for things done once across replicas (`take_mark`). Both backends implement it in a mixin
(store/loop_sqlite.py, store/loop_postgres.py) on tables of their own (migrations sqlite-0005,
postgres-0004), so the Store's own tables keep their meaning.

The decision of what an event means stays pure: the caller passes `react`, called inside the
transaction with what the store found (`Found`), returning the new state and the actions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from escalator.core.webhooks import IncidentState, WebhookEvent

if TYPE_CHECKING:
    from escalator.core.actions import PlannedAction
    from escalator.store import Store

Outcome = Literal["duplicate", "unknown", "recorded"]
_TIMES = ("status_at", "acknowledged_at", "resolved_at")


@dataclass(frozen=True)
class Found:
    """The mail whose page opened the incident: its page payload (the planner's common facts),
    where its reply went (None: not answered, RFC 3834), and the state known so far."""

    mail_id: int
    incident_key: str
    page_payload: dict[str, Any]
    reply_to: str | None
    state: IncidentState | None


React = Callable[[Found], tuple[IncidentState, "tuple[PlannedAction, ...]"]]


class LoopStore(Protocol):
    """The store's loop tables (see the module docstring)."""

    async def record_webhook(self, event: WebhookEvent, now: datetime, react: React) -> Outcome:
        """Record the event once; for an incident a page of ours opened, write its new state
        and actions (from `react`) in the same transaction."""
        ...

    async def incident_states(self, mail_ids: list[int]) -> dict[int, IncidentState]: ...

    async def take_mark(self, mark: str, now: datetime) -> bool:
        """True for the one caller that set `mark` first; False when it was already set."""
        ...

    async def drop_mark(self, mark: str) -> None: ...

    async def acknowledge(self, mail_id: int, who: str, now: datetime) -> bool:
        """A person on the review page says they are on it: the mark `seen:<id>` and an audit
        row "acknowledged", together; False (nothing written) when someone already did."""
        ...

    async def split(
        self, mail_id: int, who: str, now: datetime, planned: tuple[PlannedAction, ...]
    ) -> bool:
        """Support splits a wrongly joined mail: the mark `split:<id>`, an audit row "split" and
        the mail's own actions, together; False (nothing written) when it was already split."""
        ...

    async def seen(self, mail_ids: list[int]) -> set[int]:
        """Which of these mails a person acknowledged on the review page."""
        ...

    async def first_result(self, kind: str, dedup_key: str) -> dict[str, Any] | None:
        """The result of the first SENT action of `kind` under `dedup_key` (a Slack post)."""
        ...


def loop_store(store: Store) -> LoopStore:
    """The Store seen as a LoopStore (both backends mix it in)."""
    if not hasattr(store, "record_webhook"):
        raise TypeError(f"{type(store).__name__} has no loop tables")
    return cast("LoopStore", store)


def state_json(state: IncidentState) -> dict[str, Any]:
    data = asdict(state)
    for name in _TIMES:
        data[name] = None if data[name] is None else data[name].isoformat()
    data["assignees"] = list(state.assignees)
    return data


def state_from(data: str | dict[str, Any]) -> IncidentState:
    values = dict(json.loads(data) if isinstance(data, str) else data)
    for name in _TIMES:
        values[name] = None if values.get(name) is None else datetime.fromisoformat(values[name])
    values["assignees"] = tuple(values.get("assignees") or ())
    return IncidentState(**values)


def reply_to(payload: dict[str, Any] | None, state: str | None) -> str | None:
    """Where the reporter's reply went; None when it was refused (RFC 3834) or never planned."""
    if payload is None or state == "skipped":
        return None
    to = payload.get("to")
    return str(to) if to else None
