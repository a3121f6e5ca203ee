"""The hub as systemd runs it, a real process: started while NATS or PostgreSQL is down it says what it
waits for and answers not-ready; told to stop (SIGTERM) it exits 0 whatever state its connections are in,
and gives a batch cut off by the stop back to JetStream at once instead of after the 30 s ack wait."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from novapos.adapters.nats import INGEST_CONSUMER, NatsLink
from novapos.demo.embedded_nats import EmbeddedNats, nats_server_binary
from novapos.demo.processes import ManagedProcess, free_port, wait_for_port
from novapos.tls import TlsSettings
from novapos.wire.envelope import decode
from novapos.wire.subjects import EVENTS_FILTER, EVENTS_STREAM
from tests.conftest import tls_toml
from tests.events import SUBJECT, sale_event
from tests.test_hub_retries import TableLock

NO_TLS = TlsSettings()


class HubProcess:
    """`novapos hub` in a child process, its log lines collected as they come."""

    def __init__(self, tmp_path: Path, nats_url: str, database_url: str, credentials: Path | None = None,
                 settings: str = "", tls: TlsSettings = NO_TLS) -> None:
        """`settings`: more of hub.toml, such as an [ingest] table; `tls`: its [tls] (a TLS NATS's CA)."""
        self.port = free_port()
        config = tmp_path / "hub.toml"
        config.write_text(f'tenants = ["demo"]\n[http]\nport = {self.port}\n'
                          f'[nats]\nurl = "{nats_url}"\ncredentials = "{credentials or ""}"\n'
                          f'[database]\nurl = "{database_url}"\n{tls_toml(tls)}{settings}')
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOVAPOS_")}
        self.process = subprocess.Popen([sys.executable, "-m", "novapos.cli", "hub", "--config", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def health(self) -> tuple[int, dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return None

    def stop(self, timeout: float = 15.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout)
        self._reader.join(5)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)
    return value


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    yield started
    for hub in started:
        hub.kill()


def test_a_hub_started_while_nats_is_down_says_so_answers_not_ready_and_starts_once_it_is_up(
        tmp_path: Path, database_url: str, hubs: list[HubProcess]) -> None:
    nats_port = free_port()
    hub = HubProcess(tmp_path, f"nats://127.0.0.1:{nats_port}", database_url)
    hubs.append(hub)
    until(lambda: "waiting for NATS" in hub.log, what="a warning naming NATS")
    warning = next(line for line in hub.lines if "waiting for NATS" in line)
    assert "WARNING" in warning and f"127.0.0.1:{nats_port}" in warning and "retrying in" in warning
    status, body = until(hub.health, what="the console answering")
    assert status == 503 and "NATS" in body["waiting_for"]

    server = EmbeddedNats(tmp_path / "nats", port=nats_port, tls=False).start()  # the hub was given nats://
    try:
        until(lambda: (hub.health() or (0, {}))[0] == 200, timeout=30, what="ready once NATS is up")
        assert hub.stop() == 0, hub.log
    finally:
        server.stop()
    assert "Traceback" not in hub.log


def test_a_hub_started_against_nats_without_jetstream_waits_for_it_and_starts_once_it_is_enabled(
        tmp_path: Path, database_url: str, hubs: list[HubProcess]) -> None:
    nats_port = free_port()
    plain = ManagedProcess("nats-server without JetStream",
                           [nats_server_binary(), "--addr", "127.0.0.1", "--port", str(nats_port)],
                           tmp_path / "plain-nats.log")
    wait_for_port("127.0.0.1", nats_port, 20, plain.spawn())
    try:
        hub = HubProcess(tmp_path, f"nats://127.0.0.1:{nats_port}", database_url)
        hubs.append(hub)
        until(lambda: "waiting for NATS" in hub.log and "JetStream" in hub.log, what="a warning naming JetStream")
        warning = next(line for line in hub.lines if "waiting for NATS" in line)
        assert "WARNING" in warning and "(-js)" in warning, warning
        status, body = until(hub.health, what="the console answering")
        assert status == 503 and "NATS" in body["waiting_for"]
        assert hub.process.poll() is None, hub.log
    finally:
        plain.stop()
    server = EmbeddedNats(tmp_path / "nats", port=nats_port, tls=False).start()  # the hub was given nats://
    try:
        until(lambda: (hub.health() or (0, {}))[0] == 200, timeout=30, what="ready once JetStream is up")
        assert hub.stop() == 0, hub.log
    finally:
        server.stop()
    assert "Traceback" not in hub.log


def test_a_hub_started_while_postgresql_is_down_says_so_and_stops_cleanly(
        tmp_path: Path, nats_server: EmbeddedNats, hubs: list[HubProcess]) -> None:
    database = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    hub = HubProcess(tmp_path, nats_server.url, database, nats_server.hub_credentials,
                     tls=nats_server.tls_settings())
    hubs.append(hub)
    until(lambda: "waiting for PostgreSQL" in hub.log, what="a warning naming PostgreSQL")
    status, body = until(hub.health, what="the console answering")
    assert status == 503 and "PostgreSQL" in body["waiting_for"]
    assert hub.stop() == 0, hub.log
    assert "Traceback" not in hub.log


def test_sigterm_with_the_nats_connection_lost_exits_0(
        tmp_path: Path, nats_server: EmbeddedNats, database_url: str, hubs: list[HubProcess]) -> None:
    hub = HubProcess(tmp_path, nats_server.url, database_url, nats_server.hub_credentials,
                     tls=nats_server.tls_settings())
    hubs.append(hub)
    until(lambda: (hub.health() or (0, {}))[0] == 200, what="ready")
    nats_server.stop()
    until(lambda: (hub.health() or (0, {}))[1].get("nats") == "reconnecting", what="NATS seen lost")
    assert hub.stop() == 0, hub.log
    assert "Traceback" not in hub.log and "stopped" in hub.log


class _LostConnection:
    """A nats-py client whose connection the network just reset: flushing and closing both raise."""
    is_closed = False

    async def flush(self, timeout: float) -> None:
        raise ConnectionResetError("Connection lost")

    async def close(self) -> None:
        raise ConnectionResetError("Connection lost")


def test_closing_a_lost_nats_connection_does_not_raise() -> None:
    link = NatsLink("nats://127.0.0.1:4222", "hub")
    link._client = _LostConnection()  # type: ignore[assignment]
    asyncio.run(link.close())
    assert not link.connected


def _consumer(nats_server: EmbeddedNats, action: Callable[[Any], Any]) -> Any:
    async def run() -> Any:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        try:
            return await action(client.jetstream())
        finally:
            await client.close()
    return asyncio.run(run())


def _redelivered_within(nats_server: EmbeddedNats, timeout: float) -> int:
    """Pull from the hub's durable consumer as the next hub would; how many times the message was delivered."""
    async def take(js: Any) -> int:
        subscription = await js.pull_subscribe(EVENTS_FILTER, durable=INGEST_CONSUMER, stream=EVENTS_STREAM)
        [message] = await subscription.fetch(1, timeout=timeout)
        await message.ack()
        return int(message.metadata.num_delivered)
    return int(_consumer(nats_server, take))


def test_a_batch_cut_off_by_the_stop_is_given_back_at_once(
        tmp_path: Path, nats_server: EmbeddedNats, database_url: str, hubs: list[HubProcess]) -> None:
    hub = HubProcess(tmp_path, nats_server.url, database_url, nats_server.hub_credentials,
                     tls=nats_server.tls_settings())
    hubs.append(hub)
    until(lambda: (hub.health() or (0, {}))[0] == 200, what="ready")
    pending = lambda: _consumer(nats_server, lambda js: js.consumer_info(EVENTS_STREAM, INGEST_CONSUMER))  # noqa: E731
    lock = TableLock(database_url, "sales")  # the hub's batch waits on it, mid-transaction
    lock.take()
    try:
        _consumer(nats_server, lambda js: js.publish(SUBJECT, sale_event().encode()))
        until(lambda: pending().num_ack_pending == 1, what="the batch taken by the hub")
        assert hub.stop() == 0, hub.log
        # the next hub gets it at once, not after the consumer's 30 s ack wait
        assert _redelivered_within(nats_server, timeout=5) == 2
    finally:
        lock.release()


def test_the_batch_fetched_ahead_is_given_back_at_once_too_behind_the_one_cut_off(
        tmp_path: Path, nats_server: EmbeddedNats, database_url: str, hubs: list[HubProcess]) -> None:
    hub = HubProcess(tmp_path, nats_server.url, database_url, nats_server.hub_credentials,
                     tls=nats_server.tls_settings())
    hubs.append(hub)
    until(lambda: (hub.health() or (0, {}))[0] == 200, what="ready")
    pending = lambda: _consumer(nats_server, lambda js: js.consumer_info(EVENTS_STREAM, INGEST_CONSUMER))  # noqa: E731
    lock = TableLock(database_url, "sales")
    lock.take()
    try:
        _consumer(nats_server, lambda js: js.publish(SUBJECT, sale_event(seq=1).encode()))
        until(lambda: pending().num_ack_pending == 1, what="the batch being applied")
        _consumer(nats_server, lambda js: js.publish(SUBJECT, sale_event(seq=2).encode()))
        until(lambda: pending().num_ack_pending == 2, what="the next batch, fetched ahead")
        assert hub.stop() == 0, hub.log

        async def take(js: Any) -> list[tuple[int, int]]:
            subscription = await js.pull_subscribe(EVENTS_FILTER, durable=INGEST_CONSUMER, stream=EVENTS_STREAM)
            messages = await subscription.fetch(2, timeout=5)
            for message in messages:
                await message.ack()
            return [(decode(m.data).seq, int(m.metadata.num_delivered)) for m in messages]
        assert _consumer(nats_server, take) == [(1, 2), (2, 2)]  # at once, in order
    finally:
        lock.release()
