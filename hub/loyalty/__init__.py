"""Loyalty: a tenant's points program. Customers earn points on completed sales (by the program's rules x their
tier's multiplier), redeem them as a tender (online at once, offline within the store's budget and a per-customer
cap, reconciled when the sale arrives), get them back on a void or a refund to points, lose what they earned on
returned items pro rata, and see them expire lot by lot, oldest first. The ledger is the truth; each account's
balance, tier and 12-month spend are caches written in the same transaction."""

from pathlib import Path

from hub.domains import Domain
from hub.loyalty import routes
from hub.loyalty.requests import RESPONDERS
from hub.loyalty.sales import apply_returns, apply_sales
from hub.loyalty.upkeep import expire_points, recompute_tiers

DOMAIN = Domain("loyalty", migrations=Path(__file__).parent / "migrations", responders=RESPONDERS,
                appliers={"sale.completed": apply_sales, "return.completed": apply_returns},
                routes=routes.routes, jobs={"loyalty_expiry": expire_points, "loyalty_tiers": recompute_tiers}, openapi=routes.OPENAPI)
