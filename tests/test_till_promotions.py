"""Promotions and coupons at the till, end to end from the web till's API: the store's local catalog holds the
promotions (written as the catalog sync writes them), the till actor prices the cart with them at every change,
coupons are reserved at a hub stand-in answering on real NATS (tests.coupon_hub) or, offline, a promotion's public
code is accepted; a void releases the reservation (owed until the hub answers, across a restart); the sale is
committed as sale.completed v5 and its receipt prints each promotion under its line and "You saved". Real NATS,
SQLite and sockets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from prometheus_client import REGISTRY

from actors.till import coupons
from mocks.network_printer import MockNetworkPrinter
from novapos import promotions as engine
from novapos.config import StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.catalog import PromotionMessage, VersionMarker
from novapos.wire.schemas import SCHEMAS
from tests.catalog import demo_catalog, seed_catalog
from tests.conftest import wait_until
from tests.coupon_hub import CouponHub, coupon_hub
from tests.edges import running_edge, waiting_events
from tests.pos import COFFEE, MILK, log_in

TILL = "/api/tills/till-1"
COFFEE_3_FOR_2 = engine.Promotion(
    id="0190a3c4-7e1f-7b2a-9c3d-0000000000a1", name="Coffee 3 for 2", version=1, currency="EUR",
    kind="buy_x_get_y", target=engine.Target(skus=frozenset({"COF-250"})), buy=2, get=1, reward_bp=10_000,
    priority=10)
SAVE_10 = engine.Promotion(
    id="0190a3c4-7e1f-7b2a-9c3d-0000000000a2", name="Coupon 10% off", version=1, currency="EUR", kind="percent",
    applies_to="order", value=1000, code_only=True)
HELLO = engine.Promotion(
    id="0190a3c4-7e1f-7b2a-9c3d-0000000000a3", name="Hello 0.50 off", version=1, currency="EUR", kind="amount",
    applies_to="order", value=50, code_only=True, public_codes=frozenset({"HELLO"}))
HUB_CODE = "SAVE-7Q2X"


def promoted_catalog(version: int = 2) -> list[Any]:
    messages = demo_catalog(version)
    return [*messages[:-1], *(PromotionMessage(promotion, True) for promotion in (COFFEE_3_FOR_2, SAVE_10, HELLO)),
            VersionMarker(version, 0)]


@pytest.fixture
def promoted_store(store_config: StoreConfig, monkeypatch: pytest.MonkeyPatch) -> StoreConfig:
    seed_catalog(store_config.state_dir, promoted_catalog())
    monkeypatch.setattr(coupons, "RETRY_S", 0.2)
    return store_config


async def _scan(http: httpx.AsyncClient, base: str, barcode: str, quantity: int = 1) -> dict[str, Any]:
    response = await http.post(f"{base}{TILL}/lines", json={"barcode": barcode, "quantity": quantity})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _pay_and_complete(http: httpx.AsyncClient, base: str, state: dict[str, Any]) -> dict[str, Any]:
    paid = await http.post(f"{base}{TILL}/tenders", json={"method": "cash", "amount_minor": state["due"]["minor"]})
    assert paid.status_code == 200, paid.text
    done = await http.post(f"{base}{TILL}/complete", json={"cart": state["cart"]})
    assert done.status_code == 200, done.text
    return dict(done.json())


def _discounts() -> float:
    return REGISTRY.get_sample_value("novapos_edge_promotion_discount_minor_total",
                                     {"till": "till-1", "currency": "EUR"}) or 0.0


async def _asked(hub: CouponHub, kind: str) -> bool:
    return kind in hub.kinds()


async def test_a_promotion_and_a_reserved_coupon_are_sold_as_v5_and_explained_on_the_receipt(
        promoted_store: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient,
        printer: MockNetworkPrinter) -> None:
    with coupon_hub(nats_server, {HUB_CODE: SAVE_10.id}) as hub:
        async with running_edge(promoted_store) as edge:
            await log_in(http, edge.url)
            await _scan(http, edge.url, COFFEE, 2)
            state = await _scan(http, edge.url, COFFEE)  # the third coffee is free
            [line] = state["lines"]
            assert line["quantity"] == 3 and [(p["name"], p["amount"]["minor"]) for p in line["promotions"]] == [
                ("Coffee 3 for 2", 499)]
            assert state["total"]["minor"] == 998 and state["saved"]["minor"] == 499
            assert state["promotions"][0]["explanation"] and state["promotions_version"] == 2

            added = await http.post(f"{edge.url}{TILL}/coupons", json={"code": " save-7q2x "})
            assert added.status_code == 200, added.text
            state = added.json()
            [coupon] = state["coupons"]
            assert (coupon["code"], coupon["promotion"], coupon["offline"], coupon["applied"]) == (
                HUB_CODE, SAVE_10.id, False, True)
            assert state["total"]["minor"] == 998 - 100 and state["saved"]["minor"] == 499 + 100
            [(kind, asked)] = hub.asked
            assert kind == "coupon_reserve" and asked["code"] == HUB_CODE and asked["till"] == "till-1"
            again = await http.post(f"{edge.url}{TILL}/coupons", json={"code": HUB_CODE})
            assert again.status_code == 409 and "already on this sale" in again.json()["error"]

            await _scan(http, edge.url, MILK)  # every change evaluates again: 10 % of the milk too
            state = (await http.get(f"{edge.url}{TILL}")).json()
            assert state["total"]["minor"] == 998 + 129 - 113
            before = _discounts()
            receipt = await _pay_and_complete(http, edge.url, state)
            assert _discounts() - before == 612
            metrics = (await http.get(f"{edge.url}/metrics")).text
            assert 'novapos_edge_promotion_coupons_total{outcome="reserved",till="till-1"}' in metrics
            assert "novapos_edge_promotion_evaluation_seconds_count" in metrics

            [event] = [e for e in waiting_events(promoted_store.state_dir) if e.type == "sale.completed"]
            assert event.v == 5 and str(event.id) == receipt["sale"]
            SCHEMAS[("sale.completed", 5)](event.body)
            assert event.body["promotions_version"] == 2 and event.body["coupons"] == [
                {"code": HUB_CODE, "promotion": SAVE_10.id, "redemption": asked["redemption"], "offline": False}]
            coffee, milk = event.body["lines"]
            assert [p["promotion"] for p in coffee["promotions"]] == [COFFEE_3_FOR_2.id, SAVE_10.id]
            assert [p["promotion"] for p in milk["promotions"]] == [SAVE_10.id]
            printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
            assert "Coffee 3 for 2" in printed[0] and "Coupon 10% off" in printed[0]
            assert "You saved" in printed[0] and "6.12" in printed[0]  # 4.99 + 1.00 + 0.13
        assert hub.kinds() == ["coupon_reserve"]  # a coupon used by a sale is not released


async def test_a_used_code_is_refused_and_a_void_releases_a_reservation_owed_until_the_hub_answers(
        promoted_store: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    with coupon_hub(nats_server, {HUB_CODE: SAVE_10.id}) as hub:
        async with running_edge(promoted_store) as edge:
            await log_in(http, edge.url)
            await _scan(http, edge.url, COFFEE)
            unknown = await http.post(f"{edge.url}{TILL}/coupons", json={"code": "NOPE"})
            assert unknown.status_code == 404 and "NOPE" in unknown.json()["error"]
            assert (await http.post(f"{edge.url}{TILL}/coupons", json={"code": HUB_CODE})).status_code == 200
            voided = await http.delete(f"{edge.url}{TILL}/cart")
            assert voided.status_code == 200 and voided.json()["coupons"] == []
            await wait_until(lambda: _asked(hub, "coupon_release"), timeout=5)
            assert hub.reserved == {}

    async with running_edge(promoted_store) as edge:  # the hub away: a reserved coupon's release is owed
        await log_in(http, edge.url)
        await _scan(http, edge.url, COFFEE)
        offline = await http.post(f"{edge.url}{TILL}/coupons", json={"code": HUB_CODE})
        assert offline.status_code == 409 and offline.json()["error"] == coupons.OFFLINE
        public = await http.post(f"{edge.url}{TILL}/coupons", json={"code": "hello"})
        assert public.status_code == 200, public.text
        [coupon] = public.json()["coupons"]
        assert (coupon["promotion"], coupon["offline"], coupon["applied"]) == (HELLO.id, True, True)
        assert public.json()["total"]["minor"] == 499 - 50
    with coupon_hub(nats_server, {HUB_CODE: SAVE_10.id}) as hub:
        async with running_edge(promoted_store) as edge:
            state = await _scan(http, edge.url, MILK)  # the restarted till kept the cart, its coupon and session
            assert [c["code"] for c in state["coupons"]] == ["HELLO"] and len(state["lines"]) == 2
            assert (await http.post(f"{edge.url}{TILL}/coupons", json={"code": HUB_CODE})).status_code == 200
            redemption = hub.asked[-1][1]["redemption"]
        # the edge stopped with the reservation held: a new edge, the hub away, voids it and owes the release
    async with running_edge(promoted_store) as edge:
        voided = await http.delete(f"{edge.url}{TILL}/cart")
        assert voided.status_code == 200 and voided.json()["coupon_releases_owed"] == 1
    with coupon_hub(nats_server, {HUB_CODE: SAVE_10.id}) as hub:
        async with running_edge(promoted_store) as edge:  # the owed release, saved with the till, is sent now
            await wait_until(lambda: _asked(hub, "coupon_release"), timeout=10)
            [(kind, release)] = hub.asked
            assert kind == "coupon_release" and release["redemption"] == redemption
            state = (await http.get(f"{edge.url}{TILL}")).json()
            assert state["lines"] == [] and state["coupons"] == [] and state["coupon_releases_owed"] == 0


async def test_a_coupon_whose_hold_ended_is_renewed_before_the_sale_or_dropped_with_a_sentence(
        promoted_store: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    """The hub keeps a hold's end on the till's clock; a sale completing after it renews the hold (the same
    redemption id) first, and without the hub the coupon comes off the sale with a sentence (never sold unheld)."""
    async with running_edge(promoted_store) as edge:
        await log_in(http, edge.url)
        with coupon_hub(nats_server, {HUB_CODE: SAVE_10.id}) as hub:
            hub.hold_ms = 0  # every hold has ended by the time the sale completes
            await _scan(http, edge.url, MILK)
            added = await http.post(f"{edge.url}{TILL}/coupons", json={"code": HUB_CODE})
            assert added.status_code == 200, added.text
            await _pay_and_complete(http, edge.url, added.json())
            (_, first), (kind, renewal) = hub.asked
            assert kind == "coupon_reserve" and renewal["redemption"] == first["redemption"]
            assert renewal["till_ms"] >= first["till_ms"]

            await _scan(http, edge.url, MILK)
            hub.codes["SAVE-7Q2Y"] = SAVE_10.id
            added = await http.post(f"{edge.url}{TILL}/coupons", json={"code": "SAVE-7Q2Y"})
            assert added.status_code == 200, added.text
        paid = await http.post(f"{edge.url}{TILL}/tenders", json={"method": "cash",
                                                                  "amount_minor": added.json()["due"]["minor"]})
        assert paid.status_code == 200, paid.text
        dropped = await http.post(f"{edge.url}{TILL}/complete", json={"cart": added.json()["cart"]})
        assert dropped.status_code == 409 and "taken off the sale" in dropped.text, dropped.text
        state = (await http.get(f"{edge.url}{TILL}")).json()
        assert state["coupons"] == [] and state["due"]["minor"] == 13  # the 10 % it gave is due now
        done = await _pay_and_complete(http, edge.url, state)
        [event] = [e for e in waiting_events(promoted_store.state_dir)
                   if e.type == "sale.completed" and str(e.id) == done["sale"]]
        assert "coupons" not in event.body or event.body["coupons"] == []
