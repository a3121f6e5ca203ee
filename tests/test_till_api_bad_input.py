"""Bad requests get a 4xx with a message a person understands, and change nothing."""

from __future__ import annotations

import httpx
import pytest
import trio

from edge.app import run_edge
from novapos.config import StoreConfig
from novapos.validators import MAX_BARCODE_LENGTH, MAX_LINE_QUANTITY, MAX_MINOR, MAX_TOKEN_LENGTH
from tests.pos import COFFEE, MANAGER_OVERRIDE, log_in_at


@pytest.mark.parametrize(("path", "body", "status", "says"), [
    ("lines", {"barcode": "0000000000000", "quantity": 1}, 404, "no item has barcode or SKU '0000000000000'"),
    ("lines", b'{"barcode": "4006381333931", "quantity": ', 400, "not valid JSON"),
    ("lines", b'["a list"]', 400, "must be a JSON object"),
    ("lines", {"barcode": COFFEE, "quantity": -2}, 422, "must be from 1 to 9999"),
    ("lines", {"barcode": COFFEE, "quantity": 0}, 422, "must be from 1 to 9999"),
    ("lines", {"barcode": COFFEE, "quantity": "two"}, 422, "must be a whole number"),
    ("lines", {"barcode": COFFEE, "quantity": 1.5}, 422, "must be a whole number"),
    ("lines", {"barcode": COFFEE, "quantity": True}, 422, "must be a whole number"),
    ("lines", {"quantity": 1}, 422, "barcode must be text, got nothing"),
    ("lines", {"barcode": COFFEE, "quantity": 10_000}, 422, "must be from 1 to 9999"),
    ("tenders", {"method": "cash", "amount_minor": 500}, 409, "cart is empty"),
    ("tenders", {"method": "cash", "amount_minor": "500"}, 422, "must be a whole number"),
    ("tenders", {"method": "bitcoin", "amount_minor": 500}, 422, "use 'cash'"),
    ("complete", {}, 409, "cart is empty"),
    ("login", {"login": "", "pin": "1111"}, 422, "login must not be empty"),
    ("login", {"login": "c" * 65, "pin": "1111"}, 422, "login must be at most 64 characters"),
    ("login", {"login": "alice", "pin": "11a1"}, 422, "pin must be digits only"),
    ("login", {"login": "alice", "pin": 1111}, 422, "pin must be text"),
    ("login", {"login": "alice", "pin": "2222"}, 401, "login or PIN is wrong"),
    ("complete", {"cart": "not-a-cart"}, 422, "cart must be an id like"),
])
async def test_bad_request_is_refused_and_changes_nothing(
        store_config: StoreConfig, http: httpx.AsyncClient,
        path: str, body: dict | bytes, status: int, says: str) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        till = f"{edge.url}/api/tills/till-1"
        await log_in_at(http, f"{till}", "alice")
        before = (await http.get(till)).json()

        if isinstance(body, bytes):
            response = await http.post(f"{till}/{path}", content=body, headers={"content-type": "application/json"})
        else:
            response = await http.post(f"{till}/{path}", json=body)

        assert response.status_code == status, response.text
        assert says in response.json()["error"]
        assert (await http.get(till)).json() == before
        assert await edge.tree.ask("outbox", "depth") == 0
        assert edge.tree.healthy()
        nursery.cancel_scope.cancel()


async def test_unknown_till_and_scan_without_session(store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        response = await http.post(f"{edge.url}/api/tills/till-9/lines", json={"barcode": COFFEE})
        assert response.status_code == 404 and "no till 'till-9'" in response.json()["error"]
        response = await http.post(f"{edge.url}/api/tills/till-2/lines", json={"barcode": COFFEE})
        assert response.status_code == 401 and "log in with your PIN" in response.json()["error"]
        await log_in_at(http, f"{edge.url}/api/tills/till-1")
        response = await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": 7})
        assert response.status_code == 422
        nursery.cancel_scope.cancel()


async def test_openapi_document_describes_the_sale_flow(store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        document = (await http.get(f"{edge.url}/openapi.json")).json()
        assert document["openapi"].startswith("3.")
        for path in ("login", "logout", "lock", "unlock", "lines", "tenders", "complete"):
            assert "post" in document["paths"][f"/api/tills/{{till}}/{path}"]
        for path in ("/api/devices", "/api/print-jobs", "/api/events"):
            assert "get" in document["paths"][path]

        def body(path: str) -> dict:
            return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
        # the bounds the server enforces, as the validators define them
        assert body("/api/tills/{till}/login")["login"]["maxLength"] == 64
        assert body("/api/tills/{till}/login")["pin"]["pattern"] == "^[0-9]+$"
        assert body("/api/tills/{till}/lines")["barcode"]["maxLength"] == MAX_BARCODE_LENGTH
        assert body("/api/tills/{till}/lines")["quantity"]["maximum"] == MAX_LINE_QUANTITY
        assert body("/api/tills/{till}/tenders")["amount_minor"]["maximum"] == MAX_MINOR
        assert body("/api/tills/{till}/complete")["cart"]["format"] == "uuid"
        assert body("/api/tills/{till}/tenders")["id"]["format"] == "uuid"
        state = (await log_in_at(http, f"{edge.url}/api/tills/till-1"))
        assert set(document["components"]["schemas"]["TillState"]["properties"]) == set(state)
        line = document["paths"]["/api/tills/{till}/lines/{line}"]["delete"]["parameters"][1]["schema"]
        assert line["maxLength"] == MAX_TOKEN_LENGTH and line["pattern"]
        page = await http.get(f"{edge.url}/")
        assert page.status_code == 200 and "Complete sale" in page.text
        nursery.cancel_scope.cancel()


async def test_tenders_can_be_voided_and_a_logout_keeps_the_cart(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        till = f"{edge.url}/api/tills/till-1"
        assert (await http.post(f"{till}/logout", json={})).status_code == 401  # nobody logged in yet
        await log_in_at(http, till, "alice")
        await http.post(f"{till}/lines", json={"barcode": COFFEE})
        assert (await http.delete(f"{till}/tenders")).json()["error"] == "no tender has been taken for this cart"
        await http.post(f"{till}/tenders", json={"amount_minor": 9999})  # a slip of the finger
        refused = await http.post(f"{till}/lines", json={"barcode": COFFEE})
        assert refused.status_code == 409 and "void the tenders" in refused.json()["error"]
        state = (await http.request("DELETE", f"{till}/tenders", json={"override": MANAGER_OVERRIDE})).json()
        assert state["tendered"]["minor"] == 0 and state["due"]["minor"] == 499
        left = (await http.post(f"{till}/logout", json={})).json()
        assert left["session"] is None and left["cart"] == state["cart"] and left["due"]["minor"] == 499
        taken = await log_in_at(http, till, "bob")
        assert taken["session"]["cashier"] == "bob" and taken["cart"] == state["cart"]
        await http.post(f"{till}/tenders", json={"amount_minor": 500})
        sold = await http.post(f"{till}/complete", json={"cart": state["cart"]})
        assert sold.status_code == 200 and sold.json()["cashier"] == "bob"
        nursery.cancel_scope.cancel()
