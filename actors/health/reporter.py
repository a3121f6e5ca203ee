"""Tells the hub how this store is, every `report_interval_s` and at once when something changes.

Every CHECK_EVERY_S the reporter looks (asks the device manager and each till, reads the outbox's backlog and the
last sale from the store's file, read-only: no message to the outbox, so a look never waits behind a sale) and
reports at once when a device's state, the outbox going from empty to
not (an event waiting BACKLOG_AFTER_MS: every sale passes through it) or back, or the set of open tills
changed; otherwise every `report_interval_s`. Looking once a second
is the debounce: a burst of changes within it is one report. A report is a NATS request on the store's own
subject, answered by the hub with its clock (the store's clock skew is logged once when it is over a minute).

A store running a leaf node (novapos.leaf) says so in its reports; the hub's answer then carries how far its events
stream has sourced the leaf's stream, and the reporter counts the events still waiting on the leaf
(actors.health.leaf: the outbox cannot see them), reporting every RECHECK_S while the hub is behind.

It never holds up selling: it is an actor of its own, asks with short timeouts (a busy till keeps its last
known state) and, while NATS or the hub does not answer, says so once and tries again at the next look.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats.errors
import pykka

from actors.devices.context import MANAGER
from actors.health.leaf import RECHECK_S, LeafBacklog
from actors.storage.outbox import Backlog, quiet_event_time, read_backlog
from edge_runtime import Actor, AsyncioSeam
from novapos.__about__ import VERSION
from novapos.adapters.nats import NatsLink
from novapos.validators import Invalid
from novapos.wire.health import (
    Device,
    HealthReport,
    LastSale,
    decode_reply,
    encode_report,
    health_subject,
    safe_detail,
)
from novapos.wire.leaf import leaf_events_stream
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
ASK_TIMEOUT_S = 1.0
ANSWER_WITHIN_S = 2.0
SKEW_WARNING_MS = 60_000
BACKLOG_AFTER_MS = 2000
"""The outbox counts as no longer empty once an event has waited this long: every sale passes through it for
milliseconds, and a report per sale would be noise; a backlog forming (NATS or the stream refusing) is news."""
LAST_SALE_SQL = "SELECT seq, completed_at FROM completed ORDER BY rowid DESC LIMIT 1"


class HealthReporter(Actor):
    """One per store, named "health". `link` is the edge's (the forwarder connects it; its owner closes it): with
    `leaf`, a link to the store's own leaf node, whose local events stream it reads at each look."""

    def __init__(self, seam: AsyncioSeam, link: NatsLink, tenant: str, store: str, tills: Sequence[str],
                 db_path: Path, interval_s: int, check_every_s: float = CHECK_EVERY_S, *,
                 leaf: LeafBacklog | None = None) -> None:
        super().__init__()
        self._leaf = leaf
        self._leaf_stream = leaf_events_stream(tenant, store)
        self._seam, self._link = seam, link
        self._subject = health_subject(tenant, store)
        self._tills = tuple(tills)
        self._db_path = db_path
        self._interval_s = interval_s
        self._check_every_s = check_every_s
        self._devices: tuple[Device, ...] = ()
        self._backlog = Backlog(0, None)
        self._open: dict[str, bool] = {}
        self._reported: tuple[Any, ...] | None = None  # what the hub last took: the change signature
        self._reported_at = -float("inf")
        self._failing = False
        self._skew_said = False
        self._refused: str | None = None  # the hub's last reason for not keeping a report, said once
        self._db: sqlite3.Connection | None = None

    def started(self) -> None:
        self.send_after(0.0, "check")

    def stopping(self) -> None:
        if self._db is not None:
            self._db.close()

    def check(self) -> None:
        """Look, and report when something changed or the interval is up; reschedules itself."""
        try:
            report = self._look()
            backlog = report.oldest_unsent_ms is not None and report.oldest_unsent_ms >= BACKLOG_AFTER_MS
            signature = (tuple((d.name, d.state) for d in report.devices), backlog, report.open_tills)
            since = time.monotonic() - self._reported_at
            due = since >= self._interval_s or (self._leaf is not None and self._leaf.behind() and since >= RECHECK_S)
            if self._reported is None or signature != self._reported or due:
                reason = "start" if self._reported is None else "change" if signature != self._reported else "interval"
                if self._send(replace(report, reason=reason)):
                    self._reported, self._reported_at = signature, time.monotonic()
        except Exception as exc:  # a report is never worth a restart storm that could take the store's tree down
            self._fails(f"{type(exc).__name__}: {exc}")
        finally:
            self.send_after(self._check_every_s, "check")

    def _look(self) -> HealthReport:
        try:
            statuses: list[dict[str, Any]] = self.registry.ask(MANAGER, "statuses", timeout=ASK_TIMEOUT_S)
            self._devices = tuple(Device(s["device"], s["kind"], s["state"], safe_detail(s["detail"] or ""))
                                  for s in statuses)
        except pykka.Timeout:
            pass  # the manager is busy (a slow scan): its last answer stands
        for till in self._tills:
            try:
                self._open[till] = self.registry.ask(f"till.{till}", "state", timeout=ASK_TIMEOUT_S)["session"] is not None
            except pykka.Timeout:
                pass  # a till busy selling keeps its last known state
        self._read_backlog()
        if self._leaf is not None and self._link.connected:
            try:
                first, last = self._seam.run_blocking(self._leaf_state, timeout=ASK_TIMEOUT_S)
                self._leaf.looked(first, last, time.monotonic())
            except (TimeoutError, OSError, nats.errors.Error) as exc:  # the stream not made yet: its last state stands
                log.debug("reading the leaf's stream: %s", exc)
        oldest = None if self._backlog.oldest_age_s is None else round(self._backlog.oldest_age_s * 1000)
        return HealthReport(version=VERSION, sent_at_ms=int(time.time() * 1000), interval_s=self._interval_s,
                            reason="interval", outbox_depth=self._backlog.depth, oldest_unsent_ms=oldest,
                            devices=self._devices, open_tills=tuple(sorted(t for t, o in self._open.items() if o)),
                            last_sale=self._last_sale(), leaf=self._leaf is not None)

    def leaf(self) -> dict[str, Any]:
        """/healthz's leaf fields (none without a leaf node): see LeafBacklog.status."""
        return {} if self._leaf is None else self._leaf.status()

    def _file(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(f"file:{self._db_path}?mode=ro", uri=True, check_same_thread=False)
        return self._db

    def _read_backlog(self) -> None:
        try:
            self._backlog = read_backlog(self._file(), quiet_event_time)
        except sqlite3.Error as exc:  # not made yet, or locked by a program holding it: the last reading stands
            log.debug("reading the outbox's backlog: %s", exc)

    def _last_sale(self) -> LastSale | None:
        try:
            row = self._file().execute(LAST_SALE_SQL).fetchone()
        except sqlite3.Error as exc:  # not made yet, or locked by a program holding it: next look
            log.debug("reading the last sale: %s", exc)
            return None
        return None if row is None else LastSale(seq=int(row[0]), at_ms=int(row[1] * 1000))

    def _send(self, report: HealthReport) -> bool:
        if not self._link.connected:  # the forwarder connects the link; until then there is nobody to tell
            self._fails("the store is not connected to the hub's NATS")
            return False
        try:
            reply = self._seam.run_blocking(self._request, encode_report(report), timeout=ANSWER_WITHIN_S + 1)
        except (TimeoutError, OSError, nats.errors.Error, Invalid, ValueError) as exc:
            self._fails(str(exc) or type(exc).__name__)
            return False
        if self._failing:
            log.info("the hub takes this store's health reports again")
            self._failing = False
        if reply.error is not None and reply.error != self._refused:
            log.warning("the hub did not keep this store's health report: %s", reply.error)
        self._refused = reply.error
        if self._leaf is not None:
            self._leaf.answered(reply.leaf_sourced_seq, time.monotonic())
        if abs(reply.skew_ms) > SKEW_WARNING_MS and not self._skew_said:
            self._skew_said = True
            log.warning("this store's clock is %+.0f s off the hub's: check NTP on the store box", reply.skew_ms / 1000)
        return True

    async def _leaf_state(self) -> tuple[int, int]:
        state = (await self._link.js.stream_info(self._leaf_stream)).state
        return state.first_seq, state.last_seq

    async def _request(self, data: bytes) -> Any:
        reply = await self._link.client.request(self._subject, data, timeout=ANSWER_WITHIN_S)
        headers = reply.headers or {}
        if ERROR_CODE_HEADER in headers:
            raise ValueError(f"the hub refused the report ({headers.get(ERROR_HEADER, headers[ERROR_CODE_HEADER])})")
        return decode_reply(reply.data)

    def _fails(self, why: str) -> None:
        if not self._failing:
            self._failing = True
            log.warning("cannot report this store's health to the hub (%s); selling goes on, the next report is "
                        "tried in %.0f s. Check the store's network and the hub", why, self._check_every_s)
