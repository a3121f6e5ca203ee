"""The money side of a cart: its tenders (cash, cards through the payment terminal, QR payments through the hub),
what they paid, what is still due and the change, as a domain model without I/O (the till actor talks to the
terminal, actors.till.qr to the hub).

A tender is one attempt to take money: cash is approved as it is handed over; a card is `pending` from the
moment the till asks the terminal for it until the terminal says how it ended (approved, declined,
cancelled, failed) and `reversed` once an approval was given back. Only approved tenders pay. While a card
is pending nothing else may be tendered (the terminal runs one payment at a time, and the customer is at
it), and the sale cannot complete.

The reference a card payment runs under at the terminal is derived from the tender's id (its 32 hex
digits: the protocol allows 32 characters of A-Z a-z 0-9 . _ -), so the same tender always asks about the
same payment, across restarts too: a lost answer is resolved by asking STATUS of that reference, never by
paying again under a new one.

Points and gift card tenders (actors.till.rewards asks the hub) are approved as they are made: the hub has taken
the points or the money off the card (`points_redeem`, `gift_card_redeem`) under the tender's redemption id, or the
points were taken offline within the store's budget (actors.loyalty.local). Given back (a void, a removed tender),
they are `reversed` and the till owes the hub the reversal until it confirms it.

A QR tender is `pending` from the moment the hub gave its pay URL (shown as a QR code) until the hub says the
customer paid (approved), the payment failed (declined) or it was cancelled or expired (cancelled).

Rules: cash may exceed what is due by at most `max_change` (the store's max_change_minor); a card or a QR payment
never exceeds what is due (no change is given on either). Everything is integer minor units of one currency.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.protocol import Rejected
from novapos import validators
from novapos.money import Money
from novapos.wire.ids import uuid7

Method = Literal["cash", "card", "qr", "points", "gift_card"]
METHODS: tuple[Method, ...] = ("cash", "card", "qr", "points", "gift_card")
State = Literal["pending", "approved", "declined", "cancelled", "failed", "reversed"]
STATES: tuple[State, ...] = ("pending", "approved", "declined", "cancelled", "failed", "reversed")
MAX_PAY_URL = 2000  # a QR code of 2000 characters still scans at till-screen size
MAX_TENDERS = 20  # per cart, attempts included: a runaway client cannot grow the saved cart without bound
PENDING_MESSAGE = "a card payment is in progress: wait for the terminal, or cancel it"
QR_PENDING_MESSAGE = "a QR payment is in progress: wait for the customer's phone, or cancel it"
WAITING_FOR_CARD = "waiting_for_card"
STAGE_WORDS = {"starting": "starting the payment", WAITING_FOR_CARD: "insert or tap card", "processing": "processing",
               "unreachable": "the terminal does not answer: waiting for it (the card is not charged twice)"}
"""What the till shows for a pending card's stage (tenders[].message while pending)."""


OFFLINE_AUTH_CODE = "OFFLINE"
"""The auth code a sale and its receipt show for a card stored offline (the issuer is asked later, by the hub)."""


def reference_for(tender_id: str) -> str:
    """The terminal reference of a card tender: its id's 32 hex digits (a protocol reference holds 32)."""
    return uuid.UUID(tender_id).hex


@dataclass
class Card:
    """What the terminal said about the card: kept with the tender, printed on the receipt, sent to the hub."""
    reference: str
    terminal: str
    scheme: str = ""
    masked: str = ""
    auth_code: str = ""
    signature: bool = False
    offline: bool = False
    """Taken while the hub was away: the terminal stored the card (`token`) for the hub to authorize later."""
    token: str = ""

    def to_wire(self) -> dict[str, Any]:
        """The sale's card: a card stored offline has no issuer's auth code yet, and says OFFLINE there (and on the
        receipt)."""
        return {"reference": self.reference, "scheme": self.scheme or "UNKNOWN", "masked": self.masked,
                "auth_code": self.auth_code or (OFFLINE_AUTH_CODE if self.offline else ""), "terminal": self.terminal,
                "signature": self.signature}


@dataclass
class Qr:
    """A QR payment through the hub: its intent there, the provider's reference, the URL the customer's phone opens
    (shown as a QR code while the tender is pending) and when the hub says that URL expires (ISO 8601 text)."""
    intent: str
    provider_ref: str
    pay_url: str
    expires_at: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"intent": self.intent, "provider_ref": self.provider_ref}

    def to_saved(self) -> dict[str, Any]:
        return {**self.to_wire(), "pay_url": self.pay_url, "expires_at": self.expires_at}


@dataclass
class Points:
    """Loyalty points redeemed as a tender: whose, how many, the redemption's id (the hub's key for it) and whether
    they were taken offline; `balance`: the customer's points after it, as the hub said (None offline)."""
    customer: str
    points: int
    redemption: str
    offline: bool
    balance: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"customer": self.customer, "points": self.points, "redemption": self.redemption,
                "offline": self.offline}

    def to_saved(self) -> dict[str, Any]:
        return {**self.to_wire(), "balance": self.balance}


@dataclass
class GiftCard:
    """A gift card redeemed as a tender: its masked number (never the whole), the hub's redemption id and the card's
    balance after it."""
    card: str
    redemption: str
    balance_minor: int

    def to_wire(self) -> dict[str, Any]:
        return {"card": self.card, "redemption": self.redemption}

    def to_saved(self) -> dict[str, Any]:
        return {**self.to_wire(), "balance_minor": self.balance_minor}


@dataclass
class Tender:
    """One attempt to take money. `stage`: the terminal's stage while a card is pending; `started_ms`: when
    the till asked the terminal (wall clock, so a timeout counts across restarts); `cancel`: why the till
    asked the terminal to cancel ("cashier" or "timeout"), None while it has not."""
    id: str
    method: Method
    amount: int
    state: State
    stage: str = ""
    message: str = ""
    card: Card | None = None
    started_ms: int = 0
    cancel: str | None = None
    qr: Qr | None = None
    points: Points | None = None
    gift_card: GiftCard | None = None

    def to_wire(self, currency: str) -> dict[str, Any]:
        """The sale.completed v3 tender: {id, method, amount, card?} (v4: or qr; v5: or points, gift_card)."""
        wire: dict[str, Any] = {"id": self.id, "method": self.method, "amount": Money(self.amount, currency).to_wire()}
        if self.card is not None:
            wire["card"] = self.card.to_wire()
        if self.qr is not None:
            wire["qr"] = self.qr.to_wire()
        if self.points is not None:
            wire["points"] = self.points.to_wire()
        if self.gift_card is not None:
            wire["gift_card"] = self.gift_card.to_wire()
        return wire

    def summary(self, currency: str) -> dict[str, Any]:
        """What the till shows: state, stage and message; the card's scheme, masked number and auth code; a QR
        payment's provider reference, and its pay URL and expiry while it is pending (the page shows the code)."""
        card, qr = self.card, self.qr
        return {"id": self.id, "method": self.method, "amount": Money(self.amount, currency).to_wire(),
                "state": self.state, "stage": self.stage if self.state == "pending" else None, "message": self.message,
                "card": None if card is None or not card.masked else
                {"scheme": card.scheme, "masked": card.masked, "auth_code": card.auth_code},
                **({} if qr is None else {"qr": {
                    "provider_ref": qr.provider_ref, "pay_url": qr.pay_url if self.state == "pending" else None,
                    "expires_at": qr.expires_at if self.state == "pending" else None}}),
                **({} if self.points is None else {"points": self.points.to_saved()}),
                **({} if self.gift_card is None else {"gift_card": self.gift_card.to_saved()})}

    def to_saved(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "amount": self.amount, "state": self.state, "stage": self.stage,
                "message": self.message, "started_ms": self.started_ms, "cancel": self.cancel,
                "card": None if self.card is None else {**self.card.to_wire(), "auth_code": self.card.auth_code,
                                                        "offline": self.card.offline, "token": self.card.token},
                **({} if self.qr is None else {"qr": self.qr.to_saved()}),
                **({} if self.points is None else {"points": self.points.to_saved()}),
                **({} if self.gift_card is None else {"gift_card": self.gift_card.to_saved()})}


@dataclass
class Tenders:
    """A cart's tenders, oldest first."""
    currency: str
    max_change: int
    items: list[Tender] = field(default_factory=list)

    def paid(self) -> int:
        return sum(tender.amount for tender in self.items if tender.state == "approved")

    def approved(self) -> list[Tender]:
        return [tender for tender in self.items if tender.state == "approved"]

    def pending(self) -> Tender | None:
        return next((tender for tender in self.items if tender.state == "pending"), None)

    def pending_message(self) -> str:
        """What the cashier is told while a payment is pending: a card's, or a QR payment's."""
        pending = self.pending()
        return QR_PENDING_MESSAGE if pending is not None and pending.method == "qr" else PENDING_MESSAGE

    def redeemed(self) -> list[Tender]:
        """The approved points and gift card tenders: what the hub (or the store's offline ledger) took."""
        return [tender for tender in self.approved() if tender.method in ("points", "gift_card")]

    def began(self) -> bool:
        """Whether money was taken or is being taken: the lines are frozen from then on."""
        return any(tender.state in ("approved", "pending") for tender in self.items)

    def find(self, tender_id: str) -> Tender | None:
        return next((tender for tender in self.items if tender.id == tender_id), None)

    def _may_take(self, amount: int, due: int, method: str) -> Rejected | None:
        if self.pending() is not None:
            return Rejected("conflict", self.pending_message())
        if len(self.items) >= MAX_TENDERS:
            return Rejected("conflict", f"this cart has had {MAX_TENDERS} tenders: void the tenders and start again")
        if amount < 1:
            return Rejected("invalid", f"a {method} tender must be a positive amount")
        if due == 0:
            return Rejected("conflict", "nothing is due: complete the sale")
        return None

    def take_cash(self, amount: int, due: int, tender_id: str | None) -> Rejected | None:
        """Take cash against `due`; refused when the change it calls for is more than a till gives back."""
        if (refused := self._may_take(amount, due, "cash")) is not None:
            return refused
        change = amount - due
        if change > self.max_change:
            money = lambda minor: Money(minor, self.currency).format()  # noqa: E731
            return Rejected("invalid", f"{money(amount)} for {money(due)} due would need {money(change)} change, "
                                       f"more than the {money(self.max_change)} a till gives back: check the amount typed")
        self.items.append(Tender(tender_id or _new_id(), "cash", amount, "approved"))
        return None

    def start_card(self, amount: int, due: int, tender_id: str, terminal: str, now_ms: int) -> Tender | Rejected:
        """A pending card tender for `amount` (at most `due`: no change is given on a card)."""
        if (refused := self._may_take(amount, due, "card")) is not None:
            return refused
        if amount > due:
            return Rejected("invalid", f"a card pays at most what is due ({Money(due, self.currency).format()}), "
                                       f"not {Money(amount, self.currency).format()}: a card gives no change")
        tender = Tender(tender_id, "card", amount, "pending", "starting", STAGE_WORDS["starting"],
                        Card(reference_for(tender_id), terminal), started_ms=now_ms)
        self.items.append(tender)
        return tender

    def may_pay_by_qr(self, amount: int, due: int) -> Rejected | None:
        """Whether a QR payment of `amount` may start (asked before the hub is asked for one)."""
        if (refused := self._may_take(amount, due, "QR")) is not None:
            return refused
        if amount > due:
            return Rejected("invalid", f"a QR payment pays at most what is due ({Money(due, self.currency).format()}), "
                                       f"not {Money(amount, self.currency).format()}: it gives no change")
        return None

    def may_redeem(self, amount: int, due: int, method: str) -> Rejected | None:
        """Whether a points or gift card tender of `amount` may be taken now (asked before the hub is): like a card,
        it never exceeds what is due (no change is given on either)."""
        words = "points" if method == "points" else "a gift card"
        if (refused := self._may_take(amount, due, words)) is not None:
            return refused
        if amount > due:
            return Rejected("invalid", f"{words} pay at most what is due ({Money(due, self.currency).format()}), "
                                       f"not {Money(amount, self.currency).format()}: no change is given on them")
        return None

    def to_wire(self) -> list[dict[str, Any]]:
        """The approved tenders, as sale.completed v3 has them (v4 with a QR payment)."""
        return [tender.to_wire(self.currency) for tender in self.approved()]

    def summary(self) -> list[dict[str, Any]]:
        return [tender.summary(self.currency) for tender in self.items]

    def to_saved(self) -> list[dict[str, Any]]:
        return [tender.to_saved() for tender in self.items]


def settle(tender: Tender, answer: Mapping[str, Any]) -> bool:
    """Apply the terminal's STATUS answer (actors.devices.terminal: `answered: True`, stage, auth_code,
    masked_card, scheme, signature, message) to a pending card tender; True if the tender changed.
    `idle` means the terminal never started the payment: it failed, and nothing was charged."""
    stage, before = str(answer.get("stage")), (tender.state, tender.stage, tender.message)
    assert tender.card is not None
    if stage in ("starting", WAITING_FOR_CARD, "processing"):
        tender.stage, tender.message = stage, STAGE_WORDS[stage]
    elif stage == "approved":
        amount = answer.get("amount_minor")
        if amount != tender.amount:  # the terminal took another amount: a bug somewhere, never a sale
            tender.state, tender.message = "failed", f"the terminal approved {amount}, not {tender.amount}: call support"
        else:
            tender.state, tender.stage, tender.message = "approved", "", str(answer.get("message") or "approved")
        tender.card.scheme, tender.card.masked = str(answer.get("scheme") or ""), str(answer.get("masked_card") or "")
        tender.card.auth_code, tender.card.signature = str(answer.get("auth_code") or ""), bool(answer.get("signature"))
        tender.card.token = str(answer.get("card_token") or "")
        if tender.card.offline and tender.state == "approved" and not tender.card.token:
            tender.state, tender.message = "failed", "the terminal did not store the card offline: call support"
    elif stage == "declined":
        tender.state, tender.stage, tender.message = "declined", "", f"declined: {answer.get('message') or 'by the bank'}"
    elif stage == "cancelled":
        said = str(answer.get("message") or "")
        why = {"timeout": "timed out: no card was presented", "cashier": "cancelled at the till",
               "": "cancelled by the customer" if "CUSTOMER" in said.upper() else f"cancelled at the terminal: {said}"}
        tender.state, tender.stage, tender.message = "cancelled", "", why.get(tender.cancel or "", why[""])
    elif stage == "reversed":
        tender.state, tender.stage, tender.message = "reversed", "", "reversed: the money went back to the card"
    elif stage in ("idle", "error"):
        tender.state, tender.stage = "failed", ""
        tender.message = ("the terminal did not start the payment: nothing was charged, try again" if stage == "idle"
                          else f"the terminal failed: {answer.get('message') or 'no money moved'}")
    return (tender.state, tender.stage, tender.message) != before


def _new_id() -> str:
    return str(uuid7())


def restore(saved: Any, currency: str, max_change: int, problems: list[str]) -> Tenders:
    """Tenders from a cart's saved form, every field checked as if a client had sent it; what fails is
    dropped with its problem appended to `problems`. A pending card comes back pending, with its reference:
    the till asks the terminal how it ended."""
    tenders = Tenders(currency, max_change)
    for index, raw in enumerate(saved if isinstance(saved, list) else []):
        where = f"saved tender {index}"
        try:
            tenders.items.append(_saved_tender(where, raw))
        except validators.Invalid as exc:
            problems.append(str(exc))
    return tenders


def _optional_text(where: str, value: Any, max_length: int = validators.MAX_TEXT_LENGTH) -> str:
    return "" if value in (None, "") else validators.text(where, value, max_length=max_length)


def _saved_tender(where: str, raw: Any) -> Tender:
    if not isinstance(raw, dict):
        raise validators.Invalid(where, "must be an object")
    method, state = raw.get("method"), raw.get("state")
    if method not in METHODS or state not in STATES:
        raise validators.Invalid(where, "has an unknown method or state")
    card, qr, points, gift_card = raw.get("card"), raw.get("qr"), raw.get("points"), raw.get("gift_card")
    if any((method == name) != isinstance(details, dict)
           for name, details in (("card", card), ("qr", qr), ("points", points), ("gift_card", gift_card))):
        raise validators.Invalid(where, "must have card, QR, points or gift card details exactly when it is one")
    tender_id = validators.uuid_text(f"{where} id", raw.get("id"))
    cancel = raw.get("cancel")
    return Tender(
        id=tender_id, method=method, amount=validators.minor_units(f"{where} amount", raw.get("amount"), minimum=1),
        state=state, stage=_optional_text(f"{where} stage", raw.get("stage"), max_length=32),
        message=_optional_text(f"{where} message", raw.get("message")),
        started_ms=validators.integer(f"{where} started_ms", raw.get("started_ms", 0), 0, validators.MAX_BIGINT),
        cancel=None if cancel is None else validators.token(f"{where} cancel", cancel),
        card=None if not isinstance(card, dict) else Card(
            reference=reference_for(tender_id), terminal=validators.token(f"{where} terminal", card.get("terminal")),
            scheme=_optional_text(f"{where} scheme", card.get("scheme"), max_length=16),
            masked=_optional_text(f"{where} masked", card.get("masked"), max_length=32),
            auth_code=_optional_text(f"{where} auth_code", card.get("auth_code"), max_length=32),
            signature=card.get("signature") is True, offline=card.get("offline") is True,
            token="" if not card.get("token") else validators.token(f"{where} token", card.get("token"))),
        qr=None if not isinstance(qr, dict) else Qr(
            intent=validators.token(f"{where} intent", qr.get("intent"), max_length=64),
            provider_ref=validators.text(f"{where} provider_ref", qr.get("provider_ref"), max_length=64),
            pay_url=validators.text(f"{where} pay_url", qr.get("pay_url"), max_length=MAX_PAY_URL),
            expires_at=_optional_text(f"{where} expires_at", qr.get("expires_at"), max_length=40)),
        points=None if not isinstance(points, dict) else _saved_points(where, points),
        gift_card=None if not isinstance(gift_card, dict) else GiftCard(
            card=validators.text(f"{where} gift card", gift_card.get("card"), max_length=32),
            redemption=validators.uuid_text(f"{where} redemption", gift_card.get("redemption")),
            balance_minor=validators.minor_units(f"{where} balance", gift_card.get("balance_minor"))))


def _saved_points(where: str, raw: dict[str, Any]) -> Points:
    balance = raw.get("balance")
    return Points(customer=validators.uuid_text(f"{where} customer", raw.get("customer")),
                  points=validators.integer(f"{where} points", raw.get("points"), 1, validators.MAX_BIGINT),
                  redemption=validators.uuid_text(f"{where} redemption", raw.get("redemption")),
                  offline=raw.get("offline") is True,
                  balance=None if balance is None else validators.integer(f"{where} balance", balance,
                                                                         -validators.MAX_BIGINT, validators.MAX_BIGINT))
