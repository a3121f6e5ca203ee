"""The console's audit API against a real hub: who sees which records (tenant admin everything, a regional
admin their region's stores and their own actions, another tenant nothing), filters and keyset pages, bad
parameters refused, personal values shown only to tenant admins while kept, verify naming a tampered row,
and retention that deletes personal values while the chain still verifies."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import trio

from hub.app import run_hub
from hub.audit.chain import Entry, record
from hub.audit.services import purge_personal
from hub.db import close_pool, create_pool
from novapos.config import HubConfig
from novapos.config.hub import AuditSettings
from tests.audit_support import tampering
from tests.identity import add_user, grant, signed_in
from tests.stock_world import build_world

OLD = datetime.now(UTC) - timedelta(days=400)


async def _on_pool(database_url: str, work: Any) -> Any:
    async def run() -> Any:
        pool = await create_pool(database_url, max_size=2)
        try:
            return await work(pool)
        finally:
            await close_pool(pool)
    return await trio.to_thread.run_sync(asyncio.run, run())


async def _records(pool: asyncpg.Pool) -> None:
    entries = [Entry("demo", "ada", "price.set", store="store-001", target="COF-250", details={"minor": 399}),
               Entry("demo", "ada", "stock.adjusted", store="store-002", target="COF-500"),
               Entry("demo", "ada", "price.set", store="store-003", target="COF-250", details={"minor": 449}),
               Entry("demo", "ada", "role.granted", target="nora", details={"role": "regional_admin"}),
               Entry("demo", "nora", "user.created", target="carl", details={"email": "carl@example.com"}),
               Entry("demo", "ada", "user.created", target="olde", details={"email": "olde@example.com"}, at=OLD),
               Entry("other", "olga", "price.set", store="o-1", target="OTH-1")]
    async with pool.acquire() as conn:
        for entry in entries:
            await record(conn, entry)


def _actions(page: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(item["action"], item["store"]) for item in page["items"]]


async def test_who_sees_which_audit_records_with_filters_pages_and_personal_values(
        hub_config: HubConfig, tmp_path: Path) -> None:
    config = dataclasses.replace(hub_config, audit=AuditSettings(checkpoint_dir=tmp_path / "checkpoints"))
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, config)
        await build_world(config.database_url)
        await add_user(config.database_url, "ada", grant("tenant_admin"))
        await add_user(config.database_url, "nora", grant("regional_admin", "north"))
        await add_user(config.database_url, "sue", grant("supervisor", "store-001"))
        await add_user(config.database_url, "olga", grant("tenant_admin"), tenant="other")
        await _on_pool(config.database_url, _records)

        async with signed_in(hub.url, "ada") as ada:
            everything = (await ada.get("/api/audit", params={"limit": 500})).json()
            assert everything["next"] is None
            seqs = [item["seq"] for item in everything["items"]]
            assert seqs == sorted(seqs, reverse=True) and all(item["store"] != "o-1" for item in everything["items"])
            # Keyset pages of two: every record once, newest first.
            paged, before = [], None
            while True:
                page = (await ada.get("/api/audit", params={"limit": 2, **({"before": before} if before else {})}))
                paged += [item["seq"] for item in page.json()["items"]]
                if (before := page.json()["next"]) is None:
                    break
            assert paged == seqs
            only = (await ada.get("/api/audit", params={"store": "store-003"})).json()
            assert _actions(only) == [("price.set", "store-003")]
            assert _actions((await ada.get("/api/audit", params={"action": "stock.adjusted"})).json()) == [
                ("stock.adjusted", "store-002")]
            assert {item["actor"] for item in (await ada.get("/api/audit", params={"actor": "nora"})).json()["items"]
                    } == {"nora"}
            old = (await ada.get("/api/audit", params={"to": (OLD + timedelta(days=1)).isoformat()})).json()
            assert [item["target"] for item in old["items"]] == ["olde"]
            recent = (await ada.get("/api/audit", params={"from": "2026-01-01T00:00:00", "actor": "ada"})).json()
            assert "olde" not in [item["target"] for item in recent["items"]]
            # Personal values: the tenant admin sees them while kept; the chain holds commitments.
            created = {item["target"]: item for item in (await ada.get(
                "/api/audit", params={"action": "user.created"})).json()["items"]}
            assert created["carl"]["details"]["email"] == "carl@example.com"
            assert created["carl"]["personal_shown"] == ["email"]
            logins = (await ada.get("/api/audit", params={"action": "login", "actor": "ada"})).json()["items"]
            assert logins and logins[0]["details"]["client"] == "127.0.0.1"
            for status, params in [(404, {"store": "o-1"}), (404, {"tenant": "other"}), (400, {"limit": "0"}),
                                   (400, {"limit": "501"}), (400, {"before": "abc"}), (400, {"before": "0"}),
                                   (400, {"from": "yesterday"}), (400, {"to": "2026-13-01"}),
                                   (400, {"store": "../etc"}), (400, {"actor": "a\x00b"}),
                                   (400, {"action": "x" * 65}), (400, {"before": str(2**63)})]:
                answer = await ada.get("/api/audit", params=params)
                assert answer.status_code == status and answer.json()["error"], (params, answer.text)
            verdict = (await ada.get("/api/audit/verify")).json()
            assert verdict["ok"] and verdict["length"] >= 7 and verdict["broken_at"] is None

        async with signed_in(hub.url, "nora") as nora:
            seen = (await nora.get("/api/audit", params={"limit": 500})).json()["items"]
            assert {item["store"] for item in seen} == {"store-001", "store-002", None}
            assert {item["actor"] for item in seen if item["store"] is None} == {"nora"}  # her own only
            email = next(item for item in seen if item["action"] == "user.created")["details"]["email"]
            assert email.startswith("sha256:") and not next(
                item for item in seen if item["action"] == "user.created")["personal_shown"]
            refused = await nora.get("/api/audit", params={"store": "store-003"})
            assert refused.status_code == 403 and "tenant admin" in refused.json()["error"]
            assert (await nora.get("/api/audit", params={"store": "o-1"})).status_code == 404
            assert (await nora.get("/api/audit/verify")).json()["ok"]

        async with signed_in(hub.url, "olga") as olga:
            theirs = (await olga.get("/api/audit", params={"limit": 500})).json()["items"]
            assert theirs and {item["store"] for item in theirs} <= {"o-1", None}
            assert (await olga.get("/api/audit", params={"tenant": "demo"})).status_code == 404

        async with signed_in(hub.url, "sue") as sue:
            for path in ("/api/audit", "/api/audit/verify"):
                answer = await sue.get(path)
                assert answer.status_code == 403 and "sue" in answer.json()["error"]
        async with httpx.AsyncClient(base_url=hub.url) as anonymous:
            assert (await anonymous.get("/api/audit")).status_code == 401
            assert (await anonymous.get("/api/audit/verify")).status_code == 401

        # Retention: personal values of old records go; the records and the chain stay as they were.
        assert await _on_pool(config.database_url, lambda pool: purge_personal(pool, 90)) == 1
        async with signed_in(hub.url, "ada") as ada:
            created = {item["target"]: item for item in (await ada.get(
                "/api/audit", params={"action": "user.created"})).json()["items"]}
            assert created["olde"]["details"]["email"].startswith("sha256:") and not created["olde"]["personal_shown"]
            assert created["carl"]["details"]["email"] == "carl@example.com"
            assert (await ada.get("/api/audit/verify")).json()["ok"]

            # A superuser edits a row with the triggers off: verify names it.
            await _on_pool(config.database_url, lambda pool: tampering(
                pool, "UPDATE audit_records SET target = 'COF-1K' WHERE tenant = 'demo' AND seq = 3"))
            broken = (await ada.get("/api/audit/verify")).json()
            assert not broken["ok"] and broken["broken_at"] == 3 and "edited" in broken["why"]
            assert "broken at record 3" in broken["summary"]
        nursery.cancel_scope.cancel()
