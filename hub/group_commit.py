"""Group commit: what arrives while one transaction is being written goes together in the next one.

A hub process answers each request in a task of its own (hub.responders). When each of those is its own
PostgreSQL transaction, a thousand stores reporting their health every five seconds cost two hundred commits a
second, a WAL flush and four round trips each, and the commits, not the work, fill the cores. A GroupCommit
hands the items to one writer per pool: the writer waits `linger_s` for company before each write (0: the first
item is written at once), and whatever arrives meanwhile goes in the batch, up to `most` items, at most one per key
(two reports of one store are kept in the order they came, in two writes). Each caller gets its own item's result, or the
exception its batch failed with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]


class GroupCommit(Generic[Item, Result]):
    """`write(pool, items)` keeps a batch in one transaction and returns one result per item, in their order."""

    def __init__(self, write: Callable[[asyncpg.Pool, Sequence[Item]], Awaitable[Sequence[Result]]], *,
                 most: int, key: Callable[[Item], Hashable], linger_s: float = 0.0) -> None:
        self._write, self._most, self._key, self._linger_s = write, most, key, linger_s
        self._queues: dict[int, list[_Waiting[Item, Result]]] = {}
        """Items waiting, by the id of their pool: an entry lives only while its writer task runs (which holds the
        pool), so a closed pool leaves nothing behind and a new pool never finds an old one's queue."""
        self._writers: set[asyncio.Task[None]] = set()

    async def submit(self, pool: asyncpg.Pool, item: Item) -> Result:
        """Have `item` written with whatever else arrives meanwhile; its result once its batch is committed."""
        waiting: _Waiting[Item, Result] = _Waiting(item, asyncio.get_running_loop().create_future())
        queue = self._queues.get(id(pool))
        if queue is None:
            queue = self._queues[id(pool)] = []
            writer = asyncio.create_task(self._drain(pool, queue))
            self._writers.add(writer)  # a strong reference until it ends
            writer.add_done_callback(self._writers.discard)
        queue.append(waiting)
        return await waiting.future

    def _take(self, queue: list[_Waiting[Item, Result]]) -> list[_Waiting[Item, Result]]:
        """The next batch (oldest first, one per key, at most `most`); the rest stays queued. Callers that gave up
        (their request was cancelled) are dropped."""
        batch: list[_Waiting[Item, Result]] = []
        keys: set[Hashable] = set()
        rest: list[_Waiting[Item, Result]] = []
        for waiting in queue:
            if waiting.future.done():
                continue
            key = self._key(waiting.item)
            if len(batch) < self._most and key not in keys:
                keys.add(key)
                batch.append(waiting)
            else:
                rest.append(waiting)
        queue[:] = rest
        return batch

    async def _drain(self, pool: asyncpg.Pool, queue: list[_Waiting[Item, Result]]) -> None:
        batch: list[_Waiting[Item, Result]] = []
        try:
            while True:
                if self._linger_s > 0:
                    await asyncio.sleep(self._linger_s)
                if not (batch := self._take(queue)):
                    break
                try:
                    results = await self._write(pool, [waiting.item for waiting in batch])
                except Exception as exc:
                    for waiting in batch:
                        if not waiting.future.done():
                            waiting.future.set_exception(exc)
                    continue
                for waiting, result in zip(batch, results, strict=True):
                    if not waiting.future.done():
                        waiting.future.set_result(result)
        finally:  # the queue is empty (or the loop is going away): the next item starts a new writer
            del self._queues[id(pool)]
            for waiting in [*batch, *queue]:
                if not waiting.future.done():
                    waiting.future.cancel()
