"""The simulation: a proposed promotion replayed over the last N days of the tenant's sales at the hub, with the
engine (novapos.promotions) and the promotions that were in force at each sale, to predict what it costs.

For each sale, the lines the till would have promoted (those without a price override, at their list price) are
evaluated twice at the sale's store, region and time: with the promotions live then (promotion_live), and with
the proposal added. The cost is what the proposal adds to the discount given, sale by sale, summed (in the
tenant's currency, minor units), with the sales it touched, overall and per store. Interactions are the engine's: a
proposal that beats an exclusive promotion costs only what it adds; a sale where it gives less than before (it takes
a line out of another promotion's threshold) counts 0, never a saving netted against the others, so a promotion
cannot hide its cost behind the discounts it displaces. A promotion whose cost reaches the tenant's threshold
(cost >= threshold: 0 asks for a second person on every promotion) waits for approval.

The prediction is deliberately an upper bound where the history cannot say: the proposal is simulated as if its
schedule covered the whole period (its days and hours still apply), as if every sale had a customer of a
qualifying tier, and as if a coupon of it were presented at every sale (a code_only promotion). A person approving
it sees the most it could have cost, never less.

Reading is one query on the asyncio seam, which reads only the months of sales the period spans (sales are
partitioned by the month of their event id, a UUIDv7 made by the till as it completes the sale: the id's time is
the sale's, so the period's ids are looked for within a day of it; a sale whose id says otherwise by more, a till
clock changed in between, is left out of the prediction); evaluating runs in a worker thread (pure Python,
seconds for a large tenant: it must not hold up the seam), logging its progress every PROGRESS_EVERY sales.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.promotions import records
from hub.promotions.records import Period
from hub.promotions.settings import settings
from novapos import promotions as engine

log = logging.getLogger(__name__)

MAX_SALES = 500_000
"""Sales replayed at most (the most recent): about a minute of evaluation on one core; the answer says so when
there were more."""
PROGRESS_EVERY = 50_000

SALES_SQL = """
SELECT s.store, coalesce(st.region, '') AS region, (extract(epoch FROM s.completed_at) * 1000)::bigint AS at_ms,
       array_agg(coalesce(l.line_id, l.line_no::text) ORDER BY l.line_no) AS line_ids,
       array_agg(l.sku ORDER BY l.line_no) AS skus,
       array_agg(coalesce(p.category, '') ORDER BY l.line_no) AS categories,
       array_agg(coalesce(l.list_price_minor, l.unit_price_minor) ORDER BY l.line_no) AS units,
       array_agg(l.quantity ORDER BY l.line_no) AS quantities,
       array_agg(l.override_reason IS NOT NULL ORDER BY l.line_no) AS overridden
FROM (SELECT * FROM sales WHERE tenant = $1 AND completed_at >= $2 AND completed_at < $3 AND currency = $4
        AND event_id >= uuid7_floor($2 - interval '1 day') AND event_id < uuid7_floor($3 + interval '1 day')
      ORDER BY completed_at DESC LIMIT $5) s
LEFT JOIN stores st ON (st.tenant, st.store) = (s.tenant, s.store)
JOIN sale_lines l ON l.event_id = s.event_id
LEFT JOIN variants v ON (v.tenant, v.sku) = (s.tenant, l.sku)
LEFT JOIN products p ON (p.tenant, p.product) = (v.tenant, v.product)
GROUP BY s.event_id, s.store, st.region, s.completed_at
ORDER BY s.completed_at, s.event_id
"""


@dataclass(frozen=True)
class Sale:
    store: str
    region: str
    at_ms: int
    lines: tuple[engine.CartLine, ...]


@dataclass(frozen=True)
class History:
    """What a simulation reads: the sales of the period and the promotions live during it."""
    since: datetime
    until: datetime
    days: int
    threshold_minor: int
    sales: tuple[Sale, ...]
    periods: tuple[Period, ...]
    more: bool
    """More sales than MAX_SALES in the period: only the most recent were replayed."""


@dataclass(frozen=True)
class Prediction:
    sales: int
    sales_touched: int
    cost_minor: int
    per_store: dict[str, dict[str, int]]


async def history(conn: asyncpg.Connection, tenant: str, promotion: engine.Promotion,
                  now: datetime | None = None) -> History:
    """(asyncio side) The tenant's last `simulation_days` of sales in the promotion's currency and the promotions
    live then (but the simulated one's own earlier revisions)."""
    chosen = await settings(conn, tenant)
    until = now or datetime.now(UTC)
    since = until - timedelta(days=chosen.simulation_days)
    rows = await conn.fetch(SALES_SQL, tenant, since, until, promotion.currency, MAX_SALES + 1)
    sales = tuple(Sale(row["store"], row["region"], row["at_ms"], tuple(
        engine.CartLine(line=line, sku=sku, category=category, unit_minor=unit, quantity=quantity)
        for line, sku, category, unit, quantity, overridden in zip(
            row["line_ids"], row["skus"], row["categories"], row["units"], row["quantities"], row["overridden"],
            strict=True) if not overridden)) for row in rows[:MAX_SALES])
    periods = tuple(await records.live_during(conn, tenant, since, until, leave_out=uuid.UUID(promotion.id)))
    return History(since, until, chosen.simulation_days, chosen.approval_threshold_minor, sales, periods,
                   len(rows) > MAX_SALES)


def as_simulated(promotion: engine.Promotion) -> engine.Promotion:
    """The proposal as the simulation applies it: the upper bound described above."""
    return dataclasses.replace(promotion, starts_at_ms=None, ends_at_ms=None, customers_only=False,
                               tiers=frozenset())


def predict(promotion: engine.Promotion, past: History) -> Prediction:
    """(a worker thread) Replay the sales without and with the proposal; pure, deterministic. The engine's Rules
    (its index of a set of promotions) are built once per set of live revisions, not per sale."""
    proposal = as_simulated(promotion)
    per_store: defaultdict[str, dict[str, int]] = defaultdict(lambda: {"cost_minor": 0, "sales": 0, "sales_touched": 0})
    rules: dict[tuple[int, ...], tuple[engine.Rules, engine.Rules]] = {}
    cost = touched = 0
    started = time.monotonic()
    for index, sale in enumerate(past.sales, 1):
        store = per_store[sale.store]
        store["sales"] += 1
        if sale.lines:
            live = tuple(at for at, period in enumerate(past.periods) if period.live_from_ms <= sale.at_ms
                         and (period.live_until_ms is None or sale.at_ms < period.live_until_ms))
            if live not in rules:
                promotions = [past.periods[at].promotion for at in live]
                rules[live] = engine.Rules(promotions), engine.Rules([*promotions, proposal])
            without, with_it = rules[live]
            context = engine.Context(store=sale.store, region=sale.region, at_ms=sale.at_ms,
                                     coupons=frozenset({proposal.id}), currency=proposal.currency)
            before = engine.evaluate(without, sale.lines, context)
            after = engine.evaluate(with_it, sale.lines, context)
            if any(applied.promotion == proposal.id for applied in after.applied):
                touched += 1
                store["sales_touched"] += 1
            extra = max(0, after.total - before.total)
            cost += extra
            store["cost_minor"] += extra
        if index % PROGRESS_EVERY == 0:
            log.info("promotion simulation of %s: %d of %d sales replayed in %.1f s", promotion.id, index,
                     len(past.sales), time.monotonic() - started)
    return Prediction(len(past.sales), touched, cost, {store: per_store[store] for store in sorted(per_store)})


async def save(conn: asyncpg.Connection, tenant: str, promotion: engine.Promotion, past: History,
               prediction: Prediction, actor: str) -> dict[str, Any]:
    """(asyncio side) Store the prediction for the revision (what submit and the approver read); its JSON."""
    row = await conn.fetchrow(
        "INSERT INTO promotion_simulations (tenant, promotion, revision, days, since, until, sales, sales_touched,"
        " cost_minor, per_store, threshold_minor, needs_approval, by_login) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
        " $9, $10::jsonb, $11, $12, $13) RETURNING *", tenant, uuid.UUID(promotion.id), promotion.version, past.days,
        past.since, past.until, prediction.sales, prediction.sales_touched, prediction.cost_minor,
        json.dumps(prediction.per_store, sort_keys=True), past.threshold_minor,
        prediction.cost_minor >= past.threshold_minor, actor)
    return {**records.simulation_json(row), "more_sales_than_replayed": past.more}
