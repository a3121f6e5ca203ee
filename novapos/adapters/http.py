"""What the edge's and the hub's HTTP servers share: hypercorn on trio, JSON errors, /metrics.

Both serve Starlette apps (ASGI, running on trio through anyio) from hypercorn's trio worker, so an
HTTP handler can await the supervision tree or the asyncio seam directly.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer for a person: an HTTP status and a sentence saying what was wrong and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def api_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says why it could not be read."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def with_api_errors(app: Starlette) -> Starlette:
    app.add_exception_handler(ApiError, api_error_handler)
    return app


async def serve(app: Starlette, host: str, port: int, *,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; reports the bound addresses through task_status once listening."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("novapos.adapters.http")
    config.graceful_timeout = 2.0
    await hypercorn_serve(app, config, task_status=task_status)  # type: ignore[arg-type]
