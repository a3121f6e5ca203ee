"""The one place asyncio lives in a trio process.

Some libraries (nats-py, asyncpg) only speak asyncio. Rather than mixing loops, each process
runs one asyncio loop on one daemon thread and crosses into it through this narrow seam:
trio tasks `await seam.run(fn, ...)`, actor threads call `seam.run_blocking(fn, ...)`.
A crossing costs two thread wake-ups, so cross per batch or per request, never per row.
The call runs in its caller's context variables (a copy, as a trio or asyncio task gets its
parent's): what the caller bound (the fields its log lines carry, its trace) is bound there too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import trio

from edge_runtime._bridge import call_soon

T = TypeVar("T")


async def _call(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], context: contextvars.Context) -> T:
    for variable, value in context.items():  # into this task's own context: the caller's is left as it is
        variable.set(value)
    # fn itself is called on the loop thread: some asyncio APIs do loop work when called.
    return await fn(*args)


class AsyncioSeam:
    """One asyncio event loop on one dedicated daemon thread. Start once, stop once."""

    loop: asyncio.AbstractEventLoop

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> AsyncioSeam:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the loop's thread; returns once the loop is running."""
        running = threading.Event()
        self.loop.call_soon(running.set)
        self._thread = threading.Thread(target=self._main, name="asyncio-seam", daemon=True)
        self._thread.start()
        running.wait()

    def stop(self) -> None:
        """Cancel what is still running on the loop, let it unwind, close the loop."""
        if self._thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self._thread = None

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From trio: run `fn(*args)` on the loop and await its result; only this task waits.

        Cancelling the trio task cancels the asyncio task (and does not wait for it to unwind).
        """
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        future = self._submit(fn, args)
        future.add_done_callback(lambda _: call_soon(token, done.set))
        try:
            await done.wait()
        except trio.Cancelled:
            future.cancel()
            raise
        return future.result()

    def run_blocking(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None) -> T:
        """From any thread but the loop's (e.g. an actor): run `fn(*args)` on the loop and block for it.

        On timeout the asyncio task is cancelled and TimeoutError raised.
        """
        if self._thread is threading.current_thread():
            raise RuntimeError("run_blocking called on the seam's own loop thread: it would deadlock")
        future = self._submit(fn, args)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _submit(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> concurrent.futures.Future[T]:
        if self._thread is None:
            raise RuntimeError("AsyncioSeam is not running: call start() first")
        return asyncio.run_coroutine_threadsafe(_call(fn, args, contextvars.copy_context()), self.loop)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            # Unwind like asyncio.run(): cancel leftovers, let them handle it, then close.
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
