"""`novapos edge backup` (one backup of the store's SQLite file now, the edge running or not) and `novapos edge
restore` (a backup put in place on a store box, continuing the store's numbering above what the hub holds)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from novapos.config import StoreConfig
    from novapos.wire.restore import HubHolds

CONNECT_WITHIN_S = 5.0
ASK_WITHIN_S = 10.0


def add_edge_backup_commands(edge_commands: argparse._SubParsersAction) -> None:
    backup = edge_commands.add_parser(
        "backup", help="back the store's SQLite file up now (the edge may be running)",
        description="Copy the store's SQLite file with SQLite's online backup API (the edge goes on selling) into "
        "the [backup] dir (default: backups in the state folder), keeping the newest [backup] keep. Prints the "
        "backup's path. Exit 1 when it fails.")
    backup.add_argument("--to", type=Path, metavar="DIR", help="into DIR instead of the [backup] dir")
    backup.set_defaults(run=_backup)
    restore = edge_commands.add_parser(
        "restore", help="put a backup in place on this box (new hardware), continuing the store's numbering",
        description="Restore the store's SQLite file from BACKUP into the config's state folder (the edge must "
        "be stopped). Asks the hub, over NATS with the store's credentials, which sequence numbers it holds from "
        "the store: the box continues above them (plus --skip), drops from its outbox what the hub already has, "
        "sets aside the receipts still queued (the old box may have printed them) and lists the sales the backup "
        "missed (the hub has them). Writes restore-report.json in the state folder. Nothing changes when the hub "
        "cannot be asked (exit 1).")
    restore.add_argument("backup", type=Path, metavar="BACKUP", help="a backup file (edge-...-seq....sqlite3)")
    restore.add_argument("--skip", type=int, default=None, metavar="N",
                         help="numbers left unused above the highest known, for sales the old box made and never "
                         "sent (default: 100)")
    restore.add_argument("--force", action="store_true",
                         help="replace a store file already in the state folder (it is kept beside, renamed)")
    restore.set_defaults(run=_restore)


def _config(args: argparse.Namespace) -> StoreConfig:
    from novapos.cli.main import load_edge_config
    return load_edge_config(args.config)


def _backup(args: argparse.Namespace) -> int:
    from actors.storage import db as local_db
    from actors.storage.backup import BackupFailed, record, take_backup
    config = _config(args)
    try:
        taken = take_backup(config.state_dir / local_db.FILE_NAME, args.to or config.backup.folder(config.state_dir),
                            config.backup.keep)
    except BackupFailed as exc:
        record(exc)
        print(f"novapos edge backup: {exc}", file=sys.stderr)
        return 1
    print(f"{taken.path} ({taken.size} bytes, sales up to #{taken.last_seq})")
    return 0


async def _ask_hub(config: StoreConfig, after: int) -> HubHolds:
    from edge.app import store_link
    from novapos.tls import Certificates
    from novapos.wire.replies import ERROR_HEADER
    from novapos.wire.restore import decode_answer, encode_request, restore_subject
    link = store_link(config, Certificates(config.tls))
    try:
        await link.connect(timeout=CONNECT_WITHIN_S)
        reply = await link.client.request(restore_subject(config.tenant, config.store), encode_request(after),
                                          timeout=ASK_WITHIN_S)
        if reply.headers and ERROR_HEADER in reply.headers:
            raise ConnectionError(f"the hub refused: {reply.headers[ERROR_HEADER]}")
        return decode_answer(reply.data)
    finally:
        await link.close()


def _restore(args: argparse.Namespace) -> int:
    import nats.errors

    from actors.storage import db as local_db
    from actors.storage.backup import BackupFailed
    from actors.storage.restore import SKIP, finish, resend_floor, stage
    from edge.app import StateFolderInUse, state_folder_lock
    from novapos.validators import Invalid, integer
    config = _config(args)
    config.check_runnable()
    try:
        skip = integer("--skip", SKIP if args.skip is None else args.skip, 0, 1_000_000_000)
    except Invalid as exc:
        print(f"novapos edge restore: {exc}", file=sys.stderr)
        return 2
    db_path = config.state_dir / local_db.FILE_NAME
    try:
        with state_folder_lock(config.state_dir):
            if db_path.exists() and not args.force:
                print(f"novapos edge restore: {db_path} exists: this box already has a store file. Restore onto an "
                      "empty state folder, or pass --force to replace it (it is kept beside, renamed)",
                      file=sys.stderr)
                return 2
            try:
                staged = stage(args.backup, db_path, config.tenant, config.store)
            except BackupFailed as exc:
                print(f"novapos edge restore: {args.backup} cannot be restored: {exc}", file=sys.stderr)
                return 1
            try:
                holds = asyncio.run(_ask_hub(config, resend_floor(staged)))
            except (ConnectionError, TimeoutError, OSError, nats.errors.Error, Invalid) as exc:
                staged.unlink(missing_ok=True)
                print(f"novapos edge restore: cannot ask the hub which sales it holds from {config.tenant}/"
                      f"{config.store} ({type(exc).__name__}: {exc}); nothing was changed. Check NATS "
                      f"({config.nats_url}) and the store's credentials, then run it again", file=sys.stderr)
                return 1
            try:
                restored = finish(args.backup.resolve(), staged, db_path, holds, skip,
                                  f".before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
            except BackupFailed as exc:
                print(f"novapos edge restore: {exc}; nothing was changed", file=sys.stderr)
                return 1
            if restored.previous is not None:
                print(f"the previous store file is kept as {restored.previous} (with its -wal and -shm, if any)")
    except StateFolderInUse as exc:
        print(f"novapos edge restore: {exc}", file=sys.stderr)
        return 2
    report = {**asdict(restored), "backup": str(restored.backup),
              "previous": None if restored.previous is None else str(restored.previous),
              "missed": [asdict(event) for event in restored.missed]}
    (config.state_dir / "restore-report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"restored {restored.backup} (sales up to #{restored.backup_last_seq}) into {db_path}\n"
          f"the hub holds the store's events up to #{restored.hub_last_seq}; the next sale is #{restored.next_seq}\n"
          f"{len(restored.missed)}{'+' if restored.missed_more else ''} event(s) the backup missed are at the hub "
          f"(listed in {config.state_dir / 'restore-report.json'}); {restored.still_to_send} unsent event(s) will be "
          f"forwarded, {restored.already_sent} the hub already had were dropped; {restored.set_aside_prints} queued "
          "receipt(s) set aside (see GET /api/print-jobs)")
    for till, cart in restored.open_carts:
        print(f"till {till} has cart {cart} open from the backup: the old box may have completed it after the "
              "backup (check the missed sales in the report, and the customer's receipt) before completing it "
              "again, or void it", file=sys.stderr)
    return 0
