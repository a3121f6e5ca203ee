"""The catalog's changes on a real PostgreSQL: each bumps the tenant's version once and stamps what it touched;
each bad change is refused with a sentence and leaves everything as it was."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from hub.catalog import changes, service
from hub.catalog.barcodes import barcode
from novapos.validators import Invalid
from tests.catalog_support import catalog_pool

TEE = {"product": "TEE", "name": "Organic T-shirt", "tax_class": "standard", "attributes": ["size", "colour"],
       "variants": [{"sku": "TEE-M-RED", "values": ["M", "red"]}, {"sku": "TEE-L-RED", "values": ["L", "red"]}]}
MILK = {"product": "MLK", "name": "Whole milk 1 l", "tax_class": "reduced", "variants": [{"sku": "MLK-1L"}]}


async def _state(pool: asyncpg.Pool) -> list[Any]:
    """Everything a change could touch, to compare before and after a refusal."""
    return [[tuple(row) for row in await pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2, 3")]
            for table in ("catalog_versions", "products", "variants", "barcodes", "prices", "tax_classes", "tax_rates",
                          "tenants")]


async def _seeded(database_url: str) -> asyncpg.Pool:
    pool = await catalog_pool(database_url)
    await service.save_product(pool, "demo", changes.product_from_json(TEE))
    await service.save_product(pool, "demo", changes.product_from_json(MILK))
    await service.set_barcodes(pool, "demo", changes.barcodes_from_json({"sku": "MLK-1L", "barcodes": ["5000112637922"]}))
    return pool


def test_each_change_makes_one_version_and_stamps_the_variants_it_affects(database_url: str) -> None:
    async def scenario() -> dict[str, Any]:
        pool = await _seeded(database_url)
        seen: dict[str, Any] = {"start": await pool.fetchval("SELECT version FROM catalog_versions")}
        price = await service.set_price(pool, "demo", changes.price_from_json({"sku": "TEE-M-RED", "amount_minor": 1999}))
        seen["price"] = (price, await pool.fetch("SELECT sku, version FROM variants ORDER BY sku"))
        tax = await service.save_tax_class(pool, "demo", changes.tax_class_from_json(
            {"tax_class": "standard", "name": "Standard", "rates": [{"region": "north", "rate_ppm": 210_000}]}))
        seen["tax"] = (tax, await pool.fetchrow("SELECT version, name FROM tax_classes WHERE tax_class = 'standard'"),
                       await pool.fetchval("SELECT rate_ppm FROM tax_rates WHERE tax_class = 'standard' AND region = 'north'"))
        setting = await service.set_prices_include_tax(pool, "demo", False)
        seen["setting"] = (setting, await pool.fetchrow("SELECT settings_version, version FROM catalog_versions"),
                           await pool.fetchval("SELECT prices_include_tax FROM tenants"))
        renamed = await service.save_product(pool, "demo", changes.product_from_json({**TEE, "name": "Tee", "variants": []}))
        seen["renamed"] = (renamed, await pool.fetch("SELECT sku, name, version FROM variants WHERE product = 'TEE' ORDER BY sku"))
        await pool.close()
        return seen

    seen = asyncio.run(scenario())
    start = seen["start"]
    price, variants = seen["price"]
    assert price == start + 1 and dict((r["sku"], r["version"]) for r in variants)["TEE-M-RED"] == price
    assert [r["version"] for r in variants if r["sku"] != "TEE-M-RED"] == [start, start - 2]  # untouched: MLK-1L (barcodes), TEE-L-RED
    tax, tax_row, rate = seen["tax"]
    assert tax == start + 2 and tax_row["version"] == tax and tax_row["name"] == "Standard" and rate == 210_000
    setting, versions, included = seen["setting"]
    assert setting == start + 3 and versions["settings_version"] == setting and included is False
    renamed, tees = seen["renamed"]
    assert renamed == start + 4 and [(r["name"], r["version"]) for r in tees] == [
        ("Organic T-shirt L red", renamed), ("Organic T-shirt M red", renamed)]  # names kept, both restamped


REFUSED = [
    ("unknown tax class", "save_product", changes.product_from_json, {**MILK, "tax_class": "luxury"},
     "'luxury' is not a tax class of demo"),
    ("barcode used twice", "set_barcodes", changes.barcodes_from_json, {"sku": "TEE-M-RED", "barcodes": ["5000112637922"]},
     "5000112637922 is already the barcode of SKU 'MLK-1L'"),
    ("barcode listed twice", "set_barcodes", changes.barcodes_from_json, {"sku": "TEE-M-RED", "barcodes": ["A1", "A1"]},
     "lists 'A1' twice"),
    ("bad EAN-13 check digit", "set_barcodes", changes.barcodes_from_json,
     {"sku": "TEE-M-RED", "barcodes": ["4006381333932"]}, "not a valid EAN-13: its check digit should be 1"),
    ("bad UPC-A check digit", "set_barcodes", changes.barcodes_from_json,
     {"sku": "TEE-M-RED", "barcodes": ["036000291453"]}, "not a valid UPC-A"),
    ("bad EAN-8 check digit", "set_barcodes", changes.barcodes_from_json,
     {"sku": "TEE-M-RED", "barcodes": ["96385075"]}, "not a valid EAN-8"),
    ("negative price", "set_price", changes.price_from_json, {"sku": "MLK-1L", "amount_minor": -1}, "must not be negative"),
    ("price as a float", "set_price", changes.price_from_json, {"sku": "MLK-1L", "amount_minor": 1.29},
     "must be a whole number"),
    ("price of an unknown SKU", "set_price", changes.price_from_json, {"sku": "NOPE", "amount_minor": 1}, "'NOPE' is not a variant"),
    ("price for an unknown region", "set_price", changes.price_from_json,
     {"sku": "MLK-1L", "amount_minor": 1, "scope": "region", "scope_id": "west"}, "'west' is not a region of demo"),
    ("price for an unknown store", "set_price", changes.price_from_json,
     {"sku": "MLK-1L", "amount_minor": 1, "scope": "store", "scope_id": "store-999"}, "'store-999' is not a store"),
    ("price without an offset", "set_price", changes.price_from_json,
     {"sku": "MLK-1L", "amount_minor": 1, "effective_from": "2026-12-24T00:00:00"}, "must say its offset from UTC"),
    ("four attributes", "save_product", changes.product_from_json, {**MILK, "attributes": ["a", "b", "c", "d"]},
     "may hold at most 3 entries"),
    ("values missing", "save_product", changes.product_from_json,
     {**TEE, "variants": [{"sku": "TEE-S", "values": ["S"]}]}, "must give one value per attribute (2: size, colour), got 1"),
    ("an SKU of another product", "save_product", changes.product_from_json,
     {**MILK, "variants": [{"sku": "TEE-M-RED"}]}, "'TEE-M-RED' is already a variant of product 'TEE'"),
    ("attributes changed leaving variants behind", "save_product", changes.product_from_json,
     {**TEE, "attributes": ["size"], "variants": [{"sku": "TEE-M-RED", "values": ["M"]}]}, "list TEE-L-RED too"),
    ("name with a bidi override", "save_product", changes.product_from_json, {**MILK, "name": "Milk\u202e"},
     "invisible format character"),
    ("rate for an unknown region", "save_tax_class", changes.tax_class_from_json,
     {"tax_class": "standard", "name": "Standard", "rates": [{"region": "west", "rate_ppm": 1}]}, "'west' is not a region"),
    ("rate over 100 %", "save_tax_class", changes.tax_class_from_json,
     {"tax_class": "standard", "name": "Standard", "rates": [{"region": "north", "rate_ppm": 1_000_001}]},
     "must be from 0 to 1000000"),
]


@pytest.mark.parametrize(("change", "parse", "body", "says"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_a_bad_change_is_refused_with_a_sentence_and_changes_nothing(
        database_url: str, change: str, parse: Any, body: dict[str, Any], says: str) -> None:
    async def scenario() -> tuple[str, list[Any], list[Any]]:
        pool = await _seeded(database_url)
        before = await _state(pool)
        with pytest.raises(Invalid) as refused:
            await getattr(service, change)(pool, "demo", parse(body))
        after = await _state(pool)
        await pool.close()
        return str(refused.value), before, after

    reason, before, after = asyncio.run(scenario())
    assert says in reason and before == after


def test_an_unknown_tenant_is_not_found(database_url: str) -> None:
    async def scenario() -> str:
        pool = await _seeded(database_url)
        with pytest.raises(service.NotFound) as missing:
            await service.set_price(pool, "acme", changes.price_from_json({"sku": "MLK-1L", "amount_minor": 1}))
        await pool.close()
        return str(missing.value)
    assert asyncio.run(scenario()) == "there is no tenant 'acme'"


def test_gs1_numbers_need_their_check_digit_and_other_codes_are_tokens() -> None:
    assert barcode("b", "4006381333931") == "4006381333931" and barcode("b", "036000291452") == "036000291452"
    assert barcode("b", "96385074") == "96385074"
    assert barcode("b", "12345678901234") == "12345678901234"  # 14 digits: not a length checked here
    assert barcode("b", "TEE-M-RED") == "TEE-M-RED"
    with pytest.raises(Invalid, match="may use only letters"):
        barcode("b", "4006 381")
