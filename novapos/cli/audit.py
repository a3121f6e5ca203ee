"""`novapos hub audit verify|checkpoint [--tenant T]`: check a tenant's audit chain, or sign it now;
`novapos hub audit erase VALUE --tenant T`: erase a person's value from the personal data kept beside it.

verify recomputes each chain from its first record and holds it against the last signed checkpoint in
[audit] checkpoint_dir: exit 0 and one line when intact, exit 1 and one line naming the first broken record
and why, exit 2 when it cannot run (no database, unknown tenant). Progress goes to stderr on long chains.
checkpoint signs each chain that grew since its last checkpoint (what the hub does every
[audit] checkpoint_interval_s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

from novapos.config import HubConfig

PROGRESS_EVERY_S = 1.0


def add_audit_commands(hub_commands: argparse._SubParsersAction) -> None:
    audit = hub_commands.add_parser("audit", help="verify the tamper-evident audit log, or sign a checkpoint now",
                                    description="Each tenant's audit records form a hash chain; signed checkpoints "
                                    "of it are kept outside the database in [audit] checkpoint_dir.")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="recompute the chain and name the first broken record (exit 1)")
    checkpoint = actions.add_parser("checkpoint", help="write a signed checkpoint of each chain that grew")
    for command in (verify, checkpoint):
        command.add_argument("--tenant", help="only this tenant (default: every tenant of the hub config)")
        command.set_defaults(run=_run)
    erase = actions.add_parser("erase", help="erase a person's value (an email, a phone number) from the audit "
                               "log's personal data; the records keep their commitments and still verify")
    erase.add_argument("value", help="the exact value, as it was recorded")
    erase.add_argument("--tenant", required=True, help="the tenant whose log it is")
    erase.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from novapos.config import load_hub
    from novapos.validators import Invalid, token
    config = load_hub(args.config)
    if not config.database_url:
        print(f"novapos hub audit {args.action}: set NOVAPOS_DATABASE_URL or [database] url in the hub config",
              file=sys.stderr)
        return 2
    try:
        tenants = (token("--tenant", args.tenant),) if args.tenant is not None else config.tenants
    except Invalid as exc:
        print(f"novapos hub audit {args.action}: {exc}", file=sys.stderr)
        return 2
    if args.action == "erase":
        from novapos.validators import text
        try:
            value = text("the value", args.value, max_length=1000)
        except Invalid as exc:
            print(f"novapos hub audit erase: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(_erase(config, tenants[0], value))
    return asyncio.run(_with_pool(config, args.action, tenants))


def _progress(tenant: str) -> tuple[float, Callable[[int, int], None]]:
    started = time.monotonic()
    last = [started]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            rate = done / max(now - started, 1e-9)
            print(f"{tenant}: {done:,} of {total:,} records checked ({rate:,.0f}/s)", file=sys.stderr, flush=True)
    return started, show


async def _erase(config: HubConfig, tenant: str, value: str) -> int:
    import getpass

    import asyncpg

    from hub.audit.personal import erase
    from hub.db import close_pool, create_pool, migrate
    try:
        pool = await create_pool(config.database_url, max_size=1)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"novapos hub audit erase: cannot reach PostgreSQL at the configured [database] url: {exc}",
              file=sys.stderr)
        return 2
    try:
        await migrate(pool)
        erased = await erase(pool, tenant, value, f"cli:{getpass.getuser()}")
    finally:
        await close_pool(pool)
    print(f"erased {erased} personal value(s) from the audit log of {tenant}; the erasure is itself audited")
    return 0


async def _with_pool(config: HubConfig, action: str, tenants: tuple[str, ...]) -> int:
    import asyncpg

    from hub.audit.services import checkpoint_tenants
    from hub.audit.verify import verify
    from hub.db import close_pool, create_pool, migrate
    try:
        pool = await create_pool(config.database_url, max_size=2)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"novapos hub audit {action}: cannot reach PostgreSQL at the configured [database] url: {exc}",
              file=sys.stderr)
        return 2
    try:
        await migrate(pool)
        if action == "checkpoint":
            written, refused = await checkpoint_tenants(pool, frozenset(tenants), config.audit)
            for sentence in refused:
                print(sentence)
            print(f"{written} checkpoint(s) written to {config.audit.checkpoint_dir}")
            return 1 if refused else 0
        broken = False
        for tenant in tenants:
            started, show = _progress(tenant)
            verdict = await verify(pool, tenant, config.audit.checkpoint_dir, progress=show)
            print(f"{verdict.sentence()} ({time.monotonic() - started:.1f} s)")
            broken = broken or not verdict.ok
        return 1 if broken else 0
    finally:
        await close_pool(pool)
