"""Ingest: store events from JetStream into PostgreSQL exactly once (the inbox), by any number of hub
processes sharing the stream; its dead letters, and each store's sequence gaps and reused numbers."""

from pathlib import Path

from hub.console.context import Console
from hub.domains import Domain
from hub.ingest.dead_letters import run_purge
from hub.ingest.jetstream import watch_jetstream
from hub.ingest.leaf_sources import watch_leaf_sources
from hub.ingest.routes import OPENAPI, routes
from hub.partitions import run_maintain


async def purge_dead_letters(console: Console) -> None:
    await run_purge(console.seam, console.ready_pool(), console.config.dead_letter_retention_days)


async def maintain_partitions(console: Console) -> None:
    """The monthly partitions of the inbox, the sales and the stock ledger: made ahead, retired past retention."""
    await run_maintain(console.seam, console.ready_pool(), console.config)


DOMAIN = Domain("ingest", migrations=Path(__file__).parent / "migrations", routes=routes, services=(watch_jetstream,),
                jobs={"dead_letter_purge": purge_dead_letters, "leaf_sources": watch_leaf_sources,
                      "partition_maintenance": maintain_partitions}, openapi=OPENAPI)
