"""What every benchmark reports: median and p99 of timings, ratios to floors, and progress on stderr.

The last line a benchmark prints is one JSON object: each key names the figure and its unit, each
floor measured in the same run has `floor` in its key, and each comparison with its floor `ratio`.
"""

from __future__ import annotations

import statistics
import sys


def summary(samples: list[float], scale: float = 1000.0, digits: int = 2) -> dict[str, float]:
    """Median and p99 of samples in seconds, scaled (1000: milliseconds, 1e6: microseconds)."""
    ordered = sorted(samples)
    return {"median": round(statistics.median(ordered) * scale, digits),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * scale, digits)}


def ratio(measured: float, floor: float) -> float:
    """How many times its floor a figure is (for rates, pass floor/measured the other way round)."""
    return round(measured / floor, 2) if floor else float("inf")


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
