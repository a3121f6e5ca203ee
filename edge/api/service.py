"""What operators and tools read: /healthz for systemd and monitoring, /metrics, /openapi.json.

A store sells with or without its hub, so /healthz separates the two: "failing" (503) means the
store cannot sell (its actor tree is down or its outbox does not answer); "degraded" (200) means it
sells but its events wait in the outbox because the hub's NATS is unreachable, with how many and for
how long (with a leaf node, also the events waiting on it for the hub to source them: `leaf_unsourced_events`,
and `leaf_problem` once they have waited long), and, when NATS refuses the store's credentials or denies it an operation, a `nats` field
("credentials refused", "credentials denied") with `nats_problem` saying what to do. Restarting a
store that sells offline would fix nothing, so only "failing" is a 503.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.api.asking import ask
from edge.openapi import openapi_document
from edge_runtime import Tree
from novapos.adapters.http import ApiError, metrics, route

HEALTH_TIMEOUT_S = 5.0


def service_routes(tree: Tree) -> list[Route]:
    async def healthz(_request: Request) -> Response:
        if not tree.healthy():
            return JSONResponse({"status": "failing", "outbox_depth": None}, status_code=503)
        try:
            depth = await ask(tree, "outbox", "depth", timeout=HEALTH_TIMEOUT_S)
        except ApiError as unanswered:
            return JSONResponse({"status": "failing", "outbox_depth": None, "error": unanswered.message},
                                status_code=503)
        try:
            link = await ask(tree, "forwarder", "status", timeout=HEALTH_TIMEOUT_S)
        except ApiError as unanswered:  # busy publishing to a NATS that hangs: the link is in doubt, the store sells
            link = {"hub_link": "unknown", "error": unanswered.message}
        try:  # the catalog the tills sell from, and whether it follows the hub's (it sells either way)
            catalog = await ask(tree, "catalog", "status", timeout=HEALTH_TIMEOUT_S)
        except ApiError as unanswered:
            catalog = {"catalog_sync": "unknown", "catalog_error": unanswered.message}
        try:  # who may log in at the tills, and how long since the hub confirmed it
            staff = await ask(tree, "staff", "status", timeout=HEALTH_TIMEOUT_S)
        except ApiError as unanswered:
            staff = {"staff_version": None, "staff_error": unanswered.message}
        try:  # with a leaf node: the events on it the hub has not sourced yet (the outbox cannot see them)
            leaf = await ask(tree, "health", "leaf", timeout=HEALTH_TIMEOUT_S)
        except ApiError as unanswered:
            leaf = {"leaf_error": unanswered.message}
        status = "ok" if link["hub_link"] == "connected" and "nats_problem" not in link and "leaf_problem" not in leaf \
            else "degraded"
        return JSONResponse({"status": status, "outbox_depth": depth, **link, **catalog, **staff, **leaf})

    async def openapi(_request: Request) -> Response:
        return JSONResponse(openapi_document())

    return [
        route("/healthz", GET=healthz),
        route("/metrics", GET=metrics),
        route("/openapi.json", GET=openapi),
    ]
