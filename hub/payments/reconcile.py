"""Reconciliation (P6-06), the comparison alone: what the hub says it captured and refunded on a day, held
against what the provider says it settled; no I/O, so every kind of mismatch is tested by building its inputs.

A movement is one capture of a payment, or one refund of it. The hub's side (`HubMovement`) comes from
payment_intents and payment_refunds: the movements the hub counts as done on the day (captured, refunds that
succeeded), plus any movement, of whatever day and state, that a settlement line names (so a line for a payment
the hub captured yesterday, or voided, is matched rather than called extra). The provider's side is its
settlement report (`hub.payments.gateway.SettlementLine`). Each mismatch is a `Drift`:

- missing: the hub counts a capture or refund on the day, and the provider has no line for it;
- extra: the provider settled a movement the hub does not have (or settled the same movement twice);
- amount: both have it, with different amounts (or currencies);
- state: the provider says failed where the hub counts it as done, or settled where the hub does not (a
  payment the hub voided, a refund it still waits for).

On the happy path `compare` returns nothing. hub.payments.reconciliation loads both sides and keeps the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from hub.payments.gateway import SettlementLine
from hub.payments.model import State
from novapos.money import Money

CAPTURE, REFUND = "capture", "refund"
SETTLED, FAILED = "settled", "failed"
REFUND_SUCCEEDED = "succeeded"
CAPTURED_STATES = frozenset({State.CAPTURED.value, State.REFUNDED.value})
"""An intent in one of these was captured (a refunded one too: its refunds are movements of their own)."""


class DriftKind(StrEnum):
    MISSING = "missing"
    EXTRA = "extra"
    AMOUNT = "amount"
    STATE = "state"


@dataclass(frozen=True)
class HubMovement:
    """One capture or refund as the hub has it."""
    kind: str
    """CAPTURE or REFUND."""
    provider_ref: str
    """The payment's reference at the provider (for a refund too, like a settlement line)."""
    amount_minor: int
    """Captured (for a capture), refunded (for a refund)."""
    currency: str
    state: str
    """The intent's state (a capture), the refund's (a refund)."""
    intent_id: str
    store: str
    refund_ref: str = ""
    """The refund's reference at the provider (a refund only)."""
    on_day: bool = True
    """Done on the reconciled day; False: loaded only because a settlement line names it."""

    @property
    def done(self) -> bool:
        """Whether the hub counts the money as moved."""
        return self.state in CAPTURED_STATES if self.kind == CAPTURE else self.state == REFUND_SUCCEEDED


@dataclass(frozen=True)
class Drift:
    """One mismatch, with what each side says and a sentence for the person who must look."""
    kind: DriftKind
    movement: str
    """CAPTURE or REFUND."""
    provider_ref: str
    message: str
    refund_ref: str = ""
    intent_id: str | None = None
    store: str | None = None
    """The store of the hub's intent; None for a movement the hub does not have."""
    currency: str | None = None
    hub_amount_minor: int | None = None
    provider_amount_minor: int | None = None
    hub_state: str | None = None
    provider_state: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}


def _key(kind: str, provider_ref: str, refund_ref: str) -> tuple[str, str, str]:
    return (kind, provider_ref, refund_ref if kind == REFUND else "")


def _name(kind: str, provider_ref: str, refund_ref: str) -> str:
    return f"refund {refund_ref} of payment {provider_ref}" if kind == REFUND else f"capture of payment {provider_ref}"


def compare(hub: Iterable[HubMovement], lines: Iterable[SettlementLine],
            day_before: Iterable[SettlementLine] = ()) -> list[Drift]:
    """Every mismatch between the hub's movements and the provider's settlement lines of one day, in the order
    of the hub's movements, then the provider's extra lines; empty when they agree.

    `day_before`: the provider's lines of the day before, when asked for (see `needs_day_before`). The hub records
    a movement once the provider has answered, so one made just before midnight can reach the hub's books after
    it: the provider settled it the day before (where it was matched by its reference), and it is not missing."""
    earlier = {_key(line.kind, line.provider_ref, line.refund_ref) for line in day_before}
    settled: dict[tuple[str, str, str], SettlementLine] = {}
    drift: list[Drift] = []
    for line in lines:
        key = _key(line.kind, line.provider_ref, line.refund_ref)
        if key in settled:
            drift.append(_extra(line, "the provider settled it twice"))
        else:
            settled[key] = line
    for movement in hub:
        key = _key(movement.kind, movement.provider_ref, movement.refund_ref)
        matched = settled.pop(key, None)
        if matched is None and key in earlier:
            continue
        if (found := _one(movement, matched)) is not None:
            drift.append(found)
    drift.extend(_extra(line, "the hub has no such movement") for line in settled.values())
    return drift


def needs_day_before(drift: Sequence[Drift]) -> bool:
    """Whether the day before's lines could explain some of `drift` (a movement missing today)."""
    return any(item.kind == DriftKind.MISSING for item in drift)


def _one(movement: HubMovement, line: SettlementLine | None) -> Drift | None:
    name = _name(movement.kind, movement.provider_ref, movement.refund_ref)
    if line is None:
        if not (movement.done and movement.on_day):
            return None
        return _drift(DriftKind.MISSING, movement, None, f"the hub has the {name} "
                      f"({_money(movement.amount_minor, movement.currency)}) but the provider's settlement has no "
                      "line for it")
    if movement.done and line.state == FAILED:
        return _drift(DriftKind.STATE, movement, line, f"the provider says the {name} failed; the hub has it "
                      f"{movement.state}")
    if not movement.done and line.state == SETTLED:
        return _drift(DriftKind.STATE, movement, line, f"the provider settled the {name}; the hub has it "
                      f"{movement.state}")
    if movement.done and (line.amount_minor, line.currency) != (movement.amount_minor, movement.currency):
        return _drift(DriftKind.AMOUNT, movement, line, f"the hub has the {name} at "
                      f"{_money(movement.amount_minor, movement.currency)}, the provider settled "
                      f"{_money(line.amount_minor, line.currency)}")
    return None


def _drift(kind: DriftKind, movement: HubMovement, line: SettlementLine | None, message: str) -> Drift:
    return Drift(kind, movement.kind, movement.provider_ref, message, refund_ref=movement.refund_ref,
                 intent_id=movement.intent_id, store=movement.store,
                 currency=movement.currency if line is None else line.currency,
                 hub_amount_minor=movement.amount_minor, hub_state=movement.state,
                 provider_amount_minor=None if line is None else line.amount_minor,
                 provider_state=None if line is None else line.state)


def _extra(line: SettlementLine, why: str) -> Drift:
    return Drift(DriftKind.EXTRA, movement=line.kind, provider_ref=line.provider_ref, refund_ref=line.refund_ref,
                 message=f"the provider {line.state} the {_name(line.kind, line.provider_ref, line.refund_ref)} "
                 f"({_money(line.amount_minor, line.currency)}): {why}", currency=line.currency,
                 provider_amount_minor=line.amount_minor, provider_state=line.state)


def _money(minor: int, currency: str) -> str:
    return Money(minor, currency).format()


def counts(drift: Sequence[Drift]) -> dict[str, int]:
    """How many items of each kind (every kind named, zeros included): for the log line and the command."""
    return {kind.value: sum(1 for item in drift if item.kind == kind) for kind in DriftKind}
