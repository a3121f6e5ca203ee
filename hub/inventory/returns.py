"""Returns move stock (return.completed, any version: v1 to v3), in the inbox's transaction like sales
(hub.inventory.sales).

An item taken back with `restock` goes back on the returning store's floor; one not fit to sell goes to the
store's 'damaged' location, or, where the store has none, is written off (a movement in no balance, flagged
written_off, so the ledger still says what came back). An exchange's new lines leave the floor like a sale.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from hub.inventory.ledger import Movement, record
from novapos.wire.envelope import Envelope

LOCATIONS_SQL = (
    "SELECT l.tenant, l.store, l.kind, min(l.id) AS id FROM locations l"
    " JOIN unnest($1::text[], $2::text[]) AS u(tenant, store) ON l.tenant = u.tenant AND l.store = u.store"
    " WHERE l.kind IN ('floor', 'damaged') GROUP BY l.tenant, l.store, l.kind")


async def move_returned_stock(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    stores = sorted({(e.tenant, e.store) for e in events})
    found: dict[tuple[str, str, str], int] = {
        (row["tenant"], row["store"], row["kind"]): row["id"]
        for row in await conn.fetch(LOCATIONS_SQL, [s[0] for s in stores], [s[1] for s in stores])}
    movements = []
    for event in events:
        floor = found.get((event.tenant, event.store, "floor"))
        damaged = found.get((event.tenant, event.store, "damaged"))
        for number, item in enumerate(event.body["returned"], 1):
            where = floor if item["restock"] else damaged
            if where is None and not item["restock"]:
                movements.append(Movement(event.tenant, None, item["sku"], "return", 0, store=event.store,
                                          event_id=event.id, line_no=number, reason="damaged: written off",
                                          flags=("written_off",)))
                continue
            movements.append(Movement(event.tenant, where, item["sku"], "return", item["quantity"], store=event.store,
                                      event_id=event.id, line_no=number, reason=item["condition"],
                                      flags=() if where is not None else ("no_location",)))
        for number, line in enumerate(event.body["lines"], 1):
            movements.append(Movement(event.tenant, floor, line["sku"], "sale", -line["quantity"], store=event.store,
                                      event_id=event.id, line_no=number,
                                      flags=() if floor is not None else ("no_location",)))
    await record(conn, movements)
