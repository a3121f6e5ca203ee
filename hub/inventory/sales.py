"""Ingested sales move stock: each line of a sale.completed (any version, v1 to v5) takes its quantity off the
selling store's floor location, in the inbox's transaction (so exactly once: a replayed event never reaches here).

Nothing is refused: a sale happened. A SKU the catalog does not know moves stock all the same (flag
unknown_sku); a store with no floor location records the movement in no balance (flag no_location); a sale
that leaves the floor below zero (offline, or the count was wrong) is flagged negative for review.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from hub.inventory.ledger import Movement, record
from novapos.wire.envelope import Envelope

RESOLVE_SQL = (
    # One round trip: the floor location of each (tenant, store), and which (tenant, sku) the catalog knows.
    "SELECT 'store' AS what, u.tenant, u.name, l.id FROM unnest($1::text[], $2::text[]) AS u(tenant, name)"
    " JOIN locations l ON l.tenant = u.tenant AND l.store = u.name AND l.kind = 'floor'"
    " UNION ALL"
    " SELECT 'sku', u.tenant, u.name, NULL FROM unnest($3::text[], $4::text[]) AS u(tenant, name)"
    " JOIN variants v ON v.tenant = u.tenant AND v.sku = u.name")


async def move_sold_stock(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """The applier of sale.completed for stock: one statement per table for the whole batch."""
    stores = sorted({(e.tenant, e.store) for e in events})
    skus = sorted({(e.tenant, line["sku"]) for e in events for line in e.body["lines"]})
    floors: dict[tuple[str, str], int] = {}
    known: set[tuple[str, str]] = set()
    for row in await conn.fetch(RESOLVE_SQL, [s[0] for s in stores], [s[1] for s in stores],
                                [s[0] for s in skus], [s[1] for s in skus]):
        if row["what"] == "store":
            floors[(row["tenant"], row["name"])] = row["id"]
        else:
            known.add((row["tenant"], row["name"]))
    movements = []
    for event in events:
        floor = floors.get((event.tenant, event.store))
        for number, line in enumerate(event.body["lines"], 1):
            flags = (*(() if (event.tenant, line["sku"]) in known else ("unknown_sku",)),
                     *(() if floor is not None else ("no_location",)))
            movements.append(Movement(event.tenant, floor, line["sku"], "sale", -line["quantity"], store=event.store,
                                      event_id=event.id, line_no=number, flags=flags))
    await record(conn, movements)
