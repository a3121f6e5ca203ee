"""Payment events for the tests: emitted into the hub's payments outbox as the intents service does (in a
transaction of their own), and what a store's edge has made of them (its inbox, its follow-ups, what its tills
were told)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trio

from actors.storage import db as local_db
from actors.till.actor import TillActor
from hub.db import close_pool, create_pool, migrate
from hub.payments.outbox import emit


def intent(till: str = "till-1", *, state: str = "captured", offline: bool = False, amount: int = 1250,
           tender: str | None = None) -> dict[str, Any]:
    """An intent's JSON as events carry it (the fields a store reads)."""
    return {"id": str(uuid.uuid4()), "tenant": "demo", "store": "store-001", "till": till,
            "tender_id": tender or str(uuid.uuid4()), "order_id": str(uuid.uuid4()), "method": "card_present",
            "currency": "EUR", "amount_minor": amount, "authorized_minor": amount, "captured_minor": 0,
            "refunded_minor": 0, "state": state, "pending": None, "provider": "simulator", "provider_ref": "ch_1",
            "auth_code": "123456", "scheme": "visa", "masked": "**** 4242", "offline": offline,
            "capture_before": None, "attention": None, "created_at": "2026-12-02T10:00:00+00:00",
            "updated_at": "2026-12-02T10:00:01+00:00"}


async def emit_async(database_url: str, events: list[tuple[str, str, dict[str, Any]]], each_own: bool,
                     lost: bool = False) -> list[str]:
    """emit_events, from an asyncio loop."""
    pool = await create_pool(database_url, max_size=2)
    try:
        await migrate(pool)
        ids = []
        async with pool.acquire() as conn:
            if each_own:
                for store, event_type, body in events:
                    async with conn.transaction():
                        ids.append(str(await emit(conn, "demo", store, event_type, body)))
            else:
                async with conn.transaction():
                    for store, event_type, body in events:
                        ids.append(str(await emit(conn, "demo", store, event_type, body)))
                    if lost:  # as if published and lost in transit: the relay never sends them
                        await conn.execute("UPDATE payment_outbox SET published_at = now() WHERE id = ANY($1::uuid[])",
                                           ids)
        return ids
    finally:
        await close_pool(pool)


async def emit_events(database_url: str, events: list[tuple[str, str, dict[str, Any]]],
                      each_own: bool = True, lost: bool = False) -> list[str]:
    """Emit (store, type, body) events of tenant demo, each in its own transaction (or all in one, `lost` in
    transit if asked); their ids."""
    return await trio.to_thread.run_sync(asyncio.run, emit_async(database_url, events, each_own, lost))


def inbox(state_dir: Path) -> list[tuple[int, str, str]]:
    """(position, id, type) of every event the store applied, by position."""
    db = local_db.connect(state_dir / local_db.FILE_NAME)
    try:
        return [tuple(row) for row in db.execute("SELECT position, id, type FROM payment_inbox ORDER BY position")]
    finally:
        db.close()


class Told:
    """What the tills' actors were told through `payment_event` (TillActor has one for the test's length)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, str]] = []
        """(till actor name, event type, intent id)."""

    def record(self, till: str, event_type: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append((till, event_type, body["intent"]["id"]))

    def of(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self.calls)


@contextmanager
def tills_told(monkeypatch: pytest.MonkeyPatch) -> Iterator[Told]:
    """Record each call of the tills' `payment_event` on its way to the real method, which still runs."""
    told = Told()
    real = TillActor.payment_event

    def payment_event(self: TillActor, event_type: str, body: dict[str, Any]) -> None:
        told.record(self.actor_name, event_type, body)
        real(self, event_type, body)
    monkeypatch.setattr(TillActor, "payment_event", payment_event)
    yield told


async def published_count(database_url: str) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM payment_outbox WHERE published_at IS NOT NULL"))
        finally:
            await conn.close()
    return await trio.to_thread.run_sync(asyncio.run, run())
