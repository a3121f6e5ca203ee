"""What the customer display shows for each till state: always two lines of at most 20 characters."""

from __future__ import annotations

from actors.till import customer_screen


def _state(lines: list[tuple[str, int, int]], tendered: int = 0) -> dict:
    euro = lambda minor: {"minor": minor, "currency": "EUR"}  # noqa: E731
    total = sum(quantity * price for _, quantity, price in lines)
    return {"session": {"cashier": "alice"}, "total": euro(total), "tendered": euro(tendered),
            "due": euro(max(0, total - tendered)),
            "lines": [{"name": name, "quantity": quantity, "amount": euro(quantity * price)}
                      for name, quantity, price in lines]}


def test_the_last_item_and_the_total_then_what_is_due() -> None:
    state = _state([("Whole milk 1 l", 1, 129), ("Ground coffee 250 g", 3, 499)])
    assert customer_screen.for_state(state, "store-001") == ("3x Ground coff 14.97", "TOTAL          16.26")
    assert customer_screen.for_state(_state([("Whole milk 1 l", 1, 129)], tendered=100), "s")[1] == \
        "DUE             0.29"


def test_lines_never_exceed_twenty_columns() -> None:
    state = _state([("An extraordinarily long product name", 1234, 99999)])
    top, bottom = customer_screen.for_state(state, "store-001")
    assert top == "1234x An  1233987.66"  # the name gives way; the amount never does
    assert len(top) == len(bottom) == 20


def test_idle_and_after_a_sale() -> None:
    idle = _state([])
    assert customer_screen.for_state(idle, "store-001") == ("Welcome", "store-001")
    assert customer_screen.for_state({**idle, "session": None}, "store-001")[0] == "Till closed"
    change = customer_screen.for_receipt({"change": {"minor": 873, "currency": "EUR"}})
    assert change == ("CHANGE          8.73", "Thank you!")


def test_a_qr_payment_waiting_for_the_phone_asks_the_customer_to_scan() -> None:
    state = _state([("Ground coffee 250 g", 2, 499)], tendered=500)
    state["tenders"] = [{"method": "cash", "state": "approved", "amount": {"minor": 500, "currency": "EUR"}},
                        {"method": "qr", "state": "pending", "amount": {"minor": 498, "currency": "EUR"}}]
    assert customer_screen.for_state(state, "store-001") == ("Scan the QR code", "TO PAY          4.98")
    state["tenders"][1]["state"] = "approved"
    assert customer_screen.for_state(state, "store-001")[0] == "2x Ground coffe 9.98"
