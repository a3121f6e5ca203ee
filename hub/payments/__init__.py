"""Payments: the hub's payment intents (one per tender, hub.payments.model), the provider behind them
(hub.payments.gateway), the stores' payment requests, webhooks, the payments outbox down to the stores, and the
nightly reconciliation with the provider's settlement report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

from hub.domains import Domain
from hub.payments import reconciliation_routes
from hub.payments.nightly import reconcile_nightly
from hub.payments.requests import RESPONDERS
from hub.payments.routes import OPENAPI, routes
from hub.payments.watchdog import auto_void, watch_pending

if TYPE_CHECKING:
    from hub.console.context import Console


def _routes(console: Console) -> list[BaseRoute]:
    """The intents' routes and the reconciliation's (one domain, one list)."""
    return [*routes(console), *reconciliation_routes.routes(console)]


DOMAIN = Domain("payments", migrations=Path(__file__).parent / "migrations", responders=RESPONDERS, routes=_routes,
                services=(auto_void, watch_pending, reconcile_nightly),
                openapi={part: {**OPENAPI.get(part, {}), **reconciliation_routes.OPENAPI[part]}
                         for part in ("paths", "schemas")})
