"""How the till's card actor reads the hub's answers to pay_refund (the hub's side is test_payment_requests'):
a refund the provider declined is made at the terminal; one not confirmed yet is never made a second time."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from actors.payments.asking import HubRefused
from actors.payments.cards import CardsActor
from actors.protocol import Rejected


def _answered(refusal: HubRefused) -> Any:
    def ask(_kind: str, _body: dict[str, Any]) -> dict[str, Any]:
        raise refusal
    actor = SimpleNamespace(_link=SimpleNamespace(connected=True), _ask=ask)
    return CardsActor.refund(actor, "t1", 500, "ret-1", "bob", "too small")  # type: ignore[arg-type]


def test_a_declined_refund_is_made_at_the_terminal_and_an_unconfirmed_one_is_asked_again() -> None:
    assert _answered(HubRefused(402, "the provider declined refund ret-1")) is None
    again = _answered(HubRefused(504, "the provider has not confirmed refund ret-1 yet"))
    assert isinstance(again, Rejected) and "again" in again.message
