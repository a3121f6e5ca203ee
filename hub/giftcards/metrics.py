"""The hub's gift card figures on /metrics (per process: each hub counts what it did)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OPERATIONS = Counter("novapos_hub_gift_card_operations_total",
                     "Gift card operations (issue, top_up, block, unblock, balance, redeem, reverse, refund) by result "
                     "(done, again: the same redemption asked again, or the refusal's reason)", ["operation", "result"])
MOVED_MINOR = Counter("novapos_hub_gift_card_moved_minor_total",
                      "Money moved on gift cards, in minor units of the card's currency, by operation",
                      ["operation", "currency"])
CONFIRMATIONS = Counter("novapos_hub_gift_card_confirmations_total",
                        "Gift card redemptions and refunds named by completed sales and returns, by result (confirmed; "
                        "unknown: the hub never made it; reversed: the sale completed with a redemption its till "
                        "reversed; mismatch: another amount, store or card than the hub's; reused: "
                        "named by a second sale, return or tender, the money taken once)", ["kind", "result"])
UNCONFIRMED = Gauge("novapos_hub_gift_card_unconfirmed_entries",
                    "Gift card redemptions and refunds no completed sale or return confirmed within a day (not "
                    "reversed), per tenant, as last counted (the console's list, and the hold sweeper each minute)",
                    ["tenant"])
