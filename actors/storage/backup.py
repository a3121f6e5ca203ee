"""Backups of the store's SQLite file, taken with SQLite's online backup API while the store sells.

The copy is one read transaction on the live file (sqlite3_backup_step over every page at once): WAL lets the
outbox and the spooler go on writing meanwhile, and the copy is the file as of one commit, never a torn one (a
file copied with cp while a sale commits can be). It is written beside its final name, checked (quick_check),
synced to disk, then renamed: a backup folder holds only whole backups, named by time and by the store's last
sequence number at that commit (edge-20261202T211500123Z-seq000000123.sqlite3). The newest `keep` are kept, by
sequence number then time; a backup holding more of the store than the new one is never deleted (_rotate).

BackupActor runs the schedule ([backup] every_s) in the edge; `novapos edge backup` takes one on demand (the edge
may be running). Each outcome is a metric: the last success's time and size, the failures.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Counter, Gauge

from actors.storage.db import LOCK_WAIT_S
from edge_runtime import Actor
from novapos.config.backup import BackupSettings

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "edge-", ".sqlite3"
PARTIAL = ".partial"
FIRST_AFTER_S = 30.0
"""The first scheduled backup comes this long after the edge starts (not a full period: a box restarted more often
than every_s would never be backed up), once the tills are up."""

LAST_SUCCESS = Gauge("novapos_edge_backup_last_success_timestamp_seconds",
                     "When the store's SQLite file was last backed up successfully (Unix time; 0: not since start)")
FAILURES = Counter("novapos_edge_backup_failures_total", "Backups of the store's SQLite file that failed")
BYTES = Gauge("novapos_edge_backup_bytes", "Size of the newest successful backup of the store's SQLite file")


class BackupFailed(Exception):
    """A backup that could not be taken; the message says why and what to check."""


@dataclass(frozen=True)
class Backup:
    path: Path
    last_seq: int
    """The store's last sequence number in the copy: the sales it holds are those numbered up to it."""
    size: int


def backup_name(when: datetime, last_seq: int) -> str:
    return f"{PREFIX}{when:%Y%m%dT%H%M%S}{when.microsecond // 1000:03d}Z-seq{last_seq:012d}{SUFFIX}"


_NAME = re.compile(rf"{re.escape(PREFIX)}(\d{{8}}T\d{{9}}Z)-seq(\d+){re.escape(SUFFIX)}")


def backup_seq(path: Path) -> int:
    """The store's last sequence number a backup holds, from its name (backup_name)."""
    match = _NAME.fullmatch(path.name)
    return int(match.group(2)) if match else 0


def _order(path: Path) -> tuple[int, str]:
    match = _NAME.fullmatch(path.name)
    return (int(match.group(2)), match.group(1)) if match else (0, path.name)


def backups(folder: Path) -> list[Path]:
    """The whole backups in `folder`, oldest first: by the store's last sequence number they hold, then by time
    (a clock stepped backwards does not make the newest look oldest)."""
    if not folder.is_dir():
        return []
    return sorted((path for path in folder.iterdir() if _NAME.fullmatch(path.name) and path.is_file()), key=_order)


def copy_database(source: Path, target: Path) -> int:
    """Copy the SQLite file `source` to `target` (which must not exist) with the online backup API, as one
    journal-mode-DELETE file, checked and synced; the copy's last sequence number. BackupFailed otherwise."""
    if not source.is_file():
        raise BackupFailed(f"{source} does not exist: nothing to back up (has the edge run in this state folder?)")
    try:
        src = sqlite3.connect(source, timeout=LOCK_WAIT_S)
        try:
            dst = sqlite3.connect(target, isolation_level=None)
            try:
                src.backup(dst)  # every page in one step: one snapshot, writers go on (WAL)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                (check,) = dst.execute("PRAGMA quick_check").fetchone()
                if check != "ok":
                    raise BackupFailed(f"the copy of {source} fails SQLite's quick_check ({check}): the store's "
                                       "file may be damaged; run `PRAGMA integrity_check` on it")
                row = dst.execute("SELECT last_seq FROM store_sequence").fetchone()
            finally:
                dst.close()
        finally:
            src.close()
        with open(target, "rb") as written:
            os.fsync(written.fileno())
    except sqlite3.Error as exc:
        raise BackupFailed(f"SQLite could not copy {source} ({exc})") from exc
    except OSError as exc:
        raise BackupFailed(f"cannot write {target} ({exc.strerror}): check the backup folder's disk and "
                           "permissions") from exc
    return int(row[0]) if row else 0


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def take_backup(source: Path, folder: Path, keep: int) -> Backup:
    """One backup of `source` into `folder`, then only the newest `keep` left there. BackupFailed says why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupFailed(f"cannot create the backup folder {folder} ({exc.strerror})") from exc
    partial = folder / f"{PREFIX}{os.getpid()}-{time.monotonic_ns()}{PARTIAL}"
    try:
        last_seq = copy_database(source, partial)
        final = folder / backup_name(datetime.now(UTC), last_seq)
        partial.rename(final)
        _sync_folder(folder)
    except OSError as exc:
        raise BackupFailed(f"cannot write in {folder} ({exc.strerror})") from exc
    finally:
        partial.unlink(missing_ok=True)
    taken = Backup(final, last_seq, final.stat().st_size)
    try:
        _rotate(folder, taken, keep)
    except OSError as exc:  # the backup is whole: keeping too many is the lesser trouble
        log.warning("cannot delete old backups in %s (%s); it keeps more than [backup] keep", folder, exc.strerror)
    return taken


def _rotate(folder: Path, taken: Backup, keep: int) -> None:
    """Delete the oldest backups beyond `keep` (by sequence number, then time), never the one just taken nor one
    holding more of the store than it (a higher sequence number): those are warned of and kept. A folder shared by
    several boxes, or a box restored or replaced by an empty one, would otherwise replace good backups with worse."""
    every = backups(folder)
    higher = [path for path in every if backup_seq(path) > taken.last_seq]
    if higher:
        log.warning("%s holds %d backup(s) with sales beyond #%d, the store's last in the one just taken (%s, the "
                    "highest %s): kept, not rotated. Is the [backup] dir shared with another store's box, or was this "
                    "box replaced by an empty one? Give each box its own folder, and restore the newest backup",
                    folder, len(higher), taken.last_seq, taken.path.name, higher[-1].name)
    for old in every[:-keep]:  # keep >= 1 (BackupSettings)
        if old != taken.path and backup_seq(old) <= taken.last_seq:
            old.unlink(missing_ok=True)


def record(outcome: Backup | BackupFailed) -> None:
    """The outcome in the metrics and the log."""
    if isinstance(outcome, BackupFailed):
        FAILURES.inc()
        log.warning("backing up the store's file failed: %s; the next scheduled backup tries again", outcome)
        return
    LAST_SUCCESS.set(time.time())
    BYTES.set(outcome.size)
    log.info("backed up the store's file to %s (%d bytes, sales up to #%d)", outcome.path, outcome.size,
             outcome.last_seq)


class BackupActor(Actor):
    """Backs the store's file up every `settings.every_s` seconds into `settings.folder(state_dir)`."""

    def __init__(self, db_path: Path, state_dir: Path, settings: BackupSettings) -> None:
        super().__init__()
        self._db_path, self._folder, self._settings = db_path, settings.folder(state_dir), settings

    def started(self) -> None:
        self.send_after(min(FIRST_AFTER_S, self._settings.every_s), "backup")

    def backup(self) -> None:
        """One scheduled backup (its outcome recorded), and the next one scheduled."""
        try:
            record(take_backup(self._db_path, self._folder, self._settings.keep))
        except BackupFailed as exc:
            record(exc)
        self.send_after(self._settings.every_s, "backup")
