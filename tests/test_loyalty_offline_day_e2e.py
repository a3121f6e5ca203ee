"""An offline day of points redemptions at a real edge, reconciled at a real hub exactly (real NATS, PostgreSQL,
SQLite): the customer found by their card through the hub's customer_find, a redemption online, then the hub goes
away (the till attaches her from the store's recent customers) and the till takes points offline within the store's budget
and the customer's cap (one over the cap refused with a sentence, one voided and struck from the store's ledger),
the edge restarts in the middle of the day; the sales reach the hub's stream (NATS is up, the hub's services are
not), which frees the customer's cap (it bounds what the hub has not received); when the hub is back it debits each
offline redemption once, and the ledger and the balance agree to the point."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import trio

from actors.storage import db as local_db
from edge.app import run_edge
from hub.app import run_hub
from novapos.config import HubConfig, StoreConfig
from tests.conftest import query, wait_until
from tests.fleet import fleet_world
from tests.pos import COFFEE, MANAGER_OVERRIDE, log_in
from tests.stock_world import on_database
from tests.test_till_loyalty import Till

ANN = uuid.UUID("0190a3c4-7e1f-7b2a-9c3d-0000000000a1")
SEED = 3000
SEEDED = f"""
INSERT INTO customers (tenant, id, name, card_number, created_by) VALUES ('demo', '{ANN}', 'Ann', '2900000000017',
    'test');
INSERT INTO loyalty_accounts (tenant, customer, balance, tier) VALUES ('demo', '{ANN}', {SEED}, 'Member');
INSERT INTO loyalty_ledger (tenant, id, customer, key, kind, points, balance, actor) VALUES
    ('demo', '{uuid.uuid4()}', '{ANN}', 'seed-ann', 'adjust', {SEED}, {SEED}, 'test');
INSERT INTO loyalty_lots (tenant, id, customer, points, remaining, earned_at) VALUES
    ('demo', '{uuid.uuid4()}', '{ANN}', {SEED}, {SEED}, now());
"""
CAP = 1000  # the hub's default offline cap per customer (budget 5000 for the store)


async def _seed(database_url: str) -> None:
    async def seed(pool: asyncpg.Pool) -> None:
        await pool.execute(SEEDED)
    await fleet_world(database_url)
    await on_database(database_url, seed)


async def _online_points(till: Till, points: int) -> dict[str, Any] | None:
    """A sale paid in part with points through the hub, once the hub answers (before it does, the till has no
    loyalty settings and refuses points: nothing is taken); the points tender."""
    await till.start((COFFEE, 1))
    found = (await till.find("2900000000017")).json()  # the loyalty card, scanned: the hub's customer_find
    if found.get("offline") is not False or [c["id"] for c in found["customers"]] != [str(ANN)]:
        return None
    await till.attach(str(ANN))
    paid = await till.points(points)
    if paid.status_code != 200:
        return None
    await till.cash_and_complete()
    return dict(paid.json()["tenders"][0])


async def _sell_with_points(till: Till, points: int) -> httpx.Response:
    await till.start((COFFEE, 3))  # 14.97
    await till.attach(str(ANN))
    paid = await till.points(points)
    if paid.status_code == 200:
        await till.cash_and_complete()
    return paid


async def _ledger(database_url: str) -> dict[str, Any]:
    """Ann's ledger, balance and the offline redemptions, read in one statement (one snapshot: the ingest commits a
    sale's redemption and its ledger entry together)."""
    [row] = await query(database_url, """
        SELECT (SELECT json_agg(json_build_object('kind', kind, 'points', points)) FROM loyalty_ledger
                WHERE customer = $1) AS rows,
               (SELECT balance FROM loyalty_accounts WHERE customer = $1) AS balance,
               (SELECT coalesce(json_agg(json_build_object('redemption', redemption, 'points', points,
                                                           'state', state)), '[]') FROM loyalty_redemptions
                WHERE offline) AS offline""", ANN)
    return {"rows": json.loads(row["rows"]), "balance": row["balance"], "offline": json.loads(row["offline"])}


async def test_an_offline_day_of_redemptions_at_the_edge_is_reconciled_at_the_hub_exactly(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, http: httpx.AsyncClient) -> None:
    await _seed(database_url)
    async with trio.open_nursery() as nursery:
        hub_scope = trio.CancelScope()

        async def hub(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with hub_scope:
                await run_hub(hub_config, task_status=task_status)
        await nursery.start(hub)
        edge_scope = trio.CancelScope()

        async def edge(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with edge_scope:
                await run_edge(store_config, task_status=task_status)
        running = await nursery.start(edge)
        till = Till(http, running.url)
        online = await wait_until(lambda: _online_points(till, 200), timeout=20)  # settings kept from here on
        assert online["points"]["offline"] is False

        hub_scope.cancel()  # the hub goes away: the day goes on offline
        await trio.sleep(0.5)
        taken = []
        for points in (300, 250):
            paid = await _sell_with_points(till, points)
            assert paid.status_code == 200 and paid.json()["tenders"][0]["points"]["offline"] is True, paid.text
            taken.append(points)
        voided = await till.start((COFFEE, 1))
        await till.attach(str(ANN))
        assert (await till.points(400)).status_code == 200  # taken offline, then the customer changes their mind
        assert (await http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})).status_code == 200
        assert voided

        edge_scope.cancel()  # the edge restarts mid-day
        await trio.sleep(0.5)
        edge_scope = trio.CancelScope()
        running = await nursery.start(edge)
        till = Till(http, running.url)
        await log_in(http, running.url)

        async def forwarded() -> bool:  # the stream has the sales, though the hub's services are away
            box = local_db.connect(store_config.state_dir / local_db.FILE_NAME)
            try:
                return not box.execute("SELECT count(*) FROM outbox").fetchone()[0]
            finally:
                box.close()
        await wait_until(forwarded, timeout=20)
        over = await _sell_with_points(till, CAP + 1)  # the cap counts only what the hub has not received
        assert over.status_code == 409 and f"this one has {CAP} left" in over.text
        await http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})
        last = await _sell_with_points(till, CAP)
        assert last.status_code == 200
        taken.append(CAP)

        hub_scope = trio.CancelScope()
        await nursery.start(hub)  # the hub is back: the day's sales arrive

        async def reconciled() -> dict[str, Any] | None:
            seen = await _ledger(database_url)
            return seen if len(seen["offline"]) == len(taken) and all(
                row["state"] == "used" for row in seen["offline"]) else None
        seen = await wait_until(reconciled, timeout=30)
        assert sorted(row["points"] for row in seen["offline"]) == sorted(taken)
        redeemed = [row for row in seen["rows"] if row["kind"] == "redeem"]
        assert sorted(-row["points"] for row in redeemed) == sorted([200, *taken])  # each once, nothing voided
        assert seen["balance"] == sum(row["points"] for row in seen["rows"])  # the cache agrees with the truth
        earned = sum(row["points"] for row in seen["rows"] if row["kind"] == "earn")
        assert seen["balance"] == SEED - 200 - sum(taken) + earned
        edge_db = local_db.connect(store_config.state_dir / local_db.FILE_NAME)
        try:
            ledger = dict(edge_db.execute("SELECT redemption, state FROM loyalty_offline_redemptions").fetchall())
        finally:
            edge_db.close()
        assert sorted(r for r, s in ledger.items() if s == "taken") == sorted(row["redemption"] for row in seen["offline"])
        assert list(ledger.values()).count("reversed") == 1  # the voided one never reached the hub
        nursery.cancel_scope.cancel()
