"""Returns across stores, on real NATS, PostgreSQL and SQLite: a store takes back another store's sale through the
hub's answer; the hub counts every store's returns per sale line, flags a return beyond what was sold (two stores
racing: the store already paid out), moves stock by the rule, and never shows another tenant's sale."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import trio

from edge.app import run_edge
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.orders import encode_request, order_subject
from novapos.wire.subjects import event_subject
from tests.catalog import seed_catalog
from tests.conftest import printer_only, query, wait_until
from tests.console_access import sign_in_admin
from tests.events import publish
from tests.pos import COFFEE, MANAGER_OVERRIDE, seed_staff, sell
from tests.stock_world import build_world, sale

STORES = (("demo", "store-001"), ("demo", "store-002"), ("other", "o-1"))


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats.authorized(tmp_path / "nats", stores=STORES).start()
    try:
        yield server
    finally:
        server.stop()


def _eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def returned(order: Envelope, items: list[tuple[int, int, str, bool]], *, store: str, seq: int,
             new: list[tuple[str, int]] = ()) -> Envelope:  # type: ignore[assignment]
    """A return.completed of (line, quantity, condition, restock) of `order` (stock_world's sale, v2 at 0 % tax),
    with `new` lines (sku, quantity) exchanged, refunded or paid in cash."""
    lines = order.body["lines"]
    back = [{"original_line": n, "sku": lines[n - 1]["sku"], "name": lines[n - 1]["name"], "quantity": q,
             "unit_price": _eur(499), "amount": _eur(499 * q),
             "tax": {"class": "std", "rate_ppm": 0, "included": True, "amount": _eur(0)},
             "condition": condition, "restock": restock} for n, q, condition, restock in items]
    exchanged = [{"sku": sku, "name": sku, "quantity": q, "unit_price": _eur(499), "amount": _eur(499 * q),
                  "catalog_version": 1, "tax": {"class": "std", "rate_ppm": 0, "included": True, "amount": _eur(0)}}
                 for sku, q in new]
    total = 499 * (sum(q for _, q in new) - sum(q for _, q, _, _ in items))
    body = {"till": "till-1", "session": "s-2", "cashier": "bob", "currency": "EUR",
            "original": {"order": str(order.id), "store": order.store}, "returned": back,
            "restocking_fee": _eur(0), "lines": exchanged,
            "tenders": [{"id": str(uuid7()), "method": "cash", "amount": _eur(total)}] if total > 0 else [],
            "refunds": [{"id": str(uuid7()), "method": "cash", "amount": _eur(-total)}] if total < 0 else [],
            "change": _eur(0), "total": _eur(total)}
    return Envelope(id=uuid7(), type="return.completed", v=1, tenant="demo", store=store, seq=seq,
                    ts=1_700_000_100_000, body=body)


async def _ask(nats_server: EmbeddedNats, tenant: str, store: str, order: str) -> dict[str, Any] | None:
    async def run() -> Any:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        try:
            return await client.request(order_subject(tenant, store), encode_request(order), timeout=2)
        finally:
            await client.close()
    try:
        reply = await trio.to_thread.run_sync(asyncio.run, run())
    except nats.errors.NoRespondersError:
        return None
    return dict(json.loads(reply.data))


async def _found(nats_server: EmbeddedNats, tenant: str, store: str, order: str) -> dict[str, Any] | None:
    answer = await _ask(nats_server, tenant, store, order)
    return answer if answer is not None and answer["sale"] is not None else None


async def test_the_hub_counts_returns_flags_a_race_moves_stock_and_keeps_tenants_apart(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    order = sale([("COF-250", 3), ("COF-500", 1)], store="store-001", version=2)
    # store-002 takes back 2 (one resaleable, one damaged), store-001 then 2 more while offline: 4 of 3 sold
    cross = returned(order, [(1, 1, "resaleable", True), (1, 1, "damaged", False)], store="store-002", seq=1,
                     new=[("COF-1K", 1)])
    late = returned(order, [(1, 2, "resaleable", True)], store="store-001", seq=2)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, dataclasses.replace(hub_config, tenants=("demo", "other")))
        await query(database_url, "INSERT INTO locations (tenant, location, kind, store, region, name) VALUES "
                                  "('demo', 's2-damaged', 'damaged', 'store-002', 'north', 'Two: damaged')")
        await publish(nats_server, [(event_subject("demo", "store-001", "sale.completed"), order.encode(), None)])
        found = await wait_until(lambda: _found(nats_server, "demo", "store-002", str(order.id)))
        assert [(line["line_no"], line["returnable"]) for line in found["sale"]["lines"]] == [(1, 3), (2, 1)]
        assert (await _ask(nats_server, "other", "o-1", str(order.id))) == {"sale": None}  # another tenant's
        await publish(nats_server, [(event_subject("demo", "store-002", "return.completed"), cross.encode(), None),
                                    (event_subject("demo", "store-001", "return.completed"), late.encode(), None)])
        await wait_until(lambda: _count(database_url, "SELECT count(*) FROM returns", 2))
        found = await _ask(nats_server, "demo", "store-002", str(order.id))
        assert found is not None and [line["returnable"] for line in found["sale"]["lines"]] == [0, 1]
        await sign_in_admin(http, hub.url, database_url)
        page = (await http.get(f"{hub.url}/api/returns", params={"store": "store-002"})).json()
        assert [item["event_id"] for item in page["items"]] == [str(cross.id)] and page["next"] is None
        assert [(line["kind"], line["sku"], line["condition"]) for line in page["items"][0]["lines"]] == [
            ("returned", "COF-250", "resaleable"), ("returned", "COF-250", "damaged"), ("new", "COF-1K", None)]
        assert (await http.get(f"{hub.url}/api/returns", params={"store": "o-1"})).status_code == 404
        detail = (await http.get(f"{hub.url}/api/orders/{order.id}")).json()
        assert [(r["event_id"], r["refunded_minor"], r["review"]) for r in detail["returns"]] == [
            (str(cross.id), 499, []), (str(late.id), 998, [f"line 1 of order {order.id}: 4 returned of 3 sold"])]
        first = (await http.get(f"{hub.url}/api/returns", params={"limit": "1"})).json()
        second = (await http.get(f"{hub.url}/api/returns", params={"limit": "1", "after": first["next"]})).json()
        assert [first["items"][0]["event_id"], second["items"][0]["event_id"]] == [str(late.id), str(cross.id)]
        # the exchange's new line is an order in turn: found at the hub, and returned at store-001
        exchange = await _found(nats_server, "demo", "store-001", str(cross.id))
        assert exchange is not None and [(line["sku"], line["returnable"]) for line in exchange["sale"]["lines"]] == [
            ("COF-1K", 1)]
        again = returned(cross, [(1, 1, "resaleable", True)], store="store-001", seq=3)
        again.body["returned"][0] |= {"sku": "COF-1K", "name": "COF-1K"}
        await publish(nats_server, [(event_subject("demo", "store-001", "return.completed"), again.encode(), None)])
        await wait_until(lambda: _count(database_url, "SELECT count(*) FROM returns", 3))
        exchange = await _found(nats_server, "demo", "store-001", str(cross.id))
        assert exchange is not None and [line["returnable"] for line in exchange["sale"]["lines"]] == [0]
        nursery.cancel_scope.cancel()
    reviews = {str(row["event_id"]): list(row["review"]) for row in await query(
        database_url, "SELECT event_id, review FROM returns")}
    assert reviews == {str(cross.id): [], str(again.id): [],
                       str(late.id): [f"line 1 of order {order.id}: 4 returned of 3 sold"]}
    moves = sorted((row["location"], row["sku"], row["kind"], row["on_hand_change"]) for row in await query(
        database_url, "SELECT coalesce(l.location, '-') AS location, m.sku, m.kind, m.on_hand_change"
                      " FROM stock_movements m LEFT JOIN locations l ON l.id = m.location_id"))
    assert moves == sorted([
        ("s1-floor", "COF-250", "sale", -3), ("s1-floor", "COF-500", "sale", -1),   # the sale
        ("s2-floor", "COF-250", "return", 1), ("s2-damaged", "COF-250", "return", 1),  # back at store-002
        ("s2-floor", "COF-1K", "sale", -1),                                         # the exchange's new line
        ("s1-floor", "COF-250", "return", 2),                                       # the late return
        ("s1-floor", "COF-1K", "return", 1)])                                       # the exchanged item back


async def _count(database_url: str, sql: str, wanted: int) -> bool:
    return int((await query(database_url, sql))[0][0]) >= wanted


async def test_a_store_takes_back_another_stores_sale_through_the_hub(
        store_config: StoreConfig, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        http: httpx.AsyncClient, tmp_path: Path) -> None:
    with MockNetworkPrinter() as printer_two:
        seed_catalog(tmp_path / "edge-2")
        seed_staff(tmp_path / "edge-2", store="store-002")
        two = dataclasses.replace(store_config, store="store-002", state_dir=tmp_path / "edge-2",
                                  nats_credentials=nats_server.store_credentials("demo", "store-002"),
                                  devices=printer_only(printer_two.port))
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            one = await nursery.start(run_edge, store_config)
            other = await nursery.start(run_edge, two)
            order = (await sell(http, one.url, [(COFFEE, 2)]))["sale"]
            await wait_until(lambda: _count(database_url, "SELECT count(*) FROM sales", 1))
            lookup = f"{other.url}/api/tills/till-1/returns/lookup"
            await sell(http, other.url, [(COFFEE, 1)])  # store-002's own session is open
            found = (await http.get(lookup, params={"order": order})).json()
            assert found["store"] == "store-001" and [line["returnable"] for line in found["lines"]] == [2]
            till = f"{other.url}/api/tills/till-1"
            assert (await http.post(f"{till}/returns", json={"order": order, "override": MANAGER_OVERRIDE})
                    ).status_code == 200
            state = (await http.post(f"{till}/returns/lines", json={"original_line": 1, "quantity": 1})).json()
            receipt = (await http.post(f"{till}/complete", json={"cart": state["cart"]})).json()
            assert receipt["original"] == {"order": order, "store": "store-001"}
            assert receipt["refunds"][0]["amount"]["minor"] == 499
            await wait_until(lambda: _count(database_url, "SELECT count(*) FROM returns", 1))
            found = (await http.get(lookup, params={"order": order})).json()
            assert [line["returnable"] for line in found["lines"]] == [1]  # the hub counted store-002's return
            nursery.cancel_scope.cancel()
