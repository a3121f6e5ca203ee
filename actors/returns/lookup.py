"""Finds a sale to take items back from: this store's own journal first (offline too), else the hub.

One actor per store ("returns"), with its own read connection to the store's file (WAL: it reads while the
outbox writes). Another store's sale is asked of the hub over NATS request/reply (novapos.wire.orders), whose
answer is authoritative for what is still returnable; an answer that comes late or not at all is a sentence
for the cashier, never an error page. What the hub sends is checked like client input (`checked_sale`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nats.errors

from actors.protocol import Rejected
from actors.returns.journal import find_sale, journal
from actors.storage.db import connect, is_busy
from actors.storage.outbox import JournalRefused
from edge_runtime import Actor, AsyncioSeam
from novapos import validators
from novapos.adapters.nats import NatsLink
from novapos.pricing import PPM
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.orders import decode_answer, encode_request, order_subject
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER

log = logging.getLogger(__name__)

NAME = "returns"
"""The lookup actor's name in the tree."""
ANSWER_WITHIN_S = 2.0
CONNECT_WITHIN_S = 0.5
OFFLINE = ("this sale was not made at this store, and the hub cannot be asked now ({why}): take the return when "
           "the store is back online, or as a return without a receipt")


class ReturnsLookupActor(Actor):
    def __init__(self, db_path: Path, link: NatsLink, seam: AsyncioSeam, tenant: str, store: str,
                 answer_within: float = ANSWER_WITHIN_S) -> None:
        super().__init__()
        self._db_path, self._link, self._seam, self._tenant, self._store = db_path, link, seam, tenant, store
        self._subject = order_subject(tenant, store)
        self._within = answer_within
        self._connection: sqlite3.Connection | None = None

    def started(self) -> None:
        self._connection = connect(self._db_path)

    def stopping(self) -> None:
        if self._connection is not None:
            self._connection.close()

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None, "the lookup used before it started"
        return self._connection

    def sale(self, order: str) -> dict[str, Any] | Rejected:
        """The sale with that order id and what is still returnable of it; Rejected("not_found") with a sentence."""
        local = find_sale(self._db, order, self._store)
        if local is not None:
            return local
        try:
            found = self._seam.run_blocking(self._ask, order, timeout=self._within + CONNECT_WITHIN_S + 0.5)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            log.info("order %s is not this store's and the hub did not answer (%s)", order, type(exc).__name__)
            return Rejected("not_found", OFFLINE.format(why=_why(exc)))
        except validators.Invalid as exc:
            log.warning("the hub's answer about order %s was refused: %s", order, exc)
            return Rejected("not_found", f"the hub's answer about this sale could not be used ({exc})")
        if found is None:
            return Rejected("not_found", "no sale has this receipt's order number, at this store or any other of "
                                         "the company: check the receipt")
        return found

    def check(self, body: dict[str, Any]) -> Rejected | None:
        """Whether the store's journal would take this return.completed now (a dry run, rolled back): asked just
        before money leaves by card, so a unit another till returned meanwhile is refused before the refund, not
        after it. (Between this and the commit, a second or so, only the journal's own refusal stands.)"""
        event = Envelope(id=uuid7(), type="return.completed", v=1, tenant=self._tenant, store=self._store, seq=0,
                         ts=0, body=body)
        try:
            with rolled_back(self._db):
                journal(self._db, event)
        except JournalRefused as exc:
            return Rejected(exc.reason, exc.message)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return Rejected("busy", "the store's disk is busy: complete the return again")
        return None

    async def _ask(self, order: str) -> dict[str, Any] | None:
        started = asyncio.get_running_loop().time()
        if not self._link.connected:
            await self._link.connect(timeout=CONNECT_WITHIN_S)
        left = self._within - (asyncio.get_running_loop().time() - started)
        reply = await self._link.client.request(self._subject, encode_request(order), timeout=max(left, 0.1))
        headers = reply.headers or {}
        if ERROR_CODE_HEADER in headers:
            raise validators.Invalid("hub", headers.get(ERROR_HEADER, headers[ERROR_CODE_HEADER]))
        sale = decode_answer(reply.data)
        return None if sale is None else checked_sale(sale)


@contextmanager
def rolled_back(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that is always rolled back: what the block did is seen inside it only."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return "it did not answer in time"
    if isinstance(exc, nats.errors.NoRespondersError):
        return "no hub is answering"
    return "the store is offline"


def checked_sale(raw: dict[str, Any]) -> dict[str, Any]:
    """A sale from the hub, every field checked as a client's would be (Invalid otherwise)."""
    v = validators
    lines = raw.get("lines")
    tenders = raw.get("tenders")
    if not isinstance(lines, list) or not isinstance(tenders, list) or len(lines) > 1000 or len(tenders) > 100:
        raise v.Invalid("sale", "must have lists of lines and tenders")

    def line(index: int, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise v.Invalid(f"line {index}", "must be an object")
        where = f"line {index}"
        quantity = v.integer(f"{where} quantity", item.get("quantity"), 1, v.MAX_LINE_QUANTITY)
        included = item.get("included")
        if included is not None and not isinstance(included, bool):
            raise v.Invalid(f"{where} included", "must be true, false or null")
        return {"line_no": v.integer(f"{where} line_no", item.get("line_no"), 1, 1000),
                "sku": v.token(f"{where} sku", item.get("sku")), "name": v.text(f"{where} name", item.get("name")),
                "quantity": quantity, "unit_minor": v.minor_units(f"{where} unit_minor", item.get("unit_minor")),
                "amount": v.minor_units(f"{where} amount", item.get("amount")),
                "tax_class": None if item.get("tax_class") is None else v.token(f"{where} tax", item.get("tax_class")),
                "rate_ppm": None if item.get("rate_ppm") is None else v.integer(f"{where} rate", item.get("rate_ppm"),
                                                                                0, PPM),
                "included": included, "returnable": v.integer(f"{where} returnable", item.get("returnable"), 0,
                                                              quantity)}

    def tender(index: int, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or item.get("method") not in ("cash", "card", "qr", "points", "gift_card"):
            raise v.Invalid(f"tender {index}", "must be a cash, card, QR, points or gift card tender")
        reference, points = item.get("reference"), item.get("points")
        return {"method": item["method"], "amount": v.minor_units(f"tender {index} amount", item.get("amount")),
                "reference": None if reference is None else v.text(f"tender {index} reference", reference,
                                                                   max_length=64),
                **({} if points is None else {"points": v.integer(f"tender {index} points", points, 1, v.MAX_BIGINT)})}
    customer = raw.get("customer")
    return {"order": v.uuid_text("order", raw.get("order")), "store": v.token("store", raw.get("store")),
            **({} if customer is None else {"customer": v.uuid_text("customer", customer)}),
            "ts": v.integer("ts", raw.get("ts"), 0, v.MAX_BIGINT), "till": v.token("till", raw.get("till")),
            "currency": v.currency("currency", raw.get("currency")),
            "lines": [line(index, item) for index, item in enumerate(lines)],
            "tenders": [tender(index, item) for index, item in enumerate(tenders)]}
