"""A payment intent's life, without I/O: its states, the actions that move it, and the amounts they may move.

The reference is Stripe's PaymentIntent with manual capture, reduced to what a store chain needs: one intent
per tender, authorized (by the store's terminal, the provider or a QR payment), captured when the sale is paid
in full, cancelled when it is abandoned, refunded partially and repeatedly up to what was captured. While a
call to the provider is out, the intent is `processing` with the action it waits for (`pending`), so that a
hub killed between the provider's answer and its own commit leaves a trace the watchdog can resolve by asking
the provider, never by trying again blind.

Every other module asks `allowed` before it moves an intent, and a refusal (`Refused`) carries the current
state, which the console's API answers as 409 `invalid_state_transition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    AWAITING_PAYMENT_METHOD = "awaiting_payment_method"
    """Created, no money promised yet (a QR payment waiting for the customer's phone; a card not yet presented)."""
    PROCESSING = "processing"
    """A call to the provider is out (`Intent.pending` says which); its answer decides the next state."""
    AUTHORIZED = "authorized"
    """Money held on the card, not yet taken (manual capture); voided automatically after the capture window."""
    CAPTURED = "captured"
    """Money taken; refunds may follow, up to the captured amount."""
    REFUNDED = "refunded"
    """Everything captured has been refunded: nothing more can happen."""
    CANCELLED = "cancelled"
    """Voided before capture (abandoned sale, auto-void, a person): nothing was taken."""
    FAILED = "failed"
    """The provider declined or failed it: nothing was taken."""


class Action(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    CANCEL = "cancel"
    REFUND = "refund"


FINAL: frozenset[State] = frozenset({State.REFUNDED, State.CANCELLED, State.FAILED})

STARTS: dict[Action, frozenset[State]] = {
    Action.AUTHORIZE: frozenset({State.AWAITING_PAYMENT_METHOD}),
    Action.CAPTURE: frozenset({State.AUTHORIZED}),
    Action.CANCEL: frozenset({State.AWAITING_PAYMENT_METHOD, State.AUTHORIZED}),
    Action.REFUND: frozenset({State.CAPTURED}),
}
"""From which states each action may begin (it then goes to PROCESSING until the provider answers)."""

ENDS: dict[Action, frozenset[State]] = {
    Action.AUTHORIZE: frozenset({State.AUTHORIZED, State.CAPTURED, State.FAILED}),
    Action.CAPTURE: frozenset({State.CAPTURED, State.FAILED}),
    Action.CANCEL: frozenset({State.CANCELLED}),
    Action.REFUND: frozenset({State.CAPTURED, State.REFUNDED}),
}
"""Where the provider's answer to each action may leave the intent. An authorization may end captured (a QR
payment is taken at once); a refund ends captured while some of the capture is left to refund. A refused
capture, cancel or refund the provider answers with a decline leaves the intent where it was (`settle`)."""


class Refused(Exception):
    """An action the intent's state does not allow: 409 with the current state."""

    def __init__(self, action: Action | str, state: State, message: str) -> None:
        super().__init__(message)
        self.action, self.state = action, state


@dataclass(frozen=True)
class Amounts:
    """An intent's money, in minor units of its one currency."""
    amount: int
    """Asked for (the tender's amount)."""
    authorized: int = 0
    """Held on the card (at most `amount`; less when the provider approved part of it)."""
    captured: int = 0
    refunded: int = 0

    @property
    def refundable(self) -> int:
        return self.captured - self.refunded


def allowed(state: State, action: Action) -> None:
    """Refused unless `action` may begin from `state`."""
    if state not in STARTS[action]:
        begins = ", ".join(sorted(STARTS[action]))
        raise Refused(action, state, f"this payment is {state}: it can be {_past(action)} only when it is {begins}")


def may_capture(state: State, amounts: Amounts, amount: int) -> None:
    """Refused unless `amount` (at least 1) may be captured: at most what was authorized, once."""
    allowed(state, Action.CAPTURE)
    if not 0 < amount <= amounts.authorized:
        raise Refused(Action.CAPTURE, state,
                      f"a capture must be between 1 and the {amounts.authorized} authorized (minor units), not {amount}")


def may_refund(state: State, amounts: Amounts, amount: int) -> None:
    """Refused unless `amount` (at least 1) is at most what is left to refund."""
    allowed(state, Action.REFUND)
    if not 0 < amount <= amounts.refundable:
        raise Refused(Action.REFUND, state,
                      f"a refund must be between 1 and the {amounts.refundable} left to refund (minor units), "
                      f"not {amount}")


def after_refund(amounts: Amounts, amount: int) -> tuple[State, Amounts]:
    """The state and amounts once the provider has refunded `amount`."""
    refunded = Amounts(amounts.amount, amounts.authorized, amounts.captured, amounts.refunded + amount)
    return (State.REFUNDED if refunded.refundable == 0 else State.CAPTURED), refunded


def settle(action: Action, answer: State) -> State:
    """The provider's answer to `action` as the intent's next state; ValueError for an answer the action
    cannot have (the provider's bug: surfaced, never applied)."""
    if answer not in ENDS[action]:
        raise ValueError(f"a provider answered {action} with {answer}")
    return answer


def _past(action: Action) -> str:
    return {Action.AUTHORIZE: "authorized", Action.CAPTURE: "captured", Action.CANCEL: "cancelled",
            Action.REFUND: "refunded"}[action]
