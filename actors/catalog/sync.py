"""The catalog sync: the tenant's catalog stream (novapos.wire.catalog) into the store's local catalog.

One actor per store, a child of the edge tree. It reads CATALOG_<tenant> through an ephemeral pull
consumer with no acks (a store only reads; the hub's stream keeps the last message of each subject), a
batch per crossing of the asyncio seam, starting after the last stream sequence it applied: a new store
reads the whole stream, a store back after a day offline only what changed meanwhile. Everything up to
a version marker is applied in ONE SQLite transaction (actors.catalog.local), so a till never sees half
a change; what arrives after the last marker waits, in that open transaction, for the next one.

JetStream API calls (what the store's NATS permissions must allow, all read-only on its own stream):
`$JS.API.STREAM.INFO.CATALOG_<tenant>` (the stream's identity and last sequence),
`$JS.API.CONSUMER.CREATE.CATALOG_<tenant>.<name>` (an ephemeral consumer, in memory, of every subject but
the snapshot's, gone by itself INACTIVE_S after the store stops pulling; the snapshot's own consumers use
the filtered form `...CREATE.CATALOG_<tenant>.<name>.catalog.<tenant>.snapshot[.*]`) and `$JS.API.CONSUMER.MSG.NEXT.CATALOG_<tenant>.<name>`
(the pulls), plus receiving on the store's own inbox. Nothing is acknowledged, nothing is published.

An idle store keeps one long pull open (actors.catalog.pull: EXPIRES_S, with the server's idle heartbeats): a
price change arrives the moment the hub publishes it, the store renews its pull twice a minute rather than every
second, and the open pull keeps its consumer alive (the server drops a pull consumer only when no request is
waiting). A pull that goes silent (no heartbeat: its server lost it) is dropped like a lost connection and
reopened after the last applied sequence.

A stream rebuilt on the hub (its creation time changed, or its last sequence is behind what the store
applied) means the store's sequence numbers mean nothing any more: a full resync, every table emptied
and refilled from the start in one transaction, so the tills sell from the old catalog until the new one
is whole and then from the new one (the swap is that transaction's commit; a new file renamed over the
old would pull it from under the tills' open connections, which SQLite cannot survive).

A bad message (not msgpack, a field out of bounds, an item on another SKU's subject) is logged with its
reason and skipped; a message lost in transit (a gap in the consumer's sequence) restarts the consumer
after the last applied sequence. NATS away: said once, retried with backoff; the tills sell on.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge

from actors.catalog.decoding import decode_one
from actors.catalog.local import CatalogWriter, ItemRow, catalog_path
from actors.catalog.pull import Delivered, Puller
from actors.catalog.snapshot import READ_TIMEOUT_S, read_snapshot, snapshot_rows
from actors.storage.db import is_busy
from edge_runtime import Actor, AsyncioSeam, Backoff
from novapos.adapters.nats import NatsLink
from novapos.wire.catalog import Other, VersionMarker, catalog_stream, following_subjects

log = logging.getLogger(__name__)

APPLIED = Gauge("novapos_edge_catalog_version", "The catalog version the store's tills sell from")
READ = Counter("novapos_edge_catalog_messages_read_total", "Catalog messages read from the hub's stream")
SKIPPED = Counter("novapos_edge_catalog_messages_skipped_total", "Catalog messages refused as malformed")
SNAPSHOT_READ = Counter("novapos_edge_catalog_snapshot_messages_read_total",
                        "Catalog snapshot messages (head and chunks) read for a first load or a resync")
RESYNCS = Counter("novapos_edge_catalog_resyncs_total", "Full catalog resyncs after the hub rebuilt its stream")

RETRY = Backoff(initial=0.5, maximum=5.0)
INACTIVE_S = 60.0  # the server drops a consumer with no pull open nor asked for this long
PROGRESS_EVERY = 20_000  # messages between progress lines of a long sync


@dataclass
class Reading:
    """The consumer being read and where this reading stands."""
    puller: Puller
    stream_id: str
    consumer_seq: int = 0
    """The last consumer sequence received: each message must be the next one, or one was lost."""
    read: int = 0


async def stream_identity(link: NatsLink, tenant: str) -> tuple[str, int]:
    """Connect if need be; the stream's identity (its name and creation time) and its last sequence."""
    await link.connect()
    stream = catalog_stream(tenant)
    info = await link.js.stream_info(stream)
    return f"{stream}@{info.created.isoformat() if info.created else '?'}", info.state.last_seq or 0


async def open_consumer(link: NatsLink, tenant: str, start_seq: int, batch: int) -> Puller:
    """An ephemeral consumer of the catalog's subjects but the snapshot's, from `start_seq` on, and its reader."""
    stream = catalog_stream(tenant)
    consumer = f"edge-{uuid.uuid4().hex}"
    await link.js.add_consumer(stream, ConsumerConfig(
        name=consumer, filter_subjects=following_subjects(tenant), deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq, ack_policy=AckPolicy.NONE, inactive_threshold=INACTIVE_S,
        mem_storage=True, num_replicas=1))
    puller = Puller(link.client, stream, consumer, batch)  # long pulls, with heartbeats
    await puller.open()
    return puller


class CatalogSyncActor(Actor):
    """Keeps `catalog.sqlite3` in the state folder up to date with the tenant's catalog stream. `fetch_wait`: how
    long one take waits for messages before the actor serves its mailbox again (not the pull's expiry)."""

    def __init__(self, seam: AsyncioSeam, link: NatsLink, state_dir: Path, tenant: str,
                 batch: int = 4096, fetch_wait: float = 1.0) -> None:
        super().__init__()
        self._seam = seam
        self._link = link
        self._path = catalog_path(state_dir)
        self._tenant = tenant
        self._batch = batch
        self._wait = fetch_wait
        self._writer: CatalogWriter | None = None
        self._reading: Reading | None = None
        self._items: list[ItemRow] = []  # received after the last marker, staged at the next
        self._others: list[Other] = []
        self._failures = 0
        self._since = time.monotonic()

    def started(self) -> None:
        self._writer = CatalogWriter(self._path)
        meta = self._writer.meta()
        APPLIED.set(meta.catalog_version)
        log.info("catalog sync: the tills sell from catalog version %d; following %s after sequence %d",
                 meta.catalog_version, catalog_stream(self._tenant), meta.stream_seq)
        self.send_after(0.0, "pump")

    def stopping(self) -> None:
        self._drop_reading()
        if self._writer is not None:
            self._writer.close()

    def status(self) -> dict[str, Any]:
        """For /healthz: the version the tills sell from and whether it follows the hub."""
        assert self._writer is not None
        meta = self._writer.meta()
        return {"catalog_version": meta.catalog_version, "catalog_sync": "following" if self._reading else "offline",
                "stream_seq": meta.stream_seq}

    def pump(self) -> None:
        """One batch: open the consumer if need be, fetch, apply; then the next batch at once, or after a
        backoff when NATS or the stream is away."""
        assert self._writer is not None
        try:
            if self._reading is None:
                self._open()
            assert self._reading is not None
            messages: list[Delivered] = self._seam.run_blocking(self._reading.puller.take, self._wait,
                                                                timeout=self._wait + 5.0)
            self._take(messages)
        except (ConnectionError, TimeoutError, OSError, nats.errors.Error) as exc:
            self._lost(str(exc) or type(exc).__name__)
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            self._lost(f"{self._path} is locked by another program ({exc})")
            return
        if self._failures:
            log.info("catalog sync: reading %s again after %.0f s", catalog_stream(self._tenant),
                     time.monotonic() - self._since)
            self._failures = 0
        self.send_after(0.0, "pump")

    def _open(self) -> None:
        """Open a consumer after the last applied sequence; for a new store or a rebuilt stream, first load
        the hub's snapshot and continue after it, or read everything from the start when there is none."""
        assert self._writer is not None
        meta = self._writer.meta()
        stream_id, last = self._seam.run_blocking(stream_identity, self._link, self._tenant, timeout=10.0)
        resync = bool(meta.stream_id) and (meta.stream_id != stream_id or last < meta.stream_seq)
        start = meta.stream_seq + 1
        if resync:
            RESYNCS.inc()
            log.warning("catalog sync: %s was rebuilt on the hub (it was %s up to sequence %d, now %s): a full "
                        "resync; the tills sell from version %d until it is whole", catalog_stream(self._tenant),
                        meta.stream_id, meta.stream_seq, stream_id, meta.catalog_version)
        elif not meta.stream_id:
            log.info("catalog sync: first sync of %s into %s", catalog_stream(self._tenant), self._path)
        if resync or not meta.stream_id:
            start = self._load_snapshot(stream_id, last, resync)
        puller = self._seam.run_blocking(open_consumer, self._link, self._tenant, start, self._batch, timeout=10.0)
        self._reading = Reading(puller, stream_id)

    def _load_snapshot(self, stream_id: str, last: int, resync: bool) -> int:
        """Apply the hub's snapshot as one version in one transaction (emptying every table first on a
        resync); the stream sequence to continue from: the one after the snapshot's, or 1 (every item)
        when there is no snapshot or it is not whole."""
        assert self._writer is not None
        found = self._seam.run_blocking(read_snapshot, self._link, self._tenant, last,
                                        timeout=READ_TIMEOUT_S + 10.0)
        loaded = found if isinstance(found, str) else snapshot_rows(*found)
        if isinstance(found, tuple):
            READ.inc(1 + len(found[1]))
            SNAPSHOT_READ.inc(1 + len(found[1]))
        if isinstance(loaded, str):
            log.info("catalog sync: no snapshot of %s to start from (%s): reading every item from the start",
                     catalog_stream(self._tenant), loaded)
            if resync:
                self._writer.clear()
            return 1
        head, rows, others, refused = loaded
        for reason in refused:
            SKIPPED.inc()
            log.warning("catalog sync: skipped an item of snapshot %s: %s; the hub's next change of it replaces it",
                        head.snapshot, reason)
        if resync:
            self._writer.clear()
        self._writer.stage(rows, others)
        self._writer.commit(VersionMarker(head.version, 0), head.stream_seq, stream_id)
        APPLIED.set(head.version)
        log.info("catalog sync: version %d applied from snapshot %s (%d items in %d chunks, stream sequence %d); "
                 "following the stream after it", head.version, head.snapshot, len(rows), head.chunks,
                 head.stream_seq)
        return head.stream_seq + 1

    def _take(self, messages: list[Delivered]) -> None:
        """Check each message is the consumer's next one, decode it and stage it; at each version marker,
        commit what was staged with it."""
        assert self._writer is not None and self._reading is not None
        reading = self._reading
        READ.inc(len(messages))
        items = self._items
        for subject, data, stream_seq, consumer_seq, pending in messages:
            if consumer_seq != reading.consumer_seq + 1:
                raise ConnectionError(f"a catalog message was lost in transit (consumer sequence "
                                      f"{consumer_seq} after {reading.consumer_seq})")
            reading.consumer_seq = consumer_seq
            reading.read += 1
            message = decode_one(subject, data)
            if isinstance(message, tuple):
                items.append(message)
            elif isinstance(message, VersionMarker):
                self._writer.stage(items, self._others)
                items, self._others = [], []
                self._writer.commit(message, stream_seq, reading.stream_id)
                APPLIED.set(message.version)
                log.info("catalog sync: version %d applied (stream sequence %d, %d messages read)",
                         message.version, stream_seq, reading.read)
            elif message is None:  # a snapshot's message: read apart, by _load_snapshot
                pass
            elif isinstance(message, str):
                SKIPPED.inc()
                log.warning("catalog sync: skipped the message at stream sequence %d on %s: %s; the hub's next "
                            "change of that subject replaces it", stream_seq, subject[:200], message)
            else:
                self._others.append(message)
            if reading.read % PROGRESS_EVERY == 0:
                log.info("catalog sync: %d messages read from %s, %d more to come (stream sequence %d)",
                         reading.read, catalog_stream(self._tenant), pending, stream_seq)
        if len(items) >= self._batch:  # staged now, committed at the marker
            self._writer.stage(items, self._others)
            items, self._others = [], []
        self._items = items

    def _lost(self, why: str) -> None:
        """NATS, the stream or the consumer is away (or the file is locked): drop what was half-received
        and try again later."""
        assert self._writer is not None
        self._drop_reading()
        self._writer.rollback()
        self._items, self._others = [], []
        if not self._failures:
            self._since = time.monotonic()
            log.warning("catalog sync: cannot read %s (%s); the tills sell from catalog version %d meanwhile; "
                        "retrying with backoff", catalog_stream(self._tenant), why, self._writer.meta().catalog_version)
        self._failures += 1
        self.send_after(RETRY.delay(self._failures), "pump")

    def _drop_reading(self) -> None:
        reading, self._reading = self._reading, None
        if reading is not None:
            try:
                self._seam.run_blocking(reading.puller.close, timeout=2.0)
            except Exception as exc:  # the seam is closing with the process
                log.debug("dropping the catalog consumer: %s", exc)
