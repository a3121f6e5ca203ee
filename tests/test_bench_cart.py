"""bench.cart runs as documented (a small run here): its last stdout line is one JSON object with the till's
figure, the hub's decode figures, their floor and their ratios."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_cart_reports_its_figures_beside_its_floor() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.cart", "--lines", "12", "--rounds", "30"],
                          capture_output=True, text=True, timeout=180, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["till_order_discount_12_lines_median_ms"] > 0
    assert figures["till_order_discount_12_lines_p99_ms"] >= figures["till_order_discount_12_lines_median_ms"]
    assert figures["hub_decode_v2_floor_us"] > 0
    for kind in ("plain", "discounted"):
        assert figures[f"hub_decode_v3_{kind}_ratio"] == round(
            figures[f"hub_decode_v3_{kind}_us"] / figures["hub_decode_v2_floor_us"], 2)
    assert "order discount on a 12-line cart" in done.stderr
