"""A database as the release before a migration left it: every migration numbered below a given one applied."""

from __future__ import annotations

import asyncpg

from hub.db import _apply, _ledger, planned
from hub.domains import domains


async def migrate_below(conn: asyncpg.Connection, number: int) -> None:
    """Apply, in order, every migration of every domain numbered below `number` (and none from it on)."""
    await _ledger(conn)
    for migration in planned(domains()):
        if migration.number < number:
            await _apply(conn, migration, 1.0, 3)
