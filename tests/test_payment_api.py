"""The console's payments API on a running hub with the acquirer simulator: a person's capture, void and refund
(audited, 409 invalid_state_transition with the state), Idempotency-Key (the same key and body answered once; another
body 409), a lost answer left processing (202) and resolved by the watchdog without a second charge, the offline
limits, who may do what, and another tenant's intent not found."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.acquirer_support import RunningAcquirer, running_acquirer
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.fleet import fleet_world
from tests.identity import add_user, grant, signed_in
from tests.payment_support import answering, approval, ask_store, hub_settings


async def approved(nats_server: EmbeddedNats, acquirer: RunningAcquirer, tender: str, amount: int = 1000) \
        -> dict[str, Any]:
    acquirer.report_terminal_approval(f"pay_{tender}", amount)
    intent: dict[str, Any] = (await ask_store(nats_server, "pay_intent", approval(tender, amount)))["intent"]
    return intent


async def audit(database_url: str) -> list[tuple[str, str, str | None]]:
    return [(row["actor"], row["action"], row["target"]) for row in await query(
        database_url, "SELECT actor, action, target FROM audit_records WHERE action LIKE 'payment.%' ORDER BY seq")]


async def test_a_person_captures_voids_and_refunds_once(nats_server: EmbeddedNats, hub_config: HubConfig,
                                                        http: httpx.AsyncClient) -> None:
    with running_acquirer(lost_answer_s=3) as acquirer:
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, hub_settings(hub_config, acquirer.url))
            await fleet_world(hub_config.database_url)
            await answering(nats_server)
            admin = await sign_in_admin(http, hub.url, hub_config.database_url)
            api = f"{hub.url}/api/payments"
            one = await approved(nats_server, acquirer, "t1")
            two = await approved(nats_server, acquirer, "t2")

            page = (await http.get(f"{api}/intents", params={"limit": "1"})).json()
            assert [item["id"] for item in page["items"]] == [two["id"]] and page["next"]
            rest = (await http.get(f"{api}/intents", params={"after": page["next"]})).json()
            assert [item["id"] for item in rest["items"]] == [one["id"]] and rest["next"] is None
            assert (await http.get(f"{api}/intents", params={"state": "captured"})).json()["items"] == []
            assert (await http.get(f"{api}/intents", params={"state": "paid"})).status_code == 400
            assert (await http.get(f"{api}/intents", params={"store": "store-404"})).status_code == 404

            key = {"idempotency-key": "capture-t1"}
            captured = await http.post(f"{api}/intents/{one['id']}/capture", json={}, headers=key)
            assert captured.status_code == 200 and captured.json()["intent"]["state"] == "captured"
            again = await http.post(f"{api}/intents/{one['id']}/capture", json={}, headers=key)
            assert (again.status_code, again.json()) == (200, captured.json())  # the first answer, kept
            other = await http.post(f"{api}/intents/{one['id']}/capture", json={"amount_minor": 5}, headers=key)
            assert other.status_code == 409 and other.json()["code"] == "conflict"
            too_long = await http.post(f"{api}/intents/{one['id']}/capture", json={},
                                       headers={"idempotency-key": "k" * 256})
            assert too_long.status_code == 422 and "Idempotency-Key" in too_long.json()["error"]
            twice = await http.post(f"{api}/intents/{one['id']}/capture", json={})
            assert twice.status_code == 409
            assert twice.json()["code"] == "invalid_state_transition" and twice.json()["state"] == "captured"

            refund = {"amount_minor": 300, "reason": "a broken cup"}
            made = await http.post(f"{api}/intents/{one['id']}/refund", json=refund, headers={"idempotency-key": "r1"})
            assert made.status_code == 200 and made.json()["refund"]["state"] == "succeeded"
            assert (await http.post(f"{api}/intents/{one['id']}/refund", json=refund,
                                    headers={"idempotency-key": "r1"})).json() == made.json()
            assert acquirer.payment("pay_t1")["refunded_minor"] == 300  # refunded once
            shown = (await http.get(f"{api}/intents/{one['id']}")).json()
            assert shown["intent"]["refunded_minor"] == 300 and [r["amount_minor"] for r in shown["refunds"]] == [300]
            too_much = await http.post(f"{api}/intents/{one['id']}/refund", json={"amount_minor": 701})
            assert too_much.status_code == 409 and too_much.json()["state"] == "captured"

            voided = await http.post(f"{api}/intents/{two['id']}/cancel", json={"reason": "customer left"})
            assert voided.status_code == 200 and voided.json()["intent"]["state"] == "cancelled"
            assert acquirer.payment("pay_t2")["status"] == "cancelled"
            assert await audit(hub_config.database_url) == [
                (admin, "payment.captured", one["id"]), (admin, "payment.refunded", one["id"]),
                (admin, "payment.voided", two["id"])]

            created = await http.post(f"{api}/intents", json={"store": "store-001", "tender_id": "phone-1",
                                                              "amount_minor": 2500, "currency": "EUR"})
            assert created.status_code == 201 and created.json()["intent"]["state"] == "awaiting_payment_method"
            assert (await http.post(f"{api}/intents", json={"store": "store-001", "tender_id": "phone-1",
                                                            "amount_minor": 2501, "currency": "EUR"})).status_code == 409
            assert (await http.get(f"{api}/intents/{'0' * 8}-0000-7000-8000-{'0' * 12}")).status_code == 404
            nursery.cancel_scope.cancel()


async def test_a_lost_answer_is_202_and_the_watchdog_settles_it_with_one_charge(
        nats_server: EmbeddedNats, hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    with running_acquirer(lost_answer_s=3) as acquirer:
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, hub_settings(hub_config, acquirer.url))
            await fleet_world(hub_config.database_url)
            await answering(nats_server)
            await sign_in_admin(http, hub.url, hub_config.database_url)
            intent = await approved(nats_server, acquirer, "lost", 1200)
            waiting = await http.post(f"{hub.url}/api/payments/intents/{intent['id']}/capture",
                                      json={"amount_minor": 1091})  # the simulator never answers ..91
            assert waiting.status_code == 202 and waiting.json()["intent"]["pending"] == "capture"
            [row] = await query(hub_config.database_url, "SELECT pending_key FROM payment_intents WHERE id = $1",
                                waiting.json()["intent"]["id"])

            async def settled() -> Any:
                shown = (await http.get(f"{hub.url}/api/payments/intents/{intent['id']}")).json()["intent"]
                return shown if shown["state"] == "captured" else None
            shown = await wait_until(settled, timeout=20)
            assert shown["captured_minor"] == 1091
            assert acquirer.executions(row["pending_key"]) == 1  # asked how it ended, never charged again
            metrics = (await http.get(f"{hub.url}/metrics")).text
            assert 'novapos_hub_payment_actions_total{action="resolve",result="answered"}' in metrics
            assert "novapos_hub_payment_intents{" in metrics
            nursery.cancel_scope.cancel()


async def test_who_may_see_and_change_payments(nats_server: EmbeddedNats, hub_config: HubConfig,
                                               http: httpx.AsyncClient) -> None:
    with running_acquirer() as acquirer:
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, hub_settings(hub_config, acquirer.url))
            await fleet_world(hub_config.database_url)
            await answering(nats_server)
            admin = await sign_in_admin(http, hub.url, hub_config.database_url)
            api = f"{hub.url}/api/payments"
            intent = await approved(nats_server, acquirer, "t1")
            assert (await http.get(f"{api}/settings")).json() == {"offline_per_payment_minor": 5000,
                                                                   "offline_store_total_minor": 20000}
            bad = await http.put(f"{api}/settings", json={"offline_per_payment_minor": 9000,
                                                          "offline_store_total_minor": 100})
            assert bad.status_code == 422
            limits = {"offline_per_payment_minor": 3000, "offline_store_total_minor": 12000}
            assert (await http.put(f"{api}/settings", json=limits)).json() == limits
            assert await ask_store(nats_server, "pay_settings", {}) == limits
            assert (admin, "payment.settings_changed", None) in await audit(hub_config.database_url)

            await add_user(hub_config.database_url, "sm1", grant("store_manager", "store-001"))
            await add_user(hub_config.database_url, "sm3", grant("store_manager", "store-003"))
            async with signed_in(hub.url, "sm1") as manager:
                assert (await manager.get(f"/api/payments/intents/{intent['id']}")).status_code == 200
                assert len((await manager.get("/api/payments/intents")).json()["items"]) == 1
                refused = await manager.post(f"/api/payments/intents/{intent['id']}/cancel", json={})
                assert refused.status_code == 403
                assert (await manager.put("/api/payments/settings", json=limits)).status_code == 403
            async with signed_in(hub.url, "sm3") as elsewhere:
                assert (await elsewhere.get(f"/api/payments/intents/{intent['id']}")).status_code == 403
                assert (await elsewhere.get("/api/payments/intents")).json()["items"] == []
            async with httpx.AsyncClient(timeout=10) as stranger:
                await sign_in_admin(stranger, hub.url, hub_config.database_url, tenant="other")
                assert (await stranger.get(f"{api}/intents/{intent['id']}")).status_code == 404
                assert (await stranger.post(f"{api}/intents/{intent['id']}/cancel", json={})).status_code == 404
                assert (await stranger.get(f"{api}/intents")).json()["items"] == []
            assert (await http.get(f"{api}/intents/{intent['id']}")).json()["intent"]["state"] == "authorized"
            nursery.cancel_scope.cancel()
