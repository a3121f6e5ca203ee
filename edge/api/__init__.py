"""The edge's HTTP server: the till API (documented at /openapi.json), devices and print jobs, live
events, stock asked from the hub, /healthz and /metrics, and the web till page.

Each resource has its module; build_api composes them behind the shared door
(novapos.adapters.http.with_api_errors: Host and Origin checks, JSON bodies of bounded size,
security headers, JSON errors).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from edge.api.auth import LoginDoor
from edge.api.card_follow_ups import follow_up_routes
from edge.api.coupons import coupon_routes
from edge.api.drawer import drawer_routes
from edge.api.hardware import hardware_routes
from edge.api.kpis import kpi_routes, timed_completion
from edge.api.login import login_routes
from edge.api.loyalty import loyalty_routes
from edge.api.page import page_routes
from edge.api.receipts import receipt_routes
from edge.api.returns import return_routes
from edge.api.service import service_routes
from edge.api.stock import stock_routes
from edge.api.tills import till_routes
from edge.events import EventHub
from edge_runtime import Tree
from novapos.adapters.http import with_api_errors
from novapos.config import StoreConfig


def build_api(config: StoreConfig, tree: Tree, events: EventHub) -> Starlette:
    return with_api_errors(Starlette(routes=[
        *page_routes(config), *service_routes(tree), *hardware_routes(tree, events),
        *login_routes(tree, tuple(config.tills)),
        *timed_completion(till_routes(tree, tuple(config.tills))), *stock_routes(tree),
        *kpi_routes(tree, config), *drawer_routes(tree, config), *return_routes(tree, tuple(config.tills)),
        *receipt_routes(tree, config), *follow_up_routes(tree), *coupon_routes(tree, tuple(config.tills)),
        *loyalty_routes(tree, tuple(config.tills)),
    ], middleware=[Middleware(LoginDoor, tree=tree, tills=tuple(config.tills))]))
