"""Putting a store's backup in place on a (new) store box, so that it continues the store's numbering.

The backup knows the sales up to its last sequence number; the old box went on selling after it, and forwarded
some of those sales to the hub before it died. The hub's answer (novapos.wire.restore) says which numbers it holds.
The restored file then:
- numbers its next event above both the backup's last number and the hub's, plus `skip`: numbers the old box may
  have used for sales that never reached the hub (committed after the backup, unsent when it died; their paper
  receipts carry them). They are never reused; the hub lists them as a gap (hub console, sequence issues), which
  is where such lost sales surface;
- drops from its outbox the events the hub already holds (the old box sent them after the backup);
- sets aside the receipts its print spool still had queued (the old box may have printed them): failed, with the
  reason, so that they are reprinted on demand and never twice on their own;
- reports the carts the backup holds open (`Restored.open_carts`): the old box may have completed one after the
  backup, and neither the box nor the hub can tell (a sale's event does not name its cart), so completing it
  again would make a second sale: the cashier checks it against the missed sales first;
- reports the sales the hub holds that the backup missed (`Restored.missed`): the hub has them, so reports and
  returns (looked up at the hub when not in the store's own journal) know them; the box's own journal, drawer
  counts and offline ledgers do not.

Everything happens on a staged copy beside the store's file, renamed into place once complete: an interrupted
restore leaves no half-restored file behind.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from actors.storage import db as local_db
from actors.storage.backup import BackupFailed, copy_database
from novapos.wire.envelope import MAX_SEQ
from novapos.wire.restore import HeldEvent, HubHolds
from novapos.wire.subjects import event_subject

STAGED_SUFFIX = ".restoring"
SKIP = 100
"""Numbers left unused after the highest the hub or the backup knows (see the module's doc). A store whose box was
cut off from the hub for long before it died had more unsent sales: pass a larger --skip."""
SET_ASIDE = ("restored from a backup: the old store box may have printed this receipt; reprint it if the "
             "customer needs it")


@dataclass(frozen=True)
class Restored:
    backup: Path
    backup_last_seq: int
    hub_last_seq: int
    next_seq: int
    missed: tuple[HeldEvent, ...]
    """Events the hub holds that the backup does not (numbered above the backup's last), oldest first."""
    missed_more: bool
    """The hub holds more such events than it listed."""
    already_sent: int
    """Events of the backup's outbox the hub holds: dropped, not sent again."""
    still_to_send: int
    """Events of the backup's outbox the hub lacks: the edge forwards them at start."""
    set_aside_prints: int
    open_carts: tuple[tuple[str, str], ...] = ()
    """(till, cart id) of the carts the backup holds open with lines in them: the old box may have completed one
    after the backup (its sale at the hub, among `missed`); the sale event does not name its cart, so neither the
    box nor the hub can tell. Completing it again would make a second sale under a new number: check `missed`."""
    previous: Path | None = None
    """The store file that was in place (with its -wal and -shm beside it, renamed alike), when there was one."""


def stage(backup: Path, db_path: Path, tenant: str, store: str) -> Path:
    """Copy `backup` beside `db_path` (checked, migrated to this release's schema); the staged file's path.
    BackupFailed when the backup is not a readable store file, or its unsent events are another store's."""
    staged = db_path.with_name(db_path.name + STAGED_SUFFIX)
    staged.unlink(missing_ok=True)
    try:
        copy_database(backup, staged)
        local_db.connect(staged).close()
        resend_floor(staged)  # it has the store's tables
        _check_store(staged, event_subject(tenant, store, "x").removesuffix(".x"))
    except (BackupFailed, sqlite3.Error) as exc:
        staged.unlink(missing_ok=True)
        raise BackupFailed(str(exc)) from exc
    return staged


def _check_store(staged: Path, prefix: str) -> None:
    """Refuse a backup whose unsent events are not this store's (another store's box restored here by mistake)."""
    db = sqlite3.connect(staged)
    try:
        row = db.execute("SELECT subject FROM outbox WHERE substr(subject, 1, length(?1) + 1) <> ?1 || '.' LIMIT 1",
                         (prefix,)).fetchone()
    finally:
        db.close()
    if row is not None:
        raise BackupFailed(f"it holds events of another store ({row[0]}), not of {prefix}: is it this store's backup?")


def resend_floor(staged: Path) -> int:
    """The number above which the hub's events matter: below the oldest unsent event of the backup (the hub may
    hold it, sent by the old box after the backup), else the backup's last number."""
    db = sqlite3.connect(staged)
    try:
        (last,) = db.execute("SELECT last_seq FROM store_sequence").fetchone()
        (oldest,) = db.execute("SELECT min(seq) FROM outbox").fetchone()
    finally:
        db.close()
    return int(last) if oldest is None else int(oldest) - 1


def _open_carts(db: sqlite3.Connection) -> tuple[tuple[str, str], ...]:
    """(till, cart id) of the tills' saved carts holding lines (actors.till: open_tills)."""
    found = []
    for till, state in db.execute("SELECT till, state FROM open_tills ORDER BY till"):
        try:
            cart = json.loads(state).get("cart")
        except (ValueError, AttributeError):
            continue
        if isinstance(cart, dict) and cart.get("lines") and isinstance(cart.get("id"), str):
            found.append((str(till), cart["id"]))
    return tuple(found)


def set_aside_previous(db_path: Path, suffix: str) -> Path | None:
    """Rename the store file at `db_path` and its -wal and -shm beside it, all with `suffix` (the -wal may hold
    commits not yet checkpointed into the file: the three together are the previous store, which SQLite opens
    whole). Never deletes: a -wal or -shm left without its file is renamed too, so that SQLite never applies it to
    the restored file. The renamed file's path, or None when there was none."""
    kept = db_path.with_name(db_path.name + suffix) if db_path.exists() else None
    for part in ("", "-wal", "-shm"):
        path = db_path.with_name(db_path.name + part)
        if path.exists():
            path.rename(db_path.with_name(db_path.name + suffix + part))
    return kept


def finish(backup: Path, staged: Path, db_path: Path, holds: HubHolds, skip: int = SKIP,
           previous_suffix: str = ".before-restore") -> Restored:
    """Continue the numbering above what the hub holds, drop what it holds from the outbox, set the queued
    receipts aside, and put the staged file in place of `db_path`: a store file already there is kept beside it,
    with its -wal and -shm, renamed with `previous_suffix` (set_aside_previous). BackupFailed, the staged copy
    removed and nothing else changed, when the numbering would go beyond what a sequence number holds."""
    held_ids = {event.id for event in holds.events}
    db = local_db.connect(staged)
    try:
        (backup_last,) = db.execute("SELECT last_seq FROM store_sequence").fetchone()
        next_seq = max(int(backup_last), holds.last_seq) + skip + 1
        if next_seq > MAX_SEQ:
            raise BackupFailed(
                f"the next sequence number would be {next_seq} (the backup's last #{backup_last}, the hub's "
                f"#{holds.last_seq}, plus --skip {skip}), above the largest a sequence number holds ({MAX_SEQ}): "
                "pass a smaller --skip, or look at the hub's events and dead letters of this store for a bogus "
                "number")
        with local_db.immediate(db):
            db.execute("UPDATE store_sequence SET last_seq = ?", (next_seq - 1,))
            unsent = [event_id for (event_id,) in db.execute("SELECT id FROM outbox")]
            sent = [event_id for event_id in unsent if event_id in held_ids]
            db.executemany("DELETE FROM outbox WHERE id = ?", [(event_id,) for event_id in sent])
            set_aside = db.execute("UPDATE print_jobs SET state = 'failed', reason = ? WHERE state = 'queued'",
                                   (SET_ASIDE,)).rowcount
            open_carts = _open_carts(db)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BackupFailed:
        db.close()  # before the file goes (closing twice is harmless)
        staged.unlink(missing_ok=True)
        raise
    finally:
        db.close()
    previous = set_aside_previous(db_path, previous_suffix)
    staged.rename(db_path)
    return Restored(backup, int(backup_last), holds.last_seq, next_seq,
                    tuple(event for event in holds.events if event.seq > int(backup_last)), holds.more,
                    len(sent), len(unsent) - len(sent), set_aside, open_carts, previous)
