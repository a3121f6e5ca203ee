"""bench.receipts runs as documented (a small run here): its last stdout line is one JSON object with the
figures, the one-line print floor and their ratio, and every receipt, merchant copy and floor job printed."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_receipts_reports_its_figures_beside_its_floor() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.receipts", "--count", "5", "--lines", "3"],
                          capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["iterations"] == {"receipts": 5, "lines_per_sale": 3}
    assert figures["receipt_print_ms"]["median"] > 0 and figures["one_line_print_floor_ms"]["median"] > 0
    assert figures["receipt_print_to_floor_ratio"] > 0 and figures["receipt_bytes"] > 1000
    assert "5 confirmed prints of the receipt and its merchant copy" in done.stderr
