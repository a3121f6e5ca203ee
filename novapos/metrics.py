"""What both processes (the store's edge and the hub) say about themselves on /metrics, and how they say it.

- `novapos_build_info{version}`: always 1, the installed release in its label (join it onto any series
  with `* on (instance) group_left (version)` to see which release a figure comes from; an upgrade rolled
  out halfway shows as two versions).
- No `_created` series: prometheus_client adds one per counter and histogram child, the time it was first
  used. Prometheus 2 stores them as gauges of their own, doubling the series and answering nothing an
  operator asks; rate() and increase() handle restarts without them.
"""

from __future__ import annotations

from prometheus_client import Gauge, disable_created_metrics

from novapos.__about__ import VERSION

BUILD_INFO = Gauge("novapos_build_info", "Always 1: the release this process runs, in its version label",
                   ["version"])


def install() -> None:
    """Called by each process as it starts (hub.app, edge.app): its build info, no `_created` series."""
    disable_created_metrics()
    BUILD_INFO.clear()
    BUILD_INFO.labels(VERSION).set(1)
