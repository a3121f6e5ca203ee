"""The loyalty appliers (inside the ingest's inbox transaction, new events only):

- `sale.completed` v5 with a customer: its points tenders settled (hub.loyalty.redemptions.settle: online ones
  marked used, offline ones debited once), then the points it earns (hub.loyalty.earning) at the customer's tier
  before the sale, kept per line, credited as one lot; its spend counted and the tier recomputed.
- `return.completed` (any version with `original`): refunds of method `points` credited back into the lots the
  sale's redemptions took (hub.loyalty.accounts.post, `restore`); the points its returned lines earned (found in
  loyalty_earnings alone, whatever the return carries) reversed pro rata, off that sale's own lot first (novapos.pricing.pro_rata on what each line earned and the units
  returned before, so all the returns of a sale reverse exactly what it earned); the returned share of the
  spend the sale counted taken off the tier's.

A return naming the sale's customer that arrives before the sale is kept (loyalty_pending_returns) and reversed
when the sale arrives.

An event naming a customer the tenant does not have (or an id that is not one) is logged and left: the store has
sold already, and a sale is never refused for its loyalty part."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.loyalty import accounts, earning, redemptions
from hub.loyalty import program as programs
from hub.loyalty.metrics import CORRECTIONS, posted
from hub.loyalty.program import Program
from novapos.pricing import allocate, pro_rata, round_half_up
from novapos.wire.envelope import Envelope, decode

log = logging.getLogger(__name__)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def _customer(conn: asyncpg.Connection, event: Envelope, value: Any) -> uuid.UUID | None:
    customer = _uuid(value)
    if customer is None or not await accounts.exists(conn, event.tenant, customer):
        log.warning("loyalty: %s %s names no customer of tenant %s: its points are left", event.type, event.id,
                    event.tenant)
        return None
    return customer


async def _categories(conn: asyncpg.Connection, tenant: str, program: Program, skus: list[str]) -> dict[str, str]:
    """The sold skus' categories, when a bonus is by category (products.category, where the catalog has one)."""
    if not any(bonus.category for bonus in program.earn_bonuses):
        return {}
    rows = await conn.fetch("SELECT v.sku, to_jsonb(p) ->> 'category' AS category FROM variants v JOIN products p"
                            " USING (tenant, product) WHERE v.tenant = $1 AND v.sku = ANY($2::text[])", tenant, skus)
    return {row["sku"]: row["category"] for row in rows if row["category"]}


def _at(event: Envelope) -> datetime:
    return datetime.fromtimestamp(event.ts / 1000, UTC)


async def _spend(conn: asyncpg.Connection, event: Envelope, customer: uuid.UUID, amount: int,
                 program: Program) -> None:
    await conn.execute("INSERT INTO loyalty_spend (tenant, event_id, customer, spend_minor, at) VALUES"
                       " ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", event.tenant, event.id, customer, amount,
                       _at(event))
    await accounts.retier(conn, event.tenant, customer, program)


async def apply_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """sale.completed v5 with a customer: settle its points tenders, earn, count its spend. By customer (a stable
    sort: each customer's sales keep their order), so that two batches lock accounts in one order."""
    for event in sorted(events, key=lambda event: str((event.body.get("customer") or {}).get("id", ""))):
        body = event.body
        if event.v < 5 or "customer" not in body:
            continue
        customer = await _customer(conn, event, body["customer"]["id"])
        if customer is None:
            continue
        program = await programs.load(conn, event.tenant)
        await accounts.ensure(conn, event.tenant, customer, program)
        actor = f"till:{body['till']}"
        points_paid = 0
        for tender in body["tenders"]:
            if tender["method"] == "points":
                points_paid += tender["amount"]["minor"]
                await redemptions.settle(conn, event.tenant, event.store, event.id, customer, tender["points"],
                                         program, actor, amount_minor=int(tender["amount"]["minor"]),
                                         sold_at=_at(event))
        spend = await conn.fetchval("SELECT spend_12m_minor FROM loyalty_accounts WHERE tenant = $1 AND"
                                    " customer = $2", event.tenant, customer)
        multiplier = program.tier_for(int(spend)).multiplier_ppm  # the tier before this sale, by today's program
        lines = body["lines"]
        categories = await _categories(conn, event.tenant, program, [line["sku"] for line in lines])
        earned = earning.line_points(program, lines, points_paid, multiplier, categories)
        counted = _line_spend(lines, int(body["total"]["minor"]), points_paid)
        await conn.executemany(
            "INSERT INTO loyalty_earnings (tenant, order_id, line, customer, quantity, points, spend_minor) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            [(event.tenant, event.id, number, customer, line["quantity"], points, line_spend)
             for number, (line, points, line_spend) in enumerate(zip(lines, earned, counted, strict=True), start=1)])
        if (total := sum(earned)) > 0 and await accounts.post(
                conn, event.tenant, customer, total, kind="earn", key=f"earn:{event.id}", actor=actor,
                program=program, order_id=event.id, store=event.store, at=_at(event)) is not None:
            posted("earn", total)
        await _spend(conn, event, customer, sum(counted), program)
        await _returned_before(conn, event, program)


def _line_spend(lines: Sequence[dict[str, Any]], total_minor: int, points_paid_minor: int) -> list[int]:
    """What each line counts toward the tier: the goods' amount without tax, in the part the customer paid with
    money (a points tender's share taken off in proportion to the total), shared over the lines by their net
    amounts (novapos.pricing.allocate). A return takes off the returned share of this (pro rata)."""
    nets = [max(0, int(line["amount"]["minor"]) - (int(line["tax"]["amount"]["minor"])
                                                   if line["tax"]["included"] else 0)) for line in lines]
    money = max(0, total_minor - points_paid_minor)
    counted = round_half_up(sum(nets) * min(money, total_minor), total_minor) if total_minor > 0 else 0
    return allocate(min(counted, sum(nets)), nets)


async def apply_returns(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """return.completed v3: refunds to points credited; the points the returned lines earned reversed pro rata."""
    for event in sorted(events, key=lambda event: str((event.body.get("customer") or {}).get("id", ""))):
        body = event.body
        actor = f"till:{body['till']}"
        program = await programs.load(conn, event.tenant)
        original = _uuid((body.get("original") or {}).get("order"))
        for refund in body.get("refunds", []):
            if refund["method"] == "points" and (
                    customer := await _customer(conn, event, refund["points"]["customer"])) is not None:
                points = int(refund["points"]["points"])
                if await accounts.post(conn, event.tenant, customer, points, kind="refund",
                                       key=f"refund:{event.id}:{refund['id']}", actor=actor, program=program,
                                       store=event.store, reason="a return refunded to points",
                                       restore=await _redeemed_keys(conn, event.tenant, original)) is not None:
                    posted("refund", points)
        if original is None:
            continue
        if await conn.fetchval("SELECT 1 FROM loyalty_earnings WHERE tenant = $1 AND order_id = $2 LIMIT 1",
                               event.tenant, original):
            await _reverse_earned(conn, event, original, program, actor)
        elif "customer" in body:  # the sale had a customer but has not arrived yet: reversed when it does
            await conn.execute("INSERT INTO loyalty_pending_returns (tenant, original, event, event_id) VALUES"
                               " ($1, $2, $3, $4) ON CONFLICT DO NOTHING", event.tenant, original, event.encode(),
                               event.id)


async def _returned_before(conn: asyncpg.Connection, sale: Envelope, program: Program) -> None:
    """The returns of `sale` that arrived before it (kept by apply_returns): their points reversed now."""
    for row in await conn.fetch("DELETE FROM loyalty_pending_returns WHERE tenant = $1 AND original = $2"
                                " RETURNING event", sale.tenant, sale.id):
        returned = decode(bytes(row["event"]))
        await _reverse_earned(conn, returned, sale.id, program, f"till:{returned.body['till']}")


async def _redeemed_keys(conn: asyncpg.Connection, tenant: str, original: uuid.UUID | None) -> list[str]:
    """The ledger keys of the debits that the original sale's points tenders made (a refund to points goes back
    into the lots they took, with their expiry)."""
    if original is None:
        return []
    rows = await conn.fetch("SELECT redemption FROM loyalty_redemptions WHERE tenant = $1 AND order_id = $2",
                            tenant, original)
    return [key for row in rows for key in (row["redemption"], f"sold:{row['redemption']}",
                                            f"sold:{row['redemption']}:{original}")]


async def _reverse_earned(conn: asyncpg.Connection, event: Envelope, original: uuid.UUID, program: Program,
                          actor: str) -> None:
    reversed_points, returned_spend, customer = 0, 0, None
    for item in event.body["returned"]:
        if (line := item.get("original_line")) is None:
            continue
        row = await conn.fetchrow("SELECT customer, quantity, points, spend_minor, returned FROM loyalty_earnings"
                                  " WHERE"
                                  " tenant = $1 AND order_id = $2 AND line = $3 FOR UPDATE",
                                  event.tenant, original, line)
        if row is None:
            continue  # the sale earned nothing on it (no customer then, or sold before loyalty)
        returning = min(int(item["quantity"]), row["quantity"] - row["returned"])
        if returning <= 0:
            continue
        customer = row["customer"]
        reversed_points += pro_rata(int(row["points"]), row["quantity"], row["returned"], returning)
        returned_spend += pro_rata(int(row["spend_minor"]), row["quantity"], row["returned"], returning)
        await conn.execute("UPDATE loyalty_earnings SET returned = returned + $4 WHERE tenant = $1 AND order_id = $2"
                           " AND line = $3", event.tenant, original, line, returning)
    if customer is None:
        return
    if reversed_points > 0:
        balance = await accounts.post(conn, event.tenant, customer, -reversed_points, kind="earn_reversed",
                                      key=f"return:{event.id}", actor=actor, program=program, order_id=original,
                                      store=event.store, reason="items returned", own_lots_first=original)
        if balance is not None:
            posted("earn_reversed", -reversed_points)
            if balance < 0:
                CORRECTIONS.labels("return_after_spend").inc()
    await _spend(conn, event, customer, -returned_spend, program)
