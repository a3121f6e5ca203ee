"""The registry of hub domains: what each brings, found without a central list.

A domain is a subpackage of `hub` whose `__init__` defines `DOMAIN = Domain(...)`: the event types it
applies, the request/reply subjects it answers, its console routes (with their OpenAPI description),
its background services and its migrations folder. Adding a domain (catalog, inventory, payments...) is adding a package:
discovery walks hub's subpackages, so no file outside the new package changes, and a domain cannot
be forgotten in a list somewhere.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from starlette.routing import BaseRoute

from novapos.wire.envelope import Envelope

if TYPE_CHECKING:
    from hub.console.context import Console
    from novapos.adapters.nats import NatsLink

Applier = Callable[[asyncpg.Connection, Sequence[Envelope]], Awaitable[None]]
"""Applies new (never seen before) events of one type inside the inbox's transaction."""
Responder = Callable[[asyncpg.Pool, str, bytes], Awaitable[bytes]]
"""Answers a request (pool, the subject it came on, its bytes) with the reply's bytes; served by hub.responders.
A responder's subject may hold wildcards (novapos.*.*.req.stock): the subject a request came on says who asks,
since NATS permissions confine a store to its own subjects. validators.Invalid is answered as a bad request
(400, its sentence), any other failure as the hub's (500)."""
LinkResponder = Callable[[asyncpg.Pool, "NatsLink", str, bytes], Awaitable[bytes]]
"""A responder that also reads NATS (the hub's link: JetStream), as the restore answer reads the events stream."""
Routes = Callable[["Console"], Sequence[BaseRoute]]
"""A domain's console routes, given what every route may use (the pool, the seam, the NATS link)."""
Service = Callable[["Console"], Awaitable[None]]
"""A domain's long-running trio task (a publisher, a sweeper), started once PostgreSQL and NATS are reached (the
console's pool is set): by every hub process (Domain.services), or by the one holding its lease (Domain.jobs). It
runs until the hub stops; it must survive PostgreSQL or NATS going away (log, back off, retry), since a service
that raises ends the hub. A job (Domain.jobs) that returns has nothing to do in this process (its feature is not
configured): its lease is released and not asked for again here; one that raises is logged, released and retried
after a growing pause (hub.leases), the hub carrying on."""


@dataclass(frozen=True)
class Domain:
    name: str
    migrations: Path | None = None
    """Folder of NNNN_name.sql files; NNNN orders them across all domains."""
    appliers: Mapping[str, Applier] = field(default_factory=dict)
    """Event type -> this domain's applier of it; several domains may apply one type."""
    responders: Mapping[str, Responder] = field(default_factory=dict)
    """NATS subject (wildcards allowed) -> its responder, answered by every hub process in one queue group."""
    link_responders: Mapping[str, LinkResponder] = field(default_factory=dict)
    """As `responders`, given the hub's NATS link too."""
    routes: Routes | None = None
    services: Sequence[Service] = ()
    """Run by every hub process: what each process keeps for itself (its own gauges)."""
    jobs: Mapping[str, Service] = field(default_factory=dict)
    """Periodic jobs by name (unique across domains, the `lease` label of novapos_hub_lease_held): each runs in one hub
    process at a time, the one holding its lease (hub.leases). Return at once when this process's config lacks the
    job's feature (the lease goes to a process that has it)."""
    openapi: Mapping[str, Any] = field(default_factory=dict)
    """{"paths": ..., "schemas": ...} describing the routes, merged into the console's /openapi.json."""
    applies_last: bool = False
    """Its appliers run after every other domain's in the inbox transaction: for a domain whose rows every
    transaction locks last (the audit chain's head, which a console change takes after its own rows), so
    that ingest takes locks in the same order and the two never deadlock."""


@functools.cache
def domains() -> tuple[Domain, ...]:
    """Every domain package under hub/, by name."""
    import hub
    found = []
    for info in pkgutil.iter_modules(hub.__path__, "hub."):
        if info.ispkg and isinstance(domain := getattr(importlib.import_module(info.name), "DOMAIN", None), Domain):
            found.append(domain)
    return tuple(sorted(found, key=lambda domain: domain.name))


@functools.cache
def appliers() -> dict[str, tuple[Applier, ...]]:
    """Event type -> the appliers of every domain it concerns (a sale makes a sale row and moves stock), in
    domain-name order (those that apply last, last), each run in the inbox's one transaction: an event's effects
    land all together or not. The inbox applies the types in this order too."""
    merged: dict[str, tuple[Applier, ...]] = {}
    for domain in sorted(domains(), key=lambda domain: domain.applies_last):  # stable: by name otherwise
        for event_type, applier in domain.appliers.items():
            merged[event_type] = (*merged.get(event_type, ()), applier)
    return merged


@functools.cache
def jobs() -> dict[str, Service]:
    """Every domain's periodic jobs by name (hub.leases runs each in one hub process at a time)."""
    merged: dict[str, Service] = {}
    for domain in domains():
        for name, job in domain.jobs.items():
            if name in merged:
                raise ValueError(f"periodic job {name!r} of domain {domain.name} is declared twice: name it apart")
            merged[name] = job
    return merged
