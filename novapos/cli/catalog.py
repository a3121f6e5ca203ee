"""`novapos hub catalog import FILE --tenant T`: a catalog CSV into the hub's PostgreSQL, as one version.

Needs PostgreSQL only (the hub's publishers take the new version to the stores). Progress goes to stderr,
each refused row to stdout as "line N, column C: reason". Exit status: 0 every row landed, 1 some rows were
refused (the others landed), 2 nothing changed (the file refused whole, no such tenant, no database).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

MAX_FILE_BYTES = 1 << 30
FORMAT = """The file (UTF-8, comma-separated, a header row naming the columns in any order):

    product,product_name,tax_class,attributes,sku,barcodes,price,price_overrides
    TSHIRT,Organic T-shirt,standard,size=M;colour=red,TSHIRT-M-RED,4006381333931;TS-M-RED,19.99,region:south=18.99

- product, sku, tax_class: names (letters, digits, '-' and '_'); product_name: text.
- attributes (optional): up to three name=value pairs, ';'-separated, the same names in the same order on
  every row of a product.
- barcodes (optional): ';'-separated; all the variant's codes (codes it had and the row omits are taken off).
- price: the tenant price in the currency's units (4.99), in force from the import on when it differs from
  the price in force now.
- price_overrides (optional): ';'-separated region:NAME=PRICE or store:NAME=PRICE.
- category (optional): the product's category path (food/dairy/cheese), which promotions target; empty: none.
  Without the column, products keep the category they have.

A file that is not a CSV of that shape (wrong header, ragged rows, not UTF-8, NUL bytes, huge fields) is
refused whole with the reason, changing nothing.
"""


def add_catalog_commands(hub_commands: argparse._SubParsersAction) -> None:
    catalog = hub_commands.add_parser("catalog", help="import a catalog CSV into a tenant's catalog",
                                      description="Change a tenant's catalog from the command line.")
    actions = catalog.add_subparsers(dest="action", required=True, metavar="ACTION")
    command = actions.add_parser(
        "import", help="import a catalog CSV (one row per variant) as one catalog version",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Import a catalog CSV as one catalog version. Rows that are wrong are listed (line, column, "
        "reason) and skipped; the others land.\n\n" + FORMAT)
    command.add_argument("file", type=Path, help="the CSV file (UTF-8)")
    command.add_argument("--tenant", required=True, help="the tenant whose catalog it is")
    command.set_defaults(run=_import)


def _import(args: argparse.Namespace) -> int:
    from novapos.config import load_hub
    config = load_hub(args.config)
    if not config.database_url:
        print("novapos hub catalog import: set NOVAPOS_DATABASE_URL or [database] url in the hub config", file=sys.stderr)
        return 2
    try:
        with args.file.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        print(f"novapos hub catalog import: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if len(data) > MAX_FILE_BYTES:
        print(f"novapos hub catalog import: {args.file} is over {MAX_FILE_BYTES >> 20} MiB: split it", file=sys.stderr)
        return 2
    return asyncio.run(_run(config.database_url, args.tenant, args.file, data))


async def _run(url: str, tenant: str, path: Path, data: bytes) -> int:
    import asyncpg

    from hub.catalog.importer import Malformed, import_catalog
    from hub.catalog.service import NotFound
    from hub.db import close_pool, create_pool, migrate
    from novapos.cli.actor import cli_actor

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
    try:
        pool = await create_pool(url, max_size=2)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"novapos hub catalog import: cannot reach PostgreSQL at the configured [database] url: {exc}",
              file=sys.stderr)
        return 2
    try:
        await migrate(pool)
        result = await import_catalog(pool, tenant, data, progress, actor=cli_actor(), file_name=path.name)
    except (Malformed, NotFound) as exc:
        print(f"novapos hub catalog import: {path} refused, nothing changed: {exc}", file=sys.stderr)
        return 2
    finally:
        await close_pool(pool)
    for error in result.errors:
        print(error)
    print(f"{path}: {result.rows} rows, {result.landed} landed as catalog version {result.version} of {tenant} "
          f"({result.changed_variants} variants changed), {len(result.errors)} refused, in {result.seconds:.1f} s")
    return 1 if result.errors else 0
