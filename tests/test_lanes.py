"""Decide lanes (escalator/decider/lanes.py): real child processes on a pipe the loop reads."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from escalator.decider.lanes import LaneDied, ProcessLane, ThreadLane


async def test_a_process_lane_answers_values_and_errors_in_order() -> None:
    lane = ProcessLane()
    try:
        assert await lane.call(abs, -5) == 5
        with pytest.raises(ValueError):
            await lane.call(int, "not a number")
        assert await lane.call(len, b"x" * 200_000) == 200_000  # larger than the pipe holds
        assert await lane.call(os.getpid) != os.getpid()
    finally:
        lane.close()


async def test_concurrent_large_and_small_requests_never_interleave_on_the_pipe() -> None:
    """Many calls at once, requests larger and smaller than the pipe holds: each is written whole
    (a small one written while a large one is half-written corrupted the child's reads)."""
    lane = ProcessLane()
    sizes = [300_000 if i % 3 == 0 else 10 + i for i in range(30)]
    try:
        got = await asyncio.gather(*(lane.call(len, b"y" * size) for size in sizes))
        assert got == sizes
        assert await lane.call(abs, -9) == 9  # and the lane is still whole
    finally:
        lane.close()


async def test_call_now_writes_the_request_before_it_returns() -> None:
    """The end-of-DATA reading (issue 12): on an idle lane the request is in the pipe when
    call_now returns, so the child runs it while this loop is blocked (as the store's commit
    blocks it); a busy lane says None (the caller uses `call`)."""
    lane = ProcessLane()
    try:
        await lane.call(abs, -1)  # the child is up
        answer = lane.call_now(time.perf_counter)
        assert answer is not None
        assert lane.call_now(time.perf_counter) is None  # busy until answered
        time.sleep(0.5)  # blocking the loop on purpose: nothing may turn it
        blocked_until = time.perf_counter()  # CLOCK_MONOTONIC: the child's clock too
        assert await answer < blocked_until
        assert lane.idle()
    finally:
        lane.close()


async def test_small_calls_beside_a_running_one_are_answered_in_order() -> None:
    """A call made while another runs is written inline when it fits beside what may still be
    unread (PIPE_BUDGET); many such calls, small and large, still come back each to its own."""
    lane = ProcessLane()
    try:
        slow = asyncio.ensure_future(lane.call(time.sleep, 0.2))
        await asyncio.sleep(0.05)
        sizes = [20_000, 30, 30_000, 200_000, 40, 25_000]
        got = await asyncio.gather(*(lane.call(len, b"z" * size) for size in sizes))
        assert got == sizes
        await slow
    finally:
        lane.close()


async def test_an_answer_whose_caller_gave_up_goes_to_no_one_else() -> None:
    """A cancelled call's late answer is dropped; the next call gets its own."""
    lane = ProcessLane()
    try:
        slow = asyncio.ensure_future(lane.call(time.sleep, 0.5))
        await asyncio.sleep(0)  # the request is written in the call's first step
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await lane.call(abs, -7) == 7
    finally:
        lane.close()


async def test_a_child_that_dies_fails_its_call_and_the_lane() -> None:
    lane = ProcessLane()
    try:
        with pytest.raises(LaneDied):
            await lane.call(os._exit, 3)
        with pytest.raises(LaneDied):
            await lane.call(abs, -1)
    finally:
        lane.close()
    fresh = ProcessLane()
    try:
        assert await fresh.call(abs, -2) == 2
    finally:
        fresh.close()


async def test_a_child_whose_start_fails_is_a_dead_lane() -> None:
    lane = ProcessLane(os._exit, (1,))  # the initialiser exits: as a policy that cannot load
    try:
        with pytest.raises(LaneDied):
            await lane.call(abs, -1)
    finally:
        lane.close()


async def test_a_thread_lane_runs_calls_here() -> None:
    lane = ThreadLane()
    try:
        assert await lane.call(os.getpid) == os.getpid()
    finally:
        lane.close()
