"""Recomputing a tenant's audit chain: the first broken record, named with why, and the last checkpoint.

PostgreSQL streams the records in seq order in big chunks with their canonical encoding computed by the
server (chain.CANONICAL_SQL); Python hashes them one after another. Each record is checked three ways:

- its seq is the one after the previous record's: otherwise records were removed (or one was put in twice);
- its hash is SHA-256(its prev_hash || its encoding): otherwise its content was edited;
- its prev_hash is the previous record's hash: otherwise the chain was relinked (a record before it was
  rewritten, hash and all, or one was put in between).

A chain rewritten consistently from some point on passes all three: the signed checkpoint catches it
(the chain is shorter than the checkpoint, or the record at the checkpoint's length has another hash).
All reads run in one REPEATABLE READ snapshot (shared by the connections that fetch side by side), so
appends going on meanwhile are simply not looked at.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from hub.audit import checkpoints
from hub.audit.chain import CANONICAL_SQL, GENESIS
from hub.audit.checkpoints import Checkpoint, CheckpointError

CHUNK = 20_000
"""Records per fetch: big enough that round trips do not count, small enough to keep memory flat."""

LANES = 2
"""Connections fetching chunks side by side: PostgreSQL's encoding costs more than Python's hashing."""

EXTRA_LANE_WAIT_S = 0.05
"""How long an extra lane waits for a free connection: only one free now is taken."""

LANE_RELEASE_S = 60.0
"""How long giving an extra lane's connection back may take (asyncpg would otherwise apply the acquire's
timeout to the release's reset, and a reset slower than 50 ms on a loaded machine would fail the verify)."""

_ROWS = (f"SELECT seq, hash, prev_hash || {CANONICAL_SQL} AS hashed FROM audit_records"
         " WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq")

Progress = Callable[[int, int], None]
"""(records checked so far, records in the chain) after every chunk."""


@dataclass(frozen=True)
class Break:
    seq: int
    why: str


@dataclass(frozen=True)
class Verdict:
    tenant: str
    length: int
    """How many records the chain holds (the last seq reached)."""
    head: bytes
    broken: Break | None = None
    checkpoint: Checkpoint | None = None
    """The last signed checkpoint compared with, if any."""
    checkpoint_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None and self.checkpoint_problem is None

    def sentence(self) -> str:
        """One line for a person: what is wrong, where, and what it means; or that all is well."""
        if self.broken is not None:
            return f"audit chain of {self.tenant} is broken at record {self.broken.seq}: {self.broken.why}"
        if self.checkpoint_problem is not None:
            return f"audit chain of {self.tenant} fails its signed checkpoint: {self.checkpoint_problem}"
        against = (f"; matches the signed checkpoint at {self.checkpoint.length}" if self.checkpoint is not None
                   else "; no signed checkpoint yet")
        return f"audit chain of {self.tenant} is intact: {self.length} records, head {self.head.hex()[:16]}{against}"

    def as_json(self) -> dict[str, object]:
        return {"tenant": self.tenant, "ok": self.ok, "length": self.length, "head": self.head.hex(),
                "broken_at": None if self.broken is None else self.broken.seq,
                "why": None if self.broken is None else self.broken.why,
                "checkpoint": None if self.checkpoint is None else {"length": self.checkpoint.length,
                                                                    "head": self.checkpoint.head.hex()},
                "checkpoint_problem": self.checkpoint_problem, "summary": self.sentence()}


@dataclass
class _Walk:
    """Where the walk is: the last record checked (seq, hash) and the first break found."""
    seq: int
    hash: bytes
    broken: Break | None = None
    at_mark: bytes | None = None
    """The hash of the record at `mark` (the checkpoint's length), once passed."""


def _check(rows: list[asyncpg.Record], walk: _Walk, mark: int) -> None:
    sha256 = hashlib.sha256
    seq, previous = walk.seq, walk.hash
    for row in rows:
        if row[0] != seq + 1:
            walk.broken = (Break(seq, f"record {seq} is there twice (one was put in with a seq already given)")
                           if row[0] == seq and seq > walk.seq else
                           Break(seq + 1, f"record {seq + 1} is missing (removed); the next is {row[0]}"))
            return
        seq, stored, hashed = row  # hashed: prev_hash || encoding, one column (one decode) per record
        if sha256(hashed).digest() != stored:
            walk.broken = Break(seq, "hash mismatch: its content was edited after it was recorded")
            return
        if not hashed.startswith(previous):
            walk.broken = Break(seq, f"prev_hash mismatch: it does not follow record {seq - 1}'s hash (the chain "
                                     "was relinked: an earlier record was rewritten, or one put in between)")
            return
        if seq == mark:
            walk.at_mark = stored
        previous = stored
    walk.seq, walk.hash = seq, previous


async def _chunks(conns: Sequence[asyncpg.Connection], tenant: str, after: int, last: int,
                  chunk: int) -> AsyncGenerator[list[asyncpg.Record], None]:
    """The records with seq in (after, last], in seq order, a chunk at a time: fetched by every connection in
    turn, each running ahead by up to two chunks, so PostgreSQL encodes on several cores while Python hashes."""
    bounds = [(low, min(low + chunk, last)) for low in range(after, last, chunk)]
    results: list[asyncio.Future[list[asyncpg.Record]]] = [asyncio.get_running_loop().create_future() for _ in bounds]
    ahead = asyncio.Semaphore(2 * len(conns))

    async def lane(first: int, conn: asyncpg.Connection) -> None:
        for index in range(first, len(bounds), len(conns)):
            await ahead.acquire()
            try:
                results[index].set_result(await conn.fetch(_ROWS, tenant, *bounds[index]))
            except Exception as exc:
                results[index].set_exception(exc)
                return
    lanes = [asyncio.create_task(lane(first, conn)) for first, conn in enumerate(conns)]
    try:
        for result in results:
            rows = await result
            ahead.release()
            yield rows
    finally:
        for task in lanes:
            task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)


async def walk_chain(conns: Sequence[asyncpg.Connection], tenant: str, *, after: Checkpoint | None = None,
                     progress: Progress | None = None, chunk: int = CHUNK, mark: int = 0) -> _Walk:
    """Check the records after `after` (from the first without), inside the connections' one snapshot."""
    conn = conns[0]
    walk = _Walk(0, GENESIS) if after is None else _Walk(after.length, after.head)
    head = await conn.fetchrow("SELECT seq, hash FROM audit_heads WHERE tenant = $1", tenant)
    last = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_records WHERE tenant = $1", tenant))
    if after is not None and after.length > 0:
        stored = await conn.fetchval("SELECT hash FROM audit_records WHERE tenant = $1 AND seq = $2", tenant,
                                     after.length)
        if stored != after.head:
            walk.broken = Break(after.length, "differs from the last signed checkpoint (removed or rewritten)")
            return walk
    chunks = _chunks(conns, tenant, walk.seq, last, chunk)
    try:
        async for rows in chunks:
            if rows:
                _check(rows, walk, mark)
            if walk.broken is not None:
                return walk
            if progress is not None:
                progress(walk.seq, last)
    finally:
        await chunks.aclose()
    if head is not None and (int(head["seq"]), bytes(head["hash"])) != (walk.seq, walk.hash):
        walk.broken = Break(walk.seq + 1, f"the chain's head says {head['seq']} records but only {walk.seq} are there "
                                          "(the last records were removed)")
    return walk


@asynccontextmanager
async def snapshot(pool: asyncpg.Pool, lanes: int) -> AsyncIterator[list[asyncpg.Connection]]:
    """Up to `lanes` connections reading one REPEATABLE READ snapshot (exported by the first, shared by the
    rest); fewer when the pool has no more free at once (a small pool, other verifies running)."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(pool.acquire())
        await stack.enter_async_context(first.transaction(isolation="repeatable_read", readonly=True))
        conns = [first]
        if lanes > 1:
            exported = await first.fetchval("SELECT pg_export_snapshot()")
            for _ in range(lanes - 1):
                try:  # only a connection free now: waiting for one while holding one could wait for ever
                    conn = await pool.acquire(timeout=EXTRA_LANE_WAIT_S)
                except TimeoutError:
                    break
                stack.push_async_callback(pool.release, conn, timeout=LANE_RELEASE_S)
                await stack.enter_async_context(conn.transaction(isolation="repeatable_read", readonly=True))
                await conn.execute(f"SET TRANSACTION SNAPSHOT '{exported}'")
                conns.append(conn)
        yield conns


def _against(walk: _Walk, checkpoint: Checkpoint) -> str | None:
    if walk.seq < checkpoint.length:
        return (f"the chain holds {walk.seq} records but {checkpoint.length} were signed in {checkpoint.path}: "
                "records were removed, or the chain was rebuilt shorter")
    if walk.at_mark is not None and walk.at_mark != checkpoint.head:
        return (f"record {checkpoint.length} has hash {walk.at_mark.hex()[:16]} but {checkpoint.head.hex()[:16]} "
                f"was signed in {checkpoint.path}: the chain was rewritten from some point at or before it")
    return None


async def verify(pool: asyncpg.Pool, tenant: str, checkpoint_dir: Path | None, *,
                 progress: Progress | None = None, lanes: int = LANES) -> Verdict:
    """Recompute the whole chain of `tenant` and hold it against its last signed checkpoint (when
    `checkpoint_dir` is given)."""
    checkpoint, problem = None, None
    if checkpoint_dir is not None:
        try:
            checkpoint = checkpoints.latest(checkpoint_dir, tenant)
        except CheckpointError as exc:
            problem = str(exc)
    async with snapshot(pool, lanes) as conns:
        walk = await walk_chain(conns, tenant, progress=progress, mark=0 if checkpoint is None else checkpoint.length)
    if walk.broken is None and checkpoint is not None and checkpoint.length > 0:
        problem = _against(walk, checkpoint)
    return Verdict(tenant, walk.seq, walk.hash, walk.broken, checkpoint, problem)


async def checkpoint_now(pool: asyncpg.Pool, tenant: str, checkpoint_dir: Path, key_file: Path) -> Checkpoint | str | None:
    """Sign the tenant's chain as it is now, if it grew since its last checkpoint: the new checkpoint; None
    when it did not grow; a sentence when it must not be signed (the records since the last checkpoint do
    not verify, or that checkpoint cannot be trusted): signing a tampered chain would vouch for it."""
    key = checkpoints.load_signing_key(key_file, checkpoint_dir)
    try:
        last = checkpoints.latest(checkpoint_dir, tenant)
    except CheckpointError as exc:
        return f"not signing: {exc}"
    async with snapshot(pool, 1) as conns:
        walk = await walk_chain(conns, tenant, after=last)
    if walk.broken is not None:
        return f"not signing: the chain is broken at record {walk.broken.seq}: {walk.broken.why}"
    if walk.seq == 0 or (last is not None and walk.seq <= last.length):
        return None
    made = Checkpoint(tenant, walk.seq, walk.hash)
    return Checkpoint(tenant, made.length, made.head, checkpoints.write(checkpoint_dir, made, key))
