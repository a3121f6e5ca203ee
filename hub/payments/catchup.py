"""The pay_events request: a store's payment events after the last position it holds, from the outbox itself.

The relay's live publish (hub.payments.relay) is core NATS: a store away, reconnecting or too slow misses some.
It asks here for what follows its last applied position, on its own subject novapos.<tenant>.<store>.req.pay_events
(NATS lets a store publish only there, so the subject says whose events): `{after, limit}` ->
`{"events": [{id, position, type, body}, ...]}` in position order, at most `limit` (capped at MAX_LIMIT) and as many
as fit in the store's largest answer (MAX_MESSAGE_BYTES; one at least), published or not yet (a store may be told before the relay publishes; its inbox drops the later copy by id). Positions are
gap-free and committed in order per store, so "after N" never skips an event that commits later.
"""

from __future__ import annotations

import asyncpg

from hub.payments.relay import message
from novapos import validators
from novapos.wire.payments import EVENTS, MAX_MESSAGE_BYTES, decode
from novapos.wire.subjects import parse_request_subject

EVENTS_REQUESTS = f"novapos.*.*.req.{EVENTS}"
"""What the hub subscribes to (one queue group): every store's catch-up request."""
MAX_LIMIT = 500
MAX_POSITION = 2**63 - 1
ENVELOPE = b'{"events":[]}'

EVENTS_SQL = ("SELECT id, position, type, body::text AS body FROM payment_outbox"
              " WHERE tenant = $1 AND store = $2 AND position > $3 ORDER BY position LIMIT $4")


async def answer_events(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
    """Responder of novapos.*.*.req.pay_events (a bad request raises validators.Invalid: a 400 error reply)."""
    tenant, store = parse_request_subject(subject, EVENTS)
    request = decode("pay_events request", data)
    after = validators.integer("after", request.get("after", 0), 0, MAX_POSITION)
    limit = min(validators.integer("limit", request.get("limit", MAX_LIMIT), 1, 1_000_000), MAX_LIMIT)
    async with pool.acquire() as conn:
        rows = await conn.fetch(EVENTS_SQL, tenant, store, after, limit)
    events: list[bytes] = []
    size = len(ENVELOPE)
    for row in rows:
        event = message(row)
        size += len(event) + 1
        if events and size > MAX_MESSAGE_BYTES:  # the rest in the store's next request
            break
        events.append(event)
    return ENVELOPE.replace(b"[]", b"[" + b",".join(events) + b"]")
