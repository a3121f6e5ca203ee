"""The process boundary: signals in, exit status out.

systemd stops a service with SIGTERM and judges it by its exit status. SIGTERM and SIGINT
cancel `main`, so an `async with supervision_tree(...)` inside it unwinds normally and stops
the actors in reverse order: a requested stop is a success (0). A tree that gave up is a
failure (1), so that `Restart=on-failure` starts the whole process afresh.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

from edge_runtime._errors import TreeFailed

logger = logging.getLogger(__name__)


def run(main: Callable[[], Awaitable[None]]) -> int:
    """Run `main` under trio until it returns or a signal cancels it; return the exit status."""
    status = 0
    try:
        trio.run(_until_signalled, main)
    except* TreeFailed as group:  # bare, or wrapped by nurseries in main
        for failure in group.exceptions:
            logger.error("exiting status=1 reason=%s cause=%r", failure, failure.__cause__)
        status = 1
    return status


async def _until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, scope)
                await main()
                scope.cancel()  # main finished on its own: stop listening


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    # Later signals stay queued in the still-open receiver: the drain is not interrupted.
    async for signum in signals:
        name = signal.Signals(signum).name
        logger.info("signal received signal=%s next=cancel-main-and-stop-in-reverse", name)
        scope.cancel()
        return
