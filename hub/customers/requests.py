"""The stores' customer requests (novapos.<tenant>.<store>.req.customer_*, novapos.wire.loyalty): a till finds a
customer, enrols one, reads their 360. Each is checked like client input and answered within the asking store's
tenant only (the subject says who asks: NATS confines a store to its own subjects).

- customer_find {query} -> {"customers": [profile...]}: by phone, email or card number (exact, normalised), at most
  records.MAX_FOUND; never an erased customer.
- customer_create {name, phone?, email?, card_number?, birthday?, preferences?, consents?, actor, request?} ->
  {"customer": profile}: enrolled at the asking store (its home store), audited with the cashier as actor; a card
  number another customer holds is refused 409. `request` (a UUID the till makes once per enrolment and keeps
  across its retries) makes it idempotent: the same (tenant, request) answers the same customer, enrolled once.
- customer_360 {customer} -> the 360 (hub.customers.view) with every store's orders; 404 when the tenant has no
  such customer.

A till's profile is what it shows and caches: {id, card_number, name, phone, email, tier, points, home_store,
erased}.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from hub.customers import metrics, records, view
from hub.loyalty import accounts
from hub.payments.requests import actor as store_actor
from novapos.validators import Invalid
from novapos.wire.loyalty import CUSTOMER_360, CUSTOMER_CREATE, CUSTOMER_FIND, responder_subject
from novapos.wire.payments import decode, encode
from novapos.wire.subjects import parse_request_subject

Handler = Callable[[asyncpg.Connection, str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def till_profile(conn: asyncpg.Connection, tenant: str, found: dict[str, Any]) -> dict[str, Any]:
    """What a till shows (and caches) of a customer: the record's identity and their points and tier now."""
    loyalty = await accounts.summary(conn, tenant, found["id"])
    return {"id": found["id"], "card_number": found["card_number"], "name": found["name"], "phone": found["phone"],
            "email": found["email"], "tier": loyalty["tier"], "points": loyalty["points"],
            "home_store": found["home_store"], "erased": found["erased"]}


async def _find(conn: asyncpg.Connection, tenant: str, _store: str, body: dict[str, Any]) -> dict[str, Any]:
    found = await records.find(conn, tenant, body.get("query"))
    return {"customers": [await till_profile(conn, tenant, customer) for customer in found]}


async def _create(conn: asyncpg.Connection, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
    cashier = store_actor("actor", body.get("actor"))
    request = None if body.get("request") is None else records.customer_uuid("request", body["request"])
    fields = {name: value for name, value in body.items() if name not in ("actor", "request")}
    fields.setdefault("home_store", store)
    try:
        created = await records.create(conn, tenant, fields, actor=f"till-user:{cashier}", store=store,
                                       request=request)
    except records.Conflict as exc:
        return {"refused": {"code": 409, "message": str(exc)}}
    metrics.CREATED.labels("till").inc()
    return {"customer": await till_profile(conn, tenant, created)}


async def _three_sixty(conn: asyncpg.Connection, tenant: str, _store: str, body: dict[str, Any]) -> dict[str, Any]:
    customer = records.customer_uuid("customer", body.get("customer"))
    found = await view.three_sixty(conn, tenant, customer)
    if found is None:
        return {"refused": {"code": 404, "message": f"there is no customer {customer}"}}
    return found


def _responder(kind: str, handle: Handler) -> Callable[[asyncpg.Pool, str, bytes], Awaitable[bytes]]:
    async def respond(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
        tenant, store = parse_request_subject(subject, kind)
        body = decode(f"the {kind} request", data)
        with metrics.REQUEST_SECONDS.labels(kind).time():
            async with pool.acquire() as conn:
                try:
                    answer = await handle(conn, tenant, store, body)
                except Invalid:
                    metrics.REQUESTS.labels(kind, "invalid").inc()
                    raise
        metrics.REQUESTS.labels(kind, "refused" if "refused" in answer else "ok").inc()
        return encode(answer)
    respond.__name__ = f"answer_{kind}"
    return respond


RESPONDERS = {responder_subject(kind): _responder(kind, handle) for kind, handle in (
    (CUSTOMER_FIND, _find), (CUSTOMER_CREATE, _create), (CUSTOMER_360, _three_sixty))}
