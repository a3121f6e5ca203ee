"""bench.fleet runs as documented at its --quick size: its last stdout line is one JSON object with the machine's raw
ingest floor beside one hub's ingest of the same sales, the largest fleet tried that kept up, a price change that
reached every store, and a run through a three-node cluster that lost its events stream's leader, losing and
doubling nothing."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_fleet_quick_reports_its_figures_beside_its_floor() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.fleet", "--quick"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    floor, ingest = figures["raw_ingest_floor_events_per_s"], figures["ingest_events_per_s"]
    assert floor > 0 and ingest > 0
    assert figures["ingest_ratio"] == round(ingest / floor, 2)
    assert figures["hub_cpu_us_per_event"] > 0
    runs = figures["runs"]
    assert [run["stores"] for run in runs] == [10, 10]  # the ladder's one size, then the node-killed run
    for run in runs:
        assert run["drained"] and run["lost"] == run["doubled"] == run["refused"] == 0, run
        assert run["events_per_s"] > 0 and 0 <= run["ingest_lag_p50_s"] <= run["ingest_lag_p99_s"], run
        assert run["price_change"]["stores"] == run["stores"], run  # every store's catalog sync applied it
        assert {"hub", "nats", "postgresql", "sim"} <= set(run["cpu_cores"]), run
    if runs[0]["passed"]:  # kept up, on a machine not too busy: its figures are the ones at max_stores
        assert figures["max_stores"] == 10 and figures["ingest_lag_p99_s"] == runs[0]["ingest_lag_p99_s"] < 1
        assert figures["fleet_floor_ratio"] == round(runs[0]["events_per_s"] / floor, 2)
    else:
        assert figures["max_stores"] == 0 and figures["ingest_lag_p99_s"] is None
    assert figures["limited_by"] == max(runs[0]["cpu_cores"], key=runs[0]["cpu_cores"].get)
    assert (figures["node_killed_lost"], figures["node_killed_doubled"]) == (0, 0)
    assert figures["node_killed_price_change_stores"] == 10
    assert "killing the events stream's leader" in done.stderr
