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
