"""The hub process: PostgreSQL and NATS behind one asyncio seam, the ingest worker, the console."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
import trio

from edge_runtime import AsyncioSeam, Notifier
from hub.console.app import build_console
from hub.console.context import Console
from hub.db import create_pool, migrate
from hub.ingest.dead_letters import run_purge
from hub.ingest.worker import run_ingest
from novapos.adapters.http import serve
from novapos.adapters.nats import NatsLink
from novapos.config import HubConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningHub:
    url: str
    seam: AsyncioSeam
    pool: asyncpg.Pool


async def run_hub(config: HubConfig, *, task_status: trio.TaskStatus[RunningHub] = trio.TASK_STATUS_IGNORED) -> None:
    config.check_runnable()
    notifier = Notifier()
    with AsyncioSeam() as seam:
        pool = await seam.run(create_pool, config.database_url)
        link = NatsLink(config.nats_url, "hub")
        try:
            await seam.run(migrate, pool)
            await seam.run(link.connect)
            await seam.run(link.ensure_event_stream, config.stream)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_ingest, seam, link, pool, frozenset(config.tenants), config.stream,
                                   config.ingest_batch)
                nursery.start_soon(run_purge, seam, pool, config.dead_letter_retention_days)
                console = Console(seam, link, frozenset(config.tenants), pool, None)
                urls = await nursery.start(serve, build_console(console), config.http_host, config.http_port)
                # Every hub task runs in this nursery: if one fails the process exits, so "alive" is "healthy".
                nursery.start_soon(notifier.run_watchdog, lambda: True)
                notifier.ready()
                notifier.status(f"hub ingesting; console at {urls[0]}")
                log.info("hub ready: console at %s", urls[0])
                try:
                    task_status.started(RunningHub(urls[0], seam, pool))
                    await trio.sleep_forever()
                finally:
                    notifier.stopping()
        finally:
            with trio.CancelScope(shield=True):
                await seam.run(link.close)
                await seam.run(pool.close)
