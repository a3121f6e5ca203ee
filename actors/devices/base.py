"""What every device actor shares: its rule, where it was seen, and reporting status to the manager."""

from __future__ import annotations

from actors.devices.context import MANAGER, DeviceContext
from drivers.buses import SeenDevice
from edge_runtime import Actor
from novapos.config import DeviceRule


class DeviceActor(Actor):
    """One plugged device. Hardware trouble (DeviceGone, a printer away) is a status, not a crash:
    the actor reports it and reconnects on its own; only bugs crash it (and its supervisor restarts it)."""

    RECONNECT_S = 0.25

    def __init__(self, rule: DeviceRule, seen: SeenDevice | None, context: DeviceContext) -> None:
        super().__init__()
        self.rule = rule
        self.seen = seen
        self.context = context
        self._last_report: tuple[str, str] | None = None

    def report(self, state: str, detail: str = "") -> None:
        if (state, detail) != self._last_report:
            self._last_report = (state, detail)
            self.registry.tell(MANAGER, "report", self.rule.name, state, detail)
