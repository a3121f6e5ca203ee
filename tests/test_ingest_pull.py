"""The hub's own batch fetch behaves as nats-py's: a partial batch at once, a full one capped at its size,
nothing when nothing is there, and what an earlier lingering request left in the queue taken first, its
status messages ignored (they ended that request, not this one)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats

from hub.ingest.pull import fetch_batch
from novapos.adapters.nats import fetch
from novapos.demo.embedded_nats import EmbeddedNats
from tests.events import SUBJECT, sale_event

STEPS = [  # (published first, fetched by, how many it must get)
    (0, fetch, 0), (5, fetch_batch, 5),                          # after nats-py's lingering fetch ended
    (0, fetch_batch, 0), (40, fetch_batch, 16), (0, fetch_batch, 16), (0, fetch_batch, 8),
    (3, fetch, 3), (4, fetch_batch, 4), (0, fetch_batch, 0),
]


def test_batches_come_as_from_nats_py_and_a_left_over_status_ends_nothing(tmp_path: Path) -> None:
    async def run() -> list[tuple[int, bool]]:
        seen = []
        with EmbeddedNats.authorized(tmp_path / "nats") as server:
            link = server.hub_link("test")
            await link.connect()
            await link.ensure_event_stream()
            subscription = await link.ingest_subscription(16)
            client = await nats.connect(server.url, **server.hub_options())
            for published, fetcher, _ in STEPS:
                for _ in range(published):
                    await client.jetstream().publish(SUBJECT, sale_event().encode())
                started = time.monotonic()
                messages = await fetcher(subscription, 16, 0.3)
                seen.append((len(messages), time.monotonic() - started < 0.25))
                for message in messages:
                    await message.ack()
            await client.close()
            await link.close()
        return seen

    # An empty fetch may end early on a status a late reply left behind (nats-py's fetch alike): only an
    # idle loop's turn, so its time is not asserted; a batch with messages comes at once, not at the timeout.
    assert [(count, prompt or not count) for count, prompt in asyncio.run(run())] == [
        (count, True) for _, _, count in STEPS]
