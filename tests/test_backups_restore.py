"""A dead store box restored onto new hardware from its last backup: the store's numbering goes on without reusing a
number, and the sales the backup missed are known (the hub has them and the restore lists them).

The old box sells (one sale sent, one kept unsent while NATS is away), is backed up, sells more once NATS is back
(forwarded), and is killed with SIGKILL. `novapos edge restore` puts the backup on a new state folder; the new box
sells again. Then the hub's database is recovered to an earlier point while the hub runs, and `novapos hub replay`
gives back the sales it lost, once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import trio

from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.demo.run import write_store_config
from tests.catalog import seed_catalog
from tests.conftest import query, tls_table, tls_toml, wait_until
from tests.edges import printer_rule, running_edge, start_edge, store_box
from tests.pos import COFFEE, MILK, seed_staff, sell


def novapos(nats_server: EmbeddedNats, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOVAPOS_NATS_URL": nats_server.url,
           "NOVAPOS_NATS_CREDENTIALS": str(nats_server.store_credentials("demo", "store-001"))}
    return subprocess.run([sys.executable, "-m", "novapos.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


async def landed(database_url: str, count: int) -> list[str]:
    rows = await query(database_url, "SELECT event_id::text AS id FROM sales WHERE store = 'store-001' ORDER BY seq")
    return [row["id"] for row in rows] if len(rows) >= count else []


async def test_a_restored_box_goes_on_numbering_and_knows_what_its_backup_missed(
        tmp_path: Path, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    (tmp_path / "old").mkdir()
    old_box = store_box(tmp_path / "old", [printer_rule(printer.port)])
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        edge = await start_edge(old_box.config, nats_server, old_box.url, http)
        try:
            first = await sell(http, old_box.url, [(COFFEE, 1)])
            await wait_until(lambda: landed(database_url, 1), timeout=30)
            await trio.to_thread.run_sync(nats_server.stop)
            unsent = await sell(http, old_box.url, [(MILK, 1)])  # in the outbox when the backup is taken

            backup = await trio.to_thread.run_sync(novapos, nats_server, "edge", "--config", str(old_box.config),
                                                   "backup")
            assert backup.returncode == 0, backup.stderr
            backup_file = Path(backup.stdout.split(" (")[0])
            assert re.fullmatch(r"edge-\d{8}T\d{9}Z-seq000000000002\.sqlite3", backup_file.name)
            assert backup_file.parent == tmp_path / "old" / "store-001" / "backups"

            await trio.to_thread.run_sync(nats_server.start)
            after = [await sell(http, old_box.url, [(COFFEE, 2)]), await sell(http, old_box.url, [(MILK, 3)])]
            await wait_until(lambda: landed(database_url, 4), timeout=30)
        finally:
            edge.send_signal(signal.SIGKILL)  # the box dies: its disk is gone with it
            edge.wait()
        assert [sale["seq"] for sale in (first, unsent, *after)] == [1, 2, 3, 4]

        port = free_port()
        new_config = tmp_path / "new.toml"
        write_store_config(new_config, tmp_path / "new", port, {"scan_interval": 0.1,
                                                                "rules": [printer_rule(printer.port)]},
                           tls=tls_table(nats_server.tls_settings()))
        seed_catalog(tmp_path / "new" / "store-001")  # the catalog and staff come from the hub at first start
        seed_staff(tmp_path / "new" / "store-001")
        restore = await trio.to_thread.run_sync(novapos, nats_server, "edge", "--config", str(new_config),
                                                "restore", str(backup_file))
        assert restore.returncode == 0, restore.stderr
        assert "the next sale is #105" in restore.stdout
        report = json.loads((tmp_path / "new" / "store-001" / "restore-report.json").read_text())
        assert (report["backup_last_seq"], report["hub_last_seq"], report["next_seq"]) == (2, 4, 105)
        assert [(e["seq"], e["id"], e["type"]) for e in report["missed"]] == [
            (3, after[0]["sale"], "sale.completed"), (4, after[1]["sale"], "sale.completed")]
        assert (report["already_sent"], report["still_to_send"]) == (1, 0)  # #2 reached the hub after the backup

        url = f"http://127.0.0.1:{port}"
        edge = await start_edge(new_config, nats_server, url, http)
        try:
            http.cookies.clear()
            again = await sell(http, url, [(COFFEE, 1)])
            assert again["seq"] == 105
            ids = await wait_until(lambda: landed(database_url, 5), timeout=30)
            assert ids == [first["sale"], unsent["sale"], *(sale["sale"] for sale in after), again["sale"]]
            # a sale the backup missed is still found (at the hub) for a return at the new box
            found = await http.get(f"{url}/api/tills/till-1/returns/lookup", params={"order": after[0]["sale"]})
            assert found.status_code == 200, found.text
        finally:
            edge.send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(edge.wait) == 0
        nursery.cancel_scope.cancel()
    reused = await query(database_url, "SELECT seq FROM inbox WHERE store = 'store-001' GROUP BY seq HAVING count(*) > 1")
    assert reused == []
    (stats,) = await query(database_url, "SELECT events, seqs, last_seq FROM store_stats WHERE store = 'store-001'")
    assert (stats["events"], stats["seqs"], stats["last_seq"]) == (5, 5, 105)
    gaps = await query(database_url, "SELECT first_seq, last_seq FROM store_seq_gaps WHERE store = 'store-001'")
    assert [(gap["first_seq"], gap["last_seq"]) for gap in gaps] == [(5, 104)]  # the numbers the restore skipped


async def test_after_restoring_the_hub_s_database_to_an_earlier_point_a_replay_gives_back_what_it_lost(
        tmp_path: Path, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    earlier = f"{database_url}_earlier"
    async with running_edge(store_config) as edge:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            first = await sell(http, edge.url, [(COFFEE, 1)])
            await wait_until(lambda: landed(database_url, 1), timeout=30)
            nursery.cancel_scope.cancel()
        # the database as a backup recovered to this point would have it (the hub stopped: nothing connected)
        recovery_target = datetime.now(UTC)
        await query(database_url, f'CREATE DATABASE "{earlier.rpartition("/")[2]}" TEMPLATE '
                                  f'"{database_url.rpartition("/")[2]}"')
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            later = [await sell(http, edge.url, [(MILK, 1)]), await sell(http, edge.url, [(COFFEE, 2)])]
            await wait_until(lambda: landed(database_url, 3), timeout=30)
            nursery.cancel_scope.cancel()
    try:
        async with trio.open_nursery() as nursery:  # the hub on the recovered database: it lacks the later sales
            await nursery.start(run_hub, replace(hub_config, database_url=earlier))
            await trio.sleep(1.0)
            assert len(await query(earlier, "SELECT 1 FROM sales")) == 1
            since = (recovery_target - timedelta(seconds=1)).isoformat()  # the recovery target, and a margin
            hub_toml = tmp_path / "hub.toml"
            hub_toml.write_text(tls_toml(nats_server.tls_settings()))
            replay = await trio.to_thread.run_sync(lambda: subprocess.run(
                [sys.executable, "-m", "novapos.cli", "hub", "--config", str(hub_toml), "replay", "--since", since],
                capture_output=True,
                text=True, timeout=60, env={**os.environ, "NOVAPOS_NATS_URL": nats_server.url,
                                            "NOVAPOS_DATABASE_URL": earlier,
                                            "NOVAPOS_NATS_CREDENTIALS": str(nats_server.hub_credentials)}))
            assert replay.returncode == 0, replay.stderr
            ids = await landed(earlier, 3)
            assert ids == [first["sale"], *(sale["sale"] for sale in later)]
            nursery.cancel_scope.cancel()
        (stats,) = await query(earlier, "SELECT events, seqs, last_seq FROM store_stats")
        assert (stats["events"], stats["seqs"], stats["last_seq"]) == (3, 3, 3)  # each once
    finally:
        await query(database_url, f'DROP DATABASE IF EXISTS "{earlier.rpartition("/")[2]}" WITH (FORCE)')
