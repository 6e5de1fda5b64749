"""Decide lanes: where the decide worker's calls run, one call at a time per lane.

A ProcessLane is one child process (spawned, never forked from the threaded parent) on a pipe
that the event loop reads itself (`add_reader`). ProcessPoolExecutor, used before, hops through
two helper threads of the parent (a queue feeder and a result manager) that each wait for the
GIL behind the loop: measured on this machine (issue 12), a no-op round trip took p50 0.42 ms,
p99 5.9 ms through the pool and p50 0.09 ms, p99 0.14 ms on a bare pipe. A decision is on every
page's path, so the hop is too.

Each request carries a sequence number; an answer nobody awaits any more (its caller was
cancelled) is dropped, so a lane never hands one mail's outcome to another. A child that dies
(a mail that crashes the parser, an OOM kill) closes its end of the pipe: every waiting call
fails with LaneDied and the lane stays broken; the caller starts a new one. A ThreadLane runs
calls in one thread of this process (no isolation; for tests and `escalator check`-like uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import pickle
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
INLINE_SEND = 32 * 1024  # larger requests are written from a thread
# Requests not yet answered may still sit unread in the pipe (a socket pair: 200 KiB or more on
# Linux); a write inline keeps what it may hold within this, so it never blocks the loop.
PIPE_BUDGET = 64 * 1024
JOIN_SECONDS = 2.0


class LaneDied(Exception):
    """The lane's child process exited (or could not start): its calls have no answer."""


class Lane(Protocol):
    async def call(self, fn: Callable[..., T], *args: Any) -> T: ...

    def call_now(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T] | None:
        """The call sent before this returns, its answer to come; None: use `call`."""
        ...

    def idle(self) -> bool:
        """No call outstanding: a new one would start at once."""
        ...

    def close(self, wait: bool = True) -> None: ...


class ThreadLane:
    """Calls in one thread of this process."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="escalator-decide")
        self._calls = 0

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        self._calls += 1
        try:
            return await asyncio.wrap_future(self._pool.submit(fn, *args))
        finally:
            self._calls -= 1

    def call_now(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T] | None:
        return None  # a thread starts at the caller's next await anyway

    def idle(self) -> bool:
        return self._calls == 0

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


class ProcessLane:
    """Calls in one child process; `initializer(*initargs)` runs there first. Made and used
    inside the running loop."""

    def __init__(
        self, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, initializer, initargs),
            name="escalator-decide",
            daemon=True,  # ended with us at exit; a SIGKILLed parent: _start_worker's watch
        )
        self._loop = asyncio.get_running_loop()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._seq = 0
        # one writer at a time: requests written whole and in order, never interleaved
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="escalator-lane-send")
        self._sending = 0  # requests handed to the sender thread and not yet written
        self._unread: dict[int, int] = {}  # sizes of requests not answered yet (maybe unread)
        self._broken = True  # until started: a lane that cannot spawn answers LaneDied
        try:
            self._process.start()
        except OSError:
            return
        finally:
            child.close()  # the child's end lives in the child only: its exit means EOF here
        self._broken = False
        self._loop.add_reader(self._conn.fileno(), self._on_readable)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._broken:
            raise LaneDied("the decide process has exited")
        self._seq += 1
        seq, answer = self._seq, self._loop.create_future()
        self._waiting[seq] = answer
        try:
            await self._send(seq, pickle.dumps((seq, fn, args), pickle.HIGHEST_PROTOCOL))
            result: T = await answer
            return result
        finally:
            self._waiting.pop(seq, None)

    def call_now(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T] | None:
        """On an idle lane, the request written before this returns, and its answer's future;
        None when it cannot be written inline (busy, too large, the child gone). A task's call
        is written at the loop's next turn, which the store's writer thread can delay by a
        millisecond holding the GIL (issue 12: the end-of-DATA reading waited 0.7 ms so)."""
        if not self.idle():
            return None
        request = pickle.dumps((self._seq + 1, fn, args), pickle.HIGHEST_PROTOCOL)
        if not self._inline(request):
            return None
        try:
            self._conn.send_bytes(request)
        except OSError:
            self._fail()
            return None
        self._seq += 1
        self._unread[self._seq] = len(request)
        seq, answer = self._seq, self._loop.create_future()
        self._waiting[seq] = answer
        answer.add_done_callback(lambda _: self._waiting.pop(seq, None))
        return answer

    def idle(self) -> bool:
        return not self._broken and not self._waiting and self._sending == 0

    def _inline(self, request: bytes) -> bool:
        """Whether `request` can be written from the loop: no write in flight, and it is small
        and, with what earlier unanswered requests may leave unread, fits PIPE_BUDGET (a decision
        asked for while its reading runs is written at once, not via the thread: issue 12)."""
        if len(request) > INLINE_SEND or self._sending:
            return False
        return sum(self._unread.values()) + len(request) <= PIPE_BUDGET

    async def _send(self, seq: int, request: bytes) -> None:
        """Write one request whole: inline when `_inline` allows, otherwise through the one
        sender thread, so a write that blocks on a full pipe never blocks the loop nor
        interleaves with another."""
        try:
            inline = self._inline(request)
            self._unread[seq] = len(request)
            if inline:
                self._conn.send_bytes(request)
            else:
                await self._send_in_thread(request)
        except OSError:
            self._fail()
            raise LaneDied("the decide process has exited") from None

    async def _send_in_thread(self, request: bytes) -> None:
        self._sending += 1
        written = self._sender.submit(self._conn.send_bytes, request)
        # counted down when the write really ends, even if our caller is cancelled meanwhile
        written.add_done_callback(lambda _: self._loop.call_soon_threadsafe(self._sent))
        await asyncio.wrap_future(written)

    def _sent(self) -> None:
        self._sending -= 1

    def _on_readable(self) -> None:
        try:
            # our own child's answer on a private pipe (what ProcessPoolExecutor unpickles too)
            seq, ok, value = pickle.loads(self._conn.recv_bytes())  # noqa: S301
        except (EOFError, OSError):
            self._fail()
            return
        self._unread.pop(seq, None)  # the child read it before it answered
        answer = self._waiting.get(seq)
        if answer is None or answer.done():
            return  # its caller gave up (cancelled): dropped
        if ok:
            answer.set_result(value)
        else:
            answer.set_exception(value)

    def _fail(self) -> None:
        if not self._broken:
            self._broken = True
            self._loop.remove_reader(self._conn.fileno())
            self._conn.close()
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(LaneDied("the decide process has exited"))

    def close(self, wait: bool = True) -> None:
        """EOF tells the child to exit; a child that does not within JOIN_SECONDS (or when not
        waiting, at once) is killed."""
        self._fail()
        self._conn.close()
        self._sender.shutdown(wait=False, cancel_futures=True)
        if self._process.pid is None:
            return  # never started
        self._process.join(JOIN_SECONDS if wait else 0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(JOIN_SECONDS)


def _serve(
    conn: multiprocessing.connection.Connection,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
) -> None:
    """The child: initialise, then answer requests in order until the parent closes the pipe."""
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            seq, fn, args = pickle.loads(conn.recv_bytes())  # noqa: S301 - the parent's request
        except (EOFError, ConnectionResetError):  # the parent closed the pipe (or died)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send_bytes(_answer(seq, fn, args))


def _answer(seq: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
    try:
        reply: tuple[int, bool, Any] = (seq, True, fn(*args))
    except Exception as exc:  # noqa: BLE001 - the caller's to judge, as a value
        reply = (seq, False, exc)
    try:
        return pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or error, said as text
        return pickle.dumps((seq, False, RuntimeError(f"unpicklable answer: {exc!r}")))
