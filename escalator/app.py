"""The composition root: builds the store, SMTP server and workers from Settings, runs them.

Everything runs in one asyncio loop: the SMTP server (accepts, commits, answers 250), the
decide worker (woken after each accept), the dispatch worker (woken once decisions with work
are recorded, so a page leaves within milliseconds of the decision) and the web server (review
page, /healthz, /readyz, /metrics). SIGTERM or SIGINT: stop listening, let sessions in flight
finish up to SHUTDOWN_DEADLINE, decide what was accepted, flush the store, return (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from escalator import memory, metrics, probe
from escalator.core.policy import Policy
from escalator.decider import dkimcheck
from escalator.decider.backfill import backfill_facts
from escalator.decider.processor import Foreseeing, PageHandoff, Processor
from escalator.errors import EscalatorError
from escalator.handoff import serve_desk
from escalator.ingress.smtp import SMTPService, start_smtp
from escalator.oncall.pdrest import PagerDutyRest
from escalator.oncall.poller import IncidentPoller
from escalator.oncall.scheduler import LoopScheduler
from escalator.outbox.dispatch import Dispatcher
from escalator.outbox.slack import Slack
from escalator.policy import load_policy
from escalator.review import onit, web, webhooks
from escalator.settings import Settings
from escalator.store import OutboxSummary, Store, open_store, retention

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE = 25.0  # Kubernetes gives 30 s between SIGTERM and SIGKILL by default

# aiosmtpd logs every command (with addresses) at INFO: too costly and too chatty for production.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class Service:
    """The running service. `start()` then `stop()`; or `serve()` until a signal arrives."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: Policy | None = None,
        store: Store | None = None,
        with_dispatch_and_web: bool = True,
        desk: socket.socket | None = None,
    ) -> None:
        """`desk`: this is the back office of acceptor processes (escalator/supervisor.py): it
        does not listen for SMTP itself; they store the mails and ring it on this listening
        UNIX socket (escalator/handoff.py) to decide them."""
        self.settings = settings
        self.policy = policy or load_policy(settings)
        self.store = store or open_store(settings)
        # A policy given by the caller may not be rebuildable from settings: decide it in-thread.
        self._isolate = settings if policy is None else None
        self.processor: Processor  # built by start(), once the store opened
        self.smtp: SMTPService | None = None
        self.dispatcher: Dispatcher | None = None
        self._with_optional = with_dispatch_and_web
        self._desk_socket = desk
        self._desk: asyncio.Server | None = None
        self._loop_slack: Slack | None = None
        self._poller: IncidentPoller | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()
        self.failure: BaseException | None = None

    @property
    def smtp_address(self) -> tuple[str, int]:
        if self.smtp is None:
            raise RuntimeError("the service is not started")
        return self.smtp.address

    async def start(self) -> None:
        """Open the store (fail fast), decide leftovers, then listen and start the workers."""
        memory.tune()  # before the first mail: message-sized buffers are unmapped when freed
        await self.store.open()
        if self._with_optional:  # made first: decisions hand it their pages (issue 12)
            self.dispatcher = Dispatcher(self.store, self.settings)
        try:
            self.processor = self._new_processor()
            await self._open_door()
        except BaseException:
            await self.store.close()
            raise
        self._spawn("decide", self.processor.run())
        if self._with_optional:
            await self._start_optional_workers()
        # Other replicas' news (PostgreSQL LISTEN): their mails to take over if they die, and
        # actions due now (a release on another replica's review page, a lease handed back).
        self.store.subscribe(self.processor.wake_soon, self._wake_dispatcher)
        if self.smtp is not None:
            host, port = self.smtp.address
            log.info("escalator listening for SMTP on %s:%d", host, port)

    async def _open_door(self) -> None:
        """SMTP, or the desk where acceptor processes say they stored a mail."""
        if self._desk_socket is None:  # each mail foreseen as it commits (issue 12)
            door = Foreseeing(self.store, self.processor)
            self.smtp = await start_smtp(self.settings, door, self.processor.wake)
        else:
            self._desk = await serve_desk(self._desk_socket, self.processor.wake)

    def _new_processor(self) -> Processor:
        return Processor(
            self.store,
            self.policy,
            worker_settings=self._isolate,
            probe_key=probe.probe_key(self.settings),  # read once: a new key needs a restart
            on_decided=self._wake_dispatcher,
            verify=dkimcheck.verifier(self.settings.verify_dkim),  # children build their own
            storm_window=storm_window(self.settings),
            join_window=join_window(self.settings),
            pages=None if self.dispatcher is None else page_handoff(self.dispatcher),
        )

    async def _start_optional_workers(self) -> None:
        """The dispatch worker, the web server and the hourly retention pass. Mails decided
        before facts were stored get theirs first, so the dispatcher renders them too."""
        await backfill_facts(self.store, self.policy.triage.trusted_list_ids)
        assert self.dispatcher is not None  # made in start()
        self._spawn("dispatch", self.dispatcher.run())
        serving = web.serve(
            self.settings,
            self.store,
            extra_routes=[metrics.route(self.store), *self._webhook_routes()],
            public_paths=frozenset({"/metrics", webhooks.PATH}),
            policy=self.policy,
            readiness=self.readiness,
            on_released=self._wake_dispatcher,
        )
        self._spawn("web", serving)
        self._tasks.append(asyncio.ensure_future(self._loop_scheduler().run()))
        self._poller = incident_poller(self.store, self.settings, self._wake_dispatcher)
        if self._poller is not None:  # not watched either: a failing poll is logged, not fatal
            self._tasks.append(asyncio.ensure_future(self._poller.run()))
        # Not a watched worker: a retention pass that stops must not stop the service.
        self._tasks.append(asyncio.ensure_future(retention.run(self.store, self.settings)))

    def _webhook_routes(self) -> list[Any]:
        """PagerDuty's webhooks (public: signed) and the page's "I'm on it" (signed in)."""
        clock = lambda: datetime.now(UTC)  # noqa: E731 - one clock for both route modules
        return [
            *webhooks.routes(
                self.store, self.settings, clock=clock, on_recorded=self._wake_dispatcher
            ),
            *onit.routes(clock, on_split=self._wake_dispatcher),
        ]

    def _loop_scheduler(self) -> LoopScheduler:
        """Handovers, unanswered alarms, chased pages, the one-hour reminder (issue 11); not a
        watched worker either: it logs a failing tick and ticks again."""
        token = self.settings.slack_bot_token
        self._loop_slack = (
            None if token is None else Slack(token.get_secret_value(), self.settings.slack_api_url)
        )
        return LoopScheduler(
            self.store,
            self.settings,
            self.policy.calendar,
            slack=self._loop_slack,
            clock=lambda: datetime.now(UTC),
            wake=self._wake_dispatcher,
        )

    def _wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def readiness(self, traffic_only: bool = False) -> tuple[bool, str]:
        """/readyz: the store answers, SMTP listens, the workers run and no action is stalled
        (due for longer than the retry horizon and nobody took it up: nobody is dispatching)
        and no page is failing.

        /readyz?scope=traffic (the Kubernetes readiness probe) leaves the outbox's troubles out
        of the verdict: when PagerDuty or Slack is down, taking the pod out of the SMTP Service
        would also stop the mails that still reach Slack or PagerDuty. It still SAYS "pages
        failing for N s" in its detail, and the alert EscalatorPagesFailing fires."""
        problems = self._smtp_problems() + self._worker_problems()
        now = datetime.now(UTC)
        try:
            summary = await self.store.outbox_summary(now)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said plainly
            return False, "; ".join([*problems, f"store: {exc.__class__.__name__}: {exc}"])
        outbox = self._outbox_problems(summary, now)
        if not traffic_only:
            problems += outbox
        detail = "; ".join(problems) or "store, SMTP, workers and outbox ok"
        if traffic_only and outbox:
            detail = f"{detail}; outbox: {'; '.join(outbox)}"
        return not problems, detail

    def _smtp_problems(self) -> list[str]:
        if self._desk is not None:  # acceptor processes listen; the supervisor restarts them
            return [] if self._desk.is_serving() else ["the acceptors' desk is closed"]
        if self.smtp is None or not self.smtp.server.is_serving():
            return ["SMTP is not listening"]
        return []

    def _worker_problems(self) -> list[str]:
        running = {task.get_name() for task in self._tasks if not task.done()}
        expected = ("decide", "dispatch", "web") if self._with_optional else ("decide",)
        return [
            f"the {name} worker is not running"
            for name in expected
            if f"escalator-{name}" not in running
        ]

    def _outbox_problems(self, summary: OutboxSummary, now: datetime) -> list[str]:
        problems = []
        failing = metrics.seconds_since(summary.failing_pages_since, now)
        if summary.failing_pages_since is not None:
            problems.append(f"pages failing for {failing:.0f} s")
        stalled = metrics.seconds_since(summary.stalled_since, now)
        if stalled > self.settings.retry_horizon_seconds:
            problems.append(f"an action has been due for {stalled:.0f} s, beyond the retry horizon")
        return problems

    def _spawn(self, name: str, work: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        task.set_name(f"escalator-{name}")
        task.add_done_callback(self._worker_ended)
        self._tasks.append(task)

    def _worker_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("worker %s stopped: %r; shutting down", task.get_name(), error)
            self.failure = error
            self._stopped.set()

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self, deadline: float = SHUTDOWN_DEADLINE) -> None:
        """Stop accepting, let sessions finish, decide what came in, flush and close the store.

        One `deadline` covers it all (the orchestrator's grace period before SIGKILL): sessions
        first; whatever time is left goes to deciding; what stays undecided is decided at the
        next start."""
        clock = asyncio.get_running_loop().time
        give_up = clock() + deadline
        if self.dispatcher is not None:
            self.dispatcher.stop()  # claims nothing more; finishes what it started
        if self.smtp is not None:
            cut = await self.smtp.stop(deadline)
            if cut:
                log.warning("shutdown deadline passed: %d SMTP sessions cut off", cut)
        if self._desk is not None:
            self._desk.close()  # the acceptors stopped first (supervisor.py)
        await self._finish_dispatch(give_up - clock())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.dispatcher is not None:
            await self.dispatcher.close()
        if self._loop_slack is not None:
            await self._loop_slack.close()
        if self._poller is not None:
            await self._poller.close()
        if clock() < give_up:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.processor.burst(), give_up - clock())
        self.processor.close()
        await self.store.close()
        log.info("escalator stopped")

    async def _finish_dispatch(self, budget: float) -> None:
        """Let the dispatcher record the actions it started and hand back the rest; past the
        budget it is cancelled, and its short leases free what it held within seconds."""
        task = next((t for t in self._tasks if t.get_name() == "escalator-dispatch"), None)
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=max(budget, 0.0))
        if not done:
            log.warning("shutdown deadline passed: in-flight actions left to their leases")


def incident_poller(
    store: Store, settings: Settings, wake: Callable[[], None]
) -> IncidentPoller | None:
    """The REST API poller for open incidents (issue 11), with ESCALATOR_PAGERDUTY_API_TOKEN."""
    token = settings.pagerduty_api_token
    if token is None:
        return None
    api = PagerDutyRest(
        token.get_secret_value(), settings.pagerduty_api_url, settings.pagerduty_ca_file
    )
    return IncidentPoller(store, settings, api, clock=lambda: datetime.now(UTC), wake=wake)


def page_handoff(dispatcher: Dispatcher) -> PageHandoff:
    """A decision's due pages go straight to the dispatcher as it commits (issue 12)."""
    return PageHandoff(dispatcher.page_now, dispatcher.page_lease)


def storm_window(settings: Settings) -> timedelta | None:
    """ESCALATOR_STORM_WINDOW_SECONDS; 0 switches storm collapse off."""
    seconds = settings.storm_window_seconds
    return timedelta(seconds=seconds) if seconds > 0 else None


def join_window(settings: Settings) -> timedelta | None:
    """ESCALATOR_JOIN_WINDOW; 0 switches joining another sender's open incident off."""
    seconds = settings.join_window
    return timedelta(seconds=seconds) if seconds > 0 else None


async def serve(
    settings: Settings,
    *,
    on_started: Callable[[Service], None] | None = None,
    desk: socket.socket | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or a worker dies), then shut down cleanly. `desk`: run as the
    back office of acceptor processes (see Service), stopped by its supervisor, not signals."""
    service = Service(settings, desk=desk)
    await service.start()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if desk is None else ()
    for signum in signals:
        loop.add_signal_handler(signum, service.request_stop)
    if on_started is not None:
        on_started(service)
    try:
        await service.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await service.stop()
    if service.failure is not None:
        raise EscalatorError(f"a worker stopped: {service.failure!r}") from service.failure
