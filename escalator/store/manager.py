"""The Store, written once: every method of the Store protocol (and the LoopStore) over a
Connector, the way procrastinate's managers sit over a connector per driver.

The methods live with their area (store/mails.py, review.py, actions.py, loop.py), each a job
of store/db.py run by the connector as a write (group-committed, with the news it tells other
replicas) or a read. SQLiteStore and PostgresStore are this class over their connector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from escalator.store.actions import OutboxTables
from escalator.store.db import Connector, Job, News
from escalator.store.loop import LoopTables
from escalator.store.mails import MailTables
from escalator.store.review import ReviewTables

T = TypeVar("T")


class StoreManager(MailTables, ReviewTables, OutboxTables, LoopTables):
    """The Store protocol (store/__init__.py) and the LoopStore (store/loop.py) on a Connector."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def open(self) -> None:
        await self._connector.open()

    async def close(self) -> None:
        await self._connector.close()

    def subscribe(self, on_mail: Callable[[], None], on_actions: Callable[[], None]) -> None:
        self._connector.subscribe(on_mail, on_actions)

    async def _write(self, job: Job[T], news: News | None = None) -> T:
        return await self._connector.write(job, news)

    async def _read(self, job: Job[T]) -> T:
        return await self._connector.read(job)
