"""The process's one payment service (hub.payments.service.Payments), installed when the hub starts.

Responders, routes and services of several domains (the stores' payment requests, the console, webhooks, the
capture service) act on intents through the same service, holding the same provider client, like
hub.audit.chain's one set of personal fields per process. `install` is called by the hub once PostgreSQL is
reached (hub.app) and by tests; `current` answers the installed one.
"""

from __future__ import annotations

import asyncpg

from hub.payments.acquirer import HttpGateway
from hub.payments.gateway import Gateway
from hub.payments.service import Payments
from novapos.config.hub import PaymentSettings

_installed: Payments | None = None
_by_pool: dict[asyncpg.Pool, Payments] = {}


def install(pool: asyncpg.Pool, settings: PaymentSettings, gateway: Gateway | None = None) -> Payments:
    """The process's payment service over `pool`: through `gateway` if given, else the provider at
    [payments] gateway_url (none when it is empty: card tenders are recorded, nothing is sent to a provider)."""
    global _installed
    if gateway is None and settings.gateway_url:
        gateway = HttpGateway(settings.gateway_url, settings.provider, settings.timeout_s)
    _installed = _by_pool[pool] = Payments(pool, gateway, settings)
    return _installed


def current() -> Payments:
    """The installed service; RuntimeError before the hub has reached PostgreSQL (nothing can answer then)."""
    if _installed is None:
        raise RuntimeError("the payment service is not installed yet: the hub is still waiting for PostgreSQL")
    return _installed


def serving(pool: asyncpg.Pool) -> Payments:
    """The service installed over `pool` (the responders' and services' own hub, when a test runs several hubs in
    one process); the installed one otherwise."""
    return _by_pool.get(pool) or current()
