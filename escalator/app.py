"""The composition root: builds the store, SMTP server and workers from Settings, runs them.

Everything runs in one asyncio loop: the SMTP server (accepts, commits, answers 250), the
decide worker (woken after each accept), and, once their modules exist, the dispatch worker
(escalator/dispatch.py) and the web server (escalator/web.py). SIGTERM or SIGINT: stop
listening, let sessions in flight finish up to SHUTDOWN_DEADLINE, decide what was accepted,
flush the store, return (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from escalator.core.decide import Policy
from escalator.errors import EscalatorError
from escalator.policy import load_policy
from escalator.processor import Processor
from escalator.settings import Settings
from escalator.smtp import SMTPService, start_smtp
from escalator.store import Store, open_store

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE = 25.0  # Kubernetes gives 30 s between SIGTERM and SIGKILL by default

# aiosmtpd logs every command (with addresses) at INFO: too costly and too chatty for production.
logging.getLogger("mail.log").setLevel(logging.WARNING)


def optional_module(name: str) -> Any | None:
    """A sibling module that another part of the project provides, if it is installed yet."""
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


class Service:
    """The running service. `start()` then `stop()`; or `serve()` until a signal arrives."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: Policy | None = None,
        store: Store | None = None,
        with_dispatch_and_web: bool = True,
    ) -> None:
        self.settings = settings
        self.policy = policy or load_policy(settings)
        self.store = store or open_store(settings)
        # A policy given by the caller may not be rebuildable from settings: decide it in-thread.
        isolate = settings if policy is None else None
        self.processor = Processor(self.store, self.policy, worker_settings=isolate)
        self.smtp: SMTPService | None = None
        self._with_optional = with_dispatch_and_web
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
        await self.store.open()
        try:
            self.smtp = await start_smtp(self.settings, self.store, self.processor.wake)
        except BaseException:
            await self.store.close()
            raise
        self._spawn("decide", self.processor.run())
        if self._with_optional:
            self._start_optional_workers()
        host, port = self.smtp.address
        log.info("escalator listening for SMTP on %s:%d", host, port)

    def _start_optional_workers(self) -> None:
        """HOOK for the dispatch worker and the web server, started once their modules land."""
        dispatch = optional_module("escalator.dispatch")
        if dispatch is not None:
            dispatcher = dispatch.Dispatcher(self.store, self.settings)
            self._spawn("dispatch", dispatcher.run())
        web = optional_module("escalator.web")
        if web is not None and hasattr(web, "serve"):
            self._spawn("web", web.serve(self.settings, self.store))

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
        if self.smtp is not None:
            cut = await self.smtp.stop(deadline)
            if cut:
                log.warning("shutdown deadline passed: %d SMTP sessions cut off", cut)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if clock() < give_up:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.processor.burst(), give_up - clock())
        self.processor.close()
        await self.store.close()
        log.info("escalator stopped")


async def serve(settings: Settings, *, on_started: Callable[[Service], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT (or a worker dies), then shut down cleanly."""
    service = Service(settings)
    await service.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.request_stop)
    if on_started is not None:
        on_started(service)
    try:
        await service.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await service.stop()
    if service.failure is not None:
        raise EscalatorError(f"a worker stopped: {service.failure!r}") from service.failure
