"""Stores' audit records (audit.recorded v1) appended to their tenant's chain, inside the inbox's transaction.

The inbox applies an event once, so a replayed event never appends twice; a body its schema refuses never
gets here (the inbox dead-letters it with the reason). The record is the store's: `store` is the event's
store (from the subject NATS confines it to), `at` the event's time (the till's clock), and the till, the
approver, the reason and the event's id and seq join its details, so a record leads back to its event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from hub.audit.chain import Entry, record
from novapos.wire.envelope import Envelope


def entry_of(event: Envelope) -> Entry:
    body = event.body
    details = {**body["details"], "till": body["till"], "event": str(event.id), "event_seq": event.seq}
    for name in ("approver", "reason"):
        if name in body:
            details[name] = body[name]
    return Entry(event.tenant, body["actor"], body["action"], store=event.store, target=body.get("target"),
                 details=details, at=datetime.fromtimestamp(event.ts / 1000, tz=UTC))


async def apply_audit(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """Append each new audit.recorded event, tenants in name order (each chain's head is locked once, in
    one order across hub processes), each tenant's in the order its events came."""
    for event in sorted(events, key=lambda e: e.tenant):
        await record(conn, entry_of(event))
