"""One request to the hub's payments, from an actor's thread: the answer, or a sentence for why there is none.

Payment requests are online-only by nature (a QR payment, a refund through the provider): a hub that does not
answer in time is `HubUnreachable`, with a reason a cashier can read, never an error page. What the hub sends is
checked by the caller like client input.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import nats.errors

from actors.protocol import Rejected
from edge_runtime import AsyncioSeam
from novapos import validators
from novapos.adapters.nats import NatsLink
from novapos.wire import loyalty, payments
from novapos.wire.payments import decode, encode
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER

CONNECT_WITHIN_S = 0.5


class HubUnreachable(Exception):
    """No answer from the hub: the store is offline, no hub is answering, or the answer came too late.
    `maybe_done`: the request may have reached the hub (it timed out waiting for the answer), so what it asked
    for may have happened: ask again under the same key, never do it another way."""

    def __init__(self, why: str, *, maybe_done: bool = False) -> None:
        super().__init__(why)
        self.maybe_done = maybe_done


class HubRefused(Exception):
    """The hub answered with a refusal: `code` (400, 402, 404, 409, 500, 503; 502 when its answer could not be read)
    and its sentence (checked before it is shown: it came over the network)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


UNCONFIRMED = "the hub has not confirmed the refund: try again (it is made once, whatever happened)"
NOTHING_REFUNDED = frozenset({402, 404, 409, 503})
"""The hub's refusals of a refund that say nothing was refunded: the provider declined it, the hub does not know the
payment, the payment's state allows no refund (not captured yet, voided) or the key was used for another request,
or it has no provider. Any other refusal (504: still being made) may follow a refund made under the same key."""


@dataclass(frozen=True)
class Unconfirmed(Rejected):
    """A refund the hub may have made without confirming it (a timeout, a refund still processing, an answer that
    cannot be read): the till asks again under the same refund key, and refunds no other way meanwhile."""


def refund_state(answer: dict[str, Any]) -> str:
    """The state of the refund in a pay_refund answer: "succeeded" (done), "failed" (declined: nothing refunded),
    anything else (processing, or an answer without one) not confirmed."""
    refund = answer.get("refund")
    state = refund.get("state") if isinstance(refund, dict) else None
    return state if state in ("succeeded", "failed") else "processing"


@dataclass(frozen=True)
class PaymentsHub:
    """The store's way to the hub's payments, handed to the actors that need it (the tills): the store's NATS link,
    the seam it runs on, and who the store is."""
    link: NatsLink
    seam: AsyncioSeam
    tenant: str
    store: str

    def ask(self, kind: str, body: dict[str, Any], within: float) -> dict[str, Any]:
        """ask_hub for this store."""
        return ask_hub(self.link, self.seam, self.tenant, self.store, kind, body, within)


def ask_hub(link: NatsLink, seam: AsyncioSeam, tenant: str, store: str, kind: str, body: dict[str, Any],
            within: float) -> dict[str, Any]:
    """Ask the hub's `kind` request (a payment's, or a customer's, loyalty's, coupon's or gift card's:
    novapos.wire.loyalty) with `body`; its answer's object (its fields unchecked). An answer that is not a JSON object
    is HubRefused 502, so a caller never crashes on it."""
    subject = (loyalty.loyalty_request_subject(tenant, store, kind) if kind in loyalty.KINDS
               else payments.payment_request_subject(tenant, store, kind))
    try:
        return seam.run_blocking(_ask, link, subject, encode(body), within, timeout=within + CONNECT_WITHIN_S + 0.5)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        raise HubUnreachable(why(exc), maybe_done=isinstance(exc, TimeoutError | nats.errors.TimeoutError)) from None


async def _ask(link: NatsLink, subject: str, data: bytes, within: float) -> dict[str, Any]:
    started = asyncio.get_running_loop().time()
    if not link.connected:
        await link.connect(timeout=CONNECT_WITHIN_S)
    left = within - (asyncio.get_running_loop().time() - started)
    reply = await link.client.request(subject, data, timeout=max(left, 0.1))
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers:
        code = headers[ERROR_CODE_HEADER]
        raise HubRefused(int(code) if code.isdigit() else 500, headers.get(ERROR_HEADER, code))
    try:
        answer = decode("the hub's answer", reply.data)
    except validators.Invalid as exc:
        raise HubRefused(502, f"the hub's answer could not be read: {exc}") from None
    refused = answer.get("refused")
    if isinstance(refused, dict):  # the payments responders' refusal: {"refused": {"code", "message", "state"?}}
        status = refused.get("code")
        raise HubRefused(status if isinstance(status, int) and 400 <= status < 600 else 500,
                         str(refused.get("message", "")))
    return answer


def why(exc: BaseException) -> str:
    """Why the hub gave no answer, for a cashier."""
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return "the hub did not answer in time"
    if isinstance(exc, nats.errors.NoRespondersError):
        return "no hub is answering"
    return "the store is offline"
