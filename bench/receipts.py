"""What a full receipt costs: laying out a card sale (receipt, QR code, merchant copy with a signature line),
encoding it for the printer, and printing it confirmed on the simulated network printer.

Floor, measured in the same run: a confirmed print of a one-line job through the same driver and printer (the
socket round trip and the printer's status answer, which every job pays). The ratio says what the receipt's
size and layout add to that.

    python -m bench.receipts [--count 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime

from actors.printing.document import PrintDocument, PrintLine
from actors.printing.receipt import ReceiptContext, render_receipt
from bench.figures import progress, ratio, summary
from drivers.escpos_printer import EscPosPrinter
from mocks.network_printer import MockNetworkPrinter
from novapos.config.receipt import ReceiptSettings
from tests.receipt_bodies import card, cash, line, sale

SETTINGS = ReceiptSettings("Nova Sports", ("12 Market Street", "75001 Paris"), "FR 12 345678901",
                           ("Thank you!", "Returns within 30 days"), "Europe/Paris")
ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def card_sale(lines: int) -> dict[str, object]:
    """A sale of `lines` lines, each a variant with a discount, paid by a card that asks for a signature and cash."""
    items = [line(n, f"Running shoe model {n}", 1 + n % 3, 4999 + n, attributes=[["size", "42"], ["colour", "Blue"]],
                  discount=("percent", 1000, "Loyalty card")) for n in range(1, lines + 1)]
    total = sum(item["amount"]["minor"] for item in items)
    return {"id": ORDER, "seq": 1, "body": sale(items, [card(total - 1000, signature=True), cash(1000)])}


def timed(count: int, run: object) -> list[float]:
    assert callable(run)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return samples


def main(count: int, lines: int) -> dict[str, object]:
    context = ReceiptContext(SETTINGS, {"alice": "Alice Martin"}.get)
    job = card_sale(lines)
    at = datetime.now(UTC).astimezone(SETTINGS.zone)
    document = render_receipt(context, job, at)
    one_line = PrintDocument((PrintLine("x"),))
    with MockNetworkPrinter() as mock, EscPosPrinter("127.0.0.1", mock.port, timeout=2.0) as printer:
        size = len(printer._encode(document))
        progress(f"render: {count} card sales of {lines} lines laid out")
        render = timed(count, lambda: render_receipt(context, job, at))
        progress(f"encode: {count} receipts encoded ({size} bytes each)")
        encode = timed(count, lambda: printer._encode(document))
        progress(f"print: {count} confirmed prints of the receipt and its merchant copy")
        full = timed(count, lambda: printer.print_document_confirmed(document))
        progress(f"floor: {count} confirmed prints of a one-line job")
        floor = timed(count, lambda: printer.print_document_confirmed(one_line))
        assert len(mock.wait_for_receipts(count * 3, 10.0)) == count * 3  # receipt, merchant copy, one line
    printed, floor_ms = summary(full), summary(floor)
    return {"render_ms": summary(render, digits=3), "encode_ms": summary(encode, digits=3),
            "receipt_print_ms": printed, "one_line_print_floor_ms": floor_ms,
            "receipt_print_to_floor_ratio": ratio(printed["median"], floor_ms["median"]), "receipt_bytes": size,
            "iterations": {"receipts": count, "lines_per_sale": lines}, "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--lines", type=int, default=10)
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.count, arguments.lines)))
