"""The print spooler: receipts print once, in order, whenever their printer can.

Jobs are rows of the store's SQLite file (actors.storage.db), written by the outbox in the same
transaction as the sale they print, keyed by the sale's event id. The spooler renders each job when
it prints it and marks it printed only when the printer has confirmed the whole job. While a printer
is away or out of paper its jobs wait, retried with backoff, and at once when it reports ready again;
a job that was cut off mid-way is printed again in full, and a confirmed one never is. Jobs print
in the order of their sales (the store's sequence, not the wall clock, which may jump at boot). A job
that cannot be rendered is marked failed with the reason, and the jobs behind it go on printing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from prometheus_client import Counter, Gauge

from actors.devices.context import device_actor_name
from actors.printing.document import PrintDocument
from actors.printing.jobs import document_to_wire
from actors.printing.receipt import render_receipt
from actors.storage.db import connect
from edge_runtime import Actor

log = logging.getLogger(__name__)

PRINT_JOBS = Counter("novapos_edge_print_jobs_total", "Print jobs by result", ["result"])
PRINT_RETRIES = Counter("novapos_edge_print_retries_total", "Print attempts that left a job queued")
PRINT_QUEUE = Gauge("novapos_edge_print_queue_depth", "Print jobs waiting for their printer", ["printer"])

RENDERERS: dict[str, Callable[[str, dict[str, Any]], PrintDocument]] = {
    "sale.completed": render_receipt,
}

MAX_RETRY_S = 10.0
PRINT_TIMEOUT_S = 15.0
KEEP_PRINTED_S = 7 * 86400
PURGE_EVERY_S = 3600.0


class PrintSpoolerActor(Actor):
    def __init__(self, path: Path, store_name: str) -> None:
        super().__init__()
        self._path = path
        self._store_name = store_name
        self._retry_delay: dict[str, float] = {}
        self._retry_pending: set[str] = set()

    def started(self) -> None:
        self._db = connect(self._path)
        self.purge()
        for (printer,) in self._db.execute("SELECT DISTINCT printer FROM print_jobs WHERE state = 'queued'").fetchall():
            self.send_after(0.0, "printer_ready", printer)

    def purge(self) -> None:
        """Forget printed jobs older than a week; reschedules itself."""
        self._db.execute("DELETE FROM print_jobs WHERE state = 'printed' AND printed_at < ?",
                         (time.time() - KEEP_PRINTED_S,))
        self.send_after(PURGE_EVERY_S, "purge")

    def stopping(self) -> None:
        self._db.close()

    # -- protocol --------------------------------------------------------------------------

    def printer_ready(self, printer: str) -> None:
        """A printer came up or got paper back, or a job was queued for it: print what waits."""
        self._retry_delay.pop(printer, None)
        self._dispatch(printer)

    def retry(self, printer: str) -> None:
        self._retry_pending.discard(printer)
        self._dispatch(printer)

    def jobs(self) -> list[dict[str, Any]]:
        """The latest 100 jobs, newest first."""
        columns = ("id", "printer", "kind", "seq", "state", "attempts", "reason", "queued_at", "printed_at")
        rows = self._db.execute(f"SELECT {', '.join(columns)} FROM print_jobs ORDER BY seq DESC LIMIT 100").fetchall()
        return [dict(zip(columns, row, strict=False)) for row in rows]

    # -- work ------------------------------------------------------------------------------

    def _queued(self, printer: str) -> list[tuple[str, str, bytes]]:
        return self._db.execute("SELECT id, kind, payload FROM print_jobs WHERE printer = ? AND state = 'queued' "
                                "ORDER BY seq", (printer,)).fetchall()

    def _render(self, job_id: str, kind: str, payload: bytes) -> dict[str, Any] | None:
        """The job as a print document, or None after marking it failed (an unknown kind, a broken payload)."""
        try:
            return document_to_wire(RENDERERS[kind](self._store_name, msgpack.unpackb(payload)))
        except Exception as exc:  # one bad job must not stop the receipts behind it, nor crash the store
            reason = f"cannot render a {kind!r} job: {type(exc).__name__}: {exc}"
            self._db.execute("UPDATE print_jobs SET state = 'failed', reason = ? WHERE id = ?", (reason, job_id))
            PRINT_JOBS.labels("failed").inc()
            log.error("print job %s failed for good: %s", job_id, reason)
            return None

    def _dispatch(self, printer: str) -> None:
        for job_id, kind, payload in self._queued(printer):
            document = self._render(job_id, kind, payload)
            if document is None:
                continue
            outcome = self._attempt(printer, job_id, document)
            if outcome != "printed":
                self._db.execute("UPDATE print_jobs SET attempts = attempts + 1 WHERE id = ?", (job_id,))
                PRINT_RETRIES.inc()
                self._schedule_retry(printer, outcome)
                break
            self._db.execute("UPDATE print_jobs SET state = 'printed', printed_at = ? WHERE id = ?",
                             (time.time(), job_id))
            PRINT_JOBS.labels("printed").inc()
        PRINT_QUEUE.labels(printer).set(len(self._queued(printer)))

    def _attempt(self, printer: str, job_id: str, document: dict[str, Any]) -> str:
        try:
            return str(self.registry.ask(device_actor_name(printer), "print_job", job_id, document,
                                         timeout=PRINT_TIMEOUT_S))
        except LookupError:
            return "absent"  # unplugged: the printer reports ready when it is back
        except Exception as exc:  # the printer actor crashed on this job; its supervisor restarts it
            log.warning("printer %s failed on job %s (%s: %s); the job stays queued",
                        printer, job_id, type(exc).__name__, exc)
            return "error"

    def _schedule_retry(self, printer: str, outcome: str) -> None:
        delay = min(MAX_RETRY_S, max(0.25, self._retry_delay.get(printer, 0.0) * 2))
        self._retry_delay[printer] = delay
        log.info("printer %s %s: its jobs wait, next try in %.2f s", printer, outcome.replace("_", " "), delay)
        if printer not in self._retry_pending:
            self._retry_pending.add(printer)
            self.send_after(delay, "retry", printer)
