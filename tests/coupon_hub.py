"""A stand-in for the hub's coupon responders (coupon_reserve, coupon_release) on real NATS, for till tests that
need a hub answering exactly so: it subscribes with the hub's rights to every store's coupon subjects, answers each
request as hub.coupons would (the same JSON, the same {"refused": {...}} refusals) and records what it was asked."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.loyalty import COUPON_RELEASE, COUPON_RESERVE, responder_subject
from novapos.wire.payments import decode, encode


@dataclass
class CouponHub:
    """code -> promotion id for the codes it reserves (each once: a single-use code); what it was asked."""
    codes: dict[str, str]
    reserved: dict[str, str] = field(default_factory=dict)
    """redemption -> code of the holds it keeps."""
    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answering: threading.Event = field(default_factory=threading.Event)
    hold_ms: int = 20 * 60 * 1000
    """The hold it answers (held_until_ms: the till's till_ms + this), like hub.coupons.uses."""

    def answer(self, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        self.asked.append((kind, request))
        if kind == COUPON_RELEASE:
            self.reserved.pop(request["redemption"], None)
            return {"released": True}
        code, redemption = request["code"], request["redemption"]
        if code not in self.codes:
            return {"refused": {"code": 404, "message": f"no coupon has the code {code}"}}
        if self.reserved.get(redemption) not in (None, code):
            return {"refused": {"code": 409, "message": "that redemption id is another code's"}}
        if redemption not in self.reserved and code in self.reserved.values():
            return {"refused": {"code": 409, "message": "this coupon has been used"}}
        self.reserved[redemption] = code
        held = {"redemption": redemption, "promotion": self.codes[code], "code": code}
        return held if request.get("till_ms") is None else {**held, "held_until_ms": request["till_ms"] + self.hold_ms}

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.asked]


@contextmanager
def coupon_hub(nats_server: EmbeddedNats, codes: dict[str, str]) -> Iterator[CouponHub]:
    """The stand-in answering on its own thread and asyncio loop until the block ends."""
    hub = CouponHub(codes)
    stop = threading.Event()

    async def serve() -> None:
        link = nats_server.hub_link("test-coupon-hub")
        await link.connect()

        def responder(kind: str) -> Any:
            async def respond(message: Any) -> None:
                await message.respond(encode(hub.answer(kind, decode("request", message.data))))
            return respond
        for kind in (COUPON_RESERVE, COUPON_RELEASE):
            await link.client.subscribe(responder_subject(kind), cb=responder(kind))
        await link.client.flush()
        hub.answering.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await link.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert hub.answering.wait(10), "the coupon stand-in did not subscribe"
    try:
        yield hub
    finally:
        stop.set()
        thread.join(10)
