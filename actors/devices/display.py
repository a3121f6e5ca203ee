"""A customer display (2x20 pole display): shows the customer what the till just did."""

from __future__ import annotations

from actors.devices.base import DeviceActor
from drivers.customer_display import CustomerDisplay
from drivers.errors import DeviceGone


class DisplayDevice(DeviceActor):
    def started(self) -> None:
        self._display: CustomerDisplay = self.open_driver()
        self._shown = ("", "")
        self.show("NovaPOS", "")

    def stopping(self) -> None:
        self._display.close()

    def show(self, top: str, bottom: str) -> None:
        """Put two lines up; a display that went away is reported and re-opened on the next update."""
        self._shown = (top, bottom)
        try:
            self._display.show(top, bottom)
        except DeviceGone as exc:
            self._display.close()
            self.report("offline", str(exc))
            return
        self.report("ready", f"at {self.rule.path}")
