"""What every benchmark reports: median and p99 of timings, and progress lines on stderr."""

from __future__ import annotations

import statistics
import sys


def summary(samples: list[float], scale: float = 1000.0, digits: int = 2) -> dict[str, float]:
    """Median and p99 of samples in seconds, scaled (1000: milliseconds, 1e6: microseconds)."""
    ordered = sorted(samples)
    return {"median": round(statistics.median(ordered) * scale, digits),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * scale, digits)}


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
