"""Hostile customer fields, at the console and from a till, on a real hub: each is refused with a sentence naming
the field (the console's 422, the till's 400), and nothing is created, changed or audited."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.payments.asking import HubRefused, HubUnreachable
from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query
from tests.console_access import sign_in_admin
from tests.payment_support import ask_store
from tests.stock_world import build_world

STORES = (("demo", "store-001"), ("other", "o-1"))
HOSTILE_FIELDS: list[tuple[str, Any]] = [
    ("name", None), ("name", ""), ("name", " "), ("name", "x" * 5000), ("name", "Anna\u202eBob"),
    ("name", "Anna\nBob"), ("name", "\x00"), ("name", ["Anna"]), ("name", {"$ne": ""}), ("name", 42),
    ("phone", "+"), ("phone", "1" * 40), ("phone", "12345"), ("phone", "555-CALL-NOW"), ("phone", 33612345678),
    ("phone", "+33 6\u200b12 34 56 78"), ("email", "a@"), ("email", "@b.c"), ("email", "a@b"),
    ("email", "anna@example.com\r\nBcc: x@y.z"), ("email", "a" * 300 + "@example.com"), ("email", True),
    ("birthday", "2999-01-01"), ("birthday", "1990-02-30"), ("birthday", "yesterday"), ("birthday", 19900401),
    ("card_number", "1 2"), ("card_number", "'; DROP TABLE customers; --"), ("card_number", "9" * 40),
    ("home_store", "../store-001"), ("home_store", "o-1"), ("home_store", "nowhere"),
    ("preferences", []), ("preferences", {"A": 1}), ("preferences", {f"k{n}": n for n in range(21)}),
    ("preferences", {"milk": "x" * 500}), ("preferences", {"milk": 2**70}), ("consents", {"marketing": "yes"}),
    ("consents", "all"), ("is_admin", True), ("tenant_id", "other")]
"""(field, value): every one refused; home_store o-1 is another tenant's store, which this tenant does not have."""


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats.authorized(tmp_path / "nats", stores=STORES).start()
    try:
        yield server
    finally:
        server.stop()


async def _state(database_url: str) -> tuple[Any, ...]:
    [row] = await query(database_url, "SELECT (SELECT count(*) FROM customers),"
                                      " (SELECT coalesce(sum(hashtext(name || coalesce(phone, ''))), 0) FROM customers),"
                                      " (SELECT coalesce(max(seq), 0) FROM audit_records WHERE action LIKE 'customer.%')")
    return tuple(row)


async def test_hostile_customer_fields_are_refused_and_change_nothing(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, dataclasses.replace(hub_config, tenants=("demo", "other")))
        await sign_in_admin(http, hub.url, database_url)
        made = await http.post(f"{hub.url}/api/customers", json={"name": "Anna Schmidt", "phone": "+4930123456"})
        assert made.status_code == 201
        anna = made.json()["id"]
        before = await _state(database_url)
        problems = []
        for field, value in HOSTILE_FIELDS:
            created = await http.post(f"{hub.url}/api/customers", json={"name": "Valid Name", field: value}
                                      if field != "name" else {field: value})
            changed = await http.patch(f"{hub.url}/api/customers/{anna}", json={field: value})
            for what, answer in (("create", created), ("edit", changed)):
                if field == "name" and value is None and what == "edit":
                    expected_field = "name"
                else:
                    expected_field = field
                if answer.status_code != 422 or expected_field not in answer.json().get("error", answer.text):
                    problems.append(f"{what} {field}={str(value)[:30]!r}: {answer.status_code} {answer.text[:100]}")
        assert not problems, "\n".join(problems)
        assert await _state(database_url) == before
        for query_text in ("", " ", "x" * 5000, "\u202e", "a@", {"$gt": ""}, None):
            asked = await http.get(f"{hub.url}/api/customers", params={"q": query_text} if isinstance(
                query_text, str) else {})
            assert asked.status_code in (200, 422), (query_text, asked.text)
        while True:
            try:
                await ask_store(nats_server, "customer_find", {"query": "+4930123456"})
                break
            except HubUnreachable:
                await trio.sleep(0.1)
        for body in ({"name": "A", "phone": "12", "actor": "alice"}, {"name": "A"},
                     {"name": "A", "actor": "hub:sweeper"}, {"name": "A", "home_store": "o-1", "actor": "alice"}):
            with pytest.raises(HubRefused) as refused:
                await ask_store(nats_server, "customer_create", body)
            assert refused.value.code == 400, body
        for body in ({"query": ""}, {"query": "x" * 5000}, {"query": ["+4930123456"]}, {}):
            with pytest.raises(HubRefused) as refused:
                await ask_store(nats_server, "customer_find", body)
            assert refused.value.code == 400, body
        with pytest.raises(HubRefused) as refused:
            await ask_store(nats_server, "customer_360", {"customer": "../../etc"})
        assert refused.value.code == 400
        assert await _state(database_url) == before
        nursery.cancel_scope.cancel()
