"""A payment terminal: card payments by reference (start, status, cancel, refund).

A lost answer is never a reason to start again: the caller asks the status of the same reference,
and the terminal itself refuses to run one reference twice (docs/payment-terminal-protocol.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from actors.devices.base import DeviceActor
from drivers.errors import DeviceGone
from drivers.payment_terminal import PaymentTerminal, TerminalRefused, TerminalStatus


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
        """The terminal's status as plain data; trouble becomes a stage 'error' with a reason, not a crash."""
        try:
            return asdict(call())
        except TerminalRefused as exc:
            return {"stage": "error", "message": f"terminal refused: {exc}"}
        except DeviceGone as exc:
            self.report("offline", str(exc))
            return {"stage": "error", "message": f"terminal unreachable: {exc}"}

    def start_payment(self, amount_minor: int, currency: str, reference: str) -> dict[str, Any]:
        def start() -> TerminalStatus:
            self._terminal.start_payment(amount_minor, currency, reference)
            return self._terminal.status(reference)
        return self._answer(start)

    def status(self, reference: str) -> dict[str, Any]:
        return self._answer(lambda: self._terminal.status(reference))

    def cancel(self, reference: str) -> dict[str, Any]:
        return self._answer(lambda: self._terminal.cancel(reference))

    def refund(self, amount_minor: int, currency: str, reference: str) -> dict[str, Any]:
        return self._answer(lambda: self._terminal.refund(amount_minor, currency, reference))
