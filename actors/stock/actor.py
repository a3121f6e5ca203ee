"""Asks the hub for an item's stock at this store's locations and the nearby ones (novapos.wire.stock).

The answer comes back in milliseconds, or not at all: when NATS or the hub does not answer within about a
second the till gets "not known while offline" at once (never an error page), with the last answer this
store had for the item and how old it is, so the cashier can still say "there were 3 in the back this
morning". The hub learns who asks from the subject this store publishes on, not from anything sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import nats.errors
from prometheus_client import Counter

from edge_runtime import Actor, AsyncioSeam
from novapos.adapters.nats import NatsLink
from novapos.validators import Invalid
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER
from novapos.wire.stock import StockAnswer, decode_answer, encode_request, stock_request_subject

log = logging.getLogger(__name__)

ANSWER_WITHIN_S = 1.0
"""How long a till waits for the hub before it shows "not known while offline"."""
CONNECT_WITHIN_S = 0.5
"""Of that second, how long a link that never connected may try to (a lost one reconnects on its own)."""
REMEMBERED = 512
"""Items whose last answer is kept for offline use: the most recently asked."""
ASKED = Counter("novapos_edge_stock_asks_total", "Stock questions to the hub by outcome", ["outcome"])


class HubRefused(Exception):
    """The hub answered with an error reply (its headers say why)."""


class StockActor(Actor):
    """One per store. `stock(sku)` returns a JSON-ready answer for the till, whatever the hub's state. The link is
    the edge's (it connects it if nobody has yet, and leaves closing it to its owner)."""

    def __init__(self, link: NatsLink, seam: AsyncioSeam, tenant: str, store: str,
                 answer_within: float = ANSWER_WITHIN_S) -> None:
        super().__init__()
        self._link = link
        self._seam = seam
        self._subject = stock_request_subject(tenant, store)
        self._within = answer_within
        self._remembered: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._offline_since: datetime | None = None

    def stock(self, sku: str) -> dict[str, Any]:
        try:
            answer = self._seam.run_blocking(self._ask, sku, timeout=self._within + CONNECT_WITHIN_S + 0.5)
        except (TimeoutError, OSError, nats.errors.Error, HubRefused, Invalid) as exc:
            return self._not_known(sku, _why(exc))
        if self._offline_since is not None:
            log.info("the hub answers stock questions again (not since %s)", self._offline_since.isoformat())
            self._offline_since = None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if answer.error is not None:
            ASKED.labels("refused").inc()
            return {"sku": sku, "status": "refused", "message": answer.error, "in_catalog": answer.known,
                    "as_of": now, "locations": [], "last_known": None}
        ASKED.labels("answered").inc()
        found = {"sku": sku, "status": "known", "in_catalog": answer.known, "as_of": now,
                 "message": _summary(answer), "locations": [asdict(location) for location in answer.locations]}
        self._remembered[sku] = {"as_of": now, "locations": found["locations"]}
        self._remembered.move_to_end(sku)
        while len(self._remembered) > REMEMBERED:
            self._remembered.popitem(last=False)
        return {**found, "last_known": None}

    async def _ask(self, sku: str) -> StockAnswer:
        started = asyncio.get_running_loop().time()
        if not self._link.connected:
            await self._link.connect(timeout=CONNECT_WITHIN_S)  # at once while a lost link reconnects
        left = self._within - (asyncio.get_running_loop().time() - started)
        reply = await self._link.client.request(self._subject, encode_request(sku), timeout=max(left, 0.1))
        headers = reply.headers or {}
        if ERROR_CODE_HEADER in headers:
            raise HubRefused(f"the hub could not answer ({headers.get(ERROR_HEADER, headers[ERROR_CODE_HEADER])})")
        return decode_answer(reply.data)

    def _not_known(self, sku: str, why: str) -> dict[str, Any]:
        ASKED.labels("offline").inc()
        if self._offline_since is None:
            self._offline_since = datetime.now(UTC)
            log.warning("stock is not known while the hub does not answer (%s); tills are told so, and the next "
                        "question tries again. Check the store's network and NATS", why)
        last = self._remembered.get(sku)
        return {"sku": sku, "status": "offline", "in_catalog": None, "as_of": None, "locations": [],
                "message": f"not known while offline: {why}"
                           + (f"; last known at {last['as_of']}" if last else ""), "last_known": last}


def _why(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, nats.errors.TimeoutError)):
        return f"the hub did not answer within {ANSWER_WITHIN_S:g} s"
    if isinstance(exc, nats.errors.NoRespondersError):
        return "no hub is answering"
    if isinstance(exc, OSError | nats.errors.ConnectionClosedError):
        return "the store is not connected to the hub's NATS"
    return str(exc) or type(exc).__name__


def _summary(answer: StockAnswer) -> str:
    if not answer.known:
        return "this item is not in the hub's catalog"
    here = sum(location.available for location in answer.locations if location.own)
    nearby = sum(location.available for location in answer.locations if not location.own)
    return f"{here} available here, {nearby} nearby"
