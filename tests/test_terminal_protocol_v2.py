"""Protocol version 2 of the payment terminal (docs/payment-terminal-protocol.md) between the serial driver and
the simulated terminal on a real pseudo-terminal: the card's scheme and signature in STATUS, VOID and its
idempotency, and a version 2 host beside a version 1 terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.payment_terminal import SerialPaymentTerminal, TerminalRefused
from mocks.payment_terminal import MASKED_CARDS, PaymentTerminalMock, _Refused
from tests.terminal_support import driver_fixture, mock_fixture, settled  # noqa: F401 (fixtures)


def test_status_carries_the_scheme_and_whether_it_asks_for_a_signature(
        mock: PaymentTerminalMock, driver: SerialPaymentTerminal) -> None:
    driver.start_payment(1250, "EUR", "sale-1")
    assert (driver.status("sale-1").scheme, driver.status("sale-1").signature) == ("", False)  # no card read yet
    mock.present_card(scheme="MASTERCARD", signature=True)
    assert driver.status("sale-1").scheme == "MASTERCARD"  # known from the moment the card is read
    approved = settled(driver, "sale-1")
    assert (approved.stage, approved.scheme, approved.signature, approved.masked_card) == (
        "approved", "MASTERCARD", True, MASKED_CARDS["MASTERCARD"])


def test_void_reverses_an_approval_once_and_a_repeat_reverses_nothing_more(
        mock: PaymentTerminalMock, driver: SerialPaymentTerminal) -> None:
    driver.start_payment(500, "EUR", "sale-2")
    mock.present_card()
    approved = settled(driver, "sale-2")
    reversed_ = driver.void("sale-2")
    assert reversed_.stage == "reversed" and reversed_.auth_code == approved.auth_code
    assert driver.void("sale-2") == reversed_ and mock.voids == ["sale-2"]
    driver.start_payment(500, "EUR", "sale-2")  # a PAY resent for it after the reversal starts nothing
    assert driver.status("sale-2").stage == "reversed" and mock.references == ["sale-2"]


def test_void_cancels_a_payment_waiting_for_its_card_and_leaves_others_alone(
        mock: PaymentTerminalMock, driver: SerialPaymentTerminal) -> None:
    driver.start_payment(500, "EUR", "sale-3")
    assert driver.void("sale-3").stage == "cancelled"
    driver.start_payment(500, "EUR", "sale-4")
    mock.present_card(approve=False)
    assert driver.void("sale-4").stage == "processing"  # the issuer decides first; the host asks again
    assert settled(driver, "sale-4").stage == "declined" and driver.void("sale-4").stage == "declined"
    assert driver.void("never").stage == "idle"
    assert driver.refund(300, "EUR", "refund-1").stage == "approved"
    assert driver.void("refund-1").stage == "approved"  # VOID reverses payments, never refunds
    assert mock.voids == []


class _Version1(PaymentTerminalMock):
    """A terminal of protocol version 1: eight STATUS fields, no VOID."""

    def _status_fields(self, reference: str) -> list[str]:
        return super()._status_fields(reference)[:8]

    def _handle(self, fields: list[str]) -> list[str]:
        if fields[0] == "VOID":
            raise _Refused("UNKNOWN", "unknown request VOID")
        return super()._handle(fields)


def test_a_version_2_host_works_a_version_1_terminal_and_hears_it_cannot_void(tmp_path: Path) -> None:
    with _Version1(tmp_path / "old", processing_time=0.0) as old, \
            SerialPaymentTerminal(str(old.path), response_timeout=0.3) as driver:
        driver.start_payment(700, "EUR", "sale-5")
        old.present_card(scheme="AMEX", signature=True)
        approved = settled(driver, "sale-5")
        assert (approved.stage, approved.scheme, approved.signature) == ("approved", "", False)
        with pytest.raises(TerminalRefused) as refused:
            driver.void("sale-5")
        assert refused.value.code == "UNKNOWN" and old.status_of("sale-5").stage == "approved"
