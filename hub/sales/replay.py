"""Replay validation (P5-01, P9-01): each sale line's snapshot checked against the catalog's authoritative
price at the sale's time, in the ingest transaction; a difference becomes a structured diff stored with
the order for a person to review, and the sale stays as sold (never silently corrected).

The authority for a line of store s (of region r) sold at time t: the SKU's price in force at t by
novapos.pricing.effective_price (store over region over tenant, latest effective_from <= t), its product's
tax class, that class's rate in r (tax_rates), and the tenant's prices_include_tax. A v2 line is checked on
all of these; a v1 line (an older store's, no price lock) on its unit price only. A tenant the catalog does
not hold (no tenants row) is not validated: the hub is not yet its catalog's authority.

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
from novapos.wire.envelope import Envelope

AUTHORITY_SQL = """
SELECT w.tenant, w.store, w.sku, t.prices_include_tax AS included, s.region, v.sku IS NOT NULL AS known,
       p.tax_class, r.rate_ppm, pr.scopes, pr.scope_ids, pr.starts_ms, pr.amounts
FROM unnest($1::text[], $2::text[], $3::text[]) AS w(tenant, store, sku)
JOIN tenants t ON t.tenant = w.tenant
LEFT JOIN stores s ON (s.tenant, s.store) = (w.tenant, w.store)
LEFT JOIN variants v ON (v.tenant, v.sku) = (w.tenant, w.sku)
LEFT JOIN products p ON (p.tenant, p.product) = (v.tenant, v.product)
LEFT JOIN tax_rates r ON (r.tenant, r.tax_class, r.region) = (w.tenant, p.tax_class, s.region)
LEFT JOIN LATERAL (
    SELECT array_agg(x.scope) AS scopes, array_agg(x.scope_id) AS scope_ids,
           array_agg(ceil(extract(epoch FROM x.effective_from) * 1000)::bigint) AS starts_ms,
           array_agg(x.amount_minor) AS amounts
    FROM prices x
    WHERE x.tenant = w.tenant AND x.sku = w.sku AND x.effective_from <= $4
      AND (x.scope = 'tenant' OR (x.scope = 'region' AND x.scope_id = s.region)
           OR (x.scope = 'store' AND x.scope_id = w.store))
) pr ON true
"""
"""What the catalog says of each (tenant, store, SKU) of a batch, in one query: the store's region, the
SKU's tax class and rate there, whether shelf prices include tax, and every price that could be in force
for that store up to the batch's latest sale (a price starting in the same millisecond counts: ceil)."""


@dataclass(frozen=True)
class Authority:
    """The catalog's word on one SKU in one store."""
    known: bool
    region: str | None
    """None when the store has no record in tenancy (then only tenant and store prices apply)."""
    prices: tuple[Price, ...]
    tax_class: str | None
    rate_ppm: int | None
    included: bool


Key = tuple[str, str, str]
"""(tenant, store, sku)"""


def canonical(document: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 as is: one text for one diff."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line_diff(event: Envelope, line_no: int, line: Mapping[str, Any], authority: Authority) -> dict[str, Any] | None:
    """The differences between a sold line and the catalog, or None when the line is as the catalog says."""
    differences: dict[str, dict[str, Any]] = {}
    price = None

    def differ(what: str, till: Any, catalog: Any) -> None:
        if till != catalog:
            differences[what] = {"till": till, "catalog": catalog}

    if authority.region is None:
        differ("unknown_store", event.store, None)
    if not authority.known:
        differ("unknown_sku", line["sku"], None)
    else:
        price = effective_price(authority.prices, authority.region or "", event.store, event.ts)
        unit = line["unit_price"]["minor"]
        if price is None:
            differ("no_price_in_force", unit, None)
        else:
            differ("unit_price", unit, price.minor)
        tax = line.get("tax")
        if tax is not None:  # v2: the price lock's tax rule too
            differ("tax_class", tax["class"], authority.tax_class)
            differ("tax_rate_ppm", tax["rate_ppm"], authority.rate_ppm)
            differ("tax_included", tax["included"], authority.included)
    if not differences:
        return None
    return {
        "line": line_no, "sku": line["sku"], "sold_at": _time(event.ts), "v": event.v,
        "catalog_version": line.get("catalog_version"), "differences": differences,
        "price": None if price is None else {"scope": price.scope, "scope_id": price.scope_id,
                                             "effective_from": _time(price.effective_from_ms)},
    }


async def authorities(conn: asyncpg.Connection, events: Sequence[Envelope]) -> dict[Key, Authority]:
    """The catalog's word on every (tenant, store, SKU) the events sold, in one query."""
    keys = sorted({(e.tenant, e.store, line["sku"]) for e in events for line in e.body["lines"]})
    latest = datetime.fromtimestamp(max(e.ts for e in events) / 1000, tz=UTC)
    rows = await conn.fetch(AUTHORITY_SQL, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], latest)
    return {(row["tenant"], row["store"], row["sku"]): Authority(
        known=row["known"], region=row["region"],
        prices=tuple(Price(*fields) for fields in zip(
            row["scopes"] or (), row["scope_ids"] or (), row["starts_ms"] or (), row["amounts"] or (), strict=True)),
        tax_class=row["tax_class"], rate_ppm=row["rate_ppm"], included=row["included"]) for row in rows}


async def validate(conn: asyncpg.Connection, events: Sequence[Envelope]) -> int:
    """Check every line of the (new) sales against the catalog and store the diffs, inside the caller's
    transaction: one query to read the catalog, one COPY to write the diffs. Returns how many were found."""
    if not events:
        return 0
    known = await authorities(conn, events)
    diffs = []
    for event in events:
        for line_no, line in enumerate(event.body["lines"], 1):
            authority = known.get((event.tenant, event.store, line["sku"]))
            if authority is not None and (diff := line_diff(event, line_no, line, authority)) is not None:
                diffs.append((event.id, line_no, event.tenant, event.store, line["sku"],
                              datetime.fromtimestamp(event.ts / 1000, tz=UTC), canonical(diff)))
    if diffs:
        await conn.copy_records_to_table("sale_price_diffs", records=diffs, columns=[
            "event_id", "line_no", "tenant", "store", "sku", "sold_at", "diff"])
    return len(diffs)
