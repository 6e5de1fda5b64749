"""Retention: raw mails are purged after settings.raw_retention_days (default 30); decisions,
actions and the audit trail after settings.decision_retention_days (default 365).

A purged mail keeps its row (envelope, subject, decision, actions, audit) with `raw_purged_at`
set, so the review page can say when and why its text is gone. The pass is idempotent and
cheap when there is nothing to do; `run` repeats it hourly, `escalator review purge` once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from escalator.errors import TransientError
from escalator.settings import Settings
from escalator.store import Purged, Store

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 3600.0


def cutoffs(settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """(raw bytes received before this go, whole records received before this go)."""
    raw = now - timedelta(days=settings.raw_retention_days)
    records = now - timedelta(
        days=max(settings.decision_retention_days, settings.raw_retention_days)
    )
    return raw, records


async def purge_once(store: Store, settings: Settings, now: datetime | None = None) -> Purged:
    at = now or datetime.now(UTC)
    raw_before, records_before = cutoffs(settings, at)
    purged = await store.purge(raw_before, records_before, at)
    if purged.raw or purged.mails or purged.audit:
        log.info(
            "retention: %d raw bodies purged, %d old mails and %d audit rows deleted",
            purged.raw,
            purged.mails,
            purged.audit,
        )
    return purged


async def run(store: Store, settings: Settings, interval: float = INTERVAL_SECONDS) -> None:
    """Purge now and then every `interval` seconds; a store outage only delays the next pass."""
    while True:
        try:
            await purge_once(store, settings)
        except TransientError as exc:
            log.warning("retention: store unavailable, trying again later: %s", exc)
        await asyncio.sleep(interval)
