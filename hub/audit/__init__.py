"""Audit: the tamper-evident log of every privileged action, one hash chain per tenant; what the hub's
domains record (hub.audit.chain.record) and what the stores send (audit.recorded events)."""

from pathlib import Path

from hub.domains import Domain

DOMAIN = Domain("audit", migrations=Path(__file__).parent / "migrations")
