"""Replay validation of promotions: the hub's applier of sale.completed v5 re-evaluates each sale's lines with the
engine (novapos.promotions, the till's own) and the promotions the store's copy held, and stores a diff when the
till's promotions on a line differ from the hub's.

What was in force for a sale: the revisions live at the catalog version the till evaluated (`promotions_version`,
the version of the store's catalog copy, which holds promotions too: hub.promotions.records.at_version), then
the engine's in_force at the sale's time, store, region, currency, coupons (the promotions of its coupons) and
customer. Lines with a price override are not promoted at the till, so they are not here either. A line's
category is the product's as the catalog says now (categories are not effective-dated). A customer's tier is not
known at the hub at the sale's time, so a tier-restricted promotion the till applied is checked as if the
customer had that tier (a tier the store saw; the loyalty ledger is the authority on tiers, not this check).

A diff is canonical JSON (sorted keys, no spaces: hub.sales.replay.canonical), built only from the event and the
stored revisions: the same sale gives the same bytes on any hub, on any run. The sale stays as sold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.promotions import metrics, records
from hub.sales.replay import canonical
from novapos import promotions as engine
from novapos.wire.envelope import Envelope

CONTEXT_SQL = """
SELECT q.tenant, coalesce(c.version, 0) AS version, rtrim(t.currency) AS currency,
       (SELECT array_agg(s.store) FROM stores s WHERE s.tenant = q.tenant AND s.store = ANY($2::text[])) AS stores,
       (SELECT array_agg(s.region) FROM stores s WHERE s.tenant = q.tenant AND s.store = ANY($2::text[])) AS regions
FROM unnest($1::text[]) AS q(tenant)
JOIN tenants t ON t.tenant = q.tenant
LEFT JOIN catalog_versions c ON c.tenant = q.tenant
"""
CATEGORIES_SQL = """
SELECT w.tenant, w.sku, coalesce(p.category, '') AS category
FROM unnest($1::text[], $2::text[]) AS w(tenant, sku)
JOIN variants v ON (v.tenant, v.sku) = (w.tenant, w.sku)
JOIN products p ON (p.tenant, p.product) = (v.tenant, v.product)
"""


def cart(body: Mapping[str, Any], categories: Mapping[str, str]) -> list[engine.CartLine]:
    """The sale's lines the till promoted (no price override), as the engine's cart lines."""
    return [engine.CartLine(line=line["line"], sku=line["sku"], category=categories.get(line["sku"], ""),
                            unit_minor=line["unit_price"]["minor"], quantity=line["quantity"])
            for line in body["lines"] if "override" not in line]


def context(event: Envelope, region: str, currency: str, promotions: engine.Rules) -> engine.Context:
    body = event.body
    customer = body.get("customer", {}).get("id")
    applied = {promotion["promotion"] for line in body["lines"] for promotion in line.get("promotions", ())}
    tiers = [tier for promotion in promotions.promotions if promotion.id in applied for tier in sorted(promotion.tiers)]
    return engine.Context(store=event.store, region=region, at_ms=event.ts,
                          coupons=frozenset(coupon["promotion"] for coupon in body.get("coupons", ())),
                          customer=customer, tier=tiers[0] if customer is not None and tiers else None,
                          currency=currency)


def sale_diff(event: Envelope, version: int, evaluation: engine.Evaluation) -> dict[str, Any] | None:
    """The lines whose promotions differ between the till and the hub, or None when they agree."""
    lines = []
    for line in event.body["lines"]:
        till = sorted((promotion["promotion"], promotion["amount"]["minor"]) for promotion in line.get("promotions", ()))
        hub = [] if "override" in line else sorted((promotion, amount) for promotion, _, amount
                                                   in evaluation.for_line(line["line"]))
        if till != hub:
            lines.append({"line": line["line"], "sku": line["sku"],
                          "till": [{"promotion": p, "amount": a} for p, a in till],
                          "hub": [{"promotion": p, "amount": a} for p, a in hub]})
    if not lines:
        return None
    return {"sale": str(event.id), "store": event.store, "promotions_version": version,
            "sold_at": datetime.fromtimestamp(event.ts / 1000, tz=UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"), "lines": lines}


async def apply_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """The applier of sale.completed (v5 only: older sales carry no promotions), in the inbox's transaction."""
    sales = [event for event in events if event.v >= 5]
    if not sales:
        return
    tenants = sorted({event.tenant for event in sales})
    found = {row["tenant"]: row for row in await conn.fetch(CONTEXT_SQL, tenants, sorted({e.store for e in sales}))}
    wanted = sorted({(event.tenant, line["sku"]) for event in sales for line in event.body["lines"]})
    categories: dict[str, dict[str, str]] = {}
    for row in await conn.fetch(CATEGORIES_SQL, [t for t, _ in wanted], [s for _, s in wanted]):
        categories.setdefault(row["tenant"], {})[row["sku"]] = row["category"]
    diffs = []
    for event in sales:
        row = found.get(event.tenant)
        if row is None:
            continue
        regions = dict(zip(row["stores"] or (), row["regions"] or (), strict=True))
        version = event.body["promotions_version"]
        promotions = await records.at_version(conn, event.tenant, version, row["version"])
        evaluation = engine.evaluate(promotions, cart(event.body, categories.get(event.tenant, {})),
                                     context(event, regions.get(event.store, ""), row["currency"], promotions))
        metrics.VALIDATED.inc()
        if (diff := sale_diff(event, version, evaluation)) is not None:
            diffs.append((event.id, event.tenant, event.store,
                          datetime.fromtimestamp(event.ts / 1000, tz=UTC), canonical(diff)))
    if diffs:
        await conn.executemany("INSERT INTO promotion_diffs (event_id, tenant, store, sold_at, diff)"
                               " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING", diffs)
        metrics.DIFFS.inc(len(diffs))
