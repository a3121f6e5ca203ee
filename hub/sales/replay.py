"""Replay validation (P5-01, P9-01): each sale line's snapshot checked against the catalog's authoritative
price at the sale's time, in the ingest transaction; a difference becomes a structured diff stored with
the order for a person to review, and the sale stays as sold (never silently corrected).

The authority for a line of store s (of region r) sold at time t: the SKU's price in force at t by
novapos.pricing.effective_price (store over region over tenant, latest effective_from <= t), its product's
tax class, that class's rate in r (tax_rates), and the tenant's prices_include_tax. A v2 line is checked on
all of these; a v1 line (an older store's, no price lock) on its unit price only. A v3 line is checked on its
LIST price (the price lock it was scanned at), not its unit price: a price override or a discount is a recorded
decision of the store (stored with the line, its approver and reason), not a difference from the catalog, while
a list price the catalog never had (a tampered lock) is one ("list_price"). A tenant whose catalog the
hub does not hold yet (no catalog version) is not validated: the hub is not yet its catalog's authority.

Cost: the catalog is read in one small query per batch (the tenant's version, regions, tax rates) plus one for
the SKUs not seen since the tenant's catalog version last moved: SKU entries are cached per hub process by
version, so a steady stream of sales of known items costs one round trip per batch, whatever the batch size.

Tax rates carry no effective date in the catalog, so a line is checked against today's rate: a rate changed
since the sale shows as a diff (prices are effective-dated, so a price changed after the sale does not).

A diff is canonical JSON (sorted keys, no spaces, stable order), built only from the event and the
catalog: the same sale meeting the same catalog gives the same bytes, on any hub, on any run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from novapos.pricing import Price, effective_price
from novapos.validators import MAX_BIGINT
from novapos.wire.envelope import Envelope

CONTEXT_SQL = """
SELECT q.tenant, t.prices_include_tax AS included, c.version, c.changed_at, current_database() AS db,
       (SELECT array_agg(s.store) FROM stores s WHERE s.tenant = q.tenant AND s.store = ANY($2::text[])) AS stores,
       (SELECT array_agg(s.region) FROM stores s WHERE s.tenant = q.tenant AND s.store = ANY($2::text[])) AS regions,
       (SELECT array_agg(r.tax_class ORDER BY r.tax_class, r.region) FROM tax_rates r WHERE r.tenant = q.tenant) AS classes,
       (SELECT array_agg(r.region ORDER BY r.tax_class, r.region) FROM tax_rates r WHERE r.tenant = q.tenant) AS rate_regions,
       (SELECT array_agg(r.rate_ppm ORDER BY r.tax_class, r.region) FROM tax_rates r WHERE r.tenant = q.tenant) AS rates,
       (SELECT array_agg(v.sku) FROM (SELECT sku FROM variants WHERE tenant = q.tenant AND version > q.since
                                      LIMIT $3) v) AS changed
FROM unnest($1::text[], $4::bigint[]) AS q(tenant, since)
JOIN tenants t ON t.tenant = q.tenant
JOIN catalog_versions c ON c.tenant = q.tenant
"""
"""Per tenant of a batch that has a catalog: its version, whether shelf prices include tax, its stores' regions
and its tax rates (small tables, read every batch), and the SKUs changed since the version this hub process
cached (the catalog stamps a variant with the version of any change to what it is sold with)."""

SKUS_SQL = """
SELECT w.tenant, w.sku, p.tax_class, pr.scopes, pr.scope_ids, pr.starts_ms, pr.amounts
FROM unnest($1::text[], $2::text[]) AS w(tenant, sku)
JOIN variants v ON (v.tenant, v.sku) = (w.tenant, w.sku)
JOIN products p ON (p.tenant, p.product) = (v.tenant, v.product)
LEFT JOIN LATERAL (
    SELECT array_agg(x.scope ORDER BY x.scope, x.scope_id, x.effective_from) AS scopes,
           array_agg(x.scope_id ORDER BY x.scope, x.scope_id, x.effective_from) AS scope_ids,
           array_agg(ceil(extract(epoch FROM x.effective_from) * 1000)::bigint
                     ORDER BY x.scope, x.scope_id, x.effective_from) AS starts_ms,
           array_agg(x.amount_minor ORDER BY x.scope, x.scope_id, x.effective_from) AS amounts
    FROM prices x WHERE x.tenant = w.tenant AND x.sku = w.sku
) pr ON true
"""
"""Each SKU's tax class and every price it has (all scopes, all dates; a price starting within a millisecond
counts from that millisecond: ceil). A SKU that is not returned is not in the catalog."""

MAX_CACHED_SKUS = 200_000
"""Per tenant; past it the cache starts afresh (a hub process stays small however large the catalog)."""
MAX_EVICTED_SKUS = 10_000
"""More SKUs changed than this since the cached version (an import): the cache starts afresh instead."""


@dataclass(frozen=True)
class Sku:
    """What the catalog says of one SKU, whatever the store: cached until its variant is stamped with a newer
    catalog version."""
    tax_class: str
    prices: tuple[Price, ...]


@dataclass(frozen=True)
class Catalog:
    """A tenant's catalog as one batch sees it: read fresh per batch, but for the SKUs (cached by version)."""
    included: bool
    regions: Mapping[str, str]
    """store -> region, for the batch's stores that have a record."""
    rates: Mapping[tuple[str, str], int]
    """(tax class, region) -> rate_ppm"""
    skus: Mapping[str, Sku | None]
    """SKU -> its catalog entry, None when the catalog does not hold it."""


@dataclass
class _Cached:
    stamp: tuple[str, int, datetime]
    """(database, catalog version, its time) the entries are true at."""
    skus: dict[str, Sku | None]


_cached: dict[str, _Cached] = {}
"""tenant -> its SKU entries. Every catalog change bumps the tenant's version and stamps the variants it touched
with it (hub/catalog), so when the version moves only the SKUs stamped since the cached version are read again.
The version is read before the SKUs, so a change committed in between is at worst read early, never missed."""


def forget() -> None:
    """Drop every cached SKU (a benchmark's cold start)."""
    _cached.clear()


def _current(row: asyncpg.Record) -> dict[str, Sku | None]:
    """The tenant's cached SKU entries brought to the version the batch reads: the changed SKUs evicted, or
    all of them when too many changed, the version went back or the database is another."""
    stamp = (row["db"], row["version"], row["changed_at"])
    cached = _cached.get(row["tenant"])
    changed = row["changed"] or []
    if cached is not None and len(cached.skus) > MAX_CACHED_SKUS:
        cached = None
    elif cached is not None and cached.stamp != stamp:
        if cached.stamp[0] == stamp[0] and cached.stamp[1] < stamp[1] and len(changed) <= MAX_EVICTED_SKUS:
            for sku in changed:
                cached.skus.pop(sku, None)
            cached.stamp = stamp
        else:
            cached = None
    if cached is None:
        cached = _cached[row["tenant"]] = _Cached(stamp, {})
    return cached.skus


async def catalogs(conn: asyncpg.Connection, events: Sequence[Envelope]) -> dict[str, Catalog]:
    """The catalog of each tenant of the batch that has one: one small query, and one more for the SKUs not
    cached at the tenant's current version (none once a batch's SKUs were seen and have not changed since)."""
    tenants = sorted({e.tenant for e in events})
    stores = sorted({e.store for e in events})
    since = [_cached[tenant].stamp[1] if tenant in _cached else MAX_BIGINT for tenant in tenants]
    found: dict[str, tuple[Any, dict[str, Sku | None]]] = {}
    for row in await conn.fetch(CONTEXT_SQL, tenants, stores, MAX_EVICTED_SKUS + 1, since):
        found[row["tenant"]] = (row, _current(row))
    missing = sorted({(e.tenant, line["sku"]) for e in events if e.tenant in found for line in e.body["lines"]
                      if line["sku"] not in found[e.tenant][1]})
    if missing:
        rows = {(row["tenant"], row["sku"]): row for row in await conn.fetch(
            SKUS_SQL, [tenant for tenant, _ in missing], [sku for _, sku in missing])}
        for tenant, sku in missing:
            row = rows.get((tenant, sku))
            found[tenant][1][sku] = None if row is None else Sku(row["tax_class"], tuple(
                Price(*fields) for fields in zip(row["scopes"] or (), row["scope_ids"] or (), row["starts_ms"] or (),
                                                 row["amounts"] or (), strict=True)))
    return {tenant: Catalog(
        included=row["included"], regions=dict(zip(row["stores"] or (), row["regions"] or (), strict=True)),
        rates={(c, r): rate for c, r, rate in zip(row["classes"] or (), row["rate_regions"] or (), row["rates"] or (),
                                                  strict=True)},
        skus=skus) for tenant, (row, skus) in found.items()}


def canonical(document: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 as is: one text for one diff."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line_diff(event: Envelope, line_no: int, line: Mapping[str, Any], catalog: Catalog) -> dict[str, Any] | None:
    """The differences between a sold line and the catalog, or None when the line is as the catalog says."""
    differences: dict[str, dict[str, Any]] = {}
    price = None
    region = catalog.regions.get(event.store)
    if region is None:
        differences["unknown_store"] = {"till": event.store, "catalog": None}
    entry = catalog.skus.get(line["sku"])
    if entry is None:
        differences["unknown_sku"] = {"till": line["sku"], "catalog": None}
    else:
        price = effective_price(entry.prices, region or "", event.store, event.ts)
        checked = "list_price" if "list_price" in line else "unit_price"  # v3: the lock, whatever was overridden
        unit = line[checked]["minor"]
        if price is None:
            differences["no_price_in_force"] = {"till": unit, "catalog": None}
        elif unit != price.minor:
            differences[checked] = {"till": unit, "catalog": price.minor}
        tax = line.get("tax")
        if tax is not None:  # v2: the price lock's tax rule too
            rate = None if region is None else catalog.rates.get((entry.tax_class, region))
            for what, till, authority in (("tax_class", tax["class"], entry.tax_class),
                                          ("tax_rate_ppm", tax["rate_ppm"], rate),
                                          ("tax_included", tax["included"], catalog.included)):
                if till != authority:
                    differences[what] = {"till": till, "catalog": authority}
    if not differences:
        return None
    return {
        "line": line_no, "sku": line["sku"], "sold_at": _time(event.ts), "v": event.v,
        "catalog_version": line.get("catalog_version"), "differences": differences,
        "price": None if price is None else {"scope": price.scope, "scope_id": price.scope_id,
                                             "effective_from": _time(price.effective_from_ms)},
    }


async def validate(conn: asyncpg.Connection, events: Sequence[Envelope]) -> int:
    """Check every line of the (new) sales against the catalog and store the diffs, inside the caller's
    transaction: a query or two to read the catalog (see catalogs), one COPY to write the diffs. Returns how many
    were found."""
    if not events:
        return 0
    known = await catalogs(conn, events)
    diffs = []
    for event in events:
        catalog = known.get(event.tenant)
        if catalog is None:
            continue
        for line_no, line in enumerate(event.body["lines"], 1):
            if (diff := line_diff(event, line_no, line, catalog)) is not None:
                diffs.append((event.id, line_no, event.tenant, event.store, line["sku"],
                              datetime.fromtimestamp(event.ts / 1000, tz=UTC), canonical(diff)))
    if diffs:
        await conn.copy_records_to_table("sale_price_diffs", records=diffs, columns=[
            "event_id", "line_no", "tenant", "store", "sku", "sold_at", "diff"])
    return len(diffs)
