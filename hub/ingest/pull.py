"""A batch from the hub's pull consumer without nats-py's cost per message.

nats-py's `PullSubscription.fetch` waits for each message of a batch through `next_msg`: a task, a
`wait_for` (another task) and a uuid4 per message, which the profile of a busy hub puts at a fifth of
the time it spends outside decoding (see bench/ingest.py). This is the same protocol (the same pull
requests, the same handling of JetStream's status messages) reading the subscription's queue
directly: whatever has arrived is taken at once, and the hub waits only when the queue is empty.

It reads nats-py's private subscription state (`_sub`, `_nms`, `_deliver`, `_nc`, the queue and its
size count), the same from nats-py 2.7 to 2.16 and exercised by every ingest test (tests/test_ingest_pull.py
compares it with nats-py's own fetch); the adapter's `fetch` (novapos.adapters.nats) stays the public-API
way back if a nats-py release changes them.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

_STATUS = "Status"
_END = frozenset({api.StatusCode.NO_MESSAGES, api.StatusCode.REQUEST_TIMEOUT})
"""This pull request will deliver nothing more."""
_SKIPPED = frozenset({api.StatusCode.CONTROL_MESSAGE, api.StatusCode.CONFLICT})
"""Heartbeats, and conflicts nats-py also treats as temporary."""


class _Batch:
    """Messages taken from one subscription's queue for one fetch."""

    def __init__(self, subscription: Any, size: int) -> None:
        self.sub = subscription._sub
        self.queue: asyncio.Queue[Msg] = self.sub._pending_queue
        self.messages: list[Msg] = []
        self.size = size

    def take(self, message: Msg) -> bool:
        """Count one message in; False once the pull request that brought it has ended."""
        self.sub._pending_size -= len(message.data)
        status = message.headers.get(_STATUS) if message.headers else None
        if not status:
            self.messages.append(message)
            return True
        if status in _END:
            return False
        if status in _SKIPPED:
            return True
        raise nats.js.errors.APIError.from_msg(message)

    def leftovers(self) -> None:
        """Take the messages an earlier lingering request brought after its fetch returned; the status
        messages among them ended those earlier requests, not ours."""
        while len(self.messages) < self.size and not self.queue.empty():
            message = self.queue.get_nowait()
            self.sub._pending_size -= len(message.data)
            if not (message.headers and message.headers.get(_STATUS)):
                self.messages.append(message)

    def drain(self) -> bool:
        """Take what is queued; False once the batch is full or its request ended."""
        while len(self.messages) < self.size and not self.queue.empty():
            if not self.take(self.queue.get_nowait()):
                return False
        return len(self.messages) < self.size

    async def collect(self, deadline: float) -> None:
        """Take messages as they come until the batch is full, its request ends or `deadline` passes."""
        while self.drain():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                message = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                return
            if not self.take(message):
                return


EXPIRY_MARGIN_S = 0.1
"""How much sooner than the client the server ends a lingering pull request."""


def _server_expiry(remaining: float) -> float:
    return remaining - min(EXPIRY_MARGIN_S, remaining / 5)


async def _request(subscription: Any, body: dict[str, Any]) -> None:
    await subscription._nc.publish(subscription._nms, json.dumps(body).encode(), subscription._deliver)


async def fetch_batch(subscription: Any, batch: int, timeout: float) -> list[Msg]:
    """Up to `batch` messages; an empty list when none came within `timeout` seconds. As nats-py's fetch: a
    no-wait request for what is there now, then, if there was nothing, one lingering request until `timeout`."""
    deadline = time.monotonic() + timeout
    taken = _Batch(subscription, batch)
    taken.leftovers()
    if len(taken.messages) == batch:
        return taken.messages
    first: dict[str, Any] = {"batch": batch - len(taken.messages), "no_wait": True}
    if not taken.messages:  # lingers while nothing comes: over before ours, as the second request below
        first["expires"] = int(_server_expiry(timeout) * 1e9)
    await _request(subscription, first)
    await taken.collect(deadline)
    if taken.messages:
        return taken.messages
    remaining = deadline - time.monotonic()
    if remaining > 0.001:
        # The server's request must be over before ours: one still alive there after we gave up would take
        # a message nak'ed meanwhile (a stopping hub's batch) and hold it for the whole ack wait.
        await _request(subscription, {"batch": batch, "expires": int(_server_expiry(remaining) * 1e9)})
        await taken.collect(deadline)
    return taken.messages
