"""Versioned schemas of event bodies, shared by edge (before it commits) and hub (before it applies).

Each (type, version) is a declaration (novapos.wire.contract): its fields with their kinds and bounds, and
its named cross-field rules. The validator is generated from it, and its frozen contract file
(novapos/wire/contracts/) says what that version accepts for good: tests/test_contracts.py fails when a
declaration departs from its file. To change an event, declare version N+1 beside N (the hub keeps
accepting N while stores upgrade) and freeze it: `python -m novapos.wire.schemas`.

Every field is checked with novapos.validators, the same checks and bounds the HTTP door and the config
loader use, so a value the door let through is never refused here, and what passes here fits the hub's
columns (bigint, int, text without NUL) and its logs (no control characters, no lone surrogates).
Money fields are {"minor": int, "currency": "EUR"}: never floats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from novapos import validators
from novapos.pricing import BASIS_POINTS, PPM, allocate, line_tax, percent_of
from novapos.validators import MAX_BIGINT, MAX_LINE_QUANTITY, MAX_MINOR
from novapos.wire.contract import (
    Boolean,
    Choice,
    Currency,
    Declaration,
    Field,
    Integer,
    List,
    Map,
    Money,
    Rule,
    Schema,
    SchemaError,
    Text,
    Token,
    compile_schema,
    freeze_missing,
)

__all__ = ["DECLARATIONS", "SCHEMAS", "Schema", "SchemaError", "audit_recorded_v1", "card_approved_v1",
           "card_declined_v1", "return_completed_v1", "return_completed_v2", "sale_completed_v1", "sale_completed_v2",
           "sale_completed_v3", "sale_completed_v4",
           "sale_completed_v5", "return_completed_v3"]


def _line_amount(line: Mapping[str, Any], where: str) -> None:
    amount, unit = line["amount"]["minor"], line["unit_price"]["minor"]
    if amount != unit * line["quantity"]:
        raise SchemaError(f"{where}.amount", f"{amount} is not quantity x unit price {unit * line['quantity']}")


def _line_tax(line: Mapping[str, Any], where: str) -> None:
    tax = line["tax"]
    expected = line_tax(line["amount"]["minor"], tax["rate_ppm"], tax["included"])
    if tax["amount"]["minor"] != expected:
        raise SchemaError(f"{where}.tax.amount", f"{tax['amount']['minor']} is not the line's tax at "
                                                 f"{tax['rate_ppm']} ppm ({expected})")


def _adds(line: Mapping[str, Any]) -> int:
    """What a line adds to the total: its amount, and its tax when shelf prices exclude tax (v2)."""
    tax = line.get("tax")
    return int(line["amount"]["minor"]) + (tax["amount"]["minor"] if tax is not None and not tax["included"] else 0)


def _total(body: Mapping[str, Any], _where: str) -> None:
    total = sum(_adds(line) for line in body["lines"])
    if body["total"]["minor"] != total:
        raise SchemaError("total", f"does not equal the sum of the lines ({total})")


def _tender_when_due(body: Mapping[str, Any], _where: str) -> None:
    if not body["tenders"] and body["total"]["minor"] > 0:
        raise SchemaError("tenders", "must hold at least one tender: a sale with something to pay needs one")


def _change(body: Mapping[str, Any], _where: str) -> None:
    tendered = sum(tender["amount"]["minor"] for tender in body["tenders"])
    total, change = body["total"]["minor"], body["change"]["minor"]
    if tendered - total != change:
        raise SchemaError("change", f"must equal tendered {tendered} minus total {total}, got {change}")


def _tax_total(body: Mapping[str, Any], _where: str) -> None:
    tax_total = sum(line["tax"]["amount"]["minor"] for line in body["lines"])
    if body["tax_total"]["minor"] != tax_total:
        raise SchemaError("tax_total", f"does not equal the sum of the lines' tax ({tax_total})")


LINE_AMOUNT = Rule("line_amount", "amount.minor = quantity x unit_price.minor", _line_amount)
LINE_TAX = Rule("line_tax", "tax.amount.minor = novapos.pricing.line_tax(amount.minor, tax.rate_ppm, tax.included)",
                _line_tax)
TOTAL = Rule("total", "total.minor = sum of lines[].amount.minor (+ lines[].tax.amount.minor where not "
                      "lines[].tax.included)", _total)
TENDER_WHEN_DUE = Rule("tender_when_due", "tenders holds at least one tender when total.minor > 0", _tender_when_due)
CHANGE = Rule("change", "change.minor = sum of tenders[].amount.minor - total.minor", _change)
TAX_TOTAL = Rule("tax_total", "tax_total.minor = sum of lines[].tax.amount.minor", _tax_total)

_LINE_V1 = (Field("sku", Token()), Field("name", Text()), Field("quantity", Integer(1, MAX_LINE_QUANTITY)),
            Field("unit_price", Money()), Field("amount", Money()))
_TENDER = Map((Field("method", Choice(("cash",))), Field("amount", Money(minimum=1))))
_HEAD = (Field("till", Token()), Field("session", Token()), Field("cashier", Text()), Field("currency", Currency()))
_TAIL = (Field("total", Money()), Field("tenders", List(_TENDER)), Field("change", Money()))
_LINES = "must hold at least one line: a sale needs one"
_TAX = Map((Field("class", Token()), Field("rate_ppm", Integer(0, PPM)), Field("included", Boolean()),
            Field("amount", Money())), closed=True)

SALE_COMPLETED_V1 = Declaration("sale.completed", 1, Map((
    *_HEAD, Field("lines", List(Map(_LINE_V1, rules=(LINE_AMOUNT,)), 1, _LINES)), *_TAIL),
    rules=(TOTAL, TENDER_WHEN_DUE, CHANGE)),
    "A completed sale of the first stores: lines with their prices, no tax, no catalog version. A free sale "
    "(total 0: a free bag, a gift) may have no tender.")

SALE_COMPLETED_V2 = Declaration("sale.completed", 2, Map((
    *_HEAD,
    Field("lines", List(Map((*_LINE_V1, Field("catalog_version", Integer(0, MAX_BIGINT)), Field("tax", _TAX)),
                            rules=(LINE_AMOUNT, LINE_TAX)), 1, _LINES)),
    *_TAIL, Field("tax_total", Money())),
    rules=(TOTAL, TENDER_WHEN_DUE, CHANGE, TAX_TOTAL)),
    "A completed sale whose every line carries its price lock (P5-05): the catalog version it was priced from "
    "and its tax rule {class, rate_ppm, included, amount}; a line adds its tax to the total when shelf prices "
    "exclude tax; `tax_total` is the lines' tax.")

# sale.completed v3: discounts, price overrides, variants' attributes, tender ids and card details.

MAX_SALE_ATTRIBUTES = 3


def _v3_price(line: Mapping[str, Any], where: str) -> None:
    unit, listed = line["unit_price"]["minor"], line["list_price"]["minor"]
    if "override" not in line and unit != listed:
        raise SchemaError(f"{where}.unit_price", f"{unit} is not the list price {listed}: a line sold at another "
                                                 "price carries its override")
    if len(line["attributes"]) > MAX_SALE_ATTRIBUTES or any(len(pair) != 2 for pair in line["attributes"]):
        raise SchemaError(f"{where}.attributes", f"must be at most {MAX_SALE_ATTRIBUTES} [name, value] pairs")


def _discount_amount(discount: Mapping[str, Any], gross: int, where: str) -> int:
    """A discount's amount as its kind and value say; refused when it says otherwise or is more than `gross`."""
    value, amount = int(discount["value"]), int(discount["amount"]["minor"])
    if discount["kind"] == "percent":
        if value > BASIS_POINTS:
            raise SchemaError(f"{where}.value", f"a percentage is at most {BASIS_POINTS} basis points (100 %)")
        expected = percent_of(gross, value)
    else:
        expected = value
    if amount != expected:
        raise SchemaError(f"{where}.amount", f"{amount} is not {discount['kind']} {value} of {gross} ({expected})")
    if amount > gross:
        raise SchemaError(f"{where}.amount", f"{amount} is more than the {gross} it discounts")
    return amount


def _net(line: Mapping[str, Any]) -> int:
    """A v3 line's amount before its order discount share: unit price x quantity - its own discount."""
    gross = int(line["unit_price"]["minor"]) * int(line["quantity"])
    return gross - (int(line["discount"]["amount"]["minor"]) if "discount" in line else 0)


def _v3_line_amount(line: Mapping[str, Any], where: str) -> None:
    gross = line["unit_price"]["minor"] * line["quantity"]
    if "discount" in line:
        _discount_amount(line["discount"], gross, f"{where}.discount")
    expected = _net(line) - line["order_discount"]["minor"]
    if line["amount"]["minor"] != expected:
        raise SchemaError(f"{where}.amount", f"{line['amount']['minor']} is not unit price x quantity - discount - "
                                             f"order discount ({expected})")


def _order_discount_by(net: Callable[[Mapping[str, Any]], int]) -> Callable[[Mapping[str, Any], str], None]:
    """The order discount rule for lines whose amount before their share is `net(line)` (v3: after the line
    discount; v5: after the promotions and the line discount)."""
    def check(body: Mapping[str, Any], _where: str) -> None:
        nets = [net(line) for line in body["lines"]]
        shares = [line["order_discount"]["minor"] for line in body["lines"]]
        total = 0 if "order_discount" not in body else _discount_amount(body["order_discount"], sum(nets),
                                                                        "order_discount")
        expected = allocate(total, nets)
        if shares != expected:
            raise SchemaError("lines", f"the lines' order discount shares {shares} are not the order discount "
                                       f"{total} shared by the largest remainder rule ({expected})")
    return check


_order_discount = _order_discount_by(_net)


def _v3_tenders(body: Mapping[str, Any], _where: str) -> None:
    cash = card = 0
    for index, tender in enumerate(body["tenders"]):
        is_card = tender["method"] == "card"
        if is_card != ("card" in tender):
            raise SchemaError(f"tenders[{index}].card", "is present on a card tender, and only there")
        card, cash = (card + tender["amount"]["minor"], cash) if is_card else (card, cash + tender["amount"]["minor"])
    if body["change"]["minor"] > cash:
        raise SchemaError("change", f"{body['change']['minor']} is more than the cash tendered ({cash})")
    if card > body["total"]["minor"]:
        raise SchemaError("tenders", f"cards took {card}, more than the total {body['total']['minor']}")


V3_PRICE = Rule("v3_price", f"unit_price = list_price unless override is present; attributes holds at most "
                            f"{MAX_SALE_ATTRIBUTES} pairs of exactly 2", _v3_price)
V3_LINE_AMOUNT = Rule("v3_line_amount", "discount.amount.minor = pricing.percent_of(unit_price.minor x quantity, "
                                        "value) for a percent, = value for an amount, <= unit_price.minor x "
                                        "quantity; amount.minor = unit_price.minor x quantity - discount.amount.minor "
                                        "- order_discount.minor", _v3_line_amount)
ORDER_DISCOUNT = Rule("order_discount", "order_discount.amount.minor = percent_of(N, value) or value, <= N, where N "
                                        "is the sum of the lines' unit_price x quantity - discount; lines[]."
                                        "order_discount.minor = pricing.allocate(order_discount.amount.minor (0 when "
                                        "absent), each line's unit_price x quantity - discount)", _order_discount)
V3_TENDERS = Rule("v3_tenders", "card present iff method = card; change.minor <= sum of cash tenders; sum of card "
                                "tenders <= total.minor", _v3_tenders)

_DISCOUNT = Map((Field("kind", Choice(("percent", "amount"))), Field("value", Integer(1, MAX_MINOR)),
                 Field("reason", Text()), Field("amount", Money())), closed=True)
_LINE_V3 = Map((
    Field("line", Token()), Field("sku", Token()), Field("name", Text()),
    Field("attributes", List(List(Text(), 2, "must be a [name, value] pair"))),
    Field("quantity", Integer(1, MAX_LINE_QUANTITY)), Field("list_price", Money()), Field("unit_price", Money()),
    Field("override", Map((Field("reason", Text()), Field("approver", Text(64))), closed=True), required=False),
    Field("discount", _DISCOUNT, required=False), Field("order_discount", Money()), Field("amount", Money()),
    Field("catalog_version", Integer(0, MAX_BIGINT)), Field("tax", _TAX)),
    rules=(V3_PRICE, V3_LINE_AMOUNT, LINE_TAX))
_CARD = Map((Field("reference", Text()), Field("scheme", Token()), Field("masked", Text(32)),
             Field("auth_code", Text(32)), Field("terminal", Token()), Field("signature", Boolean())), closed=True)
_TENDER_V3 = Map((Field("id", Token()), Field("method", Choice(("cash", "card"))), Field("amount", Money(minimum=1)),
                  Field("card", _CARD, required=False)))


def _priced_sale(tender: Map, tenders: Rule) -> Map:
    """A sale with v3's priced lines (v3 and v4 differ only in what their tenders may be)."""
    return Map((
        *_HEAD, Field("drawer_session", Token(), required=False),
        Field("lines", List(_LINE_V3, 1, _LINES)),
        Field("order_discount", _DISCOUNT, required=False),
        Field("total", Money()), Field("tax_total", Money()), Field("tenders", List(tender)), Field("change", Money())),
        rules=(ORDER_DISCOUNT, TOTAL, TENDER_WHEN_DUE, CHANGE, TAX_TOTAL, tenders))


SALE_COMPLETED_V3 = Declaration("sale.completed", 3, _priced_sale(_TENDER_V3, V3_TENDERS),
    "A completed sale with what changed its prices: each line keeps its price lock (list_price, catalog version, "
    "tax rule) and its variant's attributes, and carries its price override {reason, approver}, its discount "
    "{kind, value (basis points or minor units), reason, amount} and its share of the order discount; the line's "
    "amount is what is left, and its tax is on that. Tenders carry ids, and a card tender its card details. "
    "`drawer_session` names the till's open drawer session, absent when it has none.")

# sale.completed v4: v3 plus a tender paid by QR code through the hub (its intent and the provider's reference).

_QR = Map((Field("intent", Token()), Field("provider_ref", Text(64))), closed=True)


def _tenders_with(body: Mapping[str, Any], details: tuple[str, ...], others: str) -> None:
    """Each tender of a method in `details` carries that object and no other does; change comes out of cash only;
    the other tenders (`others`, for the sentence) take at most the total."""
    cash = other = 0
    for index, tender in enumerate(body["tenders"]):
        for name in details:
            if (tender["method"] == name) != (name in tender):
                raise SchemaError(f"tenders[{index}].{name}", f"is present on a {name} tender, and only there")
        if tender["method"] == "cash":
            cash += tender["amount"]["minor"]
        else:
            other += tender["amount"]["minor"]
    if body["change"]["minor"] > cash:
        raise SchemaError("change", f"{body['change']['minor']} is more than the cash tendered ({cash})")
    if other > body["total"]["minor"]:
        raise SchemaError("tenders", f"{others} took {other}, more than the total {body['total']['minor']}")


def _v4_tenders(body: Mapping[str, Any], _where: str) -> None:
    _tenders_with(body, ("card", "qr"), "cards and QR payments")


V4_TENDERS = Rule("v4_tenders", "card present iff method = card; qr present iff method = qr; change.minor <= sum of "
                                "cash tenders; sum of card and qr tenders <= total.minor", _v4_tenders)
_TENDER_V4 = Map((Field("id", Token()), Field("method", Choice(("cash", "card", "qr"))),
                  Field("amount", Money(minimum=1)), Field("card", _CARD, required=False),
                  Field("qr", _QR, required=False)))

SALE_COMPLETED_V4 = Declaration("sale.completed", 4, _priced_sale(_TENDER_V4, V4_TENDERS),
    "A v3 sale that was paid (in part) by QR code: a tender of method `qr` carries `qr` {intent (the hub's payment "
    "intent), provider_ref (the provider's reference of the payment)}; like a card, a QR payment gives no change. "
    "A till emits v4 only for a sale with a QR tender: every other sale stays v3.")


# sale.completed v5: v4 plus a customer, promotions on lines, coupons, and tenders paid by loyalty points or gift card.

MAX_PROMOTIONS_PER_LINE = 8
_PROMOTION = Map((Field("promotion", Token()), Field("name", Text(120)), Field("amount", Money(minimum=1))),
                 closed=True)


def _promoted(line: Mapping[str, Any]) -> int:
    """A v5 line's gross after its promotions: unit price x quantity - the promotions' amounts (what a line
    discount's percentage is of)."""
    return (int(line["unit_price"]["minor"]) * int(line["quantity"])
            - sum(int(promotion["amount"]["minor"]) for promotion in line.get("promotions", ())))


def _v5_net(line: Mapping[str, Any]) -> int:
    """A v5 line's amount before its order discount share: gross - promotions - its own discount."""
    return _promoted(line) - (int(line["discount"]["amount"]["minor"]) if "discount" in line else 0)


def _v5_line_amount(line: Mapping[str, Any], where: str) -> None:
    promotions = line.get("promotions", [])
    if len(promotions) > MAX_PROMOTIONS_PER_LINE:
        raise SchemaError(f"{where}.promotions", f"holds at most {MAX_PROMOTIONS_PER_LINE} promotions")
    if len({promotion["promotion"] for promotion in promotions}) != len(promotions):
        raise SchemaError(f"{where}.promotions", "names a promotion twice")
    promoted = _promoted(line)
    if promoted < 0:
        raise SchemaError(f"{where}.promotions", "take off more than unit price x quantity")
    if "discount" in line:
        _discount_amount(line["discount"], promoted, f"{where}.discount")
    expected = _v5_net(line) - line["order_discount"]["minor"]
    if line["amount"]["minor"] != expected:
        raise SchemaError(f"{where}.amount", f"{line['amount']['minor']} is not unit price x quantity - promotions - "
                                             f"discount - order discount ({expected})")


_v5_order_discount = _order_discount_by(_v5_net)


TENDER_DETAILS = ("card", "qr", "points", "gift_card")
"""A tender of each of these methods carries an object of the same name with its details, and no other does."""


def _v5_tenders(body: Mapping[str, Any], _where: str) -> None:
    _tenders_with(body, TENDER_DETAILS, "tenders other than cash")
    customer = body.get("customer", {}).get("id")
    for index, tender in enumerate(body["tenders"]):
        if tender["method"] == "points" and tender["points"]["customer"] != customer:
            raise SchemaError(f"tenders[{index}].points.customer", "must be the sale's customer")


V5_LINE_AMOUNT = Rule("v5_line_amount", f"promotions[] names each promotion once, at most {MAX_PROMOTIONS_PER_LINE}, "
                                        "their amounts <= unit_price.minor x quantity = G; discount.amount.minor = "
                                        "pricing.percent_of(G - promotions, value) for a percent, = value for an "
                                        "amount, <= G - promotions; amount.minor = G - promotions - "
                                        "discount.amount.minor - order_discount.minor", _v5_line_amount)
V5_ORDER_DISCOUNT = Rule("v5_order_discount", "as order_discount, with each line's N = unit_price x quantity - "
                                              "promotions - discount", _v5_order_discount)
V5_TENDERS = Rule("v5_tenders", "card, qr, points and gift_card are present exactly on a tender of that method; a "
                                "points tender's customer is the sale's customer; change.minor <= sum of cash "
                                "tenders; sum of the other tenders <= total.minor", _v5_tenders)
_LINE_V5 = Map((*_LINE_V3.fields[:8], Field("promotions", List(_PROMOTION), required=False), *_LINE_V3.fields[8:]),
               rules=(V3_PRICE, V5_LINE_AMOUNT, LINE_TAX))
_POINTS = Map((Field("customer", Token()), Field("points", Integer(1, MAX_BIGINT)), Field("redemption", Token()),
               Field("offline", Boolean())), closed=True)
_GIFT_CARD = Map((Field("card", Text(32)), Field("redemption", Token())), closed=True)
_TENDER_V5 = Map((Field("id", Token()), Field("method", Choice(("cash", "card", "qr", "points", "gift_card"))),
                  Field("amount", Money(minimum=1)), Field("card", _CARD, required=False),
                  Field("qr", _QR, required=False), Field("points", _POINTS, required=False),
                  Field("gift_card", _GIFT_CARD, required=False)))
_COUPON = Map((Field("code", Text(64)), Field("promotion", Token()), Field("redemption", Token()),
               Field("offline", Boolean())), closed=True)

SALE_COMPLETED_V5 = Declaration("sale.completed", 5, Map((
    *_HEAD, Field("drawer_session", Token(), required=False),
    Field("customer", Map((Field("id", Token()),), closed=True), required=False),
    Field("lines", List(_LINE_V5, 1, _LINES)),
    Field("order_discount", _DISCOUNT, required=False),
    Field("promotions_version", Integer(0, MAX_BIGINT)),
    Field("coupons", List(_COUPON), required=False),
    Field("total", Money()), Field("tax_total", Money()), Field("tenders", List(_TENDER_V5)), Field("change", Money())),
    rules=(V5_ORDER_DISCOUNT, TOTAL, TENDER_WHEN_DUE, CHANGE, TAX_TOTAL, V5_TENDERS)),
    "A v4 sale with what issue 11 adds. `customer` {id}: the hub's customer the sale was made for (an id only: no "
    "personal data travels in a sale). Each line may carry `promotions` [{promotion, name, amount}]: what each "
    "promotion took off it (an order-level promotion shared over its lines by pricing.allocate), before the line "
    "discount, whose percentage is of what the promotions left. `promotions_version`: the version of the store's "
    "copy of the promotions the till evaluated (the hub re-evaluates and records a diff when it disagrees). "
    "`coupons` [{code, promotion, redemption, offline}]: the codes used, with the hub's redemption id. A tender of "
    "method `points` carries `points` {customer, points, redemption, offline} (points redeemed; offline: within "
    "the store's budget while the hub was away, reconciled when the sale arrives), of method `gift_card` carries "
    "`gift_card` {card (masked), redemption}. A till emits v5 for a sale with any of these; every other sale stays "
    "v3 (v4 with a QR tender).")

def _return_total(body: Mapping[str, Any], _where: str) -> None:
    total = (sum(_adds(line) for line in body["lines"]) - sum(_adds(line) for line in body["returned"])
             + body["restocking_fee"]["minor"])
    if body["total"]["minor"] != total:
        raise SchemaError("total", f"does not equal the new lines minus the returned ones plus the fee ({total})")


def _return_settled(body: Mapping[str, Any], _where: str) -> None:
    taken = sum(tender["amount"]["minor"] for tender in body["tenders"])
    given = sum(refund["amount"]["minor"] for refund in body["refunds"])
    if taken - given - body["change"]["minor"] != body["total"]["minor"]:
        raise SchemaError("change", f"tenders {taken} minus refunds {given} minus change {body['change']['minor']} "
                                    f"must equal the total {body['total']['minor']}")
    cash = sum(tender["amount"]["minor"] for tender in body["tenders"] if tender["method"] == "cash")
    if body["change"]["minor"] > cash:
        raise SchemaError("change", f"may not exceed the cash tendered ({cash})")


def _card_iff_card(body: Mapping[str, Any], _where: str) -> None:
    for name in ("tenders", "refunds"):
        for index, item in enumerate(body[name]):
            if (item["method"] == "card") != ("card" in item):
                raise SchemaError(f"{name}[{index}].card", "must be present exactly when the method is card")


def _qr_iff_qr(body: Mapping[str, Any], _where: str) -> None:
    for index, item in enumerate(body["refunds"]):
        if (item["method"] == "qr") != ("qr" in item):
            raise SchemaError(f"refunds[{index}].qr", "must be present exactly when the method is qr")


def _approved_without_receipt(body: Mapping[str, Any], _where: str) -> None:
    if "original" not in body and "approver" not in body:
        raise SchemaError("approver", "a return without a receipt (no original) needs a manager's approval")
    if "original" not in body and any("original_line" in line for line in body["returned"]):
        raise SchemaError("returned", "an original_line needs the original order")



def _return_details(body: Mapping[str, Any], _where: str) -> None:
    for index, item in enumerate(body["refunds"]):
        for details in TENDER_DETAILS:
            if (item["method"] == details) != (details in item):
                raise SchemaError(f"refunds[{index}].{details}", "must be present exactly when the method is "
                                                                 f"{details}")
    _card_iff_card({"tenders": body["tenders"], "refunds": []}, "")

RETURN_TOTAL = Rule("return_total", "total.minor = sum of lines[] adds - sum of returned[] adds + restocking_fee.minor "
                                    "(a line adds amount.minor, + tax.amount.minor where not tax.included)",
                    _return_total)
RETURN_SETTLED = Rule("return_settled", "sum of tenders[].amount.minor - sum of refunds[].amount.minor - change.minor "
                                        "= total.minor; change.minor <= the cash tenders' sum", _return_settled)
CARD_IFF_CARD = Rule("card_iff_card", "tenders[] and refunds[] carry card exactly when method = card", _card_iff_card)
APPROVED_WITHOUT_RECEIPT = Rule("approved_without_receipt", "without original, approver is present and no "
                                                            "returned[] line has original_line",
                                _approved_without_receipt)
_PAYMENT = (Field("id", Token()), Field("method", Choice(("cash", "card"))), Field("amount", Money(minimum=1)))
_RETURNED = Map((Field("original_line", Integer(1, MAX_LINE_QUANTITY), required=False), Field("sku", Token()),
                 Field("name", Text()), Field("quantity", Integer(1, MAX_LINE_QUANTITY)), Field("unit_price", Money()),
                 Field("amount", Money()), Field("tax", _TAX), Field("condition", Choice(("resaleable", "damaged"))),
                 Field("restock", Boolean())), rules=(LINE_TAX,))

RETURN_COMPLETED_V1 = Declaration("return.completed", 1, Map((
    *_HEAD, Field("drawer_session", Token(), required=False),
    Field("original", Map((Field("order", Token()), Field("store", Token()))), required=False),
    Field("approver", Text(64), required=False), Field("reason", Text(500), required=False),
    Field("returned", List(_RETURNED, 1, "must hold at least one returned item: a return needs one")),
    Field("restocking_fee", Money()),
    Field("lines", List(Map((*_LINE_V1, Field("catalog_version", Integer(0, MAX_BIGINT)), Field("tax", _TAX)),
                            rules=(LINE_TAX,)))),
    Field("tenders", List(Map((*_PAYMENT, Field("card", Map(()), required=False))))),
    Field("refunds", List(Map((*_PAYMENT, Field("card", Map((
        Field("reference", Text(64)), Field("original_reference", Text(64), required=False),
        Field("scheme", Text(32)), Field("masked", Text(32)))), required=False))))),
    Field("change", Money()), Field("total", Money(minimum=-MAX_MINOR))),
    rules=(RETURN_TOTAL, RETURN_SETTLED, CARD_IFF_CARD, APPROVED_WITHOUT_RECEIPT)),
    "Items brought back to a store, and an exchange's new lines, settled in one event: `returned` are the items "
    "taken back (each refunded its original line's amount pro rata: novapos.pricing.pro_rata; `original_line` the "
    "1-based line of the original sale when there was a receipt), `total` = new lines - returned + restocking fee "
    "(negative: the store pays back), paid by `tenders` when positive, given back by `refunds` when negative "
    "(to the original card, or cash). Without `original` (no receipt) a manager approved it (`approver`).")


RETURN_DETAILS = Rule("return_details", "refunds[] carry card, qr, points or gift_card exactly when the method is that; tenders[] carry card exactly when method = card", _return_details)
QR_IFF_QR = Rule("qr_iff_qr", "refunds[] carry qr exactly when method = qr", _qr_iff_qr)
_CARD_REFUND = Map((Field("reference", Text(64)), Field("original_reference", Text(64), required=False),
                    Field("scheme", Text(32)), Field("masked", Text(32))))

RETURN_COMPLETED_V2 = Declaration("return.completed", 2, Map((
    *_HEAD, Field("drawer_session", Token(), required=False),
    Field("original", Map((Field("order", Token()), Field("store", Token()))), required=False),
    Field("approver", Text(64), required=False), Field("reason", Text(500), required=False),
    Field("returned", List(_RETURNED, 1, "must hold at least one returned item: a return needs one")),
    Field("restocking_fee", Money()),
    Field("lines", List(Map((*_LINE_V1, Field("catalog_version", Integer(0, MAX_BIGINT)), Field("tax", _TAX)),
                            rules=(LINE_TAX,)))),
    Field("tenders", List(Map((*_PAYMENT, Field("card", Map(()), required=False))))),
    Field("refunds", List(Map((Field("id", Token()), Field("method", Choice(("cash", "card", "qr"))),
                               Field("amount", Money(minimum=1)), Field("card", _CARD_REFUND, required=False),
                               Field("qr", _QR, required=False))))),
    Field("change", Money()), Field("total", Money(minimum=-MAX_MINOR))),
    rules=(RETURN_TOTAL, RETURN_SETTLED, CARD_IFF_CARD, QR_IFF_QR, APPROVED_WITHOUT_RECEIPT)),
    "A v1 return whose refund may go back to the QR payment of the original sale, through the hub: a refund of "
    "method `qr` carries `qr` {intent (the original payment's intent at the hub), provider_ref (the provider's "
    "reference of that payment)}. A till emits v2 only for a return refunded to a QR payment: every other return "
    "stays v1.")


AUDIT_ACTION_PATTERN = r"(till|drawer)\.[a-z][a-z_]{0,39}"
"""A store's audit actions: till.override, till.void, drawer.no_sale, till.refund, till.offline_login and
later ones of the same shape; never a hub action (price.set, role.granted...), which a store cannot do."""
LOGIN_PATTERN = r"[a-z0-9][a-z0-9._@-]{0,63}"
"""A user's login as the hub keeps it (hub.identity.users): lower case, letters, digits and . _ @ -."""
MAX_AUDIT_DETAILS = 16
MAX_AUDIT_DETAILS_BYTES = 2048
_ACTION = re.compile(AUDIT_ACTION_PATTERN)
_LOGIN = re.compile(LOGIN_PATTERN)


def _audit_names(body: Mapping[str, Any], _where: str) -> None:
    if not _ACTION.fullmatch(body["action"]):
        raise SchemaError("action", f"{body['action']!r} is not a store's audit action (till.* or drawer.*, lower "
                                    "case letters and _)")
    for name in ("actor", "approver"):
        if name in body and not _LOGIN.fullmatch(body[name]):
            raise SchemaError(name, "must be a login (lower case letters, digits and . _ @ -)")


def _audit_details(body: Mapping[str, Any], _where: str) -> None:
    details = body["details"]
    if len(details) > MAX_AUDIT_DETAILS:
        raise SchemaError("details", f"may hold at most {MAX_AUDIT_DETAILS} fields")
    for key, value in details.items():
        if not isinstance(key, str) or not _TOKEN_KEY.fullmatch(key):
            raise SchemaError("details", f"field names must be names (letters, digits, _ and -), got {key!r}")
        if isinstance(value, str):
            validators.text(f"details.{key}", value)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            validators.integer(f"details.{key}", value, -MAX_BIGINT, MAX_BIGINT)
        else:
            raise SchemaError(f"details.{key}", "must be text, a whole number, true/false or null")
    if len(json.dumps(details, ensure_ascii=False).encode()) > MAX_AUDIT_DETAILS_BYTES:
        raise SchemaError("details", f"must take at most {MAX_AUDIT_DETAILS_BYTES} bytes as JSON")


_TOKEN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
AUDIT_NAMES = Rule("audit_names", f"action matches {AUDIT_ACTION_PATTERN}; actor and approver match {LOGIN_PATTERN}",
                   _audit_names)
AUDIT_DETAILS = Rule("audit_details", f"details holds at most {MAX_AUDIT_DETAILS} fields named [A-Za-z0-9_-]{{1,64}}, "
                                      "each text (validators.text, 200), a bigint, a boolean or null, at most "
                                      f"{MAX_AUDIT_DETAILS_BYTES} bytes as JSON", _audit_details)

AUDIT_RECORDED_V1 = Declaration("audit.recorded", 1, Map((
    Field("action", Text(48)), Field("actor", Text(64)), Field("approver", Text(64), required=False),
    Field("till", Token()), Field("target", Text(), required=False), Field("reason", Text(500), required=False),
    Field("details", Map(()))),
    rules=(AUDIT_NAMES, AUDIT_DETAILS)),
    "A privileged action at a store (an override, a void, a no-sale drawer open, a refund, an offline login), "
    "for the tenant's audit chain: who did it, who approved it (a manager's override), at which till, to what, "
    "why. A field without a value is left out (approver, target, reason). The hub records it at the event's "
    "time, for the event's store.")


MAX_DENOMINATIONS = 40
MAX_PIECES = 100_000
"""The most pieces of one denomination in a count (novapos.config.cash.MAX_COUNT)."""


def _counts(count: Mapping[str, Any], where: str) -> None:
    counts = count["counts"]
    if len(counts) > MAX_DENOMINATIONS:
        raise SchemaError(f"{where}.counts", f"may hold at most {MAX_DENOMINATIONS} denominations")
    total = 0
    for denomination, pieces in counts.items():
        if not isinstance(denomination, str) or not denomination.isascii() or not denomination.isdigit() \
                or len(denomination) > 13 or int(denomination) < 1:
            raise SchemaError(f"{where}.counts", f"keys must be denominations in minor units, got {denomination!r}")
        validators.integer(f"{where}.counts.{denomination}", pieces, 0, MAX_PIECES)
        total += int(denomination) * pieces
    if count["total"]["minor"] != total:
        raise SchemaError(f"{where}.total", f"{count['total']['minor']} is not the sum of the counts ({total})")


COUNTS = Rule("counts", f"counts maps at most {MAX_DENOMINATIONS} denominations (decimal minor units >= 1) to "
                        f"0..{MAX_PIECES} pieces; total.minor = sum of denomination x pieces", _counts)
_COUNT = Map((Field("counts", Map(())), Field("total", Money())), rules=(COUNTS,))
_DRAWER_HEAD = (Field("session", Token()), Field("till", Token()), Field("currency", Currency()))
_SIGNED = Integer(-MAX_BIGINT, MAX_BIGINT)
_TALLY = Map((Field("count", Integer(0, MAX_BIGINT)), Field("total", Money())))
_BY_METHOD = List(Map((Field("method", Token()), Field("scheme", Token(), required=False),
                       Field("count", Integer(0, MAX_BIGINT)), Field("amount", Money()))))

DRAWER_OPENED_V1 = Declaration("drawer.opened", 1, Map((
    *_DRAWER_HEAD, Field("cashier", Text(64)), Field("float", _COUNT))),
    "A till's drawer session opened with its float counted by denomination (counts: {minor units: pieces}). "
    "A till has at most one open session; its cash sales, refunds and moves belong to it until it closes.")

DRAWER_MOVED_V1 = Declaration("drawer.moved", 1, Map((
    *_DRAWER_HEAD, Field("kind", Choice(("pay_in", "pay_out", "drop", "no_sale"))), Field("amount", Money()),
    Field("reason", Text(500), required=False), Field("actor", Text(64)), Field("approver", Text(64), required=False))),
    "Cash in or out of an open drawer session besides sales: a pay-in, a pay-out, a cash drop to the safe (each "
    "with a reason), or a no-sale opening (amount 0). approver: the manager whose override allowed it.")

DRAWER_CLOSED_V1 = Declaration("drawer.closed", 1, Map((
    *_DRAWER_HEAD, Field("cashier", Text(64)), Field("counted", _COUNT), Field("expected", Money()),
    Field("difference", _SIGNED), Field("approver", Text(64), required=False),
    Field("z", Map((
        Field("number", Integer(1, MAX_BIGINT)), Field("opened_at", Integer(0, MAX_BIGINT)),
        Field("opened_by", Text(64)), Field("float", Money()),
        Field("sales", _TALLY), Field("returns", _TALLY), Field("tenders", _BY_METHOD),
        Field("refunds", _BY_METHOD), Field("change", Money()), Field("discounts", Money()),
        Field("voids", Integer(0, MAX_BIGINT)), Field("no_sales", Integer(0, MAX_BIGINT)),
        Field("pay_ins", _TALLY), Field("pay_outs", _TALLY), Field("drops", _TALLY),
        Field("tax", List(Map((Field("rate_ppm", Integer(0, PPM)), Field("amount", Money()))))),
    ))))),
    "A drawer session closed by a blind count: counted by denomination, the expected cash (float + cash taken - "
    "change + pay-ins - pay-outs - drops - cash refunds), difference = counted - expected (minor units, negative: "
    "short), approver when beyond the store's tolerance, and the Z report's figures (z.number counts the till's "
    "closes). A closed session takes no more drawer events.")


def _token_iff_offline(body: Mapping[str, Any], _where: str) -> None:
    if body["offline"] != ("card_token" in body):
        raise SchemaError("card_token", "must be present exactly when the approval was taken offline")


TOKEN_IFF_OFFLINE = Rule("token_iff_offline", "card_token is present exactly when offline is true", _token_iff_offline)

# return.completed v3: v2 plus refunds to loyalty points and gift cards, and the sale's customer.

RETURN_COMPLETED_V3 = Declaration("return.completed", 3, Map((
    *_HEAD, Field("drawer_session", Token(), required=False),
    Field("original", Map((Field("order", Token()), Field("store", Token()))), required=False),
    Field("customer", Map((Field("id", Token()),), closed=True), required=False),
    Field("approver", Text(64), required=False), Field("reason", Text(500), required=False),
    Field("returned", List(_RETURNED, 1, "must hold at least one returned item: a return needs one")),
    Field("restocking_fee", Money()),
    Field("lines", List(Map((*_LINE_V1, Field("catalog_version", Integer(0, MAX_BIGINT)), Field("tax", _TAX)),
                            rules=(LINE_TAX,)))),
    Field("tenders", List(Map((*_PAYMENT, Field("card", Map(()), required=False))))),
    Field("refunds", List(Map((Field("id", Token()),
                               Field("method", Choice(("cash", "card", "qr", "points", "gift_card"))),
                               Field("amount", Money(minimum=1)), Field("card", _CARD_REFUND, required=False),
                               Field("qr", _QR, required=False),
                               Field("points", Map((Field("customer", Token()), Field("points", Integer(1, MAX_BIGINT))),
                                                   closed=True), required=False),
                               Field("gift_card", _GIFT_CARD, required=False))))),
    Field("change", Money()), Field("total", Money(minimum=-MAX_MINOR))),
    rules=(RETURN_TOTAL, RETURN_SETTLED, RETURN_DETAILS, APPROVED_WITHOUT_RECEIPT)),
    "A v2 return whose refund may also go back to the loyalty points or the gift card the original sale was paid "
    "with: a refund of method `points` carries `points` {customer, points} (points given back), of method "
    "`gift_card` carries `gift_card` {card (masked), redemption (the hub's id of the credit)}. `customer`: the "
    "original sale's customer, whose points earned on the returned items the hub reverses pro rata. A till emits "
    "v3 only for a return with either; every other return stays v1 (v2 with a QR refund).")

CARD_APPROVED_V1 = Declaration("card.approved", 1, Map((
    Field("till", Token()), Field("tender", Token()), Field("currency", Currency()), Field("amount", Money(minimum=1)),
    Field("card", Map((Field("reference", Text(64)), Field("scheme", Token()), Field("masked", Text(32)),
                       Field("auth_code", Text(32), required=False), Field("terminal", Token())))),
    Field("offline", Boolean()), Field("card_token", Token(), required=False)),
    rules=(TOKEN_IFF_OFFLINE,)),
    "A card the till's terminal approved, committed as it was approved (before its sale completes, and whether "
    "or not the sale ever does): the hub's payment intent for `tender` (the tender's id, its key). `card.reference` "
    "is the terminal's reference of the payment (the provider's for an online approval). `offline`: the hub was "
    "away, the terminal only stored the card (`card_token`) and the money is asked for when the event arrives; "
    "auth_code is absent then.")

CARD_DECLINED_V1 = Declaration("card.declined", 1, Map((
    Field("till", Token()), Field("tender", Token()), Field("currency", Currency()), Field("amount", Money(minimum=1)),
    Field("card", Map((Field("reference", Text(64)), Field("scheme", Token(), required=False),
                       Field("masked", Text(32), required=False), Field("terminal", Token())))),
    Field("message", Text(200), required=False))),
    "A card the till's terminal declined (the issuer or the card said no; nothing was taken): the hub keeps the "
    "attempt as a failed payment intent of `tender`, beside the sale's other tenders (a split with a decline in the "
    "middle shows every attempt). `message` is the terminal's reason.")

DECLARATIONS: tuple[Declaration, ...] = (SALE_COMPLETED_V1, SALE_COMPLETED_V2, SALE_COMPLETED_V3, SALE_COMPLETED_V4,
                                          SALE_COMPLETED_V5, AUDIT_RECORDED_V1, RETURN_COMPLETED_V1,
                                          RETURN_COMPLETED_V2, RETURN_COMPLETED_V3,
                                          DRAWER_OPENED_V1, DRAWER_MOVED_V1, DRAWER_CLOSED_V1, CARD_APPROVED_V1,
                                          CARD_DECLINED_V1)
SCHEMAS: dict[tuple[str, int], Schema] = {(d.type, d.v): compile_schema(d) for d in DECLARATIONS}
sale_completed_v1 = SCHEMAS[("sale.completed", 1)]
sale_completed_v2 = SCHEMAS[("sale.completed", 2)]
sale_completed_v3 = SCHEMAS[("sale.completed", 3)]
sale_completed_v4 = SCHEMAS[("sale.completed", 4)]
sale_completed_v5 = SCHEMAS[("sale.completed", 5)]
audit_recorded_v1 = SCHEMAS[("audit.recorded", 1)]
return_completed_v1 = SCHEMAS[("return.completed", 1)]
return_completed_v2 = SCHEMAS[("return.completed", 2)]
return_completed_v3 = SCHEMAS[("return.completed", 3)]
card_approved_v1 = SCHEMAS[("card.approved", 1)]
card_declined_v1 = SCHEMAS[("card.declined", 1)]


if __name__ == "__main__":
    for written in freeze_missing(DECLARATIONS):
        print(f"froze {written}")
