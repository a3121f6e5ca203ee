"""How many of a leaf store's events wait on its own leaf node for the hub to source them (novapos.leaf).

In leaf mode the outbox empties into the box's local stream at once, so the outbox says "0 unsent" while the WAN is
down; what has not reached the hub is what the local stream holds past the last event the hub's events stream
sourced from it. The health reporter reads the local stream's state at each look (loopback, one stream info) and the
hub's figure from the answer to each health report (hub.ingest.leaf_sources.sourced_seq): events on the leaf past
that figure are unsourced. While the hub does not answer, its last figure stands (the hub holds at least that much):
the count only grows with each sale; before the hub's first answer since the edge started, the whole local stream
counts (an upper bound: the WAN may have been down since). A hub too old to give the figure leaves it unknown
(None, never an alarm). A store is "behind" once the hub's figure has stayed short of what the leaf held
a look earlier for BEHIND_ALERT_S: a sale sourced within a second is not news.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Gauge

BEHIND_ALERT_S = 60.0
"""Unsourced events this long make /healthz "degraded": longer than the hub's restart of a stalled source
([leaf] check_every_s, 15 s by default) and the next report after it."""
RECHECK_S = 2.0
"""While the hub is behind, the reporter reports this often (not every report_interval_s) to see it catch up."""
UNSOURCED = Gauge("novapos_edge_leaf_unsourced_events",
                  "Events on the store's leaf node that the hub's events stream has not sourced yet, as of the hub's last "
                  "answer to a health report (0 without a leaf node)")


class LeafBacklog:
    """What the reporter knows of its leaf stream and of the hub's sourcing of it; `clock` is monotonic seconds."""

    def __init__(self, behind_alert_s: float = BEHIND_ALERT_S) -> None:
        self.behind_alert_s = behind_alert_s
        self.first_seq, self.last_seq = 1, 0  # the local stream's state at the last look
        self._previous_last = 0  # ... at the look before it
        self.sourced: int | None = None  # the hub's last figure (None: no answer yet since start)
        self.unknown = False  # the hub answers without the figure (older than this edge)
        self._answered_at: float | None = None
        self._behind_since: float | None = None

    def looked(self, first_seq: int, last_seq: int, clock: float) -> None:
        """The local stream's state at a look."""
        self._previous_last = self.last_seq
        self.first_seq, self.last_seq = first_seq, last_seq
        self._update(clock)

    def answered(self, sourced: int | None, clock: float) -> None:
        """The hub's figure from its answer to a report (None: the hub does not give it)."""
        self.unknown, self._answered_at = sourced is None, clock
        if sourced is not None:
            self.sourced = sourced
        self._update(clock)

    @property
    def unsourced(self) -> int:
        """Events on the leaf past the hub's last figure (those aged out of the local stream left out)."""
        return max(0, self.last_seq - max(self.sourced or 0, self.first_seq - 1))

    def behind(self) -> bool:
        """The hub had not sourced, at its last answer, what the leaf held a look before: worth asking again soon."""
        return not self.unknown and self.sourced is not None and self.sourced < min(self._previous_last, self.last_seq)

    def _update(self, clock: float) -> None:
        if self.unknown or self.unsourced == 0 or (self.sourced is not None and self.sourced >= self._previous_last):
            self._behind_since = None  # nothing waits, or only what was sold since the previous look
        elif self._behind_since is None:
            self._behind_since = clock
        UNSOURCED.set(0 if self.unknown else self.unsourced)

    def status(self, clock: float | None = None) -> dict[str, Any]:
        """/healthz's fields: the count, how long ago the hub last answered, and a sentence once it is behind long."""
        now = time.monotonic() if clock is None else clock
        fields: dict[str, Any] = {
            "leaf_unsourced_events": None if self.unknown else self.unsourced,
            "leaf_hub_answered_s_ago": None if self._answered_at is None else round(now - self._answered_at, 1)}
        if self._behind_since is not None and now - self._behind_since >= self.behind_alert_s:
            fields["leaf_problem"] = (
                ("the hub has not answered since this edge started: up to " if self.sourced is None else "")
                + f"{self.unsourced} event(s) on this store's leaf node have not reached the hub for "
                f"{now - self._behind_since:.0f} s (they are safe on the box while its leaf folder is): check the "
                "store's WAN, `novapos leaf`'s log, and the hub's novapos_hub_leaf_sources_stalled")
        return fields
