"""A barcode scanner that is plugged in: every scan becomes a line on the till it is bound to.

What a scanner reads is never logged: besides products it reads gift cards, loyalty cards and coupons, and
a refusal's sentence quotes the code (the till's page shows it; the log says the scan was refused, and why
in one word)."""

from __future__ import annotations

import logging

import pykka
from prometheus_client import Counter

from actors.devices.base import DeviceActor
from actors.protocol import Rejected
from drivers.barcode_scanner import BarcodeScanner
from drivers.errors import DeviceGone
from edge_runtime import Backoff

log = logging.getLogger(__name__)

SCANS = Counter("novapos_edge_scans_total", "Barcodes read by scanners, by outcome", ["device", "result"])

RECONNECT = Backoff(initial=0.25, maximum=5.0)
"""A scanner that went away is tried again at once, then after 0.25 s, 0.5 s... at most every 5 s."""
READ_TIMEOUT_S = 0.5  # a read returns as soon as a barcode is complete: this only sets idle wake-ups
TILL_WAIT_S = 10.0


class ScannerDevice(DeviceActor):
    def started(self) -> None:
        self._scanner: BarcodeScanner | None = None
        self._failed_connects = 0  # in a row, since the scanner was last reachable
        self._connect()
        self._next_poll()

    def stopping(self) -> None:
        if self._scanner is not None:
            self._scanner.close()

    def _connect(self) -> None:
        scanner: BarcodeScanner = self.open_driver()
        try:
            scanner.open()
        except DeviceGone as exc:
            self._failed_connects += 1
            self.report("offline", str(exc))
            return
        self._failed_connects = 0
        self._scanner = scanner
        where = self.seen.address if self.seen is not None else self.rule.path
        self.report("ready", f"at {where}, " + (f"bound to {self.rule.till}" if self.rule.till else "bound to no till"))

    def poll(self) -> None:
        """Read for a short while, deliver what came, go again (the mailbox stays responsive between reads)."""
        if self._scanner is None:
            self._connect()
            self._next_poll()
            return
        try:
            barcodes = self._scanner.read_barcodes(READ_TIMEOUT_S)
        except DeviceGone as exc:
            self._scanner.close()
            self._scanner = None
            self.report("offline", str(exc))
            self._next_poll()
            return
        for barcode in barcodes:
            self._deliver(barcode)
        self._next_poll()

    def _next_poll(self) -> None:
        """Read again at once while connected; else connect again after the backoff (the first try
        after losing the scanner is immediate, the one after n failed connects is attempt n+1)."""
        self.send_after(0.0 if self._scanner else RECONNECT.delay(self._failed_connects + 1), "poll")

    def _deliver(self, barcode: str) -> None:
        if self.rule.till is None:
            SCANS.labels(self.rule.name, "unbound").inc()
            log.warning("scanner %s read a code but is bound to no till: set `till` in its rule", self.rule.name)
            return
        try:
            answer = self.registry.ask(f"till.{self.rule.till}", "scan", barcode, self.rule.name, timeout=TILL_WAIT_S)
        except (pykka.Timeout, LookupError) as exc:  # the till is busy or restarting: this scan is lost, say so
            SCANS.labels(self.rule.name, "lost").inc()
            log.warning("scanner %s: till %s did not take a scan (%s); scan it again", self.rule.name, self.rule.till,
                        type(exc).__name__)
            return
        if isinstance(answer, Rejected):
            SCANS.labels(self.rule.name, "rejected").inc()
            log.info("scanner %s: till %s refused a scan (%s)", self.rule.name, self.rule.till, answer.reason)
        else:
            SCANS.labels(self.rule.name, "added").inc()
