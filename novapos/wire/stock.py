"""Stock on the wire: a till asking the hub (request/reply) and the hub's low-stock alerts.

- A till asks on `novapos.<tenant>.<store>.req.stock` with {sku}. The hub takes the store from the subject
  (NATS permissions confine a store to its own subjects), never from the body, and answers with the SKU's
  stock at the store's own locations and at the other locations of its region (warehouses included).
- The hub publishes `novapos.<tenant>.hub.stock_low` once per crossing below a threshold (stream
  NOVAPOS_HUB_STOCK keeps them for consumers that read later).

Bodies are msgpack maps, validated on decode like events: a bad message is refused with a reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import msgpack

from novapos import validators
from novapos.validators import MAX_BIGINT, Invalid
from novapos.wire.subjects import parse_request_subject, request_subject

STOCK_REQUESTS = "novapos.*.*.req.stock"
"""What the hub subscribes to (one queue group): every store's stock question."""
LOW_STOCK_STREAM = "NOVAPOS_HUB_STOCK"
LOW_STOCK_SUBJECTS = "novapos.*.hub.stock_low"
MAX_LOCATIONS = 1000
"""Most locations in one answer: a region with more is cut to the nearest first (own store's, then by name)."""
LOCATION_KINDS = ("floor", "back_room", "warehouse")


def stock_request_subject(tenant: str, store: str) -> str:
    return request_subject(tenant, store, "stock")


def parse_stock_request_subject(subject: str) -> tuple[str, str]:
    """(tenant, store) of a stock request subject, or Invalid."""
    return parse_request_subject(subject, "stock")


def low_stock_subject(tenant: str) -> str:
    return f"novapos.{validators.token('tenant', tenant)}.hub.stock_low"


def _pack(value: dict[str, Any]) -> bytes:
    return cast(bytes, msgpack.packb(value))


def _map(data: bytes, what: str) -> dict[str, Any]:
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise Invalid(what, f"is not msgpack ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise Invalid(what, "must be a map")
    return raw


def encode_request(sku: str) -> bytes:
    return _pack({"sku": validators.token("sku", sku)})


def decode_request(data: bytes) -> str:
    """The SKU asked about."""
    return validators.token("sku", _map(data, "stock request").get("sku"))


def _quantity(where: str, value: Any) -> int:
    return validators.integer(where, value, -MAX_BIGINT, MAX_BIGINT)


@dataclass(frozen=True)
class LocationStock:
    location: str
    name: str
    kind: str
    store: str | None
    own: bool
    """One of the asking store's own locations (else a nearby one: same region)."""
    on_hand: int
    reserved: int
    available: int


@dataclass(frozen=True)
class StockAnswer:
    sku: str
    known: bool
    """The SKU is in the tenant's catalog (a SKU it does not know has no stock anywhere)."""
    locations: tuple[LocationStock, ...]
    error: str | None = None
    """Why the hub could not answer (the asking store is unknown to it): a sentence for the till."""


def encode_answer(answer: StockAnswer) -> bytes:
    return _pack({"sku": answer.sku, "known": answer.known, "error": answer.error,
                  "locations": [asdict(location) for location in answer.locations]})


def decode_answer(data: bytes) -> StockAnswer:
    raw = _map(data, "stock answer")
    locations = raw.get("locations")
    if not isinstance(locations, list) or len(locations) > MAX_LOCATIONS:
        raise Invalid("locations", f"must be a list of at most {MAX_LOCATIONS}")
    parsed = []
    for index, item in enumerate(locations):
        where = f"locations[{index}]"
        if not isinstance(item, dict):
            raise Invalid(where, "must be a map")
        kind = item.get("kind")
        if kind not in LOCATION_KINDS:
            raise Invalid(f"{where}.kind", f"must be one of {', '.join(LOCATION_KINDS)}")
        store = item.get("store")
        own = item.get("own")
        if not isinstance(own, bool):
            raise Invalid(f"{where}.own", "must be true or false")
        parsed.append(LocationStock(
            location=validators.token(f"{where}.location", item.get("location")),
            name=validators.text(f"{where}.name", item.get("name")), kind=kind,
            store=None if store is None else validators.token(f"{where}.store", store), own=own,
            on_hand=_quantity(f"{where}.on_hand", item.get("on_hand")),
            reserved=_quantity(f"{where}.reserved", item.get("reserved")),
            available=_quantity(f"{where}.available", item.get("available"))))
    known, error = raw.get("known"), raw.get("error")
    if not isinstance(known, bool):
        raise Invalid("known", "must be true or false")
    return StockAnswer(sku=validators.token("sku", raw.get("sku")), known=known, locations=tuple(parsed),
                       error=None if error is None else validators.text("error", error, max_length=400))


@dataclass(frozen=True)
class LowStock:
    """Available stock of a SKU at a location fell below its threshold (once per crossing)."""
    id: int
    tenant: str
    location: str
    sku: str
    available: int
    threshold: int
    at: str
    """When, ISO 8601 (the hub's clock)."""


def encode_low_stock(alert: LowStock) -> bytes:
    return _pack(asdict(alert))


def decode_low_stock(data: bytes) -> LowStock:
    raw = _map(data, "low-stock alert")
    return LowStock(
        id=validators.integer("id", raw.get("id"), 1, MAX_BIGINT), tenant=validators.token("tenant", raw.get("tenant")),
        location=validators.token("location", raw.get("location")), sku=validators.token("sku", raw.get("sku")),
        available=_quantity("available", raw.get("available")),
        threshold=validators.integer("threshold", raw.get("threshold"), 0, MAX_BIGINT),
        at=validators.text("at", raw.get("at"), max_length=64))
