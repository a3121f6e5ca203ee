"""What discounts and sale.completed v3 cost: a discount on a large cart at the till (the order discount is
shared again on every change), and the hub's decode of a v3 sale, plain (the ingest fast path) and discounted
(the schema), against decoding the same plain sale as v2.

    python -m bench.cart [--lines 100] [--rounds 2000]

The last stdout line is one JSON object (bench.figures): the till's order-discount change on a cart of
`--lines` lines (median and p99, ms), and the hub's decode per event (median, µs: the ingest fast path, which
takes every valid v2 and v3 sale) with each v3 figure's ratio to the v2 decode measured in the same run (its
floor).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from typing import Any

from actors.catalog.local import Offer
from actors.protocol import Rejected
from actors.till.cart import Cart, Discount
from bench.figures import progress, ratio, summary
from bench.ingest import order
from hub.ingest import fast_decode
from novapos.wire.envelope import Envelope, decode


def plain_v3(v2: Envelope, drawer_session: str | None = None) -> Envelope:
    """A v2 sale as the till commits it in v3 with nothing changing its prices: line ids, the list price, no
    order discount share, a variant's attributes on the first line, tender ids."""
    body = copy.deepcopy(v2.body)
    if drawer_session is not None:
        body["drawer_session"] = drawer_session
    body["lines"] = [{"line": f"l{number}", **line, "attributes": [["size", "M"], ["colour", "red"]] if number == 0
                      else [], "list_price": dict(line["unit_price"]),
                      "order_discount": {"minor": 0, "currency": "EUR"}} for number, line in enumerate(body["lines"])]
    body["tenders"] = [{"id": f"t{number}", **tender} for number, tender in enumerate(body["tenders"])]
    return dataclasses.replace(v2, v=3, body=body)


def discounted_cart(lines: int, excluded: bool = False) -> Cart:
    """A cart of `lines` distinct items, each with a 10 % line discount."""
    cart = Cart("EUR", 50_000)
    for number in range(lines):
        offer = Offer(f"SKU-{number}", f"Item {number}", 1, 100 + number * 7, "EUR", "standard", 200_000,
                      not excluded)
        assert cart.add(offer, 1 + number % 3) is None
        assert cart.discount_line(cart.lines[-1].id, Discount("percent", 1000, "promo")) is None
    return cart


def till_discount(lines: int, rounds: int) -> list[float]:
    """Seconds per order-discount change (set, then another value) on a cart of `lines` lines."""
    cart = discounted_cart(lines)
    samples = []
    for number in range(rounds):
        started = time.perf_counter()
        assert cart.discount_order(Discount("amount", 100 + number % 50, "complaint")) is None
        samples.append(time.perf_counter() - started)
    return samples


def hub_decode(data: bytes, rounds: int) -> list[float]:
    """Seconds per event as ingest decodes it: the fast path, else novapos.wire's decode."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        if fast_decode.decode(data) is None:
            decode(data)
        samples.append(time.perf_counter() - started)
    return samples


def discounted_v3_body(excluded: bool = False) -> dict[str, Any]:
    """The till's own v3 body for a 3-line cart (tax `excluded` from shelf prices, or included) with a price
    override, percent line discounts, a percent order discount and cash with change."""
    cart = discounted_cart(3, excluded)
    assert not isinstance(cart.override_price(cart.lines[0].id, 90, "price match", "manager"), Rejected)
    assert cart.discount_order(Discount("percent", 500, "staff")) is None
    assert cart.tender_cash(cart.due().minor + 50) is None
    body = cart.checkout("till-1", "bench", "bench", "0190a3c4-7e1f-7b2a-9c3d-4e5f60718293")
    assert isinstance(body, dict)
    return body


def discounted_v3() -> bytes:
    v2 = order("store-001", 1)
    return Envelope(id=v2.id, type="sale.completed", v=3, tenant=v2.tenant, store=v2.store, seq=1, ts=v2.ts,
                    body=discounted_v3_body()).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    progress(f"order discount on a {args.lines}-line cart, {args.rounds} rounds")
    till = summary(till_discount(args.lines, args.rounds))
    v2 = order("store-001", 1)
    progress("hub decode: v2, plain v3, discounted v3")
    floor = summary(hub_decode(v2.encode(), args.rounds), 1e6)["median"]
    plain = summary(hub_decode(plain_v3(v2).encode(), args.rounds), 1e6)["median"]
    discounted = summary(hub_decode(discounted_v3(), args.rounds), 1e6)["median"]
    print(json.dumps({
        f"till_order_discount_{args.lines}_lines_median_ms": till["median"],
        f"till_order_discount_{args.lines}_lines_p99_ms": till["p99"],
        "hub_decode_v2_floor_us": floor,
        "hub_decode_v3_plain_us": plain, "hub_decode_v3_plain_ratio": ratio(plain, floor),
        "hub_decode_v3_discounted_us": discounted, "hub_decode_v3_discounted_ratio": ratio(discounted, floor),
    }))


if __name__ == "__main__":
    main()
