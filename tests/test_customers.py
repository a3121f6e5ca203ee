"""Customers on a real hub (PostgreSQL, NATS, the console over HTTP): records normalised and validated, card numbers
generated unique and Luhn-valid, the till's customer_find / customer_create / customer_360 within its own tenant,
the console API with its scopes (a regional admin sees the customer but only their region's orders), and the data
subject requests: the export holds every domain's part and the audit records about the customer; erasure blanks
the record, deletes the audit log's personal values, is audited, and the audit chain still verifies."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
import trio

from actors.payments.asking import HubRefused
from hub.app import run_hub
from hub.audit import chain
from hub.audit.verify import verify
from hub.customers import records
from hub.customers.demo import DEMO_CUSTOMERS, seed_demo_customers
from hub.db import create_pool
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.validators import Invalid
from novapos.wire.envelope import Envelope, decode
from novapos.wire.ids import uuid7
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.customer_world import answering, two_tenants_nats  # noqa: F401  (the fixture: stores of two tenants)
from tests.events import publish, sale_v5_body
from tests.identity import add_user, grant, signed_in
from tests.payment_support import ask_store
from tests.stock_world import build_world


def test_phone_and_email_are_normalised_and_every_field_is_checked() -> None:
    assert records.phone("+33 6 12-34 56 78") == "+33612345678"
    assert records.phone("0044 (20) 7946.0000") == "+442079460000"
    assert records.phone("0612 345 678") == "0612345678"
    assert records.email("  Anna.Schmidt@Example.COM ") == "anna.schmidt@example.com"
    number = records.new_card_number()
    assert len(number) == 14 and number.startswith("27") and records.luhn_digit(number[:-1]) == int(number[-1])
    for body, field in [({"name": "A", "phone": "12"}, "phone"), ({"name": "A", "phone": "call me"}, "phone"),
                        ({"name": "A", "email": "not-an-address"}, "email"), ({"name": " "}, "name"),
                        ({"name": "A\u202eB"}, "name"), ({"name": "x" * 121}, "name"),
                        ({"name": "A", "birthday": "1850-01-01"}, "birthday"),
                        ({"name": "A", "birthday": "31/12/1990"}, "birthday"),
                        ({"name": "A", "preferences": {"Bad Key": 1}}, "preferences"),
                        ({"name": "A", "consents": {"marketing_email": "yes"}}, "consents.marketing_email"),
                        ({"name": "A", "card_number": "<script>"}, "card_number"), ({"phone": "+331234567"}, "name"),
                        ({"name": "A", "is_admin": True}, "is_admin")]:
        with pytest.raises(Invalid) as refused:
            records.fields(body, creating=True)
        assert refused.value.where == field, (body, refused.value)


def _sold_to(customer: str, seq: int, store: str) -> Envelope:
    """sale_v5_body made for `customer` at `store` (paid in cash: no points or gift card to reconcile)."""
    body = sale_v5_body()
    body["customer"] = {"id": customer}
    body["tenders"] = [{"id": str(uuid7()), "method": "cash", "amount": {"minor": 1000, "currency": "EUR"}}]
    made = Envelope(id=uuid7(), type="sale.completed", v=5, tenant="demo", store=store, seq=seq,
                    ts=1_700_000_000_000, body=body)
    return decode(made.encode())


async def _verified(database_url: str, tenant: str) -> bool:
    async def run() -> bool:
        pool = await create_pool(database_url)
        try:
            return (await verify(pool, tenant, None)).ok
        finally:
            await pool.close()
    return bool(await trio.to_thread.run_sync(asyncio.run, run()))


async def test_customers_at_the_till_and_in_the_console_with_export_and_erasure(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, dataclasses.replace(hub_config, tenants=("demo", "other")))
        await sign_in_admin(http, hub.url, database_url)
        await answering(nats_server)

        # the console creates one, the till enrols another; both normalised, card numbers generated and distinct
        answer = await http.post(f"{hub.url}/api/customers", json={
            "name": "Anna Schmidt", "phone": "+49 (30) 1234-5678", "email": "Anna@Example.org",
            "birthday": "1990-04-01", "preferences": {"milk": "oat"}, "consents": {"marketing_email": True}})
        assert answer.status_code == 201, answer.text
        anna = answer.json()
        assert (anna["phone"], anna["email"], anna["birthday"], anna["preferences"]) == (
            "+493012345678", "anna@example.org", "1990-04-01", {"milk": "oat"})
        enrolled = await ask_store(nats_server, "customer_create", {"name": "Bo Lind", "phone": "030 999 888",
                                                                    "actor": "alice"})
        bo = enrolled["customer"]
        assert (bo["phone"], bo["home_store"], bo["points"], bo["tier"] is not None) == (
            "030999888", "store-001", 0, True)
        assert len({anna["card_number"], bo["card_number"]}) == 2
        with pytest.raises(HubRefused) as taken:
            await ask_store(nats_server, "customer_create", {"name": "Copy", "card_number": anna["card_number"],
                                                             "actor": "alice"})
        assert taken.value.code == 409
        assert (await http.post(f"{hub.url}/api/customers", json={"name": "X", "card_number": bo["card_number"]})
                ).status_code == 409

        # found however it is typed; never by another tenant's store
        for typed in ("+49 30 1234 5678", "ANNA@example.ORG", anna["card_number"]):
            found = await ask_store(nats_server, "customer_find", {"query": typed})
            assert [c["id"] for c in found["customers"]] == [anna["id"]], typed
        assert (await ask_store(nats_server, "customer_find", {"query": "anna@example.org"}, tenant="other",
                                store="o-1")) == {"customers": []}
        with pytest.raises(HubRefused) as elsewhere:
            await ask_store(nats_server, "customer_360", {"customer": anna["id"]}, tenant="other", store="o-1")
        assert elsewhere.value.code == 404
        listed = (await http.get(f"{hub.url}/api/customers", params={"q": "schm"})).json()["items"]
        assert [c["id"] for c in listed] == [anna["id"]]
        assert (await http.get(f"{hub.url}/api/customers", params={"q": "%"})).json()["items"] == []

        # edits are audited with the personal values beside the chain, not in it
        edited = await http.patch(f"{hub.url}/api/customers/{anna['id']}", json={"phone": "+49 30 7654321"})
        assert edited.status_code == 200 and edited.json()["phone"] == "+49307654321"
        bad = await http.patch(f"{hub.url}/api/customers/{anna['id']}", json={"email": "nope"})
        assert bad.status_code == 422 and "email" in bad.text
        in_chain = await query(database_url, "SELECT details::text FROM audit_records WHERE target = $1",
                               anna["id"])
        assert in_chain and all("Schmidt" not in row[0] and "7654321" not in row[0] for row in in_chain)

        # orders in two regions: the 360 shows a regional admin only theirs
        sales = [_sold_to(anna["id"], 1, "store-001"), _sold_to(anna["id"], 1, "store-003")]
        await publish(nats_server, [(event_subject("demo", s.store, "sale.completed"), s.encode(), None)
                                    for s in sales])
        await wait_until(lambda: _has(database_url, "SELECT count(*) FROM sales WHERE customer_id = $1", 2,
                                      anna["id"]))
        full = (await http.get(f"{hub.url}/api/customers/{anna['id']}")).json()
        assert {o["order"] for o in full["orders"]} == {str(s.id) for s in sales} and full["orders_elsewhere"] == 0
        assert full["loyalty"]["points"] >= 0 and full["preferences"] == {"milk": "oat"}
        at_till = await ask_store(nats_server, "customer_360", {"customer": anna["id"]})
        assert len(at_till["orders"]) == 2
        await add_user(database_url, "north-admin", grant("regional_admin", "north"))
        await add_user(database_url, "one-manager", grant("store_manager", "store-001"))
        async with signed_in(hub.url, "north-admin") as north:
            seen = (await north.get(f"/api/customers/{anna['id']}")).json()
            assert [o["store"] for o in seen["orders"]] == ["store-001"] and seen["orders_elsewhere"] == 1
            assert (await north.post(f"/api/customers/{anna['id']}/export", json={})).status_code == 403
            assert (await north.post("/api/customers", json={"name": "Far", "home_store": "store-003"})
                    ).status_code == 403
        async with signed_in(hub.url, "one-manager") as manager:
            assert (await manager.get(f"/api/customers/{anna['id']}")).status_code == 200
            assert (await manager.patch(f"/api/customers/{anna['id']}", json={"name": "Z"})).status_code == 403
            assert (await manager.post(f"/api/customers/{anna['id']}/erase", json={"reason": "x"})).status_code == 403
        await add_user(database_url, "admin-other", grant("tenant_admin"), tenant="other")
        async with signed_in(hub.url, "admin-other") as other:
            assert (await other.get(f"/api/customers/{anna['id']}")).status_code == 404
            assert (await other.post(f"/api/customers/{anna['id']}/erase", json={"reason": "x"})).status_code == 404
            assert (await other.get("/api/customers")).json()["items"] == []

        # export: one document with every part, the audit records with their personal values
        exported = await http.post(f"{hub.url}/api/customers/{anna['id']}/export", json={})
        assert exported.status_code == 200
        document = exported.json()
        assert document["customer"]["name"] == "Anna Schmidt"
        assert set(document["loyalty"]) >= {"account", "ledger", "lots", "redemptions"}
        assert sorted(o["event_id"] for o in document["orders"]) == sorted(str(s.id) for s in sales)
        assert [a["action"] for a in document["audit"]][:2] == ["customer.created", "customer.updated"]
        assert document["audit"][0]["personal"]["customer_name"] == "Anna Schmidt"
        assert json.loads(json.dumps(document)) == document

        # erase: blanked, not findable, audit values gone, audited, the chain verifies
        assert (await http.post(f"{hub.url}/api/customers/{anna['id']}/erase", json={})).status_code == 422
        erased = await http.post(f"{hub.url}/api/customers/{anna['id']}/erase", json={"reason": "DSR-17 by mail"})
        assert erased.status_code == 200, erased.text
        assert erased.json()["audit_values_erased"] >= 4  # name, phone, email at creation; the new phone
        after = (await http.get(f"{hub.url}/api/customers/{anna['id']}")).json()
        assert after["customer"]["erased"] and after["customer"]["name"] is None and after["customer"]["phone"] is None
        assert len(after["orders"]) == 2  # the sales stay, under the id
        assert (await ask_store(nats_server, "customer_find", {"query": "anna@example.org"})) == {"customers": []}
        kept = await query(database_url, "SELECT count(*) FROM audit_personal WHERE value::text ~ 'Schmidt|7654321"
                                         "|12345678|anna@example'")
        assert kept[0][0] == 0
        actions = [row[0] for row in await query(database_url, "SELECT action FROM audit_records WHERE tenant ="
                                                               " 'demo' ORDER BY seq")]
        assert "customer.erased" in actions and "audit.personal_erased" in actions
        assert await _verified(database_url, "demo")
        again = await http.post(f"{hub.url}/api/customers/{anna['id']}/erase", json={"reason": "again"})
        assert again.status_code == 200 and again.json()["audit_values_erased"] == 0
        assert (await http.patch(f"{hub.url}/api/customers/{anna['id']}", json={"name": "Back"})).status_code == 422
        nursery.cancel_scope.cancel()


async def _has(database_url: str, sql: str, expected: int, *args: Any) -> bool:
    return (await query(database_url, sql, *args))[0][0] == expected


async def test_the_demo_customers_are_seeded_once_and_found_as_a_till_would(database_url: str) -> None:
    await build_world(database_url)

    async def run() -> tuple[int, int, list[str]]:
        pool = await create_pool(database_url)
        try:
            first, again = await seed_demo_customers(pool, "demo"), await seed_demo_customers(pool, "demo")
            async with pool.acquire() as conn:
                found = await records.find(conn, "demo", "0049 30 1234 5678")
            return first, again, [customer["card_number"] for customer in found]
        finally:
            await pool.close()
    first, again, cards = await trio.to_thread.run_sync(asyncio.run, run())
    assert (first, again, cards) == (3, 0, ["27000000000017"])
    assert all(records.luhn_digit(card[:-1]) == int(card[-1]) for _, card, *_ in DEMO_CUSTOMERS)


def test_a_personal_value_the_audit_would_not_keep_aside_is_left_out_of_the_record() -> None:
    """With [audit] personal not listing phone, a change's audit record names the phone field but never holds it."""
    kept = chain.PERSONAL
    try:
        chain.set_personal(("email", "customer_name"))
        details = records._audited({"name": "Anna", "phone": "+4930123456", "email": "a@example.org"})
    finally:
        chain.set_personal(kept)
    assert details == {"fields": "email,name,phone", "customer_name": "Anna", "email": "a@example.org"}


async def test_an_enrolment_retried_under_its_request_id_enrols_the_customer_once(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    """customer_create's `request` (novapos.wire.loyalty): a till retrying after a timeout, or several tries racing,
    get the same customer, made and audited once; the id is scoped to the tenant, and one that is not a UUID is
    refused without enrolling anyone."""
    await build_world(database_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, dataclasses.replace(hub_config, tenants=("demo", "other")))
        await answering(nats_server)
        request = str(uuid7())
        enrol = {"name": "Cleo Park", "phone": "0301112223", "actor": "alice", "request": request}
        first = (await ask_store(nats_server, "customer_create", enrol))["customer"]
        again = (await ask_store(nats_server, "customer_create", enrol))["customer"]  # the retry after a timeout
        assert again == first
        racing, answers = str(uuid7()), []

        async def try_once() -> None:
            answer = await ask_store(nats_server, "customer_create", {**enrol, "name": "Dan Roe", "request": racing})
            answers.append(answer["customer"]["id"])
        async with trio.open_nursery() as tries:
            for _ in range(6):
                tries.start_soon(try_once)
        assert len(answers) == 6 and len(set(answers)) == 1
        rows = await query(database_url, "SELECT enrol_request::text AS request, count(*) AS n FROM customers WHERE"
                           " tenant = 'demo' AND enrol_request IS NOT NULL GROUP BY 1 ORDER BY 1")
        assert sorted((row["request"], row["n"]) for row in rows) == sorted([(request, 1), (racing, 1)])
        audited = await query(database_url, "SELECT count(*) AS n FROM audit_records WHERE action ="
                              " 'customer.created' AND target = ANY($1::text[])", [first["id"], answers[0]])
        assert audited[0]["n"] == 2
        elsewhere = (await ask_store(nats_server, "customer_create", enrol, tenant="other", store="o-1"))["customer"]
        assert elsewhere["id"] != first["id"]  # the same id at another tenant is that tenant's own enrolment
        with pytest.raises(HubRefused) as malformed:
            await ask_store(nats_server, "customer_create", {**enrol, "request": "not-a-uuid"})
        assert malformed.value.code == 400
        nursery.cancel_scope.cancel()
