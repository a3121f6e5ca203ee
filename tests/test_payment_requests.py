"""The stores' payment requests answered by a running hub over real NATS, asked as a store asks them (its own NATS
user, actors.payments.asking), with the acquirer simulator as the provider: approvals recorded once, cancels and
refunds through the provider, status and settings, and refusals in the answer's body."""

from __future__ import annotations

import uuid

import httpx
import trio

from actors.payments.asking import HubRefused
from hub.app import run_hub
from hub.payments.requests import RESPONDERS
from hub.payments.routes import console_refund_key
from hub.payments.service import Payments
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.payments import decode, encode
from tests.acquirer_support import running_acquirer
from tests.conftest import query
from tests.console_access import sign_in_admin
from tests.fleet import fleet_world
from tests.payment_support import answering, approval, ask_store, hub_settings, in_payments


async def refused(nats_server: EmbeddedNats, kind: str, body: dict[str, object]) -> HubRefused:
    try:
        answer = await ask_store(nats_server, kind, body)
    except HubRefused as exc:
        return exc
    raise AssertionError(f"{kind} {body} was answered {answer}")


async def test_a_stores_payment_requests(nats_server: EmbeddedNats, hub_config: HubConfig) -> None:
    with running_acquirer(lost_answer_s=3) as acquirer:
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, hub_settings(hub_config, acquirer.url))
            await fleet_world(hub_config.database_url)
            await answering(nats_server)
            assert await ask_store(nats_server, "pay_settings", {}) == {
                "offline_per_payment_minor": 5000, "offline_store_total_minor": 20000}

            acquirer.report_terminal_approval("pay_t1", 1000)
            first = (await ask_store(nats_server, "pay_intent", approval("t1")))["intent"]
            assert (first["state"], first["authorized_minor"], first["till"]) == ("authorized", 1000, "till-1")
            assert (await ask_store(nats_server, "pay_intent", approval("t1")))["intent"]["id"] == first["id"]
            other = await refused(nats_server, "pay_intent", approval("t1", 999))
            assert other.code == 409 and "amount_minor" in str(other)
            assert (await ask_store(nats_server, "pay_status", {"tender_id": "t1"}))["intent"] == first
            assert await ask_store(nats_server, "pay_status", {"tender_id": "nobody"}) == {"intent": None}

            cancelled = await ask_store(nats_server, "pay_cancel", {"tender_id": "t1", "actor": "bob",
                                                                    "reason": "customer left"})
            assert cancelled["intent"]["state"] == "cancelled"
            assert acquirer.payment("pay_t1")["status"] == "cancelled"
            again = await refused(nats_server, "pay_cancel", {"tender_id": "t1", "actor": "bob", "reason": "x"})
            assert again.code == 409 and "cancelled" in str(again)
            assert (await refused(nats_server, "pay_cancel", {"tender_id": "t9", "actor": "bob"})).code == 404
            assert (await refused(nats_server, "pay_refund", {"tender_id": "t1", "amount_minor": 1,
                                                              "refund_key": "r0", "actor": "bob"})).code == 409

            acquirer.report_terminal_approval("pay_t2", 2000)
            intent = (await ask_store(nats_server, "pay_intent", approval("t2", 2000)))["intent"]
            async with httpx.AsyncClient(timeout=10) as console:  # captured as a person would from the console
                await sign_in_admin(console, hub.url, hub_config.database_url)
                captured = await console.post(f"{hub.url}/api/payments/intents/{intent['id']}/capture", json={})
                assert captured.status_code == 200 and captured.json()["intent"]["state"] == "captured"
            refund = {"tender_id": "t2", "amount_minor": 500, "refund_key": "ret-1", "actor": "bob", "reason": "ret"}
            refunded = await ask_store(nats_server, "pay_refund", refund)
            assert refunded["refund"] == {"key": "ret-1", "amount_minor": 500, "state": "succeeded", "via": "provider"}
            assert refunded["intent"]["refunded_minor"] == 500
            assert await ask_store(nats_server, "pay_refund", refund) == refunded  # the same key: once

            for kind, bad in [("pay_intent", approval("t3", "ten")), ("pay_intent", approval("t3", currency="euro")),
                              ("pay_intent", approval("t3", authorized_minor=2000)),
                              ("pay_intent", approval("t3", offline=True)),
                              ("pay_intent", approval("t3", provider_ref="pay t3/../x")),
                              ("pay_intent", approval("t3", provider_ref=None)),
                              ("pay_cancel", {"tender_id": "t2", "actor": "hub:auto-void"}),
                              ("pay_refund", {**refund, "amount_minor": -1}),
                              ("pay_status", {"tender_id": "a.b"})]:
                assert (await refused(nats_server, kind, bad)).code == 400, (kind, bad)
            offline = await ask_store(nats_server, "pay_intent", approval("t4", 800, offline=True, provider_ref=None,
                                                                          card_token="tok_4242424242424242"))
            assert (offline["intent"]["state"], offline["intent"]["offline"]) == ("awaiting_payment_method", True)
            assert "card_token" not in offline["intent"]
            assert len(await query(hub_config.database_url, "SELECT 1 FROM payment_intents")) == 3
            audited = await query(hub_config.database_url, "SELECT actor, action FROM audit_records"
                                  " WHERE action LIKE 'payment.%' ORDER BY seq")
            assert [(row["actor"], row["action"]) for row in audited] == [
                ("bob", "payment.voided"), ("admin-demo", "payment.captured"), ("bob", "payment.refunded")]
            nursery.cancel_scope.cancel()


async def test_a_refund_not_done_is_never_answered_as_refunded(nats_server: EmbeddedNats,
                                                                hub_config: HubConfig) -> None:
    with running_acquirer() as acquirer:
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, hub_settings(hub_config, acquirer.url))
            await fleet_world(hub_config.database_url)
            await answering(nats_server)
            ids = {}
            for tender in ("t5", "t6"):
                acquirer.report_terminal_approval(f"pay_{tender}", 2000)
                ids[tender] = (await ask_store(nats_server, "pay_intent", approval(tender, 2000)))["intent"]["id"]
            async with httpx.AsyncClient(timeout=10) as console:
                await sign_in_admin(console, hub.url, hub_config.database_url)
                for intent_id in ids.values():
                    captured = await console.post(f"{hub.url}/api/payments/intents/{intent_id}/capture", json={})
                    assert captured.status_code == 200
                elsewhere = httpx.post(f"{acquirer.url}/v1/refunds", headers={"Idempotency-Key": "elsewhere"},
                                       json={"payment": "pay_t5", "amount_minor": 2000}, timeout=10)
                assert elsewhere.status_code == 200  # nothing left for the hub to refund: the provider declines
                refund = {"tender_id": "t5", "amount_minor": 500, "refund_key": "ret-5", "actor": "bob"}
                no = await refused(nats_server, "pay_refund", refund)
                assert no.code == 402 and "declined" in str(no)
                assert (await refused(nats_server, "pay_refund", refund)).code == 402  # the same key: the same
                answered = await console.post(f"{hub.url}/api/payments/intents/{ids['t5']}/refund",
                                              json={"amount_minor": 500})
                assert answered.status_code == 402 and "declined" in answered.json()["error"]

                late = await refused(nats_server, "pay_refund", {**refund, "tender_id": "t6", "amount_minor": 191,
                                                                 "refund_key": "ret-6"})
                assert late.code == 504  # the provider never answered: maybe done, ask again with the key
                busy = await console.post(f"{hub.url}/api/payments/intents/{ids['t6']}/refund",
                                          json={"amount_minor": 100})
                assert busy.status_code == 409  # the refund still out holds the payment
            nursery.cancel_scope.cancel()


def test_console_refund_keys_are_the_persons_and_the_payments() -> None:
    intent, other = uuid.uuid4(), uuid.uuid4()
    assert console_refund_key("ann", intent, "k") == console_refund_key("ann", intent, "k")
    assert len({console_refund_key("ann", intent, "k"), console_refund_key("bob", intent, "k"),
                console_refund_key("ann", other, "k")}) == 3


def test_a_store_reads_the_status_of_its_own_payments_only(database_url: str) -> None:
    async def work(payments: Payments) -> None:
        intent = await payments.record_terminal_approval(
            "demo", "store-001", tender_id="t7", till="till-1", amount_minor=700, authorized_minor=700,
            currency="EUR", provider_ref="pay_t7", auth_code=None, scheme="visa", masked="**** 4242", offline=False,
            card_token=None, actor="till:till-1")
        status = RESPONDERS["novapos.*.*.req.pay_status"]
        own = decode("answer", await status(payments.pool, "novapos.demo.store-001.req.pay_status",
                                            encode({"tender_id": "t7"})))
        assert own["intent"]["id"] == str(intent.id)
        other = decode("answer", await status(payments.pool, "novapos.demo.store-002.req.pay_status",
                                              encode({"tender_id": "t7"})))
        assert other == {"intent": None}
    in_payments(database_url, "", work)
