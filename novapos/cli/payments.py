"""`novapos hub payments reconcile [--day YYYY-MM-DD] [--tenant T]`: reconcile a day's captures and refunds with
the provider's settlement report now, print the drift report, keep it (the console lists it beside the nightly
runs) and exit 1 when anything differs.

Exit 0: no drift; 1: drift (each item on its own line); 2: it could not run (no database or provider configured,
a bad argument, PostgreSQL or the provider out of reach: the run is kept as failed, with the reason).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, date, datetime, timedelta

from novapos.config import HubConfig


def add_payments_commands(hub_commands: argparse._SubParsersAction) -> None:
    payments = hub_commands.add_parser("payments", help="payments at the hub: reconcile with the provider",
                                       description="Payments at the hub (intents, the provider, reconciliation).")
    actions = payments.add_subparsers(dest="action", required=True, metavar="ACTION")
    reconcile = actions.add_parser(
        "reconcile", help="compare a day's captures and refunds with the provider's settlement report",
        description="Compare the hub's captures and refunds of one day (UTC) with the provider's settlement report, "
        "keep the report and print it: missing (the hub has it, the provider does not), extra (the provider "
        "settled something the hub does not have), amount (different amounts), state (the provider says failed "
        "where the hub counts it done, or settled where it does not). Exit 1 on drift.")
    reconcile.add_argument("--day", help="the day, YYYY-MM-DD (default: yesterday, UTC)")
    reconcile.add_argument("--tenant", help="only this tenant (default: every tenant of the hub config)")
    reconcile.set_defaults(run=_run)


def _day(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date() - timedelta(days=1)
    try:
        if len(text) != 10 or not text.isascii():
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--day {text!r} is not a date: use YYYY-MM-DD") from None


def _run(args: argparse.Namespace) -> int:
    from novapos.config import load_hub
    from novapos.validators import Invalid, token
    config = load_hub(args.config)
    for missing, setting in ((not config.database_url, "NOVAPOS_DATABASE_URL or [database] url"),
                             (not config.payments.gateway_url, "[payments] gateway_url")):
        if missing:
            print(f"novapos hub payments reconcile: set {setting} in the hub config", file=sys.stderr)
            return 2
    try:
        tenants = (token("--tenant", args.tenant),) if args.tenant is not None else config.tenants
        day = _day(args.day)
    except (Invalid, ValueError) as exc:
        print(f"novapos hub payments reconcile: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_reconcile(config, tenants, day))


async def _reconcile(config: HubConfig, tenants: tuple[str, ...], day: date) -> int:
    import asyncpg

    from hub.db import close_pool, create_pool, migrate
    from hub.payments.acquirer import HttpGateway
    from hub.payments.reconciliation import run
    try:
        pool = await create_pool(config.database_url, max_size=2)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"novapos hub payments reconcile: cannot reach PostgreSQL at the configured [database] url: {exc}",
              file=sys.stderr)
        return 2
    settings = config.payments
    gateway = HttpGateway(settings.gateway_url, settings.provider, settings.timeout_s)
    worst = 0
    try:
        await migrate(pool)
        for tenant in tenants:
            report = await run(pool, gateway, tenant, day, trigger="command", actor=f"cli:{getpass.getuser()}")
            assert report is not None  # only a nightly run can find its day already claimed
            if report.failed:
                print(f"{tenant} {day}: not reconciled: {report.run['error']}", file=sys.stderr)
                worst = 2
                continue
            print(f"{tenant} {day} ({settings.provider}): {len(report.drift)} drift item(s) in "
                  f"{report.run['hub_movements']} hub movement(s) and {report.run['provider_lines']} settlement "
                  f"line(s); run {report.run['id']}")
            for item in report.drift:
                where = f" at {item.store}" if item.store else ""
                print(f"  {item.kind.value:<7} {item.movement:<7} {item.provider_ref}{where}: {item.message}")
            worst = max(worst, 1 if report.drift else 0)
    finally:
        await gateway.aclose()
        await close_pool(pool)
    return worst
