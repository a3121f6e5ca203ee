"""Checkout KPIs (roadmap P0-04): how long a sale takes and how many taps it needs, as Prometheus histograms.

The web till measures what only it can see: the time from a cart's first scan to the answer of its
completion (the page's monotonic clock) and the cashier's taps in between (every scan and every button
pressed). It reports them once per sale, POST /api/tills/{till}/kpis {cart, latency_ms, taps}, into
novapos_edge_checkout_seconds and novapos_edge_checkout_taps. A page cannot inject absurd values: the cart
must be a sale this till committed within the last REPORT_WITHIN_S, each cart counts once, the taps are
bounded and the latency cannot exceed the cart's own life (from its id's time to its sale's, both UUIDv7)
plus NETWORK_SLACK_MS.

The edge measures its own part too: novapos_edge_checkout_commit_seconds is the time the edge takes to
answer POST .../complete (the durable commit the cashier waits for), whoever calls it. That one is the checkout
SLO's indicator (99 % within 2 s, configs/prometheus/novapos.rules.yml): the web till's figure is mostly people's
time (a basket, a card terminal's PIN), a KPI.

No labels: the store's tenant and store come from its scrape target (one per store box), and a till, a cart or
a cashier would make a series per thing. The buckets hold the targets: 2 s for both latencies (the SLO on the
commit; the same mark on the web till's figure for comparison), 5 taps (a simple sale takes 4; alerted on p95).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.storage.outbox import Committed
from edge.api.asking import ask, known_till
from edge.api.auth import signed_in
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, route
from novapos.config import StoreConfig
from novapos.roles import Permission
from novapos.validators import integer, uuid_text

MAX_TAPS = 500
"""More taps than any sale needs: a 100-line cart scanned one by one and paid in ten tenders is far below."""
MAX_LATENCY_MS = 3_600_000
"""An hour: a cart kept longer (a customer who left and came back) says nothing about checkout speed."""
REPORT_WITHIN_S = 600
"""A page reports right after the completion's answer; a report ten minutes later is not that page's."""
NETWORK_SLACK_MS = 5_000
"""How much longer than the cart's life on the server a page's measure may be (its answer in transit)."""
REMEMBERED = 4096
"""Carts already reported, per edge process (a restart forgets them; their sales are past REPORT_WITHIN_S soon)."""
COMPLETE_PATH = "/api/tills/{till}/complete"

CHECKOUT = Histogram("novapos_edge_checkout_seconds",
                     "Checkout latency measured by the web till: first scan of a cart to its completion",
                     buckets=(1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800, 3600))
TAPS = Histogram("novapos_edge_checkout_taps", "Taps (scans and buttons) per sale, counted by the web till",
                 buckets=(2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 500))
COMMIT = Histogram("novapos_edge_checkout_commit_seconds",
                   "Time the edge takes to complete a sale (durable commit included), refusals left out",
                   buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2, 2.5, 5, 10, 30))


def _uuid7_ms(value: str) -> int | None:
    """The millisecond a UUIDv7 was made at; None for another version (then no life bound applies)."""
    parsed = uuid.UUID(value)
    return parsed.int >> 80 if parsed.version == 7 else None


def kpi_routes(tree: Tree, config: StoreConfig) -> list[Route]:
    reported: OrderedDict[str, None] = OrderedDict()

    async def report(request: Request) -> Response:
        till = known_till(request, config.tills)
        body = await json_body(request)
        cart = uuid_text("cart", body.get("cart"))
        latency_ms = integer("latency_ms", body.get("latency_ms"), 0, MAX_LATENCY_MS)
        taps = integer("taps", body.get("taps"), 1, MAX_TAPS)
        await signed_in(request, tree, Permission.SELL)
        sale: Committed | None = await ask(tree, "outbox", "committed", cart)
        if sale is None or sale.body.get("till") != till:
            raise ApiError(409, "that cart is not a sale completed at this till: figures are reported after "
                                "the sale completes")
        sold_ms = sale.id.int >> 80
        if time.time() * 1000 - sold_ms > REPORT_WITHIN_S * 1000:
            raise ApiError(409, f"that sale completed more than {REPORT_WITHIN_S // 60} minutes ago: "
                                "its figures are no longer taken")
        opened_ms = _uuid7_ms(cart)
        if opened_ms is not None and latency_ms > sold_ms - opened_ms + NETWORK_SLACK_MS:
            raise ApiError(422, f"latency_ms {latency_ms} is longer than the cart existed "
                                f"({max(0, sold_ms - opened_ms)} ms): not recorded")
        if cart in reported:
            return JSONResponse({"recorded": False, "reason": "already reported"})
        reported[cart] = None
        if len(reported) > REMEMBERED:
            reported.popitem(last=False)
        CHECKOUT.observe(latency_ms / 1000)
        TAPS.observe(taps)
        return JSONResponse({"recorded": True})

    return [route("/api/tills/{till}/kpis", POST=report)]


def timed_completion(routes: list[Route]) -> list[Route]:
    """`routes` with the completion's answer timed into novapos_edge_checkout_commit_seconds."""
    def timed(original: Route) -> Route:
        endpoint: Any = original.endpoint

        async def completion(request: Request) -> Response:
            started = time.perf_counter()
            response: Response = await endpoint(request)
            if request.method == "POST" and response.status_code == 200:  # a refusal commits nothing
                COMMIT.observe(time.perf_counter() - started)
            return response
        return Route(original.path, completion, methods=sorted(original.methods or ()))

    return [timed(r) if r.path == COMPLETE_PATH else r for r in routes]
