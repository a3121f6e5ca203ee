"""The catalog through the hub console's API (a real hub, PostgreSQL and NATS), the import command, and the
demo's seed."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import trio

from hub.app import run_hub
from hub.catalog.demo import seed_demo_catalog
from hub.db import create_pool
from novapos.cli.main import main
from novapos.config import HubConfig
from novapos.demo.provision import provision_demo
from tests.catalog_support import add_tenancy, catalog_pool
from tests.conftest import CONFIGS, wait_until
from tests.console_access import sign_in_admin

TEE = {"product": "TEE", "name": "Organic T-shirt", "tax_class": "standard", "attributes": ["size", "colour"],
       "variants": [{"sku": "TEE-M-RED", "values": ["M", "red"]}, {"sku": "TEE-L-RED", "values": ["L", "red"]}]}


async def test_a_catalog_is_built_read_and_guarded_through_the_console_api(
        hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(asyncio.run, add_tenancy(hub_config.database_url))
        await sign_in_admin(http, hub.url, hub_config.database_url)
        api = f"{hub.url}/api/catalog"

        async def change(kind: str, body: dict[str, Any], status: int = 200) -> Any:
            response = await http.post(f"{api}/{kind}-changes", json=body)
            assert response.status_code == status, response.text
            return response.json()

        versions = [(await change("tax-class", {"tax_class": "standard", "name": "Standard", "rates": [
            {"region": "north", "rate_ppm": 200_000}, {"region": "south", "rate_ppm": 190_000}]}))["version"]]
        versions.append((await change("product", TEE))["version"])
        versions.append((await change("barcode", {"sku": "TEE-M-RED", "barcodes": ["4006381333931", "TEE-M"]}))["version"])
        versions.append((await change("price", {"sku": "TEE-M-RED", "amount_minor": 1999}))["version"])
        versions.append((await change("price", {"tenant": "demo", "sku": "TEE-M-RED", "amount_minor": 1899,
                                                "scope": "store", "scope_id": "store-001",
                                                "effective_from": "2030-01-01T00:00:00+01:00"}))["version"])
        versions.append((await change("settings", {"prices_include_tax": False}))["version"])
        assert versions == [1, 2, 3, 4, 5, 6]

        one = (await http.get(f"{api}/products/TEE")).json()
        assert one["attributes"] == ["size", "colour"] and [v["sku"] for v in one["variants"]] == ["TEE-L-RED", "TEE-M-RED"]
        medium = one["variants"][1]
        assert medium["barcodes"] == ["4006381333931", "TEE-M"] and medium["values"] == ["M", "red"]
        assert [(p["scope"], p["scope_id"], p["amount_minor"]) for p in medium["prices"]] == [
            ("store", "store-001", 1899), ("tenant", "", 1999)]
        assert medium["prices"][0]["effective_from"].startswith("2029-12-31T23:00:00")
        for found_by in ("shirt", "TEE-L-RED", "4006381333931", "TEE"):
            listed = (await http.get(f"{api}/products", params={"q": found_by})).json()["items"]
            assert [(p["product"], p["variants"]) for p in listed] == [("TEE", 2)], found_by
        assert (await http.get(f"{api}/products", params={"q": "socks"})).json() == {"items": [], "next": None}
        taxes = (await http.get(f"{api}/tax-classes")).json()
        assert taxes == [{"tax_class": "standard", "name": "Standard", "version": 1, "rates": [
            {"region": "north", "rate_ppm": 200_000}, {"region": "south", "rate_ppm": 190_000}]}]

        async def published() -> Any:
            settings = (await http.get(f"{api}/settings")).json()
            return settings if settings["published_version"] == 6 else None
        assert (await wait_until(published))["prices_include_tax"] is False

        refusals = [
            ("product", {**TEE, "tax_class": "luxury"}, 422, "'luxury' is not a tax class of demo"),
            ("barcode", {"sku": "TEE-L-RED", "barcodes": ["4006381333931"]}, 422, "already the barcode of SKU 'TEE-M-RED'"),
            ("barcode", {"sku": "TEE-L-RED", "barcodes": ["4006381333932"]}, 422, "check digit should be 1"),
            ("price", {"sku": "TEE-L-RED", "amount_minor": -5}, 422, "must not be negative"),
            ("price", {"sku": "TEE-L-RED", "amount_minor": 5, "scope": "region", "scope_id": "west"}, 422,
             "'west' is not a region"),
            ("price", {"tenant": "acme", "sku": "TEE-L-RED", "amount_minor": 5}, 404, "there is no such tenant"),
            ("price", {"tenant": "bad\nname", "sku": "TEE-L-RED", "amount_minor": 5}, 404, "there is no such tenant"),
            ("settings", {"prices_include_tax": "yes"}, 422, "must be true or false"),
        ]
        for kind, body, status, says in refusals:
            assert says in (await change(kind, body, status))["error"]
        assert (await http.get(f"{api}/settings")).json()["version"] == 6  # nothing changed
        assert (await http.get(f"{api}/products/TEE")).json() == one
        missing = await http.get(f"{api}/products/NOPE")
        assert missing.status_code == 404 and "there is no product 'NOPE' in demo" in missing.json()["error"]
        bad_limit = await http.get(f"{api}/products", params={"limit": "0"})
        assert bad_limit.status_code == 400 and "limit must be from 1 to 500" in bad_limit.json()["error"]
        nursery.cancel_scope.cancel()


def test_the_import_command_reports_rows_and_exits_by_outcome(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_close(catalog_pool(database_url)))
    monkeypatch.setenv("NOVAPOS_DATABASE_URL", database_url)
    good, bad, broken = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "broken.csv"
    good.write_bytes((CONFIGS / "demo-catalog.csv").read_bytes())
    bad.write_text("product,product_name,tax_class,sku,price\nA,Apple,reduced,A-1,0.50\nB,Pear,luxury,B-1,0.60\n")
    broken.write_bytes(b"product,product_name,tax_class,sku,price\nA,Ap\x00ple,reduced,A-1,0.50\n")

    def run(path: Path, tenant: str = "demo") -> tuple[int, str, str]:
        status = main(["hub", "--config", str(CONFIGS / "hub.toml"), "catalog", "import", str(path), "--tenant", tenant])
        out, err = capsys.readouterr()
        return status, out, err

    status, out, err = run(good)
    assert status == 0 and "18 rows, 18 landed as catalog version 3 of demo (18 variants changed), 0 refused" in out
    assert "read 18 rows" in err and "written: catalog version 3" in err
    status, out, _ = run(bad)
    assert status == 1 and out.startswith("line 3, column tax_class: luxury is not a tax class of demo")
    assert "2 rows, 1 landed as catalog version 4" in out
    status, out, err = run(broken)
    assert status == 2 and "refused, nothing changed: the file holds a NUL byte (line 2)" in err
    status, _, err = run(good, tenant="acme")
    assert status == 2 and "there is no tenant 'acme'" in err
    status, _, err = run(tmp_path / "missing.csv")
    assert status == 2 and "cannot read" in err
    imports = asyncio.run(_fetch(database_url, "SELECT actor, target, details FROM audit_records"
                                               " WHERE tenant = 'demo' AND action = 'catalog.imported' ORDER BY seq"))
    assert [(row["actor"], row["target"]) for row in imports] == [(f"cli:{getpass.getuser()}", "good.csv"),
                                                                  (f"cli:{getpass.getuser()}", "bad.csv")]
    assert json.loads(imports[1]["details"]) | {"file": "bad.csv", "rows": 2, "landed": 1, "refused": 1} == \
        json.loads(imports[1]["details"])


async def _fetch(database_url: str, sql: str) -> list[Any]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _close(opening: Any) -> None:
    pool = await opening
    await pool.close()


def test_the_demo_seed_fills_the_provisioned_demo_tenants_empty_catalog_once_with_what_its_store_sells(
        database_url: str, tmp_path: Path) -> None:
    # tenant demo, region north, store-001 and the catalog seeded, as the demo does at every start
    provision_demo(database_url, tmp_path / "credentials")

    async def scenario() -> tuple[Any, dict[str, tuple[list[str], int]], list[Any]]:
        pool = await create_pool(database_url)
        again = await seed_demo_catalog(pool)
        rows = await pool.fetch(
            "SELECT v.sku, (SELECT array_agg(barcode ORDER BY barcode) FROM barcodes b WHERE b.sku = v.sku) AS codes,"
            " (SELECT amount_minor FROM prices p WHERE p.sku = v.sku AND p.scope = 'tenant') AS price FROM variants v")
        rates = [tuple(row) for row in await pool.fetch("SELECT tax_class, region, rate_ppm FROM tax_rates ORDER BY 1")]
        await pool.close()
        return again, {row["sku"]: (row["codes"], row["price"]) for row in rows}, rates

    again, sold, rates = asyncio.run(scenario())
    assert len(sold) == 18 and again is None  # seeded once: a second start leaves an admin's catalog alone
    assert rates == [("reduced", "north", 55_000), ("standard", "north", 200_000)]
    for sku, barcode, price in DEMO_STORE_SELLS:
        assert sold[sku] == ([barcode], price), sku


DEMO_STORE_SELLS = [("COF-250", "4006381333931", 499), ("MLK-1L", "5000112637922", 129),
                    ("BRD-SD", "7622210449283", 349), ("APL-KG", "2000000000015", 279),
                    ("CHO-100", "3017620422003", 219)]
"""What the demo store sold from its TOML before the catalog came from the hub: the same barcodes and prices."""


CHANGES = {
    "tax-class-changes": {"tax_class": '"standard"', "name": '"Standard"', "rates": '[{"region": "north", "rate_ppm": 1}]'},
    "product-changes": {"product": '"TEE"', "name": '"T-shirt"', "tax_class": '"standard"', "attributes": '["size"]',
                        "variants": '[{"sku": "TEE-M", "values": ["M"]}]', "active": "true"},
    "barcode-changes": {"sku": '"TEE-M"', "barcodes": '["4006381333931"]'},
    "price-changes": {"sku": '"TEE-M"', "amount_minor": "1999", "scope": '"store"', "scope_id": '"store-001"',
                      "effective_from": '"2030-01-01T00:00:00Z"'},
    "settings-changes": {"prices_include_tax": "false"},
}
"""A valid body per change (JSON text per field); each field in turn gets every hostile value."""


async def test_hostile_values_in_every_field_of_every_change_and_query_are_refused_and_change_nothing(
        hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    from tests.test_hostile_input import HOSTILE_VALUES
    problems: list[str] = []
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(asyncio.run, add_tenancy(hub_config.database_url))
        await sign_in_admin(http, hub.url, hub_config.database_url)
        api = f"{hub.url}/api/catalog"
        for path, fields in CHANGES.items():  # valid first: each hostile value then meets a catalog to guard
            body = "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"
            response = await http.post(f"{api}/{path}", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 200, (path, response.text)
        before = (await http.get(f"{api}/products/TEE")).json()
        version = (await http.get(f"{api}/settings")).json()["version"]
        for path, fields in CHANGES.items():
            for name in [*fields, "tenant"]:
                for label, hostile in HOSTILE_VALUES:
                    if (name, label) in {("active", "true"), ("attributes", "list"), ("barcodes", "list"),
                                         ("rates", "list"), ("prices_include_tax", "true"), ("amount_minor", "zero")} or \
                            (name in ("tenant", "active", "attributes", "effective_from") and label == "null"):
                        continue  # valid there
                    body = "{" + ", ".join(f'"{key}": {hostile if key == name else value}'
                                           for key, value in {**fields, "tenant": '"demo"'}.items()) + "}"
                    response = await http.post(f"{api}/{path}", content=body, headers={"content-type": "application/json"})
                    if not 400 <= response.status_code < 500 or "error" not in response.json():
                        problems.append(f"{path} {name}={label}: {response.status_code} {response.text[:80]}")
        for name in ("q", "after", "limit", "tenant"):
            for label, hostile in HOSTILE_VALUES:
                value = hostile.strip('"') if hostile.startswith('"') else hostile
                response = await http.get(f"{api}/products", params={name: value[:5000]})
                if response.status_code >= 500 or (response.status_code != 200 and "error" not in response.json()):
                    problems.append(f"GET products {name}={label}: {response.status_code} {response.text[:80]}")
        assert (await http.get(f"{api}/products/TEE")).json() == before
        assert (await http.get(f"{api}/settings")).json()["version"] == version
        nursery.cancel_scope.cancel()
    assert not problems, "\n".join(problems)
