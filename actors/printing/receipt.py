"""A completed sale or return laid out as a printed receipt (42 columns, the common 80 mm font A width).

The head says which store (name, address, tax id from [receipt]), when (the store's time zone), which till
and who served (the cashier's name when the staff list knows it, else the login). A sale lists each line
with its variant (size, colour), a price override, each promotion that took something off it (its name and
amount) and a discount with their reasons, then the order discount, what the customer saved in all
(promotions and discounts: "You saved"), the tax per rate (rate, net, tax), the total, the tenders (a card's scheme, masked number and
authorization code; a QR payment's provider reference), the change, and the order id twice: as a QR code (scanned back for a return) and as
text (typed in when the code will not scan). A card sale prints a merchant copy after a cut, with a
signature line for each card whose scheme asks for one. A v1 sale (printed late, after an upgrade) has no
tax to show; a v2 sale has no discounts or cards. A sale with a customer or a gift card prints what the till learnt
beside it (the print job's `loyalty`, not the event: the loyalty card masked, points redeemed and the balance
after, each gift card masked with what is left on it).

A return (return.completed v1) lists what came back (with its tax when prices exclude it), the restocking fee,
an exchange's new lines, the net, what was taken and what was refunded (to a card, to a QR payment with its
provider reference, or cash); card payments or refunds add a merchant copy. An exchange's receipt has the return's id as a QR code too: its new lines are an order of their own,
which may come back in turn. A reprint is marked "REPRINT - COPY" at the top and the bottom of
every part, so it is never taken for a second sale.

Every text here reaches the printer through drivers.device_text: a hostile name or setting prints as
characters, never as a command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actors.printing.document import PrintDocument, PrintLine
from drivers import device_text
from novapos.config.receipt import ReceiptSettings
from novapos.money import Money

WIDTH = 42
TIME_FORMAT = "%Y-%m-%d %H:%M"
ORDER_QR_PREFIX = "novapos:order:"
"""The QR code of a receipt holds this and the sale's event id (the order id the returns lookup takes)."""
MAX_QR_TEXT = 200
RULE = "-" * WIDTH
LAYOUT_CODEC = "cp858"
"""The code page columns are measured in (the driver prints in PC858 where the printer has it, else PC437)."""
REPRINT = "*** REPRINT - COPY ***"


@dataclass(frozen=True)
class ReceiptContext:
    """What a receipt needs besides its event: the store's receipt settings and who a login is."""

    settings: ReceiptSettings
    name_of: Callable[[str], str | None] = lambda _login: None
    """A login's full name, when the staff list knows it."""

    def person(self, login: str) -> str:
        return self.name_of(login) or login


Renderer = Callable[[ReceiptContext, dict[str, Any], datetime], PrintDocument]
"""A print job's renderer: (context, the job as the spool keeps it {id, seq, body, reprint?}, its time in the
store's zone) -> the document to print."""


def order_qr(order: str) -> str:
    return ORDER_QR_PREFIX + order


def order_from_qr(scanned: str) -> str:
    """The order id a scanned receipt code holds: the QR text, or the id typed in from the receipt."""
    return scanned.strip().removeprefix(ORDER_QR_PREFIX)


def money(wire: Mapping[str, Any]) -> str:
    return Money(wire["minor"], wire["currency"]).format()


def row(left: str, right: str) -> str:
    """`left` and `right` on one line, `left` cut short so `right` (an amount) is always whole. Measured as
    printed (drivers.device_text drops invisible characters and spells out some), so columns line up."""
    left, right = device_text.transliterate(left, LAYOUT_CODEC), device_text.transliterate(right, LAYOUT_CODEC)
    room = max(WIDTH - len(right) - 1, 1)
    return f"{left[:room]:<{room}} {right}"


def percent(rate_ppm: int) -> str:
    """A rate in parts per million as a percentage, in integers: two decimals, more only when the rate has them
    (70000 -> 7.00%, 88750 -> 8.875%)."""
    decimals = f"{rate_ppm % 10_000:04d}".rstrip("0").ljust(2, "0")
    return f"{rate_ppm // 10_000}.{decimals}%"


def _basis_points(value: int) -> str:
    """A percent discount in basis points (1050 -> 10.50%)."""
    return f"{value // 100}.{value % 100:02d}%"


def store_head(context: ReceiptContext, at: datetime, *titles: str) -> list[PrintLine]:
    """The store's name, address and tax id, then the time and the given titles, centred."""
    settings = context.settings
    lines = [PrintLine(settings.name, align="center", bold=True, double=True)]
    lines += [PrintLine(line, align="center") for line in settings.address]
    if settings.tax_id:
        lines.append(PrintLine(f"Tax ID {settings.tax_id}", align="center"))
    lines.append(PrintLine(" ".join(filter(None, (at.strftime(TIME_FORMAT), at.tzname()))), align="center"))
    lines += [PrintLine(title, align="center") for title in titles]
    return lines


def _marked(parts: Iterable[list[PrintLine]], reprint: bool) -> PrintDocument:
    """The parts, cut apart (each ends at a cut), each marked as a reprint at top and bottom when it is one."""
    lines: list[PrintLine] = []
    for index, part in enumerate(parts):
        if index:
            lines.append(PrintLine("", kind="cut"))
        mark = [PrintLine(REPRINT, align="center", bold=True)] if reprint else []
        lines += [*mark, *part, *mark]
    return PrintDocument(lines=tuple(lines), cut=True)  # the till opens the drawer itself, not via the print queue


# -- sales -------------------------------------------------------------------------------------------


def render_receipt(context: ReceiptContext, job: dict[str, Any], at: datetime) -> PrintDocument:
    """A sale.completed job ({id, seq, body}, v1 to v3): the customer's receipt, and a merchant copy after a
    cut when a card paid."""
    sale = job["body"]
    parts = [_customer_copy(context, job, at)]
    cards = [tender for tender in sale["tenders"] if "card" in tender]
    if cards:
        parts.append(_merchant_copy(context, job, at, cards))
    return _marked(parts, bool(job.get("reprint")))


def _who(context: ReceiptContext, body: Mapping[str, Any]) -> str:
    return f"Till {body['till']}  Cashier {context.person(body['cashier'])}"


def _customer_copy(context: ReceiptContext, job: dict[str, Any], at: datetime) -> list[PrintLine]:
    sale = job["body"]
    lines = store_head(context, at, f"Sale #{job['seq']}", _who(context, sale))
    lines.append(PrintLine(RULE))
    for item in sale["lines"]:
        lines += sale_line(item)
    lines.append(PrintLine(RULE))
    if "order_discount" in sale:
        discount = sale["order_discount"]
        lines.append(PrintLine(row(f"Order discount {_discount_rate(discount)}", "-" + money(discount["amount"]))))
        lines.append(PrintLine(f"  {discount['reason']}"))
    lines += _you_saved(sale)
    lines += _totals(sale)
    lines += tender_lines(sale["tenders"])
    lines.append(PrintLine(row("Change", money(sale["change"]))))
    lines += loyalty_lines(job.get("loyalty"), sale["currency"])
    lines += _order_id(job["id"], qr=True)
    lines += [PrintLine(line, align="center") for line in context.settings.footer]
    return lines


def sale_line(item: Mapping[str, Any]) -> list[PrintLine]:
    """One sold line: quantity, name and its price before discounts, then its variant, price override and
    discount (each on its own line, with the reason)."""
    quantity, currency = item["quantity"], item["unit_price"]["currency"]
    gross = Money(item["unit_price"]["minor"] * quantity, currency)
    lines = [PrintLine(row(f"{quantity} x {item['name']}", gross.format()))]
    attributes = item.get("attributes") or []
    if attributes:
        lines.append(PrintLine("  " + ", ".join(f"{name[:1].upper()}{name[1:]}: {value}" for name, value in attributes)))
    if quantity > 1:
        lines.append(PrintLine(f"  @ {money(item['unit_price'])}"))
    if "override" in item:
        lines.append(PrintLine(f"  Price changed from {money(item['list_price'])}"))
        lines.append(PrintLine(f"  Reason: {item['override']['reason']}"))
    for promotion in item.get("promotions", ()):
        lines.append(PrintLine(row(f"  {promotion['name']}", "-" + money(promotion["amount"]))))
    if "discount" in item:
        discount = item["discount"]
        lines.append(PrintLine(row(f"  Discount {_discount_rate(discount)}", "-" + money(discount["amount"]))))
        lines.append(PrintLine(f"  {discount['reason']}"))
    return lines


def _you_saved(sale: Mapping[str, Any]) -> list[PrintLine]:
    """What the promotions and discounts took off the list of prices sold at, when they took anything."""
    saved = sum(item["unit_price"]["minor"] * item["quantity"] - item["amount"]["minor"] for item in sale["lines"])
    return [PrintLine(row("You saved", Money(saved, sale["currency"]).format()), bold=True)] if saved > 0 else []


def _discount_rate(discount: Mapping[str, Any]) -> str:
    return _basis_points(discount["value"]) if discount["kind"] == "percent" else ""


def _totals(sale: Mapping[str, Any]) -> list[PrintLine]:
    """The tax per rate (rate, net, tax), then the subtotal when tax is added, and the total."""
    currency = sale["currency"]
    table = tax_table(sale["lines"], currency)
    lines = [*table]
    if any("tax" in item and not item["tax"]["included"] for item in sale["lines"]):
        subtotal = sum(item["amount"]["minor"] for item in sale["lines"])
        lines.append(PrintLine(row("Subtotal", Money(subtotal, currency).format())))
        lines.append(PrintLine(row("Tax", money(sale["tax_total"]))))
    lines.append(PrintLine(row("TOTAL", money(sale["total"])), bold=True))
    return lines


def tax_table(items: Iterable[Mapping[str, Any]], currency: str, sign: int = 1) -> list[PrintLine]:
    """Tax grouped by rate and by whether prices include it: the rate, the net amount and the tax.
    `sign` -1 for returned lines (their tax is given back)."""
    groups: dict[tuple[int, bool], tuple[int, int]] = {}
    for item in items:
        if "tax" not in item:
            continue
        tax = item["tax"]
        amount, taxed = item["amount"]["minor"], tax["amount"]["minor"]
        net = amount - taxed if tax["included"] else amount
        key = (tax["rate_ppm"], tax["included"])
        before = groups.get(key, (0, 0))
        groups[key] = (before[0] + sign * net, before[1] + sign * taxed)
    if not groups:
        return []
    lines = [PrintLine(f"{'Tax rate':<12}{'Net':>15}{'Tax':>15}")]
    for (rate, included), (net, taxed) in sorted(groups.items()):
        label = percent(rate) + (" incl." if included else "")
        lines.append(PrintLine(f"{label:<12}{Money(net, currency).format():>15}{Money(taxed, currency).format():>15}"))
    return lines


def tender_lines(tenders: Iterable[Mapping[str, Any]], title: str = "") -> list[PrintLine]:
    """Each tender's method and amount; a card's scheme and masked number, and its authorization code; a QR
    payment's provider reference (what the customer's phone shows, to match a question later); the points a points
    tender redeemed; a gift card's masked number."""
    lines: list[PrintLine] = []
    for tender in tenders:
        card, qr = tender.get("card"), tender.get("qr")
        if qr is not None:
            lines += qr_lines("Paid by QR", tender["amount"], qr)
            continue
        if tender.get("points") is not None:  # loyalty points: how many, and whether taken offline
            points = tender["points"]
            lines.append(PrintLine(row(f"{title}Points {points['points']}{' (offline)' if points['offline'] else ''}",
                                       money(tender["amount"]))))
            continue
        if tender.get("gift_card") is not None:  # the card masked, as the sale carries it
            lines.append(PrintLine(row(f"{title}Gift card {tender['gift_card']['card']}", money(tender["amount"]))))
            continue
        if card is None:
            lines.append(PrintLine(row(f"{title}{tender['method'].capitalize()}", money(tender["amount"]))))
            continue
        lines.append(PrintLine(row(f"{title}Card {card.get('scheme', '').upper()} {card.get('masked', '')}",
                                   money(tender["amount"]))))
        if card.get("auth_code"):
            lines.append(PrintLine(f"  Auth code {card['auth_code']}"))
    return lines


def loyalty_lines(loyalty: Any, currency: str) -> list[PrintLine]:
    """What the till learnt at the sale that its event does not carry (the print job's `loyalty`, written by the
    till: actors.till.actor): the customer's loyalty card masked, the points redeemed and the balance after them
    (when the hub said it, or the till counted it offline), and each gift card masked with what is left on it. A
    piece that is not what the till writes is left off, never printed raw."""
    if not isinstance(loyalty, Mapping):
        return []
    lines = [PrintLine(RULE)]
    if isinstance(loyalty.get("card"), str):
        lines.append(PrintLine(row("Loyalty card", loyalty["card"])))
    points = loyalty.get("points")
    if isinstance(points, Mapping) and type(points.get("redeemed")) is int:
        lines.append(PrintLine(row("Points redeemed", str(points["redeemed"]))))
        if type(points.get("balance")) is int:
            lines.append(PrintLine(row("Points balance", str(points["balance"]))))
    for card in loyalty.get("gift_cards", ()) if isinstance(loyalty.get("gift_cards"), list) else ():
        if isinstance(card, Mapping) and isinstance(card.get("card"), str) and type(card.get("balance_minor")) is int:
            lines.append(PrintLine(row(f"Gift card {card['card']}", "")))
            lines.append(PrintLine(row("  Left on the card", Money(card["balance_minor"], currency).format())))
    return lines if len(lines) > 1 else []


def qr_lines(label: str, amount: Mapping[str, Any], qr: Mapping[str, Any]) -> list[PrintLine]:
    """A QR payment (or a refund to one): its label and amount, and the provider's reference on the next line."""
    return [PrintLine(row(label, money(amount))), PrintLine(f"  Ref {qr.get('provider_ref', '')}")]


def _order_id(order: str, *, qr: bool, label: str = "Order") -> list[PrintLine]:
    """The order id as a QR code (when `qr`) and as text on its own line, for typing in."""
    lines = [PrintLine(order_qr(order)[:MAX_QR_TEXT], align="center", kind="qr")] if qr else []
    return [*lines, PrintLine(label, align="center"), PrintLine(order, align="center")]


def _merchant_copy(context: ReceiptContext, job: dict[str, Any], at: datetime,
                   cards: list[dict[str, Any]]) -> list[PrintLine]:
    """What the store keeps of a card sale: each card's details, and a line to sign where the scheme asks."""
    sale = job["body"]
    lines = [PrintLine("MERCHANT COPY", align="center", bold=True),
             *store_head(context, at, f"Sale #{job['seq']}", _who(context, sale)), PrintLine(RULE),
             PrintLine(row("TOTAL", money(sale["total"])), bold=True)]
    lines += _merchant_cards(cards)
    lines += _order_id(job["id"], qr=False)
    return lines


def _merchant_cards(cards: list[dict[str, Any]]) -> list[PrintLine]:
    """Each card payment's details for the store, and a line to sign for a card whose scheme asks."""
    lines: list[PrintLine] = []
    for tender in cards:
        card = tender["card"]
        lines.append(PrintLine(row(f"Card {card.get('scheme', '').upper()} {card.get('masked', '')}", money(tender["amount"]))))
        for label, key in (("Auth code", "auth_code"), ("Terminal", "terminal"), ("Reference", "reference")):
            if card.get(key):
                lines.append(PrintLine(f"  {label} {card[key]}"))
        if card.get("signature"):
            lines += [PrintLine(""), PrintLine(""), PrintLine("X" + "_" * (WIDTH - 2)),
                      PrintLine("Cardholder signature"), PrintLine("I agree to pay the above amount")]
    return lines


# -- returns -----------------------------------------------------------------------------------------


def render_return(context: ReceiptContext, job: dict[str, Any], at: datetime) -> PrintDocument:
    """A return.completed job: what came back and what was refunded; an exchange's new lines and the net
    on the same receipt."""
    back = job["body"]
    currency = back["currency"]
    title = "EXCHANGE" if back.get("lines") else "RETURN"
    lines = store_head(context, at, f"{title} #{job['seq']}", _who(context, back))
    original = back.get("original")
    if original is not None:
        lines += [PrintLine("Original order", align="center"), PrintLine(original["order"], align="center")]
    else:
        lines.append(PrintLine("No receipt", align="center"))
    if "approver" in back:
        lines.append(PrintLine(f"Approved by {context.person(back['approver'])}", align="center"))
    if "reason" in back:
        lines.append(PrintLine(f"Reason: {back['reason']}"))
    lines += [PrintLine(RULE), PrintLine("Returned", bold=True)]
    for item in back["returned"]:
        tax = item.get("tax")
        refunded = item["amount"]["minor"] + (tax["amount"]["minor"] if tax and not tax["included"] else 0)
        lines.append(PrintLine(row(f"{item['quantity']} x {item['name']}", Money(-refunded, currency).format())))
        restock = "back to stock" if item.get("restock") else "not restocked"
        lines.append(PrintLine(f"  {item.get('condition', 'resaleable').capitalize()}, {restock}"))
    fee = back.get("restocking_fee", {"minor": 0, "currency": currency})
    if fee["minor"]:
        lines.append(PrintLine(row("Restocking fee", money(fee))))
    if back.get("lines"):
        lines += [PrintLine(RULE), PrintLine("New items", bold=True)]
        for item in back["lines"]:
            lines += sale_line(item)
    lines.append(PrintLine(RULE))
    lines += tax_table(back["returned"], currency, sign=-1) + tax_table(back.get("lines", []), currency)
    total = back["total"]
    label = "TOTAL TO PAY" if total["minor"] > 0 else "TOTAL REFUNDED" if total["minor"] < 0 else "TOTAL"
    shown = Money(abs(total["minor"]), total["currency"]).format()
    lines.append(PrintLine(row(label, shown), bold=True))
    lines += tender_lines(back.get("tenders", []), title="Paid ")
    for refund in back.get("refunds", []):
        if (qr := refund.get("qr")) is not None:
            lines += qr_lines("Refund to QR payment", refund["amount"], qr)
            continue
        card = refund.get("card")
        method = f"Card {card.get('scheme', '').upper()} {card.get('masked', '')}" if card else refund["method"].capitalize()
        lines.append(PrintLine(row(f"Refund {method}", money(refund["amount"]))))
    if back.get("change", {}).get("minor"):
        lines.append(PrintLine(row("Change", money(back["change"]))))
    lines += _order_id(job["id"], qr=bool(back.get("lines")), label="Return")  # an exchange's new items may come back
    lines += [PrintLine(line, align="center") for line in context.settings.footer]
    cards = [tender for tender in back.get("tenders", []) if "card" in tender]
    card_refunds = [refund for refund in back.get("refunds", []) if "card" in refund]
    parts = [lines]
    if cards or card_refunds:
        parts.append(_return_merchant_copy(context, job, at, cards, card_refunds))
    return _marked(parts, bool(job.get("reprint")))


def _return_merchant_copy(context: ReceiptContext, job: dict[str, Any], at: datetime, cards: list[dict[str, Any]],
                          refunds: list[dict[str, Any]]) -> list[PrintLine]:
    """What the store keeps of a return's card payments and refunds: a refund names the payment it returns."""
    back = job["body"]
    lines = [PrintLine("MERCHANT COPY", align="center", bold=True),
             *store_head(context, at, f"Return #{job['seq']}", _who(context, back)), PrintLine(RULE)]
    lines += _merchant_cards(cards)
    for refund in refunds:
        card = refund["card"]
        lines.append(PrintLine(row(f"Refund {card.get('scheme', '').upper()} {card.get('masked', '')}", money(refund["amount"]))))
        for label, key in (("Reference", "reference"), ("Refund of", "original_reference")):
            if card.get(key):
                lines.append(PrintLine(f"  {label} {card[key]}"))
    return [*lines, *_order_id(job["id"], qr=False, label="Return")]


def late_heading(seq: int, sold_at: datetime) -> tuple[PrintLine, ...]:
    """Heads a receipt printed well after its sale, so it is never taken for the next customer's."""
    return (PrintLine(f"LATE RECEIPT - sale #{seq} {sold_at.strftime(TIME_FORMAT)}", align="center", bold=True),
            PrintLine("=" * WIDTH))
