"""Several hub processes share the one durable consumer: every event applied exactly once whichever hub
gets it (duplicates in the stream included), each store's takings and sequence figures exact, and no
deadlock, with many stores whose events both hubs apply at the same time."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import nats
import trio

from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.subjects import event_subject
from tests.conftest import ensure_stream, query
from tests.events import sale_event
from tests.test_hub_process import HubProcess, until

STORES = 24
SEQS = 50


def _applied(hub: HubProcess) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{hub.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r'^novapos_hub_events_total\{result="applied"\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _stream() -> tuple[list[Envelope], list[Envelope]]:
    """(what to publish, in order; the distinct events among it). Every store: numbers 1..SEQS with 7 and
    8 skipped by every third store, 3 used twice by every fourth, the stores interleaved, and some events
    published twice (no Nats-Msg-Id: both copies are stored, the hubs may each get one)."""
    rng = random.Random(7)
    per_store: list[list[Envelope]] = []
    for number in range(1, STORES + 1):
        store = f"store-{number:03d}"
        events = [sale_event(seq=seq, store=store, total=100 + seq) for seq in range(1, SEQS + 1)
                  if not (number % 3 == 0 and seq in (7, 8))]
        if number % 4 == 0:
            events.insert(5, dataclasses.replace(sale_event(seq=3, store=store, total=333)))
        per_store.append(events)
    distinct = [event for events in per_store for event in events]
    published: list[Envelope] = []
    for index in range(max(map(len, per_store))):
        for events in per_store:
            if index < len(events):
                published.append(events[index])
                if rng.random() < 0.05:
                    published.append(events[index])
    return published, distinct


async def _publish(nats_server: EmbeddedNats, events: list[Envelope]) -> None:
    client = await nats.connect(nats_server.url, **nats_server.hub_options())
    js = client.jetstream()
    for first in range(0, len(events), 200):
        await asyncio.gather(*(js.publish(event_subject("demo", e.store, e.type), e.encode())
                               for e in events[first:first + 200]))
    await client.close()


def _fetch(database_url: str, sql: str) -> list[dict[str, object]]:
    return [dict(row) for row in trio.run(query, database_url, sql)]


def test_two_hubs_share_the_stream_with_every_sale_once_exact_figures_and_no_deadlock(
        tmp_path: Path, nats_server: EmbeddedNats, database_url: str) -> None:
    published, distinct = _stream()
    trio.run(ensure_stream, nats_server)
    hubs = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            hubs.append(HubProcess(tmp_path / name, nats_server.url, database_url, nats_server.hub_credentials,
                                   "[ingest]\nbatch = 32\n", tls=nats_server.tls_settings()))
        for hub in hubs:
            until(lambda hub=hub: (hub.health() or (0, {}))[0] == 200, timeout=60, what="both hubs ready")
        asyncio.run(_publish(nats_server, published))

        def landed() -> bool:
            return _fetch(database_url, "SELECT count(*) AS n FROM inbox")[0]["n"] == len(distinct)
        until(landed, timeout=120, what="every event in the inbox")
        until(lambda: sum(map(_applied, hubs)) == len(distinct), what="both hubs' counts settled")
        assert all(_applied(hub) > 0 for hub in hubs), "one hub did all the work: the test proved nothing"

        counts = _fetch(database_url, "SELECT (SELECT count(*) FROM sales) AS sales,"
                                      " (SELECT count(*) FROM sale_lines) AS lines,"
                                      " (SELECT count(*) FROM dead_letters) AS dead")[0]
        assert counts == {"sales": len(distinct), "lines": len(distinct), "dead": 0}

        by_store: dict[str, list[Envelope]] = defaultdict(list)
        for event in distinct:
            by_store[event.store].append(event)
        takings = {r["store"]: (r["sales"], r["total_minor"]) for r in _fetch(
            database_url, "SELECT store, sales, total_minor FROM store_takings")}
        assert takings == {store: (len(events), sum(e.body["total"]["minor"] for e in events))
                           for store, events in by_store.items()}

        stats = {r["store"]: (r["events"], r["last_seq"], r["missing"], r["reused"]) for r in _fetch(
            database_url, "SELECT store, events, last_seq, last_seq - seqs AS missing, events - seqs AS reused"
                          " FROM store_stats")}
        assert stats == {store: (len(events), SEQS, 2 * (int(store[-3:]) % 3 == 0), int(int(store[-3:]) % 4 == 0))
                         for store, events in by_store.items()}
        gaps = Counter(r["store"] for r in _fetch(
            database_url, "SELECT store FROM store_seq_gaps WHERE (first_seq, last_seq) = (7, 8)"))
        assert gaps == Counter(store for store in by_store if int(store[-3:]) % 3 == 0)
        reuses = _fetch(database_url, "SELECT store, seq FROM store_seq_reuses ORDER BY store")
        assert reuses == [{"store": store, "seq": 3} for store in sorted(by_store) if int(store[-3:]) % 4 == 0]
    finally:
        statuses = [hub.stop() for hub in hubs]
    for hub in hubs:
        assert "deadlock" not in hub.log.lower() and "ingest batch failed" not in hub.log, hub.log
        assert "Traceback" not in hub.log, hub.log
    assert statuses == [0, 0]
