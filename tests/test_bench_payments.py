"""bench.payments runs as documented (a tiny run here): its last stdout line is one JSON object with the card
tender round trips beside the NATS and gateway floors, and the intents rate beside the raw INSERT floor."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_payments_reports_its_figures_beside_their_floors() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.payments", "--tenders", "20", "--intents", "50"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["tenders"] == 20 and figures["intents"] == 50
    for figure in ("pay_intent_ms", "pay_cancel_ms", "nats_request_floor_ms", "gateway_floor_ms"):
        assert 0 < figures[figure]["median"] <= figures[figure]["p99"], figure
    assert figures["pay_cancel_ms"]["median"] > figures["gateway_floor_ms"]["median"]
    assert figures["pay_intent_to_floor_ratio"] > 0 and figures["pay_cancel_to_floor_ratio"] > 0
    assert figures["intents_per_s"] > 0 and figures["insert_floor_per_s"] > 0 and figures["intents_to_floor_ratio"] > 0
    assert 0 < figures["commit_floor_ms"]["median"] <= figures["commit_floor_ms"]["p99"]
    assert "card tenders: 20" in done.stderr and "intents: 50" in done.stderr
