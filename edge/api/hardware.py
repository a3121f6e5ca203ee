"""Devices and print jobs: their state on request, and live events (device status, till state) as they change."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from actors.devices.context import MANAGER, SPOOLER
from edge.api.asking import ask
from edge.events import EventHub
from edge_runtime import Tree
from novapos.adapters.http import ApiError, route

KEEPALIVE_S = 15.0
STATUS_TIMEOUT_S = 5.0
"""Device and spooler state is read from memory: an actor that takes longer is stuck or restarting."""


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


def hardware_routes(tree: Tree, events: EventHub) -> list[Route]:
    async def devices(_request: Request) -> Response:
        return JSONResponse(await ask(tree, MANAGER, "statuses", timeout=STATUS_TIMEOUT_S))

    async def print_jobs(_request: Request) -> Response:
        return JSONResponse(await ask(tree, SPOOLER, "jobs", timeout=STATUS_TIMEOUT_S))

    async def live(_request: Request) -> Response:
        """Server-sent events: device status and till state as they change (current device states first)."""
        async def stream() -> AsyncIterator[str]:
            with events.subscribe() as received:
                try:
                    statuses = await ask(tree, MANAGER, "statuses", timeout=STATUS_TIMEOUT_S)
                except ApiError:  # the device manager is restarting: end the stream, the browser reconnects
                    return
                for status in statuses:
                    yield _sse(status)
                while True:
                    event = None
                    with trio.move_on_after(KEEPALIVE_S):  # never yield inside a cancel scope
                        try:
                            event = await received.receive()
                        except trio.EndOfChannel:  # fell behind: end the stream, the browser reconnects
                            return
                    yield _sse(event) if event is not None else ": keepalive\n\n"
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    return [
        route("/api/devices", GET=devices),
        route("/api/print-jobs", GET=print_jobs),
        route("/api/events", GET=live),
    ]
