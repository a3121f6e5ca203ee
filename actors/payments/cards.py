"""The store's card payments as the hub sees them: one actor between the tills' terminals and the hub's intents.

The tills ask it before a card goes to the terminal (`begin`: is the hub there? if not, may this card be taken
offline, under the tenant's limits: actors.payments.offline) and tell it how each card ended (`approved`,
`ended`, `abandoned`); it tells the hub right away when it can (pay_intent, pay_cancel: the fast path). The durable
path is the till's card.approved event in the outbox, so nothing here has to succeed: a hub that does not answer
learns of the approval from the event, and voids an abandoned one itself once its capture window passes.

Offline approvals stay counted until the hub says how their authorization ended (`settle_tick` asks pay_status
while any are outstanding; the payments event consumer may tell `payment_event` sooner); a declined one becomes
the store's follow-up (`follow_ups`, GET /api/payments/follow-ups).

A refund to the original card goes through the hub (`refund`: pay_refund, the provider refunds without the card)
when the hub answers; `None` (the hub refunded nothing) sends the till to its terminal, with the card present;
`Unconfirmed` (it may have refunded) has the till ask again under the same key, and nothing else.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from actors.payments import offline
from actors.payments.asking import NOTHING_REFUNDED, HubRefused, HubUnreachable, Unconfirmed, ask_hub, refund_state
from actors.protocol import Rejected
from actors.storage.db import connect, is_busy
from edge_runtime import Actor, AsyncioSeam
from novapos import validators
from novapos.adapters.nats import NatsLink
from novapos.wire.payments import CANCEL, INTENT, REFUND, SETTINGS, STATUS

log = logging.getLogger(__name__)

NAME = "cards"
OFFLINE_APPROVALS = Gauge("novapos_edge_payment_offline_approvals",
                          "Card approvals taken while the hub was away and not yet confirmed by it")
OFFLINE_APPROVALS_MINOR = Gauge("novapos_edge_payment_offline_approvals_minor",
                                "Their total, in minor units (counted against the tenant's store total)")

ANSWER_WITHIN_S = 1.5
"""How long a card waits for the hub before the till treats the store as offline (the cashier waits this once)."""
SETTLE_EVERY_S = 5.0
SETTLE_BATCH = 5
"""The most hub requests one settle round makes (up to ANSWER_WITHIN_S each): a cashier's `begin` waits behind
them in the mailbox, so the rest wait for the next rounds."""
SETTLED_STATES = {"authorized": "authorized", "captured": "authorized", "refunded": "authorized",
                  "failed": "declined", "cancelled": "released"}
"""An offline approval's intent state at the hub -> how the ledger settles it (other states: not confirmed yet)."""
ASK_AGAIN = "complete the return again when the hub answers (the card is refunded once, whatever happened)"


class CardsActor(Actor):
    def __init__(self, db_path: Path, link: NatsLink, seam: AsyncioSeam, tenant: str, store: str, currency: str, *,
                 answer_within: float = ANSWER_WITHIN_S, settle_every: float = SETTLE_EVERY_S) -> None:
        """`currency`: the store's, that of the offline limits in force (actors.payments.offline.limits)."""
        super().__init__()
        self._db_path, self._link, self._seam, self._tenant, self._store = db_path, link, seam, tenant, store
        self._currency = currency
        self._within, self._settle_every = answer_within, settle_every
        self._connection: sqlite3.Connection | None = None

    def started(self) -> None:
        self._connection = connect(self._db_path)
        self._measure()
        self.send_after(self._settle_every, "settle_tick")

    def stopping(self) -> None:
        if self._connection is not None:
            self._connection.close()

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None, "the cards actor used before it started"
        return self._connection

    def _ask(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return ask_hub(self._link, self._seam, self._tenant, self._store, kind, body, self._within)

    def begin(self, till: str, tender_id: str, amount_minor: int, currency: str) -> dict[str, Any] | Rejected:
        """Before the terminal hears of a card: {"offline": False} when the hub answers (its offline limits are kept
        for later), {"offline": True} when it does not and the card fits the limits (counted from now on), else a
        Rejected with the sentence for the cashier."""
        try:
            answer = self._ask(SETTINGS, {})
        except HubRefused as exc:  # the hub is there, it just has no settings to give: the card goes online
            log.warning("the hub refused the payment settings: %s", exc)
            return {"offline": False}
        except HubUnreachable as exc:
            try:
                refused = offline.reserve(self._db, tender_id, till, amount_minor, currency)
            except sqlite3.OperationalError as busy:
                if not is_busy(busy):
                    raise
                return Rejected("busy", "the store's disk is busy: try the card again")
            if refused is not None:
                log.info("till %s: card %s refused offline (%s): %s", till, tender_id, exc, refused)
                return Rejected("conflict", refused)
            log.warning("till %s: card %s of %d taken offline (%s): the terminal stores the card", till, tender_id,
                        amount_minor, exc)
            self._measure()
            return {"offline": True}
        try:
            given = offline.Limits(
                validators.minor_units("offline_per_payment_minor", answer.get("offline_per_payment_minor")),
                validators.minor_units("offline_store_total_minor", answer.get("offline_store_total_minor")),
                currency)
            offline.keep_limits(self._db, given)
        except (validators.Invalid, sqlite3.OperationalError) as exc:  # keep the last good ones
            log.warning("the hub's payment settings were not kept: %s", exc)
        return {"offline": False}

    def approved(self, approval: dict[str, Any]) -> None:
        """A card.approved body the till committed: an online one is told to the hub at once (pay_intent), the
        outbox's event bringing it later otherwise; an offline one waits for its event (the hub authorizes it)."""
        card = approval["card"]
        if approval["offline"]:  # made outstanding with the event (offline.journal): the hub learns of it from it
            self._measure()
            return
        body = {"tender_id": approval["tender"], "till": approval["till"], "amount_minor": approval["amount"]["minor"],
                "authorized_minor": approval["amount"]["minor"], "currency": approval["currency"],
                "provider_ref": card["reference"], "auth_code": card.get("auth_code"), "scheme": card["scheme"],
                "masked": card["masked"], "offline": False}
        try:
            self._ask(INTENT, body)
        except (HubUnreachable, HubRefused) as exc:
            log.info("card %s: the hub was not told at once (%s); the outbox's card.approved will tell it",
                     approval["tender"], exc)

    def ended(self, tender_id: str) -> None:
        """A card that was not approved (declined, cancelled, failed): an offline reservation is freed."""
        if offline.settle(self._db, tender_id, "released", "not approved at the terminal"):
            self._measure()

    def abandoned(self, tender_id: str, actor: str) -> None:
        """An approved card given back at the terminal (its sale abandoned): cancelled at the hub when it answers
        (an online approval left authorized is voided by the hub's auto-void otherwise); an offline one stops counting
        at once and is told to the hub again (settle_tick) until the hub has cancelled it, so its money is never
        asked for."""
        if offline.settle(self._db, tender_id, "abandoned", actor):  # the message keeps who abandoned it
            self._measure()
        try:
            self._cancel(tender_id, actor)
        except HubUnreachable as exc:
            log.info("card %s: the hub could not be told it was abandoned (%s)", tender_id, exc)

    def _cancel(self, tender_id: str, actor: str) -> None:
        """pay_cancel; an offline approval is released once the hub has cancelled it (or refused: it is final
        there). HubUnreachable when the hub does not answer."""
        try:
            self._ask(CANCEL, {"tender_id": tender_id, "reason": "sale abandoned at the till", "actor": actor})
        except HubRefused as exc:
            if exc.code == 404:  # the hub has not heard of it yet: an offline one is told again later
                return
            log.warning("card %s: the hub refused to cancel it: %s", tender_id, exc)
        offline.settle(self._db, tender_id, "released", "the sale was abandoned", settling=("abandoned",))

    def refund(self, tender_id: str, amount_minor: int, refund_key: str, actor: str, reason: str,
               asked_before: bool = False) -> dict[str, Any] | Unconfirmed | None:
        """Refund `amount_minor` of the card tender `tender_id` through the hub (the provider, no card needed): the
        hub's {"intent", "refund"} once its refund succeeded; None when the hub refunded nothing (it did not get the
        request, does not know the payment, has no provider, or the provider declined): the till refunds at its
        terminal. Unconfirmed when the hub may have refunded it (a timeout, a refund still processing, any other
        refusal, or no answer to a request asked before: `asked_before`): the cashier completes the return again,
        under the same refund_key, and the card is refunded once."""
        if not self._link.connected and not asked_before:
            return None
        body = {"tender_id": tender_id, "amount_minor": amount_minor, "refund_key": refund_key, "actor": actor,
                "reason": reason}
        try:
            answer = self._ask(REFUND, body)
        except HubRefused as exc:
            if exc.code in NOTHING_REFUNDED:
                log.info("refund %s: the hub refunded nothing (%d %s): refunding at the terminal", refund_key,
                         exc.code, exc)
                return None
            log.warning("refund %s: the hub refused it (%d %s): asked again under the same key", refund_key,
                        exc.code, exc)
            return Unconfirmed("conflict", f"the hub has not confirmed the card refund ({validators.describe(str(exc))})"
                                           f": {ASK_AGAIN}")
        except HubUnreachable as exc:
            if exc.maybe_done or asked_before:
                return Unconfirmed("conflict", f"the hub has not confirmed the card refund ({exc}): {ASK_AGAIN}")
            return None
        state = refund_state(answer)
        if state == "failed":
            log.warning("refund %s: the provider declined it: refunding at the terminal", refund_key)
            return None
        if state != "succeeded":
            return Unconfirmed("conflict", f"the hub has not confirmed the card refund (still processing): {ASK_AGAIN}")
        return answer

    def settle_tick(self) -> None:
        """Release the reservations no till holds any more (by age), tell the hub again of the abandoned offline
        approvals, ask it how the outstanding ones ended; again in settle_every seconds."""
        try:
            if expired := offline.expire(self._db, offline.RESERVED_FOR_S):
                log.warning("%d offline card reservations expired: %s", expired, offline.EXPIRED)
                self._measure()
            abandoned = offline.waiting(self._db, "abandoned", SETTLE_BATCH)
            for tender_id, actor in abandoned:
                self._cancel(tender_id, actor)
            for tender_id, _ in offline.waiting(self._db, "outstanding", SETTLE_BATCH - len(abandoned)):
                answer = self._ask(STATUS, {"tender_id": tender_id})
                self._settle(tender_id, answer.get("intent"))
        except (HubUnreachable, HubRefused) as exc:
            log.debug("offline approvals not confirmed now: %s", exc)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        finally:
            self.send_after(self._settle_every, "settle_tick")

    def payment_event(self, event_type: str, body: dict[str, Any]) -> None:
        """A payment event from the hub (actors.payments.events): an intent's news settles its offline approval."""
        intent = body.get("intent")
        if event_type.startswith("payment.") and isinstance(intent, dict) and isinstance(intent.get("tender_id"), str):
            self._settle(intent["tender_id"], intent)

    def _settle(self, tender_id: str, intent: Any) -> None:
        if not isinstance(intent, dict) or (settled := SETTLED_STATES.get(str(intent.get("state")))) is None:
            return  # not heard of yet, or not authorized yet
        message = "" if settled != "declined" else str(intent.get("attention") or "declined when the hub asked "
                                                                                     "for the money")[:200]
        if offline.settle(self._db, tender_id, settled, message, settling=(*offline.COUNTED, "abandoned")):
            (log.warning if settled == "declined" else log.info)(
                "offline card %s %s at the hub%s", tender_id, settled, f": {message}" if message else "")
            self._measure()

    def follow_ups(self) -> list[dict[str, Any]]:
        return offline.follow_ups(self._db)

    def offline_state(self) -> dict[str, Any]:
        """The offline limits in force and what counts against them."""
        count, total = offline.counted(self._db)
        given = offline.limits(self._db, self._currency)
        return {"per_payment_minor": given.per_payment_minor, "store_total_minor": given.store_total_minor,
                "outstanding": count, "outstanding_minor": total}

    def _measure(self) -> None:
        count, total = offline.counted(self._db)
        OFFLINE_APPROVALS.set(count)
        OFFLINE_APPROVALS_MINOR.set(total)
