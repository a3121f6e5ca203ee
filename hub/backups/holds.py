"""The hub's answer to a restored store box (novapos.wire.restore): the highest sequence number it holds from the
store, and the events above the box's backup it holds.

A number is held when its event is in the inbox (applied), in a dead letter (refused, perhaps re-driven later), or
still in the JetStream events stream (published by the old box, not ingested yet: an ingest backlog, an event held
back or nak'ed, or events a replay gives back after PostgreSQL was recovered to an earlier point): either way the
old box used it, and the restored box must not use it again. The inbox is read by its (tenant, store, seq) index;
dead letters by their store's, decoding only the sequence number at the head of each payload (a letter whose
payload does not decode held no number the hub could know of); the stream by its last message on the store's
subjects (a store publishes its events in order, so the last is its highest). A number above MAX_SEQ (a junk dead
letter) is no number a store could have used: ignored. When the stream cannot be read the hub does not answer
(the restore changes nothing and says so), since it would answer too low.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgpack
import nats.js.errors

from novapos.adapters.nats import NatsLink
from novapos.wire.envelope import MAX_SEQ
from novapos.wire.restore import MAX_EVENTS, HeldEvent, HubHolds, decode_request, encode_answer
from novapos.wire.subjects import EVENTS_STREAM, event_subject, parse_request_subject

log = logging.getLogger(__name__)

DEAD_LETTER = "dead letter"
_DEAD_LETTERS_READ = 10_000
"""The newest dead letters of the store looked at (they are rare: a store with more has bigger trouble)."""
HEAD_BYTES = 1024
"""The bytes of a dead letter's payload read: an envelope's fields before its body (id, type, v, tenant, store,
seq; each bounded) fit well within, so the seq is found without loading whole payloads (10,000 of them at most)."""


def _seq(payload: bytes) -> int | None:
    """The seq of an envelope from (the head of) its payload; None when it has none a store could have used."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(payload)
    try:  # field by field, stopping at seq: the head of a payload is enough (the body comes last)
        for _ in range(min(unpacker.read_map_header(), 16)):
            key: Any = unpacker.unpack()
            if key == "seq":
                seq: Any = unpacker.unpack()
                return seq if type(seq) is int and 0 < seq <= MAX_SEQ else None
            unpacker.skip()
    except Exception:  # a dead letter is often one that does not decode: it carries no number we can know
        return None
    return None


async def stream_last(link: NatsLink, tenant: str, store: str) -> int:
    """The seq of the store's last event in the events stream (0 when it has none there)."""
    subjects = event_subject(tenant, store, "x").removesuffix(".x") + ".>"
    try:
        message = await link.js.get_last_msg(EVENTS_STREAM, subjects)
    except nats.js.errors.NotFoundError:  # no event of the store in the stream (or no stream yet)
        return 0
    seq = _seq(message.data or b"")
    if seq is None:
        log.warning("the last event of %s/%s in the %s stream (stream sequence %s) carries no sequence number: "
                    "answering a restore from PostgreSQL alone for it", tenant, store, EVENTS_STREAM, message.seq)
        return 0
    return seq


HOLDS_SQL = ("SELECT seq, event_id::text AS id, type FROM inbox WHERE tenant = $1 AND store = $2 AND seq > $3"
             " ORDER BY seq, event_id LIMIT $4")
LAST_SQL = "SELECT coalesce(max(seq), 0) FROM inbox WHERE tenant = $1 AND store = $2"


async def holds(pool: asyncpg.Pool, tenant: str, store: str, after: int, in_stream: int = 0) -> HubHolds:
    async with pool.acquire() as conn:
        rows = await conn.fetch(HOLDS_SQL, tenant, store, after, MAX_EVENTS + 1)
        last = await conn.fetchval(LAST_SQL, tenant, store)
        letters = await conn.fetch(
            "SELECT coalesce(event_id::text, '') AS event_id, substring(payload FROM 1 FOR $4) AS head"
            " FROM dead_letters WHERE tenant = $1 AND store = $2 ORDER BY id DESC LIMIT $3",
            tenant, store, _DEAD_LETTERS_READ, HEAD_BYTES)
    events = [HeldEvent(row["seq"], row["id"], row["type"]) for row in rows]
    for letter in letters:
        seq = _seq(letter["head"])
        if seq is not None:
            last = max(last, seq)
            if seq > after:
                events.append(HeldEvent(seq, letter["event_id"] or "?", DEAD_LETTER))
    events.sort(key=lambda event: event.seq)
    return HubHolds(max(int(last), in_stream), tuple(events[:MAX_EVENTS]), len(events) > MAX_EVENTS)


async def answer_restore(pool: asyncpg.Pool, link: NatsLink, subject: str, data: bytes) -> bytes:
    tenant, store = parse_request_subject(subject, "restore")
    after = decode_request(data)
    return encode_answer(await holds(pool, tenant, store, after, await stream_last(link, tenant, store)))
