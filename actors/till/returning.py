"""A till's return cart: items taken back (from a sale found by its receipt, or without one), an exchange's new
lines, and how the net is settled. A domain model without I/O, like actors.till.cart.

Each item taken back is refunded its original line's amount pro rata (novapos.pricing.pro_rata), counting the
units returned before, so every return of a line sums to the line's amount exactly; the store's journal checks
the same figure when the return is committed. Without a receipt the item is scanned and refunded at today's
price. The store's policy (novapos.config.returns) says which conditions it takes, the restocking fee kept per
condition, and where a refund goes. The net (new lines - returned + fee) is paid in cash when positive, and
given back when negative: to the original card (or QR payment, through the hub) when the policy says so and the
sale was paid that way, else cash; a cashier may send a QR payment's refund to cash instead (`cash_instead`: the hub
is away).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actors.catalog.local import Offer
from actors.payments.asking import UNCONFIRMED
from actors.protocol import Rejected
from actors.returns.lookup import checked_sale
from actors.till.cart import SAVING_MESSAGE, Line, _saved_line
from actors.till.customer_screen import WIDTH as SCREEN_WIDTH
from novapos import validators
from novapos.config.returns import BP, CONDITIONS, ReturnsPolicy
from novapos.money import Money
from novapos.pricing import PPM, line_tax, pro_rata, round_half_up
from novapos.wire.ids import uuid7

DAY_MS = 86_400_000
UNTAXED = ("untaxed", 0, True)
"""The tax rule of a line sold before price locks (sale.completed v1): none recorded, none refunded."""

NO_RETURN: dict[str, Any] = {"mode": "sale", "original": None, "returned": [], "restocking_fee": None, "refund": None,
                             "refund_to": None, "refund_card": None, "refund_points": None, "refund_gift_card": None}
"""The return fields of a till's state while it sells (the same keys in either mode)."""


@dataclass
class Taken:
    """Units taken back: of an original line (`line_no`), or scanned without a receipt (line_no None)."""
    line_no: int | None
    sku: str
    name: str
    quantity: int
    unit_minor: int
    tax: tuple[str, int, bool]
    condition: str
    amount: int = 0  # its refund before tax: set by ReturnCart._price


@dataclass
class ReturnCart:
    currency: str
    max_change: int
    policy: ReturnsPolicy
    sale: dict[str, Any] | None
    """The original sale (actors.returns.journal.find_sale's shape); None: a return without a receipt."""
    approver: str | None = None
    reason: str | None = None
    id: str = field(default_factory=lambda: str(uuid7()))
    taken: list[Taken] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    tendered: list[tuple[str, int]] = field(default_factory=list)
    """(tender id, cash amount) taken."""
    tender_ids: list[str] = field(default_factory=list)
    """Every tender id the page sent, given back or not: a resend is taken once."""
    saving: bool = False
    card_refund: dict[str, Any] | None = None
    """The card refund the terminal made for this return (ReturnCart.checkout's `card_refund`), once made; or the
    refund to the QR payment the hub made ({id, method: "qr", amount, qr: {intent, provider_ref}})."""
    cash_instead: bool = False
    """The cashier sends the refund the policy would give back to a QR payment to cash instead."""
    gift_card_refund: dict[str, Any] | None = None
    """The refund the hub put on a gift card for this return ({id, amount, card (masked), redemption, balance_minor}),
    once made (gift_card_refund)."""
    gift_card_to_cash: bool = False
    """The cashier sends the refund the policy gives back to a gift card to cash instead (no card, or no hub)."""
    gift_card_asked: str | None = None
    """The (masked) gift card a refund was asked for and the hub has not answered either way (saved before it is
    asked): while set the hub may have refunded the card, so the refund is only asked again (the same card, the same
    redemption: made once), never sent to cash, and the return is neither changed nor cancelled."""
    hub_refund: str | None = None
    """The refund key of a refund asked of the hub and not yet answered either way (saved before it is asked): while
    set, the refund is only asked of the hub again under this key, never made at the terminal or in cash, and the
    return is neither changed nor cancelled."""

    @classmethod
    def for_sale(cls, sale: dict[str, Any], currency: str, max_change: int, policy: ReturnsPolicy, now_ms: int,
                 approver: str | None) -> ReturnCart | Rejected:
        """A return of `sale`, refused when the policy's days are past or nothing is left to return."""
        if sale["currency"] != currency:
            return Rejected("conflict", f"that sale was in {sale['currency']}, this till takes {currency}")
        if now_ms - sale["ts"] > policy.days * DAY_MS:
            day = datetime.fromtimestamp(sale["ts"] / 1000, UTC).strftime("%Y-%m-%d")
            return Rejected("conflict", f"that sale was on {day}, more than the {policy.days} days within which the "
                                        "store takes items back")
        if not any(line["returnable"] for line in sale["lines"]):
            return Rejected("conflict", "every item of that sale was returned already")
        return cls(currency, max_change, policy, sale, approver)

    # --- what the return adds up to

    def _fee(self, taken: Taken) -> int:
        return round_half_up(self._adds(taken) * self.policy.restocking_fee_bp.get(taken.condition, 0), BP)

    @staticmethod
    def _tax(taken: Taken) -> int:
        return line_tax(taken.amount, taken.tax[1], taken.tax[2])

    def _adds(self, taken: Taken) -> int:
        return taken.amount + (0 if taken.tax[2] else self._tax(taken))

    def _price(self) -> None:
        """Each item's refund: pro rata of its original line, after the units returned before and those taken
        earlier in this cart (the order the journal checks them in); today's price without a receipt."""
        so_far: dict[int, int] = {}
        for taken in self.taken:
            if taken.line_no is None:
                taken.amount = taken.unit_minor * taken.quantity
                continue
            line = self._line(taken.line_no)
            assert line is not None
            already = line["quantity"] - line["returnable"] + so_far.get(taken.line_no, 0)
            taken.amount = pro_rata(line["amount"], line["quantity"], already, taken.quantity)
            so_far[taken.line_no] = so_far.get(taken.line_no, 0) + taken.quantity

    def returned_total(self) -> int:
        return sum(self._adds(taken) for taken in self.taken)

    def fee(self) -> int:
        return sum(self._fee(taken) for taken in self.taken)

    def total(self) -> int:
        """New lines - returned + fee: negative when the store pays back."""
        return sum(line.adds for line in self.lines) - self.returned_total() + self.fee()

    def paid(self) -> int:
        return sum(amount for _id, amount in self.tendered)

    def due(self) -> int:
        return max(0, self.total() - self.paid())

    def change(self) -> int:
        return max(0, self.paid() - self.total()) if self.tendered else 0

    def refund(self) -> int:
        return max(0, -self.total())

    def refund_method(self) -> tuple[str, str | None]:
        """("card", the original card payment's reference) when the policy refunds to the original tender and the
        sale was paid by card (and that card has something left to refund); ("qr", the QR payment's tender id) the
        same way for a QR payment; else ("cash", None)."""
        card = self._original_card()
        if card is not None and self._card_left(card) > 0:
            return card["method"], card["reference"]
        return "cash", None

    def card_part(self) -> int:
        """What of the refund goes back to the original card: never more than that card paid, less what earlier
        returns of the sale refunded (card first, so their value counts against the card); the rest is cash. A
        split sale's card is thus never refunded the cash part too (an acquirer refuses a refund above its payment,
        and the drawer would keep the cash)."""
        card = self._original_card()
        return 0 if card is None else min(self.refund(), self._card_left(card))

    def refund_in_cash(self) -> Rejected | None:
        """Send the refund the policy gives back to a QR payment, or to a gift card, to cash instead (the hub is away,
        or the customer has not the card with them)."""
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self.hub_refund is not None:
            return Rejected("conflict", UNCONFIRMED)
        if (unsure := self.gift_card_unconfirmed()) is not None:
            return unsure
        to_qr = self.card_refund is None and self.refund_method()[0] == "qr"
        to_gift_card = self.gift_card_refund is None and self.gift_card_part() > 0
        if not to_qr and not to_gift_card:
            return Rejected("conflict", "this return's refund goes to no QR payment or gift card (or is made already)")
        self.cash_instead = self.cash_instead or to_qr
        self.gift_card_to_cash = self.gift_card_to_cash or to_gift_card
        return None

    def gift_card_unconfirmed(self) -> Rejected | None:
        """The refusal while a gift card refund is asked and unconfirmed (gift_card_asked), else None."""
        if self.gift_card_asked is None or self.gift_card_refund is not None:
            return None
        return Rejected("conflict", f"the hub has not confirmed the refund to gift card {self.gift_card_asked} and may "
                                    "have made it: scan the same card again (it is refunded once, whatever happened)")

    def _original_card(self) -> dict[str, Any] | None:
        if self.policy.refund_to != "original" or self.sale is None:
            return None
        method = ("card",) if self.cash_instead else ("card", "qr")
        return next((t for t in self.sale["tenders"] if t["method"] in method and t.get("reference")), None)

    def _earlier(self) -> int:
        """What earlier returns of the sale refunded (the lines' units no longer returnable, pro rata)."""
        assert self.sale is not None
        return sum(pro_rata(line["amount"], line["quantity"], 0,
                            min(line["quantity"], max(0, line["quantity"] - line["returnable"])))
                   for line in self.sale["lines"])

    def _card_left(self, card: dict[str, Any]) -> int:
        return max(0, int(card["amount"]) - self._earlier())

    def _points_tender(self) -> dict[str, Any] | None:
        if self.policy.refund_to != "original" or self.sale is None or "customer" not in self.sale:
            return None
        return next((t for t in self.sale["tenders"] if t["method"] == "points" and t.get("points")), None)

    def points_part(self) -> tuple[int, int]:
        """(points, minor units) of the refund given back to the customer's points (return.completed v3): what is
        left after the card's part, at most what the points paid less what earlier returns refunded beyond the card
        (card first, then points, as this return), in whole points at the value a point had in the sale; the rest
        is cash."""
        tender = self._points_tender()
        if tender is None:
            return 0, 0
        card = self._original_card()
        beyond_card = max(0, self._earlier() - (0 if card is None else int(card["amount"])))
        left = max(0, int(tender["amount"]) - beyond_card)
        minor = min(self.refund() - self.card_part(), left)
        value = int(tender["amount"]) // int(tender["points"])  # a points tender is whole points x their value
        if value < 1:  # not a sale a till makes (a hub's answer): what a point was worth is unknown, so cash
            return 0, 0
        points = minor // value
        return points, points * value

    def gift_card_part(self) -> int:
        """What of the refund goes back to the gift card the sale was paid with (through the hub, to a card the
        cashier scans): after the card's and the points' parts, at most what the gift card paid less what earlier
        returns refunded beyond those (in that order); none once sent to cash."""
        if self.policy.refund_to != "original" or self.sale is None or self.gift_card_to_cash:
            return 0
        tender = next((t for t in self.sale["tenders"] if t["method"] == "gift_card"), None)
        if tender is None:
            return 0
        card = self._original_card()
        points = self._points_tender()
        before = (0 if card is None else int(card["amount"])) + (0 if points is None else int(points["amount"]))
        left = max(0, int(tender["amount"]) - max(0, self._earlier() - before))
        return min(self.refund() - self.card_part() - self.points_part()[1], left)

    def _line(self, line_no: int) -> dict[str, Any] | None:
        assert self.sale is not None
        return next((line for line in self.sale["lines"] if line["line_no"] == line_no), None)

    def _taken_of(self, line_no: int) -> int:
        return sum(taken.quantity for taken in self.taken if taken.line_no == line_no)

    # --- what the cashier does

    def _frozen(self) -> Rejected | None:
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self.card_refund is not None:
            return Rejected("conflict", "the card was refunded already: complete the return")
        if self.gift_card_refund is not None:
            return Rejected("conflict", "the gift card was refunded already: complete the return")
        if self.hub_refund is not None:
            return Rejected("conflict", UNCONFIRMED)
        if (unsure := self.gift_card_unconfirmed()) is not None:
            return unsure
        if self.tendered:
            return Rejected("conflict", "payment has started: void the tenders (give the cash back) before changing "
                                        "the return")
        return None

    def _condition(self, condition: str) -> Rejected | None:
        if condition not in self.policy.conditions:
            return Rejected("conflict", f"the store does not take items back {condition}: its policy takes "
                                        f"{', '.join(self.policy.conditions)}")
        return None

    def take_line(self, line_no: int, quantity: int, condition: str) -> Rejected | None:
        """Take back `quantity` units of the original sale's line `line_no`, in `condition`."""
        if (refused := self._frozen() or self._condition(condition)) is not None:
            return refused
        if self.sale is None:
            return Rejected("conflict", "this return has no receipt: scan the items brought back instead")
        line = self._line(line_no)
        if line is None:
            return Rejected("not_found", f"the sale has no line {line_no} (it has {len(self.sale['lines'])})")
        left = line["returnable"] - self._taken_of(line_no)
        if quantity > left:
            return Rejected("conflict", f"{line['name']} (line {line_no}): only {left} of {line['quantity']} may "
                                        f"still be returned" + (", the rest was returned already"
                                                                if left < line["quantity"] else ""))
        tax = UNTAXED if line["tax_class"] is None else (line["tax_class"], line["rate_ppm"], line["included"])
        self.taken.append(Taken(line_no, line["sku"], line["name"], quantity, line["unit_minor"], tax, condition))
        self._price()
        return None

    def take_item(self, offer: Offer, quantity: int, condition: str) -> Rejected | None:
        """Without a receipt: an item scanned now, refunded at today's price."""
        if (refused := self._frozen() or self._condition(condition)) is not None:
            return refused
        if self.sale is not None:
            return Rejected("conflict", "this return has a receipt: pick the lines of the sale")
        if self.returned_total() + offer.unit_minor * quantity * 2 > validators.MAX_MINOR:
            return Rejected("invalid", "the return would be more than a till can take: split it")
        self.taken.append(Taken(None, offer.sku, offer.name, quantity, offer.unit_minor,
                                (offer.tax_class, offer.rate_ppm, offer.included), condition))
        self._price()
        return None

    def add(self, offer: Offer, quantity: int) -> Rejected | None:
        """An exchange's new line, scanned as for a sale."""
        if (refused := self._frozen()) is not None:
            return refused
        if offer.currency != self.currency:
            return Rejected("invalid", f"{offer.name} is priced in {offer.currency}, the till sells in {self.currency}")
        if self.total() + Line(offer, quantity).adds > validators.MAX_MINOR:
            return Rejected("invalid", "the exchange's total would be more than a till can take")
        self.lines.append(Line(offer, quantity))
        return None

    def remove(self, sku: str) -> Rejected | None:
        """Take off the last new line or item taken back of this SKU."""
        if (refused := self._frozen()) is not None:
            return refused
        line = next((line for line in reversed(self.lines) if line.sku == sku), None)
        if line is not None:
            self.lines.remove(line)
            return None
        taken = next((taken for taken in reversed(self.taken) if taken.sku == sku), None)
        if taken is not None:
            self.taken.remove(taken)
            self._price()
            return None
        return Rejected("not_found", f"the return has no line for {sku!r}")

    def tender_cash(self, amount: int, tender_id: str | None) -> Rejected | None:
        if tender_id is not None and tender_id in self.tender_ids:
            return None
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self.due() == 0:
            return Rejected("conflict", "nothing is due from the customer: complete the return")
        if amount - self.due() > self.max_change:
            return Rejected("invalid", "that would need more change than a till gives back: check the amount typed")
        self.tendered.append((tender_id or str(uuid7()), amount))
        if tender_id is not None:
            self.tender_ids.append(tender_id)
        return None

    def give_cash_back(self) -> Rejected | None:
        if self.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if not self.tendered:
            return Rejected("conflict", "no tender has been taken for this return")
        self.tendered.clear()
        return None

    def summary(self) -> dict[str, Any]:
        """The till state's return fields (mode "return")."""
        money = self._money
        method, _reference = self.refund_method()
        return {"mode": "return", "cart": self.id, "stage": "saving" if self.saving else
                ("paying" if self.tendered else "scanning"),
                "original": None if self.sale is None else {"order": self.sale["order"], "store": self.sale["store"],
                                                            "lines": self.sale["lines"]},
                "returned": [self._returned_wire(taken) for taken in self.taken],
                "lines": [line.to_wire() for line in self.lines], "restocking_fee": money(self.fee()),
                "total": money(self.total()), "tax_total": money(sum(line.tax.minor for line in self.lines)
                                                                 - sum(self._tax(t) for t in self.taken)),
                "tendered": money(self.paid()), "due": money(self.due()), "change": money(self.change()),
                "refund": money(self.refund()), "refund_to": method, "refund_card": money(self.card_part()),
                "refund_points": money(self.points_part()[1]), "refund_gift_card": money(self.gift_card_part())}

    def screen(self) -> tuple[str, str]:
        """What the customer display shows during the return: what came back, and what is paid back or due."""
        items = sum(taken.quantity for taken in self.taken)
        top = f"Return: {items} item{'s' if items != 1 else ''}"
        if self.due():
            return top, _screen_row("DUE", self.due(), self.currency)
        return top, _screen_row("REFUND" if self.refund() else "TOTAL", self.refund(), self.currency)

    def _money(self, minor: int) -> dict[str, Any]:
        return {"minor": minor, "currency": self.currency}

    def _returned_wire(self, taken: Taken) -> dict[str, Any]:
        item: dict[str, Any] = {} if taken.line_no is None else {"original_line": taken.line_no}
        return {**item, "sku": taken.sku, "name": taken.name, "quantity": taken.quantity,
                "unit_price": self._money(taken.unit_minor), "amount": self._money(taken.amount),
                "tax": {"class": taken.tax[0], "rate_ppm": taken.tax[1], "included": taken.tax[2],
                        "amount": self._money(self._tax(taken))},
                "condition": taken.condition, "restock": self.policy.restocks(taken.condition)}

    def checkout(self, till: str, session: str, cashier: str,
                 card_refund: dict[str, Any] | None = None) -> dict[str, Any] | Rejected:
        """The return.completed body; SAVING from then on until the outbox answers. `card_refund`: the card part
        of the refund as the terminal did it ({id, reference, original_reference, scheme, masked})."""
        if not self.taken:
            return Rejected("conflict", "nothing is taken back yet: pick the items the customer returns")
        if self.due() > 0:
            return Rejected("conflict", f"{Money(self.due(), self.currency).format()} is still due: take a tender")
        refunds: list[dict[str, Any]] = []
        card_minor = 0
        if self.refund() and card_refund is not None and card_refund.get("method") == "qr":
            card_minor = int(card_refund["amount"])  # as the hub refunded it
            refunds.append({"id": card_refund["id"], "method": "qr", "amount": self._money(card_minor),
                            "qr": dict(card_refund["qr"])})
        elif self.refund() and card_refund is not None:
            card_minor = int(card_refund.get("amount", self.card_part()))  # as the terminal refunded it
            card = {key: card_refund[key] for key in ("reference", "original_reference", "scheme", "masked")}
            refunds.append({"id": card_refund["id"], "method": "card", "amount": self._money(card_minor),
                            "card": card})
        points, points_minor = self.points_part()
        if points:
            assert self.sale is not None
            refunds.append({"id": str(uuid7()), "method": "points", "amount": self._money(points_minor),
                            "points": {"customer": self.sale["customer"], "points": points}})
        gift_minor = 0
        if (gift := self.gift_card_refund) is not None:
            gift_minor = int(gift["amount"])
            refunds.append({"id": gift["id"], "method": "gift_card", "amount": self._money(gift_minor),
                            "gift_card": {"card": gift["card"], "redemption": gift["redemption"]}})
        if self.refund() > card_minor + points_minor + gift_minor:
            refunds.append({"id": str(uuid7()), "method": "cash",
                            "amount": self._money(self.refund() - card_minor - points_minor - gift_minor)})
        body: dict[str, Any] = {
            "till": till, "session": session, "cashier": cashier, "currency": self.currency,
            "returned": [self._returned_wire(taken) for taken in self.taken],
            "restocking_fee": self._money(self.fee()), "lines": [line.to_wire() for line in self.lines],
            "tenders": [{"id": tender_id, "method": "cash", "amount": self._money(amount)}
                        for tender_id, amount in self.tendered],
            "refunds": refunds, "change": self._money(self.change()), "total": self._money(self.total())}
        if self.sale is not None:
            body["original"] = {"order": self.sale["order"], "store": self.sale["store"]}
            if "customer" in self.sale:
                body["customer"] = {"id": self.sale["customer"]}
        if self.approver is not None:
            body["approver"] = self.approver
        if self.reason is not None:
            body["reason"] = self.reason
        self.saving = True
        return body

    def to_saved(self) -> dict[str, Any]:
        """What the till saves on every change, so a restart carries on with the return (and a card refund already
        made is never forgotten)."""
        return {"id": self.id, "sale": self.sale, "approver": self.approver, "reason": self.reason,
                "taken": [{"line_no": t.line_no, "sku": t.sku, "name": t.name, "quantity": t.quantity,
                           "unit": t.unit_minor, "tax": list(t.tax), "condition": t.condition} for t in self.taken],
                "lines": [line.to_saved() for line in self.lines], "tendered": [list(t) for t in self.tendered],
                "tender_ids": list(self.tender_ids), "card_refund": self.card_refund, "cash_instead": self.cash_instead,
                "hub_refund": self.hub_refund, "gift_card_refund": self.gift_card_refund,
                "gift_card_to_cash": self.gift_card_to_cash, "gift_card_asked": self.gift_card_asked}


def restore_return(saved: Mapping[str, Any], currency: str, max_change: int,
                   policy: ReturnsPolicy) -> tuple[ReturnCart, list[str]]:
    """A return cart from its saved form, every field checked as if a client sent it (Invalid when it cannot be
    taken up at all: its id, its sale, its card refund or the hub refund it waits for), with the problems of the parts
    dropped, for the log."""
    v = validators
    raw_sale = saved.get("sale")
    sale = None if raw_sale is None else checked_sale(raw_sale if isinstance(raw_sale, dict) else {})
    card = saved.get("card_refund")
    if isinstance(card, dict) and card.get("method") == "qr":
        card = _saved_qr_refund(card)
    elif card is not None:
        if not isinstance(card, dict):
            raise v.Invalid("saved card refund", "must be an object")
        card = {"id": v.uuid_text("saved card refund id", card.get("id")),
                **{key: v.text(f"saved card refund {key}", card.get(key), max_length=64)
                   for key in ("reference", "original_reference", "scheme", "masked")},
                **({"amount": v.integer("saved card refund amount", card["amount"], 1, 10**12)}
                   if "amount" in card else {})}  # saved before refunds were split: the whole refund
    approver, reason = saved.get("approver"), saved.get("reason")
    cart = ReturnCart(currency, max_change, policy, sale,
                      None if approver is None else v.text("saved approver", approver, max_length=64),
                      None if reason is None else v.text("saved reason", reason, max_length=500),
                      v.uuid_text("saved return id", saved.get("id")))
    problems: list[str] = []
    for index, raw in enumerate(_list(saved.get("taken"))):
        try:
            taken = _saved_taken(f"saved return item {index}", raw)
        except v.Invalid as exc:
            problems.append(str(exc))
            continue
        if taken.line_no is not None:  # checked against the sale again, and priced
            refused = cart.take_line(taken.line_no, taken.quantity, taken.condition)
        elif sale is not None:
            refused = Rejected("invalid", "an item without its line in a return with a receipt")
        else:
            cart.taken.append(taken)
            refused = None
        if refused is not None:
            problems.append(f"saved return item {index}: {refused.message}")
    for index, raw in enumerate(_list(saved.get("lines"))):
        try:
            line = _saved_line(f"saved return line {index}", raw, currency)  # with its id, as saved
        except v.Invalid as exc:
            problems.append(str(exc))
            continue
        cart.lines.append(line)
    cart._price()
    cart.card_refund = card  # after the items: a card refund freezes the cart
    cart.cash_instead = saved.get("cash_instead") is True
    cart.gift_card_to_cash = saved.get("gift_card_to_cash") is True
    gift = saved.get("gift_card_refund")
    if isinstance(gift, dict):
        cart.gift_card_refund = {"id": v.uuid_text("saved gift card refund id", gift.get("id")),
                                 "amount": v.integer("saved gift card refund amount", gift.get("amount"), 1, v.MAX_MINOR),
                                 "card": v.text("saved gift card", gift.get("card"), max_length=32),
                                 "redemption": v.uuid_text("saved gift card redemption", gift.get("redemption")),
                                 "balance_minor": v.minor_units("saved gift card balance", gift.get("balance_minor"))}
    asked = saved.get("gift_card_asked")
    cart.gift_card_asked = None if asked is None else v.text("saved gift card asked", asked, max_length=40)
    hub_refund = saved.get("hub_refund")
    cart.hub_refund = None if hub_refund is None else v.uuid_text("saved hub refund", hub_refund)
    for index, raw in enumerate(_list(saved.get("tendered"))):
        try:
            if not isinstance(raw, list) or len(raw) != 2:
                raise v.Invalid(f"saved return tender {index}", "must be [id, amount]")
            cart.tendered.append((v.uuid_text(f"saved return tender {index} id", raw[0]),
                                  v.minor_units(f"saved return tender {index}", raw[1], minimum=1)))
        except v.Invalid as exc:
            problems.append(str(exc))
    for index, raw in enumerate(_list(saved.get("tender_ids"))):
        try:
            cart.tender_ids.append(v.uuid_text(f"saved return tender id {index}", raw))
        except v.Invalid as exc:
            problems.append(str(exc))
    return cart, problems


def _saved_qr_refund(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved refund to a QR payment, checked (Invalid otherwise)."""
    v = validators
    qr = saved.get("qr")
    if not isinstance(qr, dict):
        raise v.Invalid("saved QR refund", "must have its QR payment")
    return {"id": v.uuid_text("saved QR refund id", saved.get("id")), "method": "qr",
            "amount": v.integer("saved QR refund amount", saved.get("amount"), 1, v.MAX_MINOR),
            "qr": {"intent": v.token("saved QR refund intent", qr.get("intent"), max_length=64),
                   "provider_ref": v.text("saved QR refund provider_ref", qr.get("provider_ref"), max_length=64)}}


def _screen_row(label: str, minor: int, currency: str) -> str:
    amount = Money(minor, currency).format().split(" ")[0]  # no room for the currency on 20 columns
    return f"{label:<{SCREEN_WIDTH - len(amount) - 1}} {amount}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _saved_taken(where: str, raw: Any) -> Taken:
    v = validators
    if not isinstance(raw, dict):
        raise v.Invalid(where, "must be an object")
    tax = raw.get("tax")
    if not isinstance(tax, list) or len(tax) != 3 or not isinstance(tax[2], bool):
        raise v.Invalid(f"{where} tax", "must be [class, rate, included]")
    condition = raw.get("condition")
    if condition not in CONDITIONS:
        raise v.Invalid(f"{where} condition", f"must be one of {', '.join(CONDITIONS)}")
    line_no = raw.get("line_no")
    return Taken(None if line_no is None else v.integer(f"{where} line", line_no, 1, v.MAX_LINE_QUANTITY),
                 v.token(f"{where} sku", raw.get("sku")), v.text(f"{where} name", raw.get("name")),
                 v.integer(f"{where} quantity", raw.get("quantity"), 1, v.MAX_LINE_QUANTITY),
                 v.minor_units(f"{where} unit", raw.get("unit")),
                 (v.token(f"{where} tax class", tax[0]), v.integer(f"{where} tax rate", tax[1], 0, PPM), tax[2]),
                 str(condition))
