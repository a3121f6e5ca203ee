"""Loyalty through a running hub: the stores' requests over real NATS (asked as a store asks them, with its own
NATS user) answered within the asking store's tenant only, and the console's loyalty API (the program, an account's
ledger, adjustments) with its permissions, its audit records and hostile input refused without a change."""

from __future__ import annotations

import dataclasses
import json
import uuid

import asyncpg
import httpx
import trio

from actors.payments.asking import HubRefused, HubUnreachable
from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.events import publish
from tests.fleet import fleet_world
from tests.identity import PASSWORD, add_user, grant
from tests.loyalty_support import ALICE, BOB, STRANGER, customer_sale
from tests.payment_support import ask_store
from tests.stock_world import on_database

CUSTOMERS = f"""
INSERT INTO customers (tenant, id, name, created_by) VALUES ('demo', '{ALICE}', 'Alice', 'test'),
    ('demo', '{BOB}', 'Bob', 'test'), ('other', '{STRANGER}', 'Stranger', 'test');
INSERT INTO loyalty_accounts (tenant, customer, balance, tier) VALUES ('demo', '{ALICE}', 500, 'Member'),
    ('other', '{STRANGER}', 500, 'Member');
INSERT INTO loyalty_ledger (tenant, id, customer, key, kind, points, balance, actor) VALUES
    ('demo', '{uuid.uuid4()}', '{ALICE}', 'seed-a', 'adjust', 500, 500, 'test'),
    ('other', '{uuid.uuid4()}', '{STRANGER}', 'seed-s', 'adjust', 500, 500, 'test');
INSERT INTO loyalty_lots (tenant, id, customer, points, remaining, earned_at) VALUES
    ('demo', '{uuid.uuid4()}', '{ALICE}', 500, 500, now()), ('other', '{uuid.uuid4()}', '{STRANGER}', 500, 500, now());
"""


async def _customers(database_url: str) -> None:
    async def seed(pool: asyncpg.Pool) -> None:
        await pool.execute(CUSTOMERS)
    await on_database(database_url, seed)


async def _refused(nats_server: EmbeddedNats, kind: str, body: dict[str, object]) -> HubRefused:
    try:
        answer = await ask_store(nats_server, kind, body)
    except HubRefused as exc:
        return exc
    raise AssertionError(f"{kind} {body} was answered {answer}")


async def _answering(nats_server: EmbeddedNats) -> None:
    with trio.fail_after(15):
        while True:
            try:
                await ask_store(nats_server, "loyalty_settings", {})
                return
            except HubUnreachable:
                await trio.sleep(0.1)


def _redeem(redemption: str, points: int, customer: uuid.UUID = ALICE) -> dict[str, object]:
    return {"redemption": redemption, "customer": str(customer), "points": points, "till": "till-1", "actor": "bob"}


async def test_a_stores_loyalty_requests_over_nats(nats_server: EmbeddedNats, hub_config: HubConfig) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await fleet_world(hub_config.database_url)
        await _customers(hub_config.database_url)
        await _answering(nats_server)
        settings = await ask_store(nats_server, "loyalty_settings", {})
        assert (settings["point_value_minor"], settings["currency"], settings["offline_store_budget_points"],
                settings["offline_customer_cap_points"]) == (1, "EUR", 5000, 1000)
        assert [tier["name"] for tier in settings["tiers"]] == ["Member", "Silver", "Gold"]

        taken = await ask_store(nats_server, "points_redeem", _redeem("r-1", 120))
        assert taken == {"redemption": "r-1", "points": 120, "balance": 380, "value_minor": 120, "currency": "EUR"}
        assert await ask_store(nats_server, "points_redeem", _redeem("r-1", 120)) == taken  # the same: once
        assert (await _refused(nats_server, "points_redeem", _redeem("r-1", 121))).code == 409
        short = await _refused(nats_server, "points_redeem", _redeem("r-2", 381))
        assert short.code == 409 and "380 points" in str(short)
        # the other tenant's customer, and a customer with no account, from this store: not found / nothing to take
        assert (await _refused(nats_server, "points_redeem", _redeem("r-3", 1, STRANGER))).code == 404
        assert (await _refused(nats_server, "points_redeem", _redeem("r-4", 1, BOB))).code == 409
        assert await ask_store(nats_server, "points_reverse", {"redemption": "r-1", "actor": "bob",
                                                               "reason": "void"}) == {"redemption": "r-1",
                                                                                      "reversed": True}
        balance = await query(hub_config.database_url, "SELECT customer, balance FROM loyalty_accounts")
        assert {row["customer"]: row["balance"] for row in balance} == {ALICE: 500, STRANGER: 500}

        malformed: list[tuple[str, dict[str, object]]] = [
                          ("points_redeem", {**_redeem("r-5", 1), "points": 0}),
                          ("points_redeem", {**_redeem("r-5", 1), "points": 1.5}),
                          ("points_redeem", {**_redeem("r-5", 1), "customer": "alice"}),
                          ("points_redeem", {**_redeem("r-5", 1), "redemption": "../x"}),
                          ("points_redeem", {**_redeem("r-5", 1), "actor": "hub:me"}),
                          ("points_redeem", {**_redeem("r-5", 1), "till": None}),
                          ("points_reverse", {"redemption": "r\n1", "actor": "bob"}),
                          ("points_reverse", {"redemption": "r-1"})]
        for kind, bad in malformed:
            assert (await _refused(nats_server, kind, bad)).code == 400, (kind, bad)
        ledger = await query(hub_config.database_url, "SELECT count(*) AS n FROM loyalty_ledger")
        assert ledger[0]["n"] == 4  # two seeds, the redemption and its reversal
        nursery.cancel_scope.cancel()


PROGRAM = {"point_value_minor": 1, "earn_points_per_unit": 2, "earn_unit_minor": 100, "earn_per_order_points": 0,
           "earn_bonuses": [{"category": "food/dairy", "points_per_unit": 5}],
           "tiers": [{"name": "Member", "min_spend_minor": 0, "multiplier_ppm": 1_000_000}],
           "expiry_months": 24, "notice_days": 14, "offline_store_budget_points": 800,
           "offline_customer_cap_points": 200}


async def test_the_console_sets_the_program_shows_a_ledger_and_adjusts_with_audit(
        nats_server: EmbeddedNats, hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    from tests.test_hostile_input import HOSTILE_VALUES
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await fleet_world(hub_config.database_url)
        await _customers(hub_config.database_url)
        await sign_in_admin(http, hub.url, hub_config.database_url)
        api = f"{hub.url}/api/loyalty"
        assert (await http.get(f"{api}/program")).json()["expiry_months"] == 12  # the default
        saved = await http.put(f"{api}/program", json=PROGRAM)
        assert saved.status_code == 200 and saved.json() == {**PROGRAM, "currency": "EUR", "adjust_max_points": 100_000}
        assert (await http.get(f"{api}/program")).json() == saved.json()
        await _answering(nats_server)
        assert (await ask_store(nats_server, "loyalty_settings", {}))["offline_store_budget_points"] == 800

        adjusted = await http.post(f"{api}/accounts/{ALICE}/adjust", json={"points": -50, "reason": "goodwill fix"})
        assert adjusted.status_code == 200 and adjusted.json()["summary"]["points"] == 450
        assert (await http.post(f"{api}/accounts/{ALICE}/adjust", json={"points": -451, "reason": "x"})).status_code \
            == 409
        assert (await http.post(f"{api}/accounts/{ALICE}/adjust", json={"points": 100_001, "reason": "x"})) \
            .status_code == 409  # over the program's adjust_max_points
        once = {"Idempotency-Key": "adjust-once-1"}  # a double click: the second gets the first answer
        twice = [await http.post(f"{api}/accounts/{ALICE}/adjust", json={"points": 50, "reason": "goodwill fix"},
                                 headers=once) for _ in range(2)]
        assert [answer.json()["summary"]["points"] for answer in twice] == [500, 500]
        other = await http.post(f"{api}/accounts/{ALICE}/adjust", json={"points": 51, "reason": "x"}, headers=once)
        assert other.status_code == 409  # the key was another request's
        assert (await http.post(f"{api}/accounts/{ALICE}/adjust", json={"points": -50, "reason": "undo"})) \
            .json()["summary"]["points"] == 450
        account = (await http.get(f"{api}/accounts/{ALICE}")).json()
        assert [(entry["kind"], entry["points"], entry["balance"]) for entry in account["ledger"]] == [
            ("adjust", -50, 450), ("adjust", 50, 500), ("adjust", -50, 450), ("adjust", 500, 500)]
        assert account["ledger"][0]["actor"] == "admin-demo"
        assert (await http.get(f"{api}/accounts/{STRANGER}")).status_code == 404  # another tenant's
        assert (await http.post(f"{api}/accounts/{STRANGER}/adjust", json={"points": 5, "reason": "x"})) \
            .status_code == 404
        audit = await query(hub_config.database_url, "SELECT action, target, details FROM audit_records WHERE"
                                                     " action LIKE 'loyalty.%' ORDER BY seq")
        assert [row["action"] for row in audit] == ["loyalty.program_changed"] + ["loyalty.adjusted"] * 3
        assert json.loads(audit[1]["details"])["reason"] == "goodwill fix" and audit[1]["target"] == str(ALICE)

        problems = []
        for path, fields in ((f"{api}/program", PROGRAM), (f"{api}/accounts/{ALICE}/adjust",
                                                           {"points": 5, "reason": "ok"})):
            for name in fields:
                for label, hostile in HOSTILE_VALUES:
                    if (name, label) in {("earn_per_order_points", "zero"), ("earn_bonuses", "list"),
                                         ("expiry_months", "zero"), ("notice_days", "zero"),
                                         ("offline_store_budget_points", "zero"), ("points", "negative"),
                                         ("offline_customer_cap_points", "zero"), ("earn_points_per_unit", "zero")}:
                        continue  # valid there
                    body = "{" + ", ".join(f'"{key}": {hostile if key == name else json.dumps(value)}'
                                           for key, value in fields.items()) + "}"
                    method = http.put if path.endswith("program") else http.post
                    response = await method(path, content=body, headers={"content-type": "application/json"})
                    if not 400 <= response.status_code < 500 or "error" not in response.json():
                        problems.append(f"{path} {name}={label}: {response.status_code} {response.text[:80]}")
        for segment in ("alice", "..%2F..", "0" * 5000):
            if (await http.get(f"{api}/accounts/{segment}")).status_code != 404:
                problems.append(f"GET accounts/{segment[:20]}")
        for limit in ("0", "-1", "abc", "9" * 50, "\u00b2", "\u0663"):
            if (await http.get(f"{api}/accounts/{ALICE}", params={"limit": limit})).status_code != 422:
                problems.append(f"limit={limit[:20]}")
        assert not problems, "\n".join(problems)
        assert (await http.get(f"{api}/program")).json() == saved.json()
        assert (await http.get(f"{api}/accounts/{ALICE}")).json() == account

        manager = httpx.AsyncClient(timeout=10)  # a store manager sees the account but may not change anything
        await add_user(hub_config.database_url, "manny", grant("store_manager", "store-001"))
        login = await manager.post(f"{hub.url}/api/login", json={"login": "manny", "password": PASSWORD})
        manager.headers["x-csrf-token"] = login.json()["csrf"]
        assert (await manager.get(f"{api}/accounts/{ALICE}")).status_code == 200
        assert (await manager.post(f"{api}/accounts/{ALICE}/adjust", json={"points": 5, "reason": "x"})) \
            .status_code == 403
        assert (await manager.put(f"{api}/program", json=PROGRAM)).status_code == 403
        await manager.aclose()
        nursery.cancel_scope.cancel()


async def _balance(database_url: str, customer: uuid.UUID) -> tuple[int, int]:
    rows = await query(database_url, "SELECT a.balance, (SELECT sum(points) FROM loyalty_ledger l WHERE"
                                     " l.tenant = a.tenant AND l.customer = a.customer) AS ledger FROM"
                                     " loyalty_accounts a WHERE a.tenant = 'demo' AND a.customer = $1", customer)
    return int(rows[0]["balance"]), int(rows[0]["ledger"])


async def test_an_offline_day_arrives_through_the_ingest_and_is_reconciled_once(
        nats_server: EmbeddedNats, hub_config: HubConfig) -> None:
    """Alice has 500 points; store-001 redeems 12 x 50 offline while she redeems 100 online (points_redeem) and
    uses it in a sale: the day's sales reach the hub through NATS JetStream and the ingest, twice (the store
    resent them): each redemption is debited once. One offline redemption comes again inside another sale (a
    till reusing an id): that sale paid with points too, so it is debited again, under its own key, and counted as
    a correction (reused_redemption). The balance ends at 500 - 100 - 600 - 50 = -250 plus what the cash paid
    earned, the ledger sums to it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await fleet_world(hub_config.database_url)
        await _customers(hub_config.database_url)
        await _answering(nats_server)
        await ask_store(nats_server, "points_redeem", _redeem("online-1", 100))
        day = [customer_sale(ALICE, [("MILK-1L", 1, 60)], points=(f"off-{n}", 50, True)) for n in range(12)]
        day.append(customer_sale(ALICE, [("MILK-1L", 1, 250)], points=("online-1", 100, False)))
        again = customer_sale(ALICE, [("MILK-1L", 1, 50)], points=("off-0", 50, True))  # the same id, another sale
        for seq, event in enumerate([*day, *day, again], start=1):
            event = dataclasses.replace(event, seq=seq if seq <= len(day) else seq - len(day))
            await publish(nats_server, [(event_subject("demo", "store-001", "sale.completed"), event.encode(), None)])

        async def settled() -> bool:
            rows = await query(hub_config.database_url, "SELECT count(*) FROM loyalty_spend")
            return int(rows[0][0]) >= 14  # every sale event applied: the day's 13 and the one repeating off-0
        await wait_until(settled, timeout=30)
        await trio.sleep(1.0)  # the replays, had they counted, would land by now
        # earned: 12 x 0.10 cash (0 points each) + 1.50 cash (1 point) + the last sale's 0 cash = 1 point
        assert await _balance(hub_config.database_url, ALICE) == (-249, -249)
        debits = await query(hub_config.database_url, "SELECT key FROM loyalty_ledger WHERE kind = 'redeem'")
        assert sorted(row["key"] for row in debits) == sorted([f"off-{n}" for n in range(12)] + ["online-1"]
                                                              + [f"sold:off-0:{again.id}"])
        used = await query(hub_config.database_url, "SELECT state, order_id FROM loyalty_redemptions WHERE"
                                                    " redemption = 'online-1'")
        assert (used[0]["state"], used[0]["order_id"]) == ("used", day[-1].id)
        nursery.cancel_scope.cancel()
