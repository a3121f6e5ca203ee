"""The hub process: PostgreSQL and NATS behind one asyncio seam, the ingest worker, the console.

The console serves from the first second, so that while the hub waits for PostgreSQL or NATS (down,
starting, unreachable) /healthz answers 503 saying which, and the log says so at warning level with
what to check, retrying with backoff: never a silent hang. A stop (SIGTERM) gives the batch in hand
back to JetStream, then closes NATS and the pool whatever state they are in, and exits 0.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg
import trio

from edge_runtime import AsyncioSeam, Backoff, Notifier
from hub.audit import chain as audit_chain
from hub.console.app import build_console
from hub.console.context import Console
from hub.db import close_pool, create_pool, migrate
from hub.domains import domains, jobs
from hub.giftcards import numbers as giftcard_numbers
from hub.ingest.store_stats import restore_skews
from hub.ingest.worker import InFlight, run_ingest
from hub.leases import LeaseKeeper
from hub.nats_watch import watch_nats
from hub.payments import provider as payments_provider
from hub.responders import run_responders
from novapos.adapters.http import serve
from novapos.adapters.nats import NatsLink
from novapos.config import HubConfig
from novapos.config.hub import StreamLimits
from novapos.metrics import install as install_metrics
from novapos.tls import Certificates
from novapos.validators import Invalid

log = logging.getLogger(__name__)

T = TypeVar("T")

WAIT = Backoff(initial=0.5, maximum=15.0)
STOP_TIMEOUT_S = 10.0
NATS_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RunningHub:
    url: str
    seam: AsyncioSeam
    pool: asyncpg.Pool


def where(url: str) -> str:
    """host:port of a server URL (of each, for a NATS cluster's comma-separated list), without the credentials
    it may carry, for logs and /healthz."""
    shown = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        shown.append(f"{parts.hostname}:{parts.port}" if parts.port else f"{parts.hostname}")
    return ",".join(shown)


async def _prepare_database(url: str) -> asyncpg.Pool:
    """(asyncio side) One attempt: a pool, the schema migrated, the skew gauges restored. A PostgreSQL that
    accepts connections but fails a step (still recovering, read-only) is waited for like one that is down."""
    pool = await create_pool(url)
    try:
        await migrate(pool)
        await restore_skews(pool)
    except BaseException:
        await close_pool(pool)
        raise
    return pool


async def _prepare_nats(link: NatsLink, limits: StreamLimits) -> None:
    """(asyncio side) One bounded attempt: connected, and the events stream there. With reconnects enabled,
    nats-py's first connect keeps trying on its own, silently and for ever; the hub wants each failure in its
    log. A server without JetStream (or whose JetStream has no leader yet) fails the stream step."""
    await link.connect(timeout=NATS_CONNECT_TIMEOUT_S)  # bounded: ConnectionError with the reason
    await link.ensure_event_stream(limits)


async def _until_reached(what: str, check: str, attempt: Callable[[], Awaitable[T]], console: Console,
                         notifier: Notifier) -> T:
    """(trio side) Try `attempt` until it succeeds, saying each time at warning level what the hub waits
    for and what to check; /healthz answers 503 naming it meanwhile."""
    console.waiting_for = what
    notifier.status(f"waiting for {what}")
    failures = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            failures += 1
            delay = WAIT.delay(failures + 1)
            log.warning("waiting for %s (%s: %s); %s; retrying in %.1f s", what, type(exc).__name__, exc, check, delay)
            await trio.sleep(delay)


def _gift_card_key(config: HubConfig) -> None:
    """The gift card numbers' HMAC key from [gift_cards] key_file; without a readable one the hub runs, and gift
    cards answer 503 saying what to configure (hub.giftcards.numbers)."""
    key = None
    if config.gift_card_key_file is not None:
        try:
            key = giftcard_numbers.read_key(config.gift_card_key_file)
        except (OSError, Invalid) as exc:
            log.error("cannot read the gift card key [gift_cards] key_file %s (%s): gift cards are refused until it "
                      "is fixed and the hub restarted", config.gift_card_key_file, exc)
    else:
        log.warning("no [gift_cards] key_file in the hub's config: gift card requests and routes answer 503")
    giftcard_numbers.use_key(key)


async def run_hub(config: HubConfig, *, task_status: trio.TaskStatus[RunningHub] = trio.TASK_STATUS_IGNORED) -> None:
    config.check_runnable()
    install_metrics()
    _gift_card_key(config)
    audit_chain.set_personal(config.audit.personal)  # every process records audit the same way, whatever it leases
    notifier = Notifier()
    tenants = frozenset(config.tenants)
    in_flight = InFlight()
    with AsyncioSeam() as seam:
        certificates = Certificates(config.tls)
        certificates.warn_if_off("hub")
        link = NatsLink(config.nats_url, "hub", credentials=config.nats_credentials, tls=certificates.client,
                        require_tls=certificates.verifies_servers)
        console = Console(seam, link, tenants, config=config)
        try:
            async with trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, tls=certificates.server), build_console(console),
                                           config.http_host, config.http_port)
                nursery.start_soon(certificates.watch)
                # Every hub task runs in this nursery: if one fails the process exits, so "alive" is "healthy".
                nursery.start_soon(notifier.run_watchdog, lambda: True)
                pool = console.pool = await _until_reached(
                    f"PostgreSQL at {where(config.database_url)}",
                    "check that PostgreSQL runs, accepts connections and writes there and [database] url is right",
                    lambda: seam.run(_prepare_database, config.database_url), console, notifier)
                payments_provider.install(pool, config.payments)
                await _until_reached(
                    f"NATS at {where(config.nats_url)}",
                    "check that nats-server runs there with JetStream enabled (-js) and that JetStream has a "
                    "leader, and that [nats] url is right",
                    lambda: seam.run(_prepare_nats, link, config.stream), console, notifier)
                nursery.start_soon(run_ingest, seam, link, pool, tenants, config.stream, in_flight,
                                   config.ingest_batch)
                nursery.start_soon(watch_nats, console, where(config.nats_url))
                nursery.start_soon(run_responders, seam, link, pool, domains())
                for domain in domains():
                    for service in domain.services:
                        nursery.start_soon(service, console)
                nursery.start_soon(LeaseKeeper(console, jobs(), config.lease_ttl_s).run)
                console.waiting_for = None
                notifier.ready()
                notifier.status(f"hub ingesting; console at {urls[0]}")
                log.info("hub ready: console at %s", urls[0])
                try:
                    task_status.started(RunningHub(urls[0], seam, pool))
                    await trio.sleep_forever()
                finally:
                    notifier.stopping()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT_S):
                await seam.run(in_flight.settle)
                await seam.run(link.close)
                if console.pool is not None:
                    await seam.run(close_pool, console.pool)
            log.info("hub stopped")
