"""Returns and exchanges: return.completed from the stores (returns, their items, units returned per sale line,
flagged for review beyond what was sold), the stores' order lookups (novapos.*.*.req.order) and the console's list.
Stock moves for returns are the inventory domain's (hub.inventory.returns)."""

from pathlib import Path

from hub.domains import Domain
from hub.returns.applier import apply_returns
from hub.returns.orders import ORDER_REQUESTS, answer_order
from hub.returns.routes import OPENAPI, routes

DOMAIN = Domain("returns", migrations=Path(__file__).parent / "migrations",
                appliers={"return.completed": apply_returns}, responders={ORDER_REQUESTS: answer_order},
                routes=routes, openapi=OPENAPI)
