"""A till's cart as a domain model without I/O: lines, totals, tenders (actors.till.tenders), change, and
what may happen in which stage of a sale.

No actor, SQLite, logging or NATS here (the till actor does those), so the rules live in one place
and are tested directly. Each operation either changes the cart or returns a Rejected saying why,
and then has changed nothing: a refusal is an answer, not an exception.

Stages: SCANNING (lines come and go), PAYING (money taken or a card pending: lines are frozen until the
tenders are voided),
SAVING (the sale was handed to the outbox and its commit is in doubt: nothing may change until a
resent completion finds out whether it landed).

Every line is locked to the offer it was scanned at (actors.catalog.local.Offer: catalog version, unit
price, tax class, rate and whether shelf prices include tax), and keeps it whatever the catalog does
next, across restarts too (to_saved/restore). A second scan of the same SKU adds to its line only when
the offer is unchanged (same price and tax rule); after a price change it opens a new line at the new
price, so the customer pays what each shelf label said when it was scanned. Tax is computed per line by
novapos.pricing's one rounding rule: shown inside the total when shelf prices include it, added to the
total when they do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from actors.catalog.local import Offer
from actors.protocol import Rejected
from actors.till import tenders as tendering
from actors.till.tenders import Tender, Tenders
from novapos import validators
from novapos.money import Money
from novapos.pricing import PPM, line_tax
from novapos.wire.ids import uuid7

SAVING_MESSAGE = "the sale is being saved: send complete again (it will not be sold twice)"


class Stage(Enum):
    SCANNING = "scanning"
    PAYING = "paying"
    SAVING = "saving"


@dataclass
class Line:
    offer: Offer
    quantity: int

    @property
    def sku(self) -> str:
        return self.offer.sku

    @property
    def amount(self) -> Money:
        return Money(self.offer.unit_minor * self.quantity, self.offer.currency)

    @property
    def tax(self) -> Money:
        return Money(line_tax(self.amount.minor, self.offer.rate_ppm, self.offer.included), self.offer.currency)

    @property
    def adds(self) -> int:
        """What the line adds to the total: its amount, and its tax too when prices exclude tax."""
        return self.amount.minor + (0 if self.offer.included else self.tax.minor)

    def to_wire(self) -> dict[str, Any]:
        """The sale.completed v2 line: the v1 fields and the price lock."""
        offer = self.offer
        return {"sku": offer.sku, "name": offer.name, "quantity": self.quantity,
                "unit_price": Money(offer.unit_minor, offer.currency).to_wire(), "amount": self.amount.to_wire(),
                "catalog_version": offer.catalog_version,
                "tax": {"class": offer.tax_class, "rate_ppm": offer.rate_ppm, "included": offer.included,
                        "amount": self.tax.to_wire()}}

    def to_saved(self) -> dict[str, Any]:
        offer = self.offer
        return {"sku": offer.sku, "name": offer.name, "quantity": self.quantity, "unit": offer.unit_minor,
                "catalog_version": offer.catalog_version, "tax_class": offer.tax_class,
                "rate_ppm": offer.rate_ppm, "included": offer.included}


def _same_lock(a: Offer, b: Offer) -> bool:
    """Two offers a line may merge: the same SKU at the same price and tax rule (whatever the version)."""
    return replace(a, catalog_version=0) == replace(b, catalog_version=0)


def _new_id() -> str:
    return str(uuid7())


@dataclass
class Cart:
    """One customer's basket and what they paid with. `max_change` caps the change a tender may call for
    (the store's max_change_minor): a mistyped 10^9 is refused, not paid out. A tender sent again with
    the same id (a retry, a double tap) is taken once."""
    currency: str
    max_change: int
    id: str = field(default_factory=_new_id)
    lines: list[Line] = field(default_factory=list)
    tenders: Tenders = field(init=False)
    saving: bool = False

    def __post_init__(self) -> None:
        self.tenders = Tenders(self.currency, self.max_change)

    @property
    def stage(self) -> Stage:
        if self.saving:
            return Stage.SAVING
        return Stage.PAYING if self.tenders.began() else Stage.SCANNING

    def total(self) -> Money:
        return Money(sum(line.adds for line in self.lines), self.currency)

    def tax_total(self) -> Money:
        return Money(sum(line.tax.minor for line in self.lines), self.currency)

    def paid(self) -> Money:
        return Money(self.tenders.paid(), self.currency)

    def due(self) -> Money:
        return Money(max(0, self.total().minor - self.paid().minor), self.currency)

    def change(self) -> Money:
        return Money(max(0, self.paid().minor - self.total().minor), self.currency)

    def took_cash(self) -> bool:
        """Whether cash was taken (a sale paid by card alone opens no drawer)."""
        return any(tender.method == "cash" for tender in self.tenders.approved())

    def is_empty(self) -> bool:
        return not self.lines and not self.tenders.began()

    def summary(self) -> dict[str, Any]:
        """What the till shows: lines, Total, Paid, Due and Change, as wire money, and every tender."""
        return {"cart": self.id, "stage": self.stage.value, "lines": [line.to_wire() for line in self.lines],
                "total": self.total().to_wire(), "tax_total": self.tax_total().to_wire(),
                "paid": self.paid().to_wire(), "tendered": self.paid().to_wire(), "due": self.due().to_wire(),
                "change": self.change().to_wire(), "tenders": self.tenders.summary()}

    def _frozen(self, doing: str) -> Rejected | None:
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self.tenders.began():
            return Rejected("conflict", f"payment has started: void the tenders (give the cash back) before {doing}")
        return None

    def add(self, offer: Offer, quantity: int) -> Rejected | None:
        """Add `quantity` of `offer`: to the line of the same SKU and lock, else as a new line."""
        if (refused := self._frozen("adding lines")) is not None:
            return refused
        if offer.currency != self.currency:
            return Rejected("invalid", f"{offer.name} is priced in {offer.currency}, the till sells in {self.currency}: "
                                       "the store's currency and the hub's catalog disagree")
        line = next((line for line in self.lines if _same_lock(line.offer, offer)), None)
        if (line.quantity if line else 0) + quantity > validators.MAX_LINE_QUANTITY:
            return Rejected("invalid", f"quantity would exceed {validators.MAX_LINE_QUANTITY}")
        added = Line(offer, quantity).adds
        if self.total().minor + added > validators.MAX_MINOR:
            return Rejected("invalid", "the cart's total would be more than a till can take: split the sale")
        if line is None:
            self.lines.append(Line(offer, quantity))
        else:
            line.quantity += quantity
        return None

    def remove(self, sku: str) -> Rejected | None:
        """Take off the SKU's line (its last one, when a price change split it in two)."""
        if (refused := self._frozen("removing lines")) is not None:
            return refused
        line = next((line for line in reversed(self.lines) if line.sku == sku), None)
        if line is None:
            return Rejected("not_found", f"the cart has no line for {sku!r}")
        self.lines.remove(line)
        return None

    def took(self, tender_id: str | None) -> bool:
        """Whether this cart already took the tender with this id."""
        return tender_id is not None and self.tenders.find(tender_id) is not None

    def _may_tender(self) -> Rejected | None:
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if not self.lines:
            return Rejected("conflict", "the cart is empty: scan at least one item before taking payment")
        if self.due().minor == 0:
            return Rejected("conflict", f"nothing is due (change {self.change().format()}): complete the sale")
        return None

    def tender_cash(self, amount: int, tender_id: str | None = None) -> Rejected | None:
        """Take cash; refused once nothing is due, and when the change it calls for is more than the
        till gives back. A tender whose id the cart already took changes nothing, whatever the stage."""
        if self.took(tender_id):
            return None
        return self._may_tender() or self.tenders.take_cash(amount, self.due().minor, tender_id)

    def start_card(self, amount: int, tender_id: str, terminal: str, now_ms: int) -> Tender | Rejected:
        """A pending card tender of at most what is due (actors.till.tenders); the till asks the terminal.
        A tender id the cart already has answers that tender: a resend never starts a second payment."""
        if (known := self.tenders.find(tender_id)) is not None:
            return known
        return self._may_tender() or self.tenders.start_card(amount, self.due().minor, tender_id, terminal, now_ms)

    def void_tenders(self) -> list[Tender] | Rejected:
        """Give back every tender taken: cash goes back by hand; the approved cards are returned, for the till
        to reverse at the terminal. Refused while a card is pending (cancel it first)."""
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self.tenders.pending() is not None:
            return Rejected("conflict", tendering.PENDING_MESSAGE)
        taken = self.tenders.approved()
        if not taken:
            return Rejected("conflict", "no tender has been taken for this cart")
        self.tenders.items = [tender for tender in self.tenders.items if tender.state != "approved"]
        return [tender for tender in taken if tender.method == "card"]

    def remove_tender(self, tender_id: str) -> Tender | Rejected:
        """Give back one approved tender (the caller reverses a card); refused for a pending one (cancel it)."""
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        tender = self.tenders.find(tender_id)
        if tender is None:
            return Rejected("not_found", "this cart has no such tender")
        if tender.state == "pending":
            return Rejected("conflict", "the card payment is still in progress: cancel it instead")
        if tender.state != "approved":
            return Rejected("conflict", f"this tender was {tender.state}: nothing to give back")
        self.tenders.items.remove(tender)
        return tender

    def may_void(self) -> Rejected | None:
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self.tenders.pending() is not None:
            return Rejected("conflict", tendering.PENDING_MESSAGE)
        if self.is_empty():
            return Rejected("conflict", "the cart is already empty")
        return None

    def checkout(self, till: str, session: str, cashier: str) -> dict[str, Any] | Rejected:
        """The sale.completed body, once everything is paid (a free cart, total 0, needs no tender); the
        cart is SAVING from then on, until the outbox answers (sold, or saving_refused)."""
        if not self.lines:
            return Rejected("conflict", "the cart is empty: nothing to complete")
        if self.tenders.pending() is not None:
            return Rejected("conflict", tendering.PENDING_MESSAGE)
        if (due := self.due()).minor > 0:
            return Rejected("conflict", f"{due.format()} is still due: take a tender first")
        self.saving = True
        return {
            "till": till, "session": session, "cashier": cashier, "currency": self.currency,
            "lines": [line.to_wire() for line in self.lines], "total": self.total().to_wire(),
            "tax_total": self.tax_total().to_wire(),
            "tenders": self.tenders.to_wire(),
            "change": self.change().to_wire(),
        }

    def saving_refused(self) -> None:
        """The outbox refused the sale (nothing written): the cart may change again."""
        self.saving = False

    def to_saved(self) -> dict[str, Any]:
        return {"id": self.id, "tenders": self.tenders.to_saved(), "lines": [line.to_saved() for line in self.lines]}


def _saved_line(where: str, raw: Any, currency: str) -> tuple[Offer, int]:
    """A saved line's price lock and quantity, each field checked as the wire checks it."""
    if not isinstance(raw, dict):
        raise validators.Invalid(where, "must be an object")
    if not isinstance(raw.get("included"), bool):
        raise validators.Invalid(f"{where} included", "must be true or false (a line saved before price locks "
                                                      "has none: scan it again)")
    offer = Offer(sku=validators.token(f"{where} sku", raw.get("sku")),
                  name=validators.text(f"{where} name", raw.get("name")),
                  catalog_version=validators.integer(f"{where} catalog_version", raw.get("catalog_version"), 0,
                                                     validators.MAX_BIGINT),
                  unit_minor=validators.minor_units(f"{where} unit", raw.get("unit")), currency=currency,
                  tax_class=validators.token(f"{where} tax_class", raw.get("tax_class")),
                  rate_ppm=validators.integer(f"{where} rate_ppm", raw.get("rate_ppm"), 0, PPM),
                  included=raw["included"])
    return offer, validators.integer(f"{where} quantity", raw.get("quantity"), 1, validators.MAX_LINE_QUANTITY)


def restore(saved: Mapping[str, Any], currency: str, max_change: int) -> tuple[Cart, list[str]]:
    """A cart from its saved form, every field checked as if it came from a client; with the
    problems found (for the log). Lines come back at their saved price lock, whatever the catalog
    says now. What fails is dropped: a line that is malformed or has no lock, a tender the rules
    would refuse now, a tender id that is not one. The id must be a UUID, or the cart cannot be
    taken up at all (Invalid)."""
    cart = Cart(currency, max_change, validators.uuid_text("saved cart id", saved.get("id")))
    problems: list[str] = []
    lines = saved.get("lines")
    for index, raw in enumerate(lines if isinstance(lines, list) else []):
        where = f"saved line {index}"
        try:
            offer, quantity = _saved_line(where, raw, currency)
        except validators.Invalid as exc:
            problems.append(str(exc))
            continue
        if (refused := cart.add(offer, quantity)) is not None:
            problems.append(f"{where}: {refused.message}")
    if "tenders" in saved:
        cart.tenders = tendering.restore(saved["tenders"], currency, max_change, problems)
        return cart, problems
    tendered = saved.get("tendered")  # saved before actors.till.tenders: cash amounts, taken again by today's rules
    for index, amount in enumerate(tendered if isinstance(tendered, list) else []):
        try:
            validators.minor_units(f"saved tender {index}", amount, minimum=1)
        except validators.Invalid as exc:
            problems.append(str(exc))
            continue
        if (refused := cart.tender_cash(amount)) is not None:
            problems.append(f"saved tender {index}: {refused.message}")
    return cart, problems
