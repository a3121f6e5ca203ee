"""The hub's payment intent service: every action on an intent that may involve the provider, in the one order
that survives a crash at any point.

A provider call is bracketed by two commits. Before it: the intent is PROCESSING with the action it waits for
(`pending`), the call's idempotency key (`pending_key`), its amount and who asked. After it: the answer, the
outbox event and the audit record, together. A hub killed in between leaves a PROCESSING intent whose key the
watchdog (`resolve`) asks the provider about: the answer settles it, a key the provider never saw is made
again once with the same key (the provider's idempotency makes that safe), and one still unknown after ten
watchdog periods is surfaced for a person (`attention`). A call that times out is left the same way; one
that could not reach the provider (`GatewayUnavailable`) did nothing and is put back.

Tenancy: every method but the watchdog's and the webhook's takes the tenant and finds only that tenant's
intents (another's is NotFound, like an unknown id).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record
from hub.payments import intents, metrics, model, outbox
from hub.payments.gateway import Answer, Gateway, GatewayTimeout, GatewayUnavailable, Outcome
from hub.payments.intents import Intent
from hub.payments.model import Action, State
from novapos import validators
from novapos.config.hub import PaymentSettings
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

SYSTEM = "hub:"
"""Actors of the hub's own (the capture service, the watchdog) start so: their captures and voids are not a
person's and are not audited, but for the auto-void, which is."""
AUTO_VOID = "hub:auto-void"
ATTENTION_AFTER = 10
"""A call still unknown after this many watchdog periods is surfaced for a person."""
UNREACHED = "the provider could not be reached"
"""How a call that never reached the provider is put back (last_error): nothing was done, so it is tried again."""
RETRIED_BY_ITSELF = f"(last_error IS NULL OR attention IS NULL OR last_error LIKE '{UNREACHED}%')"
"""Intents the capture service and auto-void may move on their own: not one whose capture or void the provider
declined (it then holds both the reason and `attention`), which a person sees to, rather than a retry every round;
one put back because the provider could not be reached is (whatever else a person was asked to look at)."""
_AUDITED = {Action.CAPTURE: "payment.captured", Action.CANCEL: "payment.voided", Action.REFUND: "payment.refunded"}


class NotFound(Exception):
    """No such intent for this tenant (404)."""


class Conflict(Exception):
    """A tender id, refund key or idempotency key used again for a different request (409)."""


class NoProvider(Exception):
    """No provider is configured, or it could not be reached: nothing was done (503)."""


class Declined(Exception):
    """The provider declined a refund: nothing was refunded (402), so no answer may read as refunded."""


def declined(intent: Intent, refund: Refund) -> None:
    """Declined for a refund the provider declined (the same key again says so again)."""
    if refund.state == "failed":
        raise Declined(f"the provider declined refund {refund.key}: {intent.last_error or 'no reason given'}; "
                       "nothing was refunded")


async def free_declined_key(conn: asyncpg.Connection, tenant: str, refund_key: str) -> None:
    """Move a refund the provider declined off its key (the row stays, for the record), so that the refund the
    till then makes at its terminal under that key can be recorded."""
    await conn.execute("UPDATE payment_refunds SET refund_key = refund_key || ':declined:' || id::text,"
                       " updated_at = now() WHERE tenant = $1 AND refund_key = $2 AND state = 'failed'"
                       " AND via = 'provider'", tenant, refund_key)


@dataclass(frozen=True)
class Refund:
    """One refund of an intent, as its row holds it."""
    id: uuid.UUID
    intent_id: uuid.UUID
    key: str
    amount_minor: int
    state: str
    """processing, succeeded or failed"""
    via: str
    """provider (the hub asked it) or terminal (refunded at a till, the card present)"""
    provider_ref: str | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Refund:
        return cls(row["id"], row["intent_id"], row["refund_key"], row["amount_minor"], row["state"], row["via"],
                   row["provider_ref"])

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "amount_minor": self.amount_minor, "state": self.state, "via": self.via}


def is_person(actor: str | None) -> bool:
    return actor is not None and not actor.startswith(SYSTEM)


def now() -> datetime:
    return datetime.now(UTC)


class Payments:
    """The process's payment service (one per hub, hub.payments.provider): `gateway` None when no provider is
    configured (card tenders are recorded as approved; nothing goes through the hub: NoProvider)."""

    def __init__(self, pool: asyncpg.Pool, gateway: Gateway | None, settings: PaymentSettings) -> None:
        self.pool, self.gateway, self.settings = pool, gateway, settings

    @property
    def provider(self) -> str:
        return self.gateway.name if self.gateway is not None else self.settings.provider

    # Creating intents.

    async def create(self, tenant: str, store: str, *, tender_id: str, method: str, amount_minor: int, currency: str,
                     actor: str, till: str | None = None) -> Intent:
        """A new intent waiting for its payment method; the same request again returns it (Conflict if the tender
        id was used for another)."""
        if method not in intents.METHODS:
            raise validators.Invalid("method", f"must be one of {', '.join(intents.METHODS)}, got "
                                               f"{validators.describe(method)}")
        async with self.pool.acquire() as conn, conn.transaction():
            intent = await intents.insert(conn, tenant, store, tender_id=tender_id, method=method, currency=currency,
                                          amount_minor=amount_minor, state=State.AWAITING_PAYMENT_METHOD,
                                          provider=self.provider, till=till)
        _same(intent, tender_id, store=store, method=method, amount_minor=amount_minor, currency=currency)
        log.debug("intent %s for tender %s created by %s", intent.id, tender_id, actor)
        return intent

    async def record_terminal_approval(self, tenant: str, store: str, *, tender_id: str, till: str,
                                       amount_minor: int, authorized_minor: int, currency: str,
                                       provider_ref: str | None, auth_code: str | None, scheme: str | None,
                                       masked: str | None, offline: bool, card_token: str | None,
                                       actor: str) -> Intent:
        """A card-present tender the terminal approved (AUTHORIZED for the capture window), or took offline
        (AWAITING_PAYMENT_METHOD with the card's token, authorized through the provider later). The tender's
        intent if it already exists for the same approval; Conflict if for another."""
        if offline and not card_token:
            raise validators.Invalid("card_token", "is needed for a card taken offline: the hub authorizes it later")
        async with self.pool.acquire() as conn, conn.transaction():
            intent = await intents.insert_terminal_approval(
                conn, tenant, store, tender_id=tender_id, till=till, amount_minor=amount_minor,
                authorized_minor=authorized_minor, currency=currency, provider=self.provider,
                provider_ref=provider_ref, auth_code=auth_code, scheme=scheme, masked=masked, offline=offline,
                card_token=card_token, capture_window=timedelta(seconds=self.settings.capture_window_s), now=now())
        _same(intent, tender_id, store=store, method="card_present", amount_minor=amount_minor, currency=currency)
        if intent.provider_ref != provider_ref and not offline:
            raise Conflict(f"tender {tender_id} was approved as {intent.provider_ref}, not {provider_ref}")
        metrics.action("terminal_approval", "offline" if offline else "authorized")
        log.debug("terminal approval of tender %s recorded for %s", tender_id, actor)
        return intent

    # Actions through the provider.

    async def authorize(self, tenant: str, intent_id: uuid.UUID, *, card: str | None = None, actor: str) -> Intent:
        """Authorize a waiting intent on `card` (a card token), or on the token of the card taken offline."""
        async def begin(conn: asyncpg.Connection, intent: Intent) -> Intent:
            model.allowed(intent.state, Action.AUTHORIZE)
            token = card or intent.card_token
            if not token:
                raise validators.Invalid("card", "is needed: this payment holds no card to authorize")
            return await self._begin(conn, intent, Action.AUTHORIZE, amount=intent.amount_minor, actor=actor,
                                     reason=None, card_token=token)
        return await self._run(await self._claim(tenant, intent_id, begin))

    async def capture(self, tenant: str, intent_id: uuid.UUID, *, amount_minor: int | None = None,
                      actor: str) -> Intent:
        """Take `amount_minor` (all that was authorized when None) of an authorized intent."""
        async def begin(conn: asyncpg.Connection, intent: Intent) -> Intent:
            amount = intent.authorized_minor if amount_minor is None else amount_minor
            model.may_capture(intent.state, intent.amounts, amount)
            return await self._begin(conn, intent, Action.CAPTURE, amount=amount, actor=actor, reason=None)
        return await self._run(await self._claim(tenant, intent_id, begin))

    async def cancel(self, tenant: str, intent_id: uuid.UUID, *, actor: str, reason: str) -> Intent:
        """Void an intent not yet captured. One the provider never held (a card taken offline not yet authorized,
        or one waiting with no provider reference) is cancelled at once, without a call."""
        async with self.pool.acquire() as conn, conn.transaction():
            intent = await self._locked(conn, tenant, intent_id)
            model.allowed(intent.state, Action.CANCEL)
            if intent.state == State.AWAITING_PAYMENT_METHOD and (intent.offline or not intent.provider_ref):
                cancelled = await intents.change(conn, intent, State.CANCELLED, card_token=None)
                await self._audit(conn, cancelled, Action.CANCEL, actor, reason, intent.amount_minor)
                metrics.action("cancel", "cancelled")
                return cancelled
            if self.gateway is None:
                raise NoProvider("no payment provider is configured ([payments] gateway_url): nothing was voided")
            claimed = await self._begin(conn, intent, Action.CANCEL, amount=None, actor=actor, reason=reason)
        return await self._run(claimed)

    async def refund(self, tenant: str, intent_id: uuid.UUID, *, amount_minor: int, refund_key: str, actor: str,
                     reason: str | None) -> tuple[Intent, Refund]:
        """Refund `amount_minor` of a captured intent through the provider. `refund_key` makes it once: the same
        key again answers the same refund; for another intent or amount it is a Conflict."""
        async with self.pool.acquire() as conn, conn.transaction():
            intent = await self._locked(conn, tenant, intent_id)
            earlier = await _refund_by_key(conn, tenant, refund_key)
            if earlier is not None:
                return intent, _same_refund(earlier, intent, amount_minor)
            model.may_refund(intent.state, intent.amounts, amount_minor)
            if self.gateway is None:
                raise NoProvider("no payment provider is configured ([payments] gateway_url): nothing was refunded")
            refund_id = uuid7()
            await conn.execute("INSERT INTO payment_refunds (id, intent_id, tenant, refund_key, amount_minor, state,"
                               " via, reason, actor) VALUES ($1, $2, $3, $4, $5, 'processing', 'provider', $6, $7)",
                               refund_id, intent.id, tenant, refund_key, amount_minor, reason, actor)
            claimed = await self._begin(conn, intent, Action.REFUND, amount=amount_minor, actor=actor, reason=reason,
                                        key=str(refund_id))
        after = await self._run(claimed)
        async with self.pool.acquire() as conn:
            refund = await _refund_by_key(conn, tenant, refund_key)
        assert refund is not None
        return after, refund

    async def record_terminal_refund(self, tenant: str, intent_id: uuid.UUID, *, amount_minor: int, refund_key: str,
                                     provider_ref: str | None, actor: str,
                                     reason: str | None = None) -> tuple[Intent, Refund]:
        """A refund the till's terminal made with the card present: recorded, no provider call."""
        async with self.pool.acquire() as conn, conn.transaction():
            intent = await self._locked(conn, tenant, intent_id)
            await free_declined_key(conn, tenant, refund_key)
            earlier = await _refund_by_key(conn, tenant, refund_key)
            if earlier is not None:
                return intent, _same_refund(earlier, intent, amount_minor)
            model.may_refund(intent.state, intent.amounts, amount_minor)
            row = await conn.fetchrow(
                "INSERT INTO payment_refunds (id, intent_id, tenant, refund_key, amount_minor, state, via, provider_ref,"
                " reason, actor) VALUES ($1, $2, $3, $4, $5, 'succeeded', 'terminal', $6, $7, $8) RETURNING *",
                uuid7(), intent.id, tenant, refund_key, amount_minor, provider_ref, reason, actor)
            refund = Refund.of(row)
            state, amounts = model.after_refund(intent.amounts, amount_minor)
            refunded = await intents.change(conn, intent, state, refunded_minor=amounts.refunded)
            await _emit_refund(conn, refunded, refund)
            await self._audit(conn, refunded, Action.REFUND, actor, reason, amount_minor, via="terminal")
        metrics.action("terminal_refund", "succeeded")
        return refunded, refund

    async def provider_says(self, provider: str, provider_ref: str, outcome: Outcome,
                            amount_minor: int) -> Intent | None:
        """A webhook's news of a payment the customer completed or abandoned (a QR payment): the intent it names
        settles accordingly; news of an intent already settled changes nothing (webhooks come more than once).
        None when no intent has that reference."""
        async with self.pool.acquire() as conn, conn.transaction():
            intent = await intents.by_provider_ref(conn, provider, provider_ref, lock=True)
            if intent is None:
                return None
            waiting = intent.state == State.AWAITING_PAYMENT_METHOD or intent.pending == Action.AUTHORIZE
            if not waiting:
                return intent
            if outcome in (Outcome.AUTHORIZED, Outcome.CAPTURED):
                state = State(outcome)
                other = None if amount_minor == intent.amounts.amount else (
                    f"the provider took {amount_minor} where {intent.amounts.amount} was asked (minor units): "
                    "check the payment with the provider and refund or collect the difference")
                settled = await intents.change(
                    conn, intent, state, **({"attention": other} if other else {}), authorized_minor=amount_minor,
                    captured_minor=amount_minor if state == State.CAPTURED else 0,
                    capture_before=now() + timedelta(seconds=self.settings.capture_window_s)
                    if state == State.AUTHORIZED else None)
            elif outcome == Outcome.CANCELLED:
                settled = await intents.change(conn, intent, State.CANCELLED)
            elif outcome in (Outcome.DECLINED, Outcome.FAILED):
                settled = await intents.change(conn, intent, State.FAILED, last_error=f"the provider said {outcome}")
            else:
                log.warning("the provider's news of %s says %s, which a payment waiting for its customer cannot "
                            "become; ignored", provider_ref, outcome)
                return intent
        metrics.action("webhook", str(outcome))
        return settled

    # The watchdog's.

    async def resolve(self, intent_id: uuid.UUID) -> Intent:
        """Settle a PROCESSING intent by asking the provider how its call ended (see the module's docstring)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM payment_intents WHERE id = $1", intent_id)
        if row is None:
            raise NotFound(f"there is no payment {intent_id}")
        intent = Intent.of(row)
        if intent.state != State.PROCESSING:
            return intent
        gateway = self._gateway("resolve")
        assert intent.pending_key is not None
        try:
            answer = await self._timed(gateway.status(
                intent.pending_key, str(intent.pending),
                "" if intent.pending == Action.AUTHORIZE else intent.provider_ref or "", intent.pending_minor,
                intent.currency))
        except (GatewayTimeout, GatewayUnavailable) as exc:
            metrics.action("resolve", "unknown")
            return await self._still_unknown(intent, f"the provider could not say how it ended ({exc or 'no answer'})")
        if answer is not None:
            metrics.action("resolve", "answered")
            return await self._finish(intent, answer)
        if intent.pending_retried:
            metrics.action("resolve", "unknown")
            return await self._still_unknown(intent, "the provider never saw the call, even made again")
        try:
            answer = await self._call(intent)
        except GatewayUnavailable:
            metrics.action("resolve", "unavailable")
            return intent
        if answer is None:
            metrics.action("resolve", "timeout")
        async with self.pool.acquire() as conn:
            await conn.execute("UPDATE payment_intents SET pending_retried = true WHERE id = $1 AND pending_key = $2",
                               intent.id, intent.pending_key)
        if answer is None:
            return await self._still_unknown(intent, "the call made again did not answer either")
        metrics.action("resolve", "retried")
        return await self._finish(intent, answer)

    async def void_expired(self, batch: int) -> int:
        """Cancel up to `batch` authorizations left uncaptured past their capture window (audited as
        payment.auto_voided); how many were claimed. Each is claimed right before its own call (a claim made for a
        whole batch would wait PROCESSING behind the others' calls, where the watchdog may make it again). Several
        hubs share the work (SKIP LOCKED); a void the provider declined is left to a person (`attention`), not
        tried again every round; one that raised is surfaced for a person and the others carry on."""
        if self.gateway is None:
            return 0
        for claimed_so_far in range(batch):
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow("SELECT * FROM payment_intents WHERE state = 'authorized' AND"
                                          f" capture_before < now() AND {RETRIED_BY_ITSELF}"
                                          " ORDER BY capture_before LIMIT 1 FOR UPDATE SKIP LOCKED")
                if row is None:
                    return claimed_so_far
                intent = await self._begin(conn, Intent.of(row), Action.CANCEL, amount=None, actor=AUTO_VOID,
                                           reason="not captured within the capture window")
            try:
                await self._run(intent)
            except NoProvider as exc:
                log.warning("auto-void of payment %s: %s; tried again on the next round", intent.id, exc)
                return claimed_so_far + 1
            except Exception as exc:  # this intent's trouble (a reference the provider cannot take): not the others'
                await self.attend(intent.id, f"the auto-void failed: {type(exc).__name__}: {exc}")
        return batch

    async def attend(self, intent_id: uuid.UUID, why: str) -> None:
        """Surface an intent whose call raised for a person (logged with the trace; the first reason stays), so
        that the watchdog and auto-void carry on with the others."""
        log.exception("payment %s needs attention: %s", intent_id, why)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM payment_intents WHERE id = $1 FOR UPDATE", intent_id)
            if row is not None and row["attention"] is None:
                intent = Intent.of(row)
                await intents.change(conn, intent, intent.state, attention=why[:500])

    async def stale(self, batch: int) -> list[uuid.UUID]:
        """Up to `batch` intents processing for longer than watchdog_after_s that no watchdog looked at in that
        time, now marked as looked at: each is resolved by one hub at a time."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "UPDATE payment_intents SET checked_at = now() WHERE id IN (SELECT id FROM payment_intents"
                " WHERE state = 'processing' AND pending_since < now() - make_interval(secs => $1)"
                " AND (checked_at IS NULL OR checked_at < now() - make_interval(secs => $1))"
                " ORDER BY pending_since LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id",
                float(self.settings.watchdog_after_s), batch)
        return [row["id"] for row in rows]

    # The bracket around a provider call.

    def _gateway(self, what: str) -> Gateway:
        if self.gateway is None:
            raise NoProvider(f"no payment provider is configured ([payments] gateway_url): cannot {what}")
        return self.gateway

    async def _locked(self, conn: asyncpg.Connection, tenant: str, intent_id: uuid.UUID) -> Intent:
        intent = await intents.by_id(conn, tenant, intent_id, lock=True)
        if intent is None:
            raise NotFound(f"there is no payment {intent_id}")
        return intent

    async def _claim(self, tenant: str, intent_id: uuid.UUID,
                     begin: Callable[[asyncpg.Connection, Intent], Awaitable[Intent]]) -> Intent:
        """Lock the intent, check the action may begin (`begin` raises Refused otherwise) and commit it PROCESSING."""
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await begin(conn, await self._locked(conn, tenant, intent_id))
            self._gateway(f"{claimed.pending}: nothing was done")  # NoProvider rolls the claim back
            return claimed

    async def _begin(self, conn: asyncpg.Connection, intent: Intent, action: Action, *, amount: int | None,
                     actor: str, reason: str | None, key: str | None = None, card_token: str | None = None) -> Intent:
        return await intents.change(
            conn, intent, State.PROCESSING, pending=action, pending_key=key or str(uuid7()), pending_since=now(),
            pending_minor=amount, pending_actor=actor, pending_reason=reason, pending_retried=False,
            back_to=intent.state, checked_at=None, card_token=card_token or intent.card_token)

    async def _run(self, intent: Intent) -> Intent:
        """Make the claimed intent's pending call and commit its answer: the intent as it is then (still
        PROCESSING after a timeout). NoProvider, with the intent put back, when the provider was unreachable."""
        try:
            answer = await self._call(intent)
        except GatewayUnavailable as exc:
            await self._put_back(intent, f"{UNREACHED} ({exc}): nothing was done")
            raise NoProvider(f"the payment provider could not be reached ({exc}): nothing was done; try again") \
                from None
        if answer is None:
            metrics.action(str(intent.pending), "timeout")
            log.warning("payment %s: the provider did not answer %s in time; the watchdog asks it how it ended",
                        intent.id, intent.pending)
            return intent
        return await self._finish(intent, answer)

    async def _call(self, intent: Intent) -> Answer | None:
        """The pending call, made with its key; None when its outcome is unknown (a timeout)."""
        gateway = self._gateway(f"{intent.pending}: nothing was done")
        key, action = intent.pending_key, intent.pending
        assert key is not None and action is not None
        call: Awaitable[Answer]
        if action == Action.AUTHORIZE:
            assert intent.card_token is not None
            call = gateway.authorize(key, intent.amount_minor, intent.currency, intent.card_token)
        elif action == Action.CAPTURE:
            assert intent.provider_ref is not None and intent.pending_minor is not None
            call = gateway.capture(key, intent.provider_ref, intent.pending_minor)
        elif action == Action.CANCEL:
            assert intent.provider_ref is not None
            call = gateway.cancel(key, intent.provider_ref)
        else:
            assert intent.provider_ref is not None and intent.pending_minor is not None
            call = gateway.refund(key, intent.provider_ref, intent.pending_minor)
        try:
            return await self._timed(call)
        except GatewayTimeout:
            return None

    async def _timed(self, call: Awaitable[Any]) -> Any:
        """Await a provider call within timeout_s: a gateway that never answers is a timeout too."""
        try:
            async with asyncio.timeout(self.settings.timeout_s + 1):
                return await call
        except TimeoutError:
            raise GatewayTimeout(f"no answer within {self.settings.timeout_s} s") from None

    async def _put_back(self, intent: Intent, why: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await intents.by_id(conn, intent.tenant, intent.id, lock=True)
            if current is None or current.pending_key != intent.pending_key:
                return
            assert current.back_to is not None and current.pending is not None
            if current.pending == Action.REFUND:
                await conn.execute("DELETE FROM payment_refunds WHERE id = $1", uuid.UUID(current.pending_key))
            await intents.change(conn, current, current.back_to, last_error=why)
        metrics.action(str(intent.pending), "unavailable")

    async def _still_unknown(self, intent: Intent, why: str) -> Intent:
        """Leave it PROCESSING; surface it for a person once it has been unknown for ATTENTION_AFTER periods."""
        assert intent.pending_since is not None
        due = intent.pending_since + timedelta(seconds=self.settings.watchdog_after_s * ATTENTION_AFTER)
        if now() < due or intent.attention:
            return intent
        async with self.pool.acquire() as conn, conn.transaction():
            current = await intents.by_id(conn, intent.tenant, intent.id, lock=True)
            if current is None or current.pending_key != intent.pending_key:
                return current or intent
            log.error("payment %s: its %s has been unknown since %s (%s); surfaced for a person (attention)",
                      intent.id, intent.pending, intent.pending_since.isoformat(), why)
            return await intents.change(conn, current, current.state,
                                        attention=f"the {current.pending} sent to the provider is still unknown: "
                                                  f"{why}; check it at the provider")

    async def _finish(self, intent: Intent, answer: Answer) -> Intent:
        """Commit the provider's answer to the intent's pending call, unless it was settled meanwhile (by the
        watchdog, or a webhook): then the intent as it is."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await intents.by_id(conn, intent.tenant, intent.id, lock=True)
            if current is None or current.state != State.PROCESSING or current.pending_key != intent.pending_key:
                return current or intent
            settled = await self._apply(conn, current, answer)
        metrics.action(str(intent.pending), str(answer.outcome))
        return settled

    async def _apply(self, conn: asyncpg.Connection, intent: Intent, answer: Answer) -> Intent:
        action, back = intent.pending, intent.back_to
        assert action is not None and back is not None
        if answer.outcome in (Outcome.DECLINED, Outcome.FAILED):
            return await self._refused(conn, intent, action, back, answer)
        try:
            target = model.settle(action, State(answer.outcome))
        except ValueError as exc:
            log.error("payment %s: %s; left processing for a person", intent.id, exc)
            return await intents.change(conn, intent, State.PROCESSING,
                                        attention=f"{exc}: check the payment at the provider")
        if action == Action.AUTHORIZE:
            return await intents.change(
                conn, intent, target, authorized_minor=answer.amount_minor, provider_ref=answer.provider_ref,
                captured_minor=answer.amount_minor if target == State.CAPTURED else 0,
                auth_code=answer.auth_code or intent.auth_code, card_token=None, attention=None, last_error=None,
                capture_before=now() + timedelta(seconds=self.settings.capture_window_s)
                if target == State.AUTHORIZED else None)
        if action == Action.CAPTURE:
            changed = await intents.change(conn, intent, State.CAPTURED, captured_minor=answer.amount_minor,
                                           last_error=None)
            await self._audit(conn, changed, action, intent.pending_actor, intent.pending_reason, answer.amount_minor)
            return changed
        if action == Action.CANCEL:
            changed = await intents.change(conn, intent, State.CANCELLED, last_error=None)
            await self._audit(conn, changed, action, intent.pending_actor, intent.pending_reason,
                              intent.authorized_minor)
            return changed
        assert intent.pending_minor is not None and intent.pending_key is not None
        state, amounts = model.after_refund(intent.amounts, intent.pending_minor)
        refund = Refund.of(await conn.fetchrow(
            "UPDATE payment_refunds SET state = 'succeeded', provider_ref = $2, updated_at = now() WHERE id = $1"
            " RETURNING *", uuid.UUID(intent.pending_key), answer.provider_ref))
        changed = await intents.change(conn, intent, state, refunded_minor=amounts.refunded, last_error=None)
        await _emit_refund(conn, changed, refund)
        await self._audit(conn, changed, action, intent.pending_actor, intent.pending_reason, intent.pending_minor,
                          via="provider")
        return changed

    async def _refused(self, conn: asyncpg.Connection, intent: Intent, action: Action, back: State,
                       answer: Answer) -> Intent:
        """The provider said no: an authorization fails (an offline approval's decline is surfaced as a follow-up);
        a capture, void or refund leaves the intent where it was, saying why."""
        why = f"the provider {answer.outcome} the {action}" + (f": {answer.message}" if answer.message else "")
        if action == Action.AUTHORIZE:
            return await intents.change(
                conn, intent, State.FAILED, last_error=why, card_token=None,
                attention=f"a card taken offline was {answer.outcome} later: {answer.message or 'no reason given'}; "
                          "collect the payment another way" if intent.offline else None)
        if action == Action.REFUND:
            assert intent.pending_key is not None
            refund = Refund.of(await conn.fetchrow(
                "UPDATE payment_refunds SET state = 'failed', updated_at = now() WHERE id = $1 RETURNING *",
                uuid.UUID(intent.pending_key)))
            changed = await intents.change(conn, intent, back, last_error=why)
            await _emit_refund(conn, changed, refund)
            return changed
        return await intents.change(conn, intent, back, last_error=why, attention=intent.attention or why)

    async def _audit(self, conn: asyncpg.Connection, intent: Intent, action: Action, actor: str | None,
                     reason: str | None, amount_minor: int, **details: Any) -> None:
        """A person's capture, void or refund, and the auto-void, in the transaction that made them."""
        if actor is None or not (is_person(actor) or actor == AUTO_VOID):
            return
        name = "payment.auto_voided" if actor == AUTO_VOID else _AUDITED[action]
        await record(conn, Entry(intent.tenant, actor, name, store=intent.store, target=str(intent.id), details={
            "amount_minor": amount_minor, "currency": intent.currency, "tender_id": intent.tender_id,
            "state": str(intent.state), **({"reason": reason} if reason else {}), **details}))


def _same(intent: Intent, tender_id: str, **asked: Any) -> None:
    """Conflict unless the tender's existing intent is the one asked for."""
    differ = sorted(name for name, value in asked.items() if getattr(intent, name) != value)
    if differ:
        raise Conflict(f"tender {tender_id} already has a payment with another {', '.join(differ)}")


def _same_refund(refund: Refund, intent: Intent, amount_minor: int) -> Refund:
    if refund.intent_id != intent.id or refund.amount_minor != amount_minor:
        raise Conflict(f"refund key {refund.key} was used for another refund")
    return refund


async def _refund_by_key(conn: asyncpg.Connection, tenant: str, refund_key: str) -> Refund | None:
    row = await conn.fetchrow("SELECT * FROM payment_refunds WHERE tenant = $1 AND refund_key = $2", tenant,
                              refund_key)
    return None if row is None else Refund.of(row)


async def _emit_refund(conn: asyncpg.Connection, intent: Intent, refund: Refund) -> None:
    await outbox.emit(conn, intent.tenant, intent.store, "payment.refund",
                      {"intent": intent.to_json(), "refund": refund.to_json()})
