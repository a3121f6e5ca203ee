"""Three real hub processes on one NATS and one PostgreSQL: each periodic job runs in exactly one of them; the one
holding the leases is killed with SIGKILL while the three ingest (mid-batch: its fetched, unacknowledged events
die with it), another takes every job over within the lease TTL, and every event is applied once all the same
(the dead hub's batch is redelivered to the others after the consumer's ack wait); the survivors stop cleanly.
The in-process cases (a holder cut off from PostgreSQL, a clean hand-over) are tests/test_leases.py."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from pathlib import Path

import nats
import trio
from nats.js.api import AckPolicy, ConsumerConfig

from hub.domains import jobs
from novapos.adapters.nats import INGEST_CONSUMER
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_FILTER, EVENTS_STREAM
from tests.conftest import ensure_stream
from tests.test_hub_process import HubProcess, until
from tests.test_ingest_two_hubs import _applied, _fetch, _publish, _stream

TTL_S = 2
ACK_WAIT_S = 3.0
"""The shared consumer's ack wait, made short here (the hub makes it 30 s; it binds to an existing consumer as is)."""
BATCH = 32
ALWAYS = {"reservation_sweeper", "catalog_publisher", "fleet_watch", "audit_checkpoints"}
"""Jobs every hub of this test wants whatever its config."""
HELD = re.compile(r'^novapos_hub_lease_held\{lease="([a-z_]+)"\} (\S+)$', re.MULTILINE)


def _leases(hub: HubProcess) -> dict[str, float]:
    """novapos_hub_lease_held of `hub` by its /metrics: a series for each job it wants (1: holds)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{hub.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {job: float(value) for job, value in HELD.findall(text)}


def _held(hub: HubProcess) -> set[str]:
    """The jobs whose lease `hub` holds, by its /metrics."""
    return {job for job, value in _leases(hub).items() if value == 1}


def _one_holder_each(hubs: list[HubProcess]) -> bool:
    """Every job some hub wants is held by exactly one (a job whose feature is not configured, such as
    payment_reconciliation without a payment provider, returns in each hub, which then stops wanting it: no series
    anywhere)."""
    leases = [_leases(hub) for hub in hubs]
    wanted = set().union(*leases)
    return ALWAYS <= wanted <= set(jobs()) and all(
        sum(mine.get(job) == 1 for mine in leases) == 1 for job in wanted)


async def _short_ack_wait(nats_server: EmbeddedNats) -> None:
    client = await nats.connect(nats_server.url, **nats_server.hub_options())
    await client.jetstream().add_consumer(EVENTS_STREAM, ConsumerConfig(
        durable_name=INGEST_CONSUMER, filter_subject=EVENTS_FILTER, ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S, max_ack_pending=BATCH * 8))
    await client.close()


def test_the_lease_holder_killed_mid_batch_loses_and_doubles_nothing_and_its_jobs_move_within_the_ttl(
        tmp_path: Path, nats_server: EmbeddedNats, database_url: str) -> None:
    published, distinct = _stream()
    trio.run(ensure_stream, nats_server)
    asyncio.run(_short_ack_wait(nats_server))
    hubs: list[HubProcess] = []
    try:
        for name in ("a", "b", "c"):
            (tmp_path / name).mkdir()
            hubs.append(HubProcess(tmp_path / name, nats_server.url, database_url, nats_server.hub_credentials,
                                   f"[ingest]\nbatch = {BATCH}\n[leases]\nttl_s = {TTL_S}\n",
                                   tls=nats_server.tls_settings()))
        for hub in hubs:
            until(lambda hub=hub: (hub.health() or (0, {}))[0] == 200, timeout=60, what="the three hubs ready")
        until(lambda: _one_holder_each(hubs), timeout=2 * TTL_S, what="every job held by exactly one hub")
        holder = max(hubs, key=lambda hub: len(_held(hub)))
        its_jobs = _held(holder)
        survivors = [hub for hub in hubs if hub is not holder]

        publisher = threading.Thread(target=lambda: asyncio.run(_publish(nats_server, published)))
        publisher.start()
        until(lambda: _applied(holder) > 0, timeout=60, what="the holder ingesting")
        holder.process.kill()  # SIGKILL: no release, no batch given back
        killed, killed_at = time.monotonic(), time.time()
        holder.process.wait()
        in_inbox = int(str(_fetch(database_url, "SELECT count(*) AS n FROM inbox")[0]["n"]))
        assert in_inbox < len(distinct), "ingest was over before the kill: the test proved nothing"

        until(lambda: _one_holder_each(survivors), timeout=TTL_S + 2, what="the dead hub's jobs taken over")
        took = time.monotonic() - killed
        assert took <= TTL_S + 0.5, f"jobs taken over {took:.2f} s after the kill (ttl {TTL_S} s)"  # seen by /metrics
        wanted = set().union(*(_leases(hub) for hub in survivors))
        assert its_jobs & wanted <= set().union(*(_held(hub) for hub in survivors)) and ALWAYS <= wanted
        leases = _fetch(database_url, "SELECT holder, token, extract(epoch FROM acquired_at)::float8 AS at"
                                      " FROM hub_leases WHERE expires_at > now()")
        moved = max(float(str(row["at"])) for row in leases) - killed_at  # PostgreSQL's clock: this host's
        assert len({row["holder"] for row in leases}) <= 2 and all(int(str(row["token"])) >= 2 for row in leases), \
            leases  # every lease changed holder once at least

        publisher.join(60)
        until(lambda: _fetch(database_url, "SELECT count(*) AS n FROM inbox")[0]["n"] == len(distinct), timeout=60,
              what="every event in the inbox, the dead hub's batch redelivered")
        counts = _fetch(database_url, "SELECT (SELECT count(*) FROM sales) AS sales,"
                                      " (SELECT count(*) FROM sale_lines) AS lines,"
                                      " (SELECT count(*) FROM dead_letters) AS dead")[0]
        assert counts == {"sales": len(distinct), "lines": len(distinct), "dead": 0}
        takings = _fetch(database_url, "SELECT sum(sales) AS sales, sum(total_minor) AS minor FROM store_takings")[0]
        assert takings == {"sales": len(distinct), "minor": sum(e.body["total"]["minor"] for e in distinct)}
        assert moved <= TTL_S + 0.2, f"leases taken over {moved:.2f} s after the kill (ttl {TTL_S} s)"
        print(f"jobs of the killed holder taken over {moved:.2f} s after SIGKILL by the leases, {took:.2f} s as "
              f"seen on /metrics (ttl {TTL_S} s); "
              f"{len(distinct) - in_inbox} events still to apply at the kill, all applied once")
    finally:
        statuses = [hub.stop() for hub in hubs if hub.process.poll() is None]
        for hub in hubs:
            hub.kill()
    assert statuses == [0, 0]
    for hub in survivors:
        assert "Traceback" not in hub.log, hub.log
    assert any("lease of job" in line and "gained" in line for hub in survivors for line in hub.lines)
