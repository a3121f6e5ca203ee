"""A receipt printer that is plugged in: prints the spooler's jobs and watches paper and online status.

A job counts as printed only when the printer has confirmed it: the job is followed by a real-time
status query, and the answer can only come after the printer has taken in the whole job. A job cut
off by an unplug is therefore retried, and printed once, when the printer comes back.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from actors.devices.base import DeviceActor
from actors.devices.context import SPOOLER
from actors.printing.jobs import document_from_wire
from drivers.escpos_printer import EscPosPrinter, PrinterStatus, PrinterUnavailable

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0
NOT_PRINTING = frozenset({"paper_out", "offline", "error"})
REMEMBERED_JOBS = 256


def state_of(status: PrinterStatus) -> str:
    if status.paper == "out":
        return "paper_out"
    if status.problem is not None:
        return "error"
    if not status.online:
        return "offline"
    return "paper_near_end" if status.paper == "near_end" else "ready"


class PrinterDevice(DeviceActor):
    def started(self) -> None:
        self._printer: EscPosPrinter = self.open_driver()
        self._state = "starting"
        self._confirmed: OrderedDict[str, None] = OrderedDict()  # jobs this printer confirmed, newest last
        self.poll_status()

    def stopping(self) -> None:
        self._printer.close()

    def poll_status(self) -> None:
        """Read the real-time status; reschedules itself."""
        self._apply(self._printer.status())
        self.send_after(STATUS_INTERVAL_S, "poll_status")

    def print_job(self, job_id: str, document: dict[str, Any]) -> str:
        """'printed', or why not: 'paper_out', 'offline' or 'error' (the spooler keeps the job, retries).

        A job this printer already confirmed is not printed again: the spooler may ask twice if its
        first ask timed out while the job was printing."""
        if job_id in self._confirmed:
            return "printed"
        before = self._printer.status()
        self._apply(before)
        if self._state in NOT_PRINTING:
            return self._state
        try:
            after = self._printer.print_document_confirmed(document_from_wire(document))
        except PrinterUnavailable as exc:
            log.warning("printer %s: job %s not confirmed (%s); it stays queued", self.rule.name, job_id, exc)
            self._printer.close()
            self._apply(PrinterStatus(online=False, paper="unknown"))
            return "offline"
        self._apply(after)
        if after.paper == "out":  # ran out during the job: the end of the receipt may be missing
            log.warning("printer %s: paper ran out during job %s; it prints again, whole, once paper is in",
                        self.rule.name, job_id)
            return "paper_out"
        self._confirmed[job_id] = None
        if len(self._confirmed) > REMEMBERED_JOBS:
            self._confirmed.popitem(last=False)
        return "printed"

    def kick_drawer(self, pin: int) -> bool:
        """Pulse a drawer wired to this printer; immediate, never queued behind receipts."""
        try:
            self._printer.kick_drawer(pin)
        except PrinterUnavailable as exc:
            log.warning("printer %s: drawer kick on pin %d failed: %s", self.rule.name, pin, exc)
            return False
        return True

    def _apply(self, status: PrinterStatus) -> None:
        state = state_of(status)
        self.report(state, status.problem or f"paper {status.paper}")  # reports only what changed
        was, self._state = self._state, state
        if state in ("ready", "paper_near_end") and was not in ("ready", "paper_near_end"):
            self.registry.tell(SPOOLER, "printer_ready", self.rule.name)
