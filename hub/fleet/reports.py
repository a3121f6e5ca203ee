"""A store's health report arriving at the hub (responder of novapos.*.*.req.health): the latest state is
upserted into the store's one fleet_status row and what changed goes to fleet_history.

The store is the one in the subject (NATS lets a store publish only on its own subjects). A report out of
bounds raises validators.Invalid before anything is touched (the responder answers 400, nothing stored).
Reports are kept by group commit (hub.group_commit): those arriving while one transaction writes go together in
the next, one per store, so a thousand stores cost about ten commits a second, not two hundred. The rows are locked in
one order (tenant, store) while a batch is applied, so two hub processes taking reports of the same stores apply
them one after the other without deadlocking, and a store coming back online is recorded once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.db import LOCK_ERRORS
from hub.group_commit import GroupCommit
from hub.ingest.leaf_sources import sourced_seq
from novapos.adapters.nats import NatsLink
from novapos.wire.health import (
    HealthReply,
    HealthReport,
    decode_report,
    encode_reply,
    parse_health_subject,
)

SAMPLE_EVERY = timedelta(seconds=60)
"""How often the outbox's depth and age are kept in the history (changes are kept as they come)."""
BACKLOG_ALERT_MS = 5 * 60 * 1000
"""An oldest unsent event older than this is an alert: the store's sales are not reaching the hub."""
SKEW_ALERT_MS = 60 * 1000
"""A store clock further than this from the hub's is an alert (receipts and reports carry wrong times)."""

BATCH_MOST = 256
"""Reports one transaction keeps at most (a batch of 256 is about 30 ms of PostgreSQL's time)."""
BATCH_LINGER_S = 0.1
"""How long the writer waits for more reports before a write: a reply comes up to 0.1 s later (a store reports
every few seconds and does not wait on the answer to sell), and a thousand stores' reports go 20 to a transaction
instead of one or two."""

_BATCH = " JOIN unnest($1::text[], $2::text[]) AS r(tenant, store) ON {t}.tenant = r.tenant AND {t}.store = r.store"
PREVIOUS_SQL = ("SELECT f.tenant, f.store, s.status, f.online, f.version, f.devices::text AS devices, f.sampled_at,"
                " now() AS now FROM fleet_status f JOIN stores s ON s.tenant = f.tenant AND s.store = f.store"
                + _BATCH.format(t="f") + " ORDER BY f.tenant, f.store FOR UPDATE OF f")
ENSURE_SQL = ("INSERT INTO fleet_status (tenant, store) SELECT s.tenant, s.store FROM stores s" + _BATCH.format(t="s")
              + " ORDER BY s.tenant, s.store ON CONFLICT DO NOTHING")
UPDATE_SQL = (
    "UPDATE fleet_status SET online = true, offline_since = NULL, rank = $3, first_seen = coalesce(first_seen, now()),"
    " last_seen = now(), version = $4, outbox_depth = $5, oldest_unsent_ms = $6, devices = $7::jsonb,"
    " devices_down = $8, clock_skew_ms = $9, open_tills = $10, last_sale_seq = $11, last_sale_at = $12,"
    " interval_s = $13, sampled_at = $14 WHERE tenant = $1 AND store = $2")
HISTORY_SQL = "INSERT INTO fleet_history (tenant, store, kind, details) VALUES ($1, $2, $3, $4::jsonb)"


def alerting(*, online: bool, devices_down: int, oldest_unsent_ms: int | None, clock_skew_ms: int | None) -> bool:
    """Whether a store needs a person: the rank the fleet page orders by (alerts first)."""
    return (not online or devices_down > 0 or (oldest_unsent_ms or 0) > BACKLOG_ALERT_MS
            or abs(clock_skew_ms or 0) > SKEW_ALERT_MS)


def _devices(report: HealthReport) -> list[dict[str, Any]]:
    return [{"name": d.name, "kind": d.kind, "state": d.state, "detail": d.detail, "down": d.down}
            for d in report.devices]


def _changes(previous: asyncpg.Record, report: HealthReport, devices: list[dict[str, Any]],
             skew_ms: int) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """History rows for what this report changes, and whether it is time for an outbox sample."""
    changes: list[tuple[str, dict[str, Any]]] = []
    if not previous["online"]:
        changes.append(("online", {"version": report.version, "reason": report.reason}))
    if previous["version"] is not None and previous["version"] != report.version:
        changes.append(("version", {"from": previous["version"], "to": report.version}))
    before = {d["name"]: d for d in json.loads(previous["devices"])}
    for device in devices:
        was = before.pop(device["name"], None)
        if was is None or (was["state"], was["detail"]) != (device["state"], device["detail"]):
            changes.append(("device", {"name": device["name"], "kind": device["kind"], "state": device["state"],
                                       "detail": device["detail"], "was": None if was is None else was["state"]}))
    for gone in before.values():
        changes.append(("device", {"name": gone["name"], "kind": gone["kind"], "state": "removed", "detail": "",
                                   "was": gone["state"]}))
    sampled = previous["sampled_at"]
    sample = sampled is None or previous["now"] - sampled >= SAMPLE_EVERY
    if sample:
        changes.append(("sample", {"outbox_depth": report.outbox_depth, "oldest_unsent_ms": report.oldest_unsent_ms,
                                   "clock_skew_ms": skew_ms, "open_tills": len(report.open_tills)}))
    return changes, sample


@dataclass(frozen=True)
class Received:
    """A valid report as it came: from which store, and how far the store's clock is from the hub's."""
    tenant: str
    store: str
    report: HealthReport
    skew_ms: int


async def _previous(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], asyncpg.Record]:
    rows = await conn.fetch(PREVIOUS_SQL, [tenant for tenant, _ in keys], [store for _, store in keys])
    return {(row["tenant"], row["store"]): row for row in rows}


async def apply_reports(conn: asyncpg.Connection, received: Sequence[Received]) -> list[str | None]:
    """Keep each report as its store's latest state (None), or say why not (the store is unknown or revoked), in one
    transaction; one report per store. Four round trips however many reports: BEGIN, the rows locked, their
    updates (pipelined), COMMIT, and the history rows when something changed or a sample is due."""
    keys = [(one.tenant, one.store) for one in received]
    if len(set(keys)) != len(keys):
        raise ValueError("apply_reports keeps one report per store at a time")
    async with conn.transaction():
        previous = await _previous(conn, keys)
        missing = [key for key in keys if key not in previous]
        if missing:  # first reports (the fleet watch has not enrolled them yet), or no such stores
            await conn.execute(ENSURE_SQL, [tenant for tenant, _ in missing], [store for _, store in missing])
            previous.update(await _previous(conn, missing))
        answers: list[str | None] = []
        updates: list[tuple[Any, ...]] = []
        history: list[tuple[str, str, str, str]] = []
        for one in received:
            answer, update, changes = _apply(previous.get((one.tenant, one.store)), one)
            answers.append(answer)
            if update is not None:
                updates.append(update)
                history.extend((one.tenant, one.store, kind, json.dumps(details)) for kind, details in changes)
        if updates:
            await conn.executemany(UPDATE_SQL, updates)
        if history:
            await conn.executemany(HISTORY_SQL, history)
    return answers


def _apply(previous: asyncpg.Record | None, one: Received
           ) -> tuple[str | None, tuple[Any, ...] | None, list[tuple[str, dict[str, Any]]]]:
    """What one report does to its store's row: (why it is not kept, or None; the row's update; history rows)."""
    tenant, store, report = one.tenant, one.store, one.report
    if previous is None:
        return f"the hub does not know store {store!r} of tenant {tenant!r}: it must be provisioned", None, []
    if previous["status"] != "active":
        return f"store {store!r} of tenant {tenant!r} is {previous['status']}: its reports are not kept", None, []
    devices = _devices(report)
    down = sum(1 for device in devices if device["down"])
    changes, sample = _changes(previous, report, devices, one.skew_ms)
    rank = 0 if alerting(online=True, devices_down=down, oldest_unsent_ms=report.oldest_unsent_ms,
                         clock_skew_ms=one.skew_ms) else 1
    last = report.last_sale
    update = (tenant, store, rank, report.version, report.outbox_depth, report.oldest_unsent_ms, json.dumps(devices),
              down, one.skew_ms, list(report.open_tills), None if last is None else last.seq,
              None if last is None else datetime.fromtimestamp(last.at_ms / 1000, UTC), report.interval_s,
              previous["now"] if sample else previous["sampled_at"])
    return None, update, changes


async def _keep(pool: asyncpg.Pool, received: Sequence[Received]) -> list[str | None]:
    """One batch, tried once more when another transaction's lock was in the way (the offline sweep marking one
    of these stores at the same moment: PostgreSQL ends one of the two)."""
    async def attempt() -> list[str | None]:
        async with pool.acquire() as conn:
            return await apply_reports(conn, received)
    try:
        return await attempt()
    except LOCK_ERRORS:
        return await attempt()


REPORTS: GroupCommit[Received, str | None] = GroupCommit(_keep, most=BATCH_MOST, linger_s=BATCH_LINGER_S,
                                                          key=lambda one: (one.tenant, one.store))
"""Every report this process takes, by group commit."""


async def take_report(pool: asyncpg.Pool, link: NatsLink, subject: str, data: bytes) -> bytes:
    """Responder of novapos.*.*.req.health: validate, keep, and reply with the hub's clock and the skew; to a store
    running a leaf node, also how far the events stream has sourced its leaf's stream."""
    received_ms = int(time.time() * 1000)
    tenant, store = parse_health_subject(subject)
    report = decode_report(data)
    skew_ms = received_ms - report.sent_at_ms
    error = await REPORTS.submit(pool, Received(tenant, store, report, skew_ms))
    sourced = await sourced_seq(link.js, tenant, store) if report.leaf else None  # its own subjects: no leak
    return encode_reply(HealthReply(hub_time_ms=received_ms, skew_ms=skew_ms, error=error, leaf_sourced_seq=sourced))
