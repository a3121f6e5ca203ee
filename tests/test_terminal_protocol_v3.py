"""Protocol version 3 of the payment terminal (docs/payment-terminal-protocol.md) between the serial driver and the
simulated terminal on a real pseudo-terminal: a PAY marked OFFLINE stores the card (its token in STATUS, no auth
code), a card its chip refuses is declined, the same reference with and without OFFLINE conflicts, and an online
payment carries no token."""

from __future__ import annotations

import pytest

from drivers.payment_terminal import SerialPaymentTerminal, TerminalRefused
from mocks.payment_terminal import PaymentTerminalMock
from tests.terminal_support import driver_fixture, mock_fixture, settled  # noqa: F401 (fixtures)


def test_an_offline_payment_stores_the_card_and_answers_its_token(
        mock: PaymentTerminalMock, driver: SerialPaymentTerminal) -> None:
    driver.start_payment(1250, "EUR", "sale-1", offline=True)
    assert driver.status("sale-1").card_token == ""  # nothing stored before the card is read
    mock.present_card(number="4000000000000002")
    stored = settled(driver, "sale-1")
    assert (stored.stage, stored.auth_code, stored.message, stored.card_token, stored.masked_card) == (
        "approved", "", "STORED OFFLINE", "tok_4000000000000002", "************0002")
    assert driver.void("sale-1").stage == "reversed"  # given back like any approval


def test_a_card_its_chip_refuses_offline_is_declined_with_no_token(
        mock: PaymentTerminalMock, driver: SerialPaymentTerminal) -> None:
    driver.start_payment(700, "EUR", "sale-2", offline=True)
    mock.present_card(approve=False)
    declined = settled(driver, "sale-2")
    assert (declined.stage, declined.card_token) == ("declined", "")


def test_the_same_reference_online_and_offline_is_a_conflict(driver: SerialPaymentTerminal) -> None:
    driver.start_payment(500, "EUR", "sale-3")
    with pytest.raises(TerminalRefused) as refused:
        driver.start_payment(500, "EUR", "sale-3", offline=True)
    assert refused.value.code == "CONFLICT"


def test_an_online_payment_has_no_token(mock: PaymentTerminalMock, driver: SerialPaymentTerminal) -> None:
    driver.start_payment(500, "EUR", "sale-4")
    mock.present_card()
    approved = settled(driver, "sale-4")
    assert approved.stage == "approved" and approved.auth_code and approved.card_token == ""
