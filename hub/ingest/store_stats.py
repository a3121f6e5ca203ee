"""Per-store figures kept current inside the inbox transaction, so the console reads a row per store
instead of scanning the inbox: events and distinct sequence numbers (hence missing and reused ones),
the last sequence number, and the store's clock skew against the hub's receive time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import asyncpg
from prometheus_client import Gauge

from novapos.wire.envelope import Envelope

CLOCK_SKEW = Gauge("novapos_hub_store_clock_skew_seconds",
                   "Hub receive time minus the store's clock, for its latest event (positive: the store is behind)",
                   ["tenant", "store"])

Store = tuple[str, str]


async def record(conn: asyncpg.Connection, fresh: Sequence[Envelope]) -> dict[Store, float]:
    """Count events never seen before into store_stats; returns each store's clock skew in seconds.
    A store's skew is that of its highest sequence number, so a late replay does not overwrite it."""
    if not fresh:
        return {}
    arriving = Counter((e.tenant, e.store, e.seq) for e in fresh)
    keys = list(arriving)
    in_inbox = {(r["tenant"], r["store"], r["seq"]): r["n"] for r in await conn.fetch(
        "SELECT tenant, store, seq, count(*) AS n FROM inbox WHERE (tenant, store, seq) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])) GROUP BY tenant, store, seq",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])}
    events: Counter[Store] = Counter((e.tenant, e.store) for e in fresh)
    new_seqs: Counter[Store] = Counter((t, s) for (t, s, seq), n in arriving.items() if in_inbox[(t, s, seq)] == n)
    latest: dict[Store, Envelope] = {}
    for event in fresh:
        store = (event.tenant, event.store)
        if store not in latest or event.seq >= latest[store].seq:
            latest[store] = event
    stores = sorted(latest)  # one lock order for every hub process: no deadlock between them
    rows = await conn.fetch(
        "INSERT INTO store_stats AS st (tenant, store, events, seqs, last_seq, last_received_at, clock_skew_ms)"
        " SELECT t, s, e, q, l, now(), (extract(epoch FROM now()) * 1000)::bigint - ts"
        " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])"
        "  AS u(t, s, e, q, l, ts)"
        " ON CONFLICT (tenant, store) DO UPDATE SET events = st.events + EXCLUDED.events,"
        "  seqs = st.seqs + EXCLUDED.seqs, last_seq = greatest(st.last_seq, EXCLUDED.last_seq),"
        "  last_received_at = EXCLUDED.last_received_at,"
        "  clock_skew_ms = CASE WHEN EXCLUDED.last_seq >= st.last_seq THEN EXCLUDED.clock_skew_ms"
        "   ELSE st.clock_skew_ms END"
        " RETURNING tenant, store, clock_skew_ms",
        [t for t, _ in stores], [s for _, s in stores], [events[k] for k in stores], [new_seqs[k] for k in stores],
        [latest[k].seq for k in stores], [latest[k].ts for k in stores])
    return {(row["tenant"], row["store"]): row["clock_skew_ms"] / 1000 for row in rows}


async def restore_skews(pool: asyncpg.Pool) -> None:
    """Set the skew gauge from store_stats at start, so a restarted hub reports every store at once."""
    for row in await pool.fetch("SELECT tenant, store, clock_skew_ms FROM store_stats WHERE clock_skew_ms IS NOT NULL"):
        CLOCK_SKEW.labels(row["tenant"], row["store"]).set(row["clock_skew_ms"] / 1000)
