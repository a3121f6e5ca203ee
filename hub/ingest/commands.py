"""`novapos hub dead-letters list|redrive`: the operator's side of dead letters, straight on PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import asyncpg

from hub.db import close_pool, create_pool
from hub.ingest.dead_letters import NotRedrivable, pending, redrive
from novapos.cli.actor import cli_actor
from novapos.config import HubConfig


async def _list(pool: asyncpg.Pool) -> int:
    rows = await pending(pool)
    for row in rows:
        # subject and reason were escaped when the letter was written (hub.ingest.inbox)
        print(f"{row['id']}  {row['received_at']:%Y-%m-%d %H:%M:%S}  {row['subject']}  {row['reason']}")
    print(f"{len(rows)} dead letter(s) waiting; re-drive with: novapos hub dead-letters redrive ID... | --all")
    return 0


async def _redrive(pool: asyncpg.Pool, tenants: frozenset[str], ids: Sequence[int], reason_like: str | None) -> int:
    chosen = list(ids) or [row["id"] for row in await pending(pool, reason_like=reason_like)]
    status, redriven = 0, 0
    for letter in chosen:
        try:
            done = await redrive(pool, letter, tenants, cli_actor())
        except NotRedrivable as exc:
            print(f"novapos hub dead-letters: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{done.id}: {done.outcome}")
        redriven += 1
    print(f"{redriven} re-driven")
    return status


async def _run(config: HubConfig, action: str, ids: Sequence[int], reason_like: str | None) -> int:
    pool = await create_pool(config.database_url, max_size=2)
    try:
        if action == "list":
            return await _list(pool)
        return await _redrive(pool, frozenset(config.tenants), ids, reason_like)
    finally:
        await close_pool(pool)


def dead_letters(config: HubConfig, action: str, ids: Sequence[int], all_: bool, reason_like: str | None) -> int:
    """Exit status: 0 done, 1 some letter could not be re-driven, 2 a wrong request."""
    if action == "redrive" and bool(ids) == all_:
        print("novapos hub dead-letters redrive: give the ids to re-drive, or --all (optionally with --reason-like)",
              file=sys.stderr)
        return 2
    if reason_like is not None and not all_:
        print("novapos hub dead-letters redrive: --reason-like goes with --all", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(config, action, ids, reason_like))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"novapos hub dead-letters: cannot use PostgreSQL at the configured [database] url: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
