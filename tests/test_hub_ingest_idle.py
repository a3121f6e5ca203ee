"""An idle stream is not a failure: a fetch that times out is an empty batch, never a warning."""

from __future__ import annotations

import asyncio
import logging

import pytest
import trio

from hub.app import run_hub
from novapos.adapters.nats import fetch
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.events import SUBJECT, publish, sale_event


class _TimingOut:
    """A pull subscription whose fetch times out as nats-py sometimes lets it: a bare asyncio TimeoutError."""

    async def fetch(self, batch: int, timeout: float) -> list[object]:
        raise TimeoutError()  # what asyncio.wait_for raises


def test_a_fetch_that_times_out_bare_is_an_empty_batch() -> None:
    assert asyncio.run(fetch(_TimingOut(), 10, 0.1)) == []  # type: ignore[arg-type]


async def test_an_idle_hub_logs_no_failure(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        first = sale_event(seq=1)
        await publish(nats_server, [(SUBJECT, first.encode(), None)])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", first.id))
        await trio.sleep(4)  # idle on purpose: eight empty fetches of 0.5 s
        nursery.cancel_scope.cancel()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("hub.")] == []
