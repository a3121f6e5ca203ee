"""Sales: completed sales from the stores (sale.completed v1 to v5), their lines with price locks, overrides and
discounts, and tenders (v5: a customer, promotions, coupons, points and gift card tenders), the per-store takings,
and the price differences replay validation found (hub/sales/replay.py), listed for review."""

from pathlib import Path

from hub.domains import Domain
from hub.sales.applier import apply_sales
from hub.sales.routes import OPENAPI, routes

DOMAIN = Domain("sales", migrations=Path(__file__).parent / "migrations",
                appliers={"sale.completed": apply_sales}, routes=routes, openapi=OPENAPI)
