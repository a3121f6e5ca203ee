"""Finding, enrolling and showing a customer at the till (novapos.wire.loyalty: customer_find, customer_create,
customer_360).

Online the hub answers, and every customer it names is kept in the store's cache of recent customers
(actors.loyalty.local); offline a lookup is answered from that cache and says so ("offline: from this store's
recent customers"), and a 360 shows what the cache knows. Enrolling needs the hub (the card number is the hub's to
give). A customer the hub says is erased is dropped from the cache.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from prometheus_client import Counter

from actors.loyalty import local
from actors.payments.asking import HubRefused, HubUnreachable, PaymentsHub
from actors.protocol import Rejected
from novapos import validators
from novapos.wire.loyalty import CUSTOMER_360, CUSTOMER_CREATE, CUSTOMER_FIND

ASK_WITHIN_S = 2.0
OFFLINE = "offline: from this store's recent customers"
LOOKUPS = Counter("novapos_edge_loyalty_lookups_total", "Customer lookups at the tills, by where the answer came "
                  "from (hub, cache) or refused", ["source"])


def _profiles(db: sqlite3.Connection, raw: Any, size: int) -> list[local.Profile]:
    found: list[local.Profile] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            customer = validators.uuid_text("customer id", item.get("id"))
            validators.integer("points", item.get("points", 0), -validators.MAX_BIGINT, validators.MAX_BIGINT)
            for name in ("name", "card_number", "tier"):
                if item.get(name) not in (None, ""):
                    validators.text(name, item[name], max_length=200)
        except validators.Invalid:
            continue
        if item.get("erased"):
            local.forget(db, customer)
            continue
        found.append(local.remember(db, item, size))
    return found


def find(hub: PaymentsHub | None, db: sqlite3.Connection, query: str, size: int) -> dict[str, Any] | Rejected:
    """The customers a phone, an email or a card number names: {customers: [...], offline, message?}."""
    try:
        if hub is None:
            raise HubUnreachable("the till has no link to the hub")
        answer = hub.ask(CUSTOMER_FIND, {"query": query}, ASK_WITHIN_S)
    except HubUnreachable:
        LOOKUPS.labels("cache").inc()
        return {"customers": [profile.to_wire() for profile in local.find(db, query)], "offline": True,
                "message": OFFLINE}
    except HubRefused as exc:
        LOOKUPS.labels("refused").inc()
        return Rejected("invalid" if exc.code == 400 else "conflict", f"the hub refused the lookup: {exc}"[:300])
    LOOKUPS.labels("hub").inc()
    return {"customers": [profile.to_wire() for profile in _profiles(db, answer.get("customers"), size)],
            "offline": False}


def enrol(hub: PaymentsHub | None, db: sqlite3.Connection, details: dict[str, str], actor: str, size: int,
          request: str) -> local.Profile | Rejected:
    """A new customer enrolled at the till (`details`: name, and phone and/or email, checked by the caller) under
    the enrolment's `request` id: the hub answers the same customer for the same id, so a request whose answer was
    lost is asked once more at once, and the cashier's retry (the page keeps the id) cannot enrol them twice."""
    body = {**details, "actor": actor, "request": request}
    try:
        if hub is None:
            raise HubUnreachable("the till has no link to the hub")
        try:
            answer = hub.ask(CUSTOMER_CREATE, body, ASK_WITHIN_S)
        except HubUnreachable as exc:
            if not exc.maybe_done:
                raise
            answer = hub.ask(CUSTOMER_CREATE, body, ASK_WITHIN_S)  # the same enrolment: never a second customer
    except HubUnreachable:
        return Rejected("conflict", "enrolling a customer needs the hub, and the store is offline: try again later")
    except HubRefused as exc:
        return Rejected("conflict", f"the hub refused the enrolment: {exc}"[:300])
    found = _profiles(db, [answer.get("customer")], size)
    return found[0] if found else Rejected("conflict", "the hub's answer to the enrolment could not be used")


def profile(hub: PaymentsHub | None, db: sqlite3.Connection, customer: str, size: int) -> local.Profile | None:
    """The customer to attach: from the cache (found or enrolled lately), else from the hub's 360; None if
    neither knows them."""
    known = local.cached(db, customer)
    if known is not None:
        return known
    seen = overview(hub, db, customer, size)
    return None if isinstance(seen, Rejected) else local.cached(db, customer)


def overview(hub: PaymentsHub | None, db: sqlite3.Connection, customer: str, size: int) -> dict[str, Any] | Rejected:
    """The 360 at the till: {customer, loyalty: {points, tier, expiring...}, orders, offline}; offline what the
    store's cache knows."""
    try:
        if hub is None:
            raise HubUnreachable("the till has no link to the hub")
        answer = hub.ask(CUSTOMER_360, {"customer": customer}, ASK_WITHIN_S)
    except HubUnreachable:
        known = local.cached(db, customer)
        if known is None:
            return Rejected("not_found", "the store is offline and this customer is not among its recent customers")
        return {"customer": known.to_wire(), "loyalty": {"points": known.points, "tier": known.tier, "expiring": []},
                "orders": [], "offline": True, "message": OFFLINE}
    except HubRefused as exc:
        return Rejected("not_found" if exc.code == 404 else "conflict", f"the hub refused the 360: {exc}"[:300])
    found = _profiles(db, [answer.get("customer")], size)
    if not found:
        return Rejected("not_found", "the hub has no such customer (or they were erased)")
    raw = answer.get("loyalty")
    loyalty: dict[str, Any] = raw if isinstance(raw, dict) else {}
    expiring = [{"points": int(item["points"]), "expires_at": str(item["expires_at"])[:40]}
                for item in _listed(loyalty.get("expiring")) if isinstance(item, dict)
                and isinstance(item.get("points"), int) and "expires_at" in item][:10]
    orders = [{"order": str(order.get("order"))[:64], "store": str(order.get("store"))[:64],
               "at": str(order.get("at"))[:40], "total_minor": order.get("total_minor"),
               "currency": str(order.get("currency"))[:3]}
              for order in _listed(answer.get("orders")) if isinstance(order, dict)][:10]
    points = loyalty.get("points", found[0].points)
    return {"customer": found[0].to_wire(), "offline": False, "orders": orders,
            "loyalty": {"points": points if isinstance(points, int) else found[0].points,
                        "tier": str(loyalty.get("tier") or found[0].tier)[:64],
                        "next_tier": loyalty.get("next_tier") if isinstance(loyalty.get("next_tier"), (str, dict))
                        else None, "expiring": expiring}}


def _listed(raw: Any) -> list[Any]:
    """A list from the hub's answer, or none: anything else (null, an object, a number) shows as nothing rather than
    crash the till actor on a hub that answers otherwise."""
    return raw if isinstance(raw, list) else []
