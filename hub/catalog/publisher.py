"""The catalog publisher: keeps each tenant's catalog stream (novapos.wire.catalog) equal to PostgreSQL.

One hub process at a time runs it (the periodic job catalog_publisher, hub.leases). For each tenant of the hub it publishes what changed since
the version the stream holds: the settings, the tax classes, every variant (Item) and every promotion
(hub.promotions: the revision the stores hold, inactive once ended) stamped with a later version, then the
VersionMarker that lets stores apply the version whole. Publishes are pipelined (JetStream acks asked for every
hundred messages and checked against the stream's sequence, not awaited one by one), and the marker goes only
once all of them are stored.
`catalog_published` records the version only once the stream acked the marker too, so a publisher that dies
mid-way, or a hub restarted, resumes from there (the stream keeps one message per subject: a message
published twice is harmless).

- Only one hub process publishes a tenant at a time: a PostgreSQL advisory lock per tenant, held for the
  whole publication (a crashed holder's lock goes with its connection). Versions of one tenant reach the
  stream in order, never interleaved.
- It wakes at the commit of any change, from any hub process (LISTEN on `novapos_catalog`, notified by a
  trigger on catalog_versions), and polls every POLL_S as a backstop.
- Every VERIFY_S it checks each tenant's stream: a stream lost on the NATS side (deleted, a server that lost
  its storage) holds no marker, or an older one, and is rebuilt in full.
- On PostgreSQL or NATS trouble it logs what failed, backs off and retries; it never ends the hub.
- Snapshots for the stores' first load (novapos.wire.catalog: chunks of SNAPSHOT_ITEMS items, then a head):
  after a tenant's stream is up to date, one is published when the stream holds none (new, rebuilt, lost)
  or when SNAPSHOT_BEHIND messages came after it (what a new store would read one by one), for catalogs of at least
  SNAPSHOT_MIN_ITEMS items (below that, reading item by item takes a store well under a tenth of a
  second). It runs as its own task under its own advisory lock, reading the catalog at the version whose
  marker is the stream's last (its promotions in chunks after the items'), so it never delays a marker; a store that finds it torn (republished
  meanwhile) reads every item instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence

import asyncpg
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from edge_runtime import Backoff
from hub.console.context import Console
from novapos import promotions
from novapos.adapters.nats import NatsLink
from novapos.pricing import Price
from novapos.validators import Invalid
from novapos.wire.catalog import (
    SNAPSHOT_ITEMS,
    Item,
    Message,
    PromotionMessage,
    Settings,
    SnapshotHead,
    TaxClass,
    VersionMarker,
    catalog_stream,
    decode,
    decode_head,
    encode,
    encode_chunks,
    encode_head,
    encode_promotion_chunks,
    snapshot_chunk_subject,
    snapshot_subject,
    subject_of,
    version_subject,
)

log = logging.getLogger(__name__)

CHANNEL = "novapos_catalog"
POLL_S = 0.5
VERIFY_S = 5.0
ACK_TIMEOUT_S = 30.0
WINDOW = 10_000
"""Catalog messages published ahead of the last one JetStream acknowledged, at most: memory stays bounded."""
ACK_EVERY = 100
LOCK_CLASS = 0x63617461  # "cata": the first key of the per-tenant advisory lock; the second is hashtext(tenant)
SNAPSHOT_LOCK_CLASS = 0x736E6170  # "snap": one snapshot publisher per tenant, apart from the versions' lock
SNAPSHOT_MIN_ITEMS = 2000
SNAPSHOT_PAGE = 250
"""Variants read and built at a time for a snapshot: a few milliseconds of the publisher's loop per step."""
SNAPSHOT_BEHIND = 10_000
"""Messages the stream may hold after a snapshot's head before it is republished: what a new store reads one
by one after loading it (10,000: about 0.2 s), and how often the stores following the stream receive a
republished snapshot (their consumer filters catalog.<tenant>.>: it skips the chunks but receives them)."""
RETRY = Backoff(initial=0.5, maximum=15.0)
TROUBLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, nats.errors.Error, TimeoutError, ConnectionError)
"""What PostgreSQL or NATS going away raises: a warning and a retry, not a bug."""

ITEMS_SQL = (
    "SELECT v.sku, v.product, v.name, v.attribute_values, p.attributes, p.tax_class, v.active AND p.active AS active,"
    " v.version, coalesce(p.category, '') AS category FROM variants v JOIN products p USING (tenant, product)"
    " WHERE v.tenant = $1 AND v.version > $2"
    " ORDER BY v.version, v.sku")
BARCODES_SQL = ("SELECT b.sku, b.barcode FROM barcodes b JOIN variants v USING (tenant, sku)"
                " WHERE v.tenant = $1 AND v.version > $2 ORDER BY b.sku, b.barcode")
PRICES_SQL = (
    # Prices that still matter: the one in force now in each scope and those starting later. A start between two
    # milliseconds counts from the later one, as replay validation reads it (hub.sales.replay).
    "SELECT sku, scope, scope_id, ceil(extract(epoch FROM effective_from) * 1000)::bigint AS from_ms, amount_minor FROM ("
    " SELECT pr.*, max(pr.effective_from) FILTER (WHERE pr.effective_from <= now())"
    "  OVER (PARTITION BY pr.sku, pr.scope, pr.scope_id) AS current"
    " FROM prices pr JOIN variants v USING (tenant, sku) WHERE v.tenant = $1 AND v.version > $2) x"
    " WHERE current IS NULL OR effective_from >= current ORDER BY sku, scope, scope_id, effective_from")
TAX_SQL = (
    "SELECT c.tax_class, c.name, c.version, coalesce(array_agg(r.region ORDER BY r.region)"
    " FILTER (WHERE r.region IS NOT NULL), '{}') AS regions, coalesce(array_agg(r.rate_ppm ORDER BY r.region)"
    " FILTER (WHERE r.region IS NOT NULL), '{}') AS rates FROM tax_classes c LEFT JOIN tax_rates r USING (tenant, tax_class)"
    " WHERE c.tenant = $1 AND c.version > $2 GROUP BY c.tax_class, c.name, c.version ORDER BY c.tax_class")
ITEMS_PAGE_SQL = (
    "SELECT v.sku, v.product, v.name, v.attribute_values, p.attributes, p.tax_class, v.active AND p.active AS active,"
    " v.version, coalesce(p.category, '') AS category FROM variants v JOIN products p USING (tenant, product)"
    " WHERE v.tenant = $1 AND v.sku > $2"
    " ORDER BY v.sku LIMIT $3")
BARCODES_PAGE_SQL = ("SELECT sku, barcode FROM barcodes WHERE tenant = $1 AND sku = ANY($2::text[])"
                     " ORDER BY sku, barcode")
PRICES_PAGE_SQL = PRICES_SQL.replace(
    "FROM prices pr JOIN variants v USING (tenant, sku) WHERE v.tenant = $1 AND v.version > $2",
    "FROM prices pr WHERE pr.tenant = $1 AND pr.sku = ANY($2::text[])")
PROMOTIONS_SQL = (
    # Each promotion the stores hold (or held: an ended one goes as inactive), at the revision they hold.
    "SELECT r.body, p.state <> 'ended' AS active FROM promotions p JOIN promotion_revisions r ON (r.tenant, r.promotion,"
    " r.revision) = (p.tenant, p.id, p.live_revision) WHERE p.tenant = $1 AND p.version > $2 ORDER BY p.version, p.id")
BEHIND_SQL = ("SELECT v.tenant FROM catalog_versions v LEFT JOIN catalog_published p USING (tenant)"
              " WHERE v.tenant = ANY($1::text[]) AND v.version > coalesce(p.version, 0) ORDER BY v.tenant")
CATALOGS_SQL = "SELECT tenant FROM catalog_versions WHERE tenant = ANY($1::text[]) AND version > 0 ORDER BY tenant"


async def run_publisher(console: Console) -> None:
    """The Domain service: the publisher on the asyncio seam, for the hub's tenants, until the hub stops."""
    await console.seam.run(publish_forever, console.ready_pool(), console.link, sorted(console.tenants),
                           console.config.stream.replicas)


async def publish_forever(pool: asyncpg.Pool, link: NatsLink, tenants: list[str], replicas: int = 1) -> None:
    """(asyncio side) Publish whatever is behind, at each notification, poll and verification, for ever, to
    catalog streams of `replicas` copies ([stream] replicas)."""
    wake = asyncio.Event()

    def notified(*_: object) -> None:
        wake.set()
    listener: asyncpg.Connection | None = None
    failures = 0
    verified = 0.0
    snapshots: dict[str, asyncio.Task[None]] = {}
    try:
        while True:
            wake.clear()
            try:
                if listener is None or listener.is_closed():
                    listener = await _listen(pool, listener, notified)
                verify = time.monotonic() - verified >= VERIFY_S
                for tenant in await pool.fetch(CATALOGS_SQL if verify else BEHIND_SQL, tenants):
                    if await publish_tenant(pool, link, tenant["tenant"], replicas) is not None:
                        await _snapshot_if_due(pool, link, tenant["tenant"], snapshots)
                if verify:
                    verified = time.monotonic()
                if failures:
                    log.info("catalog publisher recovered after %d failed attempt(s)", failures)
                failures = 0
            except Exception as exc:  # it must outlive PostgreSQL and NATS going away, and even its own bugs
                failures += 1
                delay = RETRY.delay(failures + 1)
                if isinstance(exc, TROUBLE):
                    log.warning("catalog publisher: %s: %s; the stores keep their last catalog meanwhile; check "
                                "PostgreSQL and NATS; retrying in %.1f s", type(exc).__name__, exc, delay)
                else:
                    log.exception("catalog publisher failed unexpectedly (a bug: report it with this traceback); the "
                                  "hub keeps ingesting; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                continue
            try:
                await asyncio.wait_for(wake.wait(), POLL_S)
            except TimeoutError:
                pass
    finally:
        for task in snapshots.values():
            task.cancel()
        if listener is not None and not listener.is_closed():
            await listener.remove_listener(CHANNEL, notified)
            await pool.release(listener)


async def _listen(pool: asyncpg.Pool, old: asyncpg.Connection | None,
                  notified: Callable[..., None]) -> asyncpg.Connection:
    """A pool connection held to LISTEN (the one before it was lost)."""
    if old is not None:
        await pool.release(old)
    listener = await pool.acquire()
    await listener.add_listener(CHANNEL, notified)
    return listener


async def _stream_version(link: NatsLink, tenant: str) -> int | None:
    """The version of the last marker on the tenant's stream; None when it holds none (new, or lost)."""
    try:
        message = await link.js.get_last_msg(catalog_stream(tenant), version_subject(tenant))
    except nats.js.errors.NotFoundError:
        return None
    try:
        marker = decode("version", message.data or b"")
    except Invalid as exc:
        log.warning("the last version marker on %s is unreadable (%s): republishing the whole catalog",
                    catalog_stream(tenant), exc)
        return None
    return marker.version if isinstance(marker, VersionMarker) else None


async def publish_tenant(pool: asyncpg.Pool, link: NatsLink, tenant: str, replicas: int = 1) -> int | None:
    """(asyncio side) Bring the tenant's stream up to its catalog version; returns the version the stream then
    holds, or None when another hub process is publishing this tenant."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS, tenant):
            return None
        try:
            return await _publish_locked(conn, link, tenant, replicas)
        finally:
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CLASS, tenant)


async def _publish_locked(conn: asyncpg.Connection, link: NatsLink, tenant: str, replicas: int) -> int:
    await link.ensure_catalog_stream(tenant, replicas)
    on_stream = await _stream_version(link, tenant)
    started = time.perf_counter()
    async with conn.transaction(isolation="repeatable_read"):
        row = await conn.fetchrow(
            "SELECT v.version, v.settings_version, t.currency, t.prices_include_tax,"
            " (SELECT version FROM catalog_published p WHERE p.tenant = v.tenant) AS recorded"
            " FROM catalog_versions v JOIN tenants t USING (tenant) WHERE v.tenant = $1", tenant)
        if row is None:
            return 0
        version, recorded = row["version"], row["recorded"] or 0
        since = min(recorded, on_stream or 0)
        if version == since == on_stream:
            return version
        messages: list[Message] = []
        if since == 0 or row["settings_version"] > since:
            messages.append(Settings(row["currency"], row["prices_include_tax"], row["settings_version"]))
        messages += await _tax_classes(conn, tenant, since)
        messages += await items_since(conn, tenant, since)
        messages += await promotions_since(conn, tenant, since)
        stream = await link.js.stream_info(catalog_stream(tenant))
        await publish_pipelined(link.client, [(subject_of(tenant, message), encode(message)) for message in messages],
                                stream.state.last_seq)
        # The marker only once every message of the version is stored: a store never applies half a version.
        await link.js.publish(version_subject(tenant), encode(VersionMarker(version, int(time.time() * 1000))),
                              timeout=ACK_TIMEOUT_S)
        await conn.execute(
            "INSERT INTO catalog_published (tenant, version) VALUES ($1, $2) ON CONFLICT (tenant)"
            " DO UPDATE SET version = EXCLUDED.version, published_at = now()", tenant, version)
    log.info("published catalog version %d of %s to %s: %d message(s) in %.2f s%s", version, tenant,
             catalog_stream(tenant), len(messages), time.perf_counter() - started,
             "" if since else " (the whole catalog: the stream was new, lost or behind)")
    return version


async def _snapshot_if_due(pool: asyncpg.Pool, link: NatsLink, tenant: str,
                           snapshots: dict[str, asyncio.Task[None]]) -> None:
    """Start the tenant's snapshot task when a snapshot is due and none is running."""
    running = snapshots.get(tenant)
    if running is not None and not running.done():
        return
    if await snapshot_due(link, tenant):
        snapshots[tenant] = asyncio.create_task(_snapshot_task(pool, link, tenant))


async def snapshot_due(link: NatsLink, tenant: str) -> bool:
    """Whether the tenant's stream holds no usable snapshot, or one too far behind its last marker."""
    stream = catalog_stream(tenant)
    try:
        marker = await link.js.get_last_msg(stream, version_subject(tenant))
    except nats.js.errors.NotFoundError:
        return False  # nothing published yet
    try:
        stored = await link.js.get_last_msg(stream, snapshot_subject(tenant))
    except nats.js.errors.NotFoundError:
        return True
    try:
        head = decode_head(stored.data or b"")
        last = decode("version", marker.data or b"")
    except Invalid:
        return True
    if not isinstance(last, VersionMarker):
        return True
    version = last.version
    if head.stream_seq > (marker.seq or 0) or head.version > version:
        return True  # a head from before the stream was rebuilt
    return (marker.seq or 0) - (stored.seq or 0) >= SNAPSHOT_BEHIND


async def _snapshot_task(pool: asyncpg.Pool, link: NatsLink, tenant: str) -> None:
    try:
        await publish_snapshot(pool, link, tenant)
    except Exception as exc:  # the next round tries again; the stores read item by item meanwhile
        log.warning("catalog snapshot of %s not published: %s: %s; new stores read item by item until the next one",
                    tenant, type(exc).__name__, exc)


async def publish_snapshot(pool: asyncpg.Pool, link: NatsLink, tenant: str) -> SnapshotHead | None:
    """(asyncio side) Publish the tenant's catalog at the version of the stream's last marker as a snapshot,
    chunks first, head last; None when skipped (another process at it, a catalog too small, or the stream
    not at the catalog's version: the next round tries again)."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", SNAPSHOT_LOCK_CLASS, tenant):
            return None
        try:
            return await _snapshot_locked(conn, link, tenant)
        finally:
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", SNAPSHOT_LOCK_CLASS, tenant)


async def _snapshot_locked(conn: asyncpg.Connection, link: NatsLink, tenant: str) -> SnapshotHead | None:
    started = time.perf_counter()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            "SELECT v.version, v.settings_version, t.currency, t.prices_include_tax,"
            " (SELECT count(*) FROM variants WHERE tenant = v.tenant) AS variants"
            " FROM catalog_versions v JOIN tenants t USING (tenant) WHERE v.tenant = $1", tenant)
        if row is None or row["variants"] < SNAPSHOT_MIN_ITEMS:
            return None
        marker = await link.js.get_last_msg(catalog_stream(tenant), version_subject(tenant))
        on_stream = decode("version", marker.data or b"")
        if not isinstance(on_stream, VersionMarker) or on_stream.version != row["version"] or not marker.seq:
            return None  # the stream is not at this version (yet): the next round
        others: list[TaxClass | Settings] = [Settings(row["currency"], row["prices_include_tax"], row["settings_version"])]
        others += await _tax_classes(conn, tenant, 0)
        snapshot = f"v{row['version']}-{uuid.uuid4().hex[:12]}"
        # SNAPSHOT_PAGE items read and built at a time, a chunk encoded once SNAPSHOT_ITEMS are in, the loop free
        # between these steps (each a few milliseconds): a price change's marker never waits for the whole
        # catalog to be built, only for the step in progress at each of its own awaits.
        chunks: list[bytes] = []
        waiting: list[Item] = []
        items, after = 0, ""
        while True:
            page = await conn.fetch(ITEMS_PAGE_SQL, tenant, after, SNAPSHOT_PAGE)
            skus = [item["sku"] for item in page]
            waiting += _items(page, await conn.fetch(BARCODES_PAGE_SQL, tenant, skus),
                              await conn.fetch(PRICES_PAGE_SQL, tenant, skus))
            last = len(page) < SNAPSHOT_PAGE
            if len(waiting) >= SNAPSHOT_ITEMS or (last and (waiting or not chunks)):
                await asyncio.sleep(0)
                chunks += encode_chunks(snapshot, waiting, others, first=len(chunks))
                items += len(waiting)
                waiting = []
            if last:
                break
            after = skus[-1]
            await asyncio.sleep(0)
        chunks += encode_promotion_chunks(snapshot, await promotions_since(conn, tenant, 0), first=len(chunks))
    for index, data in enumerate(chunks):
        await link.js.publish(snapshot_chunk_subject(tenant, index), data, timeout=ACK_TIMEOUT_S)
    head = SnapshotHead(snapshot, row["version"], marker.seq, len(chunks))
    await link.js.publish(snapshot_subject(tenant), encode_head(head), timeout=ACK_TIMEOUT_S)
    log.info("published catalog snapshot %s of %s (version %d, stream sequence %d): %d items in %d chunks, %.1f MB, "
             "in %.2f s", snapshot, tenant, head.version, head.stream_seq, items, len(chunks),
             sum(map(len, chunks)) / 1e6, time.perf_counter() - started)
    return head


async def publish_pipelined(client: Client, messages: Sequence[tuple[str, bytes]], after_seq: int) -> None:
    """Publish to a stream whose last sequence is `after_seq` and that nobody else writes meanwhile (the tenant's
    lock), in order, without waiting for acks one by one; return once JetStream stored them all.

    Only every ACK_EVERY-th message and the last ask for an ack: JetStream numbers what it stores one after
    the other, so the ack of message i saying sequence after_seq + i + 1 proves every message up to i stored
    (a refused or lost one would shift the numbers). Unasked, nats-py's cost per message (an ack to parse and
    route) goes; the acks asked for also pace it (at most WINDOW messages ahead of the last ack).
    Raises ConnectionError on a refusal or a gap, TimeoutError when acks stop for ACK_TIMEOUT_S (NATS gone)."""
    prefix = client.new_inbox()
    stored = -1  # the index of the last message proven stored
    refusal: str | None = None
    moved = asyncio.Event()

    async def on_ack(message: Msg) -> None:
        nonlocal stored, refusal
        index = int(message.subject.rsplit(".", 1)[1])
        if (message.headers or {}).get("Status") == "503":
            refusal = "no stream takes these subjects"
        else:
            answer = json.loads(message.data)
            if "error" in answer:
                refusal = str(answer["error"].get("description", answer["error"]))
            elif answer.get("seq") != after_seq + index + 1:
                refusal = (f"message {index + 1} was stored as sequence {answer.get('seq')}, not "
                           f"{after_seq + index + 1}: some before it were lost")
            else:
                stored = max(stored, index)
        moved.set()

    async def stored_through(index: int) -> None:
        while stored < index and refusal is None:
            moved.clear()
            await asyncio.wait_for(moved.wait(), ACK_TIMEOUT_S)

    subscription = await client.subscribe(f"{prefix}.*", cb=on_ack)
    try:
        last = len(messages) - 1
        for index, (subject, payload) in enumerate(messages):
            await stored_through(index - WINDOW)
            if refusal is not None:
                break
            asks = index % ACK_EVERY == ACK_EVERY - 1 or index == last
            await client.publish(subject, payload, reply=f"{prefix}.{index}" if asks else "")
        await stored_through(last)
    finally:
        await subscription.unsubscribe()
    if refusal is not None:
        raise ConnectionError(f"JetStream did not store the catalog: {refusal}")


async def _tax_classes(conn: asyncpg.Connection, tenant: str, since: int) -> list[TaxClass]:
    return [TaxClass(row["tax_class"], row["name"], tuple(zip(row["regions"], row["rates"], strict=True)), row["version"])
            for row in await conn.fetch(TAX_SQL, tenant, since)]


async def items_since(conn: asyncpg.Connection, tenant: str, since: int) -> list[Item]:
    """Every variant stamped after `since`, as the Item the stores receive."""
    return _items(await conn.fetch(ITEMS_SQL, tenant, since), await conn.fetch(BARCODES_SQL, tenant, since),
                  await conn.fetch(PRICES_SQL, tenant, since))


def _items(rows: Sequence[asyncpg.Record], barcodes: Sequence[asyncpg.Record],
           price_rows: Sequence[asyncpg.Record]) -> list[Item]:
    """Variants' rows with their barcodes' and prices' rows, as Items."""
    codes: defaultdict[str, list[str]] = defaultdict(list)
    for row in barcodes:
        codes[row["sku"]].append(row["barcode"])
    prices: defaultdict[str, list[Price]] = defaultdict(list)
    for row in price_rows:
        prices[row["sku"]].append(Price(row["scope"], row["scope_id"], row["from_ms"], row["amount_minor"]))
    return [Item(sku=row["sku"], product=row["product"], name=row["name"],
                 attributes=tuple(zip(row["attributes"], row["attribute_values"], strict=False)),
                 tax_class=row["tax_class"], barcodes=tuple(codes[row["sku"]]), prices=tuple(prices[row["sku"]]),
                 active=row["active"], version=row["version"], category=row["category"])
            for row in rows]


async def promotions_since(conn: asyncpg.Connection, tenant: str, since: int) -> list[PromotionMessage]:
    """Every promotion stamped after `since` (hub.promotions: going live, a new live revision, ending), as the
    stores receive it."""
    return [PromotionMessage(promotions.from_wire(json.loads(row["body"])), row["active"])
            for row in await conn.fetch(PROMOTIONS_SQL, tenant, since)]
