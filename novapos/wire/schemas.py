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
from collections.abc import Mapping
from typing import Any

from novapos import validators
from novapos.pricing import PPM, line_tax
from novapos.validators import MAX_BIGINT, MAX_LINE_QUANTITY
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

__all__ = ["DECLARATIONS", "INTERIM", "SCHEMAS", "Schema", "SchemaError", "audit_recorded_v1", "sale_completed_v1",
           "sale_completed_v2"]


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

# INTERIM (card helper's branch): sale.completed v3 as far as tenders go, so card sales commit before the cart
# helper's full v3 (discounts, list prices, line ids) lands. Deliberately neither declared nor frozen: at merge
# the cart helper's declaration replaces this block and the SCHEMAS line below. The tender shape is the shared
# contract's: {id, method cash|card, amount, card? {reference, scheme, masked, auth_code, terminal, signature}}.
_CARD = Map((Field("reference", Token()), Field("scheme", Text(16), required=False),
             Field("masked", Text(32), required=False), Field("auth_code", Text(32), required=False),
             Field("terminal", Token()), Field("signature", Boolean())))
_TENDER_V3 = Map((Field("id", Token()), Field("method", Choice(("cash", "card"))), Field("amount", Money(minimum=1)),
                  Field("card", _CARD, required=False)))
SALE_COMPLETED_V3 = Declaration("sale.completed", 3, Map((
    *_HEAD,
    Field("lines", List(Map((*_LINE_V1, Field("catalog_version", Integer(0, MAX_BIGINT)), Field("tax", _TAX)),
                            rules=(LINE_AMOUNT, LINE_TAX)), 1, _LINES)),
    Field("total", Money()), Field("tenders", List(_TENDER_V3)), Field("change", Money()), Field("tax_total", Money())),
    rules=(TOTAL, TENDER_WHEN_DUE, CHANGE, TAX_TOTAL)),
    "A completed sale paid by cash and cards: every tender has its id, and a card tender the terminal's "
    "reference, scheme, masked number, authorization code, terminal and whether the scheme asks for a signature.")

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

DECLARATIONS: tuple[Declaration, ...] = (SALE_COMPLETED_V1, SALE_COMPLETED_V2, AUDIT_RECORDED_V1)
SCHEMAS: dict[tuple[str, int], Schema] = {(d.type, d.v): compile_schema(d) for d in DECLARATIONS}
INTERIM: frozenset[tuple[str, int]] = frozenset({("sale.completed", 3)})
"""Versions validated but not declared (the card helper's interim sale.completed v3): none once v3 is declared."""
SCHEMAS[("sale.completed", 3)] = compile_schema(SALE_COMPLETED_V3)
sale_completed_v1 = SCHEMAS[("sale.completed", 1)]
sale_completed_v2 = SCHEMAS[("sale.completed", 2)]
audit_recorded_v1 = SCHEMAS[("audit.recorded", 1)]


if __name__ == "__main__":
    for written in freeze_missing(DECLARATIONS):
        print(f"froze {written}")
