"""Per-store figures kept current inside the inbox transaction, so the console reads a row per store
instead of scanning the inbox: events and distinct sequence numbers, the last sequence number, the
store's clock skew against the hub's receive time, and which numbers are missing (gaps, as ranges)
or were reused by another event id (hub.ingest.migrations 0080).

Several hub processes share the consumer, so two of them may apply events of one store at once. Each
batch locks its stores' store_stats rows first, always in one (sorted) order: no deadlock, and whatever
a batch then reads of the inbox includes everything the other hubs committed for those stores, so a
number two hubs see arrive at the same moment is counted once as new and once as reused, never twice
as new. Everything this module writes is written under those locks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import asyncpg
from prometheus_client import Gauge

from novapos.wire.envelope import Envelope

EVENT_DELAY = Gauge("novapos_hub_store_event_delay_seconds",
                    "Hub ingest time minus the time the store stamped its latest event: the store's clock skew plus "
                    "how long the event waited in its outbox and the stream (the clock skew alone: "
                    "novapos_hub_fleet_clock_skew_seconds)", ["tenant", "store"])

Store = tuple[str, str]
Gap = tuple[int, int]


def _holes(seqs: Sequence[int], after: int) -> list[Gap]:
    """The ranges missing between `after` and each of the (ascending) `seqs` above it, in turn."""
    holes, previous = [], after
    for seq in seqs:
        if seq > previous + 1:
            holes.append((previous + 1, seq - 1))
        previous = max(previous, seq)
    return holes


def _fill(gap: Gap, filled: set[int]) -> list[Gap]:
    """What remains of a gap once the numbers `filled` arrived."""
    first, last = gap
    inside = sorted(seq for seq in filled if first <= seq <= last)
    return _holes([*inside, last + 1], first - 1)


async def _lock(conn: asyncpg.Connection, stores: Sequence[Store]) -> dict[Store, int]:
    """Lock (creating where new) the stores' rows, in the order given; each store's last sequence number so far."""
    rows = await conn.fetch(
        "INSERT INTO store_stats AS st (tenant, store, events, seqs, last_seq, last_received_at)"
        " SELECT t, s, 0, 0, 0, now() FROM unnest($1::text[], $2::text[]) AS u(t, s)"
        " ON CONFLICT (tenant, store) DO UPDATE SET last_received_at = EXCLUDED.last_received_at"
        " RETURNING tenant, store, last_seq",
        [t for t, _ in stores], [s for _, s in stores])
    return {(row["tenant"], row["store"]): row["last_seq"] for row in rows}


async def _used_before(conn: asyncpg.Connection, fresh: Sequence[Envelope],
                       last: dict[Store, int]) -> Counter[tuple[str, str, int]]:
    """Per (tenant, store, seq) arriving: how many events of the inbox carried it before this batch. Only
    numbers up to the store's last one so far are looked up: under the store's lock, nothing committed
    carries a higher one (the usual case, a store's events arriving in order, reads nothing)."""
    arriving = Counter((e.tenant, e.store, e.seq) for e in fresh if e.seq <= last[(e.tenant, e.store)])
    if not arriving:
        return Counter()
    keys = list(arriving)
    rows = await conn.fetch(
        "SELECT tenant, store, seq, count(*) AS n FROM inbox WHERE (tenant, store, seq) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])) GROUP BY tenant, store, seq",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    in_inbox = {(row["tenant"], row["store"], row["seq"]): row["n"] for row in rows}  # ours included
    return Counter({key: in_inbox[key] - count for key, count in arriving.items()})


async def _record_gaps(conn: asyncpg.Connection, new_seqs: dict[Store, list[int]], last: dict[Store, int]) -> None:
    """New gaps above each store's last number; gaps below it narrowed or split by late arrivals."""
    added: list[tuple[str, str, int, int]] = []
    late: list[tuple[str, str, int]] = []
    for store, seqs in new_seqs.items():
        ordered = sorted(seqs)
        added += [(*store, first, last_) for first, last_ in _holes([q for q in ordered if q > last[store]],
                                                                    last[store])]
        late += [(*store, q) for q in ordered if q < last[store]]
    gone: list[tuple[str, str, int]] = []
    if late:
        filled: dict[Store, set[int]] = defaultdict(set)
        for tenant, name, seq in late:
            filled[(tenant, name)].add(seq)
        for row in await conn.fetch(
                "SELECT DISTINCT g.tenant, g.store, g.first_seq, g.last_seq FROM store_seq_gaps g"
                " JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS u(t, s, q)"
                " ON (g.tenant, g.store) = (u.t, u.s) AND u.q BETWEEN g.first_seq AND g.last_seq",
                [t for t, _, _ in late], [s for _, s, _ in late], [q for _, _, q in late]):
            store = (row["tenant"], row["store"])
            gone.append((*store, row["first_seq"]))
            added += [(*store, a, b) for a, b in _fill((row["first_seq"], row["last_seq"]), filled[store])]
    if gone:
        await conn.execute(
            "DELETE FROM store_seq_gaps WHERE (tenant, store, first_seq) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))",
            [t for t, _, _ in gone], [s for _, s, _ in gone], [f for _, _, f in gone])
    if added:
        await conn.copy_records_to_table("store_seq_gaps", records=added,
                                         columns=["tenant", "store", "first_seq", "last_seq"])


async def record(conn: asyncpg.Connection, fresh: Sequence[Envelope]) -> dict[Store, float]:
    """Count events never seen before into store_stats, with their gaps and reused numbers; returns each
    store's clock skew in seconds. A store's skew is that of its highest sequence number, so a late replay
    does not overwrite it."""
    if not fresh:
        return {}
    latest: dict[Store, Envelope] = {}
    for event in fresh:
        store = (event.tenant, event.store)
        if store not in latest or event.seq >= latest[store].seq:
            latest[store] = event
    stores = sorted(latest)  # one lock order for every hub process: no deadlock between them
    last = await _lock(conn, stores)
    before = await _used_before(conn, fresh, last)
    reuses: list[tuple[object, str, str, int]] = []
    new_seqs: dict[Store, list[int]] = defaultdict(list)
    seen: set[tuple[str, str, int]] = set()
    for event in fresh:
        key = (event.tenant, event.store, event.seq)
        if before[key] or key in seen:
            reuses.append((event.id, *key))
        else:
            new_seqs[(event.tenant, event.store)].append(event.seq)
        seen.add(key)
    await _record_gaps(conn, new_seqs, last)
    if reuses:
        await conn.copy_records_to_table("store_seq_reuses", records=reuses,
                                         columns=["event_id", "tenant", "store", "seq"])
    events: Counter[Store] = Counter((e.tenant, e.store) for e in fresh)
    rows = await conn.fetch(
        "UPDATE store_stats AS st SET events = st.events + u.e, seqs = st.seqs + u.q,"
        "  last_seq = greatest(st.last_seq, u.l), last_received_at = now(),"
        "  clock_skew_ms = CASE WHEN u.l >= st.last_seq THEN (extract(epoch FROM now()) * 1000)::bigint - u.ts"
        "   ELSE st.clock_skew_ms END,"
        "  last_ts_ms = CASE WHEN u.l >= st.last_seq THEN u.ts ELSE st.last_ts_ms END"
        " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])"
        "  AS u(t, s, e, q, l, ts)"
        " WHERE (st.tenant, st.store) = (u.t, u.s)"
        " RETURNING st.tenant, st.store, st.clock_skew_ms",
        [t for t, _ in stores], [s for _, s in stores], [events[k] for k in stores],
        [len(new_seqs[k]) for k in stores], [latest[k].seq for k in stores], [latest[k].ts for k in stores])
    return {(row["tenant"], row["store"]): row["clock_skew_ms"] / 1000 for row in rows}


async def restore_skews(pool: asyncpg.Pool) -> None:
    """Set the skew gauge from store_stats at start, so a restarted hub reports every store at once."""
    for row in await pool.fetch("SELECT tenant, store, clock_skew_ms FROM store_stats WHERE clock_skew_ms IS NOT NULL"):
        EVENT_DELAY.labels(row["tenant"], row["store"]).set(row["clock_skew_ms"] / 1000)
