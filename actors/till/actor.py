"""One till: a cashier's session, the cart, cash tenders, and completing the sale.

The session and the cart are saved on every change (actors.storage.saved_tills), so a restarted till, or a
restarted process, carries on where the cashier was.

The sale is complete only once the outbox actor has committed it to disk; then the drawer opens
(locally, at once), the receipt is spooled for the till's printer and the forwarder is woken; the
cashier waits for none of these. Every change of the till's state is published, so the web till
shows a line added by the scanner as soon as it is scanned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from actors.devices.context import SPOOLER, Notify, device_actor_name
from actors.protocol import Rejected
from actors.storage.outbox import Committed
from actors.storage.saved_tills import SavedTills
from actors.till import customer_screen
from edge_runtime import Actor
from novapos.config import Product
from novapos.money import Money
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

SALES = Counter("novapos_edge_sales_completed_total", "Sales committed to the outbox", ["till"])
VOIDED = Counter("novapos_edge_carts_voided_total", "Carts voided before completion", ["till"])

MAX_QUANTITY = 9999
COMMIT_TIMEOUT_S = 30.0  # a slow disk must not turn a committed sale into a crashed till


@dataclass(frozen=True)
class TillDevices:
    """The names of the devices that serve this till (None: the till has none of that kind)."""
    printer: str | None = None
    drawer: str | None = None
    display: str | None = None


@dataclass
class Line:
    product: Product
    quantity: int

    @property
    def amount(self) -> Money:
        return self.product.price.times(self.quantity)

    def to_wire(self) -> dict[str, Any]:
        return {"sku": self.product.sku, "name": self.product.name, "quantity": self.quantity,
                "unit_price": self.product.price.to_wire(), "amount": self.amount.to_wire()}


@dataclass
class Cart:
    id: str = field(default_factory=lambda: str(uuid7()))
    lines: list[Line] = field(default_factory=list)
    tendered: list[int] = field(default_factory=list)


class TillActor(Actor):
    """State of one till; its public methods are the till's protocol (answers are plain dicts)."""

    def __init__(self, till_id: str, currency: str, products: tuple[Product, ...], store_name: str,
                 devices: TillDevices, notify: Notify, db_path: Path) -> None:
        super().__init__()
        self._db_path = db_path
        self._saved: SavedTills | None = None
        self.till_id = till_id
        self.currency = currency
        self._store_name = store_name
        self._printer = devices.printer
        self._drawer = devices.drawer
        self._display = devices.display
        self._notify = notify
        self._by_barcode = {product.barcode: product for product in products}
        self._by_sku = {product.sku: product for product in products}
        self._session: dict[str, str] | None = None
        self._cart = Cart()

    def started(self) -> None:
        self._saved = SavedTills(self._db_path)
        saved = self._saved.load(self.till_id)
        if saved is not None:
            self._restore(saved)

    def stopping(self) -> None:
        if self._saved is not None:
            self._saved.close()

    def _total(self) -> Money:
        total = Money(0, self.currency)
        for line in self._cart.lines:
            total += line.amount
        return total

    def state(self) -> dict[str, Any]:
        total = self._total()
        tendered = sum(self._cart.tendered)
        return {
            "till": self.till_id, "session": self._session, "cart": self._cart.id,
            "lines": [line.to_wire() for line in self._cart.lines],
            "total": total.to_wire(), "tendered": Money(tendered, self.currency).to_wire(),
            "due": Money(max(0, total.minor - tendered), self.currency).to_wire(),
        }

    def open_session(self, cashier: str) -> dict[str, Any] | Rejected:
        if self._session is not None:
            if self._session["cashier"] == cashier:
                return self.state()
            return Rejected("conflict", f"till {self.till_id} is open for {self._session['cashier']}; "
                                        "they must close their session first")
        self._session = {"id": str(uuid7()), "cashier": cashier}
        log.info("till %s: session opened for %s", self.till_id, cashier)
        return self._changed()

    def add_line(self, barcode: str, quantity: int) -> dict[str, Any] | Rejected:
        if self._session is None:
            return Rejected("conflict", f"till {self.till_id} has no open session: open one before scanning")
        product = self._by_barcode.get(barcode)
        if product is None:
            return Rejected("not_found", f"no product has barcode {barcode!r}")
        if self._cart.tendered:
            return Rejected("conflict", "payment has started: void the tenders (give the cash back) before adding lines")
        for line in self._cart.lines:
            if line.product.barcode == barcode:
                if line.quantity + quantity > MAX_QUANTITY:
                    return Rejected("invalid", f"quantity would exceed {MAX_QUANTITY}")
                line.quantity += quantity
                break
        else:
            self._cart.lines.append(Line(product, quantity))
        return self._changed()

    def remove_line(self, sku: str) -> dict[str, Any] | Rejected:
        """Take a line off the cart: scanned by mistake, or the customer changed their mind."""
        if self._session is None:
            return Rejected("conflict", f"till {self.till_id} has no open session")
        if self._cart.tendered:
            return Rejected("conflict", "payment has started: void the tenders (give the cash back) before removing lines")
        line = next((line for line in self._cart.lines if line.product.sku == sku), None)
        if line is None:
            return Rejected("not_found", f"the cart has no line for {sku!r}")
        self._cart.lines.remove(line)
        return self._changed()

    def void_cart(self) -> dict[str, Any] | Rejected:
        """Abandon the cart (the customer left): its lines and any cash taken go, and a new cart begins.

        Nothing is committed, so the old cart's id can never complete; it is logged and counted."""
        if self._session is None:
            return Rejected("conflict", f"till {self.till_id} has no open session")
        if not self._cart.lines and not self._cart.tendered:
            return Rejected("conflict", "the cart is already empty")
        voided, total = self._cart, self._total()
        self._cart = Cart()
        VOIDED.labels(self.till_id).inc()
        log.warning("till %s: cart %s voided by %s: %d lines, total %s, cash given back %s", self.till_id,
                    voided.id, self._session["cashier"], len(voided.lines), total.format(),
                    Money(sum(voided.tendered), self.currency).format())
        return self._changed()

    def close_session(self) -> dict[str, Any] | Rejected:
        if self._session is None:
            return Rejected("conflict", f"till {self.till_id} has no open session")
        if self._cart.lines:
            return Rejected("conflict", "the cart is not empty: complete the sale or void the cart first")
        log.info("till %s: session of %s closed", self.till_id, self._session["cashier"])
        self._session = None
        return self._changed()

    def void_tenders(self) -> dict[str, Any] | Rejected:
        """Undo the tenders taken for the current cart (the cash goes back to the customer)."""
        if not self._cart.tendered:
            return Rejected("conflict", "no tender has been taken for this cart")
        self._cart.tendered.clear()
        return self._changed()

    def scan(self, barcode: str, scanner: str) -> dict[str, Any] | Rejected:
        """A barcode from a scanner bound to this till: one of that item, and the page hears of it."""
        answer = self.add_line(barcode, 1)
        if isinstance(answer, Rejected):
            self._notify({"type": "till_message", "till": self.till_id, "error": f"{scanner}: {answer.message}"})
        return answer

    def tender_cash(self, amount_minor: int) -> dict[str, Any] | Rejected:
        if self._session is None:
            return Rejected("conflict", f"till {self.till_id} has no open session")
        if not self._cart.lines:
            return Rejected("conflict", "the cart is empty: scan at least one item before taking payment")
        self._cart.tendered.append(amount_minor)
        return self._changed()

    def complete(self, cart_id: str | None = None) -> dict[str, Any] | Rejected:
        """Commit the sale, with the cart's id as its idempotency key in the same transaction.

        Completing a cart that was already completed returns that sale's receipt, found on disk: a
        browser resending after a timeout, a second tab, or a resend after the till or the whole
        process restarted, never makes a second sale."""
        if cart_id is not None and cart_id != self._cart.id:
            done = self.registry.ask("outbox", "committed", cart_id)
            if done is not None and done.body.get("till") == self.till_id:  # another till's receipt stays hidden
                return self._receipt(done, cart_id)
            return Rejected("conflict", f"cart {cart_id} is not the till's current cart, nor a completed one")
        if self._session is None:
            return Rejected("conflict", f"till {self.till_id} has no open session")
        if not self._cart.lines:
            return Rejected("conflict", "the cart is empty: nothing to complete")
        total, tendered = self._total(), sum(self._cart.tendered)
        if tendered < total.minor:
            due = Money(total.minor - tendered, self.currency)
            return Rejected("conflict", f"{due.format()} is still due: take a tender first")
        body = {
            "till": self.till_id, "session": self._session["id"], "cashier": self._session["cashier"],
            "currency": self.currency, "lines": [line.to_wire() for line in self._cart.lines],
            "total": total.to_wire(),
            "tenders": [{"method": "cash", "amount": Money(amount, self.currency).to_wire()}
                        for amount in self._cart.tendered],
            "change": Money(tendered - total.minor, self.currency).to_wire(),
        }
        cart = self._cart
        committed = self.registry.ask("outbox", "append", "sale.completed", 1, body, print_on=self._printer,
                                      key=cart.id, timeout=COMMIT_TIMEOUT_S)
        self._cart = Cart()
        receipt = self._receipt(committed, cart.id)
        self._show(*customer_screen.for_receipt(receipt))
        if committed.new:
            SALES.labels(self.till_id).inc()
            self.registry.tell("forwarder", "kick")
            self._open_drawer()
            if self._printer is not None:
                self.registry.tell(SPOOLER, "printer_ready", self._printer)  # the job is already on disk
            log.info("till %s: sale %s (seq %d) committed, total %s", self.till_id, committed.id, committed.seq,
                     total.format())
        self._changed(show=False)  # the customer keeps seeing their change until the next scan
        return receipt

    def _restore(self, saved: dict[str, Any]) -> None:
        """Take up the saved session and cart. What no longer makes sense is dropped with a log line,
        never a failed start: a product gone from the catalog loses its line, and a cart that was
        completed just before the restart (its sale is on disk) gives way to a new one."""
        session, cart = saved.get("session"), saved.get("cart")
        if isinstance(session, dict) and all(isinstance(session.get(k), str) for k in ("id", "cashier")):
            self._session = {"id": session["id"], "cashier": session["cashier"]}
        if self._session is None or not isinstance(cart, dict) or not isinstance(cart.get("id"), str):
            return
        if self.registry.ask("outbox", "committed", cart["id"]) is not None:
            log.info("till %s: cart %s was completed before the restart; starting a new cart", self.till_id, cart["id"])
            return
        lines = []
        saved_lines = cart.get("lines")
        for saved_line in saved_lines if isinstance(saved_lines, list) else []:
            sku, quantity = (saved_line.get("sku"), saved_line.get("quantity")) if isinstance(saved_line, dict) \
                else (None, None)
            product = self._by_sku.get(sku) if isinstance(sku, str) else None
            if product is None or type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
                log.warning("till %s: dropping saved line %r: no such product or quantity", self.till_id, saved_line)
                continue
            lines.append(Line(product, quantity))
        amounts = cart.get("tendered")
        tendered = [amount for amount in amounts if type(amount) is int and amount > 0] \
            if isinstance(amounts, list) else []
        self._cart = Cart(cart["id"], lines, tendered if lines else [])
        log.info("till %s: carried on after a restart: session of %s, %d lines, %s tendered", self.till_id,
                 self._session["cashier"], len(lines), Money(sum(self._cart.tendered), self.currency).format())

    @staticmethod
    def _receipt(committed: Committed, cart_id: str) -> dict[str, Any]:
        return {"sale": str(committed.id), "seq": committed.seq, "cart": cart_id, **committed.body}

    def _show(self, top: str, bottom: str) -> None:
        if self._display is not None:
            try:
                self.registry.tell(device_actor_name(self._display), "show", top, bottom)
            except LookupError:
                pass  # the display is unplugged: nothing to show it on, and nothing else waits on it

    def _open_drawer(self) -> None:
        if self._drawer is None:
            return
        try:
            if self.registry.tell(device_actor_name(self._drawer), "kick"):
                return
            why = "is restarting"
        except LookupError:
            why = "is unplugged"
        log.warning("till %s: drawer %s %s; open it with its key", self.till_id, self._drawer, why)
        self._notify({"type": "till_message", "till": self.till_id,
                      "error": f"drawer {self._drawer} {why}: open it with its key"})

    def _changed(self, show: bool = True) -> dict[str, Any]:
        assert self._saved is not None
        self._saved.save(self.till_id, {
            "session": self._session,
            "cart": {"id": self._cart.id, "tendered": self._cart.tendered,
                     "lines": [{"sku": line.product.sku, "quantity": line.quantity} for line in self._cart.lines]},
        })
        state = self.state()
        self._notify({"type": "till", "till": self.till_id, "state": state})
        if show:
            self._show(*customer_screen.for_state(state, self._store_name))
        return state
