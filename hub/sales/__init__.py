"""Sales: completed sales from the stores, their lines and tenders, and the per-store takings."""

from pathlib import Path

from hub.domains import Domain
from hub.sales.applier import apply_sales
from hub.sales.routes import OPENAPI, routes

DOMAIN = Domain("sales", migrations=Path(__file__).parent / "migrations",
                appliers={"sale.completed": apply_sales}, routes=routes, openapi=OPENAPI)
