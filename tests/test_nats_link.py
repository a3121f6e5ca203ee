"""The edge's JetStream publishing: dedup by event id, but never across stores."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trio

from novapos.adapters.nats import NatsLink, Outgoing
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_STREAM, event_subject
from tests.events import sale_event


async def _publish_and_count(nats_server: EmbeddedNats, batches: list[list[Outgoing]]) -> tuple[list[list[str]], int]:
    async def run() -> tuple[list[list[str]], int]:
        link = nats_server.hub_link()  # the hub's rights: NATS itself would refuse a store the impostor's subject
        await link.connect()
        await link.ensure_event_stream()
        acked = [(await link.publish_batch(batch, timeout=2.0)).acked for batch in batches]
        stored = (await link.js.stream_info(EVENTS_STREAM)).state.messages
        await link.close()
        return acked, stored
    return await trio.to_thread.run_sync(asyncio.run, run())


async def test_a_resend_is_stored_once_but_another_store_cannot_claim_the_id(nats_server: EmbeddedNats) -> None:
    event = sale_event()
    own = Outgoing(str(event.id), event_subject("demo", "store-001", "sale.completed"), event.encode())
    impostor = Outgoing(str(event.id), event_subject("demo", "store-999", "sale.completed"), b"whatever")
    acked, stored = await _publish_and_count(nats_server, [[impostor], [own], [own]])
    assert acked == [[str(event.id)]] * 3
    assert stored == 2  # the impostor's and store-001's own; the resend was deduplicated


def _fake_nats_without_tls(url_scheme: str, tls: ssl.SSLContext | None, require_tls: bool = False) -> tuple[str, bytes]:
    """A TCP server answering as NATS would, but without tls_required in its INFO (what a man in the middle
    sends to strip TLS): what the link says (its error) and every byte it sent."""
    received = bytearray()

    async def run() -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b'INFO {"server_id":"fake","version":"2.10.0","proto":1,"max_payload":1048576,'
                         b'"auth_required":true,"nonce":"abc"}\r\n')
            await writer.drain()
            try:
                while chunk := await asyncio.wait_for(reader.read(4096), 1.0):
                    received.extend(chunk)
                    if b"PING" in received:
                        writer.write(b"PONG\r\n")
                        await writer.drain()
            except (TimeoutError, ConnectionError):
                pass
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = NatsLink(f"{url_scheme}://127.0.0.1:{port}", "stripped", tls=tls, require_tls=require_tls)
        try:
            await link.connect(timeout=1.0)
            outcome = "connected"
        except ConnectionError as exc:
            outcome = str(exc)
        await link.close()
        server.close()
        return outcome
    return asyncio.run(run()), bytes(received)


def test_a_server_that_does_not_start_tls_gets_no_connect(caplog: pytest.LogCaptureFixture) -> None:
    context = ssl.create_default_context()
    for scheme, tls, required in (("tls", context, False), ("nats", context, True), ("tls", None, False)):
        outcome, received = _fake_nats_without_tls(scheme, tls, required)
        assert b"CONNECT" not in received, (scheme, received)
        assert "refusing to send credentials in clear" in outcome, (scheme, outcome)
    assert "refusing to send credentials in clear" in caplog.text


def test_without_tls_required_a_plain_nats_url_connects_in_clear_as_configured() -> None:
    """nats:// and no ca_file (HTTPS on, a NATS on the box without TLS): what the operator configured."""
    for tls in (None, ssl.create_default_context()):
        outcome, received = _fake_nats_without_tls("nats", tls)
        assert outcome == "connected" and b"CONNECT" in received
