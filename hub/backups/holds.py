"""The hub's answer to a restored store box (novapos.wire.restore): the highest sequence number it holds from the
store, and the events above the box's backup it holds.

A number is held when its event is in the inbox (applied) or in a dead letter (refused, perhaps re-driven later):
either way the old box used it, and the restored box must not use it again. The inbox is read by its (tenant,
store, seq) index; dead letters by their store's, decoding only the sequence number of each payload (a letter
whose payload does not decode held no number the hub could know of).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgpack

from novapos.wire.restore import MAX_EVENTS, HeldEvent, HubHolds, decode_request, encode_answer
from novapos.wire.subjects import parse_request_subject

DEAD_LETTER = "dead letter"
_DEAD_LETTERS_READ = 10_000
"""The newest dead letters of the store looked at (they are rare: a store with more has bigger trouble)."""


def _seq(payload: bytes) -> int | None:
    try:
        envelope: Any = msgpack.unpackb(payload)
    except Exception:  # a dead letter is often one that does not decode: it carries no number we can know
        return None
    seq = envelope.get("seq") if isinstance(envelope, dict) else None
    return seq if type(seq) is int and seq > 0 else None


async def holds(pool: asyncpg.Pool, tenant: str, store: str, after: int) -> HubHolds:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT seq, event_id::text AS id, type FROM inbox WHERE tenant = $1 AND store = $2 AND seq > $3"
            " ORDER BY seq, event_id LIMIT $4", tenant, store, after, MAX_EVENTS + 1)
        last = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM inbox WHERE tenant = $1 AND store = $2",
                                   tenant, store)
        letters = await conn.fetch(
            "SELECT coalesce(event_id::text, '') AS event_id, payload FROM dead_letters WHERE tenant = $1 AND store = $2"
            " ORDER BY id DESC LIMIT $3", tenant, store, _DEAD_LETTERS_READ)
    events = [HeldEvent(row["seq"], row["id"], row["type"]) for row in rows]
    for letter in letters:
        seq = _seq(letter["payload"])
        if seq is not None:
            last = max(last, seq)
            if seq > after:
                events.append(HeldEvent(seq, letter["event_id"] or "?", DEAD_LETTER))
    events.sort(key=lambda event: event.seq)
    return HubHolds(int(last), tuple(events[:MAX_EVENTS]), len(events) > MAX_EVENTS)


async def answer_restore(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
    tenant, store = parse_request_subject(subject, "restore")
    return encode_answer(await holds(pool, tenant, store, decode_request(data)))
