"""The loop of a hub service that works in batches (a sweeper, a publisher, the payments' watchdogs).

A service must outlive PostgreSQL, NATS or the payment provider going away (hub.domains.Service): this loop says
so once when its step starts failing, backs off, and says so again when the step works, so that an outage is two
log lines, not one per attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from edge_runtime import Backoff

log = logging.getLogger(__name__)

RETRY = Backoff(initial=0.5, maximum=15.0)


async def repeat(what: str, step: Callable[[], Awaitable[int]], idle_s: float, full: int) -> None:
    """Run `step` for ever: again at once while it does a full batch (`full` items), after `idle_s` otherwise, and
    after a growing backoff while it fails."""
    failures = 0
    while True:
        try:
            done = await step()
        except Exception as exc:
            failures += 1
            if failures == 1:
                log.warning("%s failed (%s: %s); retrying with backoff: check PostgreSQL, NATS and the payment "
                            "provider if this lasts", what, type(exc).__name__, exc)
            await trio.sleep(max(idle_s, RETRY.delay(failures)))
            continue
        if failures:
            log.info("%s works again after %d failed attempts", what, failures)
            failures = 0
        if done < full:
            await trio.sleep(idle_s)
