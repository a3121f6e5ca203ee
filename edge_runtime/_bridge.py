"""Waking trio from other threads (actor threads, the asyncio thread, the timer thread).

Every crossing into trio goes through `TrioToken.run_sync_soon`, the one thread-safe entry
into a trio run: it queues a callback and wakes the loop through its wakeup fd, costing no
thread and no polling. A run that has already finished just drops the wake-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from edge_runtime._future import CallbackFuture


def call_soon(token: trio.lowlevel.TrioToken, fn: Callable[..., object], *args: Any) -> None:
    """Run `fn(*args)` on the trio thread soon; a no-op once that trio run has ended."""
    try:
        token.run_sync_soon(fn, *args)
    except trio.RunFinishedError:
        pass


async def wait_future(future: CallbackFuture[Any]) -> None:
    """Sleep this trio task until `future` is done, without blocking the trio thread."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    future.add_done_callback(lambda: call_soon(token, done.set))
    await done.wait()
