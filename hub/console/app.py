"""The hub console for regional admins: the page, /healthz, /metrics, /openapi.json, and every
domain's API routes (each domain declares its own, see hub.domains)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from hub.catalog.uploads import MAX_UPLOAD_BYTES, UPLOAD_PATH
from hub.console.context import Console
from hub.console.openapi import document
from hub.domains import domains
from novapos.adapters.http import metrics, route, with_api_errors

PAGE = Path(__file__).parent / "console.html"
STATIC = {name: Path(__file__).parent / "static" / name
          for name in ("console.js", "console.css", "promotions.js", "codes.js")}
"""The page's script and style, one route each: no other file under the package can be asked for."""


def build_console(console: Console) -> Starlette:
    async def healthz(_request: Request) -> Response:
        if console.waiting_for is not None:
            return JSONResponse({"status": "starting", "waiting_for": console.waiting_for}, status_code=503)
        if console.nats_lost_since is not None:
            return JSONResponse({"status": "degraded", "nats": "reconnecting",
                                 "since": console.nats_lost_since.isoformat()}, status_code=503)
        try:
            await console.query("SELECT 1")
        except Exception as exc:
            return JSONResponse({"status": "failing", "database": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "nats": "connected" if console.link.connected else "reconnecting"})

    async def index(_request: Request) -> Response:
        return FileResponse(PAGE, headers={"cache-control": "no-cache"})

    def static(path: Path) -> Callable[[Request], Awaitable[Response]]:
        async def serve_file(_request: Request) -> Response:
            return FileResponse(path, headers={"cache-control": "no-cache"})
        return serve_file

    spec = document(domains())

    async def openapi(_request: Request) -> Response:
        return JSONResponse(spec)

    domain_routes = [served for domain in domains() if domain.routes for served in domain.routes(console)]
    return with_api_errors(Starlette(routes=[
        route("/", GET=index),
        route("/healthz", GET=healthz),
        route("/metrics", GET=metrics),
        route("/openapi.json", GET=openapi),
        *(route(f"/static/{name}", GET=static(path)) for name, path in STATIC.items()),
        *domain_routes,
    ]), large_bodies={UPLOAD_PATH: MAX_UPLOAD_BYTES})
