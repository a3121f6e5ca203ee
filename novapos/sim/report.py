"""What a fleet run found: per store what was sold, released by JetStream and applied in PostgreSQL, the ingest
lag of every sale, and what each worker process cost."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from novapos.sim.spec import FleetSpec


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of `values` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass(frozen=True)
class StoreTally:
    """One store's sales of this run: committed to its outbox (`sent`), released after JetStream's PubAck
    (`acked`), applied in PostgreSQL (`ingested`: distinct sequence numbers; `doubled`: rows beyond one per
    sequence number), still in its outbox at the end (`left`); its sequence numbers first_seq..last_seq."""
    sent: int
    acked: int
    ingested: int = 0
    doubled: int = 0
    left: int = 0
    first_seq: int = 0
    last_seq: int = 0
    refused: int = 0
    """Sales its outbox refused (nothing written: a locked file, say), as a till would be told."""


@dataclass(frozen=True)
class ProcessUsage:
    """A worker process (or the sim itself, "sim"): CPU seconds over the selling span, that over the span's
    length (1.0 = one core busy), and its peak resident memory."""
    name: str
    pid: int
    stores: int
    cpu_s: float
    cpu_share: float
    rss_max_bytes: int
    cpu_by_role: dict[str, float] = field(default_factory=dict)
    sale_late_p99_s: float = 0.0
    """How late its stores' sales started against their schedule, p99 (a worker short of CPU sells late, and
    the lag, which starts at the commit, does not show it)."""
    """A worker's CPU seconds over the selling span, by thread role (outbox, forwarder, health, catalog, asyncio-seam
    ...): where a store's cost goes."""


@dataclass(frozen=True)
class Progress:
    """About once a second while a fleet runs: the phase, totals so far, the ingest lag p99 over the last
    10 s (None: no sale applied in that window) and the processes' usage so far."""
    phase: str
    elapsed_s: float
    sent: int
    acked: int
    ingested: int
    cut: int
    lag_p99_s: float | None
    processes: list[ProcessUsage]

    def line(self) -> str:
        """One line for a terminal."""
        lag = "-" if self.lag_p99_s is None else f"{self.lag_p99_s:.3f} s"
        usage = " ".join(f"{p.name} {100 * p.cpu_share:.0f}% {p.rss_max_bytes / 2**20:.0f} MiB" for p in self.processes)
        return (f"{self.phase:<8} {self.elapsed_s:6.1f} s  sent {self.sent}  acked {self.acked}  ingested {self.ingested}"
                f"  cut {self.cut}  lag p99 {lag}  {usage}")


@dataclass(frozen=True)
class FleetReport:
    """A fleet run: selling began at `started_at` (time.time()) and lasted `selling_s`; `drained` when every
    outbox emptied and every released sale reached PostgreSQL within the drain timeout. `lag_s`: one sample per
    sale applied, PostgreSQL's sales.received_at (the ingest transaction's now()) minus sales.completed_at (the
    event's time, its commit in the store's outbox). `catalog_applied`: per store, the time.time() each catalog
    version was committed to the store's local catalog."""
    spec: FleetSpec
    started_at: float
    selling_s: float
    drained: bool
    stores: dict[str, StoreTally]
    lag_s: list[float]
    processes: list[ProcessUsage]
    catalog_applied: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(tally.sent for tally in self.stores.values())

    @property
    def acked(self) -> int:
        return sum(tally.acked for tally in self.stores.values())

    @property
    def ingested(self) -> int:
        return sum(tally.ingested for tally in self.stores.values())

    @property
    def lost(self) -> int:
        """Sales committed in a store and not applied in PostgreSQL (0 after a drained run)."""
        return sum(max(0, tally.sent - tally.ingested) for tally in self.stores.values())

    @property
    def doubled(self) -> int:
        return sum(tally.doubled for tally in self.stores.values())

    @property
    def lag_p50_s(self) -> float | None:
        return percentile(self.lag_s, 0.50)

    @property
    def lag_p99_s(self) -> float | None:
        return percentile(self.lag_s, 0.99)

    @property
    def lag_max_s(self) -> float | None:
        return max(self.lag_s, default=None)

    def summary(self) -> dict[str, Any]:
        """The figures, JSON-able (the command's last line)."""
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)
        workers = [p for p in self.processes if p.name != "sim"]
        return {
            "stores": self.spec.stores, "processes": self.spec.processes, "sale_every_s": self.spec.sale_every_s,
            "started_at": round(self.started_at, 3), "selling_s": round(self.selling_s, 2), "drained": self.drained,
            "sent": self.sent, "refused": sum(tally.refused for tally in self.stores.values()), "acked": self.acked, "ingested": self.ingested, "lost": self.lost, "doubled": self.doubled,
            "sales_per_s": round(self.sent / self.selling_s, 1) if self.selling_s else None,
            "lag_samples": len(self.lag_s), "lag_p50_s": rounded(self.lag_p50_s),
            "lag_p99_s": rounded(self.lag_p99_s), "lag_max_s": rounded(self.lag_max_s),
            "worker_cpu_ms_per_store_s": round(1000 * sum(p.cpu_s for p in workers)
                                               / (self.spec.stores * self.selling_s), 3) if self.selling_s else None,
            "catalog_synced_stores": sum(1 for versions in self.catalog_applied.values() if versions),
            "sale_late_p99_s": round(max((p.sale_late_p99_s for p in workers), default=0.0), 4),
            "process_usage": [asdict(p) for p in self.processes],
        }
