"""Ingest: store events from JetStream into PostgreSQL exactly once (the inbox), by any number of hub
processes sharing the stream; its dead letters, and each store's sequence gaps and reused numbers."""

from pathlib import Path

from hub.domains import Domain
from hub.ingest.jetstream import watch_jetstream
from hub.ingest.leaf_sources import watch_leaf_sources
from hub.ingest.routes import OPENAPI, routes

DOMAIN = Domain("ingest", migrations=Path(__file__).parent / "migrations", routes=routes, services=(watch_jetstream, watch_leaf_sources),
                openapi=OPENAPI)
