"""`novapos sim`: simulated stores on the real outbox, forwarder, health reporter and catalog sync, selling
against a real hub (embedded NATS with a user per store, the test's PostgreSQL, a `novapos hub` child), with
an outage on schedule. Every sale reaches PostgreSQL exactly once, the outage really delays the cut stores'
sales, their health reports and the catalog reach them, and the figures (lag, per-process CPU and memory) are
printed. One run of 20 stores for 10 s (about 30 s with the servers' start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from novapos.cli.main import parser
from novapos.sim import FleetSpec, Outage, parse_outages
from tests.conftest import query

STORES, SECONDS = 20, 10


def at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def test_outages_parse_and_cut_the_same_stores() -> None:
    assert parse_outages("20:10:0.1, 5:2.5:25%") == (Outage(20, 10, 0.1), Outage(5, 2.5, 0.25))
    assert parse_outages("") == ()
    names = FleetSpec(stores=8).store_names()
    assert names[:2] == ["sim-0001", "sim-0002"]
    assert Outage(0, 1, 0.25).cut(names) == ["sim-0004", "sim-0008"]
    assert Outage(0, 1, 1).cut(names) == names


@pytest.mark.parametrize("text", ["20:10", "a:1:0.1", "1:0:0.5", "1:1:0", "1:1:1.5", "-1:1:0.5", "1:1:nan",
                                  "1:inf:0.5", "1:1:0.5:9"])
def test_a_wrong_outage_is_refused_with_its_reason(text: str) -> None:
    with pytest.raises(ValueError, match="outage"):
        parse_outages(text)


@pytest.mark.parametrize("changes", [{"stores": 0}, {"processes": 0}, {"sale_every_s": 0.0},
                                     {"sale_every_s": float("nan")}, {"prefix": "a.b"}, {"tenant": "x y"},
                                     {"health_interval_s": 0}])
def test_a_wrong_fleet_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FleetSpec(**{"stores": 3, **changes})  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_workers_are_dealt_one_cpu_each_round_robin() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    for worker in (0, 1, 2):
        pinned = subprocess.run([sys.executable, "-c", "import os; from novapos.sim.worker import pin_to_one_cpu; "
                                 f"pin_to_one_cpu({worker}); print(sorted(os.sched_getaffinity(0)))"],
                                capture_output=True, text=True, check=True, timeout=60).stdout
        assert json.loads(pinned) == ([allowed[worker % len(allowed)]] if len(allowed) > 1 else allowed)


def test_a_simulated_store_keeps_the_edges_journals() -> None:
    from edge.app import JOURNALS
    from novapos.sim.store import JOURNALS as SIMULATED
    assert SIMULATED == JOURNALS


def test_stores_are_dealt_round_robin_over_the_processes() -> None:
    shares = FleetSpec(stores=5, processes=2).shares()
    assert shares == [["sim-0001", "sim-0003", "sim-0005"], ["sim-0002", "sim-0004"]]
    assert FleetSpec(stores=1, processes=4).shares() == [["sim-0001"]]


async def test_a_simulated_fleet_sells_through_a_real_hub_exactly_once(tmp_path: Path, database_url: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOVAPOS_")}
    run = subprocess.run(
        [sys.executable, "-m", "novapos.cli", "sim", "--stores", str(STORES), "--duration", str(SECONDS),
         "--processes", "2", "--outages", "3:3:0.25", "--state-dir", str(tmp_path / "sim"),
         "--database-url", database_url, "--drain-timeout", "30"],
        capture_output=True, text=True, env=env, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert (figures["sent"], figures["acked"], figures["ingested"]) == (STORES * SECONDS,) * 3
    assert (figures["lost"], figures["doubled"], figures["refused"], figures["drained"]) == (0, 0, 0, True)
    assert figures["lag_samples"] == STORES * SECONDS
    assert 0 < figures["lag_p50_s"] <= figures["lag_p99_s"] <= figures["lag_max_s"]
    workers = [p for p in figures["process_usage"] if p["name"].startswith("worker-")]
    assert [w["stores"] for w in workers] == [10, 10]
    assert all(w["cpu_s"] > 0 and w["rss_max_bytes"] > 20 * 2**20 for w in workers)
    assert {"outbox", "forwarder", "asyncio-seam"} <= set(workers[0]["cpu_by_role"])
    assert figures["catalog_synced_stores"] == STORES  # every store applied the hub's catalog
    assert 0 <= figures["sale_late_p99_s"] < SECONDS
    assert "ingest lag p50" in run.stderr and "worker-1" in run.stderr  # the progress and the summary

    # Every sale once, in sequence, in PostgreSQL: per store 1..SECONDS
    rows = await query(database_url, "SELECT store, array_agg(seq ORDER BY seq) AS seqs FROM sales GROUP BY store "
                       "ORDER BY store")
    assert [row["store"] for row in rows] == FleetSpec(stores=STORES).store_names()
    assert all(row["seqs"] == list(range(1, SECONDS + 1)) for row in rows)
    # The outage (every 4th store, from 3 s for 3 s): none of their sales made meanwhile reached the hub before
    # their links were back; the other stores' did
    during = await query(database_url, "SELECT store, bool_and(received_at >= $1) AS held, bool_or(received_at < $2)"
                         " AS went FROM sales WHERE completed_at >= $3 AND completed_at < $2 GROUP BY store",
                         at(figures["started_at"] + 6 - 0.05), at(figures["started_at"] + 6), at(figures["started_at"] + 3))
    cut = {f"sim-{n:04d}" for n in range(4, STORES + 1, 4)}
    assert {row["store"] for row in during if row["held"]} == cut
    assert {row["store"] for row in during if row["went"]} == set(FleetSpec(stores=STORES).store_names()) - cut
    # Their health reports reached the hub as the edge's do
    reported = await query(database_url, "SELECT store FROM fleet_status WHERE online ORDER BY store")
    assert [row["store"] for row in reported] == FleetSpec(stores=STORES).store_names()


def _command(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`novapos sim ARGUMENTS` in this process (its parsing and checks: nothing starts when they refuse)."""
    args = parser().parse_args(["sim", *arguments])
    return int(args.run(args)), capsys.readouterr().err


@pytest.mark.parametrize(("arguments", "reason"), [
    (["--outages", "20:10"], "expected AT:FOR:SHARE"),
    (["--stores", "0"], "stores: 1 to 100000"),
    (["--duration", "0"], "more than 0 s"),
    (["--duration", "10", "--outages", "8:3:0.5"], "must end within --duration"),
    (["--cluster", "--nats-url", "tls://127.0.0.1:1"], "not with --nats-url"),
    (["--nats-url", "tls://127.0.0.1:1", "--database-url", "postgresql://x@127.0.0.1:1/x"], "--credentials DIR"),
])
def test_a_wrong_command_says_why_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     arguments: list[str], reason: str) -> None:
    status, said = _command(["--state-dir", str(tmp_path / "sim"), *arguments], capsys)
    assert (status, reason in said) == (2, True), said
    assert not (tmp_path / "sim").exists()


def test_stores_without_seeds_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "seeds").mkdir()
    status, said = _command(["--stores", "3", "--nats-url", "tls://127.0.0.1:1", "--database-url",
                             "postgresql://x@127.0.0.1:1/x", "--credentials", str(tmp_path / "seeds")], capsys)
    assert status == 2
    assert "3 store(s) have no seed" in said and "demo.sim-0001.seed" in said
