"""bench.loyalty runs as documented (a tiny run here): its last stdout line is one JSON object with the redemption
rates on one hot account and on many accounts, each beside its raw conditional UPDATE floor."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_loyalty_reports_its_rates_beside_their_floors() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.loyalty", "--redemptions", "60", "--accounts", "10",
                           "--concurrency", "4"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["redemptions"], figures["accounts"], figures["concurrency"]) == (60, 10, 4)
    for kind in ("hot", "many"):
        assert figures[f"redemptions_{kind}_per_s"] > 0 and figures[f"floor_{kind}_per_s"] > 0, kind
        assert figures[f"{kind}_to_floor_ratio"] > 0, kind
    assert "hot account: 60 redemptions" in done.stderr and "10 accounts" in done.stderr
