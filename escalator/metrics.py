"""Prometheus metrics: one module owns every metric's name, so alerts and code cannot drift.

The names are what deploy/k8s/base/prometheusrule.yaml alerts on. Counters are process-wide
(prometheus-client's default registry); gauges about the outbox are refreshed from the store at
scrape time by `refresh_outbox`, so every replica reports the shared truth.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from escalator.errors import StoreUnavailable
from escalator.store import OutboxSummary, Store

# `*_created` timestamps double the exposition and no alert or dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated

MAILS_RECEIVED = Counter(
    "escalator_mails_received", "Mails whose DATA was received (accepted or refused)"
)
SMTP_REPLIES = Counter(
    "escalator_smtp_replies", "Final replies to DATA and refusals at RCPT, by SMTP code", ["code"]
)
SMTP_SHED = Counter(
    "escalator_smtp_idle_shed", "Idle SMTP sessions closed to make room while at the session cap"
)
SMTP_RATE_LIMITED = Counter(
    "escalator_smtp_rate_limited",
    "Mails refused with 450 4.7.1 for going over a rate limit, by scope (sender, client)",
    ["scope"],
)
DECISIONS = Counter(
    "escalator_decisions", "Decisions by verdict and primary reason", ["verdict", "reason"]
)
ACTIONS = Counter(
    "escalator_actions", "Finished outbox actions by kind and outcome", ["kind", "outcome"]
)
ACTION_RETRIES = Counter("escalator_action_retries", "Action attempts to be retried", ["kind"])
STORM_JOINED = Counter(
    "escalator_storm_joined", "Escalations that joined an open storm's first mail (not paged)"
)
PAGERDUTY_THROTTLED = Counter(
    "escalator_pagerduty_throttled", "Pages held back by PagerDuty's rate limit (ours or a 429)"
)
PAGERDUTY_POLLS = Counter(
    "escalator_pagerduty_polls",
    "PagerDuty REST API polls of open incidents (changed, unchanged, failed)",
    ["outcome"],
)
STORE_ERRORS = Counter("escalator_store_errors", "Store operations that failed")
# Gauges: with several worker processes, the outbox ones (set at scrape time from the store)
# read as the most recently set value and the probe's timestamp as the highest, never summed.
OUTBOX_PENDING = Gauge(
    "escalator_outbox_pending",
    "Actions waiting in the outbox",
    ["kind"],
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST = Gauge(
    "escalator_outbox_oldest_pending_seconds",
    "Age of the oldest action due and not done, from its first due time (retries do not reset it)",
    multiprocess_mode="mostrecent",
)
DEFERRED_PAGES = Gauge(
    "escalator_deferred_pages_waiting",
    "Pages scheduled for a later time (not retry-waiting ones)",
    multiprocess_mode="mostrecent",
)
PAGES_FAILING = Gauge(
    "escalator_pages_failing_seconds",
    "Since when (in seconds) the oldest undelivered page that has failed was first due; 0 if none",
    multiprocess_mode="mostrecent",
)
LAST_PROBE = Gauge(
    "escalator_last_probe_success_timestamp_seconds",
    "When a probe mail was last decided",
    multiprocess_mode="max",
)
ACCEPT_SECONDS = Histogram(
    "escalator_accept_seconds",
    "End of DATA to the 250 reply (durable commit included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ACCEPT_TO_PAGE_SECONDS = Histogram(
    "escalator_accept_to_page_seconds",
    "Receipt of a mail to PagerDuty accepting its page (deferred pages excluded)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)

CONTRACT_KINDS = ("page", "alarm", "ack", "reply")


def record_decision(verdict: str, reasons: Iterable[str]) -> None:
    primary = next(iter(reasons), "none")
    DECISIONS.labels(verdict=verdict, reason=primary).inc()


def refresh_outbox(summary: OutboxSummary, now: datetime) -> None:
    """Set the outbox gauges from one store snapshot; kinds with nothing pending read 0."""
    for kind in {*CONTRACT_KINDS, *summary.pending_by_kind}:
        OUTBOX_PENDING.labels(kind=kind).set(summary.pending_by_kind.get(kind, 0))
    OUTBOX_OLDEST.set(seconds_since(summary.oldest_due, now))
    DEFERRED_PAGES.set(summary.deferred_pages)
    PAGES_FAILING.set(seconds_since(summary.failing_pages_since, now))


def seconds_since(moment: datetime | None, now: datetime) -> float:
    """Whole seconds from `moment` to `now`; 0 when there is no moment (or it is ahead)."""
    return float(max(0, int((now - moment).total_seconds()))) if moment is not None else 0.0


async def exposition(store: Store, now: datetime) -> bytes:
    """The registry in Prometheus text format, outbox gauges fresh from the store. A store that
    does not answer leaves the gauges as last read and counts a store error; counters still go."""
    try:
        summary = await store.outbox_summary(now)
    except StoreUnavailable:
        STORE_ERRORS.inc()
    else:
        refresh_outbox(summary, now)
    return generate_latest(registry())


def registry() -> CollectorRegistry:
    """What a scrape reads: this process's registry, or with several worker processes
    (escalator/supervisor.py) every worker's values from prometheus-client's multiprocess
    directory, summed (gauges as their modes above say)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    collected = CollectorRegistry()
    MultiProcessCollector(collected)  # type: ignore[no-untyped-call]  # unannotated in the library
    return collected


def route(store: Store) -> web.RouteDef:
    """GET /metrics for the web app (web.build_app's extra_routes)."""

    async def scrape(request: web.Request) -> web.Response:
        body = await exposition(store, datetime.now(UTC))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return web.get("/metrics", scrape)
