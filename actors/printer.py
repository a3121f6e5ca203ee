"""The receipt printer actor: print jobs with ids, printed once, queued while the printer is away.

A job id is the sale's event id, so a retried request prints nothing new. Jobs wait in order while
the printer is unreachable and are retried with backoff; the sale never waits for the printer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from prometheus_client import Counter, Gauge

from actors.receipt import render_receipt
from drivers.escpos_printer import EscPosPrinter, PrintDocument, PrinterUnavailable
from edge_runtime import Actor

log = logging.getLogger(__name__)

PRINT_JOBS = Counter("novapos_edge_print_jobs_total", "Receipt print jobs by result", ["result"])
PRINT_QUEUE = Gauge("novapos_edge_print_queue_depth", "Print jobs waiting for the printer")

REMEMBERED_JOBS = 1000
MAX_RETRY_S = 10.0


class ReceiptPrinterActor(Actor):
    def __init__(self, host: str, port: int, store_name: str, timeout: float = 2.0) -> None:
        super().__init__()
        self._printer = EscPosPrinter(host, port, timeout=timeout)
        self._store_name = store_name
        self._queue: OrderedDict[str, PrintDocument] = OrderedDict()
        self._printed: OrderedDict[str, None] = OrderedDict()
        self._retry_delay = 0.0
        self._retry_scheduled = False

    def stopping(self) -> None:
        if self._queue:
            log.warning("printer stopping with %d receipt(s) unprinted", len(self._queue))
        self._printer.close()

    def print_receipt(self, job_id: str, sale: dict[str, Any]) -> None:
        if job_id in self._printed or job_id in self._queue:
            PRINT_JOBS.labels("duplicate").inc()
            return
        self._queue[job_id] = render_receipt(self._store_name, sale)
        self._work()

    def retry(self) -> None:
        self._retry_scheduled = False
        self._work()

    def queued(self) -> list[str]:
        return list(self._queue)

    def _work(self) -> None:
        while self._queue:
            job_id, document = next(iter(self._queue.items()))
            try:
                self._printer.print_document(document)
            except PrinterUnavailable as exc:
                self._printer.close()
                self._retry_delay = min(MAX_RETRY_S, max(0.25, self._retry_delay * 2))
                PRINT_JOBS.labels("retry").inc()
                log.warning("printer unavailable (%s): %d job(s) queued, retrying in %.2f s",
                            exc, len(self._queue), self._retry_delay)
                if not self._retry_scheduled:
                    self._retry_scheduled = True
                    self.send_after(self._retry_delay, "retry")
                break
            del self._queue[job_id]
            self._printed[job_id] = None
            if len(self._printed) > REMEMBERED_JOBS:
                self._printed.popitem(last=False)
            self._retry_delay = 0.0
            PRINT_JOBS.labels("printed").inc()
        PRINT_QUEUE.set(len(self._queue))
