"""Personal data (P2-03) never enters a hashed record: the record holds a salted commitment, the value waits
beside the chain until retention or an erasure deletes it, and the chain verifies before and after."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from hub.audit import chain
from hub.audit.chain import Entry, commitment, record
from hub.audit.personal import erase
from hub.audit.services import purge_personal
from hub.audit.verify import verify
from tests.audit_support import run


def test_personal_values_are_committed_kept_aside_and_deleted_without_breaking_the_chain(database_url: str) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        old = datetime.now(UTC) - timedelta(days=100)
        async with pool.acquire() as conn:
            await record(conn, Entry("demo", "ada", "user.created", target="carl",
                                     details={"email": "carl@example.com", "phone": "+49 30 1234", "role": "cashier"}))
            await record(conn, Entry("demo", "ada", "user.changed", target="carl",
                                     details={"email": "carl@example.com"}, at=old))
            await record(conn, Entry("demo", "system", "login", details={"client": None}))
            chain.set_personal(("email",))
            try:
                await record(conn, Entry("demo", "ada", "user.changed", target="dora",
                                         details={"email": "dora@example.com", "phone": "+49 30 999"}))
            finally:
                chain.set_personal(("email", "phone", "customer_name", "client"))
            rows = await conn.fetch("SELECT seq, details::text AS details FROM audit_records ORDER BY seq")
            kept = await conn.fetch("SELECT seq, field, value::text AS value, salt FROM audit_personal ORDER BY seq, field")
        first = json.loads(rows[0]["details"])
        assert first["role"] == "cashier" and "carl@" not in rows[0]["details"] and "1234" not in rows[0]["details"]
        by_key = {(row["seq"], row["field"]): row for row in kept}
        for field in ("email", "phone"):
            row = by_key[(1, field)]
            assert first[field] == commitment(row["salt"], row["value"])  # provably the value recorded
        assert first["email"] != json.loads(rows[1]["details"])["email"]  # salted: equal values, unlinkable
        assert json.loads(rows[2]["details"]) == {"client": None}  # nothing to keep
        assert json.loads(rows[3]["details"])["phone"] == "+49 30 999"  # not personal by that configuration
        assert sorted(by_key) == [(1, "email"), (1, "phone"), (2, "email"), (4, "email")]
        assert (await verify(pool, "demo", None)).ok

        assert await purge_personal(pool, 90) == 1  # record 2 is 100 days old
        assert await erase(pool, "demo", "carl@example.com", "ada") == 1  # the rest of carl's email
        left = await pool.fetch("SELECT seq, field FROM audit_personal ORDER BY seq, field")
        assert [(row["seq"], row["field"]) for row in left] == [(1, "phone"), (4, "email")]
        erasure = await pool.fetchrow("SELECT actor, details::text AS details FROM audit_records WHERE action ="
                                      " 'audit.personal_erased'")
        assert erasure["actor"] == "ada" and "carl" not in erasure["details"]
        verdict = await verify(pool, "demo", None)
        assert verdict.ok and verdict.length == 5
    run(database_url, scenario)
