"""The print spooler: receipts print once, in order, whenever their printer can.

Jobs are rows of the store's SQLite file (actors.storage.db), written by the outbox in the same
transaction as the sale they print, keyed by the sale's event id. The spooler renders each job when
it prints it and marks it printed only when the printer has confirmed the whole job. While a printer
is away or out of paper its jobs wait, retried with backoff, and at once when it reports ready again;
a job that was cut off mid-way is printed again in full, and a confirmed one never is. Jobs print
in the order of their sales (the store's sequence, not the wall clock, which may jump at boot). A job
that cannot be rendered is marked failed with the reason, and the jobs behind it go on printing.

Nothing depends on being told: the spooler also sweeps the file every `SWEEP_S`, so a job committed
without a wake-up (a lost tell, a commit that landed after the till stopped waiting) prints anyway.
A receipt printed late (queued more than `LATE_AFTER_S` before, or after its printer failed to
print it) is headed "LATE RECEIPT - sale #..." so it is never taken for the next customer's. Jobs for
a printer that is no longer in the config (renamed, removed) can never print: they are failed with
the reason, once, with a warning, instead of being retried for ever.

Each job kind has its renderer (RENDERERS: a sale's receipt, a return's, the drawer's X and Z reports), given
the store's receipt settings and who a login is (the staff list, asked with a short timeout: a name the list
cannot give in time prints as the login). Dates are the store's wall-clock time ([receipt] timezone). After a
printer fault the cashier may reprint the till's last receipt (`reprint`): a new job for the same event,
marked as a copy, audited (till.reprint) before it is queued, so no copy prints unrecorded.

A store file another program holds locked stops no receipt for good and crashes nothing: the
sweep still reads the queue; a job whose printer confirmed it while its "printed" mark could not be
written is remembered here (never printed twice) and marked at the next sweep; other marks (an
attempt, a failure) are written at a later sweep (see actors.storage.db).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any

import msgpack
from prometheus_client import Counter, Gauge

from actors.devices.context import device_actor_name
from actors.printing.document import PrintDocument
from actors.printing.jobs import document_to_wire
from actors.printing.receipt import ReceiptContext, Renderer, late_heading, render_receipt, render_return
from actors.printing.reports import X_KIND, render_x, render_z
from actors.protocol import Rejected
from actors.storage.audit import record_at_store
from actors.storage.db import LockWatch, connect, is_busy
from edge_runtime import Actor, Backoff
from novapos.config.receipt import ReceiptSettings
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

PRINT_JOBS = Counter("novapos_edge_print_jobs_total", "Print jobs by result", ["result"])
PRINT_RETRIES = Counter("novapos_edge_print_retries_total", "Print attempts that left a job queued")
PRINT_QUEUE = Gauge("novapos_edge_print_queue_depth", "Print jobs waiting for their printer (the device)", ["device"])

RENDERERS: dict[str, Renderer] = {
    "sale.completed": render_receipt,
    "return.completed": render_return,
    "drawer.closed": render_z,
    X_KIND: render_x,
}
RECEIPTS = ("sale.completed", "return.completed")
"""The kinds of job a customer takes away: the ones a cashier may reprint."""

RETRY_BACKOFF = Backoff(initial=0.25, maximum=10.0)
SWEEP_S = 2.0
LATE_AFTER_S = 60.0
PRINT_TIMEOUT_S = 15.0
KEEP_PRINTED_S = 7 * 86400
PURGE_EVERY_S = 3600.0
LISTED_SALES = 10  # sales named in one log line
NAME_TIMEOUT_S = 0.5  # the staff list's answer for a cashier's name; a receipt never waits longer for it
NAME_KEEP_S = 300.0  # a name (or that there is none) is asked again after this; a renamed cashier shows soon
NAME_RETRY_S = 30.0  # after no answer in time, the name is asked again after this
LAST_RECEIPT_SCAN = 200  # recent jobs of a printer searched for a till's last receipt (printers may be shared)


class PrintSpoolerActor(Actor):
    def __init__(self, path: Path, receipt: ReceiptSettings, printers: Collection[str]) -> None:
        """receipt: what receipts print about the store; printers: the configured printers' names."""
        super().__init__()
        self._path = path
        self._context = ReceiptContext(receipt, self._name_of)
        self._printers = frozenset(printers)
        self._failures: dict[str, int] = {}  # attempts in a row that left a printer's jobs queued
        self._retry_pending: set[str] = set()
        self._unmarked: dict[str, float] = {}  # job id -> when its printer confirmed it, not yet written
        self._names: dict[str, tuple[float, str | None]] = {}  # login -> (when asked, full name or None)
        self._lock = LockWatch(path, "the print spooler", "receipts wait, and none prints twice")

    def started(self) -> None:
        self._db = connect(self._path)
        self.send_after(0.0, "purge")  # not in started(): a locked file must not hold up the start
        self.send_after(0.0, "sweep")

    def _write(self, sql: str, args: tuple[Any, ...]) -> bool:
        """One autocommitted write; False (logged once) while another program holds the file."""
        try:
            self._db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            self._lock.locked(exc)
            return False
        self._lock.free()
        return True

    def purge(self) -> None:
        """Forget printed jobs older than a week; reschedules itself."""
        self._write("DELETE FROM print_jobs WHERE state = 'printed' AND printed_at < ?", (time.time() - KEEP_PRINTED_S,))
        self.send_after(PURGE_EVERY_S, "purge")

    def stopping(self) -> None:
        self._db.close()

    # -- protocol --------------------------------------------------------------------------

    def printer_ready(self, printer: str) -> None:
        """A printer came up or got paper back, or a job was queued for it: print what waits."""
        self._failures.pop(printer, None)
        self._dispatch(printer)

    def retry(self, printer: str) -> None:
        self._retry_pending.discard(printer)
        self._dispatch(printer)

    def sweep(self) -> None:
        """Print what waits for any printer not already waiting out a retry; reschedules itself."""
        self._mark_printed()
        for (printer,) in self._db.execute("SELECT DISTINCT printer FROM print_jobs WHERE state = 'queued'").fetchall():
            if printer not in self._printers:
                self._fail_unconfigured(printer)
            elif printer not in self._retry_pending:
                self._dispatch(printer)
        self.send_after(SWEEP_S, "sweep")

    def last_receipt(self, till: str, printer: str) -> dict[str, Any] | Rejected:
        """The till's last receipt on `printer` as a reprint would print it, with how its job went."""
        found = self._last_receipt(till, printer)
        if isinstance(found, Rejected):
            return found
        job, row = found
        document = self._render(row["id"], row["kind"], {**job, "reprint": True}, row["queued_at"], preview=True)
        if document is None:
            return Rejected("conflict", f"the last receipt of till {till} cannot be printed: {row['reason']}")
        return {"order": job["id"], "seq": job["seq"], "kind": row["kind"], "printer": printer,
                "state": row["state"], "reason": row["reason"], "attempts": row["attempts"],
                "document": document_to_wire(document)}

    def reprint(self, till: str, printer: str, actor: str) -> dict[str, Any] | Rejected:
        """Print the till's last receipt again, marked as a copy: audited first (till.reprint, by `actor`),
        then queued as a job of its own and printed as soon as the printer can. Refused while that receipt
        (or a copy) still waits for the printer: it will print by itself, and twice is one too many."""
        found = self._last_receipt(till, printer)
        if isinstance(found, Rejected):
            return found
        job, row = found
        if self._waiting(printer, job["id"]):
            return Rejected("conflict", f"the receipt of {row['kind'].split('.')[0]} #{job['seq']} is still waiting for "
                                        f"printer {printer}: it prints by itself once the printer is ready (paper "
                                        f"loaded, cover closed), so it is not queued twice")
        audited = record_at_store(self.registry, "till.reprint", actor, till, target=job["id"],
                                  details={"seq": job["seq"], "kind": row["kind"], "printer": printer})
        if isinstance(audited, Rejected):
            return audited
        copy = str(uuid7())
        payload = msgpack.packb({**job, "reprint": True, "at": job.get("at", row["queued_at"])})
        if not self._write("INSERT INTO print_jobs (id, printer, kind, payload, seq, queued_at) VALUES (?, ?, ?, ?, ?, ?)",
                           (copy, printer, row["kind"], payload, row["seq"], time.time())):
            return Rejected("busy", "the store's file is locked by another program: the reprint was not queued; "
                                    "press reprint again in a moment")
        log.info("till %s: receipt of %s (#%s) reprinted on %s by %s", till, job["id"], job["seq"], printer, actor)
        self._dispatch(printer)
        return {"order": job["id"], "seq": job["seq"], "kind": row["kind"], "printer": printer, "job": copy}

    def jobs(self) -> list[dict[str, Any]]:
        """The latest 100 jobs, newest first."""
        columns = ("id", "printer", "kind", "seq", "state", "attempts", "reason", "queued_at", "printed_at")
        rows = self._db.execute(f"SELECT {', '.join(columns)} FROM print_jobs ORDER BY seq DESC LIMIT 100").fetchall()
        return [dict(zip(columns, row, strict=False)) for row in rows]

    # -- work ------------------------------------------------------------------------------

    def _name_of(self, login: str) -> str | None:
        """The full name the staff list gives `login`, or None (no list, not on it, no answer in time). Kept
        for NAME_KEEP_S, so a staff actor stuck on an unreachable hub delays one receipt at most, not each."""
        asked, name = self._names.get(login, (float("-inf"), None))
        if time.monotonic() - asked < NAME_KEEP_S:
            return name
        now = time.monotonic()
        try:
            member = self.registry.ask("staff", "lookup", login, timeout=NAME_TIMEOUT_S)
        except Exception:  # no staff actor, or busy: the login is printed, and asked again sooner
            member, now = None, now - NAME_KEEP_S + NAME_RETRY_S
        name = str(member["name"]) if isinstance(member, dict) and member.get("name") else None
        if len(self._names) > 1000:
            self._names.clear()  # bounded: a store has far fewer people
        self._names[login] = (now, name)
        return name

    def _waiting(self, printer: str, order: str) -> bool:
        """Whether a job printing `order` (the original or a copy) still waits for `printer`."""
        for (payload,) in self._db.execute("SELECT payload FROM print_jobs WHERE printer = ? AND state = 'queued'",
                                           (printer,)):
            try:
                if msgpack.unpackb(payload).get("id") == order:
                    return True
            except Exception:  # a broken payload is failed by the sweep, and is no receipt of this order
                continue
        return False

    def _last_receipt(self, till: str, printer: str) -> tuple[dict[str, Any], dict[str, Any]] | Rejected:
        """The newest customer receipt job of `till` on `printer` (its payload, its row)."""
        columns = ("id", "kind", "payload", "seq", "state", "attempts", "reason", "queued_at")
        rows = self._db.execute(
            f"SELECT {', '.join(columns)} FROM print_jobs WHERE printer = ? AND kind IN ({', '.join('?' * len(RECEIPTS))}) "
            "ORDER BY seq DESC, queued_at DESC LIMIT ?", (printer, *RECEIPTS, LAST_RECEIPT_SCAN)).fetchall()
        for values in rows:
            row = dict(zip(columns, values, strict=True))
            try:
                job = msgpack.unpackb(row["payload"])
            except Exception:  # a broken payload: that job failed already; look further back
                continue
            if isinstance(job, dict) and isinstance(job.get("body"), dict) and job["body"].get("till") == till:
                return job, row
        return Rejected("not_found", f"till {till} has no receipt to print again: no sale or return was "
                                     f"printed there recently")

    def _queued(self, printer: str) -> list[tuple[str, str, bytes, int, float, int]]:
        rows = self._db.execute("SELECT id, kind, payload, seq, queued_at, attempts FROM print_jobs "
                                "WHERE printer = ? AND state = 'queued' ORDER BY seq", (printer,)).fetchall()
        return [row for row in rows if row[0] not in self._unmarked]  # printed: only its mark waits

    def _mark_printed(self, job_id: str | None = None, printed_at: float = 0.0) -> None:
        """Mark `job_id` printed, with every confirmed job whose mark a locked file held up."""
        if job_id is not None:
            self._unmarked[job_id] = printed_at
        for waiting, when in list(self._unmarked.items()):
            if not self._write("UPDATE print_jobs SET state = 'printed', printed_at = ? WHERE id = ?", (when, waiting)):
                return
            del self._unmarked[waiting]

    def _fail_unconfigured(self, printer: str) -> None:
        """Jobs for a printer the config no longer names can never print: fail them, say what to do."""
        sales = [seq for (seq,) in self._db.execute(
            "SELECT seq FROM print_jobs WHERE printer = ? AND state = 'queued' ORDER BY seq", (printer,))]
        reason = (f"printer {printer!r} is no longer configured: this receipt was not printed "
                  f"(the sale itself is recorded)")
        if not self._write("UPDATE print_jobs SET state = 'failed', reason = ? WHERE printer = ? AND state = 'queued'",
                           (reason, printer)):
            return  # said at the next sweep that gets through
        PRINT_JOBS.labels("failed").inc(len(sales))
        listed = ", ".join(f"sale #{seq}" for seq in sales[:LISTED_SALES])
        more = f" and {len(sales) - LISTED_SALES} more" if len(sales) > LISTED_SALES else ""
        log.warning("%d receipt(s) queued for printer %r will not print: no printer of that name is in the store "
                    "config any more (%s%s); they are marked failed in GET /api/print-jobs. If the printer was "
                    "renamed, nothing else is needed (the sales are recorded); the configured printers are: %s",
                    len(sales), printer, listed, more, ", ".join(sorted(self._printers)) or "none")

    def _render(self, job_id: str, kind: str, payload: bytes | dict[str, Any], queued_at: float, *,
                retried: bool = False, preview: bool = False) -> PrintDocument | None:
        """The job as a print document, or None after marking it failed (an unknown kind, a broken payload;
        a preview marks nothing). A reprint is dated at its sale (`at` in its payload), a job at its queueing
        (in the sale's own transaction); one retried or printed late is headed so, a reprint has its own mark."""
        try:
            job = msgpack.unpackb(payload) if isinstance(payload, bytes) else payload
            at = datetime.fromtimestamp(float(job.get("at", queued_at)), self._context.settings.zone)
            document = RENDERERS[kind](self._context, job, at)
        except Exception as exc:  # one bad job must not stop the receipts behind it, nor crash the store
            if preview:
                return None
            reason = f"cannot render a {kind!r} job: {type(exc).__name__}: {exc}"
            if not self._write("UPDATE print_jobs SET state = 'failed', reason = ? WHERE id = ?", (reason, job_id)):
                return None  # failed again, and marked, at a later sweep
            PRINT_JOBS.labels("failed").inc()
            log.error("print job %s failed for good: %r", job_id, reason)  # %r: the payload's text stays one line
            return None
        if not preview and not job.get("reprint") and (retried or time.time() - queued_at > LATE_AFTER_S):
            document = document.headed(*late_heading(int(job.get("seq", 0)), at))
        return document

    def _dispatch(self, printer: str) -> None:
        for job_id, kind, payload, _seq, queued_at, attempts in self._queued(printer):
            document = self._render(job_id, kind, payload, queued_at, retried=bool(attempts))
            if document is None:
                continue
            outcome = self._attempt(printer, job_id, document_to_wire(document))
            if outcome != "printed":
                self._write("UPDATE print_jobs SET attempts = attempts + 1 WHERE id = ?", (job_id,))
                PRINT_RETRIES.inc()
                self._schedule_retry(printer, outcome)
                break
            self._mark_printed(job_id, time.time())
            PRINT_JOBS.labels("printed").inc()
            self._failures.pop(printer, None)
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
        failures = self._failures[printer] = self._failures.get(printer, 0) + 1
        delay = RETRY_BACKOFF.delay(failures + 1)  # Backoff's first delay is for the second try in a row
        log.info("printer %s %s: its jobs wait, next try in %.2f s", printer, outcome.replace("_", " "), delay)
        if printer not in self._retry_pending:
            self._retry_pending.add(printer)
            self.send_after(delay, "retry", printer)
