"""`novapos hub tenant|region|store|warehouse ...`: tenancy and store provisioning, straight on PostgreSQL.

`store add` records the store (with its shop floor and back room), makes its NKEY, rewrites the NATS
authorization and reloads the server, and writes the bundle the store's box needs. Exit 0 done, 1 refused
by the records or the server (the sentence says why), 2 a wrong command line or hub config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg


def _tills(text: str) -> list[str]:
    return [till.strip() for till in text.split(",") if till.strip()]


def _nats_url(text: str) -> str:
    """--nats-url: one server or a cluster's, comma-separated, checked as the store's config will check it."""
    from novapos.validators import Invalid, nats_servers
    try:
        return ",".join(nats_servers("--nats-url", text))
    except Invalid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _with_pool(url: str, work: Callable[[asyncpg.Pool], Awaitable[str]]) -> str:
    from hub.db import close_pool, create_pool, migrate
    pool = await create_pool(url, max_size=2)
    try:
        await migrate(pool)  # a first command on a fresh database finds its tables
        return await work(pool)
    finally:
        await close_pool(pool)


def _work(args: argparse.Namespace, config: Any) -> Callable[[asyncpg.Pool], Awaitable[str]]:
    """What the command does, as a function of the pool, returning what to print."""
    from hub.tenancy import provisioning, service
    from novapos.cli.actor import cli_actor

    async def one(action: Callable[[asyncpg.Connection], Awaitable[object]]) -> None:
        async with args.pool.acquire() as conn, conn.transaction():
            await action(conn)

    async def run(pool: asyncpg.Pool) -> str:
        args.pool = pool
        what = (args.tenancy, args.action)
        if what == ("tenant", "add"):
            await one(lambda c: service.add_tenant(c, args.tenant, args.name or args.tenant, args.currency,
                                                   not args.prices_exclude_tax))
            return f"tenant {args.tenant} added ({args.currency})"
        if what == ("region", "add"):
            await one(lambda c: service.add_region(c, args.tenant, args.region, args.name or args.region))
            return f"region {args.tenant}/{args.region} added"
        if what == ("warehouse", "add"):
            await one(lambda c: service.add_warehouse(c, args.tenant, args.location, args.region,
                                                      args.name or args.location))
            return f"warehouse {args.tenant}/{args.location} added in region {args.region}"
        if what == ("store", "add"):
            bundle = await provisioning.provision_store(
                pool, config, args.tenant, args.store, args.region, args.name or args.store, _tills(args.tills),
                args.out, nats_url=args.nats_url, owner=args.owner, credentials_path=args.credentials_path,
                certificates=provisioning.StoreCertificates(args.ca_dir, tuple(args.host or ())) if args.ca_dir else None,
                actor=cli_actor())
            return (f"store {args.tenant}/{args.store} added, with its floor and back room; NATS authorization "
                    f"updated.\nIts bundle: {bundle.config} and {bundle.credentials} (mode 0600): copy the folder to the "
                    f"store's box and start `novapos edge --config store.toml` there (add its [devices])")
        if what == ("store", "rotate"):
            seed = await provisioning.rotate_store(pool, config, args.tenant, args.store, args.out, owner=args.owner,
                                                  actor=cli_actor())
            return (f"store {args.tenant}/{args.store} has new credentials in {seed} (mode 0600); the old ones "
                    f"are refused from now on: install the new file on the store's box and restart its edge")
        if what == ("store", "leaf"):
            on = args.state == "on"
            changed = await provisioning.set_store_leaf(pool, config, args.tenant, args.store, on, actor=cli_actor())
            if not changed:
                return f"store {args.tenant}/{args.store} is already flagged {args.state} as running a leaf node"
            if on:
                return (f"store {args.tenant}/{args.store} runs its own NATS leaf node: its user logs in as a leaf "
                        f"node only (NATS authorization updated); every hub process sources its leaf within [leaf] "
                        f"check_every_s ({config.leaf_check_every_s} s)")
            return (f"store {args.tenant}/{args.store} no longer runs a leaf node: its user logs in as a plain client "
                    "again (NATS authorization updated). The hub keeps sourcing its leaf (it may hold sales) but no "
                    f"longer adds the source: once it is drained, `novapos hub store unsource {args.tenant} "
                    f"{args.store}`")
        if what == ("store", "sync"):
            async with pool.acquire() as conn:
                changed = await provisioning.sync_authorization(conn, config)
            return f"NATS authorization {'rewritten and NATS reloaded' if changed else 'already up to date'}"
        if what == ("store", "unsource"):  # a store that left leaf mode or closed: its leaf no longer sourced
            from hub.ingest.leaf_sources import unsource_store
            done = await unsource_store(pool, config, args.tenant, args.store, force=args.force, actor=cli_actor())
            if not done.dropped:
                return f"store {args.tenant}/{args.store}'s leaf was not sourced: nothing to do"
            if done.drained:
                return (f"the events stream no longer sources store {args.tenant}/{args.store}'s leaf; it held all of "
                        f"it (up to leaf sequence {done.sourced_seq})")
            return (f"the events stream no longer sources store {args.tenant}/{args.store}'s leaf (--force): the hub "
                    f"holds its events up to leaf sequence {done.sourced_seq}; any later one on the leaf "
                    f"({'an unknown number' if done.lag is None else f'{done.lag} were pending'}) will not reach it "
                    "unless the store is flagged as running a leaf node again")
        if what == ("store", "revoke"):
            await provisioning.revoke_store(pool, config, args.tenant, args.store, actor=cli_actor())
            return f"store {args.tenant}/{args.store} revoked: NATS disconnected it and refuses its credentials"
        async with pool.acquire() as conn:
            rows = await service.stores(conn, args.tenant)
        lines = [f"{r.tenant}/{r.store}  region {r.region}  {r.status}{'  leaf' if r.leaf else ''}  "
                 f"credentials {r.credentials_issued_at:%Y-%m-%d %H:%M} UTC  {r.name}"
                 if r.credentials_issued_at else
                 f"{r.tenant}/{r.store}  region {r.region}  {r.status}{'  leaf' if r.leaf else ''}  {r.name}"
                 for r in rows]
        return "\n".join([*lines, f"{len(rows)} store(s)"])
    return run


def _run(args: argparse.Namespace) -> int:
    import asyncpg
    import nats.errors

    from hub.ingest.leaf_sources import NotUnsourced
    from hub.tenancy.nats_auth import ReloadFailed
    from hub.tenancy.service import TenancyError
    from novapos.config import load_hub
    from novapos.validators import Invalid
    config = load_hub(args.config)
    if not config.database_url:
        print(f"novapos hub {args.tenancy}: set NOVAPOS_DATABASE_URL or [database] url in the hub config",
              file=sys.stderr)
        return 2
    try:
        print(asyncio.run(_with_pool(config.database_url, _work(args, config))))
    except (TenancyError, Invalid, ReloadFailed, NotUnsourced) as exc:
        print(f"novapos hub {args.tenancy} {args.action}: {exc}", file=sys.stderr)
        return 1
    except nats.errors.Error as exc:
        print(f"novapos hub {args.tenancy} {args.action}: cannot reach NATS ({type(exc).__name__}: {exc}); check "
              "[nats] url and credentials", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"novapos hub {args.tenancy} {args.action}: cannot reach PostgreSQL ({exc}); check [database] url",
              file=sys.stderr)
        return 1
    return 0


def add_tenancy_commands(hub_commands: Any) -> None:
    """Register `tenant add`, `region add`, `store add|rotate|revoke|leaf|sync|unsource|list`, `warehouse add` under `novapos hub`
    (whose --config names the hub TOML: its [database] url and [nats] credentials, authorization, pid_file)."""
    def command(tenancy: str, help_text: str) -> Callable[..., argparse.ArgumentParser]:
        group = hub_commands.add_parser(tenancy, help=help_text, description=help_text).add_subparsers(
            dest="action", required=True, metavar="ACTION")

        def action(name: str, help_text: str, *positionals: str) -> argparse.ArgumentParser:
            parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
            for positional in positionals:
                parser.add_argument(positional)
            parser.set_defaults(run=_run, tenancy=tenancy)
            return parser
        return action

    tenant = command("tenant", "add a tenant (a retail chain)")
    add = tenant("add", "add a tenant: its name, currency and whether shelf prices include tax", "tenant")
    add.add_argument("--name", help="display name (default: the tenant)")
    add.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR")
    add.add_argument("--prices-exclude-tax", action="store_true", help="shelf prices exclude tax (default: include)")

    region = command("region", "add a region of a tenant (prices and tax rates may differ by region)")
    region("add", "add a region to a tenant", "tenant", "region").add_argument("--name")

    warehouse = command("warehouse", "add a warehouse: a stock location with no store and no tills")
    add = warehouse("add", "add a warehouse in a region", "tenant", "location")
    add.add_argument("--region", required=True)
    add.add_argument("--name")

    store = command("store", "provision stores and manage their NATS credentials")
    add = store("add", "record a store, make its NATS credentials, update the NATS authorization and write the "
                "store's config bundle", "tenant", "store")
    add.add_argument("--region", required=True)
    add.add_argument("--name", help="display name (default: the store)")
    add.add_argument("--tills", default="till-1", help="comma-separated till names (default: %(default)s)")
    add.add_argument("--out", type=Path, required=True, help="folder for the bundle: store.toml and store.seed")
    add.add_argument("--nats-url", type=_nats_url, help="the NATS address the store connects to, several "
                     "comma-separated for a cluster (default: the hub's [nats] url)")
    add.add_argument("--owner", help="(as root) the service user who owns the bundle, e.g. novapos")
    add.add_argument("--ca-dir", type=Path, help="a local CA's folder (`novapos certs ca`): issue the store's TLS "
                     "certificate into the bundle (its HTTPS, and its identity to a NATS that verifies clients)")
    add.add_argument("--host", action="append", help="a name or address the store's box answers to on its LAN, for "
                     "its certificate (repeat; default: the store's id, localhost, 127.0.0.1)")
    add.add_argument("--credentials-path", type=Path,
                     help="where store.seed will be on the store's box (default: its path in --out)")
    rotate = store("rotate", "replace a store's credentials (the old ones are refused at once; reinstates a "
                   "revoked store)", "tenant", "store")
    rotate.add_argument("--out", type=Path, required=True, help="folder for the new store.seed")
    rotate.add_argument("--owner", help="(as root) the service user who owns the seed file")
    store("revoke", "revoke a store's credentials: NATS disconnects it and refuses it", "tenant", "store")
    store("leaf", "flag whether a store runs its own NATS leaf node: on, its user logs in as a leaf node only and "
          "every hub process sources its leaf's events stream within [leaf] check_every_s; off, a plain client again "
          "and the source stays (its leaf may still hold sales) until `store unsource`. Audited",
          "tenant", "store").add_argument("state", choices=("on", "off"))
    store("unsource", "stop the events stream sourcing a store's leaf node (a store that left leaf mode or closed; "
          "turn its leaf flag off first): refused until the hub holds all its leaf holds, unless --force",
          "tenant", "store").add_argument(
        "--force", action="store_true", help="drop the source even if the leaf may hold events the hub has not "
        "sourced (a box that is gone): they will never reach the hub; the command says up to where the hub holds them")
    store("sync", "regenerate the NATS authorization from the records (a store flagged as running a leaf node "
          "logs in as one only), and reload NATS")
    store("list", "the stores, their region, status, leaf flag and when their credentials were issued").add_argument(
        "tenant", nargs="?")
