"""Catalog messages decoded (novapos.wire.catalog.decode) into what the local catalog stores, each
checked against its subject; a malformed one becomes the sentence saying why.

Decoding (msgpack, then every field through novapos.validators) is about 40 % of a cold sync's CPU.
Decoding in a worker process was measured (bench/catalog_sync.py's box: two cores shared, no idle
one): a spawned worker took 1.5 to 2 s to start and decoded no faster than in place, so it is not used.
"""

from __future__ import annotations

from actors.catalog.local import ItemRow, item_row
from novapos.validators import Invalid
from novapos.wire.catalog import Item, Settings, TaxClass, VersionMarker, decode

Decoded = ItemRow | TaxClass | Settings | VersionMarker | str
"""A message as the sync applies it; a str says why the message was refused."""


def decode_one(subject: str, data: bytes) -> Decoded:
    """One message of catalog.<tenant>.<kind>[.<id>]: an item's row, a tax class, settings, a marker, or
    the reason it is malformed (whatever a hostile body raises is a reason, never a crash)."""
    parts = subject.split(".")
    try:
        if len(parts) < 3:
            raise Invalid("catalog subject", "has no kind")
        message = decode(parts[2], data)
        if isinstance(message, Item):
            if parts[3:] != [message.sku]:
                raise Invalid("item", f"{message.sku} came on another subject")
            return item_row(message)
        if isinstance(message, TaxClass) and parts[3:] != [message.tax_class]:
            raise Invalid("tax class", f"{message.tax_class} came on another subject")
        return message
    except (Invalid, ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
