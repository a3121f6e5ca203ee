"""A hub-side stand-in for the customer, loyalty and gift card requests (novapos.wire.loyalty), subscribed on the
real NATS with the hub's rights, for the till's tests before (and beside) the hub's own responders: it keeps
customers, point balances and gift card balances in memory, answers as the contracts say (idempotent on the
redemption id), and notes every request it was asked. `down()` unsubscribes (the store is then offline: no
responders), `up()` subscribes again."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import nats

from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.loyalty import KINDS, responder_subject

ANN = "0190a3c4-7e1f-7b2a-9c3d-0000000000a1"
BEN = "0190a3c4-7e1f-7b2a-9c3d-0000000000b2"
GIFT_CARD = "6006491234567890"


@dataclass
class Customer:
    id: str
    card_number: str
    name: str
    phone: str
    email: str
    points: int
    tier: str = "silver"

    def profile(self) -> dict[str, Any]:
        return {"id": self.id, "card_number": self.card_number, "name": self.name, "phone": self.phone,
                "email": self.email, "tier": self.tier, "points": self.points, "home_store": "store-001",
                "erased": False}


@dataclass
class LoyaltyHub:
    server: EmbeddedNats
    point_value_minor: int = 1
    budget: int = 1000
    cap: int = 300
    customers: dict[str, Customer] = field(default_factory=lambda: {
        ANN: Customer(ANN, "2900000000017", "Ann Example", "+441234567890", "ann@example.com", 5000),
        BEN: Customer(BEN, "2900000000024", "Ben Example", "+441234567891", "ben@example.com", 120)})
    gift_cards: dict[str, int] = field(default_factory=lambda: {GIFT_CARD: 2500})
    redemptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._subscriptions: list[Any] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)
        self._stop: asyncio.Event | None = None

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [body for asked, body in self.asked if asked == kind]

    def __enter__(self) -> LoyaltyHub:
        self._thread.start()
        assert self._ready.wait(10)
        self.up()
        return self

    def __exit__(self, *_: Any) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _call(self, coroutine: Any) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def up(self) -> None:
        self._call(self._subscribe())

    def down(self) -> None:
        self._call(self._unsubscribe())

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._client = await nats.connect(self.server.url, **self.server.hub_options())
        self._ready.set()
        await self._stop.wait()
        await self._client.close()

    async def _subscribe(self) -> None:
        for kind in KINDS:
            self._subscriptions.append(await self._client.subscribe(responder_subject(kind), cb=self._answer))
        await self._client.flush()

    async def _unsubscribe(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions.clear()
        await self._client.flush()

    async def _answer(self, msg: Any) -> None:
        kind = msg.subject.rsplit(".", 1)[1]
        body = json.loads(msg.data)
        self.asked.append((kind, body))
        await msg.respond(json.dumps(self.answer(kind, body)).encode())

    def answer(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if kind == "customer_find":
            query = body["query"]
            return {"customers": [c.profile() for c in self.customers.values()
                                  if query in (c.card_number, c.phone, c.email)]}
        if kind == "customer_create":
            made = Customer("0190a3c4-7e1f-7b2a-9c3d-0000000000c3", "2900000000031", body["name"],
                            body.get("phone", ""), body.get("email", ""), 0, "")
            self.customers[made.id] = made
            return {"customer": made.profile()}
        if kind == "customer_360":
            found = self.customers.get(body["customer"])
            if found is None:
                return {"refused": {"code": 404, "message": "no such customer"}}
            return {"customer": found.profile(), "loyalty": {
                "points": found.points, "tier": found.tier, "multiplier_ppm": 1_000_000, "spend_12m_minor": 12345,
                "next_tier": "gold", "expiring": [{"points": 200, "expires_at": "2027-01-31"}]},
                "orders": [{"order": "o-1", "store": "store-001", "at": "2026-11-30T10:00:00Z", "total_minor": 1299,
                            "currency": "EUR"}], "preferences": {}}
        if kind == "loyalty_settings":
            return {"point_value_minor": self.point_value_minor, "currency": "EUR",
                    "offline_store_budget_points": self.budget, "offline_customer_cap_points": self.cap,
                    "earn": {}, "tiers": []}
        if kind == "points_redeem":
            return self._redeem_points(body)
        if kind in ("points_reverse", "gift_card_reverse"):
            done = self.redemptions.get(body["redemption"])
            if done is None:
                return {"refused": {"code": 404, "message": "no such redemption"}}
            if not done.get("reversed"):
                done["reversed"] = True
                if kind == "points_reverse":
                    self.customers[done["customer"]].points += done["points"]
                else:
                    self.gift_cards[done["card"]] += done["amount_minor"]
            return {"redemption": body["redemption"], "reversed": True}
        if kind == "gift_card_redeem":
            return self._redeem_gift_card(body)
        if kind == "gift_card_refund":
            self.gift_cards[body["card"]] += body["amount_minor"]
            return {"redemption": body["redemption"], "card": "************" + body["card"][-4:],
                    "balance_minor": self.gift_cards[body["card"]]}
        return {"refused": {"code": 404, "message": f"no {kind} here"}}

    def _redeem_points(self, body: dict[str, Any]) -> dict[str, Any]:
        customer = self.customers[body["customer"]]
        if body["redemption"] not in self.redemptions:
            if customer.points < body["points"]:
                return {"refused": {"code": 409, "message": f"the customer has only {customer.points} points"}}
            customer.points -= body["points"]
            self.redemptions[body["redemption"]] = {"customer": customer.id, "points": body["points"]}
        return {"redemption": body["redemption"], "points": body["points"], "balance": customer.points,
                "value_minor": body["points"] * self.point_value_minor, "currency": "EUR"}

    def _redeem_gift_card(self, body: dict[str, Any]) -> dict[str, Any]:
        card = body["card"]
        if card not in self.gift_cards:
            return {"refused": {"code": 404, "message": "no such gift card"}}
        if body["redemption"] not in self.redemptions:
            if self.gift_cards[card] < body["amount_minor"]:
                return {"refused": {"code": 402, "message": f"the card has {self.gift_cards[card]} left"}}
            self.gift_cards[card] -= body["amount_minor"]
            self.redemptions[body["redemption"]] = {"card": card, "amount_minor": body["amount_minor"]}
        return {"redemption": body["redemption"], "card": "************" + card[-4:],
                "amount_minor": body["amount_minor"], "balance_minor": self.gift_cards[card]}
