"""Payments: the hub's payment intents (one per tender, hub.payments.model), the provider behind them
(hub.payments.gateway), the stores' payment requests, webhooks, the payments outbox down to the stores, and the
nightly reconciliation with the provider's settlement report."""

from pathlib import Path

from hub.domains import Domain
from hub.payments import reconciliation_routes
from hub.payments.nightly import reconcile_nightly
from hub.payments.requests import RESPONDERS

DOMAIN = Domain("payments", migrations=Path(__file__).parent / "migrations", responders=RESPONDERS,
                routes=reconciliation_routes.routes, services=(reconcile_nightly,),
                openapi=reconciliation_routes.OPENAPI)
