"""A store file locked by another program is a state the store rides out, never a crash; and one
state folder serves one edge.

A backup or a `sqlite3` shell holding edge.sqlite3 locked for longer than the store waits for a
lock: the edge still starts, answers complete with a 503 that says to send again and sells
nothing, keeps /healthz answering and restarts no actor; once the lock is gone the same complete
sells exactly once and the forwarder drains. All with the real timeouts (nothing patched).

A second edge on the same state folder (the same config started twice) stops before it starts
anything, with exit code 2 and one sentence: a store has one forwarder and one print spooler.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from actors.storage import db as local_db
from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from novapos.config import StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.demo.run import write_store_config
from tests.conftest import ensure_stream, tls_table, wait_until
from tests.pos import COFFEE, log_in_at

LOCK_S = 12.0  # longer than any wait of the store's for a lock (db.LOCK_WAIT_S)
START_WITHIN_S = 10.0  # an edge starts in about a second; a start stuck on the lock never does


async def test_a_locked_store_file_is_ridden_out_and_the_same_complete_sells_once_after(
        store_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    path = store_config.state_dir / local_db.FILE_NAME
    local_db.connect(path).close()  # the file exists, as on any store box that has run before
    await ensure_stream(nats_server)
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another program holds the file, from before the edge starts
    released_at = trio.current_time() + LOCK_S
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(START_WITHIN_S):  # no actor's started() fails, nor waits out, the lock
                edge = await nursery.start(run_edge, store_config)
            url = f"{edge.url}/api/tills/till-1"
            await log_in_at(http, f"{url}", "alice")
            assert (await http.post(f"{url}/lines", json={"barcode": COFFEE})).status_code == 200
            paid = (await http.post(f"{url}/tenders", json={"amount_minor": 500})).json()

            response = await http.post(f"{url}/complete", json={"cart": paid["cart"]})
            assert response.status_code == 503, response.text
            assert "busy" in response.json()["error"] and "send complete again" in response.json()["error"]
            kept = (await http.get(url)).json()
            assert (kept["cart"], kept["lines"], kept["tendered"]) == (paid["cart"], paid["lines"], paid["tendered"])
            assert kept["stage"] != "saving"  # nothing is in doubt: the cart may still change
            health = await http.get(f"{edge.url}/healthz")
            assert health.status_code == 200 and health.json()["outbox_depth"] == 0, health.text
            # the outbox's reads answer under the lock; its writes answer "busy"
            assert await edge.tree.ask("outbox", "pending", 10) == []
            assert (await edge.tree.ask("outbox", "backlog")).depth == 0
            assert await edge.tree.ask("outbox", "committed", paid["cart"]) is None
            refused = await edge.tree.ask("outbox", "remove", ["no-such-event"])
            assert refused is not None and refused.reason == "busy"
            assert edge.tree.restarts == 0 and edge.tree.healthy()

            await trio.sleep_until(released_at)  # the lock lasts what it lasts: not a synchronisation
            assert edge.tree.restarts == 0 and edge.tree.healthy()
            lock.execute("COMMIT")

            receipt = await http.post(f"{url}/complete", json={"cart": paid["cart"]})
            assert receipt.status_code == 200, receipt.text
            assert receipt.json()["seq"] == 1 and receipt.json()["cart"] == paid["cart"]
            again = await http.post(f"{url}/complete", json={"cart": paid["cart"]})
            assert again.json()["sale"] == receipt.json()["sale"]

            async def drained() -> bool:
                return bool(await edge.tree.ask("outbox", "depth") == 0)
            await wait_until(drained)
            sold = sqlite3.connect(path).execute("SELECT count(*) FROM completed").fetchone()[0]
            assert sold == 1
            assert edge.tree.restarts == 0
            nursery.cancel_scope.cancel()
    finally:
        if lock.in_transaction:
            lock.execute("COMMIT")
        lock.close()


def _edge_process(config_file: Path, nats_server: EmbeddedNats, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NOVAPOS_NATS_URL": nats_server.url,
           "NOVAPOS_NATS_CREDENTIALS": str(nats_server.store_credentials("demo", "store-001"))}
    return subprocess.Popen([sys.executable, "-m", "novapos.cli", "edge", "--config", str(config_file)],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))


async def test_a_second_edge_on_the_same_state_folder_exits_2_before_starting_anything(
        tmp_path: Path, nats_server: EmbeddedNats, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    port = free_port()
    config_file = tmp_path / "store.toml"
    write_store_config(config_file, tmp_path, port, {"scan_interval": 0.1, "rules": [
        {"name": "receipt-printer", "driver": "escpos-network", "host": "127.0.0.1", "port": printer.port}]},
        tls=tls_table(nats_server.tls_settings()))
    state_dir = tmp_path / "store-001"
    first = _edge_process(config_file, nats_server, tmp_path / "first.log")
    try:
        async def serving() -> bool:
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            try:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx.TransportError:
                return False
        await wait_until(serving, timeout=30)

        second = _edge_process(config_file, nats_server, tmp_path / "second.log")  # the very same config
        status = await trio.to_thread.run_sync(lambda: second.wait(timeout=30))
        said = (tmp_path / "second.log").read_text()
        assert status == 2, said
        assert said.strip().splitlines() == [
            f"novapos edge: another novapos edge (pid {first.pid}) is running with the state folder {state_dir}: "
            "stop it first"], said  # one sentence: it started nothing (no NATS, no printer, no tills) first
        assert first.poll() is None  # the first edge goes on selling
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        first.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(lambda: first.wait(timeout=30))
    assert first.returncode == 0
