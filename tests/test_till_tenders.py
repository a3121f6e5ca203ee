"""The tender model without I/O (actors.till.tenders): what pays, what is due, how a terminal's answer settles
a card, and what a saved cart brings back."""

from __future__ import annotations

import uuid

from actors.protocol import Rejected
from actors.till.tenders import Tenders, reference_for, restore, settle

CARD = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def status(stage: str, **more: object) -> dict[str, object]:
    return {"answered": True, "stage": stage, "amount_minor": 300, **more}


def test_a_card_reference_is_its_ids_hex_and_fits_the_protocol() -> None:
    assert reference_for(CARD) == uuid.UUID(CARD).hex and len(reference_for(CARD)) == 32


def test_only_approved_tenders_pay_and_nothing_is_taken_beside_a_pending_card() -> None:
    tenders = Tenders("EUR", max_change=5000)
    assert tenders.take_cash(200, due=500, tender_id=None) is None
    card = tenders.start_card(300, due=300, tender_id=CARD, terminal="terminal-1", now_ms=1)
    assert not isinstance(card, Rejected) and card.state == "pending" and tenders.paid() == 200
    refused = tenders.take_cash(300, due=300, tender_id=None)
    assert isinstance(refused, Rejected) and "in progress" in refused.message
    assert settle(card, status("processing")) and card.message == "processing"
    assert not settle(card, status("processing"))  # the same answer again changes nothing: nothing is published
    assert settle(card, status("approved", auth_code="100001", masked_card="****4242", scheme="VISA", signature=True))
    assert tenders.paid() == 500 and [t["method"] for t in tenders.to_wire()] == ["cash", "card"]
    assert tenders.to_wire()[1]["card"] == {"reference": reference_for(CARD), "scheme": "VISA", "masked": "****4242",
                                            "auth_code": "100001", "terminal": "terminal-1", "signature": True}


def test_a_card_never_pays_past_what_is_due() -> None:
    refused = Tenders("EUR", max_change=5000).start_card(301, due=300, tender_id=CARD, terminal="t", now_ms=1)
    assert isinstance(refused, Rejected) and "gives no change" in refused.message


def test_each_ending_says_what_happened() -> None:
    endings = {"declined": ("declined", "declined: NO FUNDS"), "cancelled": ("cancelled", "cancelled at the terminal: NO FUNDS"),
               "idle": ("failed", "the terminal did not start the payment: nothing was charged, try again"),
               "error": ("failed", "the terminal failed: NO FUNDS")}
    for stage, expected in endings.items():
        card = Tenders("EUR", 0).start_card(300, 300, CARD, "t", 1)
        assert not isinstance(card, Rejected)
        settle(card, status(stage, message="NO FUNDS"))
        assert (card.state, card.message) == expected
    timed_out = Tenders("EUR", 0).start_card(300, 300, CARD, "t", 1)
    assert not isinstance(timed_out, Rejected)
    timed_out.cancel = "timeout"
    settle(timed_out, status("cancelled"))
    assert timed_out.message == "timed out: no card was presented"


def test_an_approval_of_another_amount_is_never_a_payment() -> None:
    card = Tenders("EUR", 0).start_card(300, 300, CARD, "t", 1)
    assert not isinstance(card, Rejected)
    settle(card, status("approved", amount_minor=3000, auth_code="1"))
    assert card.state == "failed" and "call support" in card.message


def test_a_saved_pending_card_comes_back_pending_and_poison_is_dropped() -> None:
    tenders = Tenders("EUR", 5000)
    tenders.start_card(300, 300, CARD, "terminal-1", 1700000000000)
    saved = tenders.to_saved()
    problems: list[str] = []
    back = restore([*saved, {"id": "x", "method": "card"}, {**saved[0], "method": "cheque"},
                    {**saved[0], "amount": -1}, {**saved[0], "card": None}, {**saved[0], "message": "a\x1bb"}, "junk"],
                   "EUR", 5000, problems)
    assert [(t.id, t.state, t.stage, t.started_ms) for t in back.items] == [(CARD, "pending", "starting", 1700000000000)]
    assert back.items[0].card is not None and back.items[0].card.reference == reference_for(CARD)
    assert len(problems) == 6 and all("\x1b" not in problem for problem in problems)
