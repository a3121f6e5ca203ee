"""Payments: the hub's payment intents (one per tender, hub.payments.model), the provider behind them
(hub.payments.gateway), the stores' payment requests, webhooks, the payments outbox down to the stores, and the
nightly reconciliation with the provider's settlement report."""

from collections.abc import Sequence
from pathlib import Path

from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.domains import Domain
from hub.payments import qr, reconciliation_routes, routes, webhooks
from hub.payments.catchup import EVENTS_REQUESTS, answer_events
from hub.payments.nightly import reconcile_nightly
from hub.payments.relay import relay_payment_events
from hub.payments.requests import RESPONDERS
from hub.payments.sales import apply_card_approved, apply_card_declined, apply_returns, apply_sales, capture_sales
from hub.payments.watchdog import auto_void, payment_gauges, watch_pending

_ROUTED = (routes, webhooks, reconciliation_routes)


def _routes(console: Console) -> Sequence[BaseRoute]:
    return [route for module in _ROUTED for route in module.routes(console)]


DOMAIN = Domain("payments", migrations=Path(__file__).parent / "migrations",
                responders={**RESPONDERS, qr.QR_REQUESTS: qr.answer_qr, EVENTS_REQUESTS: answer_events},
                appliers={"card.approved": apply_card_approved, "card.declined": apply_card_declined,
                          "sale.completed": apply_sales, "return.completed": apply_returns},
                routes=_routes,
                services=(payment_gauges,),
                jobs={"payment_auto_void": auto_void, "payment_watchdog": watch_pending,
                      "payment_qr_expiry": qr.expire_checkouts, "payment_relay": relay_payment_events,
                      "payment_capture": capture_sales, "payment_reconciliation": reconcile_nightly},
                openapi={key: {k: v for module in _ROUTED for k, v in module.OPENAPI.get(key, {}).items()}
                         for key in ("paths", "schemas")})
