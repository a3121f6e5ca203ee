"""The hub's events stream sources the local events stream of every store that runs a leaf node (novapos.leaf).

A leaf store's events never reach the hub's stream by subject (its leaf user may not export them:
hub.tenancy.nats_auth.leaf_permissions); the stream pulls them through the store's JetStream domain instead,
one source per store, and catches up on its own after an outage (the server retries a stalled source).
Sourced messages keep their subjects, so the ingest consumer and everything after it see a leaf store's
events exactly as a directly connected store's.

Which stores run a leaf node is a flag on each store's record (`novapos hub store leaf`, audited), read by every
round: every hub process agrees at once, none restarts. `ensure_leaf_sources` adds the sources missing for the
given stores and removes none (a store whose flag is turned off keeps its source until `novapos hub store
unsource`, `unsource`: its leaf may still hold unsourced sales; refused while the flag is on). A round and an
unsource take SOURCES_LOCK in PostgreSQL, so a round that read the flag before it was turned off cannot add a
source back after `unsource` dropped it.
The periodic job `watch_leaf_sources` (lease `leaf_sources`: one hub process at a time, every [leaf] check_every_s)
adds the sources of the flagged stores and restarts the stalled ones. nats-server retries a source whose leaf is unreachable after
10 s x the failures so far, at most every 2 minutes (stream.go calculateRetryBackoff): after an outage of a
few minutes a store's sales would reach the hub up to 2 minutes after its WAN came back. A source silent for
STALLED_AFTER_S is dropped and re-added in one pair of stream updates for all of them: the server resumes a
re-added source after the last message it holds from it (measured: no gap, no duplicate), so catching up
takes at most about check_every_s after the link is back. The gauge novapos_hub_leaf_sources_stalled counts
them; a store's stall and its recovery are each logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
import nats.js.errors
import trio
from nats.js import JetStreamContext
from nats.js.api import ExternalStream, StreamInfo, StreamSource, StreamSourceInfo
from prometheus_client import Gauge

from hub.audit.chain import Entry, record
from hub.console.context import Console
from hub.ingest.inbox import SOURCE_HEADER
from hub.tenancy import service
from novapos.adapters.nats import NatsLink
from novapos.config import HubConfig
from novapos.tls import Certificates
from novapos.wire.leaf import leaf_api, leaf_events_stream, source_deliver_prefix, store_events_filter
from novapos.wire.subjects import EVENTS_STREAM

log = logging.getLogger(__name__)

SOURCES_LOCK = 0x6C656166
"""PostgreSQL advisory lock ("leaf"): one round of the leaf_sources job, or one `novapos hub store unsource`, at a
time."""
STALLED_AFTER_S = 10.0
"""A source nothing came from for this long is stalled: a live one hears its consumer's heartbeat every second or so."""
STALLED = Gauge("novapos_hub_leaf_sources_stalled",
                "Leaf stores whose local events stream the hub's events stream has not heard from for over 10 s "
                "(their WAN, their box or their leaf node is down; their sales wait there); set by the hub process "
                "holding the leaf_sources lease")


def leaf_source(tenant: str, store: str) -> StreamSource:
    """One store's source: only its own events' subjects (a leaf box may widen its local stream to any subject; the
    ingest dead-letters what is sourced from another store's leaf all the same: hub.ingest.inbox), delivered on the
    store's own prefix (the only one its leaf user may publish on: hub.tenancy.nats_auth.leaf_permissions)."""
    return StreamSource(name=leaf_events_stream(tenant, store), filter_subject=store_events_filter(tenant, store),
                        external=ExternalStream(api=leaf_api(tenant, store),
                                                deliver=source_deliver_prefix(tenant, store)))


def _shape(source: StreamSource) -> tuple[str | None, str | None]:
    """What an earlier release's source may lack: its filter and its deliver prefix."""
    return source.filter_subject, None if source.external is None else source.external.deliver


def _key(source: StreamSource) -> tuple[str, str | None]:
    return source.name, None if source.external is None else source.external.api


async def ensure_leaf_sources(js: JetStreamContext, stores: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(asyncio side) Make the events stream source every (tenant, store) given, each as leaf_source makes it; the
    stores whose source was added or brought up to date (just (re)started: not stalled), in order."""
    config = (await js.stream_info(EVENTS_STREAM)).config
    wanted = {_key(leaf_source(tenant, store)): (tenant, store) for tenant, store in set(stores)}
    sources = list(config.sources or [])
    outdated = {_key(source) for source in sources
                if _key(source) in wanted and _shape(source) != _shape(leaf_source(*wanted[_key(source)]))}
    have = {_key(source) for source in sources}
    added = [(tenant, store) for tenant, store in sorted(set(stores)) if _key(leaf_source(tenant, store)) not in have]
    if not added and not outdated:
        return []
    # an outdated source (no filter, the fleet-wide deliver prefix) is replaced in place: the server resumes it after
    # the last message it holds from it, and the inbox makes anything sent twice a no-op
    config.sources = [leaf_source(*wanted[_key(source)]) if _key(source) in outdated else source for source in sources]
    config.sources += [leaf_source(tenant, store) for tenant, store in added]
    await js.update_stream(config)
    updated = sorted(wanted[key] for key in outdated)
    for tenant, store in updated:
        log.info("the %s stream's source of store %s/%s's leaf node now takes only that store's subjects, on its own "
                 "deliver prefix", EVENTS_STREAM, tenant, store)
    for tenant, store in added:
        log.info("the %s stream now sources store %s/%s's leaf node (stream %s at %s)", EVENTS_STREAM, tenant, store,
                 leaf_events_stream(tenant, store), leaf_api(tenant, store))
    return sorted([*added, *updated])


def stalled(info: StreamInfo, stores: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The stores whose source is missing from `info` or silent for over STALLED_AFTER_S (never heard of: -1)."""
    active = {source.name: source.active for source in info.sources or []}
    return [(tenant, store) for tenant, store in stores
            if (silent := active.get(leaf_events_stream(tenant, store))) is None or silent < 0
            or silent / 1e9 > STALLED_AFTER_S]


async def restart_leaf_sources(js: JetStreamContext, stores: Sequence[tuple[str, str]]) -> None:
    """(asyncio side) Drop the stores' sources and add them again: two stream updates for any number."""
    config = (await js.stream_info(EVENTS_STREAM)).config
    restarted = {_key(leaf_source(tenant, store)) for tenant, store in stores}
    config.sources = [source for source in config.sources or [] if _key(source) not in restarted]
    await js.update_stream(config)
    config.sources = [*config.sources, *(leaf_source(tenant, store) for tenant, store in stores)]
    await js.update_stream(config)


async def check(link: NatsLink, stores: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(asyncio side) One round: the missing sources added, the stalled ones restarted; the stalled stores.
    Nothing while the events stream does not exist yet (the ingest creates it)."""
    try:
        added = await ensure_leaf_sources(link.js, stores)
        found = stalled(await link.js.stream_info(EVENTS_STREAM), stores)
    except nats.js.errors.NotFoundError:
        return []
    restart = [store for store in found if store not in added]  # just added or updated: not started yet, not stalled
    if restart:
        await restart_leaf_sources(link.js, restart)
    return restart


ISOLATION_LIMIT = ("the leaf stores share the hub's NATS account: each may still receive every answer of the "
                   "hub's JetStream API to any leaf ($JSC.R.>: consumer and stream info of the other leaves' sourcing "
                   "and mirrors) and publish such answers (it can disturb, not forge, another leaf's sourcing); only "
                   "one NATS account per store isolates that (README, leaf nodes' known limits)")


async def flagged_round(link: NatsLink, pool: asyncpg.Pool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(asyncio side) One round (`check`) for the stores flagged as running a leaf node, read under SOURCES_LOCK
    and held until their sources are updated: (the flagged stores, the stalled ones)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SOURCES_LOCK)
        stores = await service.leaf_stores(conn)
        return stores, await check(link, stores) if stores else []


async def watch_leaf_sources(console: Console) -> None:
    """The job: a round every [leaf] check_every_s; never raises (a failed round is logged once and retried). Says
    once, when it first finds a flagged store, which isolation between leaf stores is missing."""
    every = console.config.leaf_check_every_s
    pool = console.ready_pool()
    known: set[tuple[str, str]] = set()
    failing = warned = False
    while True:
        try:
            stores, stalled_now = await console.seam.run(flagged_round, console.link, pool)
        except Exception as exc:
            if not failing:
                log.warning("cannot check the leaf stores' sources (%s: %s): retrying every %d s; check NATS and "
                            "PostgreSQL", type(exc).__name__, exc, every)
            failing = True
            await trio.sleep(every)
            continue
        failing = False
        if stores and not warned:
            log.warning("%d store(s) flagged as running a leaf node: %s", len(stores), ISOLATION_LIMIT)
            warned = True
        found = set(stalled_now)
        STALLED.set(len(found))
        for tenant, store in sorted(found - known):
            log.warning("store %s/%s's leaf node has sent nothing for over %g s: its sales wait on its box; the "
                        "hub retries every %d s (check the store's WAN and its leaf nats-server)",
                        tenant, store, STALLED_AFTER_S, every)
        for tenant, store in sorted((known & set(stores)) - found):  # (a store turned off since is just left)
            log.info("store %s/%s's leaf node is sourced again", tenant, store)
        known = found
        await trio.sleep(every)


async def drop_leaf_source(js: JetStreamContext, tenant: str, store: str) -> bool:
    """(asyncio side) Stop sourcing one store's leaf; False if it was not sourced."""
    config = (await js.stream_info(EVENTS_STREAM)).config
    sources = list(config.sources or [])
    kept = [source for source in sources if _key(source) != _key(leaf_source(tenant, store))]
    if len(kept) == len(sources):
        return False
    config.sources = kept
    await js.update_stream(config)
    log.info("the %s stream no longer sources store %s/%s's leaf node", EVENTS_STREAM, tenant, store)
    return True




async def sourced_seq(js: JetStreamContext, tenant: str, store: str) -> int:
    """(asyncio side) The sequence, in the store's leaf stream, of the store's last event the events stream holds (0:
    none of its events is there, or the last was not sourced from its leaf). One look-up of the last message on the
    store's subjects (the server's per-subject index: a few subjects per store), whatever the stream's size; the
    store's edge counts what its leaf holds past it (actors.health.leaf)."""
    try:
        last = await js.get_last_msg(EVENTS_STREAM, store_events_filter(tenant, store))
    except nats.js.errors.NotFoundError:
        return 0
    source = ((last.headers or {}).get(SOURCE_HEADER) or "").split(" ")
    if len(source) < 2 or source[0].split(":", 1)[0] != leaf_events_stream(tenant, store) or not source[1].isdigit():
        return 0  # published straight to the hub (before the store ran a leaf)
    return int(source[1])


class NotUnsourced(Exception):
    """The store's source is not known to be drained, or the store is still flagged as running a leaf node: the
    sentence says what waits and what to do."""


@dataclass(frozen=True)
class Unsourced:
    """What `unsource` did: whether a source was dropped, the last leaf sequence the hub holds, and whether the
    source was drained when dropped (False: only with force; `lag` and `silent_s` say what was known of it)."""
    dropped: bool
    sourced_seq: int
    drained: bool
    lag: int | None = None
    silent_s: float | None = None


DRAINED_WITHIN_S = 3.0
"""A source is drained when the server heard from it this recently (its consumer beats every second) and it had
nothing pending on the leaf then; a leaf silent longer may hold events sold since (its WAN may be down)."""


def _drained(info: StreamSourceInfo | None) -> bool:
    """Everything the leaf holds is in the events stream, as far as the server knows (DRAINED_WITHIN_S)."""
    return info is not None and info.active is not None and 0 <= info.active / 1e9 <= DRAINED_WITHIN_S \
        and info.lag == 0


async def unsource(link: NatsLink, conn: asyncpg.Connection, tenant: str, store: str, *, force: bool, actor: str) -> Unsourced:
    """(asyncio side) `novapos hub store unsource`: stop sourcing one store's leaf once it is drained (a live source
    with nothing pending), or with `force` whatever it still holds (NotUnsourced otherwise); recorded in the audit
    log (store.unsourced, its figures) in `conn`'s transaction. The caller first makes sure the store is not flagged
    as running a leaf node (unsource_store): the leaf_sources job would add the source back."""
    info = await link.js.stream_info(EVENTS_STREAM)
    name = leaf_events_stream(tenant, store)
    source = next((one for one in info.sources or [] if one.name == name), None)
    sourced = await sourced_seq(link.js, tenant, store)
    if source is None and not any(_key(one) == _key(leaf_source(tenant, store)) for one in info.config.sources or []):
        return Unsourced(dropped=False, sourced_seq=sourced, drained=True)
    drained = _drained(source)
    lag = None if source is None else source.lag
    silent = None if source is None or source.active is None or source.active < 0 else source.active / 1e9
    if not drained and not force:
        raise NotUnsourced(
            f"the hub's {EVENTS_STREAM} stream may not hold all of store {tenant}/{store}'s leaf stream {name}: "
            + (f"{lag} event(s) still pending there" if silent is not None and silent <= DRAINED_WITHIN_S
               else "its leaf has not answered " + ("since the hub started sourcing it" if silent is None
                                                    else f"for {silent:.0f} s"))
            + f" (the hub holds its events up to leaf sequence {sourced}). Wait while its link is up (it catches "
            "up by itself), or pass --force: events on the leaf past that sequence would then never reach the hub")
    await record(conn, Entry(tenant, actor, "store.unsourced", store=store, target=store, details={
        "leaf_stream": name, "sourced_seq": sourced, "drained": drained, "forced": force and not drained,
        "lag": lag, "silent_s": None if silent is None else round(silent, 1)}))  # rolled back if the drop fails
    result = Unsourced(dropped=await drop_leaf_source(link.js, tenant, store), sourced_seq=sourced, drained=drained,
                       lag=lag, silent_s=silent)
    if not drained:
        log.warning("store %s/%s's leaf is no longer sourced though it was not known to be drained (--force): its "
                    "events past leaf sequence %d never reach the hub unless the source is added again",
                    tenant, store, sourced)
    return result


async def unsource_store(pool: asyncpg.Pool, config: HubConfig, tenant: str, store: str, *, force: bool,
                         actor: str) -> Unsourced:
    """(asyncio side) The command's body: refused while the store is flagged as running a leaf node (every hub's
    leaf_sources job would add its source back); the source dropped (`unsource`) under SOURCES_LOCK, after any
    round that read the flag before it was turned off."""
    certificates = Certificates(config.tls)
    link = NatsLink(config.nats_url, "novapos-hub-unsource", credentials=config.nats_credentials,
                    tls=certificates.client, require_tls=certificates.verifies_servers)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SOURCES_LOCK)
            if (await service.store(conn, tenant, store)).leaf:
                raise NotUnsourced(f"store {tenant}/{store} is flagged as running a leaf node, so the hub's "
                                   "leaf_sources job would add its source back: turn the flag off first (`novapos hub "
                                   f"store leaf {tenant} {store} off`), then unsource it")
            await link.connect(timeout=5.0)
            return await unsource(link, conn, tenant, store, force=force, actor=actor)
    finally:
        await link.close()
