"""Payments: the hub's payment intents (one per tender, hub.payments.model), the provider behind them
(hub.payments.gateway), the stores' payment requests, webhooks, the payments outbox down to the stores, and the
nightly reconciliation with the provider's settlement report."""

from pathlib import Path

from hub.domains import Domain
from hub.payments.catchup import EVENTS_REQUESTS, answer_events
from hub.payments.relay import relay_payment_events
from hub.payments.requests import RESPONDERS
from hub.payments.routes import OPENAPI, routes
from hub.payments.sales import apply_card_approved, apply_card_declined, apply_returns, apply_sales, capture_sales
from hub.payments.watchdog import auto_void, watch_pending

DOMAIN = Domain("payments", migrations=Path(__file__).parent / "migrations",
                responders={**RESPONDERS, EVENTS_REQUESTS: answer_events}, routes=routes, openapi=OPENAPI,
                appliers={"card.approved": apply_card_approved, "card.declined": apply_card_declined,
                          "sale.completed": apply_sales, "return.completed": apply_returns},
                services=(relay_payment_events, auto_void, watch_pending, capture_sales))
