"""A store's first load (or a resync) from the hub's catalog snapshot (novapos.wire.catalog): the head, then
its chunks, a few dozen large messages instead of one per item.

Read through two ephemeral consumers with no acks, each delivering the last message per subject: one on
the head's subject, one on the chunks' (`catalog.<tenant>.snapshot.*`); the JetStream calls are the ones
the per-item sync already makes (consumer create with a filter, pulls). Every chunk must carry the head's
snapshot id and every index below its count must be there; otherwise (the hub republishing it meanwhile,
a chunk lost) the caller falls back to reading every item, which is always correct, only slower.
"""

from __future__ import annotations

import time
import uuid

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors.catalog.decoding import snapshot_item
from actors.catalog.local import ItemRow
from actors.catalog.pull import Puller
from novapos.adapters.nats import NatsLink
from novapos.validators import Invalid
from novapos.wire.catalog import (
    Settings,
    SnapshotChunk,
    SnapshotHead,
    TaxClass,
    catalog_stream,
    decode_chunk,
    decode_head,
    snapshot_subject,
)

READ_TIMEOUT_S = 30.0  # a snapshot of 100,000 items is about 13 MB: a second or two on a store's link
CHUNK_BATCH = 64

Loaded = tuple[SnapshotHead, list[ItemRow], list[TaxClass | Settings], list[str]]
"""A usable snapshot: its head, its item rows, tax classes and settings, and the reasons items were refused."""


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
    puller = Puller(link.client, stream, name, min(batch, count), 1.0)
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
    chunk of another snapshot among the head's count, one missing, one unreadable)."""
    found: dict[int, SnapshotChunk] = {}
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
        found[chunk.index] = chunk
    missing = [index for index in range(head.chunks) if index not in found]
    if missing:
        return f"{len(missing)} of its {head.chunks} chunks are missing (the first: {missing[0]})"
    rows: list[ItemRow] = []
    others: list[TaxClass | Settings] = []
    refused: list[str] = []
    for index in range(head.chunks):
        others += found[index].others
        for body in found[index].items:
            row = snapshot_item(body)
            if isinstance(row, str):
                refused.append(row)
            else:
                rows.append(row)
    return head, rows, others, refused
