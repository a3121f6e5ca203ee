"""What operators and tools read: /healthz for systemd and monitoring, /metrics, /openapi.json."""

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
        return JSONResponse({"status": "ok", "outbox_depth": depth})

    async def openapi(_request: Request) -> Response:
        return JSONResponse(openapi_document())

    return [
        route("/healthz", GET=healthz),
        route("/metrics", GET=metrics),
        route("/openapi.json", GET=openapi),
    ]
