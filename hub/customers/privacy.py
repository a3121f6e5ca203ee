"""Data subject requests: export everything the hub keeps about a customer as one JSON document, and erase them.

Export: the record, each domain's part (`hub.<domain>.privacy.export(conn, tenant, customer) -> dict`, asked of
every domain that has one: loyalty, coupons, gift cards; a domain without one is simply absent), the orders and
returns made for them (every store), and the audit records about them (target = the customer's id) with the
personal values kept beside them (audit_personal: they are the customer's own). Read in one REPEATABLE READ
transaction, so the parts agree with each other. The export itself is audited (customer.exported: who, never what).

Erase: the personal fields (name, phone, email, birthday, card number) and the preferences and consents are blanked
and erased_at set, audited as customer.erased, in the same transaction every personal value kept beside the
customer's own audit records (target = their id) is deleted; then each phone number and email they ever had is
erased from the whole tenant's audit log by hub.audit.personal.erase (another domain's record may hold it), one
value at a time, each audited (audit.personal_erased). A name is erased only from their own records: a name is
shared by many people, and erasing "Anna Schmidt" tenant-wide would erase other customers' records too. The
records keep their salted commitments, so the chain still verifies. Erasure is idempotent: asked again (after a
crash between the two steps), it erases what is still kept. What stays: the row and
its id, the sales, the loyalty ledger and the gift card books (an id is not personal data without the record:
the books must balance).
"""

from __future__ import annotations

import importlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.audit import personal
from hub.audit.chain import Entry, record
from hub.audit.services import PERSONAL_PURGED
from hub.customers import records
from hub.domains import domains
from hub.loyalty import accounts

EXPORT_FORMAT = 1
ORDERS_SQL = (
    "SELECT s.event_id, s.store, s.till, s.received_at, s.completed_at, s.total_minor, s.currency, s.v,"
    " s.coupons::text AS coupons,"
    " (SELECT coalesce(json_agg(json_build_object('sku', l.sku, 'name', l.name, 'quantity', l.quantity,"
    "   'amount_minor', l.amount_minor, 'promotions', l.promotions) ORDER BY l.line_no), '[]')"
    "   FROM sale_lines l WHERE l.event_id = s.event_id)::text AS lines,"
    " (SELECT coalesce(json_agg(json_build_object('method', t.method, 'amount_minor', t.amount_minor,"
    "   'points', t.points_points, 'gift_card', t.gift_card_masked) ORDER BY t.tender_no), '[]')"
    "   FROM sale_tenders t WHERE t.event_id = s.event_id)::text AS tenders"
    " FROM sales s WHERE s.tenant = $1 AND s.customer_id = $2 ORDER BY s.received_at, s.event_id")
RETURNS_SQL = ("SELECT event_id, store, till, original_order, returned_at, refunded_minor, currency,"
               " refunds::text AS refunds FROM returns WHERE tenant = $1 AND customer_id = $2 ORDER BY id")
AUDIT_SQL = (
    "SELECT r.seq, r.at, r.actor, r.action, r.store, r.details::text AS details,"
    " (SELECT coalesce(json_object_agg(p.field, p.value), '{}') FROM audit_personal p"
    "   WHERE p.tenant = r.tenant AND p.seq = r.seq)::text AS personal"
    " FROM audit_records r WHERE r.tenant = $1 AND r.target = $2 ORDER BY r.seq")
IDENTIFYING = ("phone", "email")
"""The audit's personal fields that identify one person, erased tenant-wide."""
DELETE_KEPT_SQL = (
    "DELETE FROM audit_personal p USING audit_records r WHERE r.tenant = p.tenant AND r.seq = p.seq"
    " AND r.tenant = $1 AND r.target = $2 RETURNING p.field, p.value #>> '{}' AS value")
"""The personal values kept beside the customer's own audit records, deleted, as (field, text)."""


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value) if isinstance(value, uuid.UUID) else value


async def domain_parts(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID) -> dict[str, Any]:
    """Each domain's own export of the customer, by domain name (those with a `privacy` module that exports)."""
    parts: dict[str, Any] = {}
    for domain in domains():
        try:
            module = importlib.import_module(f"hub.{domain.name}.privacy")
        except ModuleNotFoundError:
            continue
        export = getattr(module, "export", None)
        if export is not None and domain.name != "customers":
            parts[domain.name] = await export(conn, tenant, customer)
    return parts


async def export(pool: asyncpg.Pool, tenant: str, customer: uuid.UUID, *, actor: str) -> dict[str, Any] | None:
    """Everything about the customer as one JSON-ready document; None when the tenant has no such customer."""
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            found = await records.by_id(conn, tenant, customer)
            if found is None:
                return None
            key = str(customer)
            orders = [{**{name: _iso(row[name]) for name in ("event_id", "store", "till", "received_at",
                                                             "completed_at", "total_minor", "currency", "v")},
                       "coupons": json.loads(row["coupons"]), "lines": json.loads(row["lines"]),
                       "tenders": json.loads(row["tenders"])} for row in await conn.fetch(ORDERS_SQL, tenant, key)]
            returns = [{**{name: _iso(row[name]) for name in ("event_id", "store", "till", "original_order",
                                                              "returned_at", "refunded_minor", "currency")},
                        "refunds": json.loads(row["refunds"])} for row in await conn.fetch(RETURNS_SQL, tenant, key)]
            audit = [{"seq": row["seq"], "at": _iso(row["at"]), "actor": row["actor"], "action": row["action"],
                      "store": row["store"], "details": json.loads(row["details"]),
                      "personal": json.loads(row["personal"])} for row in await conn.fetch(AUDIT_SQL, tenant, key)]
            parts = await domain_parts(conn, tenant, customer)
            if "loyalty" not in parts:  # a loyalty domain without its privacy module yet: the account at least
                parts["loyalty"] = {"account": await accounts.summary(conn, tenant, customer)}
        async with conn.transaction():
            await record(conn, Entry(tenant, actor, "customer.exported", target=key,
                                     details={"orders": len(orders), "parts": ",".join(sorted(parts))}))
    return {"format": EXPORT_FORMAT, "exported_at": datetime.now(UTC).isoformat(), "tenant": tenant,
            "customer": found, **parts, "orders": orders, "returns": returns, "audit": audit}


async def erase(pool: asyncpg.Pool, tenant: str, customer: uuid.UUID, *, actor: str,
                reason: str) -> dict[str, Any] | None:
    """Erase the customer (see the module's docstring); None when the tenant has no such customer. Returns
    {customer, erased_at, audit_values_erased}."""
    key = str(customer)
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(f"SELECT {', '.join(records.PERSONAL_FIELDS)}, erased_at FROM customers"
                                      " WHERE tenant = $1 AND id = $2 FOR UPDATE", tenant, customer)
            if row is None:
                return None
            values = {row[name] for name in IDENTIFYING if row[name] is not None}
            erased_at = row["erased_at"]
            if erased_at is None:
                erased_at = await conn.fetchval(
                    "UPDATE customers SET name = NULL, phone = NULL, email = NULL, birthday = NULL,"
                    " card_number = NULL, preferences = '{}', consents = '{}', erased_at = now(), updated_at = now()"
                    " WHERE tenant = $1 AND id = $2 RETURNING erased_at", tenant, customer)
                await record(conn, Entry(tenant, actor, "customer.erased", target=key, details={
                    "fields": ",".join(name for name in records.PERSONAL_FIELDS if row[name] is not None),
                    "reason": reason}))
            kept = await conn.fetch(DELETE_KEPT_SQL, tenant, key)
            values |= {row["value"] for row in kept if row["field"] in IDENTIFYING and row["value"] is not None}
            if kept:
                await record(conn, Entry(tenant, actor, "audit.personal_erased", target=key, details={
                    "values": len(kept), "fields": ",".join(sorted({row["field"] for row in kept}))}))
    erased = len(kept)
    if kept:
        PERSONAL_PURGED.labels("erasure").inc(len(kept))
    for value in sorted(values):
        erased += await personal.erase(pool, tenant, value, actor)
    return {"customer": key, "erased_at": erased_at.isoformat(), "audit_values_erased": erased}
