"""A store's request refused with a sentence, and the responder shape the customer, loyalty, coupon and gift card
domains share.

A refusal is an answer, not an error: {"refused": {"code": 402|404|409, "message": "..."}} (novapos.wire.loyalty),
which the till's ask_hub raises as HubRefused with the sentence for the cashier. A malformed request is
validators.Invalid, the hub's 400 reply (hub.responders).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from novapos.wire.payments import decode, encode
from novapos.wire.subjects import parse_request_subject

Handler = Callable[[asyncpg.Pool, str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""(pool, tenant, store, request) -> the answer; the tenant and store are the subject's (the asker's)."""


class Refused(Exception):
    """What was asked cannot be done (nothing was changed): `code` and a sentence for the cashier."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def answer(self) -> dict[str, Any]:
        return {"refused": {"code": self.code, "message": str(self)}}


def responder(kind: str, handle: Handler) -> Callable[[asyncpg.Pool, str, bytes], Awaitable[bytes]]:
    """The hub.domains Responder answering `kind` with `handle`, a refusal in the body."""
    async def respond(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
        tenant, store = parse_request_subject(subject, kind)
        body = decode(f"the {kind} request", data)
        try:
            answer = await handle(pool, tenant, store, body)
        except Refused as exc:
            answer = exc.answer()
        return encode(answer)
    respond.__name__ = f"answer_{kind}"
    return respond
