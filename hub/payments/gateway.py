"""The one small interface between the hub and a payment provider (an acquirer, a QR wallet).

Every call but `status` and `settlement` carries an idempotency key that the provider keeps: the same key
twice is one charge, one refund. A call that times out has an unknown outcome (`GatewayTimeout`): the caller
asks `status(key)` before anything else, and only a provider that has never seen the key (None) may be asked
again. A provider that could not be reached at all (`GatewayUnavailable`) did nothing.

The calls are asyncio coroutines: they run on the hub's asyncio seam, beside asyncpg, one crossing per
request. hub.payments.acquirer speaks this over HTTP; mocks.acquirer is the simulator it talks to in the
demo and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    DECLINED = "declined"
    """The provider said no (card declined, capture refused): nothing moved."""
    FAILED = "failed"
    """The provider could not do it (an error on its side): nothing moved."""


@dataclass(frozen=True)
class Answer:
    """What the provider did with one call."""
    outcome: Outcome
    provider_ref: str
    """The provider's id of the payment (or of the refund, for a refund)."""
    amount_minor: int
    """The amount the call moved or holds: less than asked when the provider approved part of it."""
    auth_code: str = ""
    message: str = ""
    """The provider's reason, for a person (a decline's cause)."""


@dataclass(frozen=True)
class QrCheckout:
    """A payment the customer completes on their phone: the till shows `pay_url` as a QR code, and the
    provider's webhook says how it ended."""
    provider_ref: str
    pay_url: str
    expires_at: datetime


@dataclass(frozen=True)
class SettlementLine:
    """One movement in the provider's settlement report for a day."""
    provider_ref: str
    """The payment's reference (for a refund too: `refund_ref` names the refund)."""
    kind: str
    """"capture" or "refund"."""
    amount_minor: int
    currency: str
    state: str
    """"settled", or "failed" (a capture the scheme later refused)."""
    refund_ref: str = ""


PROVIDER_REF = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A provider's payment reference as the hub sends it back in a call's path and body (HttpGateway checks each, the
stores' requests check them at the door, so that no intent holds one the hub cannot capture or void)."""


class GatewayTimeout(Exception):
    """The call's outcome is unknown: ask `status` with the same key before anything else."""


class GatewayUnavailable(Exception):
    """The provider could not be reached: the call was not made."""


class Gateway(Protocol):
    name: str
    """The provider's name, stored on each intent (`provider`) and naming its webhook secrets."""

    async def authorize(self, key: str, amount_minor: int, currency: str, card: str, *,
                        capture: bool = False) -> Answer:
        """Hold (or with `capture`, take) `amount_minor` on `card` (a card token from the terminal)."""
        ...

    async def capture(self, key: str, provider_ref: str, amount_minor: int) -> Answer: ...

    async def cancel(self, key: str, provider_ref: str) -> Answer: ...

    async def refund(self, key: str, provider_ref: str, amount_minor: int) -> Answer:
        """Refund part or all of a captured payment; the answer's provider_ref names the refund."""
        ...

    async def status(self, key: str, call: str, provider_ref: str, amount_minor: int | None,
                     currency: str) -> Answer | None:
        """How the call made with `key` ended; None: the provider never saw it (safe to make it again). What the
        call asked (`call`: authorize, capture, cancel or refund, its payment's `provider_ref` ("" when not known
        yet), `amount_minor` (None for a void) and `currency`) is checked against the answer before it is believed:
        the watchdog writes it to the intent."""
        ...

    async def settlement(self, day: date) -> list[SettlementLine]: ...

    async def qr_checkout(self, key: str, amount_minor: int, currency: str, description: str) -> QrCheckout: ...
