"""A simulated card payment terminal on a serial port (a real pty).

It implements the terminal side of docs/payment-terminal-protocol.md, with
controls standing in for the customer: `present_card` moves the payment
waiting for a card to processing, then approved or declined after
`processing_time`; `auto_approve_after` does that by itself for the demo; `customer_cancel` is the
customer pressing cancel on the keypad. It speaks protocol version 3: STATUS
carries the card's scheme and whether it asks for a signature, VOID
reverses an approved payment, and a PAY marked OFFLINE stores the card
(STATUS card_token `tok_<card number>`, which mocks.acquirer understands)
instead of asking the issuer.
Time-driven changes are worked out when someone looks (a request, a
control), so the terminal needs no thread of its own.

Unplugging cuts the cable, not the power: transactions survive a replug,
so a host that lost a response can still ask how a payment ended.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers.payment_terminal import (
    CURRENCY,
    MAX_AMOUNT,
    MAX_LINE,
    OFFLINE,
    REFERENCE,
    FrameError,
    Stage,
    TerminalStatus,
    encode_line,
    parse_line,
)
from mocks.pty_device import PtySerialDevice

MASKED_CARD = "************4242"
MASKED_CARDS = {"VISA": MASKED_CARD, "MASTERCARD": "************4444", "AMEX": "***********0005"}
CARD_NUMBERS = {"VISA": "4242424242424242", "MASTERCARD": "5555555555554444", "AMEX": "378282246310005"}
_ACTIVE: frozenset[Stage] = frozenset({"waiting_for_card", "processing"})


@dataclass
class _Transaction:
    kind: str  # PAY or REFUND
    amount_minor: int
    currency: str
    stage: Stage
    started: float  # time.monotonic()
    decide_at: float | None = None  # when processing ends
    approve: bool = True
    auth_code: str = ""
    masked_card: str = ""
    message: str = ""
    scheme: str = ""  # set once a card is read
    signature: bool = False
    offline: bool = False  # PAY ... OFFLINE: the card is stored, no issuer is asked
    number: str = ""  # the card presented (the mock's stand-in for what the chip holds)


@dataclass(frozen=True)
class Approval:
    """An online payment approval, as the terminal's acquirer learns it."""
    reference: str
    amount_minor: int
    currency: str
    card: str
    """The card's number (a test card number: the mock's stand-in for what the chip holds)."""
    masked: str
    auth_code: str
    scheme: str


class _Refused(Exception):
    """A request answered with ERR code message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class PaymentTerminalMock(PtySerialDevice):
    """Simulated terminal at a serial port path; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        auto_approve_after: float | None = None,
        processing_time: float = 0.3,
        approve_refunds: bool = True,
        report_approval: Callable[[Approval], None] | None = None,
    ) -> None:
        """auto_approve_after: seconds after PAY at which a card that approves
        is presented by itself (None: wait for present_card). report_approval: told of each online
        payment approval as it happens, while the terminal waits (the acquirer simulator learns it there,
        mocks.acquirer.terminal_reporter, so that the hub can capture it)."""
        super().__init__(path)
        self.report_approval = report_approval
        self.auto_approve_after = auto_approve_after
        self.processing_time = processing_time
        self.approve_refunds = approve_refunds
        self._lock = threading.Lock()  # guards the transactions
        self._transactions: dict[str, _Transaction] = {}
        self._auth_codes = itertools.count(100001)
        self._voided: list[str] = []
        self._rx = bytearray()  # the line being received; only the reader thread uses it

    # -- controls and observations -------------------------------------------

    def present_card(self, approve: bool = True, scheme: str = "VISA", signature: bool = False,
                     number: str | None = None, charged_minor: int | None = None) -> str:
        """The customer presents a card of `scheme` (whose rules ask for a signature or not; `number`, a test
        card number, defaults to the scheme's approving one) to the payment waiting for one; its reference.
        Offline, `approve` is the card's own verdict (its chip): the issuer is asked later, by the hub.
        `charged_minor`: a faulty terminal charges this instead of the amount asked.

        RuntimeError if no payment is waiting for a card.
        """
        with self._lock:
            tx, reference = self._waiting()
            self._start_processing(tx, time.monotonic(), approve, scheme, signature, number)
            if charged_minor is not None:
                tx.amount_minor = charged_minor
            return reference

    def customer_cancel(self) -> str:
        """The customer presses cancel on the keypad of the payment waiting for a card; its reference."""
        with self._lock:
            tx, reference = self._waiting()
            tx.stage, tx.message = "cancelled", "CANCELLED BY CUSTOMER"
            return reference

    def _waiting(self) -> tuple[_Transaction, str]:
        now = time.monotonic()
        for reference, tx in self._transactions.items():
            self._advance(tx, now)
            if tx.stage == "waiting_for_card":
                return tx, reference
        raise RuntimeError("no payment is waiting for a card")

    @property
    def references(self) -> list[str]:
        """Every reference a payment or refund was started under, oldest first."""
        with self._lock:
            return list(self._transactions)

    @property
    def voids(self) -> list[str]:
        """The references of the payments VOID reversed, in the order they were reversed."""
        with self._lock:
            return list(self._voided)

    def status_of(self, reference: str) -> TerminalStatus:
        """What the terminal would answer to STATUS for `reference`."""
        with self._lock:
            return self._status(reference)

    # -- the wire ------------------------------------------------------------

    def on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte == 0x0A:
                self._answer(bytes(self._rx) + b"\n")
                self._rx.clear()
            elif len(self._rx) < MAX_LINE:
                self._rx.append(byte)
            # else: over-long; the damaged line is answered at its LF

    def on_unplugged(self) -> None:
        self._rx.clear()  # a line cut by the unplug is void

    def _answer(self, line: bytes) -> None:
        try:
            seq, fields = parse_line(line)
        except FrameError as exc:
            self.write(encode_line(0, ["ERR", "FRAME", str(exc)[:60].replace("|", "/")]))
            return
        try:
            with self._lock:
                answer = self._handle(fields)
        except _Refused as refused:
            answer = ["ERR", refused.code, refused.message]
        self.write(encode_line(seq, answer))

    def _handle(self, fields: list[str]) -> list[str]:
        """The response fields for a request's fields; _Refused for ERR."""
        verb, args = fields[0], fields[1:]
        if verb in ("PAY", "REFUND"):
            if len(args) == 4 and verb == "PAY" and args[3] == OFFLINE:
                args, offline = args[:3], True
            else:
                offline = False
            if len(args) != 3:
                raise _Refused("SYNTAX", f"{verb} takes reference, amount, currency")
            reference, amount, currency = args
            _check(reference, amount, currency)
            return self._start(verb, reference, int(amount), currency, offline)
        if verb in ("STATUS", "CANCEL", "VOID"):
            if len(args) != 1:
                raise _Refused("SYNTAX", f"{verb} takes a reference")
            _check(args[0])
            if verb == "CANCEL":
                self._cancel(args[0])
            elif verb == "VOID":
                self._void(args[0])
            return self._status_fields(args[0])
        raise _Refused("UNKNOWN", f"unknown request {verb[:20]}")

    def _start(self, kind: str, reference: str, amount: int, currency: str, offline: bool = False) -> list[str]:
        now = time.monotonic()
        known = self._transactions.get(reference)
        if known is not None:
            if (known.kind, known.amount_minor, known.currency, known.offline) != (kind, amount, currency, offline):
                raise _Refused("CONFLICT", f"reference {reference} is a different {known.kind.lower()}")
            return self._status_fields(reference)  # a repeat: the same payment, never a second one
        for tx in self._transactions.values():
            self._advance(tx, now)
            if tx.stage in _ACTIVE:
                raise _Refused("BUSY", "another transaction is in progress")
        if kind == "PAY":
            tx = _Transaction(kind, amount, currency, "waiting_for_card", now, offline=offline)
        else:
            tx = _Transaction(kind, amount, currency, "processing", now, scheme="VISA")
            self._decide(tx, self.approve_refunds)  # refunds settle at once
        self._transactions[reference] = tx
        return self._status_fields(reference)

    def _cancel(self, reference: str) -> None:
        tx = self._transactions.get(reference)
        if tx is not None:
            self._advance(tx, time.monotonic())
            if tx.stage == "waiting_for_card":
                tx.stage, tx.message = "cancelled", "CANCELLED BY HOST"

    def _void(self, reference: str) -> None:
        """Reverse an approved payment (once: a repeat finds it reversed); one waiting for a card is cancelled."""
        tx = self._transactions.get(reference)
        if tx is None or tx.kind != "PAY":
            return
        self._advance(tx, time.monotonic())
        if tx.stage == "approved":
            tx.stage, tx.message = "reversed", "REVERSED"
            self._voided.append(reference)
        elif tx.stage == "waiting_for_card":
            tx.stage, tx.message = "cancelled", "CANCELLED BY HOST"

    def _status_fields(self, reference: str) -> list[str]:
        status = self._status(reference)
        amount = "" if status.amount_minor is None else str(status.amount_minor)
        return [
            "STATUS", reference, status.stage, amount, status.currency or "",
            status.auth_code, status.masked_card, status.message, status.scheme,
            ("Y" if status.signature else "N") if status.scheme else "", status.card_token,
        ]

    def _status(self, reference: str) -> TerminalStatus:
        tx = self._transactions.get(reference)
        if tx is None:
            return TerminalStatus(reference=reference, stage="idle")
        self._advance(tx, time.monotonic())
        return TerminalStatus(
            reference=reference,
            stage=tx.stage,
            amount_minor=tx.amount_minor,
            currency=tx.currency,
            auth_code=tx.auth_code,
            masked_card=tx.masked_card,
            message=tx.message,
            scheme=tx.scheme,
            signature=tx.signature,
            card_token=f"tok_{tx.number}" if tx.offline and tx.stage in ("approved", "reversed") else "",
        )

    # -- simulated time --------------------------------------------------------

    def _advance(self, tx: _Transaction, now: float) -> None:
        """Apply what happened to tx by `now`: an automatic card, the end of processing."""
        if tx.stage == "waiting_for_card" and self.auto_approve_after is not None:
            presented = tx.started + self.auto_approve_after
            if now >= presented:
                self._start_processing(tx, presented, approve=True)
        if tx.stage == "processing" and tx.decide_at is not None and now >= tx.decide_at:
            self._decide(tx, tx.approve)
            if self.report_approval is not None and tx.kind == "PAY" and tx.stage == "approved" and not tx.offline:
                reference = next(ref for ref, known in self._transactions.items() if known is tx)
                self.report_approval(Approval(reference, tx.amount_minor, tx.currency, tx.number, tx.masked_card,
                                              tx.auth_code, tx.scheme))

    def _start_processing(self, tx: _Transaction, at: float, approve: bool, scheme: str = "VISA",
                          signature: bool = False, number: str | None = None) -> None:
        tx.stage, tx.decide_at, tx.approve = "processing", at + self.processing_time, approve
        tx.scheme, tx.signature = scheme, signature
        tx.number = number or CARD_NUMBERS.get(scheme, CARD_NUMBERS["VISA"])

    def _decide(self, tx: _Transaction, approve: bool) -> None:
        tx.masked_card = "*" * (len(tx.number) - 4) + tx.number[-4:] if tx.number else MASKED_CARDS.get(
            tx.scheme, MASKED_CARD)
        if approve and tx.offline:
            tx.stage, tx.message = "approved", "STORED OFFLINE"
        elif approve:
            tx.stage, tx.auth_code, tx.message = "approved", str(next(self._auth_codes)), "APPROVED"
        else:
            tx.stage, tx.message = "declined", "DECLINED BY ISSUER"


def _check(reference: str, amount: str = "1", currency: str = "EUR") -> None:
    """_Refused SYNTAX unless the fields are well formed."""
    if not REFERENCE.fullmatch(reference):
        raise _Refused("SYNTAX", "bad reference")
    if not (amount.isdigit() and 0 < int(amount) <= MAX_AMOUNT):
        raise _Refused("SYNTAX", "bad amount")
    if not CURRENCY.fullmatch(currency):
        raise _Refused("SYNTAX", "bad currency")
