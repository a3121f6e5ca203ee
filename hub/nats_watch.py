"""The hub's watch on its NATS connection once started: nats-py reconnects in the background, and an
ingest fetch that times out reads as an idle stream, so without this a hub cut off from NATS would go
quiet and report healthy. After NATS_GRACE_S unreachable (a blip or a server restart stays quiet), it
logs one warning saying what to check and /healthz answers 503; when the link is back, one info line."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import trio

from hub.console.context import Console

log = logging.getLogger(__name__)

NATS_GRACE_S = 10.0
POLL_S = 0.25


async def watch_nats(console: Console, where: str) -> None:
    """(trio side) Forever: keep console.nats_lost_since current (set once the grace is over) and say so."""
    lost_at: float | None = None
    since: datetime | None = None
    while True:
        if console.link.connected:
            if console.nats_lost_since is not None:
                log.info("NATS at %s is back after %.0f s; ingest resumes", where, trio.current_time() - (lost_at or 0))
            lost_at, since, console.nats_lost_since = None, None, None
        elif lost_at is None:
            lost_at, since = trio.current_time(), datetime.now(UTC)
        elif console.nats_lost_since is None and trio.current_time() - lost_at > NATS_GRACE_S:
            console.nats_lost_since = since
            log.warning("NATS at %s unreachable for %.0f s: no events are ingested meanwhile (the hub keeps trying "
                        "to reconnect); check that nats-server runs and is reachable from this host", where,
                        trio.current_time() - lost_at)
        await trio.sleep(POLL_S)
