"""The audit chain against real PostgreSQL: refused changes (triggers and privileges), a superuser's edits
found by verify and named (edited, relinked, removed), a chain rebuilt consistently from some point caught
against the signed checkpoint, a forged checkpoint refused, and many writers giving a gapless chain."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import asyncpg
import nacl.signing
import pytest

from hub.audit import checkpoints
from hub.audit.chain import CANONICAL_SQL, GENESIS, Entry, record
from hub.audit.checkpoints import Checkpoint, CheckpointError
from hub.audit.verify import checkpoint_now, verify
from hub.db import migrate
from tests.audit_support import fill, run, tampering


def test_update_delete_and_truncate_are_refused_by_triggers_and_by_privileges(database_url: str) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        await fill(pool, "demo", 3)
        async with pool.acquire() as conn:
            for sql in ("UPDATE audit_records SET actor = 'eve' WHERE seq = 2",
                        "DELETE FROM audit_records WHERE seq = 3", "TRUNCATE audit_records CASCADE"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await conn.execute(sql)
            # The hub's role in production: not the owner, allowed to add and read, nothing else.
            await conn.execute("CREATE ROLE audit_hub_test NOLOGIN")
            await conn.execute("GRANT SELECT, INSERT ON audit_records TO audit_hub_test")
            await conn.execute("GRANT SELECT, INSERT, UPDATE ON audit_heads TO audit_hub_test")
            await conn.execute("GRANT SELECT, INSERT, DELETE ON audit_personal TO audit_hub_test")
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE audit_hub_test")
                assert await record(conn, Entry("demo", "ada", "login")) == 4  # appending works
            for sql in ("UPDATE audit_records SET actor = 'eve' WHERE seq = 2",
                        "DELETE FROM audit_records WHERE seq = 3", "TRUNCATE audit_records"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    async with conn.transaction():
                        await conn.execute("SET LOCAL ROLE audit_hub_test")
                        await conn.execute(sql)
            assert await conn.fetchval("SELECT count(*) FROM audit_records") == 4
        assert (await verify(pool, "demo", None)).ok
    run(database_url, scenario)


def test_a_superusers_edits_with_triggers_off_are_found_and_named(database_url: str) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        for tenant in ("edited", "rehashed", "removed", "tail", "intact"):
            await fill(pool, tenant, 10)
        await tampering(pool, "UPDATE audit_records SET details = '{\"price\": 1}' WHERE tenant = 'edited' AND seq = 5")
        await tampering(pool, "UPDATE audit_records SET actor = 'eve' WHERE tenant = 'rehashed' AND seq = 5")
        await tampering(pool, f"UPDATE audit_records SET hash = sha256(prev_hash || {CANONICAL_SQL})"
                              " WHERE tenant = 'rehashed' AND seq = 5")
        await tampering(pool, "DELETE FROM audit_records WHERE tenant = 'removed' AND seq = 5")
        await tampering(pool, "DELETE FROM audit_records WHERE tenant = 'tail' AND seq > 8")

        verdicts = {tenant: await verify(pool, tenant, None)
                    for tenant in ("edited", "rehashed", "removed", "tail", "intact")}
        assert verdicts["intact"].ok and verdicts["intact"].length == 10
        assert not verdicts["edited"].ok and verdicts["edited"].broken is not None
        assert verdicts["edited"].broken.seq == 5 and "content was edited" in verdicts["edited"].broken.why
        rehashed = verdicts["rehashed"].broken
        assert rehashed is not None and rehashed.seq == 6 and "prev_hash mismatch" in rehashed.why
        removed = verdicts["removed"].broken
        assert removed is not None and removed.seq == 5 and "missing" in removed.why
        tail = verdicts["tail"].broken
        assert tail is not None and tail.seq == 9 and "removed" in tail.why
        assert "broken at record 5" in verdicts["edited"].sentence()
    run(database_url, scenario)


def test_a_chain_rebuilt_from_some_point_is_caught_against_the_signed_checkpoint(database_url: str,
                                                                                   tmp_path: Path) -> None:
    folder, key = tmp_path / "checkpoints", tmp_path / "keys" / "hub.key"

    async def scenario(pool: asyncpg.Pool) -> None:
        await fill(pool, "demo", 10)
        await fill(pool, "shorter", 10)
        made = await checkpoint_now(pool, "demo", folder, key)
        assert isinstance(made, Checkpoint) and made.length == 10
        assert await checkpoint_now(pool, "demo", folder, key) is None  # did not grow: nothing new
        assert isinstance(await checkpoint_now(pool, "shorter", folder, key), Checkpoint)
        assert key.stat().st_mode & 0o777 == 0o600
        assert (await verify(pool, "demo", folder)).ok

        # Truncate the whole chain and rebuild it consistently, one record different, same length.
        await tampering(pool, "TRUNCATE audit_records CASCADE")
        await tampering(pool, "DELETE FROM audit_heads")
        await fill(pool, "demo", 6)
        async with pool.acquire() as conn:
            await record(conn, Entry("demo", "ada", "price.set", store="store-001", target="SKU-6",
                                     details={"price": 1}))
        await fill(pool, "demo", 3)
        await fill(pool, "shorter", 7)
        rebuilt = await verify(pool, "demo", folder)
        assert rebuilt.broken is None and rebuilt.length == 10  # the links alone look fine
        assert not rebuilt.ok and rebuilt.checkpoint_problem is not None
        assert "record 10 has hash" in rebuilt.checkpoint_problem and "rewritten" in rebuilt.checkpoint_problem
        shorter = await verify(pool, "shorter", folder)
        assert not shorter.ok and shorter.checkpoint_problem is not None
        assert "holds 7 records but 10 were signed" in shorter.checkpoint_problem
        # The checkpointer refuses to vouch for a chain that no longer follows its last checkpoint.
        await fill(pool, "demo", 1)
        refused = await checkpoint_now(pool, "demo", folder, key)
        assert isinstance(refused, str) and "not signing" in refused
    run(database_url, scenario)


def test_a_forged_or_altered_checkpoint_is_refused(database_url: str, tmp_path: Path) -> None:
    folder, key_file = tmp_path / "checkpoints", tmp_path / "hub.key"

    async def scenario(pool: asyncpg.Pool) -> None:
        await fill(pool, "demo", 5)
        made = await checkpoint_now(pool, "demo", folder, key_file)
        assert isinstance(made, Checkpoint) and made.path is not None
        signed = made.path.read_bytes()
        assert signed.startswith(b"novapos/audit/demo\n5\n") and "\n\n\u2014 novapos-hub ".encode() in signed

        # Another key, same name: a forger without the hub's key.
        forged = checkpoints.sign(Checkpoint("demo", 7, bytes(32)), nacl.signing.SigningKey.generate())
        (folder / "demo" / f"{7:012d}.note").write_bytes(forged)
        verdict = await verify(pool, "demo", folder)
        assert not verdict.ok and verdict.checkpoint_problem is not None
        assert "forged" in verdict.checkpoint_problem
        (folder / "demo" / f"{7:012d}.note").unlink()

        # The hub's own signature over other numbers: the signature no longer verifies.
        altered = signed.replace(b"\n5\n", b"\n4\n", 1)
        with pytest.raises(CheckpointError, match="does not verify"):
            checkpoints.parse(altered, "demo", checkpoints.read_verifier(folder))
        with pytest.raises(CheckpointError, match="not novapos/audit/other"):
            checkpoints.parse(signed, "other", checkpoints.read_verifier(folder))
        assert (await verify(pool, "demo", folder)).ok

        # Two hubs signing at once: one file, same bytes, still valid.
        await fill(pool, "demo", 2)
        both = await asyncio.gather(checkpoint_now(pool, "demo", folder, key_file),
                                    checkpoint_now(pool, "demo", folder, key_file))
        assert all(isinstance(made, Checkpoint) and made.length == 7 for made in both)
        assert sorted(path.name for path in (folder / "demo").iterdir()) == [f"{5:012d}.note", f"{7:012d}.note"]
        latest = checkpoints.latest(folder, "demo")
        assert latest is not None and latest.length == 7
        head = base64.b64encode(latest.head).decode()
        assert (folder / "demo" / f"{7:012d}.note").read_text().splitlines()[2] == head
    run(database_url, scenario)


def test_concurrent_appends_from_many_connections_give_a_gapless_chain(database_url: str) -> None:
    writers, each = 12, 40

    async def scenario(pool: asyncpg.Pool) -> None:
        async def writer(number: int) -> list[int]:
            async with pool.acquire() as conn:
                seqs = []
                for step in range(each):
                    async with conn.transaction():
                        seqs.append(await record(conn, Entry("demo", f"user{number}", "stock.adjusted",
                                                             store="store-001", details={"step": step})))
                return seqs
        got = await asyncio.gather(*(writer(number) for number in range(writers)))
        assert sorted(seq for seqs in got for seq in seqs) == list(range(1, writers * each + 1))
        verdict = await verify(pool, "demo", None)
        assert verdict.ok and verdict.length == writers * each
        first = await pool.fetchval("SELECT prev_hash FROM audit_records WHERE tenant = 'demo' AND seq = 1")
        assert first == GENESIS
    run(database_url, scenario, max_size=writers)


def test_verify_on_a_pool_with_one_connection_uses_one_lane_and_finishes(database_url: str) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        await fill(pool, "demo", 30)
        verdict = await asyncio.wait_for(verify(pool, "demo", None, lanes=4), 30)
        assert verdict.ok and verdict.length == 30
    run(database_url, scenario, max_size=1)


def test_a_slow_connection_reset_after_verify_does_not_fail_it(database_url: str) -> None:
    """An extra lane is taken only if free within 50 ms; giving it back (asyncpg resets the connection) may
    take longer on a loaded machine and must not fail the verify (asyncpg applies an acquire's timeout to
    its release unless told otherwise: CI saw a TimeoutError answered 500)."""
    async def slow_reset(conn: asyncpg.Connection) -> None:
        await asyncio.sleep(0.2)

    async def main() -> None:
        pool = await asyncpg.create_pool(database_url, min_size=2, max_size=2, reset=slow_reset)
        try:
            await migrate(pool)
            await fill(pool, "demo", 30)
            verdict = await asyncio.wait_for(verify(pool, "demo", None, lanes=2), 30)
            assert verdict.ok and verdict.length == 30
            async with pool.acquire() as one, pool.acquire() as two:  # both lanes went back to the pool
                assert await one.fetchval("SELECT 1") == await two.fetchval("SELECT 1") == 1
        finally:
            await pool.close()
    asyncio.run(main())


def test_two_lanes_in_small_chunks_find_the_same_first_break(database_url: str) -> None:
    from hub.audit.verify import snapshot, walk_chain

    async def scenario(pool: asyncpg.Pool) -> None:
        await fill(pool, "demo", 50)
        async with snapshot(pool, 2) as conns:
            assert len(conns) == 2
            whole = await walk_chain(conns, "demo", chunk=7)
        assert whole.broken is None and whole.seq == 50
        await tampering(pool, "DELETE FROM audit_records WHERE tenant = 'demo' AND seq IN (22, 23)")
        await tampering(pool, "UPDATE audit_records SET actor = 'eve' WHERE tenant = 'demo' AND seq = 40")
        async with snapshot(pool, 2) as conns:
            broken = await walk_chain(conns, "demo", chunk=7)
        assert broken.broken is not None and broken.broken.seq == 22 and "missing" in broken.broken.why
    run(database_url, scenario)
