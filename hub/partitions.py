"""Monthly partitions of the tables that grow with every sale: made ahead of time, retired past their retention.

inbox, sales, sale_lines and sale_tenders are PARTITION BY RANGE (event_id) (migrations 0200-0202): an event id is
a UUIDv7, whose first 48 bits are its milliseconds, so the month of an id is a range of ids and the event id stays
unique across partitions (the inbox's key is the final guard against double application). stock_movements is
PARTITION BY RANGE (created_at), the hub's time of writing (0203-0206), keyed (id, created_at); audit_records by
recorded_at, the hub's time of writing too (0210-0213), keyed (tenant, seq, recorded_at), a seq still given once per
tenant by the chain's head row (hub.audit.chain). Each table has:

- `<table>_legacy`: the rows from before partitioning, every id below the bound 0200 chose (partition_legacy): the
  first instant of the month after next, in UTC;
- `<table>_pYYYYMM`: one month (UTC) of ids each, from that bound on, made `ahead_months` before the month begins;
- `<table>_default`: an id above every month made (a store clock far ahead, an id that is no UUIDv7, or such a row
  held before partitioning: 0200 moved it aside, 0207 put it back): a month made later takes its rows over from
  there, in the same transaction.

Every month boundary is computed in UTC, in SQL and here, whatever the server's or the session's TimeZone.

A month is retired (DROP TABLE) once all of it is older than the retention: the inbox's
(`[retention] inbox_days`) outlasts the events stream's max age (and the leaf stores' local streams', which the
hub's stream may source again from their start) by a margin, and a month of the inbox is kept
while any row in it was received within that retention (a store whose clock ran behind), so that any event the
stream can still redeliver is still found in the inbox and skipped (asked of the month's BRIN index on received_at,
migration 0214: a few pages read under its exclusive lock, not the month). Sales, lines and tenders are kept for good
unless `[retention] sales_months` says otherwise; the stock ledger for good (it adds up to the balances), and the
audit log for good (records are evidence, and a chain verifies from its first record). The default partition is
never retired.

Every step is its own transaction with a lock_timeout (LOCK_TIMEOUT_MS); one not granted waits for the next round
(a log line says so) instead of queueing ingest behind it, and a step that fails otherwise is logged and skipped:
the other tables and steps go on. The locks: making a month takes SHARE ROW EXCLUSIVE on the table and its
partitions first (reads go on, writes wait: no row can reach the default partition until the month is attached),
then ACCESS EXCLUSIVE on the default partition for ATTACH, which reads it; retiring one takes ACCESS EXCLUSIVE on
the partition, then on the parent and the default partition for DROP. While any of these is held or queued, ingest
writing to the table, and for the ACCESS EXCLUSIVE ones any statement whose plan locks every partition (a generic
plan), waits: for a moment (the default partition is small), at most LOCK_TIMEOUT_MS while queued.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import trio

from edge_runtime import AsyncioSeam
from hub.tenancy import service
from novapos.config.hub import INBOX_MARGIN_DAYS, LEAF_STREAM_MAX_AGE_DAYS, HubConfig

log = logging.getLogger(__name__)

KEYS = {"inbox": "event_id", "sales": "event_id", "sale_lines": "event_id", "sale_tenders": "event_id",
        "stock_movements": "created_at", "audit_records": "recorded_at"}
"""The partitioned tables, in the order they are maintained, and their partition key: an event id (a UUIDv7) or
the hub's time a row was written."""
KEPT_FOR_GOOD = frozenset({"stock_movements", "audit_records"})
"""Tables whose months are never retired (the stock ledger adds up to the balances; audit records are evidence)."""
APPEND_ONLY = {"audit_records": "audit_records_are_append_only"}
"""Tables whose every partition refuses TRUNCATE by this trigger function (the parent's row triggers are cloned onto
a partition as it is attached, its statement triggers are not), and whose default partition lets a move through
only when novapos.partition_move names the table (migration 0213)."""
SALES_TABLES = frozenset({"sales", "sale_lines", "sale_tenders"})
"""The tables `[retention] sales_months` applies to."""
INBOX_DEFAULT_MARGIN_DAYS = 31
"""The margin when [retention] inbox_days is not set: a month."""
AHEAD_MONTHS = 3
LOCK_TIMEOUT_MS = 1000
_LOCK = 0x70617274  # "part": one hub process maintains at a time (hub.leases, when it lands, makes that one lease)
RECENT_SQL = 'SELECT EXISTS (SELECT FROM "{partition}" WHERE received_at >= $1)'
"""Whether a month of the inbox holds an event received since $1, asked of its BRIN index on received_at (migration
0214: a few pages, not the month). Planned for that $1 every time (plan_cache_mode): the statement runs again on
the same pooled connection every round, and a generic plan, estimating a third of the rows to match, reads the
month until the first one, which is all of it when none does."""
INTERVAL_S = 3600.0
"""How often the hub maintains the partitions (and once at start)."""


@dataclass(frozen=True)
class Retention:
    """[retention] (hub.toml): how long each table's months are kept, and how far ahead they are made."""
    inbox_days: int
    sales_months: int = 0
    """0: sales, lines and tenders are kept for good."""
    ahead_months: int = AHEAD_MONTHS

    @classmethod
    def for_stream(cls, max_age_days: int, *, inbox_days: int | None = None, sales_months: int = 0,
                   ahead_months: int = AHEAD_MONTHS, leaf: bool = False) -> Retention:
        """The retention for an events stream of `max_age_days` (and, if `leaf`, leaf stores' local streams of
        LEAF_STREAM_MAX_AGE_DAYS, which the hub's stream may source again from their first message); refuses an
        inbox kept no longer than the longest of them plus INBOX_MARGIN_DAYS (a replay could then apply an event a
        second time)."""
        kept = max(max_age_days, LEAF_STREAM_MAX_AGE_DAYS) if leaf else max_age_days
        least = kept + INBOX_MARGIN_DAYS
        if inbox_days is None:
            inbox_days = kept + INBOX_DEFAULT_MARGIN_DAYS
        if inbox_days < least:
            raise ValueError(f"[retention] inbox_days {inbox_days} must be at least {kept} days (the events stream's "
                             f"max age{', or the leaf streams' if leaf else ''}) + {INBOX_MARGIN_DAYS} = {least}: the "
                             "inbox must remember every event the stream can still redeliver")
        return cls(inbox_days, sales_months, ahead_months)

    @classmethod
    def of(cls, config: HubConfig, *, leaf: bool) -> Retention:
        """The hub's [retention] for its [stream], and `leaf`: whether any store is flagged as running a leaf node
        (ValueError if [retention] inbox_days is then too short: `novapos hub store leaf` refuses it first)."""
        return cls.for_stream(config.stream.max_age_days, inbox_days=config.retention.inbox_days or None,
                              sales_months=config.retention.sales_months,
                              ahead_months=config.retention.ahead_months, leaf=leaf)


@dataclass(frozen=True)
class Partition:
    name: str
    low: datetime | None
    """None: MINVALUE (the legacy partition), or the default partition (both bounds None)."""
    high: datetime | None
    default: bool = False


def uuid7_floor(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of `at`'s millisecond (SQL: uuid7_floor, migration 0200)."""
    return uuid.UUID(int=(int(at.timestamp() * 1000) << 80))


LATEST = datetime.max.replace(tzinfo=UTC)
"""What uuid7_time gives for an id whose first 48 bits are past the year 9999 (an id that is no UUIDv7)."""


def uuid7_time(event_id: uuid.UUID) -> datetime:
    """The time a UUIDv7 carries (SQL: uuid7_time); LATEST past what a datetime holds."""
    try:
        return datetime.fromtimestamp((event_id.int >> 80) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return LATEST


def month_start(at: datetime) -> date:
    return date(at.year, at.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _at(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


_BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|'[^']+')\) TO \('([^']+)'\)")


def _bound(literal: str) -> datetime:
    """A partition bound as pg_get_expr writes it: a UUIDv7 (its time) or a timestamptz. Never raises: a bound past
    what a datetime holds (an id that is no UUIDv7, 'infinity') reads as LATEST, with a log line if unreadable."""
    try:
        return uuid7_time(uuid.UUID(literal))
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(literal).astimezone(UTC)  # written in the session's time zone
    except (ValueError, OverflowError):
        if literal.strip().lower() != "infinity":
            log.warning("partition bound %r read as the latest time: it is neither a UUID nor a timestamp", literal)
        return LATEST


def _literal(table: str, at: datetime) -> uuid.UUID | datetime:
    """A bound of `table`'s partition key at `at`."""
    return uuid7_floor(at) if KEYS[table] == "event_id" else at


async def partitions(conn: asyncpg.Connection, table: str) -> list[Partition]:
    """The partitions of `table`, lowest first, the default one last."""
    rows = await conn.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass", table)
    found = []
    for row in rows:
        if row["bound"] == "DEFAULT":
            found.append(Partition(row["relname"], None, None, default=True))
            continue
        match = _BOUND.fullmatch(row["bound"])
        if not match:
            raise RuntimeError(f"partition {row['relname']} of {table} has a bound hub.partitions does not know: "
                               f"{row['bound']}")
        low = None if match.group(1) == "MINVALUE" else _bound(match.group(1).strip("'"))
        found.append(Partition(row["relname"], low, _bound(match.group(2))))
    return sorted(found, key=lambda p: (p.default, p.low is not None, p.low or datetime.min.replace(tzinfo=UTC)))


async def maintain(pool: asyncpg.Pool, retention: Retention | None = None, *, now: datetime | None = None) -> int:
    """Make every month up to `retention.ahead_months` ahead and retire those past retention; returns how many
    partitions were made or retired. A step whose lock was not granted in time is left for the next call."""
    retention = retention or Retention.for_stream(14)
    now = now or datetime.now(UTC)
    changed = 0
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK):
            log.debug("another hub process is maintaining the partitions")
            return 0
        try:
            for table in KEYS:
                for step in ("making months ahead", "retiring old months"):
                    try:
                        changed += await (_make_ahead(conn, table, now, retention.ahead_months)
                                          if step == "making months ahead" else _retire(conn, table, now, retention))
                    except (asyncpg.PostgresError, RuntimeError) as exc:
                        log.warning("%s of %s failed (%s: %s); the other tables go on, the next round tries again",
                                    step, table, type(exc).__name__, exc)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    return changed


async def _make_ahead(conn: asyncpg.Connection, table: str, now: datetime, ahead_months: int) -> int:
    ranged = [p for p in await partitions(conn, table) if not p.default]
    if not ranged:
        raise RuntimeError(f"{table} is not partitioned: the hub's migrations 0200-0213 have not run")
    top = max(p.high for p in ranged if p.high)
    if top == LATEST:
        return 0  # a partition up to the end of time (made by hand): no month can follow it
    month = month_start(top)
    start: datetime | None = top if top != _at(month) else None
    """A bound that is no month's first instant in UTC (0200 run before it computed months in UTC, on a server in
    another time zone): the first month made starts there, not at its own first instant (which would overlap)."""
    until = month_start(now)
    for _ in range(ahead_months):
        until = next_month(until)
    made = 0
    while month <= until:
        if not await _make(conn, table, month, start):
            break  # the months after it wait for it (the next month is made from the last one made)
        made += 1
        month, start = next_month(month), None
    return made


async def _make(conn: asyncpg.Connection, table: str, month: date, start: datetime | None = None) -> bool:
    """One month of `table` (from `start` if given, else its first instant): an empty table that takes over the
    default partition's rows in its range, then attached. The table is locked first in SHARE ROW EXCLUSIVE (reads
    go on; writes wait the few milliseconds the step takes): a row written into the default partition in the
    month's range between the move and ATTACH would make ATTACH fail, and an insert begun before ATTACH that
    routes a row there after it would fail itself (its view of the partitions is the older one)."""
    name = f"{table}_p{month:%Y%m}"
    key = KEYS[table]
    low, high = _literal(table, start or _at(month)), _literal(table, _at(next_month(month)))
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            await conn.execute(f'LOCK TABLE "{table}" IN SHARE ROW EXCLUSIVE MODE')
            if table in APPEND_ONLY:
                await conn.execute("SELECT set_config('novapos.partition_move', $1, true)", table)
            await conn.execute(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                               " INCLUDING STORAGE)")
            moved = await conn.fetchval(
                f'WITH moved AS (DELETE FROM "{table}_default" WHERE {key} >= $1 AND {key} < $2 RETURNING *)'
                f' , kept AS (INSERT INTO "{name}" SELECT * FROM moved RETURNING 1) SELECT count(*) FROM kept',
                low, high)
            await conn.execute(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES FROM'
                               f" ('{low.isoformat() if isinstance(low, datetime) else low}')"
                               f" TO ('{high.isoformat() if isinstance(high, datetime) else high}')")
            if table in APPEND_ONLY:
                await conn.execute(f'CREATE TRIGGER "{name}_no_truncate" BEFORE TRUNCATE ON "{name}"'
                                   f" FOR EACH STATEMENT EXECUTE FUNCTION {APPEND_ONLY[table]}()")
    except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
        log.warning("partition %s not made: a lock on %s was not granted within %d ms (a long transaction); "
                    "the next round tries again, meanwhile its rows go to %s_default",
                    name, table, LOCK_TIMEOUT_MS, table)
        return False
    log.info("partition %s made for %s (%s of %s), %d row(s) taken over from %s_default",
             name, table, key, f"{month:%Y-%m}", moved, table)
    return True


async def _retire(conn: asyncpg.Connection, table: str, now: datetime, retention: Retention) -> int:
    if table in KEPT_FOR_GOOD:
        return 0
    if table in SALES_TABLES:
        if not retention.sales_months:
            return 0
        cutoff_month = month_start(now)
        for _ in range(retention.sales_months):
            cutoff_month = date(cutoff_month.year - (cutoff_month.month == 1), (cutoff_month.month - 2) % 12 + 1, 1)
        cutoff = _at(cutoff_month)
    else:
        cutoff = now - timedelta(days=retention.inbox_days)
    retired = 0
    for partition in await partitions(conn, table):
        if partition.default or partition.high is None or partition.high > cutoff:
            continue
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")  # RECENT_SQL
                # locked before the check: no late event can be written into it between the check and the DROP
                await conn.execute(f'LOCK TABLE "{partition.name}" IN ACCESS EXCLUSIVE MODE')
                recent = table == "inbox" and await conn.fetchval(RECENT_SQL.format(partition=partition.name), cutoff)
                if not recent:
                    rows = await conn.fetchval(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", partition.name)
                    await conn.execute(f'DROP TABLE "{partition.name}"')
        except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
            log.warning("partition %s not retired: a lock on %s was not granted within %d ms; the next round "
                        "tries again", partition.name, table, LOCK_TIMEOUT_MS)
            continue
        if recent:
            log.info("partition %s kept past its month: it holds events received since %s (a store clock behind), "
                     "which the stream may still redeliver", partition.name, f"{cutoff:%Y-%m-%d}")
            continue
        log.info("partition %s retired (about %d row(s), all older than %s: [retention] %s)", partition.name,
                 max(rows, 0), f"{cutoff:%Y-%m-%d}", "sales_months" if table in SALES_TABLES else "inbox_days")
        retired += 1
    return retired


async def maintain_for(pool: asyncpg.Pool, config: HubConfig) -> int:
    """One round for the hub's config, its inbox outlasting the leaf stores' local streams while any store is flagged
    as running a leaf node (read each round: `novapos hub store leaf` needs no restart)."""
    async with pool.acquire() as conn:
        leaf = bool(await service.leaf_stores(conn))
    return await maintain(pool, Retention.of(config, leaf=leaf))


async def run_maintain(seam: AsyncioSeam, pool: asyncpg.Pool, config: HubConfig) -> None:
    """(trio side) Maintain at start and then every INTERVAL_S; a failed round waits for the next."""
    while True:
        try:
            await seam.run(maintain_for, pool, config)
        except Exception as exc:
            log.warning("maintaining the monthly partitions failed (%s: %r); trying again in %.0f s",
                        type(exc).__name__, str(exc), INTERVAL_S)
        await trio.sleep(INTERVAL_S)
