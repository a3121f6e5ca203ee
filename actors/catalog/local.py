"""The store's local catalog: `catalog.sqlite3` in the state folder, filled from the hub's catalog stream
(actors.catalog.sync) and read by every till, offline included.

Its own file, not edge.sqlite3: a 100,000-item apply holds this file's write lock for as long as it
takes, and the outbox must never wait on it to commit a sale. WAL, so tills read while a version is
being applied, and see the previous version until its one transaction commits: a till never sees half
a change. Each till reads through its own read-only connection, every lookup in one read transaction
(one snapshot: the item, its prices, its tax rate and the catalog version all of the same version).

A scan is two primary-key lookups (barcode -> sku -> item) plus the item's prices and its tax rate:
well under a millisecond at 100,000 items (bench/catalog_sync.py measures it).

Promotions travel with the catalog (novapos.wire.catalog): a promotion's row (its wire body as JSON) is
applied in the same transaction as its catalog version, so a till never evaluates a promotion against a
catalog of another version. `LocalCatalog.promotions` gives a till the store's active promotions, indexed
for the engine (novapos.promotions.Rules) once per catalog version, offline too.

The meta row says which catalog version is applied, the last stream sequence applied (where the sync
resumes) and the stream's identity (its creation time: a stream rebuilt on the hub has another one).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from actors.storage.db import immediate
from novapos.pricing import Price, effective_price
from novapos.promotions import Promotion, Rules, from_wire, to_wire
from novapos.validators import Invalid
from novapos.wire.catalog import Item, Message, Other, PromotionMessage, TaxClass, VersionMarker

log = logging.getLogger(__name__)

FILE_NAME = "catalog.sqlite3"
BUSY_WAIT_S = 2.0  # a reader waits this long for a checkpoint; only the sync writes here

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    sku        TEXT PRIMARY KEY,
    product    TEXT NOT NULL,
    name       TEXT NOT NULL,
    attributes TEXT NOT NULL,
    tax_class  TEXT NOT NULL,
    active     INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    category   TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS barcodes (
    barcode TEXT PRIMARY KEY,
    sku     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS barcodes_by_sku ON barcodes (sku);
CREATE TABLE IF NOT EXISTS prices (
    sku               TEXT NOT NULL,
    scope             TEXT NOT NULL,
    scope_id          TEXT NOT NULL,
    effective_from_ms INTEGER NOT NULL,
    minor             INTEGER NOT NULL,
    PRIMARY KEY (sku, scope, scope_id, effective_from_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tax_classes (
    tax_class TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    version   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tax_rates (
    tax_class TEXT NOT NULL,
    region    TEXT NOT NULL,
    rate_ppm  INTEGER NOT NULL,
    PRIMARY KEY (tax_class, region)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS promotions (
    id      TEXT PRIMARY KEY,
    active  INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
    only_row           INTEGER PRIMARY KEY CHECK (only_row = 1),
    currency           TEXT NOT NULL,
    prices_include_tax INTEGER NOT NULL,
    version            INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    only_row        INTEGER PRIMARY KEY CHECK (only_row = 1),
    catalog_version INTEGER NOT NULL,
    stream_seq      INTEGER NOT NULL,
    stream_id       TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (only_row, catalog_version, stream_seq, stream_id) VALUES (1, 0, 0, '');
"""

_TABLES = ("items", "barcodes", "prices", "tax_classes", "tax_rates", "promotions", "settings")
BEFORE_CATEGORIES = "before-categories"
"""The stream identity a file made before items had a category is given when its items table gains the column:
no stream has it, so the sync resyncs in full (every item again, with its category) while the tills sell on."""


ItemRow = tuple[str, str, str, str, str, bool, int, tuple[str, ...], tuple[str | int, ...], str]
"""An item as the local catalog stores it: sku, product, name, attributes (JSON), tax class, active,
version, barcodes, prices flat (scope, scope_id, effective_from_ms, minor, then the next price's), category.

Plain values nested at most two deep, so that the garbage collector stops tracking a row at its
second pass: a tuple of tuples of tuples stays tracked into the oldest generation, and a cold sync's
100,000 rows then make it walk the whole heap again and again (measured: half a second)."""


def item_row(item: Item) -> ItemRow:
    return (item.sku, item.product, item.name, attributes_json(item.attributes), item.tax_class, item.active,
            item.version, item.barcodes,
            tuple([field for price in item.prices for field in (price.scope, price.scope_id, price.effective_from_ms,
                                                                 price.minor)]), item.category)


@lru_cache(maxsize=4096)
def attributes_json(attributes: tuple[tuple[str, str], ...]) -> str:
    """The attributes column: JSON of the (attribute, value) pairs. Cached: a catalog's variants share a few
    hundred combinations (sizes, colours), and JSON-encoding each again is a tenth of a cold sync's decode."""
    return json.dumps(attributes)


@dataclass(frozen=True)
class Meta:
    catalog_version: int
    stream_seq: int
    """The last stream sequence applied (its version marker's): the sync resumes after it."""
    stream_id: str
    """The stream's identity when it was applied ('' before the first version)."""


@dataclass(frozen=True)
class Offer:
    """An item as a till may sell it now, with the price lock its line keeps (P5-05): the catalog
    version it was read at, the unit price in force, and the tax rule."""
    sku: str
    name: str
    catalog_version: int
    unit_minor: int
    currency: str
    tax_class: str
    rate_ppm: int
    included: bool
    attributes: tuple[tuple[str, str], ...] = ()
    """The variant's (attribute, value) pairs (size, colour), at most 3, shown on its line and receipt."""
    category: str = ""
    """The product's category path ("food/dairy"), "" for none: what promotions target besides the SKU."""


@dataclass(frozen=True)
class StorePromotions:
    """The promotions a store may apply, read in one snapshot with the catalog version they came with."""
    catalog_version: int
    rules: Rules
    """The store's active promotions (those scoped to it or to the whole tenant), indexed for evaluate();
    evaluate() checks each one's time window, coupon and customer conditions per cart."""


def catalog_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if read_only:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                             timeout=BUSY_WAIT_S, check_same_thread=False)
    else:
        db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_WAIT_S, check_same_thread=False)
    return db


class CatalogWriter:
    """The sync's side of the file: stage messages in an open transaction, commit at a version marker.

    Readers see nothing of a version until `commit`; `rollback` drops a half-received one (its messages
    come again: the sync resumes after the last committed sequence)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(path, read_only=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost last version comes again from the stream
        self._staged: set[str] | None = None
        """SKUs staged into tables that were empty when the transaction began (None: they were not)."""
        with immediate(self._db):
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            if columns and "category" not in columns:
                self._db.execute("ALTER TABLE items ADD COLUMN category TEXT NOT NULL DEFAULT ''")
                self._db.execute("UPDATE meta SET stream_id = ?", (BEFORE_CATEGORIES,))


    def meta(self) -> Meta:
        version, seq, stream_id = self._db.execute(
            "SELECT catalog_version, stream_seq, stream_id FROM meta").fetchone()
        return Meta(version, seq, stream_id)

    def _begin(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            empty = self._db.execute("SELECT 1 FROM items LIMIT 1").fetchone() is None
            self._staged = set() if empty else None

    def clear(self) -> None:
        """Empty every table in the open transaction (a full resync: the old rows stay served until it commits)."""
        self._begin()
        for table in _TABLES:
            self._db.execute(f"DELETE FROM {table}")
        self._staged = set()

    def stage(self, items: Sequence[ItemRow], others: Iterable[Other] = ()) -> None:
        """Apply items (as item_row made them), tax classes, promotions and settings in the open transaction
        (opened if need be): each is its subject's whole truth, so it replaces what was there."""
        self._begin()
        rows = list({row[0]: row for row in items}.values())  # an item twice in one batch: its last
        if rows:
            # Into tables that were empty (a cold sync, a resync) only an item staged twice has rows to replace.
            staged = self._staged
            skus = [(row[0],) for row in rows if staged is None or row[0] in staged]
            if staged is not None:
                staged.update(row[0] for row in rows)
            if skus:
                self._db.executemany("DELETE FROM barcodes WHERE sku = ?", skus)
                self._db.executemany("DELETE FROM prices WHERE sku = ?", skus)
            self._db.executemany(
                "INSERT OR REPLACE INTO items (sku, product, name, attributes, tax_class, active, version, category) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(*row[:7], row[9]) for row in rows])
            self._db.executemany("INSERT OR REPLACE INTO barcodes (barcode, sku) VALUES (?, ?)",
                                 [(code, row[0]) for row in rows for code in row[7]])
            self._db.executemany(
                "INSERT OR REPLACE INTO prices (sku, scope, scope_id, effective_from_ms, minor) VALUES (?, ?, ?, ?, ?)",
                [(row[0], *row[8][at:at + 4]) for row in rows for at in range(0, len(row[8]), 4)])
        for message in others:
            if isinstance(message, TaxClass):
                self._db.execute("INSERT OR REPLACE INTO tax_classes (tax_class, name, version) VALUES (?, ?, ?)",
                                 (message.tax_class, message.name, message.version))
                self._db.execute("DELETE FROM tax_rates WHERE tax_class = ?", (message.tax_class,))
                self._db.executemany("INSERT INTO tax_rates (tax_class, region, rate_ppm) VALUES (?, ?, ?)",
                                     [(message.tax_class, region, rate) for region, rate in message.rates])
            elif isinstance(message, PromotionMessage):
                self._db.execute("INSERT OR REPLACE INTO promotions (id, active, version, body) VALUES (?, ?, ?, ?)",
                                 (message.promotion.id, message.active, message.promotion.version,
                                  json.dumps(to_wire(message.promotion), separators=(",", ":"))))
            else:
                self._db.execute("INSERT OR REPLACE INTO settings (only_row, currency, prices_include_tax, version) "
                                 "VALUES (1, ?, ?, ?)", (message.currency, message.prices_include_tax, message.version))

    def commit(self, marker: VersionMarker, stream_seq: int, stream_id: str) -> None:
        """Close the version: everything staged and the meta row become visible together."""
        self._begin()
        self._db.execute("UPDATE meta SET catalog_version = ?, stream_seq = ?, stream_id = ?",
                         (marker.version, stream_seq, stream_id))
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self.rollback()
        self._db.close()


def write_catalog(state_dir: Path, messages: Iterable[Message], stream_id: str = "seeded") -> None:
    """Write a catalog into a state folder the way the sync applies one (each VersionMarker closes a
    version; messages after the last marker are left out, as the sync would): for tests, benchmarks and
    a store box prepared before its first connection."""
    writer = CatalogWriter(catalog_path(state_dir))
    try:
        items: list[ItemRow] = []
        others: list[Other] = []
        for message in messages:
            if isinstance(message, VersionMarker):
                writer.stage(items, others)
                writer.commit(message, writer.meta().stream_seq, stream_id)
                items, others = [], []
            elif isinstance(message, Item):
                items.append(item_row(message))
            else:
                others.append(message)
    finally:
        writer.close()


class CatalogMissing(Exception):
    """The store has no catalog yet (never synced): the sentence says so."""


class LocalCatalog:
    """A till's read-only view of the catalog, for one store in one region."""

    def __init__(self, path: Path, store: str, region: str) -> None:
        self._path = path
        self._store = store
        self._region = region
        self._db: sqlite3.Connection | None = None
        self._promotions: StorePromotions | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            if not self._path.exists():
                raise CatalogMissing("this store has no catalog yet: it arrives from the hub once NATS is reached")
            self._db = _connect(self._path, read_only=True)
        return self._db

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every read inside sees the same committed version."""
        db = self._connection()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def version(self) -> int:
        with self._snapshot() as db:
            return int(db.execute("SELECT catalog_version FROM meta").fetchone()[0])

    def promotions(self) -> StorePromotions:
        """The store's active promotions at the catalog version the tills sell from (see StorePromotions),
        decoded and indexed once per version. Each body is checked again by from_wire: a row that no longer
        passes (a file edited by hand, a newer hub's rule this code does not know) is left out and logged,
        never applied half-understood."""
        with self._snapshot() as db:
            version = int(db.execute("SELECT catalog_version FROM meta").fetchone()[0])
            if self._promotions is not None and self._promotions.catalog_version == version:
                return self._promotions
            bodies = db.execute("SELECT id, body FROM promotions WHERE active ORDER BY id").fetchall()
        store: list[Promotion] = []
        for promotion_id, body in bodies:
            try:
                promotion = from_wire(json.loads(body))
            except (Invalid, ValueError) as exc:
                log.warning("catalog: promotion %s of catalog version %d left out: %s", promotion_id, version, exc)
                continue
            if (not promotion.stores and not promotion.regions) or self._store in promotion.stores \
                    or self._region in promotion.regions:
                store.append(promotion)
        self._promotions = StorePromotions(version, Rules(store))
        return self._promotions

    def offer(self, code: str, at_ms: int) -> Offer | str:
        """What a scan of `code` (a barcode, else a SKU) sells at `at_ms`: an Offer, or a sentence saying
        why it cannot be sold (unknown, inactive, no price in force, no tax rate for this region)."""
        try:
            with self._snapshot() as db:
                return self._offer(db, code, at_ms)
        except CatalogMissing as exc:
            return str(exc)

    def _offer(self, db: sqlite3.Connection, code: str, at_ms: int) -> Offer | str:
        row = db.execute("SELECT i.sku, i.name, i.tax_class, i.active, i.attributes, i.category FROM barcodes b "
                         "JOIN items i ON i.sku = b.sku WHERE b.barcode = ?", (code,)).fetchone()
        if row is None:
            row = db.execute("SELECT sku, name, tax_class, active, attributes, category FROM items WHERE sku = ?",
                             (code,)).fetchone()
        if row is None:
            return f"no item has barcode or SKU {code!r} in this store's catalog"
        return self._sellable(db, row, at_ms)

    def _sellable(self, db: sqlite3.Connection, row: tuple[str, str, str, int, str, str], at_ms: int) -> Offer | str:
        sku, name, tax_class, active, attributes, category = row
        if not active:
            return f"{name} ({sku}) is no longer sold: it is inactive in the catalog"
        prices = [Price(*price) for price in db.execute(
            "SELECT scope, scope_id, effective_from_ms, minor FROM prices WHERE sku = ?", (sku,))]
        price = effective_price(prices, self._region, self._store, at_ms)
        if price is None:
            return f"{name} ({sku}) has no price in force in this store: it cannot be sold yet"
        rate = db.execute("SELECT rate_ppm FROM tax_rates WHERE tax_class = ? AND region = ?",
                          (tax_class, self._region)).fetchone()
        if rate is None:
            return (f"{name} ({sku}) has no tax rate for its class {tax_class} in region "
                    f"{self._region or '(none)'}: it cannot be sold until the hub sets one")
        settings = db.execute("SELECT currency, prices_include_tax FROM settings").fetchone()
        if settings is None:
            return "the catalog has no settings (currency, tax) yet: wait for the hub's next version"
        version = db.execute("SELECT catalog_version FROM meta").fetchone()[0]
        return Offer(sku=sku, name=name, catalog_version=version, unit_minor=price.minor, currency=settings[0],
                     tax_class=tax_class, rate_ppm=rate[0], included=bool(settings[1]),
                     attributes=tuple((str(a), str(v)) for a, v in json.loads(attributes)), category=category)

    def page(self, query: str, after: str, limit: int, at_ms: int) -> tuple[list[Offer | str], list[str], str | None]:
        """Up to `limit` active items whose SKU follows `after`, matching `query` (a SKU or barcode prefix,
        or part of the name; '' for all): their offers (or why not sellable), first barcodes, and the SKU to
        ask `after` for the next page (None at the end)."""
        with self._snapshot() as db:
            if query:
                escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                rows = db.execute(
                    "SELECT sku FROM items WHERE active AND sku > ? AND (sku LIKE ? ESCAPE '\\' OR name LIKE ? "
                    "ESCAPE '\\' OR sku IN (SELECT sku FROM barcodes WHERE barcode LIKE ? ESCAPE '\\')) "
                    "ORDER BY sku LIMIT ?",
                    (after, f"{escaped}%", f"%{escaped}%", f"{escaped}%", limit + 1)).fetchall()
            else:
                rows = db.execute("SELECT sku FROM items WHERE active AND sku > ? ORDER BY sku LIMIT ?",
                                  (after, limit + 1)).fetchall()
            skus = [row[0] for row in rows[:limit]]
            offers = [self._sellable(db, db.execute(
                "SELECT sku, name, tax_class, active, attributes, category FROM items WHERE sku = ?",
                (sku,)).fetchone(), at_ms) for sku in skus]
            barcodes = [(db.execute("SELECT min(barcode) FROM barcodes WHERE sku = ?", (sku,)).fetchone()[0] or "")
                        for sku in skus]
        return offers, barcodes, skus[-1] if len(rows) > limit else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
