"""A till's cart as a domain model without I/O: lines, totals, tenders (actors.till.tenders), change, and
what may happen in which stage of a sale.

No actor, SQLite, logging or NATS here (the till actor does those), so the rules live in one place
and are tested directly. Each operation either changes the cart or returns a Rejected saying why,
and then has changed nothing: a refusal is an answer, not an exception.

Stages: SCANNING (lines come and go), PAYING (money taken or a card pending: lines are frozen until the
tenders are voided),
SAVING (the sale was handed to the outbox and its commit is in doubt: nothing may change until a
resent completion finds out whether it landed).

Every line has an id (12 hex digits) and is locked to the offer it was scanned at (actors.catalog.local.Offer:
catalog version, list price, tax class, rate, whether shelf prices include tax, and the variant's attributes such
as size and colour), and keeps it whatever the catalog does next, across restarts too (to_saved/restore). A
second scan of the same SKU adds to a line only when the offer is unchanged (same price and tax rule) and the
line has no price override or discount of its own; otherwise it opens a new line, so the customer pays what each
shelf label said when it was scanned and a discount given to one item is not given to the next.

What changes a line's price, each with a reason: a price override (the unit price it sells at instead of the
list price, and who approved it), the promotions in force (actors.till.promoting: re-evaluated by the engine at
every change, on the lines without an override), a line discount (of what the promotions left) and the order
discount (percent in basis points, or an amount; novapos.pricing.percent_of), the order discount shared over the
lines by novapos.pricing.allocate. A line's amount is unit price x quantity - its promotions - its discount - its
share of the order discount, and its tax is computed on that
amount by novapos.pricing's one rounding rule: shown inside the total when shelf prices include it, added to the
total when they do not. A change that would make a discount more than what it applies to (a quantity lowered
under an amount discount, a line removed under an order discount) is refused, and changes nothing.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Literal

from actors.catalog.local import Offer
from actors.protocol import Rejected
from actors.till import promoting
from actors.till import tenders as tendering
from actors.till.promoting import NO_PRICING, Coupon, Given, Pricing
from actors.till.tenders import Tender, Tenders
from novapos import validators
from novapos.money import Money
from novapos.pricing import BASIS_POINTS, PPM, allocate, line_tax, percent_of
from novapos.wire.catalog import MAX_ATTRIBUTES
from novapos.wire.ids import uuid7
from novapos.wire.loyalty import tier_name

SAVING_MESSAGE = "the sale is being saved: send complete again (it will not be sold twice)"


class Stage(Enum):
    SCANNING = "scanning"
    PAYING = "paying"
    SAVING = "saving"


LINE_ID_LENGTH = 12
"""A line's id: 12 hex digits of a random UUID, unique within its cart."""

DiscountKind = Literal["percent", "amount"]
DISCOUNT_KINDS: tuple[DiscountKind, ...] = ("percent", "amount")


@dataclass(frozen=True)
class Discount:
    """A discount with its reason: `value` is basis points (10000 = 100 %) for a percent, minor units for an
    amount. Its amount is computed from what it applies to (novapos.pricing.percent_of)."""
    kind: DiscountKind
    value: int
    reason: str

    def amount_of(self, gross: int) -> int:
        return percent_of(gross, self.value) if self.kind == "percent" else self.value

    def to_wire(self, gross: int, currency: str) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "reason": self.reason,
                "amount": Money(self.amount_of(gross), currency).to_wire()}

    def to_saved(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "reason": self.reason}


def discount(kind: str, value: int, reason: str) -> Discount | Rejected:
    """A discount a cashier asked for, or why not: a percent is from 0.01 % to 100 % (1 to 10000 basis
    points), an amount at least one minor unit (whether it fits its line is the cart's to say)."""
    if kind == "percent":
        if not 1 <= value <= BASIS_POINTS:
            return Rejected("invalid", f"a percent discount is from 1 to {BASIS_POINTS} basis points (0.01 % to "
                                       f"100 %), got {value}")
        return Discount("percent", value, reason)
    if kind == "amount":
        if not 1 <= value <= validators.MAX_MINOR:
            return Rejected("invalid", f"an amount discount is from 1 to {validators.MAX_MINOR} minor units")
        return Discount("amount", value, reason)
    return Rejected("invalid", f"discount kind {kind!r} is not one of: percent, amount")


@dataclass(frozen=True)
class Override:
    """A price override: the unit price the line sells at instead of its list price, why, and who allowed it."""
    unit_minor: int
    reason: str
    approver: str


@dataclass
class Line:
    """A cart line: the offer it locked (list price, catalog version, tax rule, attributes), a quantity, and
    what changed its price: an override, a line discount, its share of the order discount (set by the cart)."""
    offer: Offer
    quantity: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:LINE_ID_LENGTH])
    override: Override | None = None
    discount: Discount | None = None
    order_share: int = 0
    promotions: tuple[Given, ...] = ()
    """What each promotion took off this line at the cart's last evaluation (set by the cart)."""

    @property
    def sku(self) -> str:
        return self.offer.sku

    @property
    def unit_minor(self) -> int:
        return self.override.unit_minor if self.override is not None else self.offer.unit_minor

    @property
    def gross(self) -> int:
        """Unit price times quantity, before any discount."""
        return self.unit_minor * self.quantity

    @property
    def promoted(self) -> int:
        """After the promotions: what a line discount applies to."""
        return self.gross - sum(amount for _promotion, _name, amount in self.promotions)

    @property
    def discount_minor(self) -> int:
        return 0 if self.discount is None else self.discount.amount_of(self.promoted)

    @property
    def net(self) -> int:
        """After the promotions and the line discount: what the order discount is shared in proportion to."""
        return self.promoted - self.discount_minor

    @property
    def amount(self) -> Money:
        return Money(self.net - self.order_share, self.offer.currency)

    @property
    def tax(self) -> Money:
        return Money(line_tax(self.amount.minor, self.offer.rate_ppm, self.offer.included), self.offer.currency)

    @property
    def adds(self) -> int:
        """What the line adds to the total: its amount, and its tax too when prices exclude tax."""
        return self.amount.minor + (0 if self.offer.included else self.tax.minor)

    def plain(self) -> bool:
        """Whether a scan of the same offer may add to this line: no override, no discount of its own."""
        return self.override is None and self.discount is None

    def to_wire(self) -> dict[str, Any]:
        """The sale.completed v5 line (v3 when it has no promotions): the price lock (list price, catalog version,
        tax rule), what changed the price (override, promotions, discount, order discount share) and the amount
        and tax that result."""
        offer, currency = self.offer, self.offer.currency
        wire: dict[str, Any] = {
            "line": self.id, "sku": offer.sku, "name": offer.name,
            "attributes": [list(pair) for pair in offer.attributes], "quantity": self.quantity,
            "list_price": Money(offer.unit_minor, currency).to_wire(),
            "unit_price": Money(self.unit_minor, currency).to_wire()}
        if self.promotions:
            wire["promotions"] = [{"promotion": promotion, "name": name, "amount": Money(amount, currency).to_wire()}
                                  for promotion, name, amount in self.promotions]
        if self.override is not None:
            wire["override"] = {"reason": self.override.reason, "approver": self.override.approver}
        if self.discount is not None:
            wire["discount"] = self.discount.to_wire(self.promoted, currency)
        wire.update({"order_discount": Money(self.order_share, currency).to_wire(), "amount": self.amount.to_wire(),
                     "catalog_version": offer.catalog_version,
                     "tax": {"class": offer.tax_class, "rate_ppm": offer.rate_ppm, "included": offer.included,
                             "amount": self.tax.to_wire()}})
        return wire

    def to_saved(self) -> dict[str, Any]:
        offer = self.offer
        saved: dict[str, Any] = {
            "line": self.id, "sku": offer.sku, "name": offer.name, "quantity": self.quantity, "unit": offer.unit_minor,
            "catalog_version": offer.catalog_version, "tax_class": offer.tax_class, "rate_ppm": offer.rate_ppm,
            "included": offer.included, "attributes": [list(pair) for pair in offer.attributes]}
        if self.override is not None:
            saved["override"] = {"unit": self.override.unit_minor, "reason": self.override.reason,
                                 "approver": self.override.approver}
        if self.discount is not None:
            saved["discount"] = self.discount.to_saved()
        if self.promotions:
            saved["promotions"] = [list(given) for given in self.promotions]
        if offer.category:
            saved["category"] = offer.category
        return saved


def _same_lock(a: Offer, b: Offer) -> bool:
    """Two offers a line may merge: the same SKU at the same price and tax rule (whatever the version)."""
    return replace(a, catalog_version=0) == replace(b, catalog_version=0)


def _new_id() -> str:
    return str(uuid7())


@dataclass
class Cart:
    """One customer's basket and what they paid with. `max_change` caps the change a tender may call for
    (the store's max_change_minor): a mistyped 10^9 is refused, not paid out. A tender sent again with
    the same id (a retry, a double tap) is taken once. `source` gives the promotions to price with, asked at
    every change (actors.till.promoting)."""
    currency: str
    max_change: int
    id: str = field(default_factory=_new_id)
    lines: list[Line] = field(default_factory=list)
    order_discount: Discount | None = None
    tenders: Tenders = field(init=False)
    saving: bool = False
    source: Callable[[], Pricing] = field(default=lambda: NO_PRICING, repr=False, compare=False)
    coupons: list[Coupon] = field(default_factory=list)
    priced: promoting.Priced = field(default_factory=lambda: promoting.Priced(0, {}, ()))
    """The last evaluation of the promotions (what the lines' `promotions` came from)."""
    customer: str | None = None
    """The hub's id of the customer the sale is for (attached by actors.till's customer flow)."""
    tier: str | None = None
    """That customer's loyalty tier when attached (tier-only promotions need it)."""

    def __post_init__(self) -> None:
        self.tenders = Tenders(self.currency, self.max_change)

    def __deepcopy__(self, memo: dict[int, Any]) -> Cart:
        """A copy of the cart's state that shares its source (the till's reader of promotions, not state)."""
        clone = copy.copy(self)
        clone.__dict__.update(copy.deepcopy({name: value for name, value in self.__dict__.items() if name != "source"},
                                            memo))
        return clone

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

    def saved_minor(self) -> int:
        """What the customer saves: promotions, line discounts and the order discount (an override is a price)."""
        return sum(line.gross - line.amount.minor for line in self.lines)

    def summary(self) -> dict[str, Any]:
        """What the till shows: lines (with what each promotion took off each), Total, Paid, Due and Change, as wire
        money, every tender, the promotions applied with their explanation, the coupons and "You saved"."""
        return {"cart": self.id, "stage": self.stage.value, "lines": [line.to_wire() for line in self.lines],
                "order_discount": self._order_discount_wire(),
                "promotions": [{"promotion": applied.promotion, "name": applied.name,
                                "explanation": applied.explanation,
                                "amount": Money(applied.total, self.currency).to_wire()}
                               for applied in self.priced.applied],
                "promotions_version": self.priced.version,
                "coupons": [{**coupon.to_wire(), "applied": self._applied(coupon)} for coupon in self.coupons],
                "saved": Money(self.saved_minor(), self.currency).to_wire(),
                "total": self.total().to_wire(), "tax_total": self.tax_total().to_wire(),
                "paid": self.paid().to_wire(), "tendered": self.paid().to_wire(), "due": self.due().to_wire(),
                "change": self.change().to_wire(), "tenders": self.tenders.summary()}

    def _frozen(self, doing: str) -> Rejected | None:
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self.tenders.began():
            return Rejected("conflict", f"payment has started: void the tenders (give the cash back) before {doing}")
        return None

    def _order_discount_wire(self) -> dict[str, Any] | None:
        if self.order_discount is None:
            return None
        return self.order_discount.to_wire(sum(line.net for line in self.lines), self.currency)

    def _applied(self, coupon: Coupon) -> bool:
        return any(applied.promotion == coupon.promotion for applied in self.priced.applied)

    def _evaluate(self) -> Rejected | None:
        """Price the lines without an override with the promotions the source gives now (actors.till.promoting)."""
        for line in self.lines:
            if line.gross > validators.MAX_MINOR:
                return Rejected("invalid", f"{line.offer.name} at {Money(line.unit_minor, self.currency).format()} x "
                                           f"{line.quantity} would be more than a till can take: split the sale")
        eligible = [promoting.engine.CartLine(line.id, line.sku, line.offer.category, line.unit_minor, line.quantity)
                    for line in self.lines if line.override is None]
        self.priced = promoting.evaluate(self.source(), eligible, self.coupons, self.customer, self.tier,
                                         self.currency)
        for line in self.lines:
            line.promotions = self.priced.lines.get(line.id, ())
        return None

    def _settle(self, evaluate: bool = True) -> Rejected | None:
        """Evaluate the promotions (unless `evaluate` is False: a restored cart keeps what it was priced at), share
        the order discount over the lines (novapos.pricing.allocate) and check that every discount still fits what
        it applies to and the total what a till can take; a Rejected says which does not."""
        if evaluate and (refused := self._evaluate()) is not None:
            return refused
        for line in self.lines:
            line.order_share = 0
            if line.gross > validators.MAX_MINOR:
                return Rejected("invalid", f"{line.offer.name} at {Money(line.unit_minor, self.currency).format()} x "
                                           f"{line.quantity} would be more than a till can take: split the sale")
            if line.promoted < 0:
                return Rejected("invalid", f"the promotions on {line.offer.name} would take more than the line")
            if line.discount is not None and line.discount_minor > line.promoted:
                return Rejected("invalid", f"the {Money(line.discount_minor, self.currency).format()} discount on "
                                           f"{line.offer.name} would be more than the line's "
                                           f"{Money(line.promoted, self.currency).format()}"
                                           + (" after its promotions" if line.promotions else ""))
        if self.order_discount is not None:
            nets = [line.net for line in self.lines]
            off = self.order_discount.amount_of(sum(nets))
            if off > sum(nets):
                return Rejected("invalid", f"the {Money(off, self.currency).format()} order discount would be more "
                                           f"than the cart's {Money(sum(nets), self.currency).format()}")
            for line, share in zip(self.lines, allocate(off, nets), strict=True):
                line.order_share = share
        if self.total().minor > validators.MAX_MINOR:
            return Rejected("invalid", "the cart's total would be more than a till can take: split the sale")
        return None

    def _changing(self, doing: str, change: Any, evaluate: bool = True) -> Rejected | None:
        """Run `change` (a function of no arguments that may return a Rejected) on the lines, then settle the
        cart (promotions evaluated again); any refusal puts the lines, the order discount, the coupons, the
        customer and the evaluation back as they were."""
        if (refused := self._frozen(doing)) is not None:
            return refused
        lines = [replace(line) for line in self.lines]  # their fields are immutable values: a copy of each line
        before = (self.order_discount, list(self.coupons), self.priced, self.customer, self.tier)  # is a copy
        refused = change() or self._settle(evaluate)
        if refused is not None:
            self.lines = lines
            self.order_discount, self.coupons, self.priced, self.customer, self.tier = before
        return refused

    def add_coupon(self, coupon: Coupon) -> Rejected | None:
        """Hold a coupon (reserved at the hub, or a public code): its promotion applies from now when its rules
        allow. The same code twice, or a sixth coupon, is refused."""
        def change() -> Rejected | None:
            if any(held.code == coupon.code for held in self.coupons):
                return Rejected("conflict", f"coupon {coupon.code} is already on this sale")
            if len(self.coupons) >= promoting.MAX_COUPONS:
                return Rejected("conflict", f"a sale holds at most {promoting.MAX_COUPONS} coupons")
            self.coupons.append(coupon)
            return None
        return self._changing("adding coupons", change)

    def drop_coupon(self, coupon: Coupon) -> None:
        """Take a coupon off even after payment began (its hold at the hub ended and could not be renewed: the sale
        cannot rely on it): the promotions are evaluated again, and what is due grows by what it gave."""
        if coupon in self.coupons:
            self.coupons.remove(coupon)
            self._settle()

    def renewed_coupon(self, coupon: Coupon) -> None:
        """The hub extended `coupon`'s hold: keep its new end."""
        self.coupons = [coupon if held.redemption == coupon.redemption else held for held in self.coupons]

    def may_add_coupon(self, code: str) -> Rejected | None:
        """Whether a coupon may be added now (asked before the hub reserves one)."""
        if (refused := self._frozen("adding coupons")) is not None:
            return refused
        if not self.lines:
            return Rejected("conflict", "the cart is empty: scan the items before the coupon")
        if any(held.code == code for held in self.coupons):
            return Rejected("conflict", f"coupon {code} is already on this sale")
        if len(self.coupons) >= promoting.MAX_COUPONS:
            return Rejected("conflict", f"a sale holds at most {promoting.MAX_COUPONS} coupons")
        return None

    def remove_coupon(self, code: str) -> Coupon | Rejected:
        """Take a coupon off (the caller releases it at the hub)."""
        found = next((held for held in self.coupons if held.code == code), None)
        if found is None:
            return Rejected("not_found", f"coupon {code} is not on this sale")
        return self._changing("taking coupons off", lambda: self.coupons.remove(found)) or found

    def reprice(self) -> Rejected | None:
        """Evaluate the promotions again without another change (a customer attached, the till's own nudge)."""
        return self._changing("changing the sale", lambda: None)

    def line(self, line_id: str) -> Line | Rejected:
        found = next((line for line in self.lines if line.id == line_id), None)
        return found if found is not None else Rejected("not_found", f"the cart has no line {line_id!r}")

    def add(self, offer: Offer, quantity: int) -> Rejected | None:
        """Add `quantity` of `offer`: to a line of the same SKU and lock that has no override or discount of
        its own, else as a new line."""
        def change() -> Rejected | None:
            if offer.currency != self.currency:
                return Rejected("invalid", f"{offer.name} is priced in {offer.currency}, the till sells in "
                                           f"{self.currency}: the store's currency and the hub's catalog disagree")
            line = next((line for line in self.lines if line.plain() and _same_lock(line.offer, offer)), None)
            if line is None:
                self.lines.append(line := Line(offer, 0))
            if line.quantity + quantity > validators.MAX_LINE_QUANTITY:
                return Rejected("invalid", f"quantity would exceed {validators.MAX_LINE_QUANTITY}")
            line.quantity += quantity
            return None
        return self._changing("adding lines", change)

    def set_quantity(self, line_id: str, quantity: int) -> Rejected | None:
        """Set a line's quantity (1 to MAX_LINE_QUANTITY: a line to drop is removed, not set to 0)."""
        def change() -> Rejected | None:
            if not 1 <= quantity <= validators.MAX_LINE_QUANTITY:
                return Rejected("invalid", f"quantity must be from 1 to {validators.MAX_LINE_QUANTITY}")
            if isinstance(line := self.line(line_id), Rejected):
                return line
            line.quantity = quantity
            return None
        return self._changing("changing quantities", change)

    def remove(self, line_id: str) -> Rejected | None:
        """Take a line off the cart, by its id."""
        def change() -> Rejected | None:
            if isinstance(line := self.line(line_id), Rejected):
                return line
            self.lines.remove(line)
            if not self.lines:
                self.order_discount = None  # nothing left to discount
            return None
        return self._changing("removing lines", change)

    def override_price(self, line_id: str, unit_minor: int, reason: str, approver: str) -> Line | Rejected:
        """Sell a line at `unit_minor` instead of its list price (the lock stays, to show what it was); the
        line, as it was before, for the audit."""
        found = self.line(line_id)

        def change() -> Rejected | None:
            if isinstance(found, Rejected):
                return found
            found.override = None if unit_minor == found.offer.unit_minor else Override(unit_minor, reason, approver)
            return None
        before = replace(found) if isinstance(found, Line) else found
        return self._changing("overriding prices", change) or before

    def discount_line(self, line_id: str, discount: Discount | None) -> Rejected | None:
        """Set (or, with None, take off) a line's discount: at most 100 % and at most the line's amount."""
        def change() -> Rejected | None:
            if isinstance(line := self.line(line_id), Rejected):
                return line
            if discount is None and line.discount is None:
                return Rejected("conflict", f"{line.offer.name} has no discount to take off")
            line.discount = discount
            return None
        return self._changing("changing discounts", change)

    def discount_order(self, discount: Discount | None) -> Rejected | None:
        """Set (or, with None, take off) the order discount, shared over the lines by their amounts."""
        def change() -> Rejected | None:
            if discount is None and self.order_discount is None:
                return Rejected("conflict", "the cart has no order discount to take off")
            if discount is not None and not self.lines:
                return Rejected("conflict", "the cart is empty: scan at least one item before a discount")
            self.order_discount = discount
            return None
        return self._changing("changing discounts", change)

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

    def may_pay_by_qr(self, amount: int) -> Rejected | None:
        """Whether a QR payment of `amount` may start now (asked before the hub is asked for one: actors.till.qr)."""
        return self._may_tender() or self.tenders.may_pay_by_qr(amount, self.due().minor)

    def may_redeem(self, amount: int, method: str) -> Rejected | None:
        """Whether a points or gift card tender of `amount` may be taken now (asked before the hub: actors.till.rewards);
        a tender id the cart already took is the caller's to answer."""
        return self._may_tender() or self.tenders.may_redeem(amount, self.due().minor, method)

    def void_tenders(self) -> list[Tender] | Rejected:
        """Give back every tender taken: cash goes back by hand; the approved cards are returned, for the till
        to reverse at the terminal. Refused while a card is pending (cancel it first)."""
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self.tenders.pending() is not None:
            return Rejected("conflict", self.tenders.pending_message())
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
            return Rejected("conflict", self.tenders.pending_message())
        if self.is_empty():
            return Rejected("conflict", "the cart is already empty")
        return None

    def unapplied_coupons(self) -> list[Coupon]:
        """The coupons whose promotion gives nothing to this cart (left off the sale, and released)."""
        return [coupon for coupon in self.coupons if not self._applied(coupon)]

    def is_v5(self) -> bool:
        """Whether the sale is a sale.completed v5: a customer, a promotion, a coupon, or a points or gift card
        tender (every other sale stays v3, or v4 with a QR tender)."""
        return (self.customer is not None or bool(self.priced.applied) or bool(self.coupons)
                or any(tender.method in ("points", "gift_card") for tender in self.tenders.items))

    def checkout(self, till: str, session: str, cashier: str,
                 drawer_session: str | None = None) -> dict[str, Any] | Rejected:
        """The sale.completed body (v5 when is_v5, with customer, promotions_version and the applied coupons;
        else v3, v4 by its tenders), once everything is paid (a free cart, total 0, needs no tender); the
        cart is SAVING from then on, until the outbox answers (sold, or saving_refused). `drawer_session`:
        the till's open drawer session, left out when it has none."""
        if not self.lines:
            return Rejected("conflict", "the cart is empty: nothing to complete")
        if self.tenders.pending() is not None:
            return Rejected("conflict", self.tenders.pending_message())
        if (due := self.due()).minor > 0:
            return Rejected("conflict", f"{due.format()} is still due: take a tender first")
        self.saving = True
        body: dict[str, Any] = {"till": till, "session": session, "cashier": cashier, "currency": self.currency}
        if drawer_session is not None:
            body["drawer_session"] = drawer_session
        v5 = self.is_v5()
        if v5 and self.customer is not None:
            body["customer"] = {"id": self.customer}
        body["lines"] = [line.to_wire() for line in self.lines]
        if (order_discount := self._order_discount_wire()) is not None:
            body["order_discount"] = order_discount
        if v5:
            body["promotions_version"] = self.priced.version
            if coupons := [coupon.to_wire() for coupon in self.coupons if self._applied(coupon)]:
                body["coupons"] = coupons
        body.update({
            "total": self.total().to_wire(), "tax_total": self.tax_total().to_wire(),
            "tenders": self.tenders.to_wire(),
            "change": self.change().to_wire(),
        })
        return body

    def saving_refused(self) -> None:
        """The outbox refused the sale (nothing written): the cart may change again."""
        self.saving = False

    def to_saved(self) -> dict[str, Any]:
        """The cart as the till saves it: its lines with the promotions they were priced at (and the version), so a
        restarted till shows and sells what the customer was shown; its coupons."""
        return {"id": self.id, "tenders": self.tenders.to_saved(), "lines": [line.to_saved() for line in self.lines],
                "order_discount": None if self.order_discount is None else self.order_discount.to_saved(),
                "coupons": [coupon.to_wire() for coupon in self.coupons],
                "promotions": {"version": self.priced.version,
                               "applied": [promoting.applied_to_saved(applied) for applied in self.priced.applied]},
                "customer": self.customer, "tier": self.tier}


def _saved_discount(where: str, raw: Any) -> Discount | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise validators.Invalid(where, "must be an object")
    found = discount(validators.token(f"{where} kind", raw.get("kind")),
                     validators.integer(f"{where} value", raw.get("value"), 1, validators.MAX_MINOR),
                     validators.text(f"{where} reason", raw.get("reason")))
    if isinstance(found, Rejected):
        raise validators.Invalid(where, found.message)
    return found


def _saved_line(where: str, raw: Any, currency: str) -> Line:
    """A saved line: its price lock, quantity, override and discount, each field checked as the wire checks
    it. A line saved before v3 (no id, attributes, override or discount) comes back with a new id."""
    if not isinstance(raw, dict):
        raise validators.Invalid(where, "must be an object")
    if not isinstance(raw.get("included"), bool):
        raise validators.Invalid(f"{where} included", "must be true or false (a line saved before price locks "
                                                      "has none: scan it again)")
    attributes = raw.get("attributes", [])
    if not isinstance(attributes, list) or len(attributes) > MAX_ATTRIBUTES or not all(
            isinstance(pair, list) and len(pair) == 2 for pair in attributes):
        raise validators.Invalid(f"{where} attributes", f"must be at most {MAX_ATTRIBUTES} [name, value] pairs")
    offer = Offer(sku=validators.token(f"{where} sku", raw.get("sku")),
                  name=validators.text(f"{where} name", raw.get("name")),
                  catalog_version=validators.integer(f"{where} catalog_version", raw.get("catalog_version"), 0,
                                                     validators.MAX_BIGINT),
                  unit_minor=validators.minor_units(f"{where} unit", raw.get("unit")), currency=currency,
                  tax_class=validators.token(f"{where} tax_class", raw.get("tax_class")),
                  rate_ppm=validators.integer(f"{where} rate_ppm", raw.get("rate_ppm"), 0, PPM),
                  included=raw["included"],
                  attributes=tuple((validators.text(f"{where} attribute", name),
                                    validators.text(f"{where} attribute value", value)) for name, value in attributes),
                  category="" if raw.get("category", "") == "" else validators.category(f"{where} category",
                                                                                        raw["category"]))
    line = Line(offer, validators.integer(f"{where} quantity", raw.get("quantity"), 1, validators.MAX_LINE_QUANTITY))
    if "line" in raw:
        line.id = validators.token(f"{where} line", raw["line"], max_length=LINE_ID_LENGTH)
    override = raw.get("override")
    if override is not None:
        if not isinstance(override, dict):
            raise validators.Invalid(f"{where} override", "must be an object")
        line.override = Override(validators.minor_units(f"{where} override unit", override.get("unit")),
                                 validators.text(f"{where} override reason", override.get("reason")),
                                 validators.text(f"{where} override approver", override.get("approver")))
    line.discount = _saved_discount(f"{where} discount", raw.get("discount"))
    line.promotions = promoting.saved_given(f"{where} promotions", raw.get("promotions", []))
    return line


def restore(saved: Mapping[str, Any], currency: str, max_change: int) -> tuple[Cart, list[str]]:
    """A cart from its saved form, every field checked as if it came from a client; with the
    problems found (for the log). Lines come back at their saved price lock, override, promotions and
    discounts, whatever the catalog says now (the promotions are evaluated again at the cart's next change),
    with its coupons and customer. What fails is dropped: a line that is malformed or has no lock (or whose
    discount no longer fits it), an order discount that no longer fits the cart, a tender the rules
    would refuse now, a tender id that is not one. The id must be a UUID, or the cart cannot be
    taken up at all (Invalid)."""
    cart = Cart(currency, max_change, validators.uuid_text("saved cart id", saved.get("id")))
    problems: list[str] = []
    _restore_promotions(cart, saved, problems)
    lines = saved.get("lines")
    for index, raw in enumerate(lines if isinstance(lines, list) else []):
        where = f"saved line {index}"
        try:
            line = _saved_line(where, raw, currency)
        except validators.Invalid as exc:
            problems.append(str(exc))
            continue
        if any(other.id == line.id for other in cart.lines):
            problems.append(f"{where} line: the id of an earlier line (a copy of it, not sold twice)")
            continue
        if (refused := cart._changing("restoring", lambda line=line: cart.lines.append(line), evaluate=False)):
            problems.append(f"{where}: {refused.message}")
    try:
        order_discount = _saved_discount("saved order discount", saved.get("order_discount"))
    except validators.Invalid as exc:
        problems.append(str(exc))
        order_discount = None
    if order_discount is not None and (refused := cart._changing(
            "restoring", lambda: setattr(cart, "order_discount", order_discount), evaluate=False)) is not None:
        problems.append(f"saved order discount: {refused.message}")
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


def _restore_promotions(cart: Cart, saved: Mapping[str, Any], problems: list[str]) -> None:
    """The saved cart's coupons, customer and last evaluation (what its lines' promotions came from)."""
    coupons = saved.get("coupons", [])
    for index, raw in enumerate(coupons[:promoting.MAX_COUPONS] if isinstance(coupons, list) else []):
        try:
            cart.coupons.append(promoting.saved_coupon(f"saved coupon {index}", raw))
        except validators.Invalid as exc:
            problems.append(str(exc))
    try:
        if saved.get("customer") is not None:
            cart.customer = validators.token("saved customer", saved["customer"])
            cart.tier = None if saved.get("tier") is None else tier_name("saved tier", saved["tier"])
        cart.priced = promoting.saved_priced(saved.get("promotions"))
    except validators.Invalid as exc:
        problems.append(str(exc))
