"""Receipts as the customer and the store get them: rendered, sent through the real ESC/POS driver to the
simulated printer, and read back from what it printed (text, cuts, the QR code decoded from its GS ( k bytes).

A card sale's receipt and merchant copy, with every element the issue lists; hostile names, reasons and
store settings printed as text, not obeyed; return and exchange receipts; X and Z reports; and, end to end
on a running edge, the reprint of the last receipt after the paper ran out: marked, audited, same order."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.printing.document import PrintDocument
from actors.printing.receipt import (
    ORDER_QR_PREFIX,
    REPRINT,
    ReceiptContext,
    order_from_qr,
    render_receipt,
    render_return,
)
from actors.printing.receipt import (
    row as printed_row,
)
from actors.printing.reports import render_x, render_z
from actors.printing.spooler import SWEEP_S
from actors.storage import db as local_db
from drivers import device_text
from drivers.escpos_printer import EscPosPrinter
from edge.app import run_edge
from mocks.escpos_parser import Cut, DrawerPulse, EscPosParser, QrCode, Text
from mocks.escpos_printer import qr_payloads
from mocks.network_printer import MockNetworkPrinter
from mocks.payment_terminal import MASKED_CARDS, PaymentTerminalMock
from novapos.config import ConfigError, DeviceRule, StoreConfig, load_store
from novapos.config.receipt import ReceiptSettings
from novapos.config.terminal import TerminalSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.money import Money
from tests.conftest import CONFIGS, wait_until
from tests.edges import printer_rule, start_edge, store_box, waiting_events
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in, sell
from tests.receipt_bodies import card, cash, eur, line, return_body, returned, sale

ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
SETTINGS = ReceiptSettings("Nova Sports", ("12 Market Street", "75001 Paris"), "FR 12 345678901",
                           ("Thank you!", "Returns within 30 days"), "Europe/Paris")
SOLD_AT = datetime(2026, 12, 2, 7, 40, tzinfo=UTC).astimezone(SETTINGS.zone)  # 08:40 in Paris
NAMES = {"alice": "Alice Martin", "manager": "Marc Chef"}
CONTEXT = ReceiptContext(SETTINGS, NAMES.get)
WAIT = 5.0


def shoe_and_socks(tenders: list[dict[str, Any]]) -> dict[str, Any]:
    """A sale with a variant, a price override, a percent and an amount discount, an order discount shared over
    the lines (434 + 66, largest remainder) and two tax rates: total 77.97 EUR."""
    return sale([line(1, "Running shoe", 1, 8999, unit_price=7999, attributes=[["size", "42"], ["colour", "Blue"]],
                      override_reason="Display model", discount=("percent", 1000, "Loyalty card"), order_discount=434),
                 line(2, "Sport socks", 2, 599, attributes=[["size", "M"]], discount=("amount", 100, "Bundle"),
                      order_discount=66, rate_ppm=55_000)],
                tenders, order_discount=("amount", 500, "Welcome back", 500))


def row(left: str, right: str) -> str:
    """A line with an amount as the receipt prints it, stripped like `rows`."""
    return printed_row(left, right).strip()


def tax_row(rate: str, net: str, tax: str) -> str:
    return f"{rate:<12}{net:>15}{tax:>15}"


def printed(document: PrintDocument, parts: int) -> tuple[list[str], bytes]:
    """What a fresh simulated printer prints for `document` (one text per cut part), and the bytes it got."""
    with MockNetworkPrinter() as mock, EscPosPrinter("127.0.0.1", mock.port, timeout=2.0) as driver:
        driver.print_document(document)
        return mock.wait_for_receipts(parts, WAIT), mock.raw


def parse(raw: bytes) -> list[Any]:
    return EscPosParser().feed(raw)


def rows(receipt: str) -> list[str]:
    return [text.strip() for text in receipt.splitlines()]


def test_a_card_and_cash_sale_prints_every_element_and_a_merchant_copy_to_sign() -> None:
    body = shoe_and_socks([card(5000, signature=True), cash(3000)])
    (customer, merchant), raw = printed(render_receipt(CONTEXT, {"id": ORDER, "seq": 12, "body": body}, SOLD_AT), 2)
    text = rows(customer)
    assert text[:4] == ["Nova Sports", "12 Market Street", "75001 Paris", "Tax ID FR 12 345678901"]
    assert "2026-12-02 08:40 CET" in text and "Sale #12" in text and "Till till-1  Cashier Alice Martin" in text
    expected_in_order = [
        row("1 x Running shoe", "79.99 EUR"), "Size: 42, Colour: Blue", "Price changed from 89.99 EUR",
        "Reason: Display model", row("  Discount 10.00%", "-8.00 EUR"), "Loyalty card",
        row("2 x Sport socks", "11.98 EUR"), "Size: M", "@ 5.99 EUR",
        row("  Discount", "-1.00 EUR"), "Bundle",
        row("Order discount", "-5.00 EUR"), "Welcome back",
        tax_row("Tax rate", "Net", "Tax"), tax_row("5.50% incl.", "9.78 EUR", "0.54 EUR"),
        tax_row("20.00% incl.", "56.38 EUR", "11.27 EUR"), row("TOTAL", "77.97 EUR"),
        row("Card VISA ************4242", "50.00 EUR"), "Auth code A1B2C3", row("Cash", "30.00 EUR"),
        row("Change", "2.03 EUR"), f"[QR {ORDER_QR_PREFIX}{ORDER}]", "Order", ORDER,
        "Thank you!", "Returns within 30 days"]
    assert [row for row in text if row in expected_in_order] == expected_in_order
    assert "Subtotal" not in customer  # prices include tax: nothing is added
    assert [event.payload for event in parse(raw) if isinstance(event, QrCode)] == [f"novapos:order:{ORDER}"]
    assert order_from_qr(qr_payloads(customer)[0]) == ORDER
    assert [event for event in parse(raw) if isinstance(event, Cut)] == [Cut(), Cut()]
    merchant_text = rows(merchant)
    assert merchant_text[0] == "MERCHANT COPY" and "Nova Sports" in merchant_text and ORDER in merchant_text
    for expected in (row("TOTAL", "77.97 EUR"), row("Card VISA ************4242", "50.00 EUR"),
                     "Auth code A1B2C3", "Terminal T1", "Reference T1-000042", "X" + "_" * 40, "Cardholder signature"):
        assert expected in merchant_text, expected
    assert qr_payloads(merchant) == [] and row("Cash", "30.00 EUR") not in merchant_text  # the card's paper only


def test_only_a_card_sale_gets_a_merchant_copy_and_only_a_signing_card_a_signature_line() -> None:
    cash_only = shoe_and_socks([cash(8000)])
    receipts, raw = printed(render_receipt(CONTEXT, {"id": ORDER, "seq": 1, "body": cash_only}, SOLD_AT), 1)
    assert [event for event in parse(raw) if isinstance(event, Cut)] == [Cut()] and "MERCHANT" not in receipts[0]
    pin_card = shoe_and_socks([card(7797, scheme="MASTERCARD", masked="************5454")])
    (customer, merchant), _ = printed(render_receipt(CONTEXT, {"id": ORDER, "seq": 2, "body": pin_card}, SOLD_AT), 2)
    assert row("Card MASTERCARD ************5454", "77.97 EUR") in rows(customer)
    assert row("Change", "0.00 EUR") in rows(customer)
    assert rows(merchant)[0] == "MERCHANT COPY" and "signature" not in merchant and "X___" not in merchant


HOSTILE = "Bad\x00\x1bp0\x1dV0\x10\x14\x01\x00\x01\u202eevil\u200f\u2067x\u2069"
"""NUL, ESC p 0 (drawer pulse), GS V 0 (cut), DLE DC4 (real-time pulse), RTL override and mark, an isolate."""


def test_hostile_names_reasons_and_store_settings_print_as_text_never_as_commands() -> None:
    def with_text(value: str) -> tuple[ReceiptContext, dict[str, Any]]:
        body = json.loads(json.dumps(shoe_and_socks([card(5000, signature=True), cash(3000)]))
                          .replace("Running shoe", "@@").replace("Display model", "@@").replace("Loyalty card", "@@")
                          .replace("Welcome back", "@@").replace('"Blue"', '"@@"').replace("A1B2C3", "@@")
                          .replace('"alice"', '"@@"').replace("@@", json.dumps(value)[1:-1]))
        settings = ReceiptSettings(value, (value,), value, (value,), "Europe/Paris")
        return ReceiptContext(settings, lambda _login: value), body

    hostile_context, hostile_body = with_text(HOSTILE)
    plain = device_text.transliterate(HOSTILE, "cp858")
    assert plain == "Bad??p0?V0?????evilx"
    plain_context, plain_body = with_text(plain)
    hostile, hostile_raw = printed(render_receipt(hostile_context, {"id": ORDER, "seq": 3, "body": hostile_body},
                                                  SOLD_AT), 2)
    same, plain_raw = printed(render_receipt(plain_context, {"id": ORDER, "seq": 3, "body": plain_body}, SOLD_AT), 2)
    assert hostile == same and plain in hostile[0] and plain in hostile[1]  # seen, not obeyed
    events = parse(hostile_raw)
    assert [event for event in events if isinstance(event, DrawerPulse)] == []
    assert [event for event in events if isinstance(event, Cut)] == [Cut(), Cut()]  # the merchant copy's and the end

    def commands(raw: bytes) -> bytes:
        return bytes(byte for byte in raw if byte < 0x20 or byte == 0x7F)
    assert commands(hostile_raw) == commands(plain_raw)  # not one command more
    for text in (HOSTILE, "\u200f\u202b", "\x00"):  # RTL marks, a NUL: never in a byte that reaches the printer
        assert device_text.encode(text, "cp858").isascii() and b"\x00" not in device_text.encode(text, "cp858")


def test_the_loyalty_block_prints_as_text_and_leaves_off_what_the_till_never_writes() -> None:
    """The print job's `loyalty` (the till's, beside the sale): a hostile masked number prints as characters, never
    as a command; a piece of the wrong shape is left off instead of failing the receipt."""
    body = shoe_and_socks([cash(8000)])

    def job(card_text: str, points: Any) -> dict[str, Any]:
        return {"id": ORDER, "seq": 4, "body": body, "loyalty": {
            "card": card_text, "points": points, "gift_cards": [{"card": card_text, "balance_minor": 2100}, "x"]}}
    plain = device_text.transliterate(HOSTILE, "cp858")
    [hostile], hostile_raw = printed(render_receipt(CONTEXT, job(HOSTILE, {"redeemed": 300, "balance": 4700}),
                                                    SOLD_AT), 1)
    [same], plain_raw = printed(render_receipt(CONTEXT, job(plain, {"redeemed": 300, "balance": 4700}), SOLD_AT), 1)
    assert hostile == same and row("Loyalty card", plain) in rows(hostile)
    assert row("Points redeemed", "300") in rows(hostile) and row("Points balance", "4700") in rows(hostile)
    assert row("  Left on the card", "21.00 EUR") in rows(hostile)
    assert [event for event in parse(hostile_raw) if isinstance(event, DrawerPulse)] == []
    assert bytes(b for b in hostile_raw if b < 0x20) == bytes(b for b in plain_raw if b < 0x20)
    [odd], _ = printed(render_receipt(CONTEXT, job("*********0017", {"redeemed": "300", "balance": None}),
                                      SOLD_AT), 1)
    assert "Points" not in odd and row("Loyalty card", "*********0017") in rows(odd)
    [none], _ = printed(render_receipt(CONTEXT, {"id": ORDER, "seq": 5, "body": body}, SOLD_AT), 1)
    assert "*****" not in none and "Points" not in none and "Left on the card" not in none


def test_a_return_to_the_card_prints_what_came_back_the_tax_given_back_and_the_refund() -> None:
    body = return_body([returned(1, "Running shoe", 1, 6765)],
                       refunds=[{"id": "00000000-0000-7000-8000-000000000009", "method": "card", "amount": eur(6765),
                                 "card": {"reference": "T1-000043", "original_reference": "T1-000042",
                                          "scheme": "VISA", "masked": "************4242"}}])
    (receipt, merchant), raw = printed(render_return(CONTEXT, {"id": "r-1", "seq": 20, "body": body}, SOLD_AT), 2)
    text = rows(receipt)
    assert "RETURN #20" in text and "Original order" in text and ORDER in text and "Returned" in text
    expected_in_order = [row("1 x Running shoe", "-67.65 EUR"), "Resaleable, back to stock",
                         tax_row("20.00% incl.", "-56.38 EUR", "-11.27 EUR"), row("TOTAL REFUNDED", "67.65 EUR"),
                         row("Refund Card VISA ************4242", "67.65 EUR"), "Return", "r-1", "Thank you!"]
    assert [row for row in text if row in expected_in_order] == expected_in_order
    assert "New items" not in receipt and [event for event in parse(raw) if isinstance(event, QrCode)] == []
    merchant_text = rows(merchant)
    assert merchant_text[0] == "MERCHANT COPY" and "Return #20" in merchant_text and "r-1" in merchant_text
    for expected in (row("Refund VISA ************4242", "67.65 EUR"), "Reference T1-000043", "Refund of T1-000042"):
        assert expected in merchant_text, expected


def test_an_exchange_nets_the_new_lines_against_the_returned_on_one_receipt() -> None:
    body = return_body([returned(None, "Sport socks", 2, 516, rate_ppm=55_000, condition="damaged", restock=False)],
                       new_lines=[line(1, "Sport socks", 1, 599, attributes=[["size", "L"]], rate_ppm=55_000)],
                       refunds=[{"id": "00000000-0000-7000-8000-000000000010", "method": "cash", "amount": eur(433)}],
                       order=None, approver="manager", reason="Lost receipt")
    (receipt,), raw = printed(render_return(CONTEXT, {"id": "r-2", "seq": 21, "body": body}, SOLD_AT), 1)
    text = rows(receipt)
    expected_in_order = ["EXCHANGE #21", "No receipt", "Approved by Marc Chef", "Reason: Lost receipt",
                         row("2 x Sport socks", "-10.32 EUR"), "Damaged, not restocked", "New items",
                         row("1 x Sport socks", "5.99 EUR"), "Size: L", row("TOTAL REFUNDED", "4.33 EUR"),
                         row("Refund Cash", "4.33 EUR")]
    assert [row for row in text if row in expected_in_order] == expected_in_order
    assert [event for event in parse(raw) if isinstance(event, Cut)] == [Cut()]  # cash only: no merchant copy
    assert [event.payload for event in parse(raw) if isinstance(event, QrCode)] == [ORDER_QR_PREFIX + "r-2"]


Z_FIGURES = {"opened_at": int(datetime(2026, 12, 2, 6, 0, tzinfo=UTC).timestamp() * 1000), "opened_by": "alice",
             "float": eur(10000), "sales": {"count": 3, "total": eur(12000)}, "returns": {"count": 1, "total": eur(500)},
             "tenders": [{"method": "card", "scheme": "VISA", "count": 2, "amount": eur(7000)},
                         {"method": "cash", "count": 2, "amount": eur(6000)}],
             "refunds": [{"method": "cash", "count": 1, "amount": eur(500)}], "change": eur(1000),
             "discounts": eur(300), "voids": 1, "no_sales": 2, "pay_ins": {"count": 1, "total": eur(2000)},
             "pay_outs": {"count": 1, "total": eur(1500)}, "drops": {"count": 0, "total": eur(0)},
             "tax": [{"rate_ppm": 200_000, "amount": eur(2000)}]}


def test_x_and_z_reports_print_the_shift_and_the_count_against_expected() -> None:
    x = {"kind": "x", "session": "sess-1", "till": "till-1", "at": 0, **Z_FIGURES, "expected": eur(14000)}
    (x_report,), _ = printed(render_x(CONTEXT, {"id": "x-1", "seq": 5, "body": x}, SOLD_AT), 1)
    assert "X REPORT  Till till-1" in rows(x_report) and "Opened 2026-12-02 07:00 by Alice Martin" in rows(x_report)
    for expected in (row("  Card VISA (2)", "70.00 EUR"), row("Pay-outs (1)", "15.00 EUR"),
                     row("No-sales", "2"), row("Expected in drawer", "140.00 EUR")):
        assert expected in rows(x_report), expected
    closed = {"session": "sess-1", "till": "till-1", "currency": "EUR", "cashier": "alice",
              "counted": {"counts": {"2000": 6, "500": 3, "50": 7}, "total": eur(13850)}, "expected": eur(14000),
              "difference": -150, "approver": "manager", "z": {"number": 3, **Z_FIGURES}}
    (z_report,), _ = printed(render_z(CONTEXT, {"id": "z-1", "seq": 6, "body": closed}, SOLD_AT), 1)
    expected_in_order = ["Z REPORT #3  Till till-1", "Closed 2026-12-02 08:40 by Alice Martin",
                         row("Float", "100.00 EUR"), row("Sales (3)", "120.00 EUR"),
                         row("  20.00%", "20.00 EUR"), row("  6 x 20.00 EUR", "120.00 EUR"),
                         row("  3 x 5.00 EUR", "15.00 EUR"), row("  7 x 0.50 EUR", "3.50 EUR"),
                         row("Counted", "138.50 EUR"), row("Expected", "140.00 EUR"),
                         row("Short", "-1.50 EUR"), "Approved by Marc Chef"]
    assert [row for row in rows(z_report) if row in expected_in_order] == expected_in_order


# -- end to end: a running edge, its spooler and the simulated printer ---------------------------------------


@pytest.fixture
def receipt_store(store_config: StoreConfig) -> StoreConfig:
    """The test store (its staff list seeded: alice is Alice Archer) with the [receipt] settings above."""
    return replace(store_config, receipt=SETTINGS)


def outbox_events(config: StoreConfig, event_type: str) -> list[dict[str, Any]]:
    return outbox_events_at(config.state_dir, event_type)


def outbox_events_at(state_dir: Path, event_type: str) -> list[dict[str, Any]]:
    return [event.body for event in waiting_events(state_dir) if event.type == event_type]


def job_states(config: StoreConfig) -> Iterator[str]:
    db = sqlite3.connect(config.state_dir / local_db.FILE_NAME)
    try:
        yield from (state for (state,) in db.execute("SELECT state FROM print_jobs ORDER BY queued_at"))
    finally:
        db.close()


async def test_the_last_receipt_is_reprinted_after_paper_out_marked_a_copy_and_audited(
        receipt_store: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, receipt_store)
        base = f"{edge.url}/api/tills/till-1/receipts/last"
        assert (await http.get(base)).status_code == 401  # nobody logged in
        await log_in(http, edge.url)
        nothing = await http.get(base)
        assert nothing.status_code == 404 and "no receipt to print again" in nothing.json()["error"]
        sold = await sell(http, edge.url, [(MILK, 2)])
        first = (await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0))[0]
        assert qr_payloads(first) == [ORDER_QR_PREFIX + sold["sale"]] and sold["sale"] in rows(first)
        assert REPRINT not in first and "Till till-1  Cashier Alice Archer" in rows(first)  # the staff list's name


        async def confirmed() -> dict[str, Any] | None:
            last = (await http.get(base)).json()
            return last if last["state"] == "printed" else None
        await wait_until(confirmed, timeout=10.0)  # the printer confirmed it: the spool will not print it again
        printer.set_paper("out")  # the customer's receipt came out blank: the roll ran out
        preview = (await http.get(base)).json()
        assert (preview["order"], preview["state"], preview["kind"]) == (sold["sale"], "printed", "sale.completed")
        assert [line["text"] for line in preview["document"]["lines"]].count(REPRINT) == 2
        reprint = await http.post(f"{base}/print", json={})
        assert reprint.status_code == 200, reprint.text
        assert reprint.json()["order"] == sold["sale"]
        assert (await http.post(f"{base}/print", content=b"{}")).status_code == 415  # JSON like every write
        again = await http.post(f"{base}/print", json={})  # a second press while the copy waits for paper
        assert again.status_code == 409 and "still waiting for printer receipt-printer" in again.json()["error"]
        await trio.sleep(0.5)
        assert len(printer.receipts) == 1  # nothing prints without paper; the copy waits

        printer.set_paper("ok")
        second = (await trio.to_thread.run_sync(printer.wait_for_receipts, 2, 15.0))[1]
        copy = rows(second)
        assert copy[0] == REPRINT and copy[-1] == REPRINT and "LATE" not in second
        assert qr_payloads(second) == qr_payloads(first)  # the same order, scanned back the same
        assert [row for row in copy if row != REPRINT] == rows(first)  # same sale, same time, same lines

        audits = [body for body in outbox_events(receipt_store, "audit.recorded") if body["action"] == "till.reprint"]
        assert len(audits) == 1 and audits[0]["target"] == sold["sale"] and audits[0]["actor"] == "alice"

        async def both_printed() -> bool:
            return list(job_states(receipt_store)) == ["printed", "printed"]
        await wait_until(both_printed, timeout=10.0)  # the original and its copy, each once
        other = await http.get(f"{edge.url}/api/tills/till-9/receipts/last")
        assert other.status_code == 404 and "no till" in other.json()["error"]
        assert (await http.post(f"{edge.url}/api/tills/till-1/logout", json={})).status_code == 200
        assert (await http.post(f"{base}/print", json={})).status_code == 401  # logged out: no reprint
        audited = [body for body in outbox_events(receipt_store, "audit.recorded") if body["action"] == "till.reprint"]
        assert len(audited) == 1
        nursery.cancel_scope.cancel()


# -- the [receipt] settings ----------------------------------------------------------------------------------


def _store_file(tmp_path: Path, receipt: str) -> Path:
    demo = (CONFIGS / "demo-store.toml").read_text()
    head, _, rest = demo.partition("[receipt]\n")
    path = tmp_path / "store.toml"
    path.write_text(head + "[receipt]\n" + receipt + "\n" + rest[rest.index("\n[") + 1:])
    return path


def test_the_demo_store_prints_its_name_address_and_paris_time() -> None:
    settings = load_store(CONFIGS / "demo-store.toml").receipt
    assert settings is not None and settings.timezone == "Europe/Paris" and len(settings.address) == 2
    assert settings.zone.utcoffset(datetime(2026, 7, 1)) == timedelta(hours=2)  # summer time in Paris


@pytest.mark.parametrize(("setting", "says"), [
    ('timezone = "Mars/Olympus"', "is not a time zone"),
    ('name = "Shop\\u001b@"', "control character"),
    ('footer = ["a", "b", "c", "d", "e", "f", "g"]', "at most 6 lines"),
    (f'address = ["{"x" * 43}"]', "at most 42 characters"),
    ('tax_id = 7', "must be text"),
    ('colour = "red"', "unknown setting(s) [receipt] colour"),
])
def test_a_receipt_setting_that_cannot_print_is_refused_at_load(tmp_path: Path, setting: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_store(_store_file(tmp_path, setting))


def test_a_store_without_receipt_settings_prints_its_id_in_utc(tmp_path: Path) -> None:
    settings = load_store(_store_file(tmp_path, "")).receipt
    assert settings == ReceiptSettings("store-001")
    assert settings.zone.key == "UTC"


async def test_a_reprint_accepted_before_kill_9_prints_once_after_the_restart(
        tmp_path: Path, nats_server: EmbeddedNats, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    box = store_box(tmp_path, [printer_rule(printer.port)])
    config, url = box.config, box.url
    edge = await start_edge(config, nats_server, url, http)
    try:
        sold = await sell(http, url, [(MILK, 1)])
        first = (await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0))[0]
        assert first.splitlines()[0] == "NovaPOS Demo Store" and re.search(r"\d\d:\d\d CES?T", first)  # [receipt]

        async def confirmed() -> bool:
            return bool((await http.get(f"{url}/api/tills/till-1/receipts/last")).json()["state"] == "printed")
        await wait_until(confirmed, timeout=10.0)
        printer.set_paper("out")
        assert (await http.post(f"{url}/api/tills/till-1/receipts/last/print", json={})).status_code == 200
        edge.send_signal(signal.SIGKILL)  # the copy was accepted: it is on disk, waiting for paper
        edge.wait()
        printer.set_paper("ok")
        edge = await start_edge(config, nats_server, url, http)
        copy = (await trio.to_thread.run_sync(printer.wait_for_receipts, 2, 15.0))[1]
        assert rows(copy)[0] == REPRINT and qr_payloads(copy) == [ORDER_QR_PREFIX + sold["sale"]]
        await trio.sleep(2 * SWEEP_S)  # sweeps that would print it again, if it were not marked
        assert len(printer.receipts) == 2
        audits = [body for body in outbox_events_at(tmp_path / "store-001", "audit.recorded")
                  if body["action"] == "till.reprint"]
        assert [audit["target"] for audit in audits] == [sold["sale"]]
    finally:
        edge.kill()
        edge.wait()


def test_an_exchange_for_dearer_items_takes_the_difference_and_the_card_signs_the_merchant_copy() -> None:
    body = return_body([returned(1, "Running shoe", 1, 6765)], new_lines=[line(1, "Trail shoe", 1, 8999)],
                       tenders=[card(8999 - 6765, signature=True)])
    (receipt, merchant), _ = printed(render_return(CONTEXT, {"id": "r-3", "seq": 22, "body": body}, SOLD_AT), 2)
    expected_in_order = ["EXCHANGE #22", row("1 x Running shoe", "-67.65 EUR"), "New items",
                         row("1 x Trail shoe", "89.99 EUR"), row("TOTAL TO PAY", "22.34 EUR"),
                         row("Paid Card VISA ************4242", "22.34 EUR"), "Auth code A1B2C3"]
    assert [row for row in rows(receipt) if row in expected_in_order] == expected_in_order
    assert rows(merchant)[0] == "MERCHANT COPY" and "Cardholder signature" in rows(merchant)


def test_a_return_where_prices_exclude_tax_refunds_the_tax_too_at_its_exact_rate() -> None:
    body = return_body([returned(1, "Desk lamp", 1, 1000, rate_ppm=88_750, included=False)],
                       refunds=[{"id": "00000000-0000-7000-8000-000000000011", "method": "cash", "amount": eur(1089)}])
    (receipt,), _ = printed(render_return(CONTEXT, {"id": "r-4", "seq": 23, "body": body}, SOLD_AT), 1)
    expected_in_order = [row("1 x Desk lamp", "-10.89 EUR"), tax_row("8.875%", "-10.00 EUR", "-0.89 EUR"),
                         row("TOTAL REFUNDED", "10.89 EUR"), row("Refund Cash", "10.89 EUR")]
    assert [row for row in rows(receipt) if row in expected_in_order] == expected_in_order


def test_a_printer_without_native_qr_codes_gets_the_code_as_an_image_and_the_id_as_text() -> None:
    body = shoe_and_socks([cash(8000)])
    document = render_receipt(CONTEXT, {"id": ORDER, "seq": 1, "body": body}, SOLD_AT)
    raw = EscPosPrinter("127.0.0.1", 9, profile="POS-5890")._encode(document)  # encoded only: nothing is sent
    events = parse(raw)
    assert b"\x1dv0" in raw and b"\x1d(k" not in raw  # a raster image (GS v 0), no 2D code command
    assert [event for event in events if isinstance(event, QrCode)] == []
    assert ORDER in "".join(event.text for event in events if isinstance(event, Text))  # typed in when it won't scan


async def test_a_return_scanned_from_the_receipts_qr_code_prints_a_return_receipt_that_can_be_reprinted(
        receipt_store: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, receipt_store)
        sold = await sell(http, edge.url, [(MILK, 2)])
        first = (await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0))[0]
        order = order_from_qr(qr_payloads(first)[0])  # what the scanner reads off the paper
        assert order == sold["sale"]
        till = f"{edge.url}/api/tills/till-1"
        assert (await http.post(f"{till}/returns", json={"order": order, "override": MANAGER_OVERRIDE})).status_code == 200
        taken = await http.post(f"{till}/returns/lines", json={"original_line": 1, "quantity": 1,
                                                               "condition": "resaleable", "override": MANAGER_OVERRIDE})
        assert taken.status_code == 200, taken.text
        cart = (await http.get(till)).json()["cart"]
        returned_ = await http.post(f"{till}/complete", json={"cart": cart})
        assert returned_.status_code == 200, returned_.text
        back = returned_.json()
        receipt = rows((await trio.to_thread.run_sync(printer.wait_for_receipts, 2, 10.0))[1])
        expected_in_order = [f"RETURN #{back['seq']}", "Original order", order, row("1 x Whole milk 1 l", "-1.29 EUR"),
                             row("TOTAL REFUNDED", "1.29 EUR"), row("Refund Cash", "1.29 EUR"), back["sale"]]
        assert [text for text in receipt if text in expected_in_order] == expected_in_order

        async def confirmed() -> dict[str, Any] | None:
            last = (await http.get(f"{till}/receipts/last")).json()
            return last if last["state"] == "printed" else None
        last = await wait_until(confirmed, timeout=10.0)
        assert (last["kind"], last["order"]) == ("return.completed", back["sale"])  # the last receipt is the return's
        assert (await http.post(f"{till}/receipts/last/print", json={})).status_code == 200
        copy = rows((await trio.to_thread.run_sync(printer.wait_for_receipts, 3, 10.0))[2])
        assert copy[0] == REPRINT and [text for text in copy if text != REPRINT] == receipt
        nursery.cancel_scope.cancel()


async def test_a_till_sale_with_an_override_and_discounts_prints_them_with_their_reasons(
        receipt_store: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, receipt_store)
        till = f"{edge.url}/api/tills/till-1"
        await log_in(http, edge.url)
        for barcode, quantity in ((COFFEE, 3), (MILK, 1)):
            state = (await http.post(f"{till}/lines", json={"barcode": barcode, "quantity": quantity})).json()
        coffee, milk = state["lines"]
        assert (await http.post(f"{till}/lines/{milk['line']}/price", json={
            "unit_minor": 99, "reason": "best before today", "override": MANAGER_OVERRIDE})).status_code == 200
        assert (await http.post(f"{till}/lines/{coffee['line']}/discount", json={
            "kind": "percent", "value": 1000, "reason": "loyalty card", "override": MANAGER_OVERRIDE})).status_code == 200
        state = (await http.post(f"{till}/discount", json={"kind": "amount", "value": 100, "reason": "complaint",
                                                           "override": MANAGER_OVERRIDE})).json()
        assert (await http.post(f"{till}/tenders", json={"amount_minor": state["due"]["minor"]})).status_code == 200
        sold = (await http.post(f"{till}/complete", json={"cart": state["cart"]})).json()
        printed = (await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0))[0]
        nursery.cancel_scope.cancel()
    # 3 x 4.99 = 14.97, 10 % off = 1.50; milk 1.29 overridden to 0.99; 1.00 off the order, shared 13.47 : 0.99
    expected_in_order = [row("3 x Ground coffee 250 g", "14.97 EUR"), row("  Discount 10.00%", "-1.50 EUR"),
                         "loyalty card", row("1 x Whole milk 1 l", "0.99 EUR"), "Price changed from 1.29 EUR",
                         "Reason: best before today", row("Order discount", "-1.00 EUR"), "complaint",
                         row("TOTAL", Money(sold["total"]["minor"], "EUR").format()), ORDER_QR_PREFIX + sold["sale"]]
    text = [line.removeprefix("[QR ").removesuffix("]") for line in rows(printed)]
    assert [line for line in text if line in expected_in_order] == expected_in_order


async def test_a_split_sale_paid_by_the_terminal_prints_each_card_and_one_line_to_sign(
        tmp_path: Path, receipt_store: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    with PaymentTerminalMock(tmp_path / "terminal-1", processing_time=0.1) as terminal:
        rules = (*receipt_store.devices.rules, DeviceRule("terminal-1", "serial-terminal", path=str(terminal.path),
                                                          till="till-1"))
        config = replace(receipt_store, devices=replace(receipt_store.devices, rules=rules),
                         terminal=TerminalSettings(timeout_s=5, poll_ms=50))
        async with trio.open_nursery() as nursery:
            edge = await nursery.start(run_edge, config)
            till = f"{edge.url}/api/tills/till-1"
            await log_in(http, edge.url)
            for barcode, quantity in ((COFFEE, 2), (MILK, 1)):  # 11.27 EUR
                state = (await http.post(f"{till}/lines", json={"barcode": barcode, "quantity": quantity})).json()
            assert (await http.post(f"{till}/tenders", json={"method": "cash", "amount_minor": 500})).status_code == 200
            for amount, scheme, signature in ((300, "VISA", False), (327, "MASTERCARD", True)):
                tender = str(uuid.uuid4())
                paying = await http.post(f"{till}/tenders", json={"method": "card", "amount_minor": amount, "id": tender})
                assert paying.status_code == 200, paying.text

                async def stage(tender: str = tender, wanted: str = "waiting_for_card") -> bool:
                    tenders = (await http.get(till)).json()["tenders"]
                    found = next(t for t in tenders if t["id"] == tender)
                    return bool(found["stage"] == wanted or found["state"] == wanted)
                await wait_until(stage, timeout=10.0)
                await trio.to_thread.run_sync(lambda s=scheme, g=signature: terminal.present_card(scheme=s, signature=g))
                await wait_until(lambda tender=tender: stage(tender, "approved"), timeout=10.0)
            sold = (await http.post(f"{till}/complete", json={"cart": state["cart"]})).json()
            customer, merchant = await trio.to_thread.run_sync(printer.wait_for_receipts, 2, 10.0)
            nursery.cancel_scope.cancel()
    cards = {tender["card"]["scheme"]: tender["card"] for tender in sold["tenders"] if tender["method"] == "card"}
    expected_in_order = [row("Cash", "5.00 EUR"), row(f"Card VISA {MASKED_CARDS['VISA']}", "3.00 EUR"),
                         f"Auth code {cards['VISA']['auth_code']}", row(f"Card MASTERCARD {MASKED_CARDS['MASTERCARD']}",
                                                                        "3.27 EUR"),
                         f"Auth code {cards['MASTERCARD']['auth_code']}", row("Change", "0.00 EUR")]
    assert [line for line in rows(customer) if line in expected_in_order] == expected_in_order
    text = rows(merchant)
    assert text[0] == "MERCHANT COPY" and sold["sale"] in text and row("Cash", "5.00 EUR") not in text
    assert [line for line in text if line.startswith("Card ")] == expected_in_order[1:4:2]
    assert text.count("Cardholder signature") == 1  # the MasterCard asked for it; the Visa did not
    assert text.index("Cardholder signature") > text.index(expected_in_order[3])
