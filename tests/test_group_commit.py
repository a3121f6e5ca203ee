"""hub.group_commit: what arrives during a write (or its linger) goes in the next one, each caller gets its own item's result,
two items of one key never share a batch and keep their order, and a failed batch fails only its own callers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

import asyncpg
import pytest

from hub.group_commit import GroupCommit

POOL = cast(asyncpg.Pool, object())
"""The writer only passes the pool on (and queues by it): any object stands for one here."""


class Recorder:
    """A write that takes a moment, records each batch, and answers each item doubled (or fails on 'boom')."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []

    async def write(self, pool: asyncpg.Pool, items: Sequence[tuple[str, int]]) -> list[int]:
        assert pool is POOL
        self.batches.append(list(items))
        await asyncio.sleep(0.05)
        if any(key == "boom" for key, _ in items):
            raise RuntimeError("the batch failed")
        return [value * 2 for _, value in items]


def _commit(recorder: Recorder, most: int = 100) -> GroupCommit[tuple[str, int], int]:
    return GroupCommit(recorder.write, most=most, key=lambda item: item[0])


def test_the_first_item_is_written_at_once_and_what_arrives_meanwhile_goes_in_the_next_batch() -> None:
    recorder = Recorder()
    commit = _commit(recorder)

    async def run() -> list[int]:
        first = asyncio.create_task(commit.submit(POOL, ("a", 1)))
        await asyncio.sleep(0.01)  # the first write is under way
        rest = [asyncio.create_task(commit.submit(POOL, (f"s{n}", n))) for n in range(30)]
        return [await first, *[await task for task in rest]]
    results = asyncio.run(run())
    assert results == [2, *[n * 2 for n in range(30)]]  # each caller its own item's result
    assert [len(batch) for batch in recorder.batches] == [1, 30]
    assert not commit._queues, "a finished writer left its queue behind"


def test_one_key_never_shares_a_batch_and_keeps_its_order_and_most_caps_a_batch() -> None:
    recorder = Recorder()
    commit = _commit(recorder, most=3)

    async def run() -> list[int]:
        items = [("a", 1), ("a", 2), ("b", 3), ("c", 4), ("d", 5), ("a", 6)]
        return list(await asyncio.gather(*(commit.submit(POOL, item) for item in items)))
    assert asyncio.run(run()) == [2, 4, 6, 8, 10, 12]
    assert recorder.batches == [[("a", 1), ("b", 3), ("c", 4)], [("a", 2), ("d", 5)], [("a", 6)]]


def test_a_failed_batch_fails_its_own_callers_only_and_the_next_batch_is_still_written() -> None:
    recorder = Recorder()
    commit = _commit(recorder)

    async def run() -> tuple[list[int | BaseException], list[int]]:
        doomed = asyncio.gather(commit.submit(POOL, ("boom", 1)), commit.submit(POOL, ("x", 2)),
                                return_exceptions=True)
        await asyncio.sleep(0.01)
        later = asyncio.gather(commit.submit(POOL, ("y", 3)), commit.submit(POOL, ("z", 4)))
        return list(await doomed), list(await later)
    failed, written = asyncio.run(run())
    assert [str(result) for result in failed] == ["the batch failed"] * 2
    assert written == [6, 8]


def test_a_caller_that_gives_up_is_left_out_of_the_next_batch() -> None:
    recorder = Recorder()
    commit = _commit(recorder)

    async def run() -> int:
        first = asyncio.create_task(commit.submit(POOL, ("a", 1)))
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(commit.submit(POOL, ("gone", 9)))
        kept = asyncio.create_task(commit.submit(POOL, ("b", 2)))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        await first
        return await kept
    assert asyncio.run(run()) == 4
    assert recorder.batches == [[("a", 1)], [("b", 2)]]


def test_a_linger_gathers_items_that_trickle_in_into_one_write() -> None:
    recorder = Recorder()
    commit: GroupCommit[tuple[str, int], int] = GroupCommit(recorder.write, most=100, key=lambda item: item[0],
                                                            linger_s=0.2)

    async def run() -> list[int]:
        tasks = []
        for n in range(5):  # one every 20 ms: without the linger the first would be written alone
            tasks.append(asyncio.create_task(commit.submit(POOL, (f"s{n}", n))))
            await asyncio.sleep(0.02)
        return [await task for task in tasks]
    assert asyncio.run(run()) == [0, 2, 4, 6, 8]
    assert [len(batch) for batch in recorder.batches] == [5]
