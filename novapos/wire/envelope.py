"""The msgpack envelope every event travels in: {id, type, v, tenant, store, seq, ts, body}.

`seq` is the store's own gap-free sequence number, so the hub can see a missing event;
`ts` is the edge's wall clock in milliseconds. The body is validated by its type's schema. Like the
body, every envelope field is bounded to what the hub's columns hold (seq a bigint, ts a timestamp
from year 1 to 9999, names short and without NUL), so a value that would break the database is
refused here with a reason instead. A time is never refused for being implausible: a store whose
clock is wrong (no RTC battery, no NTP) still sold what it sold; the hub flags such times for review.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import msgpack

from novapos.validators import MAX_BIGINT, Invalid, token
from novapos.wire.schemas import SCHEMAS, SchemaError

MAX_SEQ = MAX_BIGINT
MIN_TS_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)  # what a datetime (and timestamptz) holds
MAX_TS_MS = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)


class EnvelopeError(ValueError):
    """The bytes are not a valid NovaPOS event; the message says what is wrong."""


class UnknownEvent(SchemaError):
    """A well-formed event of a type or version this release does not know: a newer store's, not a bad one."""


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
        return cast(bytes, msgpack.packb({
            "id": self.id.bytes, "type": self.type, "v": self.v, "tenant": self.tenant,
            "store": self.store, "seq": self.seq, "ts": self.ts, "body": self.body,
        }))


def _field(raw: dict[str, Any], name: str, kind: type) -> Any:
    if name not in raw:
        raise EnvelopeError(f"envelope has no '{name}'")
    value = raw[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EnvelopeError(f"envelope '{name}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _name(raw: dict[str, Any], name: str) -> str:
    """Tenant, store and type are name tokens, as in the subject (and in metric labels, logs, the console):
    the one rule of validators.token, with the type's dots standing for underscores."""
    value: str = _field(raw, name, str)
    try:
        token(f"envelope '{name}'", value.replace(".", "_") if name == "type" else value)
    except Invalid as exc:
        raise EnvelopeError(str(exc)) from None
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
        id=uuid.UUID(bytes=id_bytes), type=_name(raw, "type"), v=_field(raw, "v", int),
        tenant=_name(raw, "tenant"), store=_name(raw, "store"), seq=_field(raw, "seq", int),
        ts=_field(raw, "ts", int), body=_field(raw, "body", dict),
    )
    if not 1 <= envelope.seq <= MAX_SEQ:
        raise EnvelopeError(f"envelope 'seq' must be between 1 and {MAX_SEQ}, got {envelope.seq}")
    if not MIN_TS_MS <= envelope.ts <= MAX_TS_MS:
        raise EnvelopeError(f"envelope 'ts' must be milliseconds within the years 1 to 9999, got {envelope.ts}")
    schema = SCHEMAS.get((envelope.type, envelope.v))
    if schema is None:
        raise UnknownEvent("type", f"{envelope.type!r} version {envelope.v} is not a known event")
    schema(envelope.body)
    return envelope
