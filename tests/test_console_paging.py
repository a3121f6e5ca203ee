"""The console's lists page by keyset ({"items": [...], "next": cursor or null}): following `next` from the
first page visits every row the user may see exactly once, in the list's order, and ends with null; a cursor
that is not one is a 400. Against a real hub on the access matrix's world."""

from __future__ import annotations

from typing import Any

import httpx

from novapos.config import HubConfig
from tests.conftest import query
from tests.test_access_matrix import ADMIN, NORTH, _letter, _running


async def _walk(client: httpx.AsyncClient, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    after: str | None = None
    while True:
        answer = await client.get(path, params={**params, **({"after": after} if after else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"items", "next"}
        pages.append(body["items"])
        after = body["next"]
        if after is None:
            return pages
        assert len(pages) < 100, "next never ends"


async def test_every_list_pages_through_all_it_shows_once_in_order(hub_config: HubConfig) -> None:
    async with _running(hub_config) as world:
        admin, north = world.clients[ADMIN], world.clients[NORTH]
        for threshold_at in ("s1-floor", "s1-back", "s2-floor", "wh-north", "s3-floor"):
            answer = await admin.post("/api/stock/thresholds", json={"location": threshold_at, "sku": "COF-250",
                                                                     "threshold": 5000})
            assert answer.status_code == 200, answer.text
        letters = [await _letter(world.database_url, "demo", store) for store in ["store-001", "store-003"] * 110]

        stock = await _walk(admin, "/api/stock", limit=2)
        assert [len(items) for items in stock] == [2, 2, 1]
        assert [row["location"] for items in stock for row in items] == [
            "s1-back", "s1-floor", "s2-floor", "s3-floor", "wh-north"]
        moved = await _walk(north, "/api/stock/movements", limit=3)
        ids = [row["id"] for items in moved for row in items]
        assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids)) == 4  # north's four receipts
        low = await _walk(admin, "/api/stock/low", limit=4)
        assert [len(items) for items in low] == [4, 1]
        dead = await _walk(admin, "/api/dead-letters")
        assert [len(items) for items in dead] == [100, 100, 20]
        assert [row["id"] for items in dead for row in items] == sorted(letters, reverse=True)
        theirs = await _walk(north, "/api/dead-letters")
        assert [len(items) for items in theirs] == [100, 10]
        products = await _walk(admin, "/api/catalog/products", limit=1)
        assert [row["product"] for items in products for row in items] == ["coffee"]

        for path, cursor in [("/api/stock", "s1-floor"), ("/api/stock", "a/b/c"), ("/api/stock/movements", "x"),
                             ("/api/stock/low", "1/s1-floor"), ("/api/dead-letters", "9" * 30),
                             ("/api/sequence-issues", "a b"), ("/api/stock", "s1-floor/" + "x" * 5000)]:
            refused = await admin.get(path, params={"after": cursor})
            assert refused.status_code == 400 and "next" in refused.json()["error"], (path, cursor, refused.text)
        [count] = await query(world.database_url, "SELECT count(*) AS n FROM dead_letters")
        assert count["n"] == len(letters)
