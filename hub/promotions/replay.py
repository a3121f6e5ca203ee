"""Replay validation of promotions: the hub's applier of sale.completed re-evaluates each sale's lines with the
engine (novapos.promotions, the till's own) and the promotions in force, and stores a diff when the till's
promotions on a line differ from the hub's.

What was in force for a v5 sale: the revisions live at the catalog version the till evaluated
(`promotions_version`, the version of the store's catalog copy, which holds promotions too:
hub.promotions.records.at_version), then the engine's in_force at the sale's time, store, region, currency,
coupons (the promotions of its coupons) and customer. A v3/v4 sale is one where the till applied no promotion (it
had none in force, or its copy was stale, missing or offline): it names no version, so it is checked against the
revisions live at its time (promotion_live, by wall clock), with no customer and no coupon; a diff says the hub
would have given a discount the till did not. Tenants that had no promotion live at the batch's times pay one
indexed query and nothing else. Lines with a price override are not promoted at the till, so they are not here
either. A line's category is the product's as the catalog says now (categories are not effective-dated).

A customer's tier is the tier hub.loyalty gives the rolling 12-month spend it had recorded before this sale
(loyalty_spend up to the sale's time, the sale itself left out) under the program's tiers as they are now (tier
thresholds are not effective-dated). A customer without a loyalty account (an id the tenant does not know) falls
back to a guess: the first tier of the tier-restricted promotions the till applied.

Lines are evaluated under their position in the sale, not their ids: v5 does not require distinct line ids, and
the engine's answer depends on the lines' order only, so a sale with two lines `l1` is checked, never a reason
for the applier to raise (which would stall ingest: an applier's exception is the hub's fault, retried).

A diff is canonical JSON (sorted keys, no spaces: hub.sales.replay.canonical), built only from the event and the
stored revisions: the same sale gives the same bytes on any hub, on any run. The sale stays as sold.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.loyalty import program as loyalty
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


PERIODS_SQL = """
SELECT l.tenant, l.promotion, l.revision, l.live_from, l.live_until FROM promotion_live l
WHERE l.tenant = ANY($1::text[]) AND l.live_from <= $3 AND (l.live_until IS NULL OR l.live_until > $2)
ORDER BY l.tenant, l.promotion, l.from_version
"""
SPEND_SQL = """
SELECT q.event_id, (SELECT coalesce(sum(s.spend_minor), 0) FROM loyalty_spend s
                    WHERE s.tenant = q.tenant AND s.customer = q.customer AND s.event_id <> q.event_id
                      AND s.at > q.at - interval '12 months' AND s.at <= q.at) AS spend
FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::timestamptz[]) AS q(tenant, event_id, customer, at)
JOIN loyalty_accounts a ON (a.tenant, a.customer) = (q.tenant, q.customer)
"""


@dataclass(frozen=True)
class _Live:
    """A revision live from `since` until `until` (None: still)."""
    promotion: uuid.UUID
    revision: int
    since: datetime
    until: datetime | None

    def covers(self, at: datetime) -> bool:
        return self.since <= at and (self.until is None or at < self.until)


def _at(event: Envelope) -> datetime:
    return datetime.fromtimestamp(event.ts / 1000, tz=UTC)


def cart(body: Mapping[str, Any], categories: Mapping[str, str]) -> list[engine.CartLine]:
    """The sale's lines the till promoted (no price override), as the engine's cart lines, each under its
    position in the sale (see the module)."""
    return [engine.CartLine(line=str(position), sku=line["sku"], category=categories.get(line["sku"], ""),
                            unit_minor=line["unit_price"]["minor"], quantity=line["quantity"])
            for position, line in enumerate(body["lines"]) if "override" not in line]


def guessed_tier(body: Mapping[str, Any], promotions: engine.Rules) -> str | None:
    """The first tier of the tier-restricted promotions the till applied (a customer without an account)."""
    applied = {promotion["promotion"] for line in body["lines"] for promotion in line.get("promotions", ())}
    tiers = [tier for promotion in promotions.promotions if promotion.id in applied for tier in sorted(promotion.tiers)]
    return tiers[0] if tiers else None


def context(event: Envelope, region: str, currency: str, promotions: engine.Rules,
            tier: str | None = None) -> engine.Context:
    """The sale's context; `tier` the customer's as hub.loyalty knew it (None: no account, guessed)."""
    body = event.body
    customer = body.get("customer", {}).get("id")
    if customer is not None and tier is None:
        tier = guessed_tier(body, promotions)
    return engine.Context(store=event.store, region=region, at_ms=event.ts,
                          coupons=frozenset(coupon["promotion"] for coupon in body.get("coupons", ())),
                          customer=customer, tier=tier if customer is not None else None, currency=currency)


def sale_diff(event: Envelope, version: int | None, evaluation: engine.Evaluation) -> dict[str, Any] | None:
    """The lines whose promotions differ between the till and the hub, or None when they agree (`version`: the
    v5 sale's promotions_version; None for a v3/v4 sale, checked against what was live at its time)."""
    lines = []
    for position, line in enumerate(event.body["lines"]):
        till = sorted((promotion["promotion"], promotion["amount"]["minor"]) for promotion in line.get("promotions", ()))
        hub = [] if "override" in line else sorted((promotion, amount) for promotion, _, amount
                                                   in evaluation.for_line(str(position)))
        if till != hub:
            lines.append({"line": line["line"], "sku": line["sku"],
                          "till": [{"promotion": p, "amount": a} for p, a in till],
                          "hub": [{"promotion": p, "amount": a} for p, a in hub]})
    if not lines:
        return None
    return {"sale": str(event.id), "store": event.store, "promotions_version": version,
            "sold_at": _at(event).isoformat(timespec="milliseconds").replace("+00:00", "Z"), "lines": lines}


async def _live_at_times(conn: asyncpg.Connection, sales: Sequence[Envelope]) -> dict[str, list[_Live]]:
    """The revisions live at some moment of `sales` (v3/v4), by tenant: one indexed query."""
    if not sales:
        return {}
    times = [_at(event) for event in sales]
    found: dict[str, list[_Live]] = {}
    for row in await conn.fetch(PERIODS_SQL, sorted({event.tenant for event in sales}), min(times), max(times)):
        found.setdefault(row["tenant"], []).append(
            _Live(row["promotion"], row["revision"], row["live_from"], row["live_until"]))
    return found


async def _tiers(conn: asyncpg.Connection, sales: Sequence[Envelope]) -> dict[uuid.UUID, str]:
    """Each v5 sale's customer's tier before it (see the module), by event id, for the customers with an
    account; one query for the batch, and the program of each tenant concerned."""
    wanted = []
    for event in sales:
        customer = event.body.get("customer", {}).get("id")
        try:
            wanted.append((event.tenant, event.id, uuid.UUID(str(customer)), _at(event)))
        except ValueError:
            continue  # no customer, or an id that is none of the tenant's customers
    if not wanted:
        return {}
    rows = await conn.fetch(SPEND_SQL, *(list(column) for column in zip(*wanted, strict=True)))
    tenants = {event_id: tenant for tenant, event_id, _, _ in wanted}
    programs: dict[str, loyalty.Program] = {}
    tiers = {}
    for row in rows:
        tenant = tenants[row["event_id"]]
        if tenant not in programs:
            programs[tenant] = await loyalty.load(conn, tenant)
        tiers[row["event_id"]] = programs[tenant].tier_for(int(row["spend"])).name
    return tiers


async def apply_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """The applier of sale.completed v3, v4 and v5, in the inbox's transaction (v1/v2 lines name no line)."""
    live = await _live_at_times(conn, [event for event in events if event.v in (3, 4)])
    plain = {event.id for event in events if event.v in (3, 4)
             and any(period.covers(_at(event)) for period in live.get(event.tenant, ()))}
    sales = [event for event in events if event.v >= 5 or event.id in plain]
    if not sales:
        return
    tenants = sorted({event.tenant for event in sales})
    found = {row["tenant"]: row for row in await conn.fetch(CONTEXT_SQL, tenants, sorted({e.store for e in sales}))}
    wanted = sorted({(event.tenant, line["sku"]) for event in sales for line in event.body["lines"]})
    categories: dict[str, dict[str, str]] = {}
    for row in await conn.fetch(CATEGORIES_SQL, [t for t, _ in wanted], [s for _, s in wanted]):
        categories.setdefault(row["tenant"], {})[row["sku"]] = row["category"]
    tiers = await _tiers(conn, [event for event in sales if event.v >= 5])
    diffs = []
    for event in sales:
        row = found.get(event.tenant)
        if row is None:
            continue
        regions = dict(zip(row["stores"] or (), row["regions"] or (), strict=True))
        version: int | None
        if event.v >= 5:
            version = event.body["promotions_version"]
            promotions = await records.at_version(conn, event.tenant, version, row["version"])
        else:
            version = None
            at = _at(event)
            promotions = await records.revisions_rules(conn, event.tenant, sorted(
                (period.promotion, period.revision) for period in live[event.tenant] if period.covers(at)))
        evaluation = engine.evaluate(promotions, cart(event.body, categories.get(event.tenant, {})),
                                     context(event, regions.get(event.store, ""), row["currency"], promotions,
                                             tiers.get(event.id)))
        metrics.VALIDATED.inc()
        if (diff := sale_diff(event, version, evaluation)) is not None:
            diffs.append((event.id, event.tenant, event.store, _at(event), canonical(diff)))
    if diffs:
        await conn.executemany("INSERT INTO promotion_diffs (event_id, tenant, store, sold_at, diff)"
                               " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING", diffs)
        metrics.DIFFS.inc(len(diffs))
