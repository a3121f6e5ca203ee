"""What the edge's and the hub's HTTP servers share: hypercorn on trio, the door every request passes, JSON errors.

Both serve Starlette apps (ASGI, running on trio through anyio) from hypercorn's trio worker, so an
HTTP handler can await the supervision tree or the asyncio seam directly.

`with_api_errors` fits an app with the door (`_Door`), which every request passes before any handler:

- Host must name this server (its address, its bind host, its machine name, localhost), so a page
  on a rebound DNS name (evil.example resolving to 127.0.0.1) cannot talk to it: 421.
- A state-changing request that carries an Origin must come from the server's own origin: 403. A
  browser always sends Origin on a cross-origin POST/PUT/PATCH/DELETE; curl and tests send none.
- A body is read as it arrives and cut off past MAX_BODY_BYTES (413): never buffered whole. A path the app
  names in `large_bodies` (an upload) has its own, larger bound, and its handler must stream the body.
- Every answer carries the security headers (CSP with frame-ancestors, nosniff, no referrer).

Every route is declared with `route`, which answers OPTIONS (204 with Allow) and refuses a POST, PUT or
PATCH that is not application/json (415), so no "simple" cross-origin request (a text/plain or form
POST, sent by a browser without asking) reaches a handler. It checks the content type only for the
methods the route serves: a method it does not serve is a 405 with Allow, whatever the body.

Every refusal and failure is JSON {"error": "<sentence>"}, the shape the pages show: ApiError,
validators.Invalid (422), Starlette's 404 and 405 (with Allow), and any unexpected exception (a
generic 500, logged once with its traceback by `serve`).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from novapos import logs, tracing
from novapos.validators import Invalid, describe

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""Largest request body: a till request is a few hundred bytes; a 300 MiB POST must not reach memory."""
MAX_NUMBER_DIGITS = 40
"""Longest number in a request body: far past any bound the validators accept, far below Python's own limit."""
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_BIND_HOST = "novapos.bind_host"  # in the ASGI scope: the host name `serve` was bound to

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An answer for a person: an HTTP status and a sentence saying what was wrong and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says why it could not be read."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"), parse_int=_whole_number, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 text: send JSON encoded as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply to be a request to this server") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def _whole_number(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise ApiError(400, f"a number in the request body is too long ({len(digits)} characters; "
                            f"at most {MAX_NUMBER_DIGITS} digits)")
    return int(digits)


def _no_constant(name: str) -> float:
    raise ApiError(400, f"the request body is not valid JSON ({name} is not a JSON number)")


def route(path: str, *, body_type: str = "application/json", **handlers: Handler) -> Route:
    """One route per path, whatever its methods: a 405 then lists them all in Allow, and OPTIONS answers
    204 with that list (and no CORS headers, so other sites' pages are still refused by the browser).
    A body-carrying method it serves must send `body_type` (415), even with an empty body: application/json,
    or an upload's type such as text/csv (never a type a browser may send cross-origin without asking)."""
    methods = [*handlers, "OPTIONS"]

    async def endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"allow": ", ".join(methods)})
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method in WITH_BODY and media_type != body_type:
            raise ApiError(415, f"send the request body as {body_type}, not {describe(media_type or None)}")
        handler = handlers.get(request.method) or handlers["GET"]  # HEAD is served by GET
        return await handler(request)
    return Route(path, endpoint, methods=methods)


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def _invalid(_request: Request, exc: Exception) -> Response:
    return error_response(422, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    path = describe(request.url.path)
    if exc.status_code == 404:
        message = f"there is nothing at {path}: see /openapi.json for what this server answers"
    elif exc.status_code == 405:
        message = f"{describe(request.method)} is not allowed on {path}: use {headers.get('Allow', 'another method')}"
    else:
        message = f"the request was refused ({exc.detail})"
    return error_response(exc.status_code, message, headers)


async def _failure(request: Request, _exc: Exception) -> Response:
    """An unexpected exception: a generic sentence for the client; `serve` logs the traceback once."""
    return error_response(500, f"the server failed on {request.method} {describe(request.url.path)}; "
                               "it has been logged. Try again; if it keeps failing, call support")


class _Door:
    """Pure ASGI middleware: the checks every request passes before routing (see the module docstring)."""

    def __init__(self, app: ASGIApp, served_names: frozenset[str], large_bodies: Mapping[str, int]) -> None:
        self.app = app
        self.served_names = served_names
        self.large_bodies = large_bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        body = _Limited(receive, self.large_bodies.get(scope["path"], MAX_BODY_BYTES))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if body.cut_off:
                    headers["connection"] = "close"
            await send(message)

        refusal = self._refusal(scope, Headers(scope=scope))
        if refusal is not None:
            status, message = refusal
            closing = {"connection": "close"} if status == 413 else None  # its body is left unread
            await error_response(status, message, closing)(scope, receive, send)
            return
        await self.app(scope, body.receive, with_headers)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if not self._serves(scope, host):
            return 421, (f"this server does not answer to the name {describe(host)}: "
                         "open the page by the address the store was given")
        method = scope["method"]
        origin = headers.get("origin")
        if method in STATE_CHANGING and origin is not None and origin.lower() != f"{scope['scheme']}://{host}".lower():
            return 403, (f"a page from another origin ({describe(origin)}) may not change anything here: "
                         "use this server's own page")
        length = headers.get("content-length", "0")
        limit = self.large_bodies.get(scope["path"], MAX_BODY_BYTES)
        if not length.isdigit() or int(length) > limit:
            return 413, _too_large(limit)
        return None

    def _serves(self, scope: Scope, host: str) -> bool:
        """Whether Host names this server: a name it serves, with the port it listens on."""
        server = scope.get("server")
        if server is None:  # a Unix socket: no browser reaches it by a DNS name
            return True
        try:
            parts = urlsplit(f"//{host}")
            name, port = parts.hostname, parts.port or (443 if scope["scheme"] == "https" else 80)
        except ValueError:  # not a port number
            return False
        if not name or parts.netloc != host or port != server[1]:
            return False
        name = name.removesuffix(".")
        return name in self.served_names or name in (str(server[0]), scope.get(_BIND_HOST, "").lower())


def _too_large(limit: int) -> str:
    return f"the request body is too large: a request here is at most {limit // 1024} KiB"


class _Limited:
    """A request's `receive`, cut off once its body passes its limit (a body sent without a
    Content-Length). A cut-off request's connection closes after the 413: its unread rest is not
    drained, and the client must not reuse the connection."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.received = 0

    @property
    def cut_off(self) -> bool:
        return self.received > self.limit

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.cut_off:
                raise ApiError(413, _too_large(self.limit))
        return message


def with_api_errors(app: Starlette, large_bodies: Mapping[str, int] | None = None) -> Starlette:
    """Fit `app` with the door (see the module docstring) and JSON errors; `large_bodies`: path -> the
    larger bound of an upload's body there (its handler streams it)."""
    machine = socket.gethostname().lower()
    app.add_middleware(_Door, served_names=LOCAL_NAMES | {machine, f"{machine}.local"},
                       large_bodies=dict(large_bodies or {}))
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Invalid, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _failure)
    return app


def _served(app: ASGIApp, host: str) -> ASGIApp:
    """`app` as `serve` runs it: each request learns the host name the server was bound to (the door
    accepts it in Host), has an id that its log lines carry and its answer names (X-Request-Id), and a
    request that failed with an unexpected exception is logged once, with its traceback. The app has
    already answered it (with_api_errors' generic 500); Starlette re-raises so that the server may log
    it, which hypercorn would do again without saying which request it was."""
    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        scope[_BIND_HOST] = host
        request = logs.request_id(Headers(scope=scope).get("x-request-id"))

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = request
            await send(message)
        with logs.bound(request=request):
            try:
                await app(scope, receive, named)
            except Exception as exc:
                if logs.database_error(exc) is None:
                    log.exception("%s %s failed with an unexpected error and was answered 500: a bug; "
                                  "report it with this traceback",
                                  scope["method"], describe(scope["path"]))
                else:  # its text may quote a row's values (a customer's data): named, with where it was raised
                    log.error("%s %s failed with a database error and was answered 500: %s; a bug, or PostgreSQL's "
                              "trouble; report it with where it was raised:\n%s", scope["method"],
                              describe(scope["path"]), logs.error_text(exc),
                              "".join(traceback.format_tb(exc.__traceback__)).rstrip())
    return logged


KEEP_ALIVE_S = 75.0
"""How long an idle keep-alive connection stays open (hypercorn's default: 5 s). Longer than the clients' own limit
(httpx's 5 s, a browser's or a load balancer's 60 s), so the client always drops an idle connection first: a server
closing it at the moment the client sends its next request on it fails that request ("server disconnected without
sending a response"), which a till or console polling every few seconds would meet now and then."""


class _TlsConfig(Config):
    """hypercorn's settings serving HTTPS with a context we keep (novapos.tls.Certificates reloads its
    certificate in place), rather than one hypercorn builds once from file names."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__()
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return self._context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._context


async def serve(app: Starlette, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled, over HTTPS with `tls` (novapos.tls.server_context); reports the bound addresses
    (https:// ones with `tls`) through task_status once listening."""
    config = _TlsConfig(tls)
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("novapos.adapters.http")
    config.graceful_timeout = 2.0
    config.keep_alive_timeout = KEEP_ALIVE_S
    await hypercorn_serve(tracing.asgi(_served(app, host)), config, task_status=task_status)  # type: ignore[arg-type]
