"""Contracts benchmark: what validating one event costs the hub, beside unpacking its bytes.

    python -m bench.contracts [--events 20000] [--rounds 7]

The hub decodes and validates every event it ingests (novapos.wire.envelope.decode: the envelope, then
the body against its versioned schema). Figures, per event of 3 lines (microseconds, median of rounds):

- decode_v1_us, decode_v2_us: decode() of a sale.completed v1 / v2 event (v2: price locks and tax).
- unpack_floor_us: msgpack.unpackb of the same v2 bytes alone, what any validation costs at least.
- decode_v2_floor_ratio: decode_v2_us over the floor.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgpack

from bench.figures import progress, ratio
from novapos.pricing import line_tax
from novapos.wire.envelope import Envelope, decode
from novapos.wire.ids import uuid7

LINES = (("COF-250", "Ground coffee 250 g", 2, 499), ("MLK-1L", "Whole milk 1 l", 1, 129),
         ("BRD-500", "Sourdough loaf 500 g", 3, 350))


def _money(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def sale(version: int, seq: int) -> bytes:
    """A sale of LINES paid in cash, as a store of that version commits it."""
    lines: list[dict[str, Any]] = []
    total = tax_total = 0
    for sku, name, quantity, unit in LINES:
        line: dict[str, Any] = {"sku": sku, "name": name, "quantity": quantity,
                                "unit_price": _money(unit), "amount": _money(unit * quantity)}
        total += unit * quantity
        if version == 2:
            tax = line_tax(unit * quantity, 200_000, True)
            tax_total += tax
            line |= {"catalog_version": 42, "tax": {"class": "standard", "rate_ppm": 200_000, "included": True,
                                                    "amount": _money(tax)}}
        lines.append(line)
    body: dict[str, Any] = {"till": "till-1", "session": "bench", "cashier": "bench", "currency": "EUR",
                            "lines": lines, "total": _money(total),
                            "tenders": [{"method": "cash", "amount": _money(total + 100)}], "change": _money(100)}
    if version == 2:
        body["tax_total"] = _money(tax_total)
    return Envelope(id=uuid7(), type="sale.completed", v=version, tenant="demo", store="store-001", seq=seq,
                    ts=1_800_000_000_000, body=body).encode()


def per_event_us(work: Callable[[bytes], object], events: list[bytes], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for data in events:
            work(data)
        samples.append((time.perf_counter() - started) / len(events))
    return round(statistics.median(samples) * 1e6, 2)


def main(events: int, rounds: int) -> dict[str, Any]:
    v1 = [sale(1, seq) for seq in range(1, events + 1)]
    v2 = [sale(2, seq) for seq in range(1, events + 1)]
    progress(f"decoding {events} events x {rounds} rounds, v1 then v2, then the unpack floor")
    decode_v1 = per_event_us(decode, v1, rounds)
    decode_v2 = per_event_us(decode, v2, rounds)
    floor = per_event_us(msgpack.unpackb, v2, rounds)
    return {"decode_v1_us": decode_v1, "decode_v2_us": decode_v2, "unpack_floor_us": floor,
            "decode_v2_floor_ratio": ratio(decode_v2, floor), "events": events, "rounds": rounds,
            "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.events, arguments.rounds)))
