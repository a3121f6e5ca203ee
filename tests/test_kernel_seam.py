"""The asyncio seam: one real asyncio loop on its own thread, crossed from trio and from threads."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import trio

from edge_runtime import AsyncioSeam


@pytest.fixture
def seam():
    with AsyncioSeam() as seam:
        yield seam


async def on_loop(value: int) -> tuple[int, str]:
    await asyncio.sleep(0.001)
    asyncio.get_running_loop()  # raises unless we really are inside asyncio
    return value * 2, threading.current_thread().name


async def fail() -> None:
    await asyncio.sleep(0)
    raise KeyError("from asyncio")


async def test_run_from_trio_returns_the_value_from_the_loop_thread(seam: AsyncioSeam) -> None:
    assert await seam.run(on_loop, 21) == (42, "asyncio-seam")


async def test_run_propagates_exceptions(seam: AsyncioSeam) -> None:
    with pytest.raises(KeyError, match="from asyncio"):
        await seam.run(fail)


async def test_run_does_not_block_trio(seam: AsyncioSeam) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await seam.run(asyncio.sleep, 0.2)
        nursery.cancel_scope.cancel()
    assert ticks >= 4  # ~20 possible; a blocked loop would give 0 or 1


async def test_cancelling_the_trio_task_cancels_the_asyncio_task(seam: AsyncioSeam) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with trio.move_on_after(0.05) as scope:
        await seam.run(forever)
    assert scope.cancelled_caught
    assert await trio.to_thread.run_sync(cancelled.wait, 2.0)


async def test_concurrent_crossings(seam: AsyncioSeam) -> None:
    results: list[tuple[int, str]] = []

    async def one(i: int) -> None:
        results.append(await seam.run(on_loop, i))

    async with trio.open_nursery() as nursery:
        for i in range(100):
            nursery.start_soon(one, i)
    assert sorted(r[0] for r in results) == [2 * i for i in range(100)]


def test_run_blocking_from_threads(seam: AsyncioSeam) -> None:
    results: list[int] = []

    def worker(i: int) -> None:
        results.append(seam.run_blocking(on_loop, i)[0])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [2 * i for i in range(8)]
    with pytest.raises(KeyError):
        seam.run_blocking(fail)


def test_run_blocking_timeout_cancels_the_task(seam: AsyncioSeam) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    begun = time.monotonic()
    with pytest.raises(TimeoutError):
        seam.run_blocking(slow, timeout=0.05)
    assert time.monotonic() - begun < 1.0
    assert cancelled.wait(2.0)


def test_run_blocking_on_the_loop_thread_is_refused(seam: AsyncioSeam) -> None:
    async def reenter() -> None:
        seam.run_blocking(asyncio.sleep, 0)

    with pytest.raises(RuntimeError, match="deadlock"):
        seam.run_blocking(reenter, timeout=2.0)


def test_stop_cancels_leftover_tasks_and_closes_the_loop() -> None:
    running, cancelled = threading.Event(), threading.Event()

    async def leftover() -> None:
        running.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    seam = AsyncioSeam()
    seam.start()
    seam.loop.call_soon_threadsafe(lambda: seam.loop.create_task(leftover()))
    assert running.wait(5)
    seam.stop()
    assert cancelled.is_set()
    assert seam.loop.is_closed()
    with pytest.raises(RuntimeError, match="not running"):
        seam.run_blocking(asyncio.sleep, 0)
