"""Domains' request/reply subjects are served on real NATS: each request answered once by one of the hub
processes (one queue group), with the responder's answer, and a responder's failure answered with an error
reply while the hub keeps serving."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import nats
import pytest
import trio

from edge_runtime import AsyncioSeam
from hub import app
from hub.app import run_hub
from hub.db import close_pool, create_pool
from hub.domains import Domain, domains
from hub.responders import ERROR_CODE_HEADER, ERROR_HEADER, run_responders
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import wait_until

calls: list[bytes] = []


async def echo_sum(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
    assert subject == "novapos.test.sum"
    calls.append(data)
    return str(await pool.fetchval("SELECT $1::int + 1", int(data))).encode()


async def broken(_pool: asyncpg.Pool, _subject: str, _data: bytes) -> bytes:
    raise KeyError("tenders")


TEST_DOMAIN = Domain("test-responders", responders={"novapos.test.sum": echo_sum, "novapos.test.broken": broken})


async def _requests(nats_server: EmbeddedNats) -> list[tuple[bytes, dict[str, str]]]:
    async def run() -> list[tuple[bytes, dict[str, str]]]:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        try:
            answers = []
            for subject, data in [("novapos.test.broken", b"1"), *[("novapos.test.sum", str(n).encode())
                                                                     for n in range(20)]]:
                reply = await client.request(subject, data, timeout=5)
                answers.append((reply.data, dict(reply.headers or {})))
            return answers
        finally:
            await client.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def _answering(caplog: pytest.LogCaptureFixture, hubs: int) -> bool:
    return sum("answering 2 request subject(s)" in r.getMessage() for r in caplog.records) >= hubs


async def test_two_hubs_answer_each_request_once_and_a_failing_responder_gets_an_error_reply(
        nats_server: EmbeddedNats, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hub.responders")
    calls.clear()
    with AsyncioSeam() as seam:
        links = [nats_server.hub_link(f"hub-{n}") for n in (1, 2)]
        for link in links:
            await seam.run(link.connect)
        pool = await seam.run(create_pool, database_url)
        try:
            async with trio.open_nursery() as nursery:
                for link in links:
                    nursery.start_soon(run_responders, seam, link, pool, [TEST_DOMAIN])
                await wait_until(lambda: _answering(caplog, len(links)))
                [(error_body, error_headers), *sums] = await _requests(nats_server)
                assert error_body == b"" and error_headers[ERROR_CODE_HEADER] == "500"
                assert "novapos.test.broken" in error_headers[ERROR_HEADER]
                assert [body for body, _ in sums] == [str(n + 1).encode() for n in range(20)]
                assert len(calls) == 20  # one queue group: never answered by both hubs
                nursery.cancel_scope.cancel()
        finally:
            for link in links:
                await seam.run(link.close)
            await seam.run(close_pool, pool)


async def test_the_hub_serves_the_responders_of_its_domains(
        hub_config: HubConfig, nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "domains", lambda: (*domains(), TEST_DOMAIN))  # a domain of the test's own
    calls.clear()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)

        async def answered() -> list[tuple[bytes, dict[str, str]]] | None:
            try:
                return await _requests(nats_server)
            except nats.errors.NoRespondersError:  # the hub's task has not subscribed yet
                return None
        [(_, error_headers), *sums] = await wait_until(answered)
        assert error_headers[ERROR_CODE_HEADER] == "500"
        assert [body for body, _ in sums] == [str(n + 1).encode() for n in range(20)]
        nursery.cancel_scope.cancel()
