"""One till: the actor around its cart (actors.till.cart): the mailbox, saving, devices, notifying.

The session and the cart are saved on every change (actors.storage.saved_tills), so a restarted till, or a
restarted process, carries on where the cashier was.

The sale is complete only once the outbox actor has committed it to disk; then the drawer opens
(locally, at once), the receipt is spooled for the till's printer and the forwarder is woken; the
cashier waits for none of these. A commit that outlasts the till's wait is not a lost cart: the cart
is held (SAVING) and a resent completion finds the sale and does what its first try could not. The
drawer pulse a cash sale owes is saved with the till until the drawer actor confirms it sent the
pulse (it tells the till drawer_pulsed), so a kill -9 before that leaves it owed, to be opened once,
as a recorded recovery. The till tells and never asks: a drawer on a busy printer may take seconds,
and the till's mailbox serves the cashier meanwhile. Every change of the till's state is published,
so the web till shows a line added by the scanner as soon as it is scanned.

Scans are looked up in the store's local catalog (actors.catalog.local), through the till's own
read-only connection: the price in force now for this store and region, and the tax rule of the
item's class in this region; the line locks that offer (actors.till.cart). An unknown code, an
inactive item or one with no price in force is refused with a sentence. The catalog sync may apply a
new version at any moment; a till reads one whole version per scan.

The cart is priced with the promotions of the same local copy at every change (its source is the till's
_rules: actors.till.promoting); coupons are reserved at the hub or taken as public codes offline, and a
reservation the sale will not use is released, owed and saved with the till until the hub confirms
(actors.till.coupons).
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pykka
from prometheus_client import Counter

from actors.cash.desk import MOVES, DrawerDesk
from actors.catalog.local import CatalogMissing, LocalCatalog
from actors.devices.context import SPOOLER, Notify, device_actor_name
from actors.loyalty import local as loyalty_local
from actors.payments.asking import UNCONFIRMED, PaymentsHub, Unconfirmed
from actors.protocol import Rejected
from actors.returns.lookup import NAME as RETURNS_NAME
from actors.storage.audit import record_at_store
from actors.storage.db import connect
from actors.storage.outbox import Committed
from actors.storage.saved_tills import SavedTills
from actors.till import card_hub, coupons, customer_screen, customers, promoting, qr, rewards
from actors.till import tenders as tendering
from actors.till.cart import SAVING_MESSAGE, Cart, Discount, restore
from actors.till.returning import NO_RETURN, ReturnCart, restore_return
from actors.till.tenders import Tender
from edge_runtime import Actor
from novapos import logs, validators
from novapos.config.cash import CashConfig
from novapos.config.loyalty import LoyaltySettings
from novapos.config.returns import ReturnsPolicy
from novapos.config.terminal import TerminalSettings
from novapos.money import Money
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

SALES = Counter("novapos_edge_sales_completed_total", "Sales committed to the outbox", ["till"])
VOIDED = Counter("novapos_edge_carts_voided_total", "Carts voided before completion", ["till"])
CARD_TENDERS = Counter("novapos_edge_card_tenders_total", "Card tenders by how they ended (approved, declined, "
                       "cancelled, failed) and card reversals done (reversed)", ["till", "outcome"])
DRAWER_RECOVERIES = Counter("novapos_edge_drawer_recoveries_total",
                            "Drawers opened after their sale, for a pulse lost to a restart", ["till"])

COMMIT_TIMEOUT_S = 30.0  # a slow disk must not turn a committed sale into a crashed till
RESTORE_ASK_S = 2.0  # how long a starting till waits to learn whether its saved cart was sold
PULSE_CONFIRM_S = 10.0  # a drawer pulsed through its printer waits up to 5 s for a printer mid-job
INFLIGHT_STALE_S = 10.0  # a terminal request unanswered this long was lost with its actor: ask again
REVERSAL_RETRY_S = 2.0  # an owed card reversal the terminal did not confirm is sent again after this


@dataclass(frozen=True)
class TillDevices:
    """The names of the devices that serve this till (None: the till has none of that kind)."""
    printer: str | None = None
    drawer: str | None = None
    display: str | None = None
    terminal: str | None = None


@dataclass(frozen=True)
class Pulse:
    """A drawer pulse told to the drawer actor and not confirmed yet (kept in memory only: after a
    restart the saved owed pulse is offered again)."""
    sale: str
    recovery: bool
    deadline: float  # time.monotonic() past which the drawer's answer is overdue


ABANDONED = "sale abandoned after the card was approved"


@dataclass
class Reversal:
    """An approved card whose sale was abandoned: owed back to the customer until the terminal says reversed.
    Saved with the till, so a restart retries it; `by` and `approver` are audited with it."""
    tender: Tender
    by: str
    approver: str | None
    reason: str = ABANDONED
    """Why the money goes back, for the audit record: an abandoned sale, or an approval the till refused."""
    next_try: float = 0.0  # time.monotonic() before which it is not sent again
    failures: int = 0

    def summary(self) -> dict[str, Any]:
        return {"id": self.tender.id, "amount_minor": self.tender.amount, "failures": self.failures}

    def to_saved(self) -> dict[str, Any]:
        return {"tender": self.tender.to_saved(), "by": self.by, "approver": self.approver, "reason": self.reason}


@dataclass
class CardWork:
    """The till's business with its card terminal: which one, how, what was asked and not yet answered
    (tender id -> time.monotonic() of the request), and the reversals owed."""
    terminal: str | None
    settings: TerminalSettings
    inflight: dict[str, float] = field(default_factory=dict)
    reversals: list[Reversal] = field(default_factory=list)
    approvals: list[Tender] = field(default_factory=list)
    """Approved cards whose card.approved the outbox has not taken yet (busy): committed again every
    REVERSAL_RETRY_S until it is, saved with the till."""
    approvals_retry_at: float = 0.0
    ticking: bool = False


class _Asked:
    """Called by actors.till.rewards just before it asks the hub for a redemption: the till owes its reversal and saves
    that first, so a till that dies before the answer is saved gives it back after the restart (the hub holds a
    redemption until a sale uses it or the till gives it back). `added`: whether this ask made the owed entry (the
    answer then settles it), rather than an earlier unconfirmed ask of the same tender."""

    def __init__(self, till: TillActor, kind: rewards.Kind, tender_id: str) -> None:
        self.till, self.kind, self.tender_id, self.added = till, kind, tender_id, False

    def __call__(self) -> None:
        self.added = self.till._owe_unconfirmed(self.kind, self.tender_id)


class TillActor(Actor):
    """State of one till; its public methods are the till's protocol (answers are plain dicts)."""

    def __init__(self, till_id: str, currency: str, catalog: tuple[Path, str], store_name: str,
                 devices: TillDevices, notify: Notify, db_path: Path, max_change_minor: int, *,
                 terminal: TerminalSettings, cash: CashConfig | None = None,
                 returns: ReturnsPolicy | None = None, payments: PaymentsHub | None = None,
                 loyalty: LoyaltySettings | None = None) -> None:
        """`catalog`: the local catalog's file and the store's region (its prices and tax rates); `terminal`: how
        the till works its card terminal (the store's [terminal] settings); `cash`: the store's cash control;
        `returns`: the store's returns policy; `payments`: the way to the hub's payments (QR payments and their
        refunds; None: the till takes none)."""
        super().__init__()
        self._db_path = db_path
        self._saved: SavedTills | None = None
        self.till_id = till_id
        self.currency = currency
        self._max_change = max_change_minor
        self._store_name = store_name
        self._printer = devices.printer
        self._drawer = devices.drawer
        self._display = devices.display
        self._notify = notify
        self._catalog = LocalCatalog(catalog[0], store_name, catalog[1])
        self._region = catalog[1]
        self._session: dict[str, Any] | None = None
        self._cart = self._new_cart()
        self._drawer_owed: str | None = None  # the sale whose drawer pulse no drawer actor has confirmed yet
        self._pulse: Pulse | None = None
        self._cash = cash or CashConfig()
        self._desk: DrawerDesk | None = None  # the drawer session (actors.cash): opened in started()
        self._returns = returns or ReturnsPolicy()
        self._return: ReturnCart | None = None  # the till holds a sale cart, or this return in its place
        self._cards = CardWork(devices.terminal, terminal)
        self._payments = payments
        self._qr_polling = False  # a qr_tick is scheduled
        self._loyalty = loyalty or LoyaltySettings()
        self._loyalty_db: Any = None  # the store's customer cache and offline points ledger: opened in started()
        self._customer: loyalty_local.Profile | None = None  # who the cart's customer is, as the till shows them
        self._owed: list[rewards.Owed] = []  # redemptions given back and not yet confirmed by the hub
        self._owed_ticking = False
        self._coupon_releases: list[coupons.Release] = []
        self._releasing = False  # a coupon_tick is scheduled

    def started(self) -> None:
        self._saved = SavedTills(self._db_path)
        self._loyalty_db = connect(self._db_path)
        self._desk = DrawerDesk(self._db_path, self.till_id, self.currency, self._cash)
        saved = self._saved.load(self.till_id)
        if saved is not None:
            self._restore(saved)
            self._save()  # what the restore dropped stays dropped: its warnings are not repeated every start
        self._card_work()  # a card pending or a reversal owed before the restart: ask the terminal how it ended
        self._qr_work()  # a QR payment pending before the restart: ask the hub how it ended
        self._owed_work()  # redemptions given back before the restart and not confirmed by the hub
        self._coupon_work()  # coupon releases owed before the restart

    def stopping(self) -> None:
        self._catalog.close()
        if self._loyalty_db is not None:
            self._loyalty_db.close()
        if self._desk is not None:
            self._desk.close_db()
        if self._saved is not None:
            self._saved.close()

    def _new_cart(self) -> Cart:
        return Cart(self.currency, self._max_change, source=self._rules)

    # -- promotions and coupons (actors.till.promoting, actors.till.coupons) ------------------------

    def _rules(self) -> promoting.Pricing:
        """The promotions the cart is priced with now: the store's local copy (indexed once per catalog version by
        LocalCatalog.promotions), at this moment, for this store and region."""
        now_ms = int(time.time() * 1000)
        try:
            store = self._catalog.promotions()
        except CatalogMissing:
            return replace(promoting.NO_PRICING, store=self._store_name, region=self._region, at_ms=now_ms)
        return promoting.Pricing(store.catalog_version, store.rules, self._store_name, self._region, now_ms)

    def add_coupon(self, code: str) -> dict[str, Any] | Rejected:
        """A coupon code for the sale: reserved at the hub (online), or a promotion's public code (offline too); its
        promotion applies from now on when its rules allow (re-evaluated at every change)."""
        if (refused := self._selling()) is not None:
            return refused
        assert self._session is not None
        if (refused := self._cart.may_add_coupon(code)) is not None:
            return refused
        found = coupons.reserve(self._payments, self._rules(), code, self.till_id, self._session["cashier"],
                                self._cart.customer)
        if isinstance(found, coupons.Release):
            self._owe_releases([found.coupon], found.reason)
            self._save()
            return Rejected("conflict", f"the hub did not confirm coupon {code}: try again")
        if isinstance(found, Rejected):
            return found
        if (refused := self._cart.add_coupon(found)) is not None:
            self._owe_releases([found], "the cart refused it")
            self._save()
            return refused
        applied = next((a for a in self._cart.priced.applied if a.promotion == found.promotion), None)
        log.info("till %s: coupon for promotion %s added to cart %s%s (%s)", self.till_id, found.promotion,
                 self._cart.id, " offline" if found.offline else "", "applied" if applied else "not applied yet")
        return self._changed()

    def remove_coupon(self, code: str) -> dict[str, Any] | Rejected:
        """Take a coupon off the sale; its reservation is released at the hub (owed until confirmed)."""
        if (refused := self._selling()) is not None:
            return refused
        removed = self._cart.remove_coupon(code)
        if isinstance(removed, Rejected):
            return removed
        self._owe_releases([removed], "taken off the sale")
        return self._changed()

    def _owe_releases(self, held: list[promoting.Coupon], reason: str) -> None:
        """Owe a release for each reservation at the hub (saved at the caller's _changed/_save), asked as soon as
        the till's mailbox is free: the cashier never waits for the hub to give a coupon back."""
        by = self._session["cashier"] if self._session is not None else f"till:{self.till_id}"
        owed = [coupons.Release(coupon, by, reason) for coupon in held if not coupon.offline]
        self._coupon_releases += owed
        promoting.COUPONS.labels(self.till_id, "release_owed").inc(len(owed))
        if owed:
            self.send_after(0.0, "coupon_release_now")

    def coupon_release_now(self) -> None:
        """Ask the hub for the releases owed (just after a void or a coupon taken off)."""
        self._coupon_work()

    def coupon_tick(self) -> None:
        """Every coupons.RETRY_S while a release is owed: ask the hub again."""
        self._releasing = False
        self._coupon_work()

    def _coupon_work(self) -> None:
        """Ask the hub for each owed release that is due; those it did not confirm are asked again later."""
        now, settled = time.monotonic(), False
        for owed in list(self._coupon_releases):
            if now < owed.next_try:
                continue
            if coupons.release(self._payments, owed, self.till_id):
                self._coupon_releases.remove(owed)
                settled = True
                continue
            if owed.failures == 0:
                log.warning("till %s: the release of coupon reservation %s is owed and will be retried",
                            self.till_id, owed.coupon.redemption)
            owed.failures += 1
            owed.next_try = now + coupons.RETRY_S
        if settled and self._saved is not None:
            self._save()
        if self._coupon_releases and not self._releasing:
            self._releasing = True
            self.send_after(coupons.RETRY_S, "coupon_tick")

    def _restore_releases(self, saved: Any) -> None:
        for index, raw in enumerate(saved if isinstance(saved, list) else []):
            try:
                self._coupon_releases.append(coupons.saved_release(f"saved coupon release {index}", raw))
            except validators.Invalid as exc:  # never silently: the hub releases it after its hold time
                log.error("till %s: a saved coupon release cannot be read (the hub's hold time frees it): %s",
                          self.till_id, exc)

    def state(self) -> dict[str, Any]:
        """`drawer_owed`: the sale whose drawer the cashier may open (POST .../drawer); None while its
        pulse is on its way to the drawer."""
        cart = {**NO_RETURN, **self._cart.summary()} if self._return is None else self._return.summary()
        return {"till": self.till_id, "session": self._session, **cart,
                "drawer_owed": None if self._pulsing(self._drawer_owed) else self._drawer_owed,
                "drawer_session": self.desk.state(),
                "card_reversals": [owed.summary() for owed in self._cards.reversals],
                **self._loyalty_state(), "coupon_releases_owed": len(self._coupon_releases)}

    @property
    def _open_cart(self) -> Cart | ReturnCart:
        """The cart the till holds: the sale's, or the return's in its place."""
        return self._cart if self._return is None else self._return

    def _pulsing(self, sale: str | None) -> bool:
        return self._pulse is not None and self._pulse.sale == sale

    def _no_session(self) -> Rejected | None:
        if self._session is None:
            return Rejected("conflict", f"nobody is logged in at till {self.till_id}: log in with your PIN first")
        return None

    def log_in(self, session: dict[str, Any]) -> dict[str, Any]:
        """A user logged in at this till with their PIN (edge.api.login): {id, cashier (login), name, roles,
        offline}. It replaces the session of whoever was logged in before; the open cart stays with the till."""
        before = self._session
        self._session = session
        log.info("till %s: %s logged in%s%s", self.till_id, session["cashier"], " offline" if session["offline"] else "",
                 f" after {before['cashier']}" if before is not None and before["cashier"] != session["cashier"] else "")
        return self._changed()

    def log_out(self) -> dict[str, Any]:
        """Nobody is logged in any more; the open cart, its lines and tenders stay for the next login."""
        if self._session is not None:
            log.info("till %s: %s logged out, %d lines left in the cart", self.till_id, self._session["cashier"],
                     len(self._cart.lines))
            self._session = None
            return self._changed()
        return self.state()

    @staticmethod
    def restored_session(saved: dict[str, Any]) -> dict[str, Any]:
        """A saved login session checked as if a client had sent it (Invalid names the bad field)."""
        roles = saved.get("roles", [])
        if not isinstance(roles, list) or len(roles) > 8:
            raise validators.Invalid("saved roles", "must be a list of at most 8 roles")
        cashier = validators.text("saved cashier", saved.get("cashier"), max_length=64)
        return {"id": validators.uuid_text("saved session id", saved.get("id")), "cashier": cashier,
                "name": validators.text("saved name", saved.get("name", cashier)),
                "roles": [validators.token("saved role", role) for role in roles],
                "offline": saved.get("offline") is True}

    def add_line(self, barcode: str, quantity: int) -> dict[str, Any] | Rejected:
        if (refused := self._no_session()) is not None:
            return refused
        if (closed := self.desk.may_sell(self._drawer is not None)) is not None:
            return closed
        offer = self._catalog.offer(barcode, int(time.time() * 1000))
        if isinstance(offer, str):
            return Rejected("not_found", offer)
        return self._open_cart.add(offer, quantity) or self._changed()

    def remove_line(self, line: str) -> dict[str, Any] | Rejected:
        """Take a line off the cart by its id: scanned by mistake, or the customer changed their mind. While a
        return is open, the return cart takes items off by SKU: a new line's id is its SKU there."""
        if self._return is not None:
            line = next((new.sku for new in self._return.lines if new.id == line), line)
        return self._no_session() or self._open_cart.remove(line) or self._changed()

    def _selling(self) -> Rejected | None:
        """Quantities, price overrides and discounts are for a sale's lines, not while a return is open."""
        if self._return is not None:
            return Rejected("conflict", "a return is open at this till: complete or cancel it before changing "
                                        "quantities, prices or discounts")
        return self._no_session()

    def set_quantity(self, line_id: str, quantity: int) -> dict[str, Any] | Rejected:
        return self._selling() or self._cart.set_quantity(line_id, quantity) or self._changed()

    def override_price(self, line_id: str, unit_minor: int, reason: str, actor: str,
                       approver: str | None) -> dict[str, Any] | Rejected:
        """Sell a line at another unit price, with a reason; audited as till.price_override (old and new price,
        who did it and the manager who approved it). The line records its approver (the actor when their own
        role allows overrides)."""
        def change() -> Rejected | None:
            before = self._cart.override_price(line_id, unit_minor, reason, approver or actor)
            if isinstance(before, Rejected):
                return before
            return self._audit("till.price_override", actor, approver, before.sku, reason, {
                "line": line_id, "list_minor": before.offer.unit_minor, "old_minor": before.unit_minor,
                "new_minor": unit_minor, "quantity": before.quantity})
        return self._selling() or self._audited(change) or self._changed()

    def discount_line(self, line_id: str, discount: Discount | None, actor: str,
                      approver: str | None) -> dict[str, Any] | Rejected:
        """Set (a Discount) or take off (None) a line's discount; a discount given is audited as till.discount."""
        def change() -> Rejected | None:
            if (refused := self._cart.discount_line(line_id, discount)) is not None or discount is None:
                return refused
            line = self._cart.line(line_id)
            assert not isinstance(line, Rejected)
            return self._audit("till.discount", actor, approver, line.sku, discount.reason, {
                "scope": "line", "line": line_id, "kind": discount.kind, "value": discount.value,
                "amount_minor": line.discount_minor})
        return self._selling() or self._audited(change) or self._changed()

    def discount_order(self, discount: Discount | None, actor: str,
                       approver: str | None) -> dict[str, Any] | Rejected:
        """Set or take off the order discount; a discount given is audited as till.discount."""
        def change() -> Rejected | None:
            if (refused := self._cart.discount_order(discount)) is not None or discount is None:
                return refused
            return self._audit("till.discount", actor, approver, self._cart.id, discount.reason, {
                "scope": "order", "kind": discount.kind, "value": discount.value,
                "amount_minor": sum(line.order_share for line in self._cart.lines)})
        return self._selling() or self._audited(change) or self._changed()

    def _audited(self, change: Any) -> Rejected | None:
        """Run a privileged change of the cart and its audit record together: when the record cannot be
        written, the cart is put back as it was (no unaudited override or discount)."""
        before = copy.deepcopy(self._cart)
        refused: Rejected | None = change()
        if refused is not None:
            self._cart = before
        return refused

    def _audit(self, action: str, actor: str, approver: str | None, target: str, reason: str,
               details: dict[str, Any]) -> Rejected | None:
        recorded = record_at_store(self.registry, action, actor, self.till_id, approver=approver, target=target,
                                   reason=reason, details=details)
        if isinstance(recorded, Rejected):
            log.warning("till %s: %s not recorded, so not done: %s", self.till_id, action, recorded.message)
            return recorded
        return None

    def void_cart(self, by: str | None = None, approver: str | None = None) -> dict[str, Any] | Rejected:
        """Abandon the cart (the customer left): its lines and any cash taken go, every approved card is
        reversed at the terminal (owed, saved and retried until it is), and a new cart begins. A void after
        tendering began is audited (till.void) with `by` and the `approver` whose override allowed it.

        Nothing is committed, so the old cart's id can never complete; it is logged and counted."""
        if self._return is not None:
            return self.cancel_return()
        if (refused := self._no_session() or self._cart.may_void()) is not None:
            return refused
        assert self._session is not None
        if (refused := self._give_back_qr(self._cart.tenders.items, by or self._session["cashier"], approver,
                                          f"cart {self._cart.id} voided")) is not None:
            return refused
        if self._cart.tenders.began():
            redeemed = self._cart.tenders.redeemed()  # points and gift cards: given back after the void (audited)
            taken = self._cart.void_tenders()
            assert not isinstance(taken, Rejected)  # may_void refused a pending card; something was taken
            self._give_back_rewards(redeemed, by or self._session["cashier"], f"cart {self._cart.id} voided")
            self._owe_reversals(taken, by or self._session["cashier"], approver, f"cart {self._cart.id} voided")
        self._owe_releases(self._cart.coupons, f"cart {self._cart.id} voided")
        voided, self._cart = self._cart, self._new_cart()
        VOIDED.labels(self.till_id).inc()
        log.warning("till %s: cart %s voided by %s: %d lines, total %s, cash given back %s", self.till_id,
                    voided.id, self._session["cashier"], len(voided.lines), voided.total().format(),
                    voided.paid().format())
        return self._changed()

    def void_tenders(self, by: str | None = None, approver: str | None = None) -> dict[str, Any] | Rejected:
        """Undo the tenders taken for the current cart: the cash goes back to the customer, approved cards
        are reversed at the terminal (audited till.void with `by` and `approver`)."""
        if (refused := self._no_session()) is not None:
            return refused
        assert self._session is not None
        if self._return is not None:  # a return takes cash only (an exchange that costs more)
            return self._return.give_cash_back() or self._changed()
        paid_by_qr = any(tender.method == "qr" and tender.state == "approved" for tender in self._cart.tenders.items)
        if (refused := self._give_back_qr(self._cart.tenders.items, by or self._session["cashier"], approver,
                                          f"tenders of cart {self._cart.id} voided")) is not None:
            return refused
        redeemed = self._cart.tenders.redeemed()
        taken = self._cart.void_tenders()
        if isinstance(taken, Rejected):
            return self._changed() if paid_by_qr and self._cart.tenders.pending() is None else taken
        self._give_back_rewards(redeemed, by or self._session["cashier"], f"tenders of cart {self._cart.id} voided")
        self._owe_reversals(taken, by or self._session["cashier"], approver, f"tenders of cart {self._cart.id} voided")
        return self._changed()

    # -- cards -------------------------------------------------------------------------------

    def tender_card(self, amount_minor: int, tender_id: str) -> dict[str, Any] | Rejected:
        """Start a card payment of `amount_minor` (at most what is due) at the till's terminal, under the
        reference derived from `tender_id`. Saved before the terminal hears of it, so a crash leaves a
        pending tender whose STATUS tells how it ended; a resend of the same id starts nothing."""
        if (refused := self._no_session()) is not None:
            return refused
        if self._cards.terminal is None:
            return Rejected("conflict", f"till {self.till_id} has no card terminal: take cash")
        known = self._cart.tenders.find(tender_id) is not None
        tender = self._cart.start_card(amount_minor, tender_id, self._cards.terminal, int(time.time() * 1000))
        if isinstance(tender, Rejected):
            return tender
        if known:
            return self.state()
        offline = (card_hub.begin(self.registry, self.till_id, tender, self.currency)
                   if self._cards.settings.offline_cards else False)
        if isinstance(offline, Rejected):  # the hub is away and the card is over the offline limits
            self._cart.tenders.items.remove(tender)
            return offline
        assert tender.card is not None
        tender.card.offline = offline
        state = self._changed()
        log.info("till %s: card tender %s of %s started%s", self.till_id, tender.id, self._money(tender.amount),
                 " offline (the terminal stores the card)" if offline else "")
        self._to_terminal(tender, "pay_offline" if offline else "pay")
        return state

    def cancel_tender(self, tender_id: str) -> dict[str, Any] | Rejected:
        """Cancel a card payment still waiting for the card (the customer changed their mind): the terminal
        cancels it, and the tender shows cancelled once its STATUS says so. A payment already processing
        cannot be cancelled: the issuer decides, and an approval is then voided like any other."""
        tender = self._cart.tenders.find(tender_id)
        if tender is None:
            return Rejected("not_found", "this cart has no such tender")
        if tender.state != "pending":
            return self.state() if tender.state == "cancelled" else Rejected(
                "conflict", f"this tender is {tender.state}: only a payment in progress can be cancelled")
        if tender.method == "qr":
            return self._cancel_qr(tender)
        if tender.stage == "processing":
            return Rejected("conflict", "the card is being processed: wait for the answer, then void it if needed")
        if tender.cancel is None:
            tender.cancel = "cashier"
            self._save()
        self._to_terminal(tender, "cancel")
        return self.state()

    def remove_tender(self, tender_id: str, by: str | None = None, approver: str | None = None) -> dict[str, Any] | Rejected:
        """Give back one tender: cash by hand, a card approval reversed at the terminal (audited till.void)."""
        if (refused := self._no_session()) is not None:
            return refused
        assert self._session is not None
        if (paid := self._cart.tenders.find(tender_id)) is not None and paid.method == "qr" and paid.state == "approved":
            return self._give_back_qr([paid], by or self._session["cashier"], approver,
                                      f"tender {paid.id} of cart {self._cart.id} voided") or self._changed()
        tender = self._cart.remove_tender(tender_id)
        if isinstance(tender, Rejected):
            return tender
        self._give_back_rewards([tender], by or self._session["cashier"],
                                f"tender {tender.id} of cart {self._cart.id} voided")
        self._owe_reversals([tender] if tender.method == "card" else [], by or self._session["cashier"], approver,
                            f"tender {tender.id} of cart {self._cart.id} voided")
        return self._changed()

    def _owe_reversals(self, cards: list[Tender], by: str, approver: str | None, what: str) -> None:
        """Audit the void (till.void) and owe a reversal for each approved card: saved with the till at the
        caller's _changed(), sent now, and retried until the terminal says reversed."""
        card_minor = sum(card.amount for card in cards)
        self._record("till.void", by, approver, target=self._cart.id, reason=what,
                    details={"cards": len(cards), "card_minor": card_minor})
        for card in cards:
            self._cards.reversals.append(Reversal(card, by, approver))
            card_hub.abandoned(self.registry, card, by)
        self._card_work()

    def refund_to_card(self, amount_minor: int, reference: str, refund_id: str) -> dict[str, Any]:
        """The returns' path to the terminal: refund `amount_minor` to the card of the payment `reference`,
        under the terminal reference derived from `refund_id` (idempotent: a resend refunds once). Answers
        the terminal's answer (actors.devices.terminal: `answered`, stage...); an unanswered refund is asked
        again with the same refund_id, never a new one. Blocks this till's mailbox for one terminal round
        trip (at most its gone-detection, about 3 s)."""
        if self._cards.terminal is None:
            return {"answered": False, "refused": None, "message": f"till {self.till_id} has no card terminal"}
        log.info("till %s: refund %s of %s to the card of payment %s", self.till_id, refund_id,
                 self._money(amount_minor), reference)
        try:
            answer: dict[str, Any] = self.registry.ask(
                device_actor_name(self._cards.terminal), "refund", amount_minor, self.currency,
                tendering.reference_for(refund_id), timeout=10.0)
        except (LookupError, pykka.Timeout) as exc:
            return {"answered": False, "refused": None, "message": f"terminal unreachable: {type(exc).__name__}"}
        return answer

    def _to_terminal(self, tender: Tender, op: str) -> None:
        """Tell the terminal actor to do `op` for this tender; it answers through terminal_answer."""
        assert tender.card is not None and self._cards.terminal is not None
        self._cards.inflight[tender.id] = time.monotonic()
        try:
            told = self.registry.tell(device_actor_name(self._cards.terminal), "request", op, tender.card.reference,
                                      tender.amount, self.currency, self.actor_name, tender.id)
        except LookupError:
            told = False
        if not told:  # unplugged: the card stays as it was, and the next round asks again
            del self._cards.inflight[tender.id]
            self._terminal_silent(tender, "the terminal is unplugged")
        self._card_work()

    def _terminal_silent(self, tender: Tender, why: str) -> None:
        if tender.state == "pending" and tender.stage != "unreachable":
            log.warning("till %s: card tender %s: %s; it stays pending until the terminal answers", self.till_id,
                        tender.id, why)
            tender.stage, tender.message = "unreachable", tendering.STAGE_WORDS["unreachable"]
            self._changed(show=False)

    def terminal_answer(self, tender_id: str, op: str, answer: dict[str, Any]) -> None:
        """From the terminal actor: how `op` for the tender `tender_id` went (a pending card or an owed reversal)."""
        self._cards.inflight.pop(tender_id, None)
        owed = next((owed for owed in self._cards.reversals if owed.tender.id == tender_id), None)
        if owed is not None:
            self._reversal_answer(owed, answer)
            return
        tender = self._cart.tenders.find(tender_id)
        if tender is None or tender.state != "pending":
            return  # an answer for a tender already settled (a late duplicate)
        if not answer.get("answered"):
            if op in ("pay", "pay_offline") and answer.get("refused"):  # the terminal refused it: nothing was charged
                tender.state, tender.stage = "failed", ""
                tender.message = ("the terminal is busy with another payment: finish it there, then try again"
                                  if answer["refused"] == "BUSY" else f"the terminal refused: {answer.get('message')}")
                CARD_TENDERS.labels(self.till_id, "failed").inc()
                card_hub.ended(self.registry, self.till_id, tender, self.currency)
                self._changed()
            else:
                self._terminal_silent(tender, str(answer.get("message")))
            return
        if tendering.settle(tender, answer):
            if tender.state != "pending":
                CARD_TENDERS.labels(self.till_id, tender.state).inc()
                log.info("till %s: card tender %s %s (%s)", self.till_id, tender.id, tender.state, tender.message)
                if tender.state == "approved":
                    if not card_hub.approved(self.registry, self.till_id, tender, self.currency):
                        self._cards.approvals.append(tender)
                        self._cards.approvals_retry_at = time.monotonic() + REVERSAL_RETRY_S
                        self._card_work()
                else:
                    card_hub.ended(self.registry, self.till_id, tender, self.currency)
                if tender.state == "failed" and answer.get("stage") == "approved":  # charged, yet no sale's
                    self._owe_refused_approval(tender)
            self._changed()

    def _owe_refused_approval(self, tender: Tender) -> None:
        """An approval the till refused (another amount than asked, an offline one without its card token) still
        charged the card: owe its reversal (VOID) as for an abandoned sale, saved and retried until reversed."""
        by = self._session["cashier"] if self._session is not None else "till"
        self._cards.reversals.append(Reversal(tender, by, None, f"the till refused the approval: {tender.message}"))
        log.warning("till %s: card tender %s was approved but refused by the till (%s): reversing it", self.till_id,
                    tender.id, tender.message)
        self._card_work()

    def _reversal_answer(self, owed: Reversal, answer: dict[str, Any]) -> None:
        stage = answer.get("stage")
        if answer.get("answered") and stage in ("reversed", "cancelled", "declined", "error", "idle"):
            self._cards.reversals.remove(owed)
            card = owed.tender
            if stage == "reversed":
                self._record("till.card_reversed", owed.by, owed.approver, target=card.id,
                            reason=owed.reason, key=f"card_reversed:{card.id}",
                            details={"amount_minor": card.amount, "reference": card.card.reference if card.card else ""})
                CARD_TENDERS.labels(self.till_id, "reversed").inc()
                log.info("till %s: card tender %s reversed at the terminal", self.till_id, card.id)
            else:  # never approved after all: nothing to give back
                log.warning("till %s: card tender %s needs no reversal: the terminal says %s", self.till_id, card.id, stage)
            self._changed(show=False)
            return
        owed.next_try = time.monotonic() + REVERSAL_RETRY_S
        if owed.failures == 0:
            log.warning("till %s: the reversal of card tender %s is owed and will be retried: %s", self.till_id,
                        owed.tender.id, answer.get("message") or f"the terminal says {stage}")
        owed.failures += 1

    def card_tick(self) -> None:
        """Every poll_ms while a card is pending or a reversal owed: ask the terminal what is not asked yet."""
        self._cards.ticking = False
        now = time.monotonic()
        if self._cards.approvals and now >= self._cards.approvals_retry_at:
            self._commit_owed_approvals(now)
        for owed in list(self._cards.reversals):
            if owed.tender.id not in self._cards.inflight and now >= owed.next_try:
                self._send_reversal(owed)
        tender = self._cart.tenders.pending()
        if tender is not None and now - self._cards.inflight.get(tender.id, -INFLIGHT_STALE_S) >= INFLIGHT_STALE_S:
            waited_s = time.time() - tender.started_ms / 1000
            if tender.cancel is None and waited_s > self._cards.settings.timeout_s and tender.stage == "waiting_for_card":
                tender.cancel = "timeout"
                self._save()
                log.warning("till %s: card tender %s timed out after %.0f s without a card: cancelling it",
                            self.till_id, tender.id, waited_s)
            self._to_terminal(tender, "cancel" if tender.cancel and tender.stage == "waiting_for_card" else "status")
        self._card_work()

    def _commit_owed_approvals(self, now: float) -> None:
        """Commit the approvals the outbox refused before, in order; the first refused again waits another round."""
        for tender in list(self._cards.approvals):
            if not card_hub.commit_approval(self.registry, self.till_id, tender, self.currency):
                self._cards.approvals_retry_at = now + REVERSAL_RETRY_S
                break
            self._cards.approvals.remove(tender)
            log.info("till %s: card.approved of card tender %s committed at last", self.till_id, tender.id)
            self._save()

    def _send_reversal(self, owed: Reversal) -> None:
        assert owed.tender.card is not None and self._cards.terminal is not None
        self._cards.inflight[owed.tender.id] = time.monotonic()
        try:
            told = self.registry.tell(device_actor_name(self._cards.terminal), "request", "void",
                                      owed.tender.card.reference, owed.tender.amount, self.currency,
                                      self.actor_name, owed.tender.id)
        except LookupError:
            told = False
        if not told:
            del self._cards.inflight[owed.tender.id]
            owed.next_try = time.monotonic() + REVERSAL_RETRY_S

    def _card_work(self) -> None:
        """Schedule the next card_tick if a card is pending or a reversal owed (one tick at a time); never
        without a terminal (a config that lost it: the restore logged what is owed)."""
        if self._cards.terminal is None:
            return
        if not self._cards.ticking and (self._cart.tenders.pending() is not None or self._cards.reversals
                                        or self._cards.approvals):
            self._cards.ticking = True
            self.send_after(self._cards.settings.poll_ms / 1000, "card_tick")

    # -- customers, points and gift cards (actors.till.customers, actors.till.rewards) ------------

    def _loyalty_state(self) -> dict[str, Any]:
        """The cart's customer as the till shows them (None when none is attached), and how many redemptions given
        back the hub has not confirmed yet."""
        attached = self._customer if self._customer is not None and self._customer.id == self._cart.customer else None
        return {"customer": None if attached is None else attached.to_wire(), "loyalty_reversals_owed": len(self._owed)}

    def find_customer(self, query: str) -> dict[str, Any] | Rejected:
        """Customers a phone, an email or a (scanned) card number names: the hub's answer, or offline the store's
        recent customers (said so)."""
        return self._no_session() or customers.find(self._payments, self._loyalty_db, query,
                                                     self._loyalty.customer_cache_size)

    def enrol_customer(self, details: dict[str, str], actor: str, request: str | None = None) -> dict[str, Any] | Rejected:
        """Enrol a new customer at the hub and attach them to the cart; `request`: the enrolment's id, kept by the
        page across its retries (customers.enrol makes one when none is given)."""
        if (refused := self._no_session()) is not None:
            return refused
        made = customers.enrol(self._payments, self._loyalty_db, details, actor, self._loyalty.customer_cache_size,
                               request or str(uuid7()))
        if isinstance(made, Rejected):
            return made
        log.info("till %s: customer %s enrolled by %s", self.till_id, made.id, actor)
        return self.attach_customer(made.id)

    def customer_overview(self, customer: str | None = None) -> dict[str, Any] | Rejected:
        """The 360 of `customer` (or of the cart's): points, tier, what expires soon, recent orders."""
        customer = customer or self._cart.customer
        if customer is None:
            return Rejected("conflict", "no customer is attached to this sale")
        return self._no_session() or customers.overview(self._payments, self._loyalty_db, customer,
                                                        self._loyalty.customer_cache_size)

    def attach_customer(self, customer: str) -> dict[str, Any] | Rejected:
        """Make the sale the customer's (found or enrolled lately); refused once their points paid part of it."""
        if (refused := self._selling()) is not None:
            return refused
        if self._cart.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if self._cart.customer != customer and any(t.method == "points" for t in self._cart.tenders.redeemed()):
            return Rejected("conflict", "points of the attached customer paid part of this sale: void that tender "
                                        "before changing the customer")
        known = customers.profile(self._payments, self._loyalty_db, customer, self._loyalty.customer_cache_size)
        if known is None:
            return Rejected("not_found", "this customer is not known here: find them first")
        before = (self._cart.customer, self._cart.tier)
        self._cart.customer, self._cart.tier = known.id, known.tier or None
        if (refused := self._cart.reprice()) is not None:  # the customer's promotions, refused once lines froze
            self._cart.customer, self._cart.tier = before
            return refused
        self._customer = known
        return self._changed()

    def detach_customer(self) -> dict[str, Any] | Rejected:
        if (refused := self._selling()) is not None:
            return refused
        if self._cart.saving:
            return Rejected("conflict", SAVING_MESSAGE)
        if any(tender.method == "points" for tender in self._cart.tenders.redeemed()):
            return Rejected("conflict", "the customer's points paid part of this sale: void that tender first")
        before = (self._cart.customer, self._cart.tier)
        self._cart.customer, self._cart.tier = None, None
        if (refused := self._cart.reprice()) is not None:
            self._cart.customer, self._cart.tier = before
            return refused
        self._customer = None
        return self._changed()

    def tender_points(self, amount_minor: int, tender_id: str) -> dict[str, Any] | Rejected:
        """Pay up to `amount_minor` with the attached customer's points (what whole points buy): online through the
        hub, offline within the store's budget and the customer's cap. A resend of the same id takes them once."""
        if (refused := self._selling()) is not None:
            return refused
        assert self._session is not None
        if self._cart.tenders.find(tender_id) is not None:
            return self.state()
        asked = _Asked(self, "points", tender_id)
        tender = rewards.redeem_points(self._payments, self._loyalty_db, self._cart, amount_minor, tender_id,
                                       self.till_id, self._session["cashier"], asked)
        return self._redeemed(tender, "points", tender_id, asked)

    def tender_gift_card(self, card: str, amount_minor: int, tender_id: str) -> dict[str, Any] | Rejected:
        """Pay `amount_minor` from a gift card, through the hub (never offline). A resend takes it once."""
        if (refused := self._selling()) is not None:
            return refused
        assert self._session is not None
        if self._cart.tenders.find(tender_id) is not None:
            return self.state()
        asked = _Asked(self, "gift_card", tender_id)
        tender = rewards.redeem_gift_card(self._payments, self._cart, card, amount_minor, tender_id, self.till_id,
                                          self._session["cashier"], asked)
        return self._redeemed(tender, "gift_card", tender_id, asked)

    def _owe_unconfirmed(self, kind: rewards.Kind, tender_id: str) -> bool:
        """Owe the hub the reversal of the tender's redemption after the grace (a retry of the same tender confirms
        it instead), saved at once; False when it is owed already."""
        redemption = rewards.redemption_for(tender_id)
        if any(owed.redemption == redemption for owed in self._owed):
            return False
        assert self._session is not None
        self._owed.append(rewards.Owed(kind, redemption, self._session["cashier"], f"unconfirmed {kind} tender {tender_id}",
                                       time.time() + rewards.UNCONFIRMED_GRACE_S))
        self._save()
        return True

    def _redeemed(self, tender: Tender | Rejected, kind: rewards.Kind, tender_id: str,
                  asked: _Asked) -> dict[str, Any] | Rejected:
        """After a points or gift card ask: an unconfirmed one stays owed back (after a grace for the retry), one the
        retry confirmed is owed no more, and the reversal owed while this ask was made (_Asked) is dropped when the
        hub said it took nothing (a refusal, or the store offline)."""
        redemption = rewards.redemption_for(tender_id)
        if isinstance(tender, Unconfirmed):
            self._owe_unconfirmed(kind, tender_id)
            self._owed_work()
            return tender
        if isinstance(tender, Rejected):
            if asked.added:
                self._owed = [owed for owed in self._owed if owed.redemption != redemption]
                self._save()
            return tender
        self._owed = [owed for owed in self._owed if owed.redemption != redemption]
        log.info("till %s: %s tender %s of %s taken", self.till_id, kind, tender.id, self._money(tender.amount))
        return self._changed()

    def _give_back_rewards(self, tenders: list[Tender], by: str, why: str) -> None:
        """Points and gift card tenders given back: offline points struck from the store's ledger, the rest owed to
        the hub (saved by the caller's _changed, asked now and until confirmed)."""
        owed = rewards.give_back(self._loyalty_db, [t for t in tenders if t.state == "approved"], by, why)
        if owed:
            self._owed += owed
            self._owed_work()

    def loyalty_tick(self) -> None:
        """Every rewards.RETRY_S while reversals are owed: ask the hub for each one due."""
        self._owed_ticking = False
        now, before = time.time(), len(self._owed)
        for owed in list(self._owed):
            if now >= owed.next_try and rewards.reverse(self._payments, owed):
                self._owed.remove(owed)
                log.info("till %s: %s redemption %s given back at the hub", self.till_id, owed.kind, owed.redemption)
            elif now >= owed.next_try:
                owed.next_try = now + rewards.RETRY_S
        if len(self._owed) != before:
            self._changed(show=False)
        self._owed_work()

    def _owed_work(self) -> None:
        rewards.OWED.labels(self.till_id).set(len(self._owed))
        if self._owed and not self._owed_ticking:
            self._owed_ticking = True
            self.send_after(rewards.RETRY_S if all(o.next_try > time.time() for o in self._owed) else 0.05,
                            "loyalty_tick")

    def _loyalty_receipt(self, cart: Cart) -> dict[str, Any]:
        """What the receipt shows beside the sale: the customer (card masked), the points redeemed and their
        balance after, each gift card (masked) with what is left on it."""
        paid = cart.tenders.redeemed()
        points = [tender.points for tender in paid if tender.points is not None]
        shown: dict[str, Any] = {}
        if cart.customer is not None and self._customer is not None and self._customer.id == cart.customer:
            shown["customer"] = {"name": self._customer.name, "card": loyalty_local.mask(self._customer.card_number),
                                 "tier": self._customer.tier}
        if points:
            shown["points"] = {"redeemed": sum(p.points for p in points), "balance": points[-1].balance,
                               "offline": any(p.offline for p in points)}
        cards = [{"card": t.gift_card.card, "amount": t.amount, "balance_minor": t.gift_card.balance_minor}
                 for t in paid if t.gift_card is not None]
        if cards:
            shown["gift_cards"] = cards
        return {"loyalty": shown} if shown else {}

    def _loyalty_printed(self, cart: Cart) -> dict[str, Any] | None:
        """What the printed receipt shows of loyalty beside the sale (which carries only ids and masked numbers):
        the customer's card masked, the points redeemed and the balance after them when the till learnt it, and
        each gift card masked with what is left on it. From the cart's tenders and the attached customer, both in
        the till's saved state, so a restart between a redemption and the sale still prints them; written in the
        print job, in the sale's transaction (the sale event stays as its contract says). No name: a receipt is
        left on counters and in bins."""
        shown = self._loyalty_receipt(cart).get("loyalty", {})
        printed: dict[str, Any] = {}
        if "customer" in shown:
            printed["card"] = shown["customer"]["card"]
        if "points" in shown:
            printed["points"] = {"redeemed": shown["points"]["redeemed"], "balance": shown["points"]["balance"]}
        if "gift_cards" in shown:
            printed["gift_cards"] = [{"card": card["card"], "balance_minor": card["balance_minor"]}
                                     for card in shown["gift_cards"]]
        return {"loyalty": printed} if printed else None

    def _restore_loyalty(self, saved: Mapping[str, Any]) -> None:
        problems: list[str] = []
        self._owed = rewards.restore_owed(saved.get("loyalty_reversals"), problems)
        if saved.get("customer") is not None:
            try:
                self._customer = loyalty_local.restore_profile(saved["customer"])
            except validators.Invalid as exc:
                problems.append(str(exc))
        for problem in problems:
            log.error("till %s: dropping what it saved about loyalty: %s", self.till_id, problem)

    # -- QR payments (actors.till.qr) ------------------------------------------------------------

    def tender_qr(self, amount_minor: int, tender_id: str) -> dict[str, Any] | Rejected:
        """Start a QR payment of `amount_minor` (at most what is due) through the hub, under `tender_id` (a resend
        starts nothing); the till's state then holds the tender, pending, with the pay URL to show as a QR code."""
        if (refused := self._selling()) is not None:
            return refused
        assert self._session is not None
        known = self._cart.tenders.find(tender_id) is not None
        tender = qr.start(self._payments, self._cart, amount_minor, tender_id, self.till_id, self._session["cashier"])
        if isinstance(tender, Rejected):
            return tender
        if known:
            return self.state()
        log.info("till %s: QR tender %s of %s started (intent %s)", self.till_id, tender.id,
                 self._money(tender.amount), tender.qr and tender.qr.intent)
        self._qr_work()
        return self._changed()

    def qr_code(self, tender_id: str) -> bytes | Rejected:
        """The pending QR tender's pay URL as an SVG QR code, for the page to show."""
        tender = self._cart.tenders.find(tender_id)
        if tender is None or tender.qr is None or tender.state != "pending":
            return Rejected("not_found", "this cart has no QR payment in progress with that id")
        return qr.svg(tender.qr.pay_url)

    def payment_event(self, event_type: str, body: dict[str, Any]) -> None:
        """From the store's payment-event consumer (actors.payments.events): the hub's payment.<state> event. One about
        this till's pending QR tender settles it at once (paid, failed, cancelled); any other is not the till's."""
        intent = qr.event_intent(event_type, body)
        tender = None if intent is None else self._cart.tenders.find(intent["tender_id"])
        if intent is not None and tender is not None and qr.settle(tender, intent):
            self._qr_settled(tender, f"event {event_type}")

    def qr_tick(self) -> None:
        """Every qr.POLL_S while a QR tender is pending: ask the hub how it stands (in case an event is late)."""
        self._qr_polling = False
        tender = self._cart.tenders.pending()
        if tender is not None and tender.method == "qr" and qr.poll(self._payments, tender, self.till_id):
            self._qr_settled(tender, "pay_status")
        self._qr_work()

    def _qr_work(self) -> None:
        pending = self._cart.tenders.pending()
        if not self._qr_polling and pending is not None and pending.method == "qr":
            self._qr_polling = True
            self.send_after(qr.POLL_S, "qr_tick")

    def _qr_settled(self, tender: Tender, how: str) -> None:
        qr.QR_TENDERS.labels(self.till_id, tender.state).inc()
        log.info("till %s: QR tender %s %s (%s), learnt from %s", self.till_id, tender.id, tender.state,
                 tender.message, how)
        self._changed()

    def _cancel_qr(self, tender: Tender) -> dict[str, Any] | Rejected:
        """Cancel a pending QR payment at the hub (pay_cancel); a customer who paid meanwhile leaves it paid."""
        actor = self._session["cashier"] if self._session is not None else f"till:{self.till_id}"
        refused = qr.cancel(self._payments, tender, actor, self.till_id)
        if tender.state != "pending":
            self._qr_settled(tender, "pay_cancel")
        else:
            self._save()
        return refused or self.state()

    def _give_back_qr(self, tenders: list[Tender], by: str, approver: str | None, why: str) -> Rejected | None:
        """Refund the approved QR tenders among `tenders` through the hub before the till lets them go (each is
        then `reversed`), audited as till.void; refused (nothing more given back) when the hub cannot do it."""
        paid = [tender for tender in tenders if tender.method == "qr" and tender.state == "approved"]
        if not paid:
            return None
        refused = qr.give_back(self._payments, paid, by, why, self.currency)
        given = [tender for tender in paid if tender.state == "reversed"]
        if given:
            qr.QR_TENDERS.labels(self.till_id, "reversed").inc(len(given))
            self._record("till.void", by, approver, target=self._cart.id, reason=why,
                         details={"qr": len(given), "qr_minor": sum(tender.amount for tender in given)})
            self._changed()
        return refused

    def _record(self, action: str, by: str, approver: str | None, **record: Any) -> None:
        """Record `action` in the store's audit log; a refusal (a name that is not a login) is logged, not raised:
        the money side has happened and must not be undone by its record."""
        try:
            done = record_at_store(self.registry, action, by, self.till_id, approver=approver, **record)
        except pykka.Timeout:  # a busy disk: the record may still land; the cashier is not held up for it
            log.error("till %s: the audit record %s by %s is not confirmed saved (the outbox is slow)", self.till_id,
                      action, by)
            return
        if isinstance(done, Rejected):
            log.error("till %s: could not audit %s by %s: %s", self.till_id, action, by, done.message)

    def _money(self, minor: int) -> str:
        return Money(minor, self.currency).format()

    def scan(self, barcode: str, scanner: str) -> dict[str, Any] | Rejected:
        """A barcode from a scanner bound to this till: one of that item, and the page hears of it."""
        answer = self.add_line(barcode, 1)
        if isinstance(answer, Rejected):
            self._notify({"type": "till_message", "till": self.till_id, "error": f"{scanner}: {answer.message}"})
        return answer

    def tender_cash(self, amount_minor: int, tender_id: str | None = None) -> dict[str, Any] | Rejected:
        """Take cash; a tender whose id the cart already took (a resend) changes nothing and answers the state."""
        return self._no_session() or self._open_cart.tender_cash(amount_minor, tender_id) or self._changed()

    def complete(self, cart_id: str | None = None) -> dict[str, Any] | Rejected:
        """Commit the sale, with the cart's id as its idempotency key in the same transaction.

        Completing a cart that was already completed returns that sale's receipt, found on disk: a
        browser resending after a timeout, a second tab, or a resend after the till or the whole
        process restarted, never makes a second sale. A commit slower than COMMIT_TIMEOUT_S is answered
        with a refusal to send again; the cart is held until a resend finds out how it ended."""
        if cart_id is not None and cart_id != self._open_cart.id:
            done = self.registry.ask("outbox", "committed", cart_id)
            if done is not None and done.body.get("till") == self.till_id:  # another till's receipt stays hidden
                return self._resent(done, cart_id)
            return Rejected("conflict", f"cart {cart_id} is not the till's current cart, nor a completed one")
        if (refused := self._no_session()) is not None:
            return refused
        assert self._session is not None
        if self._return is not None:
            return self._complete_return(self._return)
        cart = self._cart
        if (dropped := self._renew_coupons(cart)) is not None:
            return dropped
        body = cart.checkout(self.till_id, self._session["id"], self._session["cashier"], self._drawer_session())
        if isinstance(body, Rejected):
            return body
        try:
            version = promoting.sale_version(body, qr.sale_version(body))
            committed = self.registry.ask("outbox", "append", "sale.completed", version, body,
                                          print_on=self._printer, key=cart.id, timeout=COMMIT_TIMEOUT_S,
                                          print_with=self._loyalty_printed(cart))
        except pykka.Timeout:
            log.warning("till %s: the sale of cart %s is not saved after %.0f s (a slow or locked disk); the cart is "
                        "held until the cashier sends complete again", self.till_id, cart.id, COMMIT_TIMEOUT_S)
            return Rejected("conflict", SAVING_MESSAGE)
        if isinstance(committed, Rejected):  # the outbox refused the sale and wrote nothing
            cart.saving_refused()
            self._save()
            return committed
        with logs.bound(till=self.till_id, sale=str(committed.id)):  # what the sale sets off says which sale
            return self._sold(committed, cart, late=not committed.new)

    def _renew_coupons(self, cart: Cart) -> Rejected | None:
        """Coupons whose hold at the hub may have ended are renewed before the sale completes (actors.till.coupons:
        the hub may release an ended hold once this store sends a later event). One the hub cannot renew now is
        taken off the sale and the cashier told (the sale is not completed this time: the total changed)."""
        assert self._session is not None
        for held in [coupon for coupon in cart.coupons if coupons.needs_renewal(coupon)]:
            renewed = coupons.renew(self._payments, held, self.till_id, self._session["cashier"], cart.customer)
            if isinstance(renewed, Rejected):
                cart.drop_coupon(held)
                self._owe_releases([held], "its hold could not be renewed")
                self._changed()
                log.info("till %s: coupon for promotion %s dropped from cart %s (its hold could not be renewed)",
                         self.till_id, held.promotion, cart.id)
                return renewed
            cart.renewed_coupon(renewed)
        return None

    def open_drawer_for_sale(self, sale_id: str) -> dict[str, Any] | Rejected:
        """Open the drawer of a cash sale whose pulse was lost (a restart between its commit and the
        pulse); once, recorded as a recovery. Any other sale's drawer is opened with its key."""
        if self._drawer is None:
            return Rejected("conflict", f"till {self.till_id} has no cash drawer")
        if self._drawer_owed is None or sale_id != self._drawer_owed or self._pulsing(sale_id):
            return Rejected("conflict", "no drawer opening is owed for that sale: it opened at its sale (or is "
                                        "opening now), or was opened since; open the drawer with its key")
        if not self._open_drawer(self._drawer_owed, recovery=True):
            return Rejected("conflict", f"drawer {self._drawer} cannot take the pulse now: open it with its key")
        return self._changed(show=False)

    def _sold(self, committed: Committed, cart: Cart, late: bool) -> dict[str, Any]:
        """The sale is on disk: a new cart, then what the sale owes its till (drawer, display, spooler,
        forwarder). `late`: it landed after an earlier try of this cart timed out, so nothing of this was
        done yet either."""
        sale = str(committed.id)
        self._cart = self._new_cart()
        promoting.counted(self.till_id, committed.body)
        self._owe_releases(cart.unapplied_coupons(), f"its promotion gave nothing to sale {sale}")
        self._drawer_owed = sale if self._drawer is not None and cart.took_cash() else None  # no cash, no drawer
        self._save()  # before any pulse: a kill -9 from here on leaves the pulse owed, not forgotten
        receipt = {**self._receipt(committed, cart.id), **self._loyalty_receipt(cart)}
        SALES.labels(self.till_id).inc()
        self.registry.tell("forwarder", "kick")
        if self._printer is not None:
            self.registry.tell(SPOOLER, "printer_ready", self._printer)  # the job is already on disk
        if self._drawer_owed is not None:
            self._open_drawer(sale, recovery=False)
        self._show(*customer_screen.for_receipt(receipt))
        log.info("till %s: sale %s (seq %d) committed%s, total %s", self.till_id, sale, committed.seq,
                 " after an earlier try timed out" if late else "", cart.total().format())
        self._changed(show=False)  # the customer keeps seeing their change until the next scan
        return receipt

    def _resent(self, done: Committed, cart_id: str) -> dict[str, Any]:
        """A completion resent for a sale already made: its receipt, and its drawer if that is still owed."""
        owed = self._drawer_owed
        if owed == str(done.id) and not self._pulsing(owed) and self._open_drawer(owed, recovery=True):
            self._changed(show=False)
        return self._receipt(done, cart_id)

    # --- returns and exchanges: the return cart (actors.till.returning) in place of the sale cart

    def start_return(self, sale: dict[str, Any] | None, approver: str | None,
                     reason: str | None) -> dict[str, Any] | Rejected:
        """Enter return mode for `sale` (found by its receipt), or without a receipt (sale None: `approver` is the
        manager who allowed it)."""
        if (refused := self._no_session()) is not None:
            return refused
        if self._return is not None:
            return Rejected("conflict", "a return is already open at this till: complete or cancel it first")
        if not self._cart.is_empty() or self._cart.saving:
            return Rejected("conflict", "the cart is not empty: complete the sale or void the cart before a return")
        if sale is None:
            started: ReturnCart | Rejected = ReturnCart(self.currency, self._max_change, self._returns, None,
                                                        approver, reason)
        else:
            started = ReturnCart.for_sale(sale, self.currency, self._max_change, self._returns,
                                          int(time.time() * 1000), approver)
        if isinstance(started, Rejected):
            return started
        started.reason = reason
        self._return = started
        return self._changed()

    def _open_return(self) -> ReturnCart | Rejected:
        if self._return is None:
            return Rejected("conflict", f"till {self.till_id} has no return open: start one with the receipt")
        return self._return

    def take_back(self, original_line: int, quantity: int, condition: str) -> dict[str, Any] | Rejected:
        """Units of the original sale's line the customer brings back."""
        ret = self._open_return()
        if isinstance(ret, Rejected):
            return ret
        return ret.take_line(original_line, quantity, condition) or self._changed()

    def take_back_item(self, barcode: str, quantity: int, condition: str) -> dict[str, Any] | Rejected:
        """Without a receipt: an item brought back, scanned, refunded at today's price."""
        ret = self._open_return()
        if isinstance(ret, Rejected):
            return ret
        offer = self._catalog.offer(barcode, int(time.time() * 1000))
        if isinstance(offer, str):
            return Rejected("not_found", offer)
        return ret.take_item(offer, quantity, condition) or self._changed()

    def cancel_return(self) -> dict[str, Any] | Rejected:
        ret = self._open_return()
        if isinstance(ret, Rejected):
            return ret
        if ret.saving or ret.tendered or ret.card_refund is not None or ret.gift_card_refund is not None:
            return Rejected("conflict", "money has moved for this return (cash taken or a card refunded): give the "
                                        "cash back, or complete the return")
        if ret.hub_refund is not None:
            return Rejected("conflict", UNCONFIRMED)
        if (unsure := ret.gift_card_unconfirmed()) is not None:
            return unsure
        self._return = None
        log.info("till %s: return %s cancelled", self.till_id, ret.id)
        return self._changed()

    def _complete_return(self, ret: ReturnCart) -> dict[str, Any] | Rejected:
        """Refund the card through the terminal first when the policy sends the money there (once: its result is
        kept with the cart), then commit return.completed, its receipt and its audit record."""
        assert self._session is not None
        method, original = ret.refund_method()
        if ret.refund() and method == "card" and ret.card_refund is None and ret.taken and not ret.due():
            refused = self._refund_card(ret, original)
            if refused is not None:
                return refused
        if ret.refund() and method == "qr" and ret.card_refund is None and ret.taken and not ret.due():
            assert original is not None
            if (refused := self._refund_qr(ret, original)) is not None:
                return refused
        if ret.refund() and ret.gift_card_part() and ret.gift_card_refund is None and ret.taken and not ret.due():
            return Rejected("conflict", f"{self._money(ret.gift_card_part())} goes back to the gift card the sale was "
                                        "paid with: scan the gift card, or refund in cash instead")
        body = ret.checkout(self.till_id, self._session["id"], self._session["cashier"], ret.card_refund)
        if isinstance(body, Rejected):
            return body
        if (drawer_session := self._drawer_session()) is not None:  # the cash it moved is the session's
            body["drawer_session"] = drawer_session
        try:
            committed = self.registry.ask("outbox", "append", "return.completed", qr.return_version(body), body,
                                          print_on=self._printer, key=ret.id, timeout=COMMIT_TIMEOUT_S)
        except pykka.Timeout:
            return Rejected("conflict", SAVING_MESSAGE)
        if isinstance(committed, Rejected):
            ret.saving = False
            self._save()
            return committed
        self._return = None
        cash_moved = bool(ret.tendered) or any(refund["method"] == "cash" for refund in body["refunds"])
        self._drawer_owed = str(committed.id) if self._drawer is not None and cash_moved else None
        self._save()
        self._audit_return(committed, body)
        self.registry.tell("forwarder", "kick")
        if self._printer is not None:
            self.registry.tell(SPOOLER, "printer_ready", self._printer)
        if self._drawer_owed is not None:
            self._open_drawer(self._drawer_owed, recovery=False)
        log.info("till %s: return %s (seq %d) committed, total %d", self.till_id, committed.id, committed.seq,
                 body["total"]["minor"])
        self._changed(show=False)
        return self._receipt(committed, ret.id)

    def _refund_card(self, ret: ReturnCart, original: str | None) -> Rejected | None:
        """Refund the card part to the original card: through the hub (the provider) when it answers, else at the
        terminal with the card present."""
        assert self._session is not None
        trial = ret.checkout(self.till_id, self._session["id"], self._session["cashier"],
                             {"id": str(uuid7()), "reference": "check", "original_reference": original or "check",
                              "scheme": "card", "masked": "****"})
        ret.saving = False  # only a dry run of the body the commit will carry
        if isinstance(trial, Rejected):
            return trial
        refused = self.registry.ask(RETURNS_NAME, "check", trial, timeout=COMMIT_TIMEOUT_S)
        if refused is not None:
            return refused
        refund_id = str(uuid.uuid5(uuid.UUID(ret.id), "card refund"))  # a retry refunds under the same reference
        asked_before = self._hub_refund_asked(ret, refund_id)
        through_hub = card_hub.refund_through_hub(self.registry, original, ret.card_part(), refund_id,
                                                  self._session["cashier"], ret.reason or "returned items", asked_before)
        if isinstance(through_hub, Unconfirmed):
            return through_hub
        ret.hub_refund = None  # answered: refunded, or nothing was
        if through_hub is not None:  # refunded by the provider, to the original card: no card needed here
            ret.card_refund = through_hub
            self._save()
            return None
        self._save()
        if self._cards.terminal is None:
            return Rejected("conflict", "the sale was paid by card and the store refunds to the original card, but "
                                        "the hub cannot refund it now and this till has no payment terminal: take the "
                                        "return at a till with one")
        reference = tendering.reference_for(refund_id)
        status = self.refund_to_card(ret.card_part(), original or reference, refund_id)
        if not status.get("answered"):
            return Rejected("conflict", f"payment terminal {self._cards.terminal} did not answer: check it, then "
                                        "complete the return again (the card is refunded once, whatever happened)")
        if status.get("stage") != "approved":
            return Rejected("conflict", f"the card refund was not made ({status.get('message') or status.get('stage')})"
                                        ": complete the return again to retry")
        ret.card_refund = {"id": refund_id, "amount": ret.card_part(), "reference": reference,
                           "original_reference": original or reference,
                           "scheme": status.get("scheme") or "card", "masked": status.get("masked_card") or "****"}
        self._save()
        return None

    def _hub_refund_asked(self, ret: ReturnCart, refund_id: str) -> bool:
        """Keep `refund_id` as the return's pending hub refund, saved before the hub is asked (a restart still knows
        the hub may have refunded); whether an earlier ask was left unconfirmed."""
        asked_before = ret.hub_refund is not None
        ret.hub_refund = refund_id
        self._save()
        return asked_before

    def _refund_qr(self, ret: ReturnCart, tender_id: str) -> Rejected | None:
        """Refund the QR part of the return to the sale's QR payment through the hub (pay_refund, once: a retry uses the
        same refund key), after the store's journal said it would take the return; kept with the cart. Offline:
        refused with qr.REFUND_OFFLINE (the cashier may refund in cash instead: refund_in_cash)."""
        assert self._session is not None
        trial = ret.checkout(self.till_id, self._session["id"], self._session["cashier"],
                             {"id": str(uuid7()), "method": "qr", "amount": ret.card_part(),
                              "qr": {"intent": "check", "provider_ref": "check"}})
        ret.saving = False  # only a dry run of the body the commit will carry
        if isinstance(trial, Rejected):
            return trial
        if (refused := self.registry.ask(RETURNS_NAME, "check", trial, timeout=COMMIT_TIMEOUT_S)) is not None:
            return refused
        refund_id = str(uuid.uuid5(uuid.UUID(ret.id), "qr refund"))
        asked_before = self._hub_refund_asked(ret, refund_id)
        done = qr.refund(self._payments, tender_id, ret.card_part(), refund_id, self._session["cashier"],
                         ret.reason or "items returned", qr.REFUND_OFFLINE, asked_before)
        if isinstance(done, Unconfirmed):
            return done
        ret.hub_refund = None  # answered: refunded, or nothing was
        if isinstance(done, Rejected):
            self._save()
            return done
        ret.card_refund = {"id": refund_id, "method": "qr", "amount": ret.card_part(),
                           "qr": {"intent": done["id"], "provider_ref": done["provider_ref"] or done["id"]}}
        self._save()
        log.info("till %s: return %s refunded %s to QR payment %s through the hub", self.till_id, ret.id,
                 self._money(ret.card_part()), done["id"])
        return None

    def refund_to_gift_card(self, card: str) -> dict[str, Any] | Rejected:
        """Put the open return's gift card part back on the card the cashier scanned, through the hub (once: under
        a redemption derived from the return's id); then complete the return as usual."""
        ret = self._open_return()
        if isinstance(ret, Rejected):
            return ret
        assert self._session is not None
        amount = ret.gift_card_part()
        if ret.gift_card_refund is not None or ret.saving:
            return Rejected("conflict", "the gift card was refunded already: complete the return")
        if amount <= 0 or ret.due():
            return Rejected("conflict", "nothing of this return goes back to a gift card")
        redemption = str(uuid.uuid5(uuid.UUID(ret.id), "gift card refund"))
        asked_before = ret.gift_card_asked is not None
        if not asked_before:  # saved before the hub hears of it: a lost answer never lets the refund go to cash too
            ret.gift_card_asked = loyalty_local.mask(card)
            self._save()
        done = rewards.refund_gift_card(self._payments, card, redemption, amount, self.currency, self.till_id,
                                        self._session["cashier"],
                                        None if ret.sale is None else ret.sale["order"])
        if isinstance(done, Unconfirmed):
            return done
        if isinstance(done, Rejected):
            if not asked_before:  # the hub refunded nothing: the cashier may refund in cash instead
                ret.gift_card_asked = None
                self._save()
            return done
        ret.gift_card_asked = None
        ret.gift_card_refund = {"id": str(uuid7()), "amount": amount, **done}
        log.info("till %s: %s refunded to gift card %s for return %s", self.till_id, self._money(amount),
                 done["card"], ret.id)
        return self._changed()

    def refund_in_cash(self) -> dict[str, Any] | Rejected:
        """The open return's refund goes to cash instead of the sale's QR payment (the hub is away)."""
        ret = self._open_return()
        if isinstance(ret, Rejected):
            return ret
        return ret.refund_in_cash() or self._changed()

    def _audit_return(self, committed: Committed, body: dict[str, Any]) -> None:
        """till.refund for every return; till.return_no_receipt besides when there was no receipt."""
        refunded = sum(refund["amount"]["minor"] for refund in body["refunds"])
        order = body.get("original", {}).get("order")
        details = {"refund_minor": refunded, "total_minor": body["total"]["minor"],
                   "method": body["refunds"][0]["method"] if body["refunds"] else "none"}
        if order is not None:
            details["order"] = order
        actions = ["till.refund"] if order is not None else ["till.refund", "till.return_no_receipt"]
        for action in actions:
            self._record(action, body["cashier"], body.get("approver"), target=str(committed.id),
                         reason=body.get("reason"), details=details, key=f"{committed.id}:{action}")

    def _restore(self, saved: Mapping[str, Any]) -> None:
        """Take up the saved session and cart, every field checked with novapos.validators as if a
        client had sent it. What fails is dropped with a log line, never a failed start: a poisoned
        cashier name ends the session, a line without a valid price lock is lost, and a cart that
        was completed just before the restart (its sale is on disk) gives way to a new one, its drawer
        pulse owed."""
        self._restore_reversals(saved.get("card_reversals"))
        self._restore_loyalty(saved)
        self._restore_releases(saved.get("coupon_releases"))
        self._restore_approvals(saved.get("card_approvals"))
        owed = saved.get("drawer_owed")
        try:
            self._drawer_owed = None if owed is None else validators.uuid_text("saved drawer_owed", owed)
        except validators.Invalid as exc:
            log.warning("till %s: dropping what it saved about an owed drawer opening: %s", self.till_id, exc)
        session, saved_cart = saved.get("session"), saved.get("cart")
        if session is None:
            return
        try:
            if not isinstance(session, dict):
                raise validators.Invalid("saved session", "must be an object")
            self._session = self.restored_session(session)
            if not isinstance(saved_cart, dict):
                raise validators.Invalid("saved cart", "must be an object")
            cart, problems = restore(saved_cart, self.currency, self._max_change)
        except validators.Invalid as exc:
            log.warning("till %s: dropping its saved %s: %s", self.till_id,
                        "cart" if self._session is not None else "session and cart", exc)
            return
        try:
            # well inside the kernel's start timeout, so a busy outbox holds the cart instead of failing the start
            done = self.registry.ask("outbox", "committed", cart.id, timeout=RESTORE_ASK_S)
        except pykka.Timeout:  # the outbox is still busy with this cart's commit: hold it until a resend
            cart.saving = True
            done = None
        if done is not None:
            log.info("till %s: cart %s was completed before the restart; starting a new cart", self.till_id, cart.id)
            if self._drawer is not None and cart.took_cash() and self._drawer_owed != str(done.id):
                self._drawer_owed = str(done.id)
                log.warning("till %s: the drawer of sale %s may not have opened before the restart: a resent "
                            "completion, or open_drawer_for_sale, opens it once", self.till_id, done.id)
            return
        for problem in problems:
            log.warning("till %s: dropping part of its saved cart: %s", self.till_id, problem)
        cart.source = self._rules
        self._cart = cart
        self._restore_return(saved.get("return"))
        log.info("till %s: carried on after a restart: session of %s, %d lines, %s tendered", self.till_id,
                 self._session["cashier"], len(cart.lines), cart.paid().format())

    def _restore_return(self, saved: Any) -> None:
        """Take up a saved return cart, checked like the sale cart; one that was committed before the restart (its
        return is on disk) gives way, its drawer owed if cash moved."""
        if saved is None:
            return
        try:
            if not isinstance(saved, dict):
                raise validators.Invalid("saved return", "must be an object")
            ret, problems = restore_return(saved, self.currency, self._max_change, self._returns)
        except validators.Invalid as exc:
            log.warning("till %s: dropping its saved return: %s", self.till_id, exc)
            return
        try:
            done = self.registry.ask("outbox", "committed", ret.id, timeout=RESTORE_ASK_S)
        except pykka.Timeout:
            ret.saving = True
            done = None
        if done is not None:
            log.info("till %s: return %s was completed before the restart", self.till_id, ret.id)
            return
        for problem in problems:
            log.warning("till %s: dropping part of its saved return: %s", self.till_id, problem)
        self._return = ret
        log.info("till %s: carried on with return %s after a restart%s", self.till_id, ret.id,
                 " (its card refund is already made)" if ret.card_refund is not None else "")

    def _restore_approvals(self, saved: Any) -> None:
        """The approvals whose card.approved was still owed before the restart: committed again from card_tick."""
        problems: list[str] = []
        self._cards.approvals = tendering.restore(saved if isinstance(saved, list) else [], self.currency,
                                                  self._max_change, problems).items
        for problem in problems:  # never silently: the hub learns of that approval from nothing else
            log.error("till %s: a card approval owed to the outbox cannot be read, tell the hub by hand: %s",
                      self.till_id, problem)

    def _restore_reversals(self, saved: Any) -> None:
        """The card reversals owed before the restart: each is sent again (VOID is idempotent)."""
        for index, raw in enumerate(saved if isinstance(saved, list) else []):
            try:
                if not isinstance(raw, dict):
                    raise validators.Invalid(f"saved reversal {index}", "must be an object")
                problems: list[str] = []
                tenders = tendering.restore([raw.get("tender")], self.currency, self._max_change, problems)
                if problems:
                    raise validators.Invalid(f"saved reversal {index}", problems[0])
                approver, reason = raw.get("approver"), raw.get("reason", ABANDONED)
                self._cards.reversals.append(Reversal(
                    tenders.items[0], validators.text(f"saved reversal {index} by", raw.get("by")),
                    None if approver is None else validators.text(f"saved reversal {index} approver", approver),
                    validators.text(f"saved reversal {index} reason", reason, max_length=200)))
            except validators.Invalid as exc:  # never silently: the money may still be on the customer's card
                log.error("till %s: a saved card reversal cannot be read, reverse it at the terminal by hand: %s",
                          self.till_id, exc)
        if self._cards.reversals and self._cards.terminal is None:
            log.error("till %s: %d card reversals are owed but the till has no terminal configured: they wait until "
                      "one is", self.till_id, len(self._cards.reversals))

    @staticmethod
    def _receipt(committed: Committed, cart_id: str) -> dict[str, Any]:
        return {"sale": str(committed.id), "seq": committed.seq, "cart": cart_id, **committed.body}

    def _show(self, top: str, bottom: str) -> None:
        if self._display is not None:
            try:
                self.registry.tell(device_actor_name(self._display), "show", top, bottom)
            except LookupError:
                pass  # the display is unplugged: nothing to show it on, and nothing else waits on it

    def _open_drawer(self, sale: str, recovery: bool) -> bool:
        """Tell the drawer to pulse for `sale`; True if its actor took the message. The pulse stays owed
        (and saved) until the drawer confirms it (drawer_pulsed); the caller publishes the state."""
        if self._drawer is None:
            return False
        try:
            accepted = self.registry.tell(device_actor_name(self._drawer), "kick", sale=sale, till=self.actor_name)
            why = "is restarting"
        except LookupError:
            accepted, why = False, "is unplugged"
        if accepted:
            self._pulse = Pulse(sale, recovery, time.monotonic() + PULSE_CONFIRM_S)
            self.send_after(PULSE_CONFIRM_S, "drawer_overdue")
            return True
        self._drawer_trouble(f"drawer {self._drawer} {why}")
        return False

    def drawer_pulsed(self, sale: str) -> None:
        """From the drawer actor: it sent the pulse for `sale`. Only now is the pulse no longer owed."""
        pulse = self._pulse if self._pulsing(sale) else None
        if pulse is not None:
            self._pulse = None
        if sale != self._drawer_owed:
            return  # a pulse for a sale no longer owed (a newer sale owes one now)
        self._drawer_owed = None
        if pulse is not None and pulse.recovery:
            DRAWER_RECOVERIES.labels(self.till_id).inc()
            log.warning("till %s: drawer %s opened for sale %s after the fact, as a recovery (its pulse was "
                        "lost to a restart)", self.till_id, self._drawer, sale)
        self._changed(show=False)

    def drawer_not_pulsed(self, sale: str, why: str) -> None:
        """From the drawer actor: it could not send the pulse for `sale` (its printer busy or away)."""
        if self._pulsing(sale):
            self._pulse = None
            self._drawer_trouble(f"drawer {self._drawer} did not open for the last sale ({why})")
            self._changed(show=False)

    def drawer_overdue(self) -> None:
        """The drawer's answer is overdue (its actor died with the pulse): the pulse is offered again."""
        if self._pulse is not None and time.monotonic() >= self._pulse.deadline:
            self._pulse = None
            self._drawer_trouble(f"drawer {self._drawer} did not say it opened within {PULSE_CONFIRM_S:.0f} s")
            self._changed(show=False)

    def _drawer_trouble(self, what: str) -> None:
        """Tell the cashier (the page also offers Open drawer for the last sale while the pulse is owed)."""
        log.warning("till %s: %s; open it with its key", self.till_id, what)
        self._notify({"type": "till_message", "till": self.till_id, "error": f"{what}: open it with its key"})

    @property
    def desk(self) -> DrawerDesk:
        assert self._desk is not None, "till used before it started"
        return self._desk

    def _drawer_session(self) -> str | None:
        """The till's open drawer session, which its sales and returns carry (sale.completed v3 drawer_session)."""
        return self.desk.session_id

    def drawer_state(self) -> dict[str, Any]:
        return {"till": self.till_id, "drawer_session": self.desk.state(), "has_drawer": self._drawer is not None}

    def drawer_open(self, cashier: str, counts: dict[int, int]) -> dict[str, Any] | Rejected:
        """Open the drawer session with a float counted by denomination."""
        committed = self.desk.open(self.registry, cashier, counts)
        return committed if isinstance(committed, Rejected) else self._changed(show=False)

    def drawer_move(self, kind: str, amount_minor: int, reason: str | None, actor: str,
                    approver: str | None) -> dict[str, Any] | Rejected:
        """A pay-in, pay-out or cash drop with its reason (the route checked the role or the override)."""
        if kind not in MOVES:
            return Rejected("invalid", f"kind must be one of {', '.join(MOVES)}")
        committed = self.desk.move(self.registry, kind, amount_minor, reason, actor, approver)
        return committed if isinstance(committed, Rejected) else self._changed(show=False)

    def drawer_no_sale(self, actor: str, approver: str | None, reason: str | None) -> dict[str, Any] | Rejected:
        """Open the drawer without a sale: counted and audited (drawer.no_sale), then pulsed through its actor."""
        if self._drawer is None:
            return Rejected("conflict", f"till {self.till_id} has no cash drawer")
        committed = self.desk.move(self.registry, "no_sale", 0, reason, actor, approver)
        if isinstance(committed, Rejected):
            return committed
        try:
            self.registry.tell(device_actor_name(self._drawer), "kick", sale=str(committed.id), till=self.actor_name)
        except LookupError:
            self._drawer_trouble(f"drawer {self._drawer} is unplugged")
        return self._changed(show=False)

    def drawer_x_report(self, print_it: bool = False, blind: bool = False) -> dict[str, Any] | Rejected:
        """The X report (mid-shift, nothing resets); with print_it, queued on the till's printer too. `blind`: without
        the cash expected (for whoever may not approve a close beyond tolerance: the close count stays blind)."""
        if not print_it:
            return self.desk.report(blind)
        answer = self.desk.print_report(self._printer, blind)
        if not isinstance(answer, Rejected) and self._printer is not None:
            self.registry.tell(SPOOLER, "printer_ready", self._printer)
        return answer

    def drawer_close(self, cashier: str, counts: dict[int, int], approver: str | None) -> dict[str, Any] | Rejected:
        """The blind close; refused while a cart has lines or money taken. The answer is the Z report."""
        if self._cart.lines or self._cart.tenders.began():
            return Rejected("conflict", "a sale is open: complete it or void the cart before closing the drawer")
        z = self.desk.close(self.registry, cashier, counts, approver, self._printer)
        if not isinstance(z, Rejected):
            self._changed(show=False)
        return z

    def _save(self) -> None:
        assert self._saved is not None
        self._saved.save(self.till_id, {"session": self._session, "cart": self._cart.to_saved(),
                                        "drawer_owed": self._drawer_owed,
                                        "return": None if self._return is None else self._return.to_saved(),
                                        "card_reversals": [owed.to_saved() for owed in self._cards.reversals],
                                        "card_approvals": [tender.to_saved() for tender in self._cards.approvals],
                                        "customer": None if self._customer is None else self._customer.to_saved(),
                                        "loyalty_reversals": [owed.to_saved() for owed in self._owed],
                                        "coupon_releases": [owed.to_saved() for owed in self._coupon_releases]})

    def _changed(self, show: bool = True) -> dict[str, Any]:
        self._save()
        state = self.state()
        self._notify({"type": "till", "till": self.till_id, "state": state})
        if show:
            self._show(*(customer_screen.for_state(state, self._store_name) if self._return is None
                         else self._return.screen()))
        return state
