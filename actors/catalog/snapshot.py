"""A store's first load (or a resync) from the hub's catalog snapshot (novapos.wire.catalog): the head, then
its chunks, a few dozen large messages instead of one per item.

Read through two ephemeral consumers with no acks, each delivering the last message per subject: one on
the head's subject, one on the chunks' (`catalog.<tenant>.snapshot.*`); the JetStream calls are the ones
the per-item sync already makes (consumer create with a filter, pulls). Every chunk must carry the head's
snapshot id and every index below its count must be there; otherwise (the hub republishing it meanwhile,
a chunk lost) the caller falls back to reading every item, which is always correct, only slower.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors.catalog.decoding import snapshot_item
from actors.catalog.local import ItemRow
from actors.catalog.pull import Puller
from novapos.adapters.nats import NatsLink
from novapos.validators import Invalid
from novapos.wire.catalog import (
    Other,
    SnapshotHead,
    catalog_stream,
    decode_chunk,
    decode_head,
    snapshot_subject,
)

READ_TIMEOUT_S = 30.0  # a snapshot of 100,000 items is about 13 MB: a second or two on a store's link
CHUNK_BATCH = 64

Loaded = tuple[SnapshotHead, list[ItemRow], list[Other], list[str]]
"""A usable snapshot: its head, its item rows, tax classes, settings and promotions, and the reasons items were
refused."""


async def last_per_subject(link: NatsLink, tenant: str, subjects: str, batch: int) -> list[bytes]:
    """(asyncio side) The last message of each subject matching `subjects` on the tenant's stream."""
    stream = catalog_stream(tenant)
    name = f"edge-snapshot-{uuid.uuid4().hex}"
    info = await link.js.add_consumer(stream, ConsumerConfig(
        name=name, filter_subject=subjects, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=AckPolicy.NONE, inactive_threshold=5.0, mem_storage=True, num_replicas=1))
    count = info.num_pending or 0
    if not count:
        return []
    puller = Puller(link.client, stream, name, min(batch, count), 1.0, None)  # seconds, then closed
    await puller.open()
    try:
        found: list[bytes] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while len(found) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the catalog snapshot ({count} messages) did not arrive in {READ_TIMEOUT_S:.0f} s")
            found += [data for _subject, data, *_sequences in await puller.take(1.0)]
        return found
    finally:
        await puller.close()


async def read_snapshot(link: NatsLink, tenant: str, last_seq: int) -> tuple[SnapshotHead, list[bytes]] | str:
    """(asyncio side) The stream's snapshot head and the bytes of its chunks, or why there is none to use."""
    await link.connect()
    heads = await last_per_subject(link, tenant, snapshot_subject(tenant), 1)
    if not heads:
        return "the stream holds no snapshot"
    try:
        head = decode_head(heads[0])
    except Invalid as exc:
        return f"its snapshot head is unreadable: {exc}"
    if head.stream_seq > last_seq:
        return f"its snapshot reflects sequence {head.stream_seq}, past the stream's last ({last_seq})"
    return head, await last_per_subject(link, tenant, f"{snapshot_subject(tenant)}.*", CHUNK_BATCH)


def snapshot_rows(head: SnapshotHead, chunks: list[bytes]) -> Loaded | str:
    """The snapshot's rows, each item checked as an item message is; or why the snapshot is not whole (a
    chunk of another snapshot among the head's count, one missing, one unreadable). Each chunk's bodies
    become rows before the next is unpacked: 100,000 unpacked maps held at once would make the garbage
    collector walk them again and again (measured: 2.6 s of a 4 s load)."""
    with without_cycle_collection():
        return _rows(head, chunks)


@contextmanager
def without_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused while the chunks are unpacked and checked: unpacking 2,000 maps
    at a time triggers a collection every few hundred allocations, and with the rows already made it walked
    them again and again (1.0 s of 2.6 s for 100,000 items, measured with the rows made chunk by chunk).
    Nothing made here forms a cycle (maps, lists, strings, tuples freed by their reference counts), and the
    pause lasts the load (a second or two), so nothing accumulates."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _rows(head: SnapshotHead, chunks: list[bytes]) -> Loaded | str:
    found: dict[int, tuple[list[ItemRow], tuple[Other, ...]]] = {}
    refused: list[str] = []
    for data in chunks:
        try:
            chunk = decode_chunk(data)
        except Invalid as exc:
            return f"a chunk is unreadable: {exc}"
        if chunk.index >= head.chunks:
            continue  # left over from an earlier, larger snapshot
        if chunk.snapshot != head.snapshot:
            return (f"chunk {chunk.index} belongs to snapshot {chunk.snapshot}, not {head.snapshot} (the hub is "
                    "publishing another)")
        rows: list[ItemRow] = []
        for body in chunk.items:
            row = snapshot_item(body)
            if isinstance(row, str):
                refused.append(row)
            else:
                rows.append(row)
        found[chunk.index] = rows, chunk.others
        del chunk
    missing = [index for index in range(head.chunks) if index not in found]
    if missing:
        return f"{len(missing)} of its {head.chunks} chunks are missing (the first: {missing[0]})"
    return (head, [row for index in range(head.chunks) for row in found[index][0]],
            [other for index in range(head.chunks) for other in found[index][1]], refused)
