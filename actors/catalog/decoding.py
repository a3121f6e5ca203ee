"""Catalog messages decoded (novapos.wire.catalog) into what the local catalog stores, each checked
against its subject; a malformed one becomes the sentence saying why.

Items, nearly every message of a sync, take the short way: unpacked, checked by the wire format's
boolean checks (novapos.wire.catalog.is_well_formed_item: the validators' rules, no sentences), then
made into the row the local catalog stores, with no Item or Price objects in between. Anything those
checks do not pass goes the full way (novapos.wire.catalog.decode_body) that says why it is refused.
Decoding in a worker process was measured (bench/catalog_sync.py's box: two cores shared, no idle one):
a spawned worker took 1.5 to 2 s to start and decoded no faster than in place, so it is not used.
"""

from __future__ import annotations

from typing import Any

from actors.catalog.local import ItemRow, attributes_json, item_row
from novapos.validators import Invalid
from novapos.wire.catalog import (
    Item,
    PromotionMessage,
    Settings,
    TaxClass,
    VersionMarker,
    checked_item,
    decode_body,
    is_well_formed_item,
    unpack,
)

Decoded = ItemRow | TaxClass | Settings | PromotionMessage | VersionMarker | str | None
"""A message as the sync applies it; a str says why the message was refused; None: a snapshot's message,
not the per-item path's (the sync reads snapshots apart, actors.catalog.snapshot)."""


def snapshot_item(body: dict[str, Any]) -> ItemRow | str:
    """An item body of a snapshot chunk as its row, checked as an item message is, or the reason it is refused."""
    try:
        if is_well_formed_item(body):
            return _row(body)
        return item_row(checked_item(body))
    except (Invalid, ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__


def _row(body: dict[str, Any]) -> ItemRow:
    return (body["sku"], body["product"], body["name"], attributes_json(tuple((a, v) for a, v in body["attributes"])),
            body["tax_class"], body.get("active") is True, body["version"], tuple(body["barcodes"]),
            tuple([field for price in body["prices"] for field in price]), body.get("category") or "")


def decode_one(subject: str, data: bytes) -> Decoded:
    """One message of catalog.<tenant>.<kind>[.<id>]: an item's row, a tax class, a promotion, settings, a marker, or
    the reason it is malformed (whatever a hostile body raises is a reason, never a crash)."""
    parts = subject.split(".")
    try:
        if len(parts) < 3:
            raise Invalid("catalog subject", "has no kind")
        if parts[2] == "snapshot":
            return None
        body = unpack(data)
        if parts[2] == "item" and len(parts) == 4 and is_well_formed_item(body) and body["sku"] == parts[3]:
            return _row(body)
        message = decode_body(parts[2], body)
        if isinstance(message, Item):
            if parts[3:] != [message.sku]:
                raise Invalid("item", f"{message.sku} came on another subject")
            return item_row(message)
        if isinstance(message, TaxClass) and parts[3:] != [message.tax_class]:
            raise Invalid("tax class", f"{message.tax_class} came on another subject")
        if isinstance(message, PromotionMessage) and parts[3:] != [message.promotion.id]:
            raise Invalid("promotion", f"{message.promotion.id} came on another subject")
        return message
    except (Invalid, ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
