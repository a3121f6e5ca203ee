"""The catalog's changes and reads, without HTTP: what the console's routes, the CSV import and the demo use.

Every change runs in one transaction that first bumps the tenant's catalog version (which also locks the
tenant's catalog row, so changes of one tenant commit in version order: the publisher relies on it), then
checks what the change refers to, then writes and stamps every row it touched, and every variant whose
item (as it travels to the stores) changed, with the new version. A refused change raises Invalid (or
NotFound) before committing: nothing of it is left. Each change appends its audit record (hub.audit.chain)
in that same transaction, naming `actor` (the console user's login, `cli:<os user>`, or `system`), so a
change and its record commit together or not at all.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record
from hub.catalog.changes import BarcodesChange, PriceChange, ProductChange, TaxClassChange, variant_name
from novapos import validators
from novapos.validators import Invalid

MAX_LISTED = 500


class NotFound(LookupError):
    """The tenant or product asked for does not exist; the message says which."""


async def tenant_row(conn: asyncpg.Connection, tenant: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT currency, prices_include_tax FROM tenants WHERE tenant = $1", tenant)
    if row is None:
        raise NotFound(f"there is no tenant {validators.describe(tenant)}")
    return row


async def bump(conn: asyncpg.Connection, tenant: str) -> int:
    """The tenant's next catalog version, inside the caller's transaction (holding the tenant's catalog lock)."""
    await tenant_row(conn, tenant)
    version: int = await conn.fetchval(
        "INSERT INTO catalog_versions (tenant, version) VALUES ($1, 1) ON CONFLICT (tenant) DO UPDATE"
        " SET version = catalog_versions.version + 1, changed_at = now() RETURNING version", tenant)
    return version


async def _tax_class_exists(conn: asyncpg.Connection, tenant: str, tax_class: str) -> None:
    if not await conn.fetchval("SELECT 1 FROM tax_classes WHERE tenant = $1 AND tax_class = $2", tenant, tax_class):
        raise Invalid("tax_class", f"{tax_class!r} is not a tax class of {tenant}: create it first "
                                   "(POST /api/catalog/tax-class-changes)")


async def _variant_exists(conn: asyncpg.Connection, tenant: str, sku: str) -> None:
    if not await conn.fetchval("SELECT 1 FROM variants WHERE tenant = $1 AND sku = $2", tenant, sku):
        raise Invalid("sku", f"{sku!r} is not a variant of {tenant}: create its product first "
                             "(POST /api/catalog/product-changes)")


async def save_product(pool: asyncpg.Pool, tenant: str, change: ProductChange, actor: str = "system") -> int:
    """Create or update a product and the variants listed (others of the product keep theirs); every variant
    of the product is stamped, since its name, tax class and activity travel with each."""
    async with pool.acquire() as conn, conn.transaction():
        version = await bump(conn, tenant)
        await _tax_class_exists(conn, tenant, change.tax_class)
        skus = [variant.sku for variant in change.variants]
        row = await conn.fetchrow("SELECT sku, product FROM variants WHERE tenant = $1 AND sku = ANY($2::text[])"
                                  " AND product <> $3 LIMIT 1", tenant, skus, change.product)
        if row is not None:
            raise Invalid(f"variants[{skus.index(row['sku'])}].sku",
                          f"{row['sku']!r} is already a variant of product {row['product']!r}: an SKU names one item")
        old = await conn.fetchval("SELECT attributes FROM products WHERE tenant = $1 AND product = $2",
                                  tenant, change.product)
        if old is not None and tuple(old) != change.attributes:
            left = await conn.fetch("SELECT sku FROM variants WHERE tenant = $1 AND product = $2"
                                    " AND NOT sku = ANY($3::text[]) ORDER BY sku LIMIT 5", tenant, change.product, skus)
            if left:
                raise Invalid("attributes", f"change from {', '.join(old) or 'none'} to {', '.join(change.attributes) or 'none'} "
                                            f"needs new values for every variant; list {', '.join(r['sku'] for r in left)} too")
        await conn.execute(
            "INSERT INTO products (tenant, product, name, tax_class, attributes, active, version, category)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8::text, '')) ON CONFLICT (tenant, product) DO UPDATE SET"
            " name = EXCLUDED.name, tax_class = EXCLUDED.tax_class, attributes = EXCLUDED.attributes,"
            " active = EXCLUDED.active, version = EXCLUDED.version,"
            " category = CASE WHEN $8::text IS NULL THEN products.category ELSE EXCLUDED.category END",
            tenant, change.product, change.name, change.tax_class, list(change.attributes), change.active, version,
            change.category)
        await conn.executemany(
            "INSERT INTO variants (tenant, sku, product, attribute_values, name, active, version)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, sku) DO UPDATE SET"
            " attribute_values = EXCLUDED.attribute_values, name = EXCLUDED.name, active = EXCLUDED.active,"
            " version = EXCLUDED.version",
            [(tenant, variant.sku, change.product, list(variant.values),
              variant.name or variant_name(change.name, variant.values), variant.active, version)
             for variant in change.variants])
        await conn.execute("UPDATE variants SET version = $3 WHERE tenant = $1 AND product = $2",
                           tenant, change.product, version)
        await record(conn, Entry(tenant, actor, "catalog.product_saved", target=change.product, details={
            "name": change.name, "tax_class": change.tax_class, "category": change.category, "active": change.active,
            "version": version,
            "skus": [variant.sku for variant in change.variants][:50], "variants": len(change.variants)}))
        return version


async def set_barcodes(pool: asyncpg.Pool, tenant: str, change: BarcodesChange, actor: str = "system") -> int:
    """Make `change.barcodes` the variant's whole set; a code another variant has is refused."""
    async with pool.acquire() as conn, conn.transaction():
        version = await bump(conn, tenant)
        await _variant_exists(conn, tenant, change.sku)
        taken = await conn.fetchrow("SELECT barcode, sku FROM barcodes WHERE tenant = $1 AND barcode = ANY($2::text[])"
                                    " AND sku <> $3 ORDER BY barcode LIMIT 1", tenant, list(change.barcodes), change.sku)
        if taken:
            raise Invalid("barcodes", f"{taken['barcode']} is already the barcode of SKU {taken['sku']!r}: "
                                      "a barcode names one item; take it off there first")
        await conn.execute("DELETE FROM barcodes WHERE tenant = $1 AND sku = $2 AND NOT barcode = ANY($3::text[])",
                           tenant, change.sku, list(change.barcodes))
        await conn.execute("INSERT INTO barcodes (tenant, barcode, sku) SELECT $1, code, $2 FROM unnest($3::text[]) code"
                           " ON CONFLICT DO NOTHING", tenant, change.sku, list(change.barcodes))
        await conn.execute("UPDATE variants SET version = $3 WHERE tenant = $1 AND sku = $2", tenant, change.sku, version)
        await record(conn, Entry(tenant, actor, "catalog.barcodes_set", target=change.sku, details={
            "sku": change.sku, "barcodes": list(change.barcodes)[:50], "version": version}))
        return version


async def set_price(pool: asyncpg.Pool, tenant: str, change: PriceChange, actor: str = "system") -> int:
    """Add (or correct) one price of a SKU in a scope from a time on (now when not given)."""
    async with pool.acquire() as conn, conn.transaction():
        version = await bump(conn, tenant)
        await _variant_exists(conn, tenant, change.sku)
        if change.scope == "region" and not await conn.fetchval(
                "SELECT 1 FROM regions WHERE tenant = $1 AND region = $2", tenant, change.scope_id):
            raise Invalid("scope_id", f"{change.scope_id!r} is not a region of {tenant}")
        if change.scope == "store" and not await conn.fetchval(
                "SELECT 1 FROM stores WHERE tenant = $1 AND store = $2", tenant, change.scope_id):
            raise Invalid("scope_id", f"{change.scope_id!r} is not a store of {tenant}")
        await conn.execute(
            "INSERT INTO prices (tenant, sku, scope, scope_id, effective_from, amount_minor, version)"
            " VALUES ($1, $2, $3, $4, coalesce($5, now()), $6, $7) ON CONFLICT (tenant, sku, scope, scope_id, effective_from)"
            " DO UPDATE SET amount_minor = EXCLUDED.amount_minor, version = EXCLUDED.version",
            tenant, change.sku, change.scope, change.scope_id, change.effective_from, change.amount_minor, version)
        await conn.execute("UPDATE variants SET version = $3 WHERE tenant = $1 AND sku = $2", tenant, change.sku, version)
        await record(conn, Entry(tenant, actor, "price.set", store=change.scope_id if change.scope == "store" else None,
                                 target=change.sku, details={
            "sku": change.sku, "scope": change.scope, "scope_id": change.scope_id, "amount_minor": change.amount_minor,
            "from": change.effective_from.isoformat() if change.effective_from else "now", "version": version}))
        return version


async def save_tax_class(pool: asyncpg.Pool, tenant: str, change: TaxClassChange, actor: str = "system") -> int:
    """Create or rename a tax class and set its rate in the regions listed."""
    async with pool.acquire() as conn, conn.transaction():
        version = await bump(conn, tenant)
        regions = [region for region, _ in change.rates]
        known = {row["region"] for row in await conn.fetch(
            "SELECT region FROM regions WHERE tenant = $1 AND region = ANY($2::text[])", tenant, regions)}
        for index, region in enumerate(regions):
            if region not in known:
                raise Invalid(f"rates[{index}].region", f"{region!r} is not a region of {tenant}")
        await conn.execute(
            "INSERT INTO tax_classes (tenant, tax_class, name, version) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (tenant, tax_class) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version",
            tenant, change.tax_class, change.name, version)
        await conn.executemany(
            "INSERT INTO tax_rates (tenant, tax_class, region, rate_ppm, version) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (tenant, tax_class, region) DO UPDATE SET rate_ppm = EXCLUDED.rate_ppm, version = EXCLUDED.version",
            [(tenant, change.tax_class, region, rate, version) for region, rate in change.rates])
        await record(conn, Entry(tenant, actor, "catalog.tax_class_saved", target=change.tax_class, details={
            "name": change.name, "rates_ppm": dict(change.rates), "version": version}))
        return version


async def set_prices_include_tax(pool: asyncpg.Pool, tenant: str, included: bool, actor: str = "system") -> int:
    """Whether the tenant's shelf prices include tax (novapos.pricing.line_tax's `included`)."""
    async with pool.acquire() as conn, conn.transaction():
        version = await bump(conn, tenant)
        await conn.execute("UPDATE tenants SET prices_include_tax = $2 WHERE tenant = $1", tenant, included)
        await conn.execute("UPDATE catalog_versions SET settings_version = version WHERE tenant = $1", tenant)
        await record(conn, Entry(tenant, actor, "catalog.settings_set", details={
            "prices_include_tax": included, "version": version}))
        return version


async def settings(pool: asyncpg.Pool, tenant: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await tenant_row(conn, tenant)
        versions = await conn.fetchrow(
            "SELECT (SELECT version FROM catalog_versions WHERE tenant = $1) AS version,"
            " (SELECT version FROM catalog_published WHERE tenant = $1) AS published_version", tenant)
        return {"tenant": tenant, "currency": row["currency"], "prices_include_tax": row["prices_include_tax"],
                "version": versions["version"] or 0, "published_version": versions["published_version"] or 0}


SEARCH_SQL = (
    "SELECT p.product, p.name, p.tax_class, p.category, p.attributes, p.active, p.version,"
    " (SELECT count(*) FROM variants v WHERE v.tenant = p.tenant AND v.product = p.product) AS variants"
    " FROM products p WHERE p.tenant = $1 AND p.product > $2 AND ($3 = '' OR p.product = $3"
    "  OR p.name ILIKE '%' || $4 || '%'"
    "  OR p.product IN (SELECT product FROM variants WHERE tenant = $1 AND sku = $3)"
    "  OR p.product IN (SELECT v.product FROM barcodes b JOIN variants v USING (tenant, sku)"
    "                   WHERE b.tenant = $1 AND b.barcode = $3))"
    " ORDER BY p.product LIMIT $5")


async def search(pool: asyncpg.Pool, tenant: str, text: str, after: str, limit: int) -> list[dict[str, Any]]:
    """Products whose name holds `text`, or whose id, an SKU or a barcode of which is `text`, by id after `after`."""
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    async with pool.acquire() as conn:
        await tenant_row(conn, tenant)
        return [dict(row) for row in await conn.fetch(SEARCH_SQL, tenant, after, text, pattern, limit)]


async def product(pool: asyncpg.Pool, tenant: str, product: str) -> dict[str, Any]:
    """One product with its variants, each with its barcodes and every price (scope, start, amount)."""
    async with pool.acquire() as conn:
        await tenant_row(conn, tenant)
        row = await conn.fetchrow("SELECT product, name, tax_class, category, attributes, active, version FROM products"
                                  " WHERE tenant = $1 AND product = $2", tenant, product)
        if row is None:
            raise NotFound(f"there is no product {validators.describe(product)} in {tenant}")
        variants = await conn.fetch(
            "SELECT v.sku, v.name, v.attribute_values AS values, v.active, v.version,"
            " coalesce((SELECT array_agg(barcode ORDER BY barcode) FROM barcodes b"
            "  WHERE b.tenant = v.tenant AND b.sku = v.sku), '{}') AS barcodes,"
            " coalesce((SELECT json_agg(json_build_object('scope', scope, 'scope_id', scope_id,"
            "  'effective_from', effective_from, 'amount_minor', amount_minor) ORDER BY scope, scope_id, effective_from)"
            "  FROM prices pr WHERE pr.tenant = v.tenant AND pr.sku = v.sku), '[]')::text AS prices"
            " FROM variants v WHERE v.tenant = $1 AND v.product = $2 ORDER BY v.sku", tenant, product)
    return {**dict(row), "variants": [{**dict(v), "prices": json.loads(v["prices"])} for v in variants]}


async def tax_classes(pool: asyncpg.Pool, tenant: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        await tenant_row(conn, tenant)
        rows = await conn.fetch(
            "SELECT c.tax_class, c.name, c.version, coalesce(json_agg(json_build_object('region', r.region,"
            " 'rate_ppm', r.rate_ppm) ORDER BY r.region) FILTER (WHERE r.region IS NOT NULL), '[]')::text AS rates"
            " FROM tax_classes c LEFT JOIN tax_rates r USING (tenant, tax_class) WHERE c.tenant = $1"
            " GROUP BY c.tax_class, c.name, c.version ORDER BY c.tax_class", tenant)
    return [{**dict(row), "rates": json.loads(row["rates"])} for row in rows]
