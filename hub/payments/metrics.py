"""The hub's payment figures on /metrics: what was asked and how it ended, where the intents are, how the
provider answers, and how much the stores took offline that the provider has not yet authorized.

Counters are per process (each hub counts what it did); the gauges are the database's truth, refreshed by the
watchdog (hub.payments.watchdog), so every hub reports the same values. The provider's latency by call and
outcome is novapos_hub_payment_gateway_seconds, observed where the call goes on the wire (hub.payments.acquirer).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from hub.payments.model import State

ACTIONS = Counter("novapos_hub_payment_actions_total",
                  "Payment actions asked of the hub (authorize, capture, cancel, refund, terminal_approval, "
                  "terminal_refund, auto_void, resolve), by how they ended",
                  ["action", "result"])
ENTERED = Counter("novapos_hub_payment_state_changes_total", "Payment intents entering each state", ["state", "method"])
INTENTS = Gauge("novapos_hub_payment_intents", "Payment intents by state (refreshed by the watchdog)", ["state"])
ATTENTION = Gauge("novapos_hub_payment_intents_attention", "Payment intents a person must look at")
OFFLINE_OUTSTANDING = Gauge("novapos_hub_payment_offline_outstanding",
                            "Card payments the stores took offline that the provider has not authorized yet")
OFFLINE_OUTSTANDING_MINOR = Gauge("novapos_hub_payment_offline_outstanding_minor",
                                  "Their amount, in minor units, by currency", ["currency"])


def entered(state: State, method: str) -> None:
    ENTERED.labels(str(state), method).inc()


def action(name: str, result: str) -> None:
    ACTIONS.labels(name, result).inc()


def intents_by_state(counts: dict[str, int], attention: int, offline: int, offline_minor: dict[str, int]) -> None:
    """The intents' gauges; `offline_minor` is the offline amount outstanding per currency (a currency with none
    left leaves the gauge)."""
    for state in State:
        INTENTS.labels(str(state)).set(counts.get(str(state), 0))
    ATTENTION.set(attention)
    OFFLINE_OUTSTANDING.set(offline)
    for currency, minor in offline_minor.items():
        OFFLINE_OUTSTANDING_MINOR.labels(currency).set(minor)
    shown = {sample.labels["currency"] for metric in OFFLINE_OUTSTANDING_MINOR.collect() for sample in metric.samples}
    for gone in shown - set(offline_minor):
        OFFLINE_OUTSTANDING_MINOR.remove(gone)
