"""Cash: the stores' drawer sessions (drawer.opened / moved / closed), their Z reports, and the sales and returns
of each session, flagged when they reach the hub after its Z report; the console's view of them per store and
day."""

from pathlib import Path

from hub.cash.appliers import apply_closed, apply_moved, apply_opened, attach_returns, attach_sales
from hub.cash.routes import OPENAPI, routes
from hub.domains import Domain

DOMAIN = Domain("cash", migrations=Path(__file__).parent / "migrations",
                appliers={"drawer.opened": apply_opened, "drawer.moved": apply_moved, "drawer.closed": apply_closed,
                          "sale.completed": attach_sales, "return.completed": attach_returns},
                routes=routes, openapi=OPENAPI)
