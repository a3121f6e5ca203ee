"""The CSV import against a real PostgreSQL: 100,000 rows in one version with bad rows reported by line and
column, malformed files refused whole with nothing changed, and a re-import that stamps only what changed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from bench.catalog import HEADER, ean13, synthetic_csv
from hub.catalog.importer import Imported, Malformed, import_catalog
from tests.catalog_support import catalog_pool


def run(database_url: str, scenario: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        pool = await catalog_pool(database_url)
        try:
            return await scenario(pool)
        finally:
            await pool.close()
    return asyncio.run(main())


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int, int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT version FROM catalog_versions WHERE tenant = 'demo') AS version,"
        " (SELECT count(*) FROM products) AS products, (SELECT count(*) FROM variants) AS variants,"
        " (SELECT count(*) FROM barcodes) AS barcodes, (SELECT count(*) FROM prices) AS prices")
    return tuple(row)  # type: ignore[return-value]


WRONG_CHECK_DIGIT = ean13(1000)[:-1] + str((int(ean13(1000)[-1]) + 1) % 10)


def with_bad_rows(rows: int) -> tuple[bytes, dict[int, str]]:
    """A big file with a few bad rows at known lines (line 1 is the header; data row n is on line n + 2)."""
    lines = synthetic_csv(rows).decode().splitlines(keepends=True)
    bad = {
        1002: (f"P1000,Bad check digit,standard,,SKU1000,{WRONG_CHECK_DIGIT},1.00,\n", "barcodes"),
        2002: ("P2000,Negative price,standard,,SKU2000,,-1.00,\n", "price"),
        3002: ("P3000,Unknown tax,luxury,,SKU3000,,1.00,\n", "tax_class"),
        4002: (f"P4000,Barcode of another row,standard,,SKU4000,{ean13(5)},1.00,\n", "barcodes"),
        5002: ("P5000,Same SKU twice,standard,,SKU6,,1.00,\n", "sku"),
        6002: ("P6000,Unknown region,standard,,SKU6000,,1.00,region:west=2.00\n", "price_overrides"),
        7002: ("P7000,Too many attributes,standard,a=1;b=2;c=3;d=4,SKU7000,,1.00,\n", "attributes"),
        8002: ("P8 000,A space in its id,standard,,SKU8000,,1.00,\n", "product"),
    }
    for line, (text, _) in bad.items():
        lines[line - 1] = text
    return "".join(lines).encode(), {line: column for line, (_, column) in bad.items()}


def test_100000_rows_land_in_seconds_as_one_version_with_bad_rows_reported_by_line_and_column(database_url: str) -> None:
    data, bad = with_bad_rows(100_000)

    async def scenario(pool: asyncpg.Pool) -> tuple[Imported, float, tuple[int, ...], tuple[int, ...], list[str]]:
        before = await counts(pool)
        said: list[str] = []
        started = time.perf_counter()
        result = await import_catalog(pool, "demo", data, said.append)
        return result, time.perf_counter() - started, before, await counts(pool), said

    result, seconds, before, after, progress = run(database_url, scenario)
    assert {error.line: error.column for error in result.errors} == bad
    reasons = {error.line: error.reason for error in result.errors}
    assert "check digit should be" in reasons[1002] and "negative" in reasons[2002]
    assert "luxury is not a tax class" in reasons[3002] and "also on line 7" in reasons[4002]
    assert "SKU6 is also on line 8" in reasons[5002] and "west is not a region" in reasons[6002]
    assert result.rows == 100_000 and result.landed == 100_000 - len(bad) == result.changed_variants
    assert after == (before[0] + 1, 100_000 - len(bad), 100_000 - len(bad), 100_000 - len(bad),
                     100_000 - len(bad) + 10_000 - len(bad))  # one version; prices: every tenth row has a region price
    assert any("read 100000 rows" in line for line in progress) and "written: catalog version" in progress[-1]
    assert seconds < 120, f"the import took {seconds:.1f} s"


MALFORMED = [
    ("wrong header", HEADER.replace("tax_class", "vat").encode() + b"P1,x,standard,,S1,,1.00,\n", "missing tax_class"),
    ("unknown column", b"product,product_name,tax_class,sku,price,colour\nP1,x,standard,S1,1.00,red\n", "unknown 'colour'"),
    ("ragged row", HEADER.encode() + b"P1,x,standard,,S1,,1.00,\nP2,y,standard,,S2,1.00\n", "line 3 has 6 fields where the header has 8"),
    ("not UTF-8", HEADER.encode() + "P1,Café,standard,,S1,,1.00,\n".encode("latin-1"), "not UTF-8 text (line 2"),
    ("NUL byte", HEADER.encode() + b"P1,x\x00,standard,,S1,,1.00,\n", "NUL byte (line 2)"),
    ("huge field", HEADER.encode() + b'P1,"' + b"x" * 200_000 + b'",standard,,S1,,1.00,\n', "not valid CSV"),
    ("empty file", b"", "the file is empty"),
    ("unclosed quote", HEADER.encode() + b'P1,"x,standard,,S1,,1.00,\n', "not valid CSV"),
]


@pytest.mark.parametrize(("data", "says"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_a_malformed_file_is_refused_whole_with_a_reason_and_nothing_changes(
        database_url: str, data: bytes, says: str) -> None:
    async def scenario(pool: asyncpg.Pool) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
        before = await counts(pool)
        with pytest.raises(Malformed) as refused:
            await import_catalog(pool, "demo", data)
        return str(refused.value), before, await counts(pool)

    reason, before, after = run(database_url, scenario)
    assert says in reason and before == after


CATALOG = (HEADER
           + "TEE,Organic T-shirt,standard,size=M;colour=red,TEE-M-RED,4006381333931;TEE-M-RED,19.99,region:south=18.99\n"
           + "TEE,Organic T-shirt,standard,size=L;colour=red,TEE-L-RED,5000112637922,19.99,store:store-001=17.50\n"
           + "MLK,Whole milk 1 l,reduced,,MLK-1L,96385074,1.29,\n")


def test_variants_attributes_barcodes_and_override_prices_land_and_a_reimport_stamps_only_what_changed(
        database_url: str) -> None:
    async def scenario(pool: asyncpg.Pool) -> tuple[Imported, Imported, Imported, list[dict[str, Any]]]:
        first = await import_catalog(pool, "demo", CATALOG.encode())
        same = await import_catalog(pool, "demo", CATALOG.encode())
        cheaper = await import_catalog(pool, "demo", CATALOG.replace("1.29", "1.19").encode())
        rows = await pool.fetch(
            "SELECT v.sku, v.name, v.attribute_values, p.attributes, v.version,"
            " (SELECT array_agg(barcode ORDER BY barcode) FROM barcodes b WHERE b.sku = v.sku) AS codes,"
            " (SELECT array_agg(scope || ':' || scope_id || '=' || amount_minor ORDER BY scope, scope_id, effective_from)"
            "  FROM prices pr WHERE pr.sku = v.sku) AS prices FROM variants v JOIN products p USING (tenant, product)"
            " ORDER BY v.sku")
        return first, same, cheaper, [dict(row) for row in rows]

    first, same, cheaper, rows = run(database_url, scenario)
    assert not first.errors and first.changed_variants == 3
    assert same.changed_variants == 0 and same.version == first.version + 1
    assert cheaper.changed_variants == 1
    by_sku = {row["sku"]: row for row in rows}
    assert by_sku["TEE-M-RED"]["attributes"] == ["size", "colour"] and by_sku["TEE-M-RED"]["attribute_values"] == ["M", "red"]
    assert by_sku["TEE-M-RED"]["name"] == "Organic T-shirt M red"
    assert by_sku["TEE-M-RED"]["codes"] == ["4006381333931", "TEE-M-RED"]
    assert by_sku["TEE-M-RED"]["prices"] == ["region:south=1899", "tenant:=1999"]
    assert by_sku["TEE-L-RED"]["prices"] == ["store:store-001=1750", "tenant:=1999"]
    assert by_sku["MLK-1L"]["prices"] == ["tenant:=129", "tenant:=119"] and by_sku["MLK-1L"]["version"] == cheaper.version
    assert by_sku["TEE-M-RED"]["version"] == first.version


def test_rows_describing_one_product_two_ways_and_a_barcode_taken_elsewhere_are_refused(database_url: str) -> None:
    async def scenario(pool: asyncpg.Pool) -> Imported:
        await import_catalog(pool, "demo", CATALOG.encode())
        return await import_catalog(pool, "demo", (
            HEADER
            + "TEE,Organic T-shirt,standard,size=S;colour=red,TEE-S-RED,,19.99,\n"
            + "TEE,Organic Tee,standard,size=XL;colour=red,TEE-XL-RED,,19.99,\n"
            + "TEE,Organic T-shirt,standard,size=XS,TEE-XS,,19.99,\n"
            + "CAP,Cap,standard,,CAP-1,96385074,9.99,\n"
            + "MLK,Whole milk 1 l,reduced,,TEE-M-RED,,1.29,\n").encode())

    result = run(database_url, scenario)
    assert [(error.line, error.column) for error in result.errors] == [
        (3, "product_name"), (4, "attributes"), (5, "barcodes"), (6, "sku")]
    assert "already the barcode of SKU MLK-1L" in result.errors[2].reason
    assert "a variant of product TEE already" in result.errors[3].reason
    assert result.landed == 1
