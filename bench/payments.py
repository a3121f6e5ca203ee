"""Payments benchmark: a card tender's requests from the store through the hub to the provider, and how fast the
hub records intents, each beside its floor measured in the same run.

    python -m bench.payments [--tenders 300] [--intents 2000]

Real parts throughout: embedded NATS and PostgreSQL, a hub process's own code (run_hub) with the acquirer
simulator (mocks.acquirer, an HTTP server on a real socket) as its provider, and the store's request helper
(actors.payments.asking.ask_hub, from a thread as a till actor calls it). Figures in milliseconds:

- pay_intent_ms: the store's pay_intent (a terminal's approval, reported to the simulator as the terminal does
  first) answered by the hub: validated, the intent recorded AUTHORIZED with its outbox event, committed.
- pay_cancel_ms: the store's pay_cancel of that tender: the hub marks it processing, asks the simulator to void
  it over HTTP, commits the answer with its outbox event and audit record: edge -> hub -> gateway and back.
- nats_request_floor_ms: a request/reply through the same link and seam to a bare responder on the same NATS.
- gateway_floor_ms: one HTTP round trip to the simulator (an unknown call's status: 404) on a kept-alive client.
- commit_floor_ms: one raw INSERT of an intent's row in its own transaction (the insert floor below, per row):
  PostgreSQL's durable commit, which every change of an intent pays.
- pay_intent_to_floor_ratio: against the NATS floor plus one commit (what recording an approval cannot avoid);
  pay_cancel_to_floor_ratio: against the NATS floor, the gateway floor and two commits (the service commits
  `processing` before it calls the provider and the answer after, so that a crash in between is resolvable).

And intents recorded per second at the hub (intents_per_s: Payments.record_terminal_approval, one seam crossing
and one transaction each, as a responder calls it) beside insert_floor_per_s: a raw INSERT of the same rows into a
scratch copy of payment_intents (its indexes included), one transaction each, on the same pool and seam.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import trio

from actors.payments.asking import ask_hub
from bench.figures import progress, ratio, summary
from edge_runtime import AsyncioSeam
from hub.app import RunningHub, run_hub
from hub.payments import provider
from mocks.acquirer import Acquirer, AcquirerServer
from novapos.adapters.nats import NatsLink
from novapos.config import HubConfig
from novapos.config.hub import AuditSettings, PaymentSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.wire.payments import CANCEL, INTENT

TENANT, STORE, TILL = "demo", "store-001", "till-1"
WITHIN_S = 5.0
FLOOR_SUBJECT = "bench.payments.echo"


def approval(acquirer_url: str, http: httpx.Client, number: int) -> dict[str, Any]:
    """What a terminal approved (and told the simulator, as the mock terminal's hook does): pay_intent's body."""
    reference = f"term_{uuid.uuid4().hex[:20]}"
    amount = 1000 + number % 90  # never ending in 91 or 92: the simulator's lost and slow answers
    answer = http.post(f"{acquirer_url}/v1/terminal_authorizations", headers={"Idempotency-Key": f"t-{reference}"},
                       json={"reference": reference, "amount_minor": amount, "currency": "EUR",
                             "card": "4242424242424242", "token": "", "auth_code": "123456"})
    answer.raise_for_status()
    return {"tender_id": str(uuid.uuid4()), "till": TILL, "amount_minor": amount, "authorized_minor": amount,
            "currency": "EUR", "provider_ref": reference, "auth_code": "123456", "scheme": "visa",
            "masked": "**** 4242", "offline": False}


def round_trips(server: EmbeddedNats, acquirer_url: str, tenders: int) -> dict[str, Any]:
    """(a worker thread, as a till actor) Each tender's pay_intent then pay_cancel, then the floors."""
    intents, cancels, floors, gateway_floors = [], [], [], []
    with AsyncioSeam() as seam, httpx.Client(timeout=10) as http:
        link = server.hub_link("bench-store")
        echo = server.hub_link("bench-echo")

        async def answer(message: Any) -> None:
            await message.respond(message.data)

        async def serve_echo() -> None:
            await echo.connect()
            await echo.client.subscribe(FLOOR_SUBJECT, cb=answer)
            await echo.client.flush()
        seam.run_blocking(serve_echo)
        try:
            for number in range(tenders):
                body = approval(acquirer_url, http, number)
                started = time.perf_counter()
                recorded = ask_hub(link, seam, TENANT, STORE, INTENT, body, WITHIN_S)["intent"]
                intents.append(time.perf_counter() - started)
                assert recorded["state"] == "authorized", recorded
                started = time.perf_counter()
                voided = ask_hub(link, seam, TENANT, STORE, CANCEL, {"tender_id": body["tender_id"],
                                                                    "reason": "bench", "actor": TILL}, WITHIN_S)
                cancels.append(time.perf_counter() - started)
                assert voided["intent"]["state"] == "cancelled", voided
                if (number + 1) % 100 == 0:
                    progress(f"  {number + 1}/{tenders} card tenders recorded and voided")
            for _ in range(tenders):
                started = time.perf_counter()
                seam.run_blocking(_echo, link, b'{"tender_id": "x"}')
                floors.append(time.perf_counter() - started)
                started = time.perf_counter()
                http.get(f"{acquirer_url}/v1/calls/unknown-{uuid.uuid4().hex}")
                gateway_floors.append(time.perf_counter() - started)
        finally:
            seam.run_blocking(link.close)
            seam.run_blocking(echo.close)
    return {"pay_intent_ms": summary(intents, digits=3), "pay_cancel_ms": summary(cancels, digits=3),
            "nats_request_floor_ms": summary(floors, digits=3), "gateway_floor_ms": summary(gateway_floors, digits=3)}


async def _echo(link: NatsLink, data: bytes) -> bytes:
    reply = await link.client.request(FLOOR_SUBJECT, data, timeout=WITHIN_S)
    return bytes(reply.data)


async def _record(pool: asyncpg.Pool, number: int) -> None:
    payments = provider.serving(pool)
    await payments.record_terminal_approval(
        TENANT, "store-002", tender_id=f"bench-{number}", till=TILL, amount_minor=1250, authorized_minor=1250,
        currency="EUR", provider_ref=f"bench_ref_{number}", auth_code="123456", scheme="visa", masked="**** 4242",
        offline=False, card_token=None, actor=f"till:{TILL}")


async def _scratch(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    """A scratch copy of payment_intents (indexes included) and the rows the figure wrote, to insert again."""
    await pool.execute("CREATE TABLE bench_intents (LIKE payment_intents INCLUDING ALL)")
    return [tuple(row) for row in await pool.fetch("SELECT * FROM payment_intents WHERE store = 'store-002'")]


async def _insert(pool: asyncpg.Pool, sql: str, row: tuple[Any, ...]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(sql, *row)


async def intent_rates(hub: RunningHub, count: int) -> dict[str, Any]:
    """Intents recorded one after another through the hub's service, then the raw INSERT floor of the same rows."""
    started = time.perf_counter()
    for number in range(count):
        await hub.seam.run(_record, hub.pool, number)
    recorded = time.perf_counter() - started
    rows = await hub.seam.run(_scratch, hub.pool)
    assert len(rows) == count, len(rows)
    sql = f"INSERT INTO bench_intents VALUES ({', '.join(f'${n}' for n in range(1, len(rows[0]) + 1))})"
    commits = []
    for row in rows:
        started = time.perf_counter()
        await hub.seam.run(_insert, hub.pool, sql, row)
        commits.append(time.perf_counter() - started)
    floor = sum(commits)
    return {"intents_per_s": round(count / recorded), "insert_floor_per_s": round(count / floor),
            "intents_to_floor_ratio": ratio(floor, recorded), "commit_floor_ms": summary(commits, digits=3),
            "intents": count}


async def main(tenders: int, intents: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-payments-") as folder:
        state = Path(folder)
        state.chmod(0o755)
        acquirer = AcquirerServer(Acquirer(["whsec_bench"])).start()
        try:
            with EmbeddedNats(state / "nats") as nats_server, EmbeddedPostgres(state / "pg") as postgres:
                config = HubConfig(tenants=(TENANT,), http_port=0, nats_url=nats_server.url, tls=nats_server.tls_settings(),
                                   database_url=postgres.url(),
                                   audit=AuditSettings(checkpoint_dir=state / "audit-checkpoints"),
                                   payments=PaymentSettings(gateway_url=acquirer.url))
                async with trio.open_nursery() as nursery:
                    hub = await nursery.start(run_hub, config)
                    progress(f"card tenders: {tenders} pay_intent and pay_cancel requests, then as many floors")
                    trips = await trio.to_thread.run_sync(round_trips, nats_server, acquirer.url, tenders)
                    progress(f"intents: {intents} recorded at the hub, then the same rows by raw INSERT")
                    rates = await intent_rates(hub, intents)
                    nursery.cancel_scope.cancel()
        finally:
            acquirer.stop()
    nats, gateway, commit = (figures["median"] for figures in (
        trips["nats_request_floor_ms"], trips["gateway_floor_ms"], rates["commit_floor_ms"]))
    return {**trips, **rates,
            "pay_intent_to_floor_ratio": ratio(trips["pay_intent_ms"]["median"], nats + commit),
            "pay_cancel_to_floor_ratio": ratio(trips["pay_cancel_ms"]["median"], nats + gateway + 2 * commit),
            "tenders": tenders, "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenders", type=int, default=300)
    parser.add_argument("--intents", type=int, default=2000)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.tenders, arguments.intents)))
