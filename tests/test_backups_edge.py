"""The edge's backups: consistent copies while the store sells, the schedule and its metrics, what is kept, the
refusals of `novapos edge restore`, the hub's answer to a restored box (and a hostile one)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import msgpack
import pytest
import trio
from prometheus_client import REGISTRY

from actors.storage import db as local_db
from actors.storage.backup import BackupFailed, backups, record, take_backup
from edge.app import state_folder_lock
from hub.backups.holds import holds
from novapos.config import ConfigError, StoreConfig, load_store
from novapos.config.backup import BackupSettings
from novapos.demo.processes import free_port
from novapos.demo.run import write_store_config
from novapos.validators import Invalid
from novapos.wire.restore import MAX_EVENTS, decode_answer, encode_answer
from tests.audit_support import migrated
from tests.conftest import wait_until
from tests.edges import running_edge


def _commit_events(path: Path, stop: threading.Event) -> None:
    """As the outbox does: each event numbered and inserted in one transaction."""
    db = local_db.connect(path)
    try:
        while not stop.is_set():
            with local_db.immediate(db):
                (seq,) = db.execute("UPDATE store_sequence SET last_seq = last_seq + 1 RETURNING last_seq").fetchone()
                db.execute("INSERT INTO outbox (seq, id, subject, payload) VALUES (?, ?, 'x', zeroblob(2000))",
                           (seq, str(uuid.uuid4())))
    finally:
        db.close()


def test_backups_taken_while_the_store_commits_are_whole_and_the_newest_are_kept(tmp_path: Path) -> None:
    source = tmp_path / "state" / local_db.FILE_NAME
    local_db.connect(source).close()
    stop = threading.Event()
    writer = threading.Thread(target=_commit_events, args=(source, stop))
    writer.start()
    try:
        taken = []
        for _ in range(5):
            time.sleep(0.05)  # the store commits meanwhile
            taken.append(take_backup(source, tmp_path / "backups", keep=3))
    finally:
        stop.set()
        writer.join()
    assert [path.name for path in backups(tmp_path / "backups")] == [backup.path.name for backup in taken[-3:]]
    for backup in taken[-3:]:
        copy = sqlite3.connect(backup.path)
        (last_seq,) = copy.execute("SELECT last_seq FROM store_sequence").fetchone()
        numbers = [seq for (seq,) in copy.execute("SELECT seq FROM outbox ORDER BY seq")]
        (mode,) = copy.execute("PRAGMA journal_mode").fetchone()
        copy.close()
        assert numbers == list(range(1, last_seq + 1)) and last_seq == backup.last_seq  # one commit's state
        assert backup.path.name.endswith(f"-seq{last_seq:012d}.sqlite3") and mode == "delete"
        assert backup.size == backup.path.stat().st_size
    assert taken[-1].last_seq > taken[0].last_seq > 0  # the store went on committing meanwhile
    assert not [path for path in (tmp_path / "backups").iterdir() if path.suffix == ".partial"]


def test_a_failed_backup_says_why_and_is_counted(tmp_path: Path) -> None:
    source = tmp_path / local_db.FILE_NAME
    with pytest.raises(BackupFailed, match="does not exist"):
        take_backup(source, tmp_path / "backups", keep=1)
    local_db.connect(source).close()
    (tmp_path / "not-a-folder").write_text("")
    before = REGISTRY.get_sample_value("novapos_edge_backup_failures_total") or 0.0
    with pytest.raises(BackupFailed, match="backup folder") as failed:
        take_backup(source, tmp_path / "not-a-folder", keep=1)
    record(failed.value)
    assert REGISTRY.get_sample_value("novapos_edge_backup_failures_total") == before + 1


async def test_the_running_edge_backs_up_on_schedule_and_says_so_in_its_metrics(
        tmp_path: Path, store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    folder = tmp_path / "elsewhere"
    config = replace(store_config, backup=BackupSettings(folder, every_s=1, keep=2))
    async with running_edge(config) as edge:
        async def two() -> list[Path]:
            return found if len(found := backups(folder)) == 2 else []
        first_two = await wait_until(two, timeout=20)
        await trio.sleep(1.5)  # a third has come and the oldest gone
        assert len(backups(folder)) == 2 and backups(folder)[0] not in first_two[:1]
        metrics = (await http.get(f"{edge.url}/metrics")).text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
              if line.startswith("novapos_edge_backup_")}
    assert values["novapos_edge_backup_last_success_timestamp_seconds"] > 0
    assert values["novapos_edge_backup_bytes"] > 0
    assert "novapos_edge_backup_failures_total" in values


def test_the_backup_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    write_store_config(config, tmp_path, free_port())
    text = config.read_text()
    assert load_store(config).backup == BackupSettings(None, 900, 96)
    assert load_store(config).backup.folder(Path("/var/lib/novapos/store")) == Path("/var/lib/novapos/store/backups")
    config.write_text(text + '\n[backup]\ndir = "/mnt/usb/novapos"\nevery_s = 0\nkeep = 4\n')
    assert load_store(config).backup == BackupSettings(Path("/mnt/usb/novapos"), 0, 4)
    for bad, why in (("every_s = -1", "every_s"), ("keep = 0", "keep"), ('dir = "${HOME}/backups"', "dir"),
                     ('dir = "a\\u0000b"', "dir"), ("keep_days = 3", "keep_days")):
        config.write_text(text + f"\n[backup]\n{bad}\n")
        with pytest.raises(ConfigError, match=why):
            load_store(config)


def _restore(config: Path, backup: Path, nats_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "novapos.cli", "edge", "--config", str(config), "restore", str(backup)],
                          env={**os.environ, "NOVAPOS_NATS_URL": nats_url}, capture_output=True, text=True, timeout=60)


def test_restore_refuses_and_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    write_store_config(config, tmp_path, free_port())
    state = tmp_path / "store-001"
    source = tmp_path / "old" / local_db.FILE_NAME
    local_db.connect(source).close()
    backup = take_backup(source, tmp_path / "backups", keep=1).path
    nobody = f"nats://127.0.0.1:{free_port()}"

    unreachable = _restore(config, backup, nobody)  # the hub cannot be asked which numbers it holds
    assert unreachable.returncode == 1 and "nothing was changed" in unreachable.stderr
    assert sorted(path.name for path in state.iterdir()) == ["edge.lock"]

    hostile = tmp_path / "hostile.sqlite3"
    hostile.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    refused = _restore(config, hostile, nobody)
    assert refused.returncode == 1 and "cannot be restored" in refused.stderr
    assert sorted(path.name for path in state.iterdir()) == ["edge.lock"]

    other_store = tmp_path / "other" / local_db.FILE_NAME
    with local_db.connect(other_store) as db:
        db.execute("INSERT INTO outbox (seq, id, subject, payload) VALUES (1, 'x', "
                   "'novapos.demo.store-002.evt.sale_completed', x'00')")
    mistaken = _restore(config, take_backup(other_store, tmp_path / "other", keep=1).path, nobody)
    assert mistaken.returncode == 1 and "another store (novapos.demo.store-002" in mistaken.stderr
    assert sorted(path.name for path in state.iterdir()) == ["edge.lock"]

    with state_folder_lock(state):  # an edge runs on the state folder
        running = _restore(config, backup, nobody)
    assert running.returncode == 2 and "stop it first" in running.stderr

    local_db.connect(state / local_db.FILE_NAME).close()
    existing = _restore(config, backup, nobody)
    assert existing.returncode == 2 and "--force" in existing.stderr


def test_a_hostile_answer_from_the_hub_is_refused() -> None:
    for answer in (b"nope", b"[]", b'{"last_seq": 3, "more": false}',
                   b'{"last_seq": 3, "more": false, "events": [{"seq": 4, "id": "a", "type": "sale.completed"}]}',
                   b'{"last_seq": -1, "more": false, "events": []}',
                   b'{"last_seq": 3, "more": "no", "events": []}'):
        with pytest.raises(Invalid):
            decode_answer(answer)


def test_the_hub_counts_a_dead_letter_s_number_as_held(database_url: str) -> None:
    async def scenario() -> None:
        async with migrated(database_url) as pool:
            ids = [uuid.uuid4() for _ in range(4)]
            await pool.executemany("INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES ($1, $2, $3, $4, $5)",
                                   [(ids[0], "demo", "store-001", 1, "sale.completed"),
                                    (ids[1], "demo", "store-001", 2, "drawer.opened"),
                                    (ids[2], "demo", "store-002", 50, "sale.completed")])
            await pool.executemany("INSERT INTO dead_letters (event_id, subject, reason, payload) VALUES ($1, $2, $3, $4)",
                                   [(ids[3], "novapos.demo.store-001.evt.sale_completed", "refused",
                                     msgpack.packb({"seq": 3, "id": ids[3].bytes})),
                                    (None, "novapos.demo.store-001.evt.sale_completed", "garbage", b"\xc1\xff")])
            held = await holds(pool, "demo", "store-001", 1)
            assert held.last_seq == 3 and not held.more
            assert [(e.seq, e.id, e.type) for e in held.events] == [(2, str(ids[1]), "drawer.opened"),
                                                                    (3, str(ids[3]), "dead letter")]
            assert (await holds(pool, "demo", "store-009", 0)).last_seq == 0
            await pool.executemany("INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES ($1, $2, $3, $4, $5)",
                                   [(uuid.uuid4(), "demo", "store-003", seq, "sale.completed")
                                    for seq in range(1, MAX_EVENTS + 2)])
            many = await holds(pool, "demo", "store-003", 0)
            assert many.more and len(many.events) == MAX_EVENTS and many.last_seq == MAX_EVENTS + 1
            assert len(encode_answer(many)) < 1024 * 1024  # NATS's default largest message
    asyncio.run(scenario())
