"""Card payment terminals: the interface the till needs, and one terminal on a serial line.

`PaymentTerminal` is what a payment actor uses; `SerialPaymentTerminal`
speaks the NovaPOS line protocol, specified in
docs/payment-terminal-protocol.md: ASCII lines `seq|VERB|fields*CRC`, one
request, one response, CRC-16/CCITT-FALSE per line. `encode_line` and
`parse_line` are its framing, shared with the simulated terminal.

Every request names a payment by the caller's reference and is idempotent,
so the driver retransmits a request whose response is lost or garbled: a
retried PAY never starts a second payment. If the terminal stays silent the
outcome is unknown: the caller must ask status(reference) once the terminal
is back, and never start the same sale again under a new reference.

Blocking calls, not thread-safe: one device actor owns a terminal (from
trio, use trio.to_thread).
"""

from __future__ import annotations

import binascii
import logging
import re
import time
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from drivers.errors import DeviceGone, DeviceProtocolError
from drivers.registry import DriverSpec, Target, register
from drivers.serial_port import SerialDevice

log = logging.getLogger(__name__)

Stage = Literal["idle", "waiting_for_card", "processing", "approved", "declined", "cancelled", "error", "reversed"]
STAGES: frozenset[str] = frozenset(get_args(Stage))
FINAL_STAGES: frozenset[str] = frozenset({"approved", "declined", "cancelled", "error", "reversed"})
STATUS_FIELDS = {8: 1, 10: 2, 11: 3}  # a STATUS line's fields (verb included) -> the protocol version that sends it
SCHEME = re.compile(r"[A-Z0-9_]{0,16}")
CARD_TOKEN = re.compile(r"[A-Za-z0-9_-]{0,48}")
OFFLINE = "OFFLINE"  # (v3) PAY's fourth field: store the card for authorization later, ask no issuer now

MAX_LINE = 200  # bytes, CRLF included
MAX_SEQ = 9999
REFERENCE = re.compile(r"[A-Za-z0-9._-]{1,32}")
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_AMOUNT = 9_999_999_999
_FIELD = re.compile(r"[\x20-\x7e]*")
# The checksum follows the last '*': fields may hold '*' (masked card numbers), never '|'.
_FRAME = re.compile(rb"(\d{1,4})((?:\|[\x20-\x7b\x7d\x7e]*)+)\*([0-9A-F]{4})\r?\n")


class FrameError(ValueError):
    """A line that is not a well-formed, intact protocol line."""


class TerminalRefused(Exception):
    """The terminal answered ERR: it understood the request and will not do it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code  # BUSY, CONFLICT, SYNTAX or UNKNOWN (see the protocol document)
        self.message = message


@dataclass(frozen=True)
class TerminalStatus:
    """Where a payment or refund stands, as the terminal reports it.

    stage 'idle' means the terminal knows nothing under this reference.
    auth_code and masked_card are set once approved; message explains a
    decline, cancel or error in words for the cashier. scheme (VISA,
    MASTERCARD...) and signature (the scheme asks the customer to sign) come
    from a protocol version 2 terminal once a card was read; empty and False
    from a version 1 terminal.
    """

    reference: str
    stage: Stage
    amount_minor: int | None = None
    currency: str | None = None
    auth_code: str = ""
    masked_card: str = ""
    message: str = ""
    scheme: str = ""
    signature: bool = False
    card_token: str = ""
    """(v3) The stored card of a payment approved offline, for the hub to authorize later; empty otherwise."""

    @property
    def final(self) -> bool:
        """True once the outcome is settled (approved, declined, cancelled, error)."""
        return self.stage in FINAL_STAGES


class PaymentTerminal(Protocol):
    """What a payment actor needs from any card terminal.

    Failures: DeviceGone when the terminal is unreachable (the outcome of
    the request is then unknown), TerminalRefused when it declines the
    request itself (busy, conflicting reference).
    """

    def open(self) -> None:
        """Connect now (else the first request does); DeviceGone if it cannot."""

    def close(self) -> None:
        """Disconnect; never raises."""

    def start_payment(self, amount_minor: int, currency: str, reference: str, offline: bool = False) -> None:
        """Ask for a card payment; a reference already known is not started again. `offline` (v3): the terminal
        stores the card (STATUS card_token) instead of asking the issuer."""

    def status(self, reference: str) -> TerminalStatus:
        """The payment or refund under `reference`."""

    def cancel(self, reference: str) -> TerminalStatus:
        """Cancel a payment still waiting for a card; returns where it stands then."""

    def refund(self, amount_minor: int, currency: str, reference: str) -> TerminalStatus:
        """Refund to a card; `reference` names the refund itself."""

    def void(self, reference: str) -> TerminalStatus:
        """Reverse the approved payment `reference` in full (protocol version 2); idempotent."""


class SerialPaymentTerminal(SerialDevice):
    """A terminal on a serial port speaking docs/payment-terminal-protocol.md.

    Opens lazily and again after DeviceGone.
    """

    _device = "payment terminal"

    def __init__(
        self, port: str, baudrate: int = 9600, response_timeout: float = 1.0, attempts: int = 3
    ) -> None:
        """response_timeout bounds the wait for each response; a request is
        sent up to `attempts` times before the terminal counts as gone."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        super().__init__(port, baudrate, timeout=0, write_timeout=response_timeout)
        self._timeout = response_timeout
        self._attempts = attempts
        self._seq = 0
        self._rx = bytearray()  # received bytes not yet a full line

    def _opened(self) -> None:
        """Bytes from the last connection are no part of any response on this one."""
        self._rx.clear()

    def start_payment(self, amount_minor: int, currency: str, reference: str, offline: bool = False) -> None:
        """Send PAY (with OFFLINE: store the card, v3); the terminal then waits for the card (poll status())."""
        self._status_request(
            "PAY", _check_reference(reference), str(_check_amount(amount_minor)), _check_currency(currency),
            *((OFFLINE,) if offline else ()),
        )

    def status(self, reference: str) -> TerminalStatus:
        """Send STATUS: where the payment or refund `reference` stands."""
        return self._status_request("STATUS", _check_reference(reference))

    def cancel(self, reference: str) -> TerminalStatus:
        """Send CANCEL: only a payment still waiting for a card is cancelled."""
        return self._status_request("CANCEL", _check_reference(reference))

    def refund(self, amount_minor: int, currency: str, reference: str) -> TerminalStatus:
        """Send REFUND: the terminal settles it at once (approved or declined)."""
        return self._status_request(
            "REFUND", _check_reference(reference), str(_check_amount(amount_minor)), _check_currency(currency)
        )

    def void(self, reference: str) -> TerminalStatus:
        """Send VOID: an approved payment becomes reversed (the money goes back); a payment still
        waiting for a card is cancelled; anything else answers its status. A version 1 terminal
        answers ERR UNKNOWN (TerminalRefused)."""
        return self._status_request("VOID", _check_reference(reference))

    # -- internals ---------------------------------------------------------------

    def _status_request(self, verb: str, reference: str, *fields: str) -> TerminalStatus:
        answer = self._request([verb, reference, *fields])
        if answer[0] != "STATUS" or len(answer) not in STATUS_FIELDS or answer[1] != reference:
            raise DeviceProtocolError(f"payment terminal answered {verb} {reference} with {'|'.join(answer)!r}")
        _, _, stage, amount, currency, auth_code, masked_card, message = answer[:8]
        scheme, signature = answer[8:10] if len(answer) >= 10 else ("", "")
        card_token = answer[10] if len(answer) == 11 else ""
        if (stage not in STAGES or not (amount == "" or amount.isdigit()) or not SCHEME.fullmatch(scheme)
                or signature not in ("", "Y", "N") or not CARD_TOKEN.fullmatch(card_token)):
            raise DeviceProtocolError(f"payment terminal sent a malformed status: {'|'.join(answer)!r}")
        return TerminalStatus(
            reference=reference,
            stage=stage,  # type: ignore[arg-type]  # checked against STAGES above
            amount_minor=int(amount) if amount else None,
            currency=currency or None,
            auth_code=auth_code,
            masked_card=masked_card,
            message=message,
            scheme=scheme,
            signature=signature == "Y",
            card_token=card_token,
        )

    def _request(self, fields: list[str]) -> list[str]:
        """Send a request until a response to it comes; its fields (after seq).

        Each transmission has a new sequence number, so a late response to an
        earlier one is recognised and dropped.
        """
        garbled = False
        for _ in range(self._attempts):
            self._seq = self._seq % MAX_SEQ + 1
            self._write(encode_line(self._seq, fields))
            answer = self._await(self._seq)
            if answer is None:
                continue
            if not answer or answer[:2] == ["ERR", "FRAME"]:
                garbled = True  # it could not read our line, or we its: send it again
                continue
            if answer[0] == "ERR":
                raise TerminalRefused(answer[1] if len(answer) > 1 else "", answer[2] if len(answer) > 2 else "")
            return answer
        if garbled:
            raise DeviceProtocolError(f"payment terminal on {self.port}: nothing intact in {self._attempts} attempts")
        raise DeviceGone(f"payment terminal on {self.port} does not answer")

    def _await(self, seq: int) -> list[str] | None:
        """The response to `seq` (or a FRAME error, which carries seq 0);
        [] for a damaged line, None if nothing came in time."""
        deadline = time.monotonic() + self._timeout
        while True:
            while (end := self._rx.find(b"\n")) >= 0:
                line = bytes(self._rx[: end + 1])
                del self._rx[: end + 1]
                try:
                    got, fields = parse_line(line)
                except FrameError as exc:
                    log.warning("payment terminal %s: dropping a damaged line: %s", self.port, exc)
                    return []  # most likely our response, damaged: ask again rather than wait
                if got == seq or (got == 0 and fields[:2] == ["ERR", "FRAME"]):
                    return fields
                log.info("payment terminal %s: dropping a late response (seq %d, waiting for %d)", self.port, got, seq)
            if len(self._rx) > MAX_LINE:
                log.warning("payment terminal %s: dropping %d bytes without a line end", self.port, len(self._rx))
                self._rx.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._rx += self._read_available(left)

    def _write(self, line: bytes) -> None:
        with self._io() as port:
            port.write(line)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the line checksum."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode_line(seq: int, fields: list[str]) -> bytes:
    """One protocol line: `seq|f1|f2...*CRC` and CRLF.

    Fields must be printable ASCII without '|' (ValueError otherwise).
    """
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq out of range: {seq}")
    for field in fields:
        if not _FIELD.fullmatch(field) or "|" in field:
            raise ValueError(f"field not sendable: {field!r}")
    body = "|".join([str(seq), *fields]).encode("ascii")
    line = body + b"*%04X\r\n" % crc16(body)
    if len(line) > MAX_LINE:
        raise ValueError(f"line longer than {MAX_LINE} bytes")
    return line


def parse_line(line: bytes) -> tuple[int, list[str]]:
    """The seq and fields of one received line (LF or CRLF included); FrameError if damaged."""
    if len(line) > MAX_LINE:
        raise FrameError(f"line longer than {MAX_LINE} bytes")
    match = _FRAME.fullmatch(line)
    if match is None:
        raise FrameError(f"not a protocol line: {line[:40]!r}")
    seq, rest, checksum = match.groups()
    if crc16(seq + rest) != int(checksum, 16):
        raise FrameError(f"checksum mismatch: {line[:40]!r}")
    return int(seq), rest.decode("ascii").split("|")[1:]


def _check_reference(reference: str) -> str:
    if not REFERENCE.fullmatch(reference):
        raise ValueError(f"reference must be 1-32 of A-Z a-z 0-9 . _ -, not {reference!r}")
    return reference


def _check_amount(amount_minor: int) -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or not 0 < amount_minor <= MAX_AMOUNT:
        raise ValueError(f"amount must be a positive integer of minor units, not {amount_minor!r}")
    return amount_minor


def _check_currency(currency: str) -> str:
    if not CURRENCY.fullmatch(currency):
        raise ValueError(f"currency must be an ISO 4217 code like EUR, not {currency!r}")
    return currency


def _open_serial_terminal(target: Target) -> SerialPaymentTerminal:
    assert target.rule.path is not None  # the spec needs it: the config loader refused a rule without
    return SerialPaymentTerminal(target.rule.path, target.rule.baudrate)


register(DriverSpec("serial-terminal", kind="terminal", bus="serial", needs=("path",), open=_open_serial_terminal))
