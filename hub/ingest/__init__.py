"""Ingest: store events from JetStream into PostgreSQL exactly once (the inbox), and its dead letters."""

from pathlib import Path

from hub.domains import Domain
from hub.ingest.routes import OPENAPI, routes

DOMAIN = Domain("ingest", migrations=Path(__file__).parent / "migrations", routes=routes, openapi=OPENAPI)
