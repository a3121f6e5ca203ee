"""Promotions at the hub: drafts with immutable revisions, the simulation of their cost over past sales, the
approval by a second person above the tenant's threshold, scheduling and ending (each change audited and sent to
the stores on the catalog stream), and replay validation of the promotions on every sale.completed v5 (and v3/v4 while promotions were live)."""

from pathlib import Path

from hub.domains import Domain
from hub.promotions.replay import apply_sales
from hub.promotions.routes import OPENAPI, routes

DOMAIN = Domain("promotions", migrations=Path(__file__).parent / "migrations",
                appliers={"sale.completed": apply_sales}, routes=routes, openapi=OPENAPI)
