"""Both cores (issue 12): `escalator serve` with ESCALATOR_WORKERS > 1 supervises processes.

The supervisor binds the SMTP socket once, then spawns ESCALATOR_WORKERS acceptor processes
(escalator/acceptor.py) that all accept on that one inherited socket (the kernel gives each
connection to whichever acceptor takes it first, so an idle one takes the next), speak SMTP
and commit each mail to the store themselves before its 250 (on SQLite under a write lock that
every process takes, store/sqlite.py: writers queue in the kernel, not in SQLite's sleep-and-poll,
and each process groups its own commits); and ONE back office: `app.Service` without a
listener, rung by the acceptors on a UNIX socket after each new mail (escalator/handoff.py),
which decides them (its decide lanes), dispatches, serves the review page and /metrics, runs
the on-call loop and retention. So the SMTP work and the accepts' commits spread over the cores
and never wait on the back office's loop, while the outbox keeps one dispatcher and PagerDuty's
budget one owner; session caps and rate limits are shared out among the acceptors (`share`).
Metrics: prometheus-client's multiprocess mode, in the supervisor's private folder (gauge
modes in escalator/metrics.py).

Stopping is the supervisor's alone: the children ignore SIGTERM and SIGINT (Ctrl-C and a
process-group kill reach them too) and stop when told so on their control pipe, or when that
pipe breaks because the supervisor died. On SIGTERM or SIGINT the acceptors stop first (their
sessions finish, handing over what they accept), then the back office (started actions
recorded, what came in decided); exit 0 when all stopped cleanly. A child that dies after it
started (a crash, an OOM kill) is started again, at once or, if it keeps dying young, after a
growing pause: the back office decides at start what its predecessor left, claims free
themselves by lease, and an acceptor's sessions cut short were never answered 250. A child that
fails while starting stops the whole service with its exit status (a configuration error is
reported, not retried forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from escalator.errors import ConfigError
from escalator.settings import Settings, split_host_port

log = logging.getLogger(__name__)

BACKLOG = 512  # connections queued for all acceptors together
STOP_DEADLINE = 30.0  # a child's own shutdown deadline (25 s) and some, before SIGKILL
YOUNG = 10.0  # a child dying sooner than this after its start is restarted after a pause
MAX_PAUSE = 30.0
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
DESK = "desk.sock"
OFFICE = "office"
ACCEPTOR = "acceptor"
READY, STOP = "ready", "stop"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

Run = Callable[[Callable[[Any], None]], Coroutine[Any, Any, None]]


def share(settings: Settings, count: int) -> Settings:
    """One acceptor's settings: the per-process SMTP limits divided among `count` acceptors, so
    together they keep what the operator set (the session cap, the rate limits). The per-client
    session cap stays whole: the kernel does not spread one client's connections evenly, and a
    relay's usual 20 must still fit in one acceptor."""

    def part(total: int) -> int:
        return max(1, math.ceil(total / count)) if total else 0

    limits = ("max_connections", "sender_rate_limit", "client_rate_limit")
    return settings.model_copy(update={name: part(getattr(settings, name)) for name in limits})


def listen(settings: Settings) -> socket.socket:
    """The SMTP listening socket every acceptor takes connections from."""
    host, port = split_host_port(settings.smtp_listen, "ESCALATOR_SMTP_LISTEN")
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return socket.create_server(address, family=family, backlog=BACKLOG)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.smtp_listen}: {exc}") from None


def open_desk(folder: str) -> socket.socket:
    """The UNIX socket the back office is rung on, in the supervisor's private folder."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.path.join(folder, DESK))
    sock.listen(BACKLOG)
    return sock


# -- in a child process ---------------------------------------------------------------------


def office_main(settings: Settings, desk: socket.socket, control: Connection) -> None:
    """The back office: `app.Service` deciding what the acceptors stored (rung on `desk`)."""
    from escalator import app

    _child(
        OFFICE,
        settings,
        control,
        lambda started: app.serve(settings, on_started=started, desk=desk),
    )


def acceptor_main(
    index: int, settings: Settings, sock: socket.socket, desk: str, control: Connection
) -> None:
    """An acceptor: SMTP on the shared socket, each mail stored, the back office rung at `desk`."""
    from escalator import acceptor

    name = f"{ACCEPTOR}-{index}"
    _child(name, settings, control, lambda started: acceptor.serve(settings, sock, desk, started))


def _child(name: str, settings: Settings, control: Connection, run: Run) -> None:
    """Log as `name`; run until the supervisor says stop (or is gone); exit as the CLI does."""
    from escalator.cli import reported

    _deaf_to_signals()
    _log_as(name, settings)

    def started(service: Any) -> None:
        control.send(READY)
        _obey(control, service.request_stop, asyncio.get_running_loop())

    sys.exit(reported(lambda: _ran(run(started))))


def _ran(work: Coroutine[Any, Any, None]) -> int:
    asyncio.run(work)
    return 0


def _deaf_to_signals() -> None:
    """SIGTERM and SIGINT ignored, then let through (blocked since its start: see _start)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _log_as(name: str, settings: Settings) -> None:
    from escalator.logs import configure_logging

    configure_logging(settings.log_format)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Tag(name))


def _obey(control: Connection, stop: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
    """Stop when the supervisor says so, or when its end of the pipe closes (it died)."""

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            while control.recv() != STOP:
                pass
        with contextlib.suppress(RuntimeError):  # the loop closed already: we are stopping
            loop.call_soon_threadsafe(stop)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


class _Tag(logging.Filter):
    """Every log record says which process wrote it (`process_role` in the JSON lines)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.process_role = self.role
        return True


# -- the supervisor ---------------------------------------------------------------------------


@dataclass
class _Slot:
    """One place (the back office, or acceptor N) and the process currently in it."""

    role: str
    index: int = 0
    process: BaseProcess | None = None
    control: Connection | None = None
    started: float = 0.0
    ready: bool = False
    young_deaths: int = 0
    restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.exitcode is None

    def note_ready(self) -> None:
        """Read what the child said: "ready" once it serves."""
        with contextlib.suppress(EOFError, OSError):
            if self.control is not None and self.control.poll():
                self.ready = self.ready or self.control.recv() == READY

    def tell_stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.control is not None:
                self.control.send(STOP)


class Supervisor:
    """Runs the back office and `count` acceptors: starts, restarts and stops them."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self._context = multiprocessing.get_context("spawn")  # never fork a threaded parent
        self._office = _Slot(OFFICE)
        self._acceptors = [_Slot(ACCEPTOR, index) for index in range(count)]
        self._folder = ""  # private (0700): the desk socket and the metrics directory
        self._sockets: dict[str, socket.socket] = {}
        self._signals = socket.socketpair()
        self._stopping = False

    @property
    def _slots(self) -> list[_Slot]:
        return [self._office, *self._acceptors]

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit status of the whole service."""
        self._sockets["smtp"] = listen(self.settings)
        self._folder = tempfile.mkdtemp(prefix="escalator-")
        self._sockets["desk"] = open_desk(self._folder)
        os.environ[METRICS_ENV] = os.path.join(self._folder, "metrics")
        os.mkdir(os.environ[METRICS_ENV])
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        try:
            return self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for sock in self._sockets.values():
                sock.close()
            shutil.rmtree(self._folder, ignore_errors=True)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._signals[1].send(b"x")

    def _supervise(self) -> int:
        for slot in self._slots:
            self._start(slot)
        failed = self._wait_ready()
        if failed is None:
            log.info("escalator serving with %d acceptor processes and a back office", self.count)
            while not self._stopping:
                self._tend()
        return self._stop_all(failed)

    def _start(self, slot: _Slot) -> None:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=office_main if slot.role == OFFICE else acceptor_main,
            args=self._arguments(slot, theirs),
            name=f"escalator-{slot.role}-{slot.index}",
        )
        # Blocked across the spawn, so the child is born deaf to SIGTERM and SIGINT (a group
        # kill while it starts must not kill it: stopping is the supervisor's); ours wait.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        theirs.close()
        log.info("%s %d started (pid %d)", slot.role, slot.index, process.pid or 0)
        slot.process, slot.control, slot.started = process, ours, time.monotonic()
        slot.ready, slot.restart_at = False, None

    def _arguments(self, slot: _Slot, control: Connection) -> tuple[Any, ...]:
        if slot.role == OFFICE:
            return (self.settings, self._sockets["desk"], control)
        desk = os.path.join(self._folder, DESK)
        return (slot.index, share(self.settings, self.count), self._sockets["smtp"], desk, control)

    def _wait_ready(self) -> int | None:
        """Until every child serves: None; or the exit status of one that failed to start."""
        while not self._stopping and not all(slot.ready for slot in self._slots):
            for slot in self._events(None):
                slot.note_ready()
                if not slot.alive:
                    return self._exit_code(slot)
        return None

    def _tend(self) -> None:
        """One round: note readiness, restart the dead, start the ones whose pause is over."""
        for slot in self._events(self._next_restart()):
            slot.note_ready()
            if not slot.alive:
                self._died(slot)
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is not None and slot.restart_at <= now and not self._stopping:
                self._start(slot)

    def _events(self, timeout: float | None) -> list[_Slot]:
        """Wait until a child speaks or exits, or a signal comes; the children concerned."""
        watched: dict[Any, _Slot] = {}
        for slot in self._slots:
            if slot.process is not None and slot.alive:
                watched[slot.process.sentinel] = slot
                if not slot.ready and slot.control is not None:
                    watched[slot.control] = slot
        ready = multiprocessing.connection.wait([*watched, self._signals[0]], timeout)
        if self._signals[0] in ready:
            self._signals[0].recv(64)
        return list({id(watched[r]): watched[r] for r in ready if r in watched}.values())

    def _died(self, slot: _Slot) -> None:
        """A child that had started exited on its own: start it again (paused if young)."""
        code = self._exit_code(slot)
        if self._stopping:
            return
        young = time.monotonic() - slot.started < YOUNG
        slot.young_deaths = slot.young_deaths + 1 if young else 0
        pause = min(MAX_PAUSE, 2.0**slot.young_deaths - 1)
        log.error(
            "%s %d exited with %s; starting it again in %.0f s", slot.role, slot.index, code, pause
        )
        slot.process, slot.restart_at = None, time.monotonic() + pause

    def _next_restart(self) -> float | None:
        due = [s.restart_at for s in self._slots if s.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    @staticmethod
    def _exit_code(slot: _Slot) -> int | None:
        if slot.process is None:
            return None
        slot.process.join(1.0)
        return slot.process.exitcode

    def _stop_all(self, failed: int | None) -> int:
        """Acceptors first (their sessions end, every mail handed over), then the back office."""
        codes = self._stop(self._acceptors) + self._stop([self._office])
        if failed is not None:
            return failed if failed > 0 else 1
        return 0 if all(code == 0 for code in codes) else 1

    def _stop(self, slots: list[_Slot]) -> list[int | None]:
        """Tell each to stop; past STOP_DEADLINE, SIGKILL. Their exit codes."""
        running = [slot for slot in slots if slot.alive]
        for slot in running:
            slot.tell_stop()
        give_up = time.monotonic() + STOP_DEADLINE
        for slot in running:
            assert slot.process is not None
            slot.process.join(max(0.0, give_up - time.monotonic()))
            if slot.process.is_alive():
                log.error("%s %d did not stop in time; killed", slot.role, slot.index)
                slot.process.kill()
                slot.process.join()
        return [slot.process.exitcode for slot in running if slot.process is not None]
