"""Events the hub cannot apply yet (a store upgraded before the hub, a tenant missing from hub.toml) are held:
nak'ed to come back later, counted and logged, never dead-lettered, while the rest of their batch lands."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import trio
from prometheus_client import REGISTRY

from hub.app import run_hub
from hub.ingest import worker
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire import schemas
from novapos.wire.subjects import event_subject
from tests.conftest import ensure_stream, query, wait_until
from tests.events import SUBJECT, publish, sale_event


def held() -> float:
    return REGISTRY.get_sample_value("novapos_hub_events_total", {"result": "held"}) or 0.0


async def _counts(database_url: str) -> tuple[int, int]:
    rows = await query(database_url, "SELECT (SELECT count(*) FROM sales) AS sales, (SELECT count(*) FROM dead_letters) AS dead")
    return rows[0]["sales"], rows[0]["dead"]


async def test_an_unknown_version_and_an_unserved_tenant_are_held_not_dead_lettered(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(worker, "HELD_DELAY_S", 0.5)
    newer = replace(sale_event(seq=2), v=99)  # a version this hub does not know yet
    other_tenant = replace(sale_event(seq=1), tenant="acme")
    before = held()
    await ensure_stream(nats_server)
    await publish(nats_server, [(SUBJECT, sale_event(seq=1).encode(), None), (SUBJECT, newer.encode(), None),
                                (event_subject("acme", "store-001", "sale.completed"), other_tenant.encode(), None)])
    with caplog.at_level(logging.WARNING, logger="hub.ingest.worker"):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)

            async def both_held_twice() -> bool:  # held, offered again, held again: nak'ed, not acked
                return held() >= before + 4
            await wait_until(both_held_twice)
            assert await _counts(database_url) == (1, 0)
            assert any("version 99 is not a known event" in r.getMessage() for r in caplog.records)
            assert any("'acme' is not served by this hub" in r.getMessage() for r in caplog.records)

            # the hub is upgraded: the held sale lands from the stream, still not dead-lettered
            monkeypatch.setitem(schemas.SCHEMAS, ("sale.completed", 99), schemas.sale_completed_v1)
            await wait_until(lambda: _equal(_counts(database_url), (2, 0)))
            nursery.cancel_scope.cancel()


async def _equal(awaitable, expected: object) -> bool:  # type: ignore[no-untyped-def]
    return await awaitable == expected
