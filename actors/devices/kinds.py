"""Which actor runs a device of each kind."""

from __future__ import annotations

from actors.devices.base import DeviceActor
from actors.devices.display import DisplayDevice
from actors.devices.drawer import DrawerDevice
from actors.devices.printer import PrinterDevice
from actors.devices.scanner import ScannerDevice
from actors.devices.terminal import TerminalDevice
from novapos.config import DeviceRule

ACTORS: dict[str, type[DeviceActor]] = {
    "printer": PrinterDevice, "scanner": ScannerDevice, "drawer": DrawerDevice, "terminal": TerminalDevice,
    "display": DisplayDevice,
}


def actor_class_for(rule: DeviceRule) -> type[DeviceActor]:
    """The actor that runs the rule's device; LookupError if no actor runs devices of its driver's kind."""
    try:
        return ACTORS[rule.kind]
    except KeyError:
        raise LookupError(f"device {rule.name}: driver {rule.driver!r} drives {rule.kind!r} devices, which no "
                          f"device actor runs (known kinds: {', '.join(sorted(ACTORS))})") from None
