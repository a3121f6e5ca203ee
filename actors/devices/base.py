"""What every device actor shares: its rule, where it was seen, and reporting status to the manager."""

from __future__ import annotations

from typing import Any

from actors.devices.context import MANAGER, DeviceContext
from drivers.buses import SeenDevice
from drivers.registry import Target
from edge_runtime import Actor
from novapos.config import DeviceRule


class DeviceActor(Actor):
    """One plugged device. Hardware trouble (DeviceGone, a printer away) is a status, not a crash:
    the actor reports it and reconnects on its own; only bugs crash it (and its supervisor restarts it)."""

    def __init__(self, rule: DeviceRule, seen: SeenDevice | None, context: DeviceContext) -> None:
        super().__init__()
        self.rule = rule
        self.seen = seen
        self.context = context
        self._last_report: tuple[str, str] | None = None

    def open_driver(self) -> Any:
        """This device's driver object, made as its driver's spec says (drivers.registry); None for a
        device worked through the device it hangs off. Each kind's actor states the driver it expects."""
        opener = self.rule.spec.open
        return None if opener is None else opener(Target(self.rule, self.seen, self.context.hid))

    def report(self, state: str, detail: str = "") -> None:
        if (state, detail) != self._last_report:
            self._last_report = (state, detail)
            self.registry.tell(MANAGER, "report", self.rule.name, state, detail)
