"""The hub's promotion figures on /metrics (per process: each hub counts what it did)."""

from __future__ import annotations

from prometheus_client import Counter

DIFFS = Counter("novapos_hub_promotion_diffs_total",
                "Sales whose promotions the hub's engine computed differently from the till (replay validation)")
VALIDATED = Counter("novapos_hub_promotion_sales_validated_total",
                    "sale.completed (v5, and v3/v4 while promotions were live) whose promotions replay validation re-evaluated")
