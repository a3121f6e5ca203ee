"""Coupons and gift cards through a running hub: two stores' own NATS identities racing for one single-use code
(honoured once), the stores' gift card requests, and the console's Coupons and Gift cards APIs (audited changes,
hostile input refused with a sentence and nothing changed)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.payments.asking import HubRefused, HubUnreachable
from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import event_subject
from tests.codes_support import PROMOTION, code_only_promotion, coupon, sale, two_store_nats
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.events import publish
from tests.fleet import fleet_world
from tests.identity import add_user, grant, signed_in
from tests.payment_support import ask_store
from tests.stock_world import build_world, on_database
from tests.test_gift_cards import _return as _return_v3


@pytest.fixture
def stores_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = two_store_nats(tmp_path / "nats2")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def codes_hub(hub_config: HubConfig, stores_nats: EmbeddedNats) -> HubConfig:
    return dataclasses.replace(hub_config, nats_url=stores_nats.url, nats_credentials=stores_nats.hub_credentials,
                               tls=stores_nats.tls_settings())


async def _ask(nats: EmbeddedNats, kind: str, body: dict[str, Any], store: str = "store-001") -> dict[str, Any] | int:
    """The answer, or the refusal's code."""
    try:
        return await ask_store(nats, kind, body, store=store)
    except HubRefused as exc:
        return exc.code


async def _answering(nats: EmbeddedNats) -> None:
    with trio.fail_after(20):
        while True:
            try:
                await ask_store(nats, "coupon_release", {"redemption": "warm-up", "actor": "alice"})
                return
            except HubUnreachable:
                await trio.sleep(0.1)


def _reserve(code: str, redemption: str) -> dict[str, Any]:
    return {"code": code, "redemption": redemption, "till": "till-1", "actor": "alice"}


async def test_one_single_use_code_from_two_stores_at_once_is_honoured_once(
        codes_hub: HubConfig, stores_nats: EmbeddedNats) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, codes_hub)
        await fleet_world(codes_hub.database_url)
        await on_database(codes_hub.database_url, code_only_promotion)
        async with httpx.AsyncClient(timeout=10) as console:
            await sign_in_admin(console, hub.url, codes_hub.database_url)
            made = await console.post(f"{hub.url}/api/coupon-batches", json={"promotion": PROMOTION, "count": 8})
            assert made.status_code == 201, made.text
        await _answering(stores_nats)
        results: dict[tuple[str, str], dict[str, Any] | int] = {}

        async def race(code: str, store: str) -> None:
            results[code, store] = await _ask(stores_nats, "coupon_reserve", _reserve(code, f"{store}-{code}"), store)
        async with trio.open_nursery() as racing:  # each code asked by both stores at the same moment
            for code in made.json()["codes"]:
                for store in ("store-001", "store-002"):
                    racing.start_soon(race, code, store)
        for code in made.json()["codes"]:
            answers = [results[code, store] for store in ("store-001", "store-002")]
            assert sorted(map(type, answers), key=str) == sorted([dict, int], key=str), answers
            won = next(answer for answer in answers if isinstance(answer, dict))
            assert won["code"] == code and won["promotion"] == PROMOTION
            assert 409 in answers
        rows = await query(codes_hub.database_url, "SELECT code, count(*) AS held, max(uses) AS uses FROM"
                                                   " coupon_codes JOIN coupon_redemptions USING (tenant, code)"
                                                   " GROUP BY code")
        assert len(rows) == 8 and all((row["held"], row["uses"]) == (1, 1) for row in rows)

        code = made.json()["codes"][0]
        winner = next(store for store in ("store-001", "store-002") if isinstance(results[code, store], dict))
        loser = "store-002" if winner == "store-001" else "store-001"
        again = await _ask(stores_nats, "coupon_reserve", _reserve(code, f"{winner}-{code}"), winner)
        assert again == results[code, winner]  # the same redemption again: the same answer
        assert await _ask(stores_nats, "coupon_release", {"redemption": f"{winner}-{code}", "actor": "alice"},
                          winner) == {"released": True}
        assert isinstance(await _ask(stores_nats, "coupon_reserve", _reserve(code, f"{loser}-{code}-2"), loser), dict)
        other = made.json()["codes"][1]  # a hold its sale never confirmed: the hub's sweeper gives the use back
        await query(codes_hub.database_url, "UPDATE coupon_redemptions SET held_until = now() - interval '1 s'"
                                            " WHERE code = $1", other)
        await query(codes_hub.database_url, "INSERT INTO store_stats (tenant, store, events, seqs, last_seq,"
                    " last_received_at, last_ts_ms) SELECT 'demo', store, 1, 1, 1, now(), till_deadline_ms + 1"
                    " FROM coupon_redemptions WHERE code = $1 ON CONFLICT (tenant, store) DO UPDATE SET last_ts_ms ="
                    " EXCLUDED.last_ts_ms", other)  # its store sent an event after the hold
        await wait_until(lambda: _uses(codes_hub.database_url, other, 0), timeout=20)
        assert isinstance(await _ask(stores_nats, "coupon_reserve", _reserve(other, "after-sweep")), dict)
        for bad in ({"code": "bad/code", "redemption": "x", "till": "till-1", "actor": "a"},
                    {"code": code, "redemption": "a.b", "till": "till-1", "actor": "a"},
                    {"code": code, "redemption": "x", "till": "till-1", "actor": "hub:sweeper"},
                    {**_reserve(code, "x"), "customer": "not-a-uuid"}):
            assert await _ask(stores_nats, "coupon_reserve", bad) == 400
        nursery.cancel_scope.cancel()


async def test_gift_cards_from_the_console_to_the_till(codes_hub: HubConfig, stores_nats: EmbeddedNats) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, codes_hub)
        await fleet_world(codes_hub.database_url)
        async with httpx.AsyncClient(timeout=10, base_url=hub.url) as console:
            await sign_in_admin(console, hub.url, codes_hub.database_url)
            issued = await console.post("/api/gift-cards", json={"amount_minor": 2500})
            assert issued.status_code == 201, issued.text
            number, card = issued.json()["number"], issued.json()["card"]
            digits = number.replace(" ", "")
            assert (card["balance_minor"], card["currency"], card["card"]) == (2500, "EUR", "**** " + digits[-4:])
            for bad in ({"amount_minor": 0}, {"amount_minor": 10**9}, {"amount_minor": "10"},
                        {"amount_minor": 100, "currency": "euro"}, {"amount_minor": 100, "customer": "x"},
                        {"amount_minor": 100, "expires_at": "2001-01-01T00:00:00Z"}):
                refused = await console.post("/api/gift-cards", json=bad)
                assert refused.status_code == 422 and refused.json()["error"], (bad, refused.text)
            assert (await console.post("/api/gift-card-lookups", json={"number": number})).json()["id"] == card["id"]
            assert (await console.post("/api/gift-card-lookups", json={"number": "12"})).status_code == 422
            topped = await console.post(f"/api/gift-cards/{card['id']}/top-ups", json={"amount_minor": 500,
                                                                                      "reason": "birthday"})
            assert topped.status_code == 200 and topped.json()["balance_minor"] == 3000

            await _answering(stores_nats)
            assert await _ask(stores_nats, "gift_card_balance", {"card": number}) == {
                "card": "**** " + digits[-4:], "balance_minor": 3000, "currency": "EUR", "active": True}
            redeem = {"card": digits, "redemption": "t-1", "amount_minor": 1200, "currency": "EUR", "till": "till-1",
                      "actor": "alice"}
            taken = await _ask(stores_nats, "gift_card_redeem", redeem)
            assert taken == {"redemption": "t-1", "card": "**** " + digits[-4:], "amount_minor": 1200,
                             "balance_minor": 1800}
            assert await _ask(stores_nats, "gift_card_redeem", redeem, "store-002") == 409  # another store's id
            short = await _ask(stores_nats, "gift_card_redeem", {**redeem, "redemption": "t-2", "amount_minor": 1801})
            assert short == 402
            assert await _ask(stores_nats, "gift_card_reverse", {"redemption": "t-1", "actor": "alice"}) == {
                "redemption": "t-1", "reversed": True, "balance_minor": 3000}
            refund = {"card": digits, "redemption": "rf-1", "amount_minor": 300, "currency": "EUR",
                      "till": "till-2", "actor": "bob"}
            assert await _ask(stores_nats, "gift_card_refund", refund, "store-002") == 400  # no original order
            refund["order"] = str(uuid.uuid4())  # an order no gift card paid: nothing to give back to a card
            assert await _ask(stores_nats, "gift_card_refund", refund, "store-002") == 409
            assert await _ask(stores_nats, "gift_card_balance", {"card": "4242424242424242"}) == 404
            assert await _ask(stores_nats, "gift_card_balance", {"card": digits[:-1] + "x"}) == 400

            blocked = await console.post(f"/api/gift-cards/{card['id']}/block", json={"reason": "reported stolen"})
            assert blocked.status_code == 200 and blocked.json()["active"] is False
            assert await _ask(stores_nats, "gift_card_redeem", {**redeem, "redemption": "t-3"}) == 409
            assert (await console.post(f"/api/gift-cards/{card['id']}/block", json={})).status_code == 422
            detail = (await console.get(f"/api/gift-cards/{card['id']}")).json()
            assert [entry["kind"] for entry in detail["ledger"]] == ["reverse", "redeem", "top_up", "issue"]
            unconfirmed = await console.get("/api/gift-cards", params={"unconfirmed": "true"})
            assert unconfirmed.status_code == 200 and unconfirmed.json()["total"] == 0  # none older than a day
            assert (await console.get("/api/gift-cards", params={"unconfirmed": "x"})).status_code == 400
            listed = (await console.get("/api/gift-cards", params={"last4": digits[-4:]})).json()
            assert [item["id"] for item in listed["items"]] == [card["id"]]
            assert (await console.get("/api/gift-cards/not-a-card")).status_code == 404
            assert (await console.get("/api/gift-cards", params={"last4": "12a4"})).status_code == 400
        audited = await query(codes_hub.database_url, "SELECT action, details::text FROM audit_records ORDER BY seq")
        assert [row["action"] for row in audited if row["action"].startswith("gift_card")] == [
            "gift_card.issued", "gift_card.topped_up", "gift_card.blocked"]
        stored = await query(codes_hub.database_url, "SELECT g.*, l.* FROM gift_cards g JOIN gift_card_ledger l"
                                                     " ON l.card = g.id")
        assert digits not in repr([dict(row) for row in stored]) + repr([dict(row) for row in audited])
        nursery.cancel_scope.cancel()


async def test_a_hub_without_a_gift_card_key_says_what_to_configure(codes_hub: HubConfig,
                                                                     stores_nats: EmbeddedNats) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, dataclasses.replace(codes_hub, gift_card_key_file=None))
        await fleet_world(codes_hub.database_url)
        async with httpx.AsyncClient(timeout=10, base_url=hub.url) as console:
            await sign_in_admin(console, hub.url, codes_hub.database_url)
            for answer in (await console.post("/api/gift-cards", json={"amount_minor": 2500}),
                           await console.get("/api/gift-cards")):
                assert answer.status_code == 503 and "[gift_cards] key_file" in answer.json()["error"], answer.text
        await _answering(stores_nats)
        for kind, body in (("gift_card_balance", {"card": "4242424242424242"}),
                           ("gift_card_reverse", {"redemption": "r-1", "actor": "alice"})):
            with pytest.raises(HubRefused) as refused:
                await ask_store(stores_nats, kind, body)
            assert refused.value.code == 503 and "key_file" in str(refused.value)
        nursery.cancel_scope.cancel()


async def test_the_coupons_console(codes_hub: HubConfig, stores_nats: EmbeddedNats) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, codes_hub)
        await fleet_world(codes_hub.database_url)
        await on_database(codes_hub.database_url, code_only_promotion)
        async with httpx.AsyncClient(timeout=10, base_url=hub.url) as console:
            await sign_in_admin(console, hub.url, codes_hub.database_url)
            named = await console.post("/api/coupons", json={"promotion": PROMOTION, "code": "summer10",
                                                             "max_uses": 100, "per_customer": 1,
                                                             "expires_at": "2099-01-01T00:00:00Z"})
            assert named.status_code == 201 and named.json()["code"] == "SUMMER10"
            assert (await console.post("/api/coupons", json={"promotion": PROMOTION, "code": "SUMMER10",
                                                             "max_uses": 1})).status_code == 409
            before = await query(codes_hub.database_url, "SELECT count(*) AS n FROM coupon_codes")
            for path, bad in (("/api/coupon-batches", {"promotion": PROMOTION, "count": 0}),
                              ("/api/coupon-batches", {"promotion": PROMOTION, "count": 10_001}),
                              ("/api/coupon-batches", {"promotion": "not-a-uuid", "count": 5}),
                              ("/api/coupon-batches", {"promotion": PROMOTION, "count": 5, "expires_at": "tomorrow"}),
                              ("/api/coupons", {"promotion": PROMOTION, "code": "bad code!", "max_uses": 2}),
                              ("/api/coupons", {"promotion": PROMOTION, "max_uses": 0}),
                              ("/api/coupons", {"promotion": PROMOTION, "max_uses": 2, "per_customer": -1})):
                refused = await console.post(path, json=bad)
                assert refused.status_code == 422 and refused.json()["error"], (bad, refused.text)
            assert await query(codes_hub.database_url, "SELECT count(*) AS n FROM coupon_codes") == before
            batch = (await console.post("/api/coupon-batches", json={"promotion": PROMOTION, "count": 30})).json()
            first = (await console.get("/api/coupons", params={"batch": batch["batch"], "limit": 20})).json()
            second = (await console.get("/api/coupons", params={"batch": batch["batch"], "after": first["next"]}))
            assert [item["code"] for item in first["items"] + second.json()["items"]] == batch["codes"]
            assert (await console.post("/api/coupons/SUMMER10/block", json={"reason": "leaked"})).json()["active"] \
                is False
            detail = (await console.get("/api/coupons/summer10")).json()
            assert detail["coupon"]["active"] is False and detail["uses"] == []
            assert (await console.get("/api/coupons/NOPE")).status_code == 404
            assert (await console.get("/api/coupons", params={"promotion": "x"})).status_code == 400
        audited = await query(codes_hub.database_url, "SELECT action FROM audit_records WHERE action LIKE 'coupon.%'"
                                                      " ORDER BY seq")
        assert [row["action"] for row in audited] == ["coupon.created", "coupon.batch_created", "coupon.blocked"]
        nursery.cancel_scope.cancel()


async def test_a_sale_through_ingest_confirms_its_coupon_and_gift_card(
        codes_hub: HubConfig, stores_nats: EmbeddedNats) -> None:
    """The till's path end to end: reserve a code and redeem a gift card over NATS, then the sale.completed v5 and a
    return.completed v3 through JetStream and the hub's ingest confirm them (once, however often replayed)."""
    await build_world(codes_hub.database_url)
    await on_database(codes_hub.database_url, code_only_promotion)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, codes_hub)
        async with httpx.AsyncClient(timeout=10, base_url=hub.url) as console:
            await sign_in_admin(console, hub.url, codes_hub.database_url)
            code = (await console.post("/api/coupon-batches", json={"promotion": PROMOTION, "count": 1})).json()[
                "codes"][0]
            issued = (await console.post("/api/gift-cards", json={"amount_minor": 1000})).json()
        digits = issued["number"].replace(" ", "")
        await _answering(stores_nats)
        assert isinstance(await _ask(stores_nats, "coupon_reserve", _reserve(code, "c-1")), dict)
        assert isinstance(await _ask(stores_nats, "gift_card_redeem", {
            "card": digits, "redemption": "g-1", "amount_minor": 500, "currency": "EUR", "till": "till-1",
            "actor": "alice"}), dict)
        sold = sale([coupon(code, "c-1"), coupon("SPRING", "o-1", offline=True)], gift_card=("g-1", 500))
        [gift] = [tender for tender in sold.body["tenders"] if tender["method"] == "gift_card"]
        gift["gift_card"]["card"] = digits  # a till bug sending the whole number: the hub keeps it masked
        sale_events = [(event_subject("demo", "store-001", sold.type), sold.encode(), None)]
        await publish(stores_nats, sale_events + sale_events)  # sent twice: the inbox applies each once
        await wait_until(lambda: _sale_confirmed(codes_hub.database_url))
        refund = {"card": digits, "redemption": "f-1", "amount_minor": 120, "currency": "EUR", "till": "till-1",
                  "actor": "alice", "order": str(sold.id)}
        assert await _ask(stores_nats, "gift_card_refund", {**refund, "redemption": "f-0", "amount_minor": 501}) \
            == 409  # more than the sale's gift card tender took
        assert isinstance(await _ask(stores_nats, "gift_card_refund", refund), dict)
        back = _return_v3("f-1", 120)
        events = [(event_subject("demo", "store-001", back.type), back.encode(), None)]
        await publish(stores_nats, events + events)
        await wait_until(lambda: _all_confirmed(codes_hub.database_url))
        await trio.sleep(0.5)
        used = await query(codes_hub.database_url, "SELECT redemption, state, sale_event FROM coupon_redemptions"
                                                   " ORDER BY redemption")
        assert [(row["redemption"], row["state"], row["sale_event"]) for row in used] == [
            ("c-1", "used", sold.id), ("o-1", "used", sold.id)]
        assert (await query(codes_hub.database_url, "SELECT uses FROM coupon_codes"))[0]["uses"] == 1
        ledger = await query(codes_hub.database_url, "SELECT kind, sale_event FROM gift_card_ledger ORDER BY id")
        assert [(row["kind"], row["sale_event"]) for row in ledger] == [
            ("issue", None), ("redeem", sold.id), ("refund", back.id)]
        kept = await query(codes_hub.database_url, "SELECT gift_card_masked FROM sale_tenders WHERE method = 'gift_card'")
        assert [row["gift_card_masked"] for row in kept] == ["**** " + digits[-4:]]
        assert (await _ask(stores_nats, "gift_card_reverse", {"redemption": "g-1", "actor": "alice"})) == 409
        assert (await _ask(stores_nats, "coupon_release", {"redemption": "c-1", "actor": "alice"})) == 409
        async with httpx.AsyncClient(timeout=10) as scrape:
            metrics = (await scrape.get(f"{hub.url}/metrics")).text
        for line in ('novapos_hub_coupon_uses_total{how="held"}', 'novapos_hub_coupon_uses_total{how="offline"}',
                     'novapos_hub_gift_card_confirmations_total{kind="redeem",result="confirmed"}',
                     'novapos_hub_gift_card_confirmations_total{kind="refund",result="confirmed"}',
                     'novapos_hub_gift_card_operations_total{operation="redeem",result="done"}',
                     'novapos_hub_coupon_reservations_total{result="held"}'):
            assert line in metrics, line
        nursery.cancel_scope.cancel()


async def _sale_confirmed(database_url: str) -> bool:
    rows = await query(database_url, "SELECT count(*) AS n FROM gift_card_ledger WHERE sale_event IS NOT NULL")
    return bool(rows[0]["n"] == 1)


async def _all_confirmed(database_url: str) -> bool:
    rows = await query(database_url, "SELECT (SELECT count(*) FROM coupon_redemptions WHERE state = 'used')"
                                     " + (SELECT count(*) FROM gift_card_ledger WHERE sale_event IS NOT NULL) AS n")
    return bool(rows[0]["n"] == 4)


async def test_who_may_see_and_change_a_code_or_a_card(codes_hub: HubConfig, stores_nats: EmbeddedNats) -> None:
    """The {id} routes by role: promotions.view reads a code, only a tenant-wide promotions.manage withdraws it;
    gift_cards.manage (a tenant or region admin) for every card route; another tenant's code or card is 404."""
    url = codes_hub.database_url
    await build_world(url)
    await on_database(url, code_only_promotion)
    for login, role, where in (("ada", "tenant_admin", None), ("nora", "regional_admin", "north"),
                               ("mona", "store_manager", "store-001"), ("sam", "supervisor", "store-001")):
        await add_user(url, login, grant(role, where))
    await add_user(url, "otto", grant("tenant_admin"), tenant="other")
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        hub = await nursery.start(run_hub, codes_hub)
        people = {login: await stack.enter_async_context(signed_in(hub.url, login))
                  for login in ("ada", "nora", "mona", "sam", "otto")}
        assert (await people["ada"].post("/api/coupons", json={"promotion": PROMOTION, "code": "ROLE1",
                                                               "max_uses": 2})).status_code == 201
        card = (await people["ada"].post("/api/gift-cards", json={"amount_minor": 100})).json()["card"]["id"]
        why = {"reason": "checking roles"}
        expected = {  # login: (GET code, block code, GET card, top up card, block card)
            "ada": (200, 200, 200, 200, 200), "nora": (200, 403, 200, 200, 200), "mona": (200, 403, 403, 403, 403),
            "sam": (403, 403, 403, 403, 403), "otto": (404, 404, 404, 404, 404)}
        for login, statuses in expected.items():
            client = people[login]
            got = ((await client.get("/api/coupons/ROLE1")).status_code,
                   (await client.post("/api/coupons/ROLE1/block", json=why)).status_code,
                   (await client.get(f"/api/gift-cards/{card}")).status_code,
                   (await client.post(f"/api/gift-cards/{card}/top-ups", json={"amount_minor": 1})).status_code,
                   (await client.post(f"/api/gift-cards/{card}/block", json=why)).status_code)
            assert got == statuses, (login, got)
            await people["ada"].post("/api/coupons/ROLE1/unblock", json=why)
            await people["ada"].post(f"/api/gift-cards/{card}/unblock", json=why)
        assert (await people["ada"].get(f"/api/gift-cards/{card}")).json()["card"]["balance_minor"] == 102
        # unused codes are bearer secrets: listed in full only with promotions.manage across the tenant
        assert [item["code"] for item in (await people["ada"].get("/api/coupons")).json()["items"]] == ["ROLE1"]
        for login in ("nora", "mona"):
            listed = (await people[login].get("/api/coupons")).json()
            assert [item["code"] for item in listed["items"]] == ["…OLE1"] and listed["next"] is None, login
        targets = await query(url, "SELECT target FROM audit_records WHERE action LIKE 'coupon.%'")
        assert targets and all("ROLE1" not in row["target"] for row in targets)
        nursery.cancel_scope.cancel()


async def _uses(database_url: str, code: str, expected: int) -> bool:
    return bool((await query(database_url, "SELECT uses FROM coupon_codes WHERE code = $1", code))[0]["uses"]
                == expected)
