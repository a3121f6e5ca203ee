"""A store's [backup] table: where the edge's scheduled SQLite backups go, how often, how many are kept
(actors.storage.backup)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novapos import validators
from novapos.config.reading import ConfigError, path_setting

KEYS = frozenset({"dir", "every_s", "keep"})
DEFAULT_FOLDER = "backups"
"""Under the state folder when [backup] dir is not set."""


@dataclass(frozen=True)
class BackupSettings:
    dir: Path | None = None
    """Where backups are written; None: `backups` in the state folder (which guards against a damaged file or a
    mistake, not a dead box: point it at other media, or copy the folder off the box)."""
    every_s: int = 900
    """Seconds between scheduled backups; 0 turns the schedule off (`novapos edge backup` still works)."""
    keep: int = 96
    """The newest backups kept; older ones are deleted after each new one (96 every 900 s: one day)."""

    def folder(self, state_dir: Path) -> Path:
        return self.dir if self.dir is not None else state_dir / DEFAULT_FOLDER


def load_backup(table: Mapping[str, Any], where: str) -> BackupSettings:
    try:
        folder = path_setting(f"{where}: [backup] dir", table.get("dir", ""))
        every = validators.integer(f"{where}: [backup] every_s", table.get("every_s", 900), 0, 7 * 86400)
        keep = validators.integer(f"{where}: [backup] keep", table.get("keep", 96), 1, 100_000)
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
    return BackupSettings(folder, every, keep)
