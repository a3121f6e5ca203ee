"""The console's orders: one page of a tenant's sales, newest first, and one sale with everything kept about it.

Orders are ordered by the hub's receive time (received_at), not the store's clock: a store whose clock is
wrong must not hold the top of the list, and a sale received later never slips in above a page already read.
Pages are cut by keyset, (received_at, event_id) below the cursor, so a page costs the same at the ten
millionth sale as at the first and ties in received_at (one ingest batch) are neither repeated nor lost.
Each read walks one index of 0136_orders_keyset.sql: the tenant's, or per store (a regional admin's stores,
merged), or one till's.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from novapos.validators import Invalid

MAX_PAGE = 200
DEFAULT_PAGE = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"(\d{1,18})_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_MAX_TIME_TEXT = 40

LISTED = ("event_id, tenant, store, seq, till, cashier, total_minor, currency, tax_total_minor, completed_at,"
          " clock_suspect, received_at")
_KEY = "received_at DESC, event_id DESC"
STORE_EXISTS_SQL = "SELECT EXISTS (SELECT 1 FROM stores WHERE tenant = $1 AND store = $2)"
SALE_SQL = (
    f"SELECT {LISTED}, session, tendered_minor, change_minor, v, st.name AS store_name, st.region, drawer_session,"
    " order_discount_kind, order_discount_value, order_discount_reason, order_discount_minor,"
    " customer_id, promotions_version, coupons::text AS coupons,"
    " (SELECT coalesce(json_agg(l ORDER BY l.line_no), '[]') FROM (SELECT line_no, sku, name, quantity,"
    "   unit_price_minor, amount_minor, catalog_version, tax_class, tax_rate_ppm, tax_included, tax_minor,"
    "   line_id, attributes, list_price_minor, override_reason, override_approver, discount_kind, discount_value,"
    "   discount_reason, discount_minor, order_discount_minor, promotions, promotions_minor"
    "   FROM sale_lines WHERE sale_lines.event_id = sales.event_id) l)::text AS lines,"
    " (SELECT coalesce(json_agg(t ORDER BY t.tender_no), '[]') FROM (SELECT tender_no, method, amount_minor,"
    "   tender_id, card_reference, card_scheme, card_masked, card_auth_code, card_terminal, card_signature,"
    "   qr_intent, qr_provider_ref, points_customer, points_points, points_redemption, points_offline,"
    "   gift_card_masked, gift_card_redemption"
    "   FROM sale_tenders WHERE sale_tenders.event_id = sales.event_id) t)::text AS tenders,"
    " (SELECT coalesce(json_agg(json_build_object('line_no', line_no, 'sku', sku, 'sold_at', sold_at,"
    "   'found_at', found_at, 'diff', diff::json) ORDER BY line_no), '[]')"
    "   FROM sale_price_diffs d WHERE d.event_id = sales.event_id)::text AS price_diffs"
    " , (SELECT coalesce(json_agg(json_build_object('event_id', r.event_id, 'store', r.store, 'till', r.till,"
    "   'returned_at', r.returned_at, 'refunded_minor', r.refunded_minor, 'total_minor', r.total_minor,"
    "   'review', r.review) ORDER BY r.id), '[]')"
    "   FROM returns r WHERE r.original_order = sales.event_id AND r.tenant = sales.tenant)::text AS returns"
    " FROM sales LEFT JOIN stores st USING (tenant, store) WHERE tenant = $1 AND event_id = $2")
"""The sale with its lines, tenders, diffs and returns (hub.returns) as JSON arrays: one statement, each part by its
key."""

@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: below this sale in (received_at, event_id) order. As text,
    `<received_at in microseconds since 1970>_<event id>`: exact, and safe in a URL as it is."""
    received_at: datetime
    event_id: uuid.UUID

    def text(self) -> str:
        micros = (self.received_at - _EPOCH) // timedelta(microseconds=1)
        return f"{micros}_{self.event_id}"

    @classmethod
    def parse(cls, where: str, value: str) -> Cursor:
        match = _CURSOR.fullmatch(value)
        if match is None:
            raise Invalid(where, f"must be the `next` of the previous page, got {value[:60]!r}")
        try:
            received_at = _EPOCH + timedelta(microseconds=int(match[1]))
        except OverflowError:
            raise Invalid(where, "must be the `next` of the previous page: its time is out of range") from None
        return cls(received_at, uuid.UUID(match[2]))


def instant(where: str, value: str) -> datetime:
    """A bound of a time range: a date (midnight UTC) or a date and time with its offset (Z or +01:00)."""
    shown = value[:_MAX_TIME_TEXT]
    if len(value) > _MAX_TIME_TEXT:
        raise Invalid(where, f"must be a date or a time such as 2026-12-01T08:00:00Z, got {shown!r}...")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(where, f"must be a date or a time such as 2026-12-01T08:00:00Z (a + in a URL is %2B), "
                             f"got {shown!r}") from None
    if moment.tzinfo is None:
        raise Invalid(where, f"needs its time zone, as in 2026-12-01T08:00:00Z or ...+01:00, got {shown!r}")
    return moment


@dataclass(frozen=True)
class Window:
    """Which orders a page shows: the tenant's, of `stores` (None: every store) and of `till` (one store's),
    received from `since` (inclusive) until `until` (exclusive), below `before`, at most `limit`."""
    tenant: str
    stores: list[str] | None
    till: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: Cursor | None = None
    limit: int = DEFAULT_PAGE

    @property
    def store(self) -> str | None:
        """The one store asked for, if the window is one store's."""
        return self.stores[0] if self.stores is not None and len(self.stores) == 1 else None


def page_sql(window: Window) -> tuple[str, list[Any]]:
    """The page's SQL and its arguments (one more row than the limit: whether there is a next page).

    Per store, each store's newest keys come from its own index range and are merged: at most
    stores x limit index entries (index-only once vacuum has marked the pages all-visible, which autovacuum
    does for an insert-only table), never a walk of the tenant's history filtered by store."""
    args: list[Any] = [window.tenant]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    conditions = ["tenant = $1"]
    if window.stores is not None:
        conditions.append("store = r.store")
        stores = arg(window.stores)
    if window.till is not None:
        conditions.append(f"till = {arg(window.till)}")
    if window.since is not None:
        conditions.append(f"received_at >= {arg(window.since)}")
    if window.until is not None:
        conditions.append(f"received_at < {arg(window.until)}")
    if window.before is not None:
        conditions.append(f"(received_at, event_id) < ({arg(window.before.received_at)}, {arg(window.before.event_id)})")
    limit = arg(window.limit + 1)
    if window.stores is None:
        return f"SELECT {LISTED} FROM sales WHERE {' AND '.join(conditions)} ORDER BY {_KEY} LIMIT {limit}", args
    # Per store only the keys, from the index alone; the page's own rows are then read by their key.
    keys = (f"SELECT k.received_at, k.event_id FROM unnest({stores}::text[]) AS r(store) CROSS JOIN LATERAL ("
            f"SELECT received_at, event_id FROM sales WHERE {' AND '.join(conditions)} ORDER BY {_KEY} LIMIT {limit}) k"
            f" ORDER BY {_KEY} LIMIT {limit}")
    listed = ", ".join(f"s.{column.strip()}" for column in LISTED.split(","))
    return (f"SELECT {listed} FROM ({keys}) p JOIN sales s ON s.event_id = p.event_id"
            f" ORDER BY p.received_at DESC, p.event_id DESC"), args


def jsonable(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A row for JSON: times in ISO 8601, ids as text, numbers and booleans as they are."""
    return {key: value.isoformat() if isinstance(value, datetime) else str(value) if isinstance(value, uuid.UUID)
            else value for key, value in dict(row).items()}


async def page(pool: asyncpg.Pool, window: Window, check_store: bool) -> dict[str, Any] | None:
    """{"items": [...], "next": cursor text or None}: `next` is set only when an older order exists.
    With `check_store`: None when the tenant has no such store (one connection for both)."""
    if window.stores == []:
        return {"items": [], "next": None}
    sql, args = page_sql(window)
    async with pool.acquire() as conn:
        if check_store and not await conn.fetchval(STORE_EXISTS_SQL, window.tenant, window.store):
            return None
        rows = await conn.fetch(sql, *args)
    more = len(rows) > window.limit
    rows = rows[:window.limit]
    last = rows[-1] if more else None
    return {"items": [jsonable(row) for row in rows],
            "next": Cursor(last["received_at"], last["event_id"]).text() if last is not None else None}


async def store_exists(pool: asyncpg.Pool, tenant: str, store: str) -> bool:
    return bool(await pool.fetchval(STORE_EXISTS_SQL, tenant, store))


async def detail(pool: asyncpg.Pool, tenant: str, event_id: uuid.UUID) -> dict[str, Any] | None:
    """The sale with its lines (and the price lock each was sold under), tenders and replay diffs; None
    when the tenant has no such sale."""
    async with pool.acquire() as conn:
        sale = await conn.fetchrow(SALE_SQL, tenant, event_id)
    if sale is None:
        return None
    parts = ("lines", "tenders", "price_diffs", "returns", "coupons")
    return {**jsonable(sale), **{part: json.loads(sale[part]) for part in parts}}
