"""A started hub that loses NATS does not go quiet and healthy: past a grace it logs one warning saying what
to check and /healthz answers 503 degraded; once NATS is back, an info line and 200 again."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio

from hub import nats_watch
from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import wait_until


async def test_a_hub_cut_off_from_nats_warns_once_answers_503_and_recovers(
        hub_config: HubConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(nats_watch, "NATS_GRACE_S", 1.0)
    with caplog.at_level(logging.INFO, logger="hub.nats_watch"):
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, hub_config)
            assert (await http.get(f"{hub.url}/healthz")).status_code == 200
            await trio.to_thread.run_sync(nats_server.stop)

            async def degraded() -> dict[str, str] | None:
                answer = await http.get(f"{hub.url}/healthz")
                return answer.json() if answer.status_code == 503 else None
            body = await wait_until(degraded)
            assert body["status"] == "degraded" and body["nats"] == "reconnecting" and body["since"]

            await trio.to_thread.run_sync(nats_server.start)

            async def healthy() -> bool:
                return (await http.get(f"{hub.url}/healthz")).status_code == 200
            await wait_until(healthy, timeout=30)
            nursery.cancel_scope.cancel()
    warnings = [r for r in caplog.records if r.name == "hub.nats_watch" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "check that nats-server runs" in warnings[0].getMessage()
    assert any(r.levelno == logging.INFO and "is back" in r.getMessage() for r in caplog.records)
