"""Dead letters after a fix: re-driven through the same ingest path (the inbox still dedups), kept and
marked with the outcome, from the console API or the CLI; and purged once older than the retention."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.events import SUBJECT, publish, sale_event, with_quantity

AT_MOST_50 = "ALTER TABLE sale_lines ADD CONSTRAINT at_most_50 CHECK (quantity <= 50)"


async def _refused_by_a_rule_then_fixed(hub_url: str, nats_server: EmbeddedNats, database_url: str) -> tuple[int, object]:
    """A sale the database refused (a rule since found wrong), dead-lettered; then the rule is dropped."""
    await query(database_url, AT_MOST_50)
    big = sale_event(seq=1)
    with_quantity(big.body, 51)
    await publish(nats_server, [(SUBJECT, big.encode(), None)])
    [letter] = await wait_until(lambda: query(database_url, "SELECT id FROM dead_letters"))
    await query(database_url, "ALTER TABLE sale_lines DROP CONSTRAINT at_most_50")
    return letter["id"], big.id


async def test_a_dead_letter_redriven_from_the_console_lands_once_and_stays_marked(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        letter, sale = await _refused_by_a_rule_then_fixed(hub.url, nats_server, database_url)
        admin = await sign_in_admin(http, hub.url, database_url)

        answer = await http.post(f"{hub.url}/api/dead-letters/{letter}/redrive", json={})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"id": letter, "outcome": "applied"}
        [audited] = await query(database_url, "SELECT actor, store, details FROM audit_records"
                                              " WHERE tenant = 'demo' AND action = 'dead_letter.redriven'")
        assert (audited["actor"], audited["store"]) == (admin, "store-001")
        assert json.loads(audited["details"]) == {"id": letter, "outcome": "applied"}
        assert [row["event_id"] for row in await query(database_url, "SELECT event_id FROM sales")] == [sale]
        [kept] = (await http.get(f"{hub.url}/api/dead-letters")).json()["items"]
        assert kept["id"] == letter and kept["redrive_outcome"] == "applied" and kept["redriven_at"]

        again = await http.post(f"{hub.url}/api/dead-letters/{letter}/redrive", json={})
        assert again.status_code == 409 and "already re-driven" in again.json()["error"]
        assert (await http.post(f"{hub.url}/api/dead-letters/999999/redrive", json={})).status_code == 404

        # a second copy of the letter (say, dead-lettered twice) re-driven: the inbox still holds
        await query(database_url, "INSERT INTO dead_letters (event_id, subject, reason, payload)"
                    " SELECT event_id, subject, reason, payload FROM dead_letters WHERE id = $1", letter)
        copy = (await query(database_url, "SELECT max(id) AS id FROM dead_letters"))[0]["id"]
        answer = await http.post(f"{hub.url}/api/dead-letters/{copy}/redrive", json={})
        assert answer.json() == {"id": copy, "outcome": "already applied"}
        assert (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == 1
        nursery.cancel_scope.cancel()


def _cli(config: Path, *words: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVAPOS_")}
    return subprocess.run([sys.executable, "-m", "novapos.cli", "hub", "--config", str(config), "dead-letters", *words],
                          capture_output=True, text=True, timeout=60, env=env)


async def test_dead_letters_are_listed_and_redriven_from_the_command_line(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    # dead letters live in PostgreSQL: the command needs no NATS address
    config.write_text(f'tenants = ["demo"]\n[database]\nurl = "{database_url}"\n')
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        letter, sale = await _refused_by_a_rule_then_fixed(hub.url, nats_server, database_url)
        # a store may publish on any subject under its own: this one quotes terminal and bidi controls
        await publish(nats_server, [("novapos.demo.store-001.evt.\x1b[31m\u202eabc", b"not msgpack", None)])
        await wait_until(lambda: _equal(query(database_url, "SELECT 1 FROM dead_letters"), 2))
        nursery.cancel_scope.cancel()

    listed = await trio.to_thread.run_sync(_cli, config, "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{letter}" in listed.stdout and "at_most_50" in listed.stdout
    assert "\x1b" not in listed.stdout and "\u202e" not in listed.stdout  # never terminal or bidi control
    assert "evt.\\x1b[31m\\u202eabc" in listed.stdout  # what the store sent, shown escaped

    redriven = await trio.to_thread.run_sync(_cli, config, "redrive", "--all", "--reason-like", "AT_MOST_50")
    assert redriven.returncode == 0, redriven.stderr
    assert f"{letter}: applied" in redriven.stdout and "1 re-driven" in redriven.stdout
    assert [row["event_id"] for row in await query(database_url, "SELECT event_id FROM sales")] == [sale]
    [audited] = await query(database_url, "SELECT actor, target FROM audit_records WHERE action = 'dead_letter.redriven'")
    assert audited["actor"] == f"cli:{getpass.getuser()}" and audited["target"] == str(letter)

    nothing = await trio.to_thread.run_sync(_cli, config, "redrive", str(letter))
    assert nothing.returncode == 1 and "already re-driven" in nothing.stderr
    neither = await trio.to_thread.run_sync(_cli, config, "redrive")
    assert neither.returncode == 2 and "--all" in neither.stderr


async def test_dead_letters_older_than_the_retention_are_purged(
        nats_server: EmbeddedNats, database_url: str, hub_config: HubConfig) -> None:
    config = dataclasses.replace(hub_config, dead_letter_retention_days=30)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, config)
        await query(database_url, "INSERT INTO dead_letters (subject, reason, payload, received_at) VALUES"
                    " ('a', 'old', '', now() - interval '31 days'), ('b', 'recent', '', now() - interval '29 days')")
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:  # a purge runs at start, then periodically
        await nursery.start(run_hub, config)
        await wait_until(lambda: _equal(query(database_url, "SELECT reason FROM dead_letters"), 1))
        assert [row["reason"] for row in await query(database_url, "SELECT reason FROM dead_letters")] == ["recent"]
        nursery.cancel_scope.cancel()


async def _equal(rows_awaitable, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await rows_awaitable) == expected


async def test_a_dead_letter_the_hub_cannot_apply_yet_is_not_redriven_and_stays_unmarked(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    """A letter from before held events existed (a tenant the hub does not serve): re-driving it answers 409
    saying why, and the letter stays as it was, to re-drive once hub.toml serves the tenant."""
    other = dataclasses.replace(sale_event(), tenant="acme")
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        [letter] = await query(
            database_url, "INSERT INTO dead_letters (subject, reason, payload) VALUES ($1, 'not served', $2) RETURNING id",
            event_subject("acme", "store-001", "sale.completed"), other.encode())
        await sign_in_admin(http, hub.url, database_url, tenant="acme")
        answer = await http.post(f"{hub.url}/api/dead-letters/{letter['id']}/redrive", json={})
        assert answer.status_code == 409 and "cannot be applied yet" in answer.text, answer.text
        [row] = await query(database_url, "SELECT redriven_at FROM dead_letters WHERE id = $1", letter["id"])
        assert row["redriven_at"] is None
        nursery.cancel_scope.cancel()
