"""`novapos hub user add|passwd|pin|deactivate|reactivate|unlock|list`: users from the command line, straight on
PostgreSQL, for the first admin and for the day the console is out of reach.

The command acts as a tenant admin of the user's tenant named `cli:<os user>`: the same rules and the same
audit records as the console's (hub.identity.manage), with that actor. Secrets come from stdin with
--password-stdin / --pin-stdin (one line), else from a prompt on a terminal, never from the command line
(it would sit in the shell's history and the process list). After a change the stores whose staff lists it
touched are sent their new lists over the hub's NATS when it is reachable (otherwise they fetch them
within their staff_refresh_s). Exit 0 done, 1 refused (the sentence says why), 2 a wrong command line or config.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

    from hub.identity.principal import Principal
    from hub.identity.users import Grant

ACTIONS = ("add", "passwd", "pin", "deactivate", "reactivate", "unlock", "list")


class Refused(Exception):
    """A refusal for the operator: the sentence says why."""


def add_user_commands(hub_commands: Any) -> None:
    user = hub_commands.add_parser("user", help="add users, set their password or PIN, (de)activate, unlock, list",
                                   description="Manage console and till users of a tenant, audited as cli:<you>.")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user with their roles",
                             description="Add a user. Roles: tenant_admin, regional_admin:REGION, "
                             "store_manager:STORE, supervisor:STORE, cashier:STORE (repeat --role for several).")
    add.add_argument("login")
    add.add_argument("--tenant", required=True)
    add.add_argument("--name", required=True, help="the person's name, as the console and the till show it")
    add.add_argument("--role", action="append", required=True, dest="roles", metavar="ROLE[:WHERE]")
    add.add_argument("--password-stdin", action="store_true", help="read the console password from stdin")
    add.add_argument("--pin-stdin", action="store_true", help="read the till PIN from stdin (after the password)")
    add.add_argument("--no-password", action="store_true", help="no console password (a till-only user)")
    for name, text in (("passwd", "set a user's console password (their sessions end)"), ("pin", "set a user's till PIN"),
                       ("deactivate", "deactivate a user: signed out, gone from the stores' staff lists"),
                       ("reactivate", "reactivate a deactivated user"), ("unlock", "lift a lockout after failures")):
        parser = actions.add_parser(name, help=text, description=text)
        parser.add_argument("login")
        if name in ("passwd", "pin"):
            parser.add_argument("--stdin", action="store_true", help="read it from stdin instead of a prompt")
    listing = actions.add_parser("list", help="list users with their roles")
    listing.add_argument("--tenant")
    for parser in actions.choices.values():
        parser.set_defaults(run=_run)


def parse_role(text: str) -> Grant:
    """tenant_admin, regional_admin:north, cashier:store-001 ... as a Grant, or Invalid."""
    from hub.identity.users import Grant
    from novapos import validators
    from novapos.roles import SCOPE_OF, Role, Scope
    name, _, where = text.partition(":")
    if name not in {role.value for role in Role}:
        raise validators.Invalid(f"--role {text!r}", f"must start with one of {', '.join(r.value for r in Role)}")
    role = Role(name)
    scope = SCOPE_OF[role]
    if scope is Scope.TENANT:
        return Grant(role).check() if not where else Grant(role, region=where).check()
    place = validators.token(f"--role {text!r}'s {scope.value}", where)
    return Grant(role, region=place) if scope is Scope.REGION else Grant(role, store=place)


def _secret(what: str, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise Refused(f"no {what} on stdin")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise Refused(f"give the {what} on stdin with the --*stdin option, or run this on a terminal to be asked")
    first = getpass.getpass(f"{what}: ")
    if getpass.getpass(f"{what} again: ") != first:
        raise Refused(f"the two {what}s differ")
    return first


def _operator(tenant: str) -> Principal:
    from hub.identity.principal import Assignment, Principal
    from novapos.roles import Role
    return Principal(user_id=0, login=f"cli:{getpass.getuser()}", name="command line", tenant=tenant,
                     assignments=(Assignment(Role.TENANT_ADMIN),))


async def _tenant_of(pool: asyncpg.Pool, login: str) -> str:
    from hub.identity.manage import read
    found = await read(pool, login)
    if found is None:
        raise Refused(f"there is no user {login!r}")
    return found[0]


async def _work(args: argparse.Namespace, pool: asyncpg.Pool) -> tuple[str, str | None, set[str]]:
    """(what to print, tenant, stores whose staff lists changed)."""
    from hub.identity import manage
    from hub.identity.users import login_name
    from novapos import validators
    from novapos.passwords import make_verifier

    async def verifier(secret: str) -> str:
        return await asyncio.to_thread(make_verifier, secret)

    if args.action == "list":
        tenants = [args.tenant] if args.tenant else [row["tenant"] for row in await pool.fetch(
            "SELECT tenant FROM tenants ORDER BY tenant")]
        lines = []
        for tenant in tenants:
            after = None
            while True:
                page = await manage.listing(pool, _operator(tenant), q=None, store=None, after=after, limit=200)
                for user in page["items"]:
                    roles = ", ".join(r["role"] + (f":{r['region'] or r['store']}" if r["region"] or r["store"] else "")
                                      for r in user["roles"])
                    flags = [flag for flag, on in (("inactive", not user["active"]), ("locked", user["locked"]),
                                                   ("console", user["console"]), ("till", user["till"])) if on]
                    lines.append(f"{tenant}/{user['login']}  {user['name']}  [{roles}]  {' '.join(flags)}")
                after = page["next"]
                if after is None:
                    break
        return "\n".join([*lines, f"{len(lines)} user(s)"]), None, set()
    login = login_name("login", args.login)
    if args.action == "add":
        if not await pool.fetchval("SELECT EXISTS (SELECT FROM tenants WHERE tenant = $1)", args.tenant):
            raise Refused(f"there is no tenant {args.tenant!r}: add it first (novapos hub tenant add)")
        grants = list(dict.fromkeys(parse_role(text) for text in args.roles))
        name = validators.text("--name", args.name)
        password = None if args.no_password else manage.password(
            "the password", _secret("password", args.password_stdin))
        pin = manage.pin("the PIN", _secret("PIN", args.pin_stdin)) if args.pin_stdin or (
            sys.stdin.isatty() and input("set a till PIN now? [y/N] ").strip().lower() == "y") else None
        done = await manage.create(pool, _operator(args.tenant), login=login, name=name, grants=grants,
                                   password_hash=None if password is None else await verifier(password),
                                   pin_verifier=None if pin is None else await verifier(pin))
        return f"user {args.tenant}/{login} added", args.tenant, done.stores
    tenant = await _tenant_of(pool, login)
    if args.action == "passwd":
        changes = manage.Changes(password_hash=await verifier(manage.password("the password",
                                                                              _secret("password", args.stdin))))
    elif args.action == "pin":
        changes = manage.Changes(pin_verifier=await verifier(manage.pin("the PIN", _secret("PIN", args.stdin))))
    elif args.action == "unlock":
        changes = manage.Changes(unlock=True)
    else:
        changes = manage.Changes(active=args.action == "reactivate")
    done = await manage.change(pool, _operator(tenant), login, changes)
    return f"user {tenant}/{login}: {args.action} done", tenant, done.stores


async def _publish(config: Any, tenant: str, stores: set[str], pool: asyncpg.Pool) -> str | None:
    """Send the changed staff lists to the stores; a note for the operator when NATS cannot be reached."""
    from hub.identity.staff import publish_lists
    from novapos.adapters.nats import NatsLink
    from novapos.tls import Certificates
    if not stores:
        return None
    if not config.nats_url:
        return "no [nats] url in the hub config: the stores fetch their new staff lists at their next refresh"
    certificates = Certificates(config.tls)
    link = NatsLink(config.nats_url, "novapos-cli", credentials=config.nats_credentials,
                    tls=certificates.client, require_tls=certificates.verifies_servers)
    try:
        await link.connect(timeout=2.0)
        await publish_lists(link, pool, tenant, stores)
    except ConnectionError as exc:
        return f"NATS not reached ({exc}): the stores fetch their new staff lists at their next refresh"
    finally:
        await link.close()
    return None


def _run(args: argparse.Namespace) -> int:
    import asyncpg

    from hub.db import close_pool, create_pool, migrate
    from novapos.adapters.http import ApiError
    from novapos.config import load_hub
    from novapos.validators import Invalid
    config = load_hub(args.config)
    if not config.database_url:
        print("novapos hub user: set NOVAPOS_DATABASE_URL or [database] url in the hub config", file=sys.stderr)
        return 2

    async def main() -> tuple[str, str | None]:
        pool = await create_pool(config.database_url, max_size=2)
        try:
            await migrate(pool)
            said, tenant, stores = await _work(args, pool)
            note = await _publish(config, tenant, stores, pool) if tenant else None
            return said, note
        finally:
            await close_pool(pool)
    try:
        said, note = asyncio.run(main())
    except (Refused, Invalid) as exc:
        print(f"novapos hub user {args.action}: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"novapos hub user {args.action}: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"novapos hub user {args.action}: cannot reach PostgreSQL ({exc}); check [database] url", file=sys.stderr)
        return 1
    print(said)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0
