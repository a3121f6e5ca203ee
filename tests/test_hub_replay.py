"""`novapos hub replay --since TIME` after a database restore: the events stream's kept history is applied
again through the inbox, so what the restored database lacks lands once, what it has stays once, and the
command says how far it got."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import tomli_w
import trio

from hub.db import close_pool, create_pool, migrate
from hub.ingest.inbox import Delivery, ingest
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import ensure_stream, query, tls_toml
from tests.events import SUBJECT, publish, sale_event


def _replay(config: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOVAPOS_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "novapos.cli", "hub", "--config", str(config), "replay", *args],
                          capture_output=True, text=True, timeout=120, env=env)


async def _restored_copy(database_url: str, deliveries: list[Delivery]) -> None:
    """A database as a point-in-time recovery left it: only the first events of the stream applied."""
    async def run() -> None:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            await ingest(pool, deliveries, frozenset({"demo"}))
        finally:
            await close_pool(pool)
    await trio.to_thread.run_sync(asyncio.run, run())


async def test_replay_applies_what_a_restored_database_lacks_once(
        nats_server: EmbeddedNats, database_url: str, tmp_path: Path) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    events = [sale_event(seq=n, total=100 * n) for n in range(1, 11)]
    await ensure_stream(nats_server)
    await publish(nats_server, [(SUBJECT, e.encode(), {"Nats-Msg-Id": str(e.id)}) for e in events])
    await _restored_copy(database_url, [Delivery(SUBJECT, e.encode()) for e in events[:4]])
    config = tmp_path / "hub.toml"
    config.write_text(tomli_w.dumps({"tenants": ["demo"], "nats": {
        "url": nats_server.url, "credentials": str(nats_server.hub_credentials)}})
                      + tls_toml(nats_server.tls_settings()))

    done = _replay(config, database_url, "--since", started.isoformat())
    assert done.returncode == 0, done.stderr
    assert "10 events read" in done.stdout and "6 applied, 4 already there" in done.stdout, done.stdout
    assert "replayed 10 of 10 events (100%)" in done.stdout  # the progress line
    rows = await query(database_url, "SELECT seq, count(*) AS n FROM sales GROUP BY seq ORDER BY seq")
    assert [(r["seq"], r["n"]) for r in rows] == [(n, 1) for n in range(1, 11)]

    again = _replay(config, database_url, "--since", (started - timedelta(hours=1)).isoformat())
    assert again.returncode == 0 and "0 applied, 10 already there" in again.stdout, again.stdout
    assert (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == 10

    later = _replay(config, database_url, "--since", (datetime.now(UTC) + timedelta(minutes=1)).isoformat())
    assert later.returncode == 0 and "0 events read" in later.stdout, later.stdout


def test_replay_refuses_what_it_cannot_use(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(tomli_w.dumps({"tenants": ["demo"]}))
    bad_time = _replay(config, database_url, "--since", "yesterday")
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr
    no_nats = _replay(config, database_url, "--since", "2026-12-01T09:30:00Z")
    assert no_nats.returncode == 2 and "needs both NATS and PostgreSQL" in no_nats.stderr
