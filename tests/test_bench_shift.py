"""bench.shift runs as documented (a small session here): its last stdout line is one JSON object with its
figures, its floor and their ratio, and every round's Z report counted every sale and was printed."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_shift_reports_its_figures_beside_its_floor() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.shift", "--sales", "300", "--rounds", "2"],
                          capture_output=True, text=True, timeout=180, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["sales"] == 300 and figures["rounds"] == 2
    assert figures["close_ms"]["median"] > 0 and figures["floor_ms"]["median"] > 0
    assert figures["close_to_floor_ratio"] > 0 and figures["close_printed_ms"]["median"] >= figures["close_ms"]["median"]
    assert "round 2/2: closed 300 sales" in done.stderr
