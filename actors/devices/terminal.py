"""A payment terminal: card payments by reference (start, status, cancel, void, refund).

A lost answer is never a reason to start again: the caller asks the status of the same reference,
and the terminal itself refuses to run one reference twice (docs/payment-terminal-protocol.md).
So an answer that did not come is never dressed up as a final stage: it is `answered: False`, and
the outcome stays unknown until a STATUS answers.

A till tells `request` and hears back through its `terminal_answer`, so a terminal that takes its
three silent seconds to count as gone never holds up the till's mailbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from actors.devices.base import DeviceActor
from drivers.errors import DeviceGone, DeviceProtocolError
from drivers.payment_terminal import PaymentTerminal, TerminalRefused, TerminalStatus

log = logging.getLogger(__name__)


class TerminalDevice(DeviceActor):
    def started(self) -> None:
        self._terminal: PaymentTerminal = self.open_driver()
        try:
            self._terminal.open()
        except DeviceGone as exc:  # e.g. no permission on the port: say so; requests retry the open
            self.report("offline", str(exc))
            return
        self.report("ready")

    def stopping(self) -> None:
        self._terminal.close()

    def _answer(self, call: Callable[[], TerminalStatus]) -> dict[str, Any]:
        """The terminal's status as plain data with `answered: True`; trouble is `answered: False` with a
        reason (`refused`: the terminal's ERR code when it refused the request), never a crash and never
        a stage: an unanswered request has an unknown outcome."""
        try:
            status = call()
        except TerminalRefused as exc:
            return {"answered": False, "refused": exc.code, "message": f"terminal refused: {exc}"}
        except (DeviceGone, DeviceProtocolError) as exc:
            self.report("offline", str(exc))
            return {"answered": False, "refused": None, "message": f"terminal unreachable: {exc}"}
        self.report("ready")
        return {"answered": True, **asdict(status)}

    def start_payment(self, amount_minor: int, currency: str, reference: str, offline: bool = False) -> dict[str, Any]:
        def start() -> TerminalStatus:
            self._terminal.start_payment(amount_minor, currency, reference, offline)
            return self._terminal.status(reference)
        return self._answer(start)

    def status(self, reference: str) -> dict[str, Any]:
        return self._answer(lambda: self._terminal.status(reference))

    def cancel(self, reference: str) -> dict[str, Any]:
        return self._answer(lambda: self._terminal.cancel(reference))

    def void(self, reference: str) -> dict[str, Any]:
        return self._answer(lambda: self._terminal.void(reference))

    def refund(self, amount_minor: int, currency: str, reference: str) -> dict[str, Any]:
        return self._answer(lambda: self._terminal.refund(amount_minor, currency, reference))

    def request(self, op: str, reference: str, amount_minor: int, currency: str, till: str, tender: str) -> None:
        """Told by a till (an actor name): do `op` ("pay", "pay_offline": store the card, "status", "cancel", "void"
        or "refund") for `reference`, then tell the till `terminal_answer(tender, op, answer)`."""
        if op in ("pay", "pay_offline"):
            answer = self.start_payment(amount_minor, currency, reference, op == "pay_offline")
        elif op == "refund":
            answer = self.refund(amount_minor, currency, reference)
        else:
            answer = {"status": self.status, "cancel": self.cancel, "void": self.void}[op](reference)
        if not answer["answered"]:
            log.info("terminal %s: %s %s not answered: %s", self.rule.name, op, reference, answer["message"])
        self.registry.tell(till, "terminal_answer", tender, op, answer)
