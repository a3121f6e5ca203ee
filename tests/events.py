"""Well-formed events, and a plain publisher, for tests that talk to the hub directly."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import trio

from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.subjects import event_subject


def sale_event(seq: int = 1, store: str = "store-001", total: int = 499) -> Envelope:
    line = {"sku": "COF-250", "name": "Ground coffee 250 g", "quantity": 1,
            "unit_price": {"minor": total, "currency": "EUR"}, "amount": {"minor": total, "currency": "EUR"}}
    return Envelope(id=uuid7(), type="sale.completed", v=1, tenant="demo", store=store, seq=seq, ts=1_700_000_000_000,
                    body={"till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR", "lines": [line],
                          "total": {"minor": total, "currency": "EUR"},
                          "tenders": [{"method": "cash", "amount": {"minor": total, "currency": "EUR"}}],
                          "change": {"minor": 0, "currency": "EUR"}})


def with_quantity(body: dict[str, Any], quantity: int) -> dict[str, Any]:
    """A sale_event body whose one line sells `quantity` at its unit price, with totals that still add up."""
    line = body["lines"][0]
    amount = line["unit_price"]["minor"] * quantity
    line["quantity"] = quantity
    line["amount"]["minor"] = body["total"]["minor"] = body["tenders"][0]["amount"]["minor"] = amount
    return body


SUBJECT = event_subject("demo", "store-001", "sale.completed")


async def publish(nats_server: EmbeddedNats, items: list[tuple[str, bytes, dict[str, str] | None]]) -> None:
    """Publish with a plain nats-py client of the test's own, as the hub (on a worker thread's asyncio loop)."""
    async def run() -> None:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        js = client.jetstream()
        for subject, payload, headers in items:
            await js.publish(subject, payload, headers=headers)
        await client.close()
    await trio.to_thread.run_sync(asyncio.run, run())
