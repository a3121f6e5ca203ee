"""Payment intents in PostgreSQL: reading them, inserting a terminal's approval, and `change`, the one door every
state change goes through.

These functions take the caller's connection and never call the provider, so that the ingest's appliers
(card.approved, sale.completed) can use them inside the inbox transaction. `change` writes the outbox event
`payment.<new state>` in that same transaction (hub.payments.outbox): a store hears of a change if and only if
it committed. The provider's calls and the order they happen in are hub.payments.service's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from hub.payments import metrics, outbox
from hub.payments.model import Action, Amounts, State
from novapos.wire.ids import uuid7

METHODS = ("card_present", "card", "qr")

CHANGEABLE = frozenset({
    "order_id", "authorized_minor", "captured_minor", "refunded_minor", "pending", "pending_key", "pending_since",
    "back_to", "provider_ref", "auth_code", "scheme", "masked", "capture_before", "attention", "last_error",
    "card_token", "pending_minor", "pending_actor", "pending_reason", "pending_retried", "checked_at"})
"""The columns `change` may set beside the state (never the tenant, store, tender, method, currency or amount)."""


@dataclass(frozen=True)
class Intent:
    """One tender's payment, as its row holds it."""
    id: uuid.UUID
    tenant: str
    store: str
    till: str | None
    tender_id: str
    order_id: uuid.UUID | None
    method: str
    currency: str
    amount_minor: int
    authorized_minor: int
    captured_minor: int
    refunded_minor: int
    state: State
    pending: Action | None
    pending_key: str | None
    pending_since: datetime | None
    pending_minor: int | None
    pending_actor: str | None
    pending_reason: str | None
    pending_retried: bool
    back_to: State | None
    provider: str
    provider_ref: str | None
    auth_code: str | None
    scheme: str | None
    masked: str | None
    offline: bool
    card_token: str | None
    capture_before: datetime | None
    attention: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> Intent:
        fields = {name: row[name] for name in cls.__dataclass_fields__}
        fields["state"] = State(row["state"])
        fields["pending"] = Action(row["pending"]) if row["pending"] else None
        fields["back_to"] = State(row["back_to"]) if row["back_to"] else None
        return cls(**fields)

    @property
    def amounts(self) -> Amounts:
        return Amounts(self.amount_minor, self.authorized_minor, self.captured_minor, self.refunded_minor)

    def to_json(self) -> dict[str, Any]:
        """The intent as answers, events and the console API show it (no card token, no provider key)."""
        def stamp(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()
        return {
            "id": str(self.id), "tenant": self.tenant, "store": self.store, "till": self.till,
            "tender_id": self.tender_id, "order_id": None if self.order_id is None else str(self.order_id),
            "method": self.method, "currency": self.currency, "amount_minor": self.amount_minor,
            "authorized_minor": self.authorized_minor, "captured_minor": self.captured_minor,
            "refunded_minor": self.refunded_minor, "state": str(self.state),
            "pending": None if self.pending is None else str(self.pending), "provider": self.provider,
            "provider_ref": self.provider_ref, "auth_code": self.auth_code, "scheme": self.scheme,
            "masked": self.masked, "offline": self.offline, "capture_before": stamp(self.capture_before),
            "attention": self.attention, "created_at": stamp(self.created_at), "updated_at": stamp(self.updated_at)}


async def by_id(conn: asyncpg.Connection, tenant: str, intent_id: uuid.UUID, *, lock: bool = False) -> Intent | None:
    """The tenant's intent with that id (another tenant's is None, like an unknown id); `lock`: FOR UPDATE."""
    row = await conn.fetchrow("SELECT * FROM payment_intents WHERE tenant = $1 AND id = $2"
                              + (" FOR UPDATE" if lock else ""), tenant, intent_id)
    return None if row is None else Intent.of(row)


async def by_tender(conn: asyncpg.Connection, tenant: str, tender_id: str, *, lock: bool = False) -> Intent | None:
    row = await conn.fetchrow("SELECT * FROM payment_intents WHERE tenant = $1 AND tender_id = $2"
                              + (" FOR UPDATE" if lock else ""), tenant, tender_id)
    return None if row is None else Intent.of(row)


async def by_provider_ref(conn: asyncpg.Connection, provider: str, provider_ref: str, *,
                          lock: bool = False) -> Intent | None:
    """The intent a provider's reference names (a webhook's news): provider references are the provider's own ids,
    unique across its merchants."""
    row = await conn.fetchrow("SELECT * FROM payment_intents WHERE provider = $1 AND provider_ref = $2"
                              " ORDER BY created_at LIMIT 1" + (" FOR UPDATE" if lock else ""), provider, provider_ref)
    return None if row is None else Intent.of(row)


async def insert(conn: asyncpg.Connection, tenant: str, store: str, *, tender_id: str, method: str, currency: str,
                 amount_minor: int, state: State, provider: str, till: str | None = None, **fields: Any) -> Intent:
    """A new intent (its event `payment.<state>` too), or the existing one of this tender (nothing written):
    the caller compares it with what it asked (the same tender arrives twice: the fast path and the event)."""
    unknown = fields.keys() - CHANGEABLE - {"offline"}
    if unknown:
        raise ValueError(f"an intent has no field(s) {sorted(unknown)}")
    names = ["id", "tenant", "store", "till", "tender_id", "method", "currency", "amount_minor", "state", "provider",
             *fields]
    values = [uuid7(), tenant, store, till, tender_id, method, currency, amount_minor, str(state), provider,
              *(str(value) if isinstance(value, State | Action) else value for value in fields.values())]
    row = await conn.fetchrow(
        f"INSERT INTO payment_intents ({', '.join(names)}) VALUES ({', '.join(f'${i}' for i in range(1, len(names) + 1))})"
        " ON CONFLICT (tenant, tender_id) DO NOTHING RETURNING *", *values)
    if row is None:
        existing = await by_tender(conn, tenant, tender_id, lock=True)
        assert existing is not None  # the conflict's row: intents are never deleted
        return existing
    intent = Intent.of(row)
    await outbox.emit(conn, tenant, store, f"payment.{intent.state}", {"intent": intent.to_json()})
    metrics.entered(intent.state, intent.method)
    return intent


async def insert_terminal_approval(conn: asyncpg.Connection, tenant: str, store: str, *, tender_id: str, till: str,
                                   amount_minor: int, authorized_minor: int, currency: str, provider: str,
                                   provider_ref: str | None, auth_code: str | None, scheme: str | None,
                                   masked: str | None, offline: bool, card_token: str | None,
                                   capture_window: timedelta, now: datetime) -> Intent:
    """A card the store's terminal approved: AUTHORIZED until `now + capture_window`; or, taken `offline`,
    AWAITING_PAYMENT_METHOD with the card's token until the provider authorizes it. The tender's intent if it
    already exists (compare it: the same tender id for another amount is the caller's conflict)."""
    if offline:
        return await insert(conn, tenant, store, tender_id=tender_id, method="card_present", currency=currency,
                            amount_minor=amount_minor, state=State.AWAITING_PAYMENT_METHOD, provider=provider,
                            till=till, offline=True, card_token=card_token, provider_ref=provider_ref,
                            auth_code=auth_code, scheme=scheme, masked=masked)
    return await insert(conn, tenant, store, tender_id=tender_id, method="card_present", currency=currency,
                        amount_minor=amount_minor, state=State.AUTHORIZED, provider=provider, till=till,
                        authorized_minor=authorized_minor, provider_ref=provider_ref, auth_code=auth_code,
                        scheme=scheme, masked=masked, capture_before=now + capture_window)


async def change(conn: asyncpg.Connection, intent: Intent, state: State, **fields: Any) -> Intent:
    """Move `intent` (locked by the caller) to `state`, setting `fields`; the intent as written. A new state
    writes the event `payment.<state>` with the intent in the caller's transaction and counts it; the same
    state (a note such as `attention`) writes only the row."""
    unknown = fields.keys() - CHANGEABLE
    if unknown:
        raise ValueError(f"an intent has no changeable field(s) {sorted(unknown)}")
    if state != State.PROCESSING and "pending" not in fields and intent.pending is not None:
        fields = {**fields, "pending": None, "pending_key": None, "pending_since": None, "pending_minor": None,
                  "pending_actor": None, "pending_reason": None, "pending_retried": False, "back_to": None}
    names = ["state", *fields]
    values = [str(value) if isinstance(value, State | Action) else value for value in (state, *fields.values())]
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    row = await conn.fetchrow(f"UPDATE payment_intents SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",
                              intent.id, *values)
    changed = Intent.of(row)
    if changed.state != intent.state:
        await outbox.emit(conn, changed.tenant, changed.store, f"payment.{changed.state}",
                          {"intent": changed.to_json()})
        metrics.entered(changed.state, changed.method)
    return changed
