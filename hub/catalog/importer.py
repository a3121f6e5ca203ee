"""CSV import of a catalog: one row per variant, bad rows reported (line, column, reason) and skipped, good
rows landing in one catalog version. Never row by row: the rows are checked cell by cell in Python (names,
check digits, prices), copied into temporary tables with COPY, checked against each other and the catalog
set-based in SQL (unknown tax class, SKU or barcode twice, a product described two ways), then merged with
set-based INSERT ... ON CONFLICT that stamps only what really changed.

The columns and their format: novapos.cli.catalog.FORMAT (`novapos hub catalog import --help`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from hub.audit.chain import Entry, record
from hub.catalog.barcodes import barcode, gs1_check_digit
from hub.catalog.changes import variant_name
from hub.catalog.service import bump, tenant_row
from novapos import validators
from novapos.validators import UNSAFE_CHARACTERS, Invalid
from novapos.wire.catalog import MAX_ATTRIBUTES, MAX_BARCODES

REQUIRED = ("product", "product_name", "tax_class", "sku", "price")
OPTIONAL = ("attributes", "barcodes", "price_overrides", "category")
COLUMNS = ("product", "product_name", "tax_class", "attributes", "sku", "barcodes", "price", "price_overrides",
           "category")
MAX_ROWS = 2_000_000
MAX_OVERRIDES = 64
_TOKEN = re.compile(f"{validators.TOKEN_PATTERN}")
MINOR_DIGITS = {**dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
                                 "VUV", "XAF", "XOF", "XPF"), 0),
                **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3)}
"""ISO 4217 currencies whose minor unit is not a hundredth (all others: 2)."""

Progress = Callable[[str], None]


class Malformed(ValueError):
    """The file is not a catalog CSV: refused whole, nothing changed; the message says why and where."""


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"


@dataclass
class Imported:
    rows: int
    landed: int
    changed_variants: int
    version: int
    errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Rows:
    """Good rows as COPY records: variants, their barcodes, their prices (tenant and overrides)."""
    variants: list[tuple[int, str, str, str, list[str], list[str], str, str, str | None]] = field(default_factory=list)
    """(line, product, product name, tax class, attribute names, values, sku, variant name, category: None when the
    file has no category column, the product keeping its own; "" for none)."""
    barcodes: list[tuple[int, str, str]] = field(default_factory=list)
    prices: list[tuple[int, str, str, str, int]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    read: int = 0


def _token(where: str, value: str) -> str:
    if len(value) <= validators.MAX_TOKEN_LENGTH and _TOKEN.fullmatch(value):
        return value
    return validators.token(where, value)


def _text(where: str, value: str) -> str:
    value = value.strip()
    if value and len(value) <= validators.MAX_TEXT_LENGTH and UNSAFE_CHARACTERS.search(value) is None:
        return value
    return validators.text(where, value)


def price_parser(currency: str) -> Callable[[str, str], int]:
    """A reader of prices written in the currency's units ("4.99" EUR is 499 cents; "500" JPY is 500 yen)."""
    digits = MINOR_DIGITS.get(currency, 2)
    shape = re.compile(r"(\d{1,13})" + (rf"(?:\.(\d{{1,{digits}}}))?" if digits else ""))
    example = "4" + ("." + "9" * digits if digits else "")

    def parse(where: str, text: str) -> int:
        text = text.strip()
        if text.startswith("-"):
            raise Invalid(where, f"must not be negative, got {validators.describe(text)}: a price is what the customer pays")
        match = shape.fullmatch(text)
        if match is None:
            raise Invalid(where, f"must be an amount in {currency} such as {example} (at most {digits} decimals, no "
                                 f"currency sign or thousands separator), got {validators.describe(text)}")
        minor = int(match.group(1)) * 10**digits + (int((match.group(2) or "").ljust(digits, "0")) if digits else 0)
        return validators.minor_units(where, minor)
    return parse


def _attributes(text: str) -> tuple[list[str], list[str]]:
    names: list[str] = []
    values: list[str] = []
    for pair in filter(None, (part.strip() for part in text.split(";"))):
        name, equals, value = pair.partition("=")
        if not equals:
            raise Invalid("attributes", f"must be name=value pairs separated by ';' (size=M;colour=red), got {pair!r}"
                          if len(pair) <= 40 else "must be name=value pairs separated by ';' (size=M;colour=red)")
        names.append(validators.text("attributes", name, max_length=validators.MAX_TOKEN_LENGTH))
        values.append(validators.text(f"attributes' {names[-1]}", value, max_length=validators.MAX_TOKEN_LENGTH))
    if len(names) > MAX_ATTRIBUTES:
        raise Invalid("attributes", f"may name at most {MAX_ATTRIBUTES} attributes, got {len(names)}")
    if len(set(names)) != len(names):
        raise Invalid("attributes", "name the same attribute twice")
    return names, values


def _overrides(text: str, price: Callable[[str, str], int]) -> list[tuple[str, str, int]]:
    found: list[tuple[str, str, int]] = []
    for part in filter(None, (part.strip() for part in text.split(";"))):
        target, equals, amount = part.partition("=")
        scope, colon, name = target.partition(":")
        if not equals or not colon or scope not in ("region", "store"):
            raise Invalid("price_overrides", "must be region:NAME=PRICE or store:NAME=PRICE entries separated by ';'")
        found.append((scope, validators.token(f"price_overrides' {scope}", name), price("price_overrides", amount)))
    if len(found) > MAX_OVERRIDES or len({(scope, name) for scope, name, _ in found}) != len(found):
        raise Invalid("price_overrides", f"must name each region or store once, at most {MAX_OVERRIDES} of them")
    return found


def _header(first: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in first]
    unknown = [name for name in names if name not in REQUIRED + OPTIONAL]
    missing = [name for name in REQUIRED if name not in names]
    if unknown or missing or len(set(names)) != len(names):
        raise Malformed(
            "line 1 must be the header naming the columns: " + "; ".join(filter(None, (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(validators.describe(name) for name in unknown[:5])}" if unknown else "",
                "a column named twice" if len(set(names)) != len(names) else "")))
            + f" (required: {', '.join(REQUIRED)}; optional: {', '.join(OPTIONAL)})")
    return {name: index for index, name in enumerate(names)}


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise Malformed(f"the file is not UTF-8 text (line {line} has the byte 0x{data[exc.start]:02X}): save it as "
                        "CSV UTF-8 from the spreadsheet") from None
    if "\x00" in text:
        raise Malformed(f"the file holds a NUL byte (line {text.count(chr(10), 0, text.index(chr(0))) + 1}): it is not "
                        "a text file; export the catalog as CSV")
    return text


def parse(data: bytes, currency: str, progress: Progress = lambda _: None) -> _Rows:
    """Every row checked on its own; raises Malformed for a file that is not a catalog CSV."""
    reader = csv.reader(io.StringIO(_decode(data), newline=""), strict=True)
    price = price_parser(currency)
    cents = MINOR_DIGITS.get(currency, 2) == 2
    rows = _Rows()
    categorised = False
    try:
        header = next(reader, None)
        if header is None:
            raise Malformed("the file is empty: its first line must be the header naming the columns")
        columns = _header(header)
        categorised = "category" in columns
        width = len(header)
        cells = operator.itemgetter(*(columns.get(name, width) for name in COLUMNS))  # width: the padding ""
        line = reader.line_num + 1
        for record in reader:
            first_line, line = line, reader.line_num + 1
            if not record:  # a blank line
                continue
            if len(record) != width:
                raise Malformed(f"line {first_line} has {len(record)} fields where the header has {width}: each row "
                                "needs one per column (quote a field that holds a comma)")
            rows.read += 1
            if rows.read > MAX_ROWS:
                raise Malformed(f"the file has more than {MAX_ROWS} rows: split it into several imports")
            record.append("")
            _row(rows, first_line, cells(record), price, cents, categorised)
            if rows.read % 50_000 == 0:
                progress(f"read {rows.read} rows ({len(rows.errors)} refused so far)")
    except csv.Error as exc:
        raise Malformed(f"line {reader.line_num} is not valid CSV ({exc}): check its quotes, or a field far longer "
                        "than a catalog field can be") from None
    return rows


_FAST_NAMES = re.compile(r"[A-Za-z0-9_-]{1,64}\t[A-Za-z0-9_-]{1,64}\t[A-Za-z0-9_-]{1,64}")
_FAST_PRICE = re.compile(r"\d{1,9}(?:\.\d\d)?")
_CATEGORY = validators.CATEGORY


def _row(rows: _Rows, line: int, cells: tuple[str, ...], price: Callable[[str, str], int], cents: bool,
         categorised: bool) -> None:
    """One row checked: most rows are plain (names, a name without odd characters, codes, a price in a
    two-decimal currency) and pass one quick look; any other goes through every validator, which says
    what is wrong with it."""
    product, name, tax_class, attributes, sku, codes, amount, overrides, category = cells
    if not attributes and not overrides and _FAST_NAMES.fullmatch(f"{product}\t{sku}\t{tax_class}") \
            and 0 < len(name) <= validators.MAX_TEXT_LENGTH and name == name.strip() \
            and UNSAFE_CHARACTERS.search(name) is None and cents and _FAST_PRICE.fullmatch(amount) \
            and (not category or (len(category) <= validators.MAX_CATEGORY_LENGTH and _CATEGORY.fullmatch(category))):
        barcodes = codes.split(";") if codes else []
        plain = len(set(barcodes)) == len(barcodes) <= MAX_BARCODES
        for code in barcodes:
            plain = plain and code.isdigit() and len(code) in (8, 12, 13) and gs1_check_digit(code[:-1]) == int(code[-1])
        if plain:
            whole, _, hundredths = amount.partition(".")
            rows.variants.append((line, product, name, tax_class, [], [], sku, name, category if categorised else None))
            rows.barcodes.extend((line, sku, code) for code in barcodes)
            rows.prices.append((line, sku, "tenant", "", int(whole) * 100 + int(hundredths or 0)))
            return
    _checked_row(rows, line, cells, price, categorised)


def _checked_row(rows: _Rows, line: int, cells: tuple[str, ...], price: Callable[[str, str], int],
                 categorised: bool) -> None:
    product, name, tax_class, attributes, sku, codes, amount, overrides, category = cells
    column = "product"
    try:
        product = _token("product", product.strip())
        column = "product_name"
        name = _text("product_name", name)
        column = "tax_class"
        tax_class = _token("tax_class", tax_class.strip())
        column = "attributes"
        names, values = _attributes(attributes)
        column = "sku"
        sku = _token("sku", sku.strip())
        column = "barcodes"
        barcodes = [barcode("barcode", code) for code in filter(None, (c.strip() for c in codes.split(";")))]
        if len(barcodes) > MAX_BARCODES or len(set(barcodes)) != len(barcodes):
            raise Invalid("barcodes", f"must list each code once, at most {MAX_BARCODES} of them")
        column = "price"
        minor = price("price", amount)
        column = "price_overrides"
        found = _overrides(overrides, price)
        column = "category"
        category = category.strip() and validators.category("category", category.strip())
    except Invalid as exc:
        rows.errors.append(RowError(line, column, str(exc)))
        return
    rows.variants.append((line, product, name, tax_class, names, values, sku, variant_name(name, tuple(values)),
                          category if categorised else None))
    rows.barcodes.extend((line, sku, code) for code in barcodes)
    rows.prices.append((line, sku, "tenant", "", minor))
    rows.prices.extend((line, sku, scope, scope_id, each) for scope, scope_id, each in found)


TEMP_TABLES = """
CREATE TEMP TABLE import_variants (line int PRIMARY KEY, product text, product_name text, tax_class text,
    attributes text[], attribute_values text[], sku text, name text, category text) ON COMMIT DROP;
CREATE TEMP TABLE import_barcodes (line int, sku text, barcode text) ON COMMIT DROP;
CREATE TEMP TABLE import_prices (line int, sku text, scope text, scope_id text, amount_minor bigint) ON COMMIT DROP;
CREATE TEMP TABLE import_errors (line int, col text, reason text) ON COMMIT DROP;
CREATE TEMP TABLE import_touched (sku text) ON COMMIT DROP;
"""

INDEXES = """
CREATE INDEX ON import_variants (sku);
CREATE INDEX ON import_variants (product, line);
CREATE INDEX ON import_barcodes (sku, barcode);
CREATE INDEX ON import_barcodes (barcode);
ANALYZE import_variants;
ANALYZE import_barcodes;
ANALYZE import_prices;
"""

CHECKS = [
    # Each check is one set-based statement appending (line, column, reason) to import_errors; $1::text is the tenant.
    """INSERT INTO import_errors SELECT line, 'tax_class', format('%s is not a tax class of %s: create it first', tax_class, $1::text)
       FROM import_variants r WHERE NOT EXISTS (SELECT 1 FROM tax_classes t WHERE t.tenant = $1::text AND t.tax_class = r.tax_class)""",
    """INSERT INTO import_errors SELECT line, 'sku', format('SKU %s is also on line %s: one row per variant', sku, first)
       FROM (SELECT line, sku, min(line) OVER (PARTITION BY sku) AS first FROM import_variants) r WHERE line > first""",
    """INSERT INTO import_errors SELECT r.line, CASE WHEN r.product_name <> f.product_name THEN 'product_name'
           WHEN r.tax_class <> f.tax_class THEN 'tax_class' WHEN r.attributes <> f.attributes THEN 'attributes'
           ELSE 'category' END,
         format('product %s is described differently on line %s (name, tax class, attribute names and category must agree on every row of a product)', r.product, f.line)
       FROM import_variants r JOIN (SELECT DISTINCT ON (product) * FROM import_variants ORDER BY product, line) f
         ON f.product = r.product AND f.line < r.line
       WHERE (r.product_name, r.tax_class, r.attributes, r.category)
             IS DISTINCT FROM (f.product_name, f.tax_class, f.attributes, f.category)""",
    """INSERT INTO import_errors SELECT r.line, 'sku', format('SKU %s is a variant of product %s already: an SKU names one item', r.sku, v.product)
       FROM import_variants r JOIN variants v ON v.tenant = $1::text AND v.sku = r.sku WHERE v.product <> r.product""",
    """INSERT INTO import_errors SELECT r.line, 'attributes', format('product %s has variants this file does not list (%s, ...): changing its attributes needs new values for all of them', r.product, v.sku)
       FROM import_variants r JOIN products p ON p.tenant = $1::text AND p.product = r.product AND p.attributes <> r.attributes
       JOIN LATERAL (SELECT sku FROM variants v WHERE v.tenant = $1::text AND v.product = r.product
                     AND NOT EXISTS (SELECT 1 FROM import_variants i WHERE i.sku = v.sku) LIMIT 1) v ON true""",
    """INSERT INTO import_errors SELECT line, 'barcodes', format('barcode %s is also on line %s: a barcode names one item', barcode, first)
       FROM (SELECT line, barcode, min(line) OVER (PARTITION BY barcode) AS first FROM import_barcodes) b WHERE line > first""",
    """INSERT INTO import_errors SELECT b.line, 'barcodes', format('barcode %s is already the barcode of SKU %s: take it off there first', b.barcode, o.sku)
       FROM import_barcodes b JOIN barcodes o ON o.tenant = $1::text AND o.barcode = b.barcode
       WHERE o.sku <> b.sku AND NOT EXISTS (SELECT 1 FROM import_variants i WHERE i.sku = o.sku)""",
    """INSERT INTO import_errors SELECT p.line, 'price_overrides', format('%s is not a %s of %s', p.scope_id, p.scope, $1::text)
       FROM import_prices p WHERE (p.scope = 'region' AND NOT EXISTS (SELECT 1 FROM regions g WHERE g.tenant = $1::text AND g.region = p.scope_id))
          OR (p.scope = 'store' AND NOT EXISTS (SELECT 1 FROM stores s WHERE s.tenant = $1::text AND s.store = p.scope_id))""",
]

DROP_BAD = [
    "DELETE FROM import_variants WHERE line IN (SELECT line FROM import_errors)",
    "DELETE FROM import_barcodes WHERE line IN (SELECT line FROM import_errors)",
    "DELETE FROM import_prices WHERE line IN (SELECT line FROM import_errors)",
]

MERGE = [
    # $1 tenant, $2 the import's version. Only real changes are written and stamped: each statement first joins
    # the file's rows with the catalog (one hash join) and writes only the new or different ones.
    """WITH src AS (SELECT DISTINCT ON (i.product) i.product, i.product_name, i.tax_class, i.attributes,
                      CASE WHEN i.category IS NULL THEN p.category ELSE nullif(i.category, '') END AS category
                    FROM import_variants i LEFT JOIN products p ON p.tenant = $1::text AND p.product = i.product
                    ORDER BY i.product, i.line),
       changed AS (
         INSERT INTO products (tenant, product, name, tax_class, attributes, active, version, category)
         SELECT $1::text, s.product, s.product_name, s.tax_class, s.attributes, true, $2::bigint, s.category FROM src s
         LEFT JOIN products p ON p.tenant = $1::text AND p.product = s.product
         WHERE p.product IS NULL OR (p.name, p.tax_class, p.attributes, p.active, p.category)
                                    IS DISTINCT FROM (s.product_name, s.tax_class, s.attributes, true, s.category)
         ON CONFLICT (tenant, product) DO UPDATE SET name = EXCLUDED.name, tax_class = EXCLUDED.tax_class,
           attributes = EXCLUDED.attributes, active = true, version = EXCLUDED.version, category = EXCLUDED.category
         RETURNING product)
       INSERT INTO import_touched SELECT v.sku FROM variants v JOIN changed c ON v.tenant = $1::text AND v.product = c.product""",
    """WITH changed AS (
         INSERT INTO variants (tenant, sku, product, attribute_values, name, active, version)
         SELECT $1::text, i.sku, i.product, i.attribute_values, i.name, true, $2::bigint FROM import_variants i
         LEFT JOIN variants v ON v.tenant = $1::text AND v.sku = i.sku
         WHERE v.sku IS NULL OR (v.attribute_values, v.name, v.active) IS DISTINCT FROM (i.attribute_values, i.name, true)
         ON CONFLICT (tenant, sku) DO UPDATE SET attribute_values = EXCLUDED.attribute_values, name = EXCLUDED.name,
           active = true, version = EXCLUDED.version
         RETURNING sku)
       INSERT INTO import_touched SELECT sku FROM changed""",
    """WITH gone AS (
         DELETE FROM barcodes b USING import_variants i WHERE b.tenant = $1::text AND b.sku = i.sku
           AND NOT EXISTS (SELECT 1 FROM import_barcodes n WHERE n.sku = b.sku AND n.barcode = b.barcode)
         RETURNING b.sku)
       INSERT INTO import_touched SELECT sku FROM gone""",
    """WITH moved AS (
         INSERT INTO barcodes (tenant, barcode, sku) SELECT $1::text, n.barcode, n.sku FROM import_barcodes n
         LEFT JOIN barcodes b ON b.tenant = $1::text AND b.barcode = n.barcode
         WHERE b.barcode IS NULL OR b.sku <> n.sku
         ON CONFLICT (tenant, barcode) DO UPDATE SET sku = EXCLUDED.sku
         RETURNING sku)
       INSERT INTO import_touched SELECT sku FROM moved""",
    """WITH current AS (
         SELECT DISTINCT ON (p.sku, p.scope, p.scope_id) p.sku, p.scope, p.scope_id, p.amount_minor
         FROM prices p JOIN import_variants i ON p.tenant = $1::text AND p.sku = i.sku WHERE p.effective_from <= now()
         ORDER BY p.sku, p.scope, p.scope_id, p.effective_from DESC),
       priced AS (
         INSERT INTO prices (tenant, sku, scope, scope_id, effective_from, amount_minor, version)
         SELECT $1::text, n.sku, n.scope, n.scope_id, now(), n.amount_minor, $2::bigint FROM import_prices n
         LEFT JOIN current c ON c.sku = n.sku AND c.scope = n.scope AND c.scope_id = n.scope_id
         WHERE c.amount_minor IS DISTINCT FROM n.amount_minor
         ON CONFLICT (tenant, sku, scope, scope_id, effective_from) DO UPDATE SET amount_minor = EXCLUDED.amount_minor,
           version = EXCLUDED.version
         RETURNING sku)
       INSERT INTO import_touched SELECT sku FROM priced""",
]
STAMP = "UPDATE variants v SET version = $2 FROM (SELECT DISTINCT sku FROM import_touched) t" \
        " WHERE v.tenant = $1 AND v.sku = t.sku AND v.version <> $2"


def _arguments(sql: str, *values: object) -> tuple[object, ...]:
    """The leading values the statement uses ($1, $2...): PostgreSQL refuses a parameter it cannot type."""
    return values[:max((n for n in range(1, len(values) + 1) if f"${n}" in sql), default=0)]


async def import_catalog(pool: asyncpg.Pool, tenant: str, data: bytes, progress: Progress = lambda _: None, *,
                         actor: str = "system", file_name: str | None = None) -> Imported:
    """Import a catalog CSV (see the module docstring) into `tenant`'s catalog as one version, with its
    catalog.imported audit record (rows read, landed, refused; the file's name) in the same transaction.

    Raises Malformed (the file refused whole) or service.NotFound (no such tenant), changing nothing."""
    started = time.perf_counter()
    async with pool.acquire() as conn:
        currency = (await tenant_row(conn, tenant))["currency"]
        rows = await asyncio.to_thread(parse, data, currency, progress)  # seconds of CPU: off the hub's loop
        progress(f"read {rows.read} rows: {len(rows.variants)} well formed, {len(rows.errors)} refused; checking them "
                 "against each other and the catalog")
        async with conn.transaction():
            await conn.execute(TEMP_TABLES)
            await conn.copy_records_to_table("import_variants", records=rows.variants)
            await conn.copy_records_to_table("import_barcodes", records=rows.barcodes)
            await conn.copy_records_to_table("import_prices", records=rows.prices)
            await conn.execute(INDEXES)
            # The version first: it locks the tenant's catalog until the import commits, so no other change
            # slips in between the checks and the merge.
            version = await bump(conn, tenant)
            for check in CHECKS:
                await conn.execute(check, *_arguments(check, tenant))
            for statement in DROP_BAD:
                await conn.execute(statement)
            found = await conn.fetch("SELECT DISTINCT ON (line) line, col, reason FROM import_errors ORDER BY line, col")
            errors = sorted(rows.errors + [RowError(row["line"], row["col"], row["reason"]) for row in found],
                            key=lambda error: error.line)
            landed = await conn.fetchval("SELECT count(*) FROM import_variants")
            progress(f"checked: {landed} rows to write, {len(errors)} refused; writing")
            for statement in MERGE:
                await conn.execute(statement, *_arguments(statement, tenant, version))
            await conn.execute(STAMP, tenant, version)
            changed = await conn.fetchval("SELECT count(*) FROM variants WHERE tenant = $1 AND version = $2",
                                          tenant, version)
            await record(conn, Entry(tenant, actor, "catalog.imported", target=file_name, details={
                "file": file_name, "rows": rows.read, "landed": landed, "refused": len(errors),
                "changed_variants": changed, "version": version}))
    seconds = time.perf_counter() - started
    progress(f"written: catalog version {version}, {changed} variant(s) changed, in {seconds:.1f} s")
    return Imported(rows=rows.read, landed=landed, changed_variants=changed, version=version, errors=errors,
                    seconds=seconds)
