"""The msgpack envelope every event travels in: {id, type, v, tenant, store, seq, ts, body}.

`seq` is the store's own gap-free sequence number, so the hub can see a missing event;
`ts` is the edge's wall clock in milliseconds. The body is validated by its type's schema.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgpack

from novapos.wire.schemas import SCHEMAS, SchemaError


class EnvelopeError(ValueError):
    """The bytes are not a valid NovaPOS event; the message says what is wrong."""


@dataclass(frozen=True)
class Envelope:
    id: uuid.UUID
    type: str
    v: int
    tenant: str
    store: str
    seq: int
    ts: int
    body: dict[str, Any]

    def encode(self) -> bytes:
        return msgpack.packb({
            "id": self.id.bytes, "type": self.type, "v": self.v, "tenant": self.tenant,
            "store": self.store, "seq": self.seq, "ts": self.ts, "body": self.body,
        })


def _field(raw: dict[str, Any], name: str, kind: type) -> Any:
    if name not in raw:
        raise EnvelopeError(f"envelope has no '{name}'")
    value = raw[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EnvelopeError(f"envelope '{name}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def decode(data: bytes) -> Envelope:
    """Parse and validate an event; raises EnvelopeError (or SchemaError) with a readable reason."""
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise EnvelopeError(f"not msgpack: {exc}") from None
    if not isinstance(raw, dict):
        raise EnvelopeError("envelope must be a map")
    id_bytes = _field(raw, "id", bytes)
    if len(id_bytes) != 16:
        raise EnvelopeError("envelope 'id' must be 16 bytes (a UUID)")
    envelope = Envelope(
        id=uuid.UUID(bytes=id_bytes), type=_field(raw, "type", str), v=_field(raw, "v", int),
        tenant=_field(raw, "tenant", str), store=_field(raw, "store", str), seq=_field(raw, "seq", int),
        ts=_field(raw, "ts", int), body=_field(raw, "body", dict),
    )
    if envelope.seq < 1:
        raise EnvelopeError("envelope 'seq' must be >= 1")
    schema = SCHEMAS.get((envelope.type, envelope.v))
    if schema is None:
        raise SchemaError(f"unknown event type {envelope.type!r} version {envelope.v}")
    schema(envelope.body)
    return envelope
